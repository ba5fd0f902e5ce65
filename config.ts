// The stack's configuration: every key's rule (the keys, types and defaults are declared once, in
// config-keys.ts). Pure: no Pulumi import, so the rules are tested without mocks and
// `npm run render` uses the very same parser.
// index.ts reads the raw strings once and hands them to parseConfig(); components get typed args.
import { CONFIG_KEY_TABLE as KEYS } from "./config-keys";
import { parseWorkHours } from "./schedule";
import {
  ANTHROPIC_KEY_RE,
  GITHUB_TOKEN_RE,
  IAP_TCP_FORWARDING_RANGE,
  PACKAGE_NAME_RE,
  PRIVATE_KEY_BEGIN_RE,
  PRIVATE_KEY_END_RE,
  WHOLE_NUMBER_RE,
  WHOLE_PRIVATE_KEY_RE,
  ipv4Network,
  ipv4Text,
  parseIpv4,
  secretShapesIn,
  type Ipv4,
} from "./shared-rules";
import {
  CLAUDE_CODE_SOURCES,
  CLAUDE_CODE_VERSION_RE,
  CLAUDE_PROVIDERS,
  DOCKER_MODES,
  DOCKER_SOURCES,
  PERMISSION_MODES,
  claudeEnvProblem,
} from "./shared-rules";

export { CLAUDE_CODE_SOURCES, CLAUDE_PROVIDERS, DOCKER_MODES, DOCKER_SOURCES, PERMISSION_MODES };

/** Raw configuration as Pulumi stores it: strings (lists and objects as JSON text). */
export type RawConfig = Readonly<Record<string, string | undefined>>;

export type ClaudeCodeSource = (typeof CLAUDE_CODE_SOURCES)[number];

export type DockerSource = (typeof DOCKER_SOURCES)[number];
import type { DockerMode } from "./shared-rules";
export type { DockerMode };

export type PermissionMode = (typeof PERMISSION_MODES)[number];

export const DATA_DISK_TYPES = ["pd-standard", "pd-balanced", "pd-ssd", "pd-extreme"] as const;

export type ClaudeProvider = (typeof CLAUDE_PROVIDERS)[number];

/** How the deploy and people reach the VM's sshd: its external address, or an IAP tunnel. */
export const CONNECT_VIA = ["public-ip", "iap"] as const;
export type ConnectVia = (typeof CONNECT_VIA)[number];

/**
 * Vertex AI locations that serve Anthropic's Claude models: the global endpoint, the `us` and `eu`
 * multi-regions, and the regions Google's and Anthropic's Vertex pages list for Claude. Claude Code
 * 2.1.331 builds the host from CLOUD_ML_REGION (global → aiplatform.googleapis.com, us/eu →
 * aiplatform.<us|eu>.rep.googleapis.com, else <region>-aiplatform.googleapis.com); any other
 * region answers every request with "not servable in region". Which models a location serves
 * differs: check the model's card in Model Garden.
 */
export const VERTEX_CLAUDE_REGIONS = [
  "global",
  "us",
  "eu",
  "us-east5",
  "us-central1",
  "us-east1",
  "us-east4",
  "us-west1",
  "europe-west1",
  "europe-west4",
  "asia-east1",
  "asia-southeast1",
] as const;

/**
 * Memory budget per agent. Claude Code's own process settles around 300-600 MiB; what the agent
 * runs (git, a test suite, a build) spikes well above that, so 1.5 GiB per agent is the floor we
 * size for, after RESERVED_GIB for the OS, Docker and the tmux server.
 */
export const PER_AGENT_GIB = 1.5;
export const RESERVED_GIB = 2;

/** Machine types the stack knows: memory (GiB) and vCPUs. Others are allowed, with a warning. */
/** Memory and vCPUs of a machine type the stack knows. */
export interface Machine {
  memoryGib: number;
  vcpus: number;
}

export const MACHINE_TYPES: Readonly<Record<string, Machine>> = {
  "e2-standard-2": { memoryGib: 8, vcpus: 2 },
  "e2-standard-4": { memoryGib: 16, vcpus: 4 },
  "e2-standard-8": { memoryGib: 32, vcpus: 8 },
  "e2-standard-16": { memoryGib: 64, vcpus: 16 },
  "e2-standard-32": { memoryGib: 128, vcpus: 32 },
  "e2-highmem-2": { memoryGib: 16, vcpus: 2 },
  "e2-highmem-4": { memoryGib: 32, vcpus: 4 },
  "e2-highmem-8": { memoryGib: 64, vcpus: 8 },
  "e2-highmem-16": { memoryGib: 128, vcpus: 16 },
  "n2-standard-4": { memoryGib: 16, vcpus: 4 },
  "n2-standard-8": { memoryGib: 32, vcpus: 8 },
  "n2-standard-16": { memoryGib: 64, vcpus: 16 },
  "n2-standard-32": { memoryGib: 128, vcpus: 32 },
  "n2d-standard-8": { memoryGib: 32, vcpus: 8 },
  "n2d-standard-16": { memoryGib: 64, vcpus: 16 },
  "c3-standard-8": { memoryGib: 32, vcpus: 8 },
  "c3-standard-22": { memoryGib: 88, vcpus: 22 },
  "t2d-standard-8": { memoryGib: 32, vcpus: 8 },
  "t2d-standard-16": { memoryGib: 64, vcpus: 16 },
};

/** Absolute ceiling whatever the machine: one tmux session stays readable, one reconcile stays fast. */
export const MAX_AGENTS_ANY_MACHINE = 64;
/** The most VMs one stack declares (hostCount). */
export const MAX_HOSTS = 20;

/**
 * autoStopMinutes: 0 turns the agent-aware auto-stop off; otherwise the minutes (AUTO_STOP_MIN..
 * AUTO_STOP_MAX) every agent must be idle and nobody attached before the VM powers off. Below 10,
 * a dropped SSH connection or a short walk away would stop the VM under a person.
 */
export const AUTO_STOP_MIN = 10;
export const AUTO_STOP_MAX = 24 * 60;

/** Pinned Claude Code release; every agent runs this one, auto-update off. */
export const DEFAULT_CLAUDE_CODE_VERSION = KEYS.claudeCodeVersion.default;

/** The defaults parseConfig falls back to: Pulumi.yaml's, from config-keys.ts, typed for the code. */
export const DEFAULTS = {
  agentCount: KEYS.agentCount.default,
  hostCount: KEYS.hostCount.default,
  machineType: KEYS.machineType.default,
  image: KEYS.image.default,
  bootDiskSizeGb: KEYS.bootDiskSizeGb.default,
  dataDiskSizeGb: KEYS.dataDiskSizeGb.default,
  dataDiskType: KEYS.dataDiskType.default,
  claudeCodeVersion: DEFAULT_CLAUDE_CODE_VERSION,
  claudeCodeSource: KEYS.claudeCodeSource.default as ClaudeCodeSource,
  dockerSource: KEYS.dockerSource.default as DockerSource,
  dockerMode: KEYS.dockerMode.default as DockerMode,
  sshAuthorizedKeys: [...KEYS.sshAuthorizedKeys.default] as string[],
  agentPermissionMode: KEYS.agentPermissionMode.default as PermissionMode,
  snapshotRetentionDays: KEYS.snapshotRetentionDays.default,
  spot: KEYS.spot.default,
  deleteDataDiskOnDestroy: KEYS.deleteDataDiskOnDestroy.default,
  extraPackages: [...KEYS.extraPackages.default] as string[],
  claudeProvider: KEYS.claudeProvider.default as ClaudeProvider,
  connectVia: KEYS.connectVia.default as ConnectVia,
  vertexRegion: KEYS.vertexRegion.default,
  claudeModel: KEYS.claudeModel.default,
  anthropicBaseUrl: KEYS.anthropicBaseUrl.default,
  vertexBaseUrl: KEYS.vertexBaseUrl.default,
  // schedule.ts's WORK_HOURS_DEFAULTS holds the same four; tests/config-keys.test.ts ties them.
  workHoursStart: KEYS.workHoursStart.default,
  workHoursStop: KEYS.workHoursStop.default,
  workDays: KEYS.workDays.default,
  workTimeZone: KEYS.workTimeZone.default,
  autoStopMinutes: KEYS.autoStopMinutes.default,
  notifyOnIdle: KEYS.notifyOnIdle.default,
  dashboardPort: KEYS.dashboardPort.default,
  dashboardUrl: KEYS.dashboardUrl.default,
} as const;

/**
 * The typed config the components get: every key's parsed value under the key's own name (each
 * key's rule is its parser in parseEachKey, whose return type this is), but for the secrets,
 * whose values never enter it (only what kind they are), plus what comes from gcp: and from the
 * rules across keys. A new key is its table entry (config-keys.ts), its rule, and its tests.
 */
export type StackConfig = Omit<KeyValues, "gitCredentials" | "repository" | "claude"> & {
  /** GCP project from `gcp:project` (required: the service account's roles are granted in it). */
  project: string;
  /** Zone from `gcp:zone` (required), e.g. `europe-west1-b`. */
  zone: string;
  /** Region derived from the zone. */
  region: string;
  /** Where the agents' Claude runs, and how it signs in there (checked across keys). */
  claude: ClaudeSettings;
  /** The team's repository; each agent's workspace is a checkout of it on branch agent-N. */
  repository?: string;
  /** What the gitCredentials secret is (its value never enters StackConfig). */
  gitCredentialsKind?: GitCredentialsKind;
  /** host[:port] an HTTPS token is for (the repository's host, or github.com for a GitHub token). */
  gitCredentialHost?: string;
};

/** A token for HTTPS remotes, or a private key for SSH remotes. */
export type GitCredentialsKind = "token" | "ssh-key";

// In its own module so the pure parsers config.ts imports (schedule.ts) can throw it too.
export { ConfigError } from "./config-error";
import { ConfigError } from "./config-error";
import { parseWebhook, type WebhookKind } from "./host/attention/webhook";

export interface ParseResult {
  config: StackConfig;
  /** Things worth telling the user that do not stop the deployment. */
  warnings: string[];
}

/** Every `agent-host:` key, as config-keys.ts declares them. */
export type ConfigKey = keyof typeof KEYS;
const KNOWN_KEYS = Object.keys(KEYS) as ConfigKey[];
export const CONFIG_KEYS: readonly ConfigKey[] = KNOWN_KEYS;

function show(value: string): string {
  return JSON.stringify(value);
}

function parseInteger(
  key: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
  fix: string,
): number {
  if (raw === undefined || raw.trim() === "") return fallback;
  const text = raw.trim();
  if (!WHOLE_NUMBER_RE.test(text)) {
    throw new ConfigError(`${key} must be a whole number; got ${show(raw)}. ${fix}`);
  }
  const value = Number(text);
  if (value < min || value > max) {
    const range = Number.isFinite(max) ? `between ${min} and ${max}` : `at least ${min}`;
    throw new ConfigError(`${key} must be ${range}; got ${value}. ${fix}`);
  }
  return value;
}

function parseBoolean(key: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw.trim() === "") return fallback;
  const text = raw.trim().toLowerCase();
  if (text === "true") return true;
  if (text === "false") return false;
  throw new ConfigError(
    `${key} must be true or false; got ${show(raw)}. Run: pulumi config set ${key} false`,
  );
}

function parseEnum<T extends string>(
  key: string,
  raw: string | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (raw === undefined || raw.trim() === "") return fallback;
  const text = raw.trim();
  if ((allowed as readonly string[]).includes(text)) return text as T;
  throw new ConfigError(
    `${key} must be one of ${allowed.join(", ")}; got ${show(raw)}. Run: pulumi config set ${key} ${fallback}`,
  );
}

function parseStringList(
  key: string,
  raw: string | undefined,
  example: string,
): string[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      `${key} must be a list of strings; got ${show(raw)}. Set it with: pulumi config set --path '${key}[0]' ${example}`,
    );
  }
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    throw new ConfigError(
      `${key} must be a list of strings; got ${show(raw)}. Set it with: pulumi config set --path '${key}[0]' ${example}`,
    );
  }
  return value as string[];
}

/** A string key's value, trimmed; undefined when unset or blank. */
function optionalText(raw: string | undefined): string | undefined {
  const text = raw?.trim();
  return text ? text : undefined;
}

/** IPv4 CIDR with a prefix length; the network address must have no host bits set. */
export function validateCidr(key: string, cidr: string): Required<Ipv4> {
  const parsed = parseIpv4(cidr);
  const fix = `Use a network in CIDR form, e.g. 203.0.113.0/24 or 198.51.100.7/32.`;
  if (parsed === undefined || parsed.prefix === undefined) {
    throw new ConfigError(`${key} has ${show(cidr)}, which is not an IPv4 CIDR. ${fix}`);
  }
  const network = ipv4Network(parsed.address, parsed.prefix);
  if (network !== parsed.address) {
    throw new ConfigError(
      `${key} has ${show(cidr)}, which has host bits set. Did you mean ${ipv4Text(network)}/${parsed.prefix}?`,
    );
  }
  return { address: parsed.address, prefix: parsed.prefix };
}

const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
];

export function validateSshPublicKey(key: string, value: string): void {
  const parts = value.trim().split(/\s+/);
  const fix = `Give the one-line OpenSSH public key, e.g. the content of ~/.ssh/id_ed25519.pub.`;
  if (/PRIVATE KEY/.test(value)) {
    throw new ConfigError(
      `${key} holds a private key; it must hold public keys only. Remove it with: pulumi config rm ${key}, then set the .pub content.`,
    );
  }
  if (
    value.includes("\n") ||
    parts.length < 2 ||
    !SSH_KEY_TYPES.includes(parts[0]) ||
    !/^[A-Za-z0-9+/]+={0,3}$/.test(parts[1])
  ) {
    throw new ConfigError(
      `${key} has ${show(value.slice(0, 40))}…, which is not an OpenSSH public key. ${fix}`,
    );
  }
}

/** The forms of git remote the stack checks out: HTTPS, ssh:// and scp-like user@host:path. */
export type RepositoryUrl = { scheme: "https" | "ssh"; host: string };

const HOST_RE =
  "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*";
const REPO_PATH_RE = "[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*/?";
const HTTPS_URL_RE = new RegExp(`^https://(${HOST_RE}(?::\\d{1,5})?)/(${REPO_PATH_RE})$`);
const SSH_URL_RE = new RegExp(
  `^ssh://(?:[A-Za-z0-9][A-Za-z0-9._-]*@)?(${HOST_RE})(?::\\d{1,5})?/(${REPO_PATH_RE})$`,
);
const SCP_URL_RE = new RegExp(`^[A-Za-z0-9][A-Za-z0-9._-]*@(${HOST_RE}):(~?${REPO_PATH_RE})$`);
const REPOSITORY_EXAMPLE = "https://github.com/acme/app.git";

/**
 * Parses the repository URL. The value ends up in host.conf (one line) and on git's command line
 * as an argument, so only the characters a real remote needs are accepted.
 */
export function parseRepositoryUrl(key: string, value: string): RepositoryUrl {
  const fix = `Use https://host/path(.git), ssh://[user@]host[:port]/path or user@host:path.git. Run: pulumi config set ${key} ${REPOSITORY_EXAMPLE}`;
  if (/^https?:\/\/[^/]*@/.test(value)) {
    throw new ConfigError(
      `${key} must not carry credentials in the URL; got a URL with user info (not shown). Put the token in gitCredentials (pulumi config set --secret gitCredentials <token>) and run: pulumi config set ${key} <the URL without user@>`,
    );
  }
  if (/^(http|git):\/\//.test(value)) {
    throw new ConfigError(
      `${key} must use https:// or SSH, not an unencrypted protocol; got ${show(value)}. ${fix}`,
    );
  }
  const https = HTTPS_URL_RE.exec(value);
  const ssh = SSH_URL_RE.exec(value) ?? SCP_URL_RE.exec(value);
  const match = https ?? ssh;
  if (match && !match[2].split("/").includes("..")) {
    return { scheme: https ? "https" : "ssh", host: match[1] };
  }
  throw new ConfigError(`${key} must be a git URL; got ${show(value)}. ${fix}`);
}

const ZONE_RE = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;
const MACHINE_TYPE_RE = /^[a-z][a-z0-9]*-[a-z0-9]+(-[a-z0-9]+)*$/;

/** Highest agent count a machine's memory allows, at PER_AGENT_GIB each after RESERVED_GIB. */
export function maxAgentsFor(memoryGib: number): number {
  return Math.max(
    0,
    Math.min(MAX_AGENTS_ANY_MACHINE, Math.floor((memoryGib - RESERVED_GIB) / PER_AGENT_GIB)),
  );
}

type Get = (key: ConfigKey) => string | undefined;

/**
 * Validates the raw configuration and returns the typed config. Throws ConfigError on the first
 * problem, before the program registers any resource: each key's own rule first (parseEachKey),
 * then the rules between keys (checkAcrossKeys).
 */
export function parseConfig(raw: RawConfig): ParseResult {
  const warnings: string[] = [];
  const get: Get = (key) => raw[`agent-host:${key}`];
  const { zone, project } = parseGcpKeys(raw);
  const keys = parseEachKey(get, warnings);
  const { claude, gitCredentialHost } = checkAcrossKeys(keys, project, warnings);
  refuseUnknownKeys(raw);
  // Every key's parsed value is the config's field of the same name, but for the secrets' values
  // (never in StackConfig: only what kind they are) and the keys checked again across keys.
  const { gitCredentials, repository, claude: _claude, ...plain } = keys;
  return {
    config: {
      project,
      zone,
      region: zone.replace(/-[a-z]$/, ""),
      ...plain,
      claude,
      repository: repository?.text,
      gitCredentialsKind: gitCredentials?.kind,
      gitCredentialHost,
    },
    warnings,
  };
}

/** Each `agent-host:` key by its own rule, in the order the keys are checked. */
function parseEachKey(get: Get, warnings: string[]) {
  // Object literals evaluate in source order: this order is the order of the checks.
  return {
    ...parseMachineType(get, warnings),
    agentCount: integerKey(get, "agentCount"),
    hostCount: integerKey(get, "hostCount"),
    /** Agents per host when set (one number per host); undefined = agentCount on every host. */
    hostAgentCounts: parseHostAgentCounts(get("hostAgentCounts")),
    image: parseImage(get, warnings),
    bootDiskSizeGb: integerKey(get, "bootDiskSizeGb"),
    dataDiskSizeGb: integerKey(get, "dataDiskSizeGb"),
    dataDiskType: enumKey(get, "dataDiskType"),
    connectVia: enumKey(get, "connectVia"),
    sshSourceRanges: parseSshSourceRanges(get, warnings, enumKey(get, "connectVia")),
    claudeCodeVersion: parseClaudeCodeVersion(get),
    claudeCodeSource: enumKey(get, "claudeCodeSource"),
    dockerSource: enumKey(get, "dockerSource"),
    dockerMode: parseDockerMode(get, warnings),
    agentPermissionMode: parsePermissionMode(get, warnings),
    sshAuthorizedKeys: parseSshAuthorizedKeys(get),
    snapshotRetentionDays: integerKey(get, "snapshotRetentionDays"),
    spot: booleanKey(get, "spot"),
    deleteDataDiskOnDestroy: booleanKey(get, "deleteDataDiskOnDestroy"),
    /** Whether the anthropicApiKey secret is set (its value never enters StackConfig). */
    hasApiKey: checkApiKey(get("anthropicApiKey")),
    claude: parseClaudeKeys(get),
    /** Whether a deployPrivateKey secret is set (otherwise the stack generates one). */
    hasDeployKey: checkDeployKey(get("deployPrivateKey")),
    /** The identity the agents commit with (both or neither). */
    gitUserName: parseGitUserName(get("gitUserName")),
    gitUserEmail: parseGitUserEmail(get("gitUserEmail")),
    repository: parseRepository(get("repository")),
    /** Debian/Ubuntu packages installed for every agent, sorted, no duplicates. */
    extraPackages: parseExtraPackages(get("extraPackages")),
    /** NAME=value pairs every claude gets (the host's claude environment); never a credential. */
    claudeEnv: parseClaudeEnv(get("claudeEnv")),
    gitCredentials: parseGitCredentials(get("gitCredentials")),
    /** Work hours: GCE starts and stops the VM on this schedule; undefined = no schedule. */
    workSchedule: parseWorkHours((key) => get(key)),
    /** Minutes of all-idle, nobody-there before the VM powers itself off; 0 = never. */
    autoStopMinutes: parseAutoStopMinutes(get),
    /** Which receiver the notifyWebhookUrl secret is (its value never enters StackConfig). */
    notifyWebhookKind: parseNotifyWebhook(get("notifyWebhookUrl")),
    /** Also notify when an agent finishes a turn after real work (not only when it needs you). */
    notifyOnIdle: booleanKey(get, "notifyOnIdle"),
    /** The dashboard's port on the VM's 127.0.0.1 (host/web/). */
    dashboardPort: integerKey(get, "dashboardPort"),
    /** Where webhook messages link to (the lead's tunnel URL); undefined = no link. */
    dashboardUrl: parseDashboardUrl(get("dashboardUrl")),
  };
}

/**
 * dashboardUrl: http(s), a host, maybe a port and a path; nothing that could carry a secret into a
 * notification (user info, a query, a fragment such as #token=).
 */
export function parseDashboardUrl(raw: string | undefined): string | undefined {
  const text = raw?.trim();
  if (!text) return undefined;
  const fix = `Run: pulumi config set dashboardUrl http://127.0.0.1:${DEFAULTS.dashboardPort}`;
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol) || !url.hostname) {
    throw new ConfigError(
      `dashboardUrl must be an http:// or https:// URL; got ${show(text)}. ${fix}`,
    );
  }
  if (url.username || url.password || url.search || url.hash || /[?#@]/.test(text)) {
    throw new ConfigError(
      `dashboardUrl must not hold a user, query or fragment (the token never goes in config or in messages; the page keeps it); got ${show(`${url.protocol}//${url.host}${url.pathname}…`)}. ${fix}`,
    );
  }
  return text.replace(/\/+$/, "");
}

type KeyValues = ReturnType<typeof parseEachKey>;

/** The rules between keys, once each key has passed its own. */
function checkAcrossKeys(
  keys: KeyValues,
  project: string,
  warnings: string[],
): { claude: ClaudeSettings; gitCredentialHost?: string } {
  checkHostAgentCounts(keys);
  checkAgentCountFitsMachine(keys);
  const claude = claudeAcrossKeys(keys.claude, { project, hasApiKey: keys.hasApiKey }, warnings);
  checkGitIdentity(keys.gitUserName, keys.gitUserEmail);
  const gitCredentialHost = gitCredentialHostFor(keys.gitCredentials, keys.repository);
  return { claude, gitCredentialHost };
}

/** The provider's own keys, gcp:zone and gcp:project: both required. */
function parseGcpKeys(raw: RawConfig): { zone: string; project: string } {
  const zone = raw["gcp:zone"]?.trim();
  if (!zone) {
    throw new ConfigError(
      "gcp:zone is not set; the VM needs a zone. Run: pulumi config set gcp:zone europe-west1-b",
    );
  }
  if (!ZONE_RE.test(zone)) {
    throw new ConfigError(
      `gcp:zone must be a zone such as europe-west1-b; got ${show(zone)}. Run: pulumi config set gcp:zone europe-west1-b`,
    );
  }
  const project = raw["gcp:project"]?.trim();
  if (!project) {
    throw new ConfigError(
      "gcp:project is not set; the stack needs the project that holds the VM. Run: pulumi config set gcp:project my-project-id",
    );
  }
  if (!/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(project)) {
    throw new ConfigError(
      `gcp:project must be a project ID (6-30 lowercase letters, digits, hyphens); got ${show(project)}. Run: pulumi config set gcp:project my-project-id`,
    );
  }
  return { zone, project };
}

/** The integer keys' bounds and the fix their messages give. */
const INTEGER_RULES = {
  agentCount: { min: 1, max: Infinity, fix: "Run: pulumi config set agentCount 10" },
  hostCount: { min: 1, max: MAX_HOSTS, fix: "Run: pulumi config set hostCount 2" },
  bootDiskSizeGb: { min: 20, max: 65536, fix: "Run: pulumi config set bootDiskSizeGb 50" },
  dataDiskSizeGb: { min: 10, max: 65536, fix: "Run: pulumi config set dataDiskSizeGb 200" },
  snapshotRetentionDays: {
    min: 0,
    max: 3650,
    fix: "Run: pulumi config set snapshotRetentionDays 7 (0 turns snapshots off)",
  },
  dashboardPort: {
    min: 1024,
    max: 65535,
    fix: `Run: pulumi config set dashboardPort ${DEFAULTS.dashboardPort} (a port from 1024 to 65535 that nothing else on the VM uses)`,
  },
  autoStopMinutes: {
    min: 0,
    max: AUTO_STOP_MAX,
    fix: `Run: pulumi config set autoStopMinutes ${DEFAULTS.autoStopMinutes} (0 turns auto-stop off)`,
  },
} as const;

function integerKey(get: Get, key: keyof typeof INTEGER_RULES): number {
  const { min, max, fix } = INTEGER_RULES[key];
  return parseInteger(key, get(key), DEFAULTS[key], min, max, fix);
}

/** The keys that take one of a fixed list of values. */
const ENUM_VALUES = {
  dataDiskType: DATA_DISK_TYPES,
  claudeCodeSource: CLAUDE_CODE_SOURCES,
  dockerSource: DOCKER_SOURCES,
  dockerMode: DOCKER_MODES,
  agentPermissionMode: PERMISSION_MODES,
  claudeProvider: CLAUDE_PROVIDERS,
  connectVia: CONNECT_VIA,
} as const;

function enumKey<K extends keyof typeof ENUM_VALUES>(
  get: Get,
  key: K,
): (typeof ENUM_VALUES)[K][number] {
  const allowed: readonly string[] = ENUM_VALUES[key];
  return parseEnum(key, get(key), allowed, DEFAULTS[key]) as (typeof ENUM_VALUES)[K][number];
}

/** The keys config-keys.ts declares `boolean`: their rule is the type alone. */
type BooleanKey = {
  [K in ConfigKey]: (typeof KEYS)[K]["type"] extends "boolean" ? K : never;
}[ConfigKey];

function booleanKey(get: Get, key: BooleanKey): boolean {
  return parseBoolean(key, get(key), KEYS[key].default);
}

/**
 * machineType; `machine`, its memory and vCPUs when the stack knows it (undefined for unknown
 * types); and `maxAgents`, the highest agentCount its memory allows (MAX_AGENTS_ANY_MACHINE when
 * unknown).
 */
function parseMachineType(get: Get, warnings: string[]) {
  const machineType = (get("machineType") ?? "").trim() || DEFAULTS.machineType;
  if (!MACHINE_TYPE_RE.test(machineType)) {
    throw new ConfigError(
      `machineType must be a Compute Engine machine type such as e2-standard-8; got ${show(machineType)}. Run: pulumi config set machineType e2-standard-8`,
    );
  }
  const machine: Machine | undefined = MACHINE_TYPES[machineType];
  if (!machine) {
    warnings.push(
      `machineType ${machineType} is not one the stack knows; agentCount is not checked against its memory (${PER_AGENT_GIB} GiB per agent plus ${RESERVED_GIB} GiB for the host is the budget).`,
    );
  }
  const maxAgents = machine ? maxAgentsFor(machine.memoryGib) : MAX_AGENTS_ANY_MACHINE;
  return { machineType, machine, maxAgents };
}

function parseImage(get: Get, warnings: string[]): string {
  const image = (get("image") ?? "").trim() || DEFAULTS.image;
  if (
    /^(https?:|projects\/)|\/global\/images\//.test(image) ||
    !/^[a-z][-a-z0-9]*\/[a-z][-a-z0-9]*$/.test(image)
  ) {
    throw new ConfigError(
      `image must be an image family as project/family, not a pinned image or self link (a pinned image replaces the VM on every release); got ${show(image)}. Run: pulumi config set image ${DEFAULTS.image}`,
    );
  }
  if (!/^ubuntu-os-cloud\//.test(image)) {
    warnings.push(
      `image ${image} is not an Ubuntu image: the VM must run cloud-init from the user-data metadata key (Debian's GCE images do not).`,
    );
  }
  return image;
}

/**
 * The ranges the SSH firewall rule admits. With connectVia iap the VM has no external address and
 * admits IAP's range alone, so any other range is refused (it would reach nothing).
 */
function parseSshSourceRanges(get: Get, warnings: string[], connectVia: ConnectVia): string[] {
  const ranges = parseStringList("sshSourceRanges", get("sshSourceRanges"), "203.0.113.7/32");
  const iapFix = `pulumi config set --path 'sshSourceRanges[0]' ${IAP_TCP_FORWARDING_RANGE}`;
  if (ranges === undefined) {
    throw new ConfigError(
      connectVia === "iap"
        ? `sshSourceRanges is required: with connectVia iap it is IAP's range. Run: ${iapFix}`
        : "sshSourceRanges is required: the networks allowed to reach SSH on the VM. Run: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32 (your address), or 35.235.240.0/20 for IAP.",
    );
  }
  if (connectVia === "iap") {
    const others = ranges.filter((r) => r !== IAP_TCP_FORWARDING_RANGE);
    if (others.length > 0 || ranges.length === 0) {
      throw new ConfigError(
        `sshSourceRanges is [${ranges.map(show).join(", ")}] but connectVia is iap: the VM has no external address, and its firewall admits SSH from IAP's ${IAP_TCP_FORWARDING_RANGE} only. Run: pulumi config rm sshSourceRanges && ${iapFix} (or pulumi config set connectVia public-ip to reach the VM at its address)`,
      );
    }
    return [IAP_TCP_FORWARDING_RANGE];
  }
  if (ranges.length === 0) {
    throw new ConfigError(
      "sshSourceRanges is an empty list; nobody could reach the VM. Run: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32",
    );
  }
  const seen = new Set<string>();
  for (const cidr of ranges) {
    const { prefix } = validateCidr("sshSourceRanges", cidr);
    if (seen.has(cidr)) {
      throw new ConfigError(`sshSourceRanges lists ${show(cidr)} twice. Remove the duplicate.`);
    }
    seen.add(cidr);
    if (prefix === 0) {
      warnings.push(
        "sshSourceRanges includes 0.0.0.0/0: SSH on the VM is open to the whole internet (key-only logins still apply). Prefer your own range or IAP's 35.235.240.0/20.",
      );
    } else if (prefix < 8) {
      warnings.push(
        `sshSourceRanges includes ${cidr}, more than 16 million addresses: SSH is open to a large part of the internet. Prefer your own range or IAP's 35.235.240.0/20.`,
      );
    }
  }
  return ranges;
}

function parseClaudeCodeVersion(get: Get): string {
  const claudeCodeVersion = (get("claudeCodeVersion") ?? "").trim() || DEFAULTS.claudeCodeVersion;
  if (!CLAUDE_CODE_VERSION_RE.test(claudeCodeVersion)) {
    throw new ConfigError(
      `claudeCodeVersion must be an exact release such as ${DEFAULT_CLAUDE_CODE_VERSION} (no ranges, no "latest": every agent runs one pinned version); got ${show(claudeCodeVersion)}. Run: pulumi config set claudeCodeVersion ${DEFAULT_CLAUDE_CODE_VERSION}`,
    );
  }
  return claudeCodeVersion;
}

function parseDockerMode(get: Get, warnings: string[]): DockerMode {
  const dockerMode = enumKey(get, "dockerMode");
  if (dockerMode === "shared") {
    warnings.push(
      "dockerMode is shared: every agent is in the docker group, which is root-equivalent (docker run -v /:/host gives any agent the whole VM, every other agent's files and the secrets). Use it only for privileged containers; the default rootless gives each agent its own Docker.",
    );
  }
  return dockerMode;
}

function parsePermissionMode(get: Get, warnings: string[]): PermissionMode {
  const agentPermissionMode = enumKey(get, "agentPermissionMode");
  if (agentPermissionMode === "bypassPermissions") {
    warnings.push(
      "agentPermissionMode is bypassPermissions: agents run every command without asking. They can still do anything their own user (and, with dockerMode shared, the docker group, which is root-equivalent) allows.",
    );
  }
  return agentPermissionMode;
}

function parseSshAuthorizedKeys(get: Get): string[] {
  const sshAuthorizedKeys =
    parseStringList(
      "sshAuthorizedKeys",
      get("sshAuthorizedKeys"),
      '"$(cat ~/.ssh/id_ed25519.pub)"',
    ) ?? [];
  for (const key of sshAuthorizedKeys) validateSshPublicKey("sshAuthorizedKeys", key);
  return sshAuthorizedKeys;
}

/** Whether the anthropicApiKey secret is set; only its shape is checked, and never echoed. */
function checkApiKey(apiKey: string | undefined): boolean {
  if (apiKey === undefined || apiKey === "") return false;
  if (/\s/.test(apiKey)) {
    throw new ConfigError(
      "anthropicApiKey contains whitespace (a pasted newline?). Set it again with: pulumi config set --secret anthropicApiKey <key>",
    );
  }
  if (!ANTHROPIC_KEY_RE.test(apiKey)) {
    throw new ConfigError(
      "anthropicApiKey does not look like an Anthropic API key or OAuth token (sk-ant- followed by at least 20 letters, digits, - or _). Set it again with: pulumi config set --secret anthropicApiKey <key>",
    );
  }
  return true;
}

/** Whether the deployPrivateKey secret is set; only its shape is checked, and never echoed. */
function checkDeployKey(deployKey: string | undefined): boolean {
  if (deployKey === undefined || deployKey === "") return false;
  if (!WHOLE_PRIVATE_KEY_RE.test(deployKey.trim())) {
    throw new ConfigError(
      "deployPrivateKey must be a whole PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY----- through -----END ... PRIVATE KEY-----). Set it with: pulumi config set --secret deployPrivateKey < ~/.ssh/agent-host-deploy, or unset it to let the stack generate one.",
    );
  }
  return true;
}

function parseGitUserName(raw: string | undefined): string | undefined {
  const gitUserName = optionalText(raw);
  if (
    gitUserName !== undefined &&
    // No control characters (a newline would add a host.conf line); git strips < and >.
    (/[\p{Cc}<>]/u.test(gitUserName) || gitUserName.length > 200)
  ) {
    throw new ConfigError(
      `gitUserName must be a name on one line, without < or > (at most 200 characters); got ${show(gitUserName)}. Run: pulumi config set gitUserName "Acme Agents"`,
    );
  }
  return gitUserName;
}

function parseGitUserEmail(raw: string | undefined): string | undefined {
  const gitUserEmail = optionalText(raw);
  if (
    gitUserEmail !== undefined &&
    (!/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/.test(
      gitUserEmail,
    ) ||
      gitUserEmail.length > 254)
  ) {
    throw new ConfigError(
      `gitUserEmail must be an email address such as agents@acme.example; got ${show(gitUserEmail)}. Run: pulumi config set gitUserEmail agents@acme.example`,
    );
  }
  return gitUserEmail;
}

function parseRepository(
  raw: string | undefined,
): { text: string; url: RepositoryUrl } | undefined {
  const text = optionalText(raw);
  return text === undefined ? undefined : { text, url: parseRepositoryUrl("repository", text) };
}

/** Sorted, without duplicates; a refused name's index is the one the user wrote. */
function parseExtraPackages(raw: string | undefined): string[] {
  const extraPackages = parseStringList("extraPackages", raw, "build-essential") ?? [
    ...DEFAULTS.extraPackages,
  ];
  for (const name of extraPackages) {
    if (!PACKAGE_NAME_RE.test(name)) {
      throw new ConfigError(
        `extraPackages has ${show(name)}, which is not a Debian/Ubuntu package name (lowercase letters, digits, + - . only; no spaces, versions or shell characters). Fix it with: pulumi config set --path 'extraPackages[${extraPackages.indexOf(name)}]' build-essential`,
      );
    }
  }
  return [...new Set(extraPackages)].sort();
}

/**
 * claudeEnv: NAME=value pairs for every claude, by the host's own rule for it
 * (shared-rules.ts claudeEnvProblem), and never a credential: host.conf is world-readable.
 */
function parseClaudeEnv(raw: string | undefined): string[] {
  const pairs = parseStringList("claudeEnv", raw, "HTTPS_PROXY=http://proxy:3128") ?? [];
  const fix =
    "Fix it with: pulumi config set --path 'claudeEnv[0]' HTTPS_PROXY=http://proxy:3128 (a key or token goes in anthropicApiKey)";
  const bad = claudeEnvProblem(pairs);
  if (bad) throw new ConfigError(`claudeEnv has ${show(bad.pair)}, which ${bad.problem}. ${fix}`);
  const secrets = pairs.filter((pair) => secretShapesIn(pair).length > 0);
  if (secrets.length > 0) {
    const name = secrets[0].split("=")[0];
    throw new ConfigError(
      `claudeEnv's ${name} holds what looks like a credential (${secretShapesIn(secrets[0]).join(", ")}); claudeEnv lands in plain host.conf, so it takes no secret. Remove it: a key or token goes in anthropicApiKey (a secret). ${fix}`,
    );
  }
  return pairs;
}

const SET_GIT_CREDENTIALS_AGAIN =
  "Set it again with: pulumi config set --secret gitCredentials <token> (or < ~/.ssh/deploy-key for an SSH key)";

/** What the gitCredentials secret is, by its shape alone; its value is never echoed. */
function parseGitCredentials(
  raw: string | undefined,
): { kind: "ssh-key" } | { kind: "token"; token: string } | undefined {
  if (raw === undefined || raw === "") return undefined;
  if (PRIVATE_KEY_BEGIN_RE.test(raw.trim())) {
    if (!PRIVATE_KEY_END_RE.test(raw)) {
      throw new ConfigError(
        `gitCredentials starts like a private key but has no END line (cut off?). ${SET_GIT_CREDENTIALS_AGAIN}`,
      );
    }
    return { kind: "ssh-key" };
  }
  if (/\s/.test(raw)) {
    throw new ConfigError(
      `gitCredentials contains whitespace (a pasted newline, or a public key?); it must be a token, user:token, or an SSH private key. ${SET_GIT_CREDENTIALS_AGAIN}`,
    );
  }
  if (!/^[\x21-\x7e]{8,2048}$/.test(raw)) {
    throw new ConfigError(
      `gitCredentials must be a token of 8 to 2048 printable characters, user:token, or an SSH private key. ${SET_GIT_CREDENTIALS_AGAIN}`,
    );
  }
  return { kind: "token", token: raw.slice(raw.indexOf(":") + 1) };
}

function parseAutoStopMinutes(get: Get): number {
  const autoStopMinutes = integerKey(get, "autoStopMinutes");
  if (autoStopMinutes > 0 && autoStopMinutes < AUTO_STOP_MIN) {
    throw new ConfigError(
      `autoStopMinutes must be 0 (off) or between ${AUTO_STOP_MIN} and ${AUTO_STOP_MAX}; got ${autoStopMinutes}: a dropped SSH connection would stop the VM under a person. Run: pulumi config set autoStopMinutes ${AUTO_STOP_MIN}`,
    );
  }
  return autoStopMinutes;
}

function checkAgentCountFitsMachine(keys: KeyValues): void {
  const { agentCount, maxAgents, machine, machineType, hostAgentCounts } = keys;
  const key = hostAgentCounts ? "hostAgentCounts" : "agentCount";
  const counts = hostAgentCounts ?? [agentCount];
  const over = counts.find((count) => count > maxAgents);
  if (over === undefined) return;
  const each = hostAgentCounts ? "each of hostAgentCounts" : "agentCount";
  throw new ConfigError(
    machine
      ? `${each} must be between 1 and ${maxAgents} for ${machineType} (${machine.memoryGib} GiB, ${PER_AGENT_GIB} GiB per agent after ${RESERVED_GIB} GiB for the host); got ${over}. Lower ${key} or pick a larger machineType.`
      : `${each} must be between 1 and ${MAX_AGENTS_ANY_MACHINE}; got ${over}. Lower ${key}.`,
  );
}

/** Agents on host `index` (1-based): its hostAgentCounts entry, else agentCount. */
export function agentCountOf(
  config: Pick<StackConfig, "agentCount" | "hostAgentCounts">,
  index: number,
): number {
  return config.hostAgentCounts?.[index - 1] ?? config.agentCount;
}

/** "12,4,8" → [12, 4, 8]; "" → undefined. Each a whole number of at least 1. */
function parseHostAgentCounts(raw: string | undefined): number[] | undefined {
  if (raw === undefined || raw.trim() === "") return undefined;
  const fix =
    "Run: pulumi config set hostAgentCounts 12,4 (one number per host), or pulumi config rm hostAgentCounts";
  return raw.split(",").map((part) => {
    const text = part.trim();
    if (!WHOLE_NUMBER_RE.test(text) || Number(text) < 1) {
      throw new ConfigError(
        `hostAgentCounts must be whole numbers of at least 1, comma-separated; got ${show(raw)} (${show(text)} is not). ${fix}`,
      );
    }
    return Number(text);
  });
}

/** hostAgentCounts has one number per host. */
function checkHostAgentCounts(keys: KeyValues): void {
  const { hostAgentCounts, hostCount } = keys;
  if (!hostAgentCounts || hostAgentCounts.length === hostCount) return;
  throw new ConfigError(
    `hostAgentCounts ${show(hostAgentCounts.join(","))} has ${hostAgentCounts.length} number${hostAgentCounts.length === 1 ? "" : "s"} but hostCount is ${hostCount}; it needs one per host. Run: pulumi config set hostAgentCounts ${Array.from({ length: hostCount }, (_, i) => hostAgentCounts[i] ?? keys.agentCount).join(",")} (or pulumi config rm hostAgentCounts)`,
  );
}

function checkGitIdentity(gitUserName?: string, gitUserEmail?: string): void {
  if ((gitUserName === undefined) === (gitUserEmail === undefined)) return;
  const missing = gitUserName === undefined ? "gitUserName" : "gitUserEmail";
  throw new ConfigError(
    `${missing} is not set but ${missing === "gitUserName" ? "gitUserEmail" : "gitUserName"} is; the agents' commits need both. Run: pulumi config set ${missing} ${missing === "gitUserName" ? '"Acme Agents"' : "agents@acme.example"}`,
  );
}

/**
 * The host an HTTPS token is for (a token is only ever sent to that host): the repository's, or
 * github.com for a GitHub token. Refuses credentials of the wrong kind for the repository's URL.
 */
function gitCredentialHostFor(
  credentials: KeyValues["gitCredentials"],
  repository: KeyValues["repository"],
): string | undefined {
  if (credentials === undefined) return undefined;
  if (credentials.kind === "ssh-key") {
    if (repository?.url.scheme === "https") {
      throw new ConfigError(
        `gitCredentials is an SSH private key but repository is an HTTPS URL (${show(repository.text)}). Use the repository's SSH URL (git@host:path.git), or put an HTTPS token in gitCredentials.`,
      );
    }
    return undefined;
  }
  if (repository?.url.scheme === "ssh") {
    throw new ConfigError(
      `gitCredentials is a token but repository is an SSH URL (${show(repository.text)}). Use the repository's https:// URL, or put an SSH private key in gitCredentials.`,
    );
  }
  if (repository !== undefined) return repository.url.host;
  if (GITHUB_TOKEN_RE.test(credentials.token)) return "github.com";
  throw new ConfigError(
    `gitCredentials is a token that is not GitHub's, and repository is not set, so the host it is for is unknown (a token is only ever sent to that host). Run: pulumi config set repository ${REPOSITORY_EXAMPLE}`,
  );
}

function refuseUnknownKeys(raw: RawConfig): void {
  for (const fullKey of Object.keys(raw)) {
    const [namespace, key] = fullKey.split(":", 2);
    if (namespace === "agent-host" && !(KNOWN_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(
        `agent-host:${key} is not a configuration key of this stack (a typo?). Known keys: ${KNOWN_KEYS.join(", ")}. Remove it with: pulumi config rm ${key}`,
      );
    }
  }
}

/**
 * The notification webhook (a secret: a Slack webhook or an ntfy topic URL is itself the
 * credential). Only its shape is described in an error, never its value. HTTPS only: the messages
 * name the agents, their commands and the VM.
 */
export function parseNotifyWebhook(raw: string | undefined): WebhookKind | undefined {
  if (raw === undefined || raw === "") return undefined;
  const fix =
    "Set it again with: pulumi config set --secret notifyWebhookUrl https://hooks.slack.com/services/... (Slack), https://ntfy.sh/<topic> (ntfy), or any https:// URL (JSON body); prefix slack:, ntfy: or json: to choose the format for another host";
  if (/\s/.test(raw.trim()) || raw.trim() === "") {
    throw new ConfigError(
      `notifyWebhookUrl contains whitespace (a pasted newline or space?); its value is not shown (a secret). ${fix}`,
    );
  }
  const hook = parseWebhook(raw);
  if (!hook || hook.url.protocol !== "https:" || !hook.url.hostname) {
    throw new ConfigError(
      `notifyWebhookUrl must be an https:// URL, optionally prefixed slack:, ntfy: or json:; got a value that is not (not shown: it is a secret). ${fix}`,
    );
  }
  return hook.kind;
}

/** Where the agents' Claude runs and how it signs in; what host.conf's CLAUDE_* keys carry. */
export interface ClaudeSettings {
  provider: ClaudeProvider;
  /** Vertex only: the project the requests go to and bill to (the stack's gcp:project). */
  vertexProjectId?: string;
  /** Vertex only: CLOUD_ML_REGION, one of VERTEX_CLAUDE_REGIONS. */
  vertexRegion?: string;
  /** ANTHROPIC_MODEL for every agent; undefined: Claude Code's default model. */
  model?: string;
  /** Anthropic only: an LLM gateway in front of Anthropic's API (no trailing slash). */
  anthropicBaseUrl?: string;
  /** Vertex only: a Vertex endpoint other than Google's public one, e.g. Private Service Connect. */
  vertexBaseUrl?: string;
}

/** Model IDs and aliases: Anthropic's (claude-sonnet-4-5-20250929), Vertex's (…@20250929), sonnet[1m]. */
const MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._:@[\]-]{0,127}$/;
/** An Anthropic API model ID ends in -YYYYMMDD; Vertex writes the same model …@YYYYMMDD. */
const DATED_ANTHROPIC_MODEL_RE = /^(claude-[a-z0-9.-]+)-(\d{8})$/;
const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"];

/**
 * A base URL the agents send every request to. It lands in host.conf and in each agent's
 * environment, which are not secret: whatever could be a credential (user info, a query string,
 * a key's shape) is refused without echoing the value. https only, except a gateway on the VM
 * itself (loopback).
 */
export function parseEndpointUrl(key: string, raw: string | undefined): string | undefined {
  const value = optionalText(raw);
  if (value === undefined) return undefined;
  const unset = `Run: pulumi config rm ${key}`;
  const keyHint =
    key === "vertexBaseUrl"
      ? "let the VM's service account sign in (Vertex AI needs no key)"
      : "put a key in anthropicApiKey (pulumi config set --secret anthropicApiKey <key>)";
  const example =
    key === "vertexBaseUrl"
      ? "https://us-east5-aiplatform.googleapis.com/v1"
      : "https://llm-gateway.example.com/anthropic";
  // Whatever holds @, ? or # may hold a credential in any position: never echo it.
  const shown = /[@?#]/.test(value) ? "a value with @, ? or # (not shown)" : show(value);
  // Checked on the raw text first: URL parsing would keep it, but the message must not show it.
  if (secretShapesIn(value).length > 0) {
    throw new ConfigError(
      `${key} holds text shaped like a credential (not shown); it is written in plain text to the VM. Give the URL only and ${keyHint}. ${unset}, then: pulumi config set ${key} ${example}`,
    );
  }
  if (/[\s"'\\`$]/.test(value)) {
    throw new ConfigError(
      `${key} must be a URL without spaces, quotes, backslashes or $; got ${shown}. Run: pulumi config set ${key} ${example}`,
    );
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(
      `${key} must be an absolute URL such as ${example}; got ${shown}. Run: pulumi config set ${key} ${example}`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new ConfigError(
      `${key} must not carry credentials in the URL; got a URL with user info (not shown). It is written in plain text to the VM: give the URL without user@ (pulumi config set ${key} ${example}) and ${keyHint}.`,
    );
  }
  if (url.search !== "" || url.hash !== "" || /[?#]/.test(value)) {
    throw new ConfigError(
      `${key} must not have a query string or fragment (they can carry keys, and Claude Code appends its own path); got a URL with ? or # (not shown). Run: pulumi config set ${key} ${example}`,
    );
  }
  const loopback = LOOPBACK_HOSTS.includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    throw new ConfigError(
      `${key} must use https:// (plain http only for a gateway on the VM itself, 127.0.0.1 or localhost); got ${shown}. Run: pulumi config set ${key} ${example}`,
    );
  }
  return value.replace(/\/+$/, "");
}

/** The Claude keys, each by its own rule; claudeAcrossKeys applies the rules between them. */
function parseClaudeKeys(get: Get) {
  const provider = enumKey(get, "claudeProvider");
  // A key pasted into the wrong setting would land in plain host.conf, or in an error message.
  for (const key of ["vertexRegion", "claudeModel"] as const) {
    if (secretShapesIn(get(key) ?? "").length > 0) {
      throw new ConfigError(
        `${key} holds text shaped like a credential (not shown); it is a plain setting, written to the VM as is. Run: pulumi config rm ${key}, and put a key in anthropicApiKey (pulumi config set --secret anthropicApiKey <key>)`,
      );
    }
  }
  const region = optionalText(get("vertexRegion")) ?? DEFAULTS.vertexRegion;
  if (!(VERTEX_CLAUDE_REGIONS as readonly string[]).includes(region)) {
    throw new ConfigError(
      `vertexRegion must be a Vertex AI location that serves Claude (${VERTEX_CLAUDE_REGIONS.join(", ")}); got ${show(region)}. Run: pulumi config set vertexRegion ${DEFAULTS.vertexRegion}`,
    );
  }
  const anthropicBaseUrl = parseEndpointUrl("anthropicBaseUrl", get("anthropicBaseUrl"));
  const vertexBaseUrl = parseEndpointUrl("vertexBaseUrl", get("vertexBaseUrl"));
  const model = optionalText(get("claudeModel"));
  if (model !== undefined && !MODEL_RE.test(model)) {
    throw new ConfigError(
      `claudeModel must be a Claude model ID or alias (letters, digits and . _ - : @ [ ], at most 128 characters), e.g. sonnet, claude-sonnet-4-5-20250929, or on Vertex AI claude-sonnet-4-5@20250929; got ${show(model)}. Run: pulumi config set claudeModel sonnet (or pulumi config rm claudeModel for Claude Code's default)`,
    );
  }
  return { provider, region, anthropicBaseUrl, vertexBaseUrl, model };
}

/**
 * How the agents reach Claude: the provider, its region or base URL, the model, and the rules
 * between them and anthropicApiKey. Throws ConfigError naming the keys and the fix.
 */
function claudeAcrossKeys(
  keys: ReturnType<typeof parseClaudeKeys>,
  context: { project: string; hasApiKey: boolean },
  warnings: string[],
): ClaudeSettings {
  const { provider, region, anthropicBaseUrl, vertexBaseUrl, model } = keys;
  if (provider === "vertex") {
    checkVertexKeys(keys, context.hasApiKey, warnings);
    return {
      provider,
      vertexProjectId: context.project,
      vertexRegion: region,
      model,
      vertexBaseUrl,
    };
  }
  if (vertexBaseUrl !== undefined) {
    throw new ConfigError(
      `vertexBaseUrl is set (${show(vertexBaseUrl)}) but claudeProvider is anthropic. Run: pulumi config set claudeProvider vertex to use Vertex AI, or pulumi config rm vertexBaseUrl (a gateway in front of Anthropic's API goes in anthropicBaseUrl)`,
    );
  }
  if (model !== undefined && model.includes("@") && anthropicBaseUrl === undefined) {
    throw new ConfigError(
      `claudeModel ${show(model)} is a Vertex AI model ID (version after @), which Anthropic's API does not serve. Run: pulumi config set claudeModel ${model.replace("@", "-")} (or pulumi config set claudeProvider vertex)`,
    );
  }
  return { provider, model, anthropicBaseUrl };
}

/** With claudeProvider vertex: no Anthropic key or gateway, and a model ID Vertex serves. */
function checkVertexKeys(
  keys: ReturnType<typeof parseClaudeKeys>,
  hasApiKey: boolean,
  warnings: string[],
): void {
  const { anthropicBaseUrl, vertexBaseUrl, model } = keys;
  if (hasApiKey) {
    throw new ConfigError(
      "anthropicApiKey is set but claudeProvider is vertex: on Vertex AI every agent signs in with the VM's service account, and the key would sit on the VM unused. Remove it with: pulumi config rm anthropicApiKey (or keep it and run: pulumi config set claudeProvider anthropic)",
    );
  }
  if (anthropicBaseUrl !== undefined) {
    throw new ConfigError(
      `anthropicBaseUrl is set (${show(anthropicBaseUrl)}) but claudeProvider is vertex, which never calls Anthropic's API. For another Vertex endpoint (e.g. Private Service Connect) use vertexBaseUrl. Run: pulumi config rm anthropicBaseUrl`,
    );
  }
  const dated = model === undefined ? null : DATED_ANTHROPIC_MODEL_RE.exec(model);
  if (dated && vertexBaseUrl === undefined) {
    throw new ConfigError(
      `claudeModel ${show(model as string)} is an Anthropic API model ID, which Vertex AI does not serve (it writes the version after @). Run: pulumi config set claudeModel ${dated[1]}@${dated[2]}`,
    );
  }
  if (vertexBaseUrl !== undefined && !/\/v1(beta1)?$/.test(vertexBaseUrl)) {
    warnings.push(
      `vertexBaseUrl ${vertexBaseUrl} does not end in /v1: Claude Code appends /projects/<project>/locations/<region>/publishers/anthropic/models/<model>:streamRawPredict to it, and Vertex's paths start with /v1.`,
    );
  }
}

/** GCE names this stack gives its resources, derived from the project and stack names. */
export interface ResourceNames {
  instance: string;
  dataDisk: string;
  serviceAccountId: string;
}

/**
 * Names are a contract: a renamed VM or disk is a new VM or disk. GCE wants
 * `[a-z]([-a-z0-9]*[a-z0-9])?`, the VM name at most 63 characters (we keep 50 so the `-data`,
 * `-snapshots` suffixes fit), service account IDs 6-30.
 */
export function resourceNames(project: string, stack: string): ResourceNames {
  const clean = (text: string) =>
    text
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "");
  const stackPart = clean(stack);
  const instance = `${clean(project)}-${stackPart}`;
  if (!stackPart || !/^[a-z]/.test(instance) || instance.length > 50) {
    throw new ConfigError(
      `The stack name ${show(stack)} gives the VM name ${show(instance)}, which GCE refuses (lowercase letters, digits and hyphens, starting with a letter, at most 50 characters here). Pick a shorter stack name: pulumi stack init dev`,
    );
  }
  const serviceAccountId = `ah-${stackPart}`.slice(0, 30).replace(/-+$/, "").padEnd(6, "x");
  return { instance, dataDisk: `${instance}-data`, serviceAccountId };
}

/** What the project already has under the data disk's name. */
export interface ExistingDisk {
  sizeGb: number;
  type: string;
}

/**
 * Refuses a data disk change that GCE can only make by recreating the disk, empty: a smaller
 * size or another type. The disk holds every workspace and conversation.
 */
export function checkDataDisk(
  config: Pick<StackConfig, "dataDiskSizeGb" | "dataDiskType">,
  existing: ExistingDisk | undefined,
): void {
  if (existing === undefined) return;
  if (config.dataDiskSizeGb < existing.sizeGb) {
    throw new ConfigError(
      `dataDiskSizeGb is ${config.dataDiskSizeGb} but the data disk already has ${existing.sizeGb} GB; a disk cannot shrink (it would be recreated, empty). Run: pulumi config set dataDiskSizeGb ${existing.sizeGb}`,
    );
  }
  if (config.dataDiskType !== existing.type) {
    throw new ConfigError(
      `dataDiskType is ${config.dataDiskType} but the data disk is ${existing.type}; changing the type recreates the disk, empty. Run: pulumi config set dataDiskType ${existing.type} (to move, snapshot the disk and restore it into a new stack)`,
    );
  }
}

/** One host of the stack: its label, its Pulumi resource name prefix and its GCE names. */
export interface HostNames extends ResourceNames {
  /** 1-based. */
  index: number;
  /** How outputs and `npm run agents` name it: host-1, host-2, … */
  label: string;
  /** The Pulumi name of its components, and the prefix of their children's names. */
  resource: string;
}

/**
 * The names of hosts 1..hostCount. Host 1 keeps exactly the one-host stack's names (URNs and GCE
 * names), so an existing stack upgrades with nothing replaced; host N adds `-N` to each. Every
 * name must stay one GCE accepts, and no two hosts may share one (a 30-character service account
 * ID is cut before its suffix).
 */
export function hostNamesFor(names: ResourceNames, hostCount: number): HostNames[] {
  const hosts: HostNames[] = [];
  for (let index = 1; index <= hostCount; index++) {
    if (index === 1) {
      hosts.push({ ...names, index, label: "host-1", resource: "agent-host" });
      continue;
    }
    const suffix = `-${index}`;
    const instance = `${names.instance}${suffix}`;
    if (instance.length > 50) {
      throw new ConfigError(
        `hostCount ${hostCount} names a VM ${show(instance)}, longer than the 50 characters GCE's names leave room for here. Lower hostCount or pick a shorter stack name: pulumi stack init dev`,
      );
    }
    const serviceAccountId = `${names.serviceAccountId.slice(0, 30 - suffix.length).replace(/-+$/, "")}${suffix}`;
    hosts.push({
      index,
      label: `host-${index}`,
      resource: `agent-host${suffix}`,
      instance,
      dataDisk: `${instance}-data`,
      serviceAccountId,
    });
  }
  const accounts = hosts.map((h) => h.serviceAccountId);
  const clash = accounts.find((id, i) => accounts.indexOf(id) !== i);
  if (clash !== undefined) {
    throw new ConfigError(
      `hostCount ${hostCount} gives two hosts the service account ID ${show(clash)} (IDs are cut at 30 characters). Pick a shorter stack name: pulumi stack init dev`,
    );
  }
  return hosts;
}
