// What the host needs to know, derived from the stack config, and the one place that writes it
// as /etc/agent-host/host.conf (KEY=value lines the host scripts parse, never source). Used by
// the renderer at first boot and by the fleet's reconcile command on every deploy. Pure.
import { PER_AGENT_GIB, RESERVED_GIB, type StackConfig } from "../config";
import { CONFIG_KEY_TABLE, type ConfigKeySpec } from "../config-keys";
import { DEFAULT_CONFIG, HOST_KEYS } from "../host/conf/conf";

// The users, the data device and the secret's path are the host's own defaults (host/conf/conf.ts):
// the stack writes them out and names them in user-data and in the fleet's SSH login.
export const ADMIN_USER_NAME = HOST_KEYS.ADMIN_USER.default;
export const AGENT_USER_PREFIX = HOST_KEYS.AGENT_USER.default;
// Agent N's user (AGENT_USER-N, uid = gid = the uid base + N) is made by agentctl reconcile,
// not by user-data, which must not change with agentCount: host/agents/agent-user.ts.
/** GCE shows the data disk as /dev/disk/by-id/google-<deviceName>. */
export const DATA_DEVICE_NAME = "workspaces";
export const HOST_CONF_PATH = DEFAULT_CONFIG;
export const API_KEY_PATH = HOST_KEYS.API_KEY_FILE.default;

export interface HostSettings {
  agentCount: number;
  /** Highest count the host accepts (agentctl refuses more). */
  agentMax: number;
  claudeCodeSource: StackConfig["claudeCodeSource"];
  dockerSource: StackConfig["dockerSource"];
  dockerMode: StackConfig["dockerMode"];
  /** systemd MemoryMax of each agent's scope, MiB. */
  agentMemoryMaxMb: number;
  /** systemd CPUQuota of each agent's scope, percent of one CPU. */
  agentCpuQuotaPercent: number;
  /** MemoryMax of agents.slice (all agents together), MiB; undefined = no slice limit. */
  agentsMemoryMaxMb?: number;
  /** Public keys allowed to log in as the admin user (the deploy key first). */
  adminAuthorizedKeys: string[];
  /** host[:port] the HTTPS token in gitCredentials is for (its credential-store scope). */
  gitCredentialHost?: string;
  /** Debian/Ubuntu packages every agent gets (cloud-init installs them at first boot). */
  extraPackages: string[];
  /** host.conf lines of the config keys declared with `host` in config-keys.ts, in table order. */
  fromTable: [string, string | undefined][];
  /** Quiet time before the VM powers itself off (autoStopMinutes × 60); 0 = never. */
  autoStopSeconds: number;
  /** Where the agents' Claude runs and how it signs in (no secret: the key travels apart). */
  claude: StackConfig["claude"];
}

/** A parsed config value as host.conf holds it; undefined = no line. */
function hostValue(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.join(" ") || undefined;
  if (value === undefined || value === "") return undefined;
  return String(value);
}

/** The lines of the keys config-keys.ts sends to the host as they are (their `host` attribute). */
function tableLines(config: StackConfig): [string, string | undefined][] {
  return Object.entries(CONFIG_KEY_TABLE).flatMap(([key, spec]: [string, ConfigKeySpec]) =>
    spec.host ? [[spec.host, hostValue(config[key as keyof StackConfig])]] : [],
  );
}

/**
 * Sizes the per-agent limits from the machine: the memory left after the host's reserve is
 * shared evenly (never below PER_AGENT_GIB), and each agent may burst to twice its even share of
 * the CPUs, at least one full CPU. Unknown machine types get fixed, generous limits.
 */
export function hostSettingsFor(config: StackConfig, adminAuthorizedKeys: string[]): HostSettings {
  const { machine, agentCount } = config;
  const usableMb = machine ? Math.floor((machine.memoryGib - RESERVED_GIB) * 1024) : undefined;
  const perAgentFloorMb = Math.floor(PER_AGENT_GIB * 1024);
  return {
    agentCount,
    agentMax: config.maxAgents,
    claudeCodeSource: config.claudeCodeSource,
    dockerSource: config.dockerSource,
    dockerMode: config.dockerMode,
    agentMemoryMaxMb: usableMb
      ? Math.max(perAgentFloorMb, Math.floor(usableMb / agentCount))
      : 2 * perAgentFloorMb,
    agentCpuQuotaPercent: machine
      ? Math.max(100, Math.floor((machine.vcpus * 200) / agentCount))
      : 200,
    agentsMemoryMaxMb: usableMb,
    adminAuthorizedKeys,
    gitCredentialHost: config.gitCredentialHost,
    extraPackages: config.extraPackages,
    fromTable: tableLines(config),
    autoStopSeconds: config.autoStopMinutes * 60,
    claude: config.claude,
  };
}

/**
 * host.conf keys whose values follow agentCount. They reach the VM only through the fleet's
 * reconcile command, never through user-data: the VM's user-data must not change with the count,
 * or a count change would update the VM (see docs/architecture.md).
 */
export const COUNT_DERIVED_KEYS = ["AGENT_COUNT", "AGENT_MEMORY_MAX_MB", "AGENT_CPU_QUOTA_PERCENT"];

function hostConfLines(settings: HostSettings): [string, string | number | undefined][] {
  return [
    ["AGENT_COUNT", settings.agentCount],
    ["AGENT_MAX", settings.agentMax],
    ["AGENT_USER", AGENT_USER_PREFIX],
    ["ADMIN_USER", ADMIN_USER_NAME],
    ["AGENT_MEMORY_MAX_MB", settings.agentMemoryMaxMb],
    ["AGENT_CPU_QUOTA_PERCENT", settings.agentCpuQuotaPercent],
    ["AGENTS_MEMORY_MAX_MB", settings.agentsMemoryMaxMb],
    ["DATA_DEVICE", `/dev/disk/by-id/google-${DATA_DEVICE_NAME}`],
    ["API_KEY_FILE", API_KEY_PATH],
    ["GIT_CREDENTIAL_HOST", settings.gitCredentialHost],
    ["AUTO_STOP_SECONDS", settings.autoStopSeconds],
    ["CLAUDE_PROVIDER", settings.claude.provider],
    ["VERTEX_PROJECT_ID", settings.claude.vertexProjectId],
    ["VERTEX_REGION", settings.claude.vertexRegion],
    ["CLAUDE_MODEL", settings.claude.model],
    ["ANTHROPIC_BASE_URL", settings.claude.anthropicBaseUrl],
    ["VERTEX_BASE_URL", settings.claude.vertexBaseUrl],
    ...settings.fromTable,
  ];
}

function formatHostConf(lines: [string, string | number | undefined][]): string {
  const body = lines
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${value}`)
    .join("\n");
  return `# Written by agent-host (pulumi up). Parsed by the host scripts, never sourced.\n${body}\n`;
}

/** The host config file's text, as the reconcile command installs it. Deterministic. */
export function renderHostConf(settings: HostSettings): string {
  return formatHostConf(hostConfLines(settings));
}

/**
 * The host.conf a VM boots with (in user-data): everything but COUNT_DERIVED_KEYS. Until the
 * reconcile command installs the full file, agentctl's defaults apply (one agent, default
 * limits); the reconcile command runs right after every first boot and brings the count.
 */
export function renderBootHostConf(settings: HostSettings): string {
  return formatHostConf(
    hostConfLines(settings).filter(([key]) => !COUNT_DERIVED_KEYS.includes(key)),
  );
}
