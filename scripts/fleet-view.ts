// The laptop's view of every host of a stack (`npm run agents`): the pure part. It reads the
// stack's `hosts` output, builds the known_hosts file from the host keys the deploy pinned, the
// ssh argv of each call (pinned key, strict checking, bounded connect and keepalive), parses
// `host-2/agent-3`, and merges every host's `agentctl status --json` into one table with a HOST
// column, the agents that need the lead first. scripts/agents.ts runs the processes.
import { alignColumns, COLUMNS as STATUS_COLUMNS, type StatusRow } from "../host/attention/status";

/** One host as `pulumi stack output --json` gives it in `hosts` (index.ts, hostOutput). */
export interface FleetHost {
  /** host-1, host-2, … */
  name: string;
  /** The GCE name: the key the pinned host key is filed under (HostKeyAlias). */
  instanceName: string;
  /** The static external address; null when the host is reached through IAP only. */
  address: string | null;
  user: string;
  identityFile: string;
  zone?: string;
  project?: string;
  /** The SSH host key the deploy pinned ("type base64"); no key, no connection. */
  sshHostKey?: string;
}

export class FleetError extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** The hosts of `pulumi stack output --json`; refuses outputs it cannot use, saying why. */
export function hostsFromOutputs(outputs: unknown): FleetHost[] {
  if (!isObject(outputs) || !Array.isArray(outputs.hosts)) {
    throw new FleetError(
      "the stack outputs have no `hosts` list: deploy this release first (npm run deploy), then run this again",
    );
  }
  return outputs.hosts.map((entry, i) => {
    const where = `hosts[${i}]`;
    if (!isObject(entry)) throw new FleetError(`${where} is not an object`);
    const text = (key: string, required = true): string | undefined => {
      const value = entry[key];
      if (value === undefined || value === null) {
        if (required) throw new FleetError(`${where} has no ${key}`);
        return undefined;
      }
      if (typeof value !== "string" || value.trim() === "") {
        throw new FleetError(`${where}.${key} is not a text: ${JSON.stringify(value)}`);
      }
      if (key !== "sshHostKey" && /\s/.test(value.trim())) {
        throw new FleetError(`${where}.${key} is not a single word: ${JSON.stringify(value)}`);
      }
      return value.trim();
    };
    const host: FleetHost = {
      name: text("name")!,
      instanceName: text("instanceName")!,
      address: text("address", false) ?? null,
      user: text("user")!,
      identityFile: text("identityFile")!,
      zone: text("zone", false),
      project: text("project", false),
      sshHostKey: text("sshHostKey", false),
    };
    if (!/^[a-z][a-z0-9-]*$/.test(host.name) || !/^[a-z][a-z0-9-]*$/.test(host.instanceName)) {
      throw new FleetError(`${where}: unexpected name ${JSON.stringify(host.name)}`);
    }
    if (
      host.sshHostKey !== undefined &&
      !/^(ssh|ecdsa)-[a-z0-9-]+ [A-Za-z0-9+/=]+$/.test(host.sshHostKey)
    ) {
      throw new FleetError(`${where}.sshHostKey is not an OpenSSH public key ("type base64")`);
    }
    return host;
  });
}

/**
 * The known_hosts text: each pinned key filed under its host's instance name, which every call
 * names as HostKeyAlias; a host without a pinned key has no line, so ssh refuses it.
 */
export function knownHostsText(hosts: readonly FleetHost[]): string {
  return hosts
    .filter((h) => h.sshHostKey)
    .map((h) => `${h.instanceName} ${h.sshHostKey}\n`)
    .join("");
}

export interface SshOptions {
  /** The known_hosts file built from knownHostsText. */
  knownHostsFile: string;
  /** Seconds for TCP connect and the SSH handshake (ConnectTimeout). */
  connectTimeoutSeconds: number;
  /** Allocate a terminal (attach). */
  tty?: boolean;
  /** The laptop's `~`, to expand identityFile. */
  home: string;
}

/** ProxyCommand for a host without an address: an IAP tunnel to its port 22. */
export function iapProxyCommand(host: FleetHost): string {
  if (!host.zone || !host.project) {
    throw new FleetError(`${host.name} has no address and no zone/project to tunnel to`);
  }
  return `gcloud compute start-iap-tunnel ${host.instanceName} 22 --listen-on-stdin --zone ${host.zone} --project ${host.project} --verbosity=warning`;
}

/**
 * ssh's argv for one call: the pinned key only (HostKeyAlias, our known_hosts file, no global
 * one, StrictHostKeyChecking=yes, nothing written back), the deploy's identity only, no
 * prompts, and every wait bounded (ConnectTimeout; ServerAlive ends a silent session).
 */
export function sshArgv(host: FleetHost, options: SshOptions, remote: readonly string[]): string[] {
  if (!host.sshHostKey) {
    throw new FleetError(
      `${host.name} has no pinned SSH host key in the stack outputs, so it cannot be told from an impostor; run pulumi up with a release that pins it`,
    );
  }
  const identity = host.identityFile.replace(/^~(?=\/)/, options.home);
  const argv = [
    ...(options.tty ? ["-t"] : ["-T"]),
    "-i",
    identity,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${options.knownHostsFile}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    `HostKeyAlias=${host.instanceName}`,
    "-o",
    "UpdateHostKeys=no",
    "-o",
    `ConnectTimeout=${options.connectTimeoutSeconds}`,
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=2",
    "-o",
    "LogLevel=ERROR",
  ];
  if (host.address === null) argv.push("-o", `ProxyCommand=${iapProxyCommand(host)}`);
  // The remote words are this module's own (sudo agentctl …, a number): none starts with "-".
  argv.push("-l", host.user, host.address ?? host.instanceName, ...remote);
  return argv;
}

/** `host-2/agent-3` or `host-2/3` → the host and the agent number. */
export function parseTarget(
  text: string | undefined,
  hosts: readonly FleetHost[],
): { host: FleetHost; agent: number } {
  const match = /^([a-z][a-z0-9-]*)\/(?:agent-)?([1-9][0-9]*)$/.exec(text ?? "");
  if (!match) {
    throw new FleetError(
      `which agent? Give it as HOST/agent-N, e.g. host-2/agent-3 (hosts: ${hosts.map((h) => h.name).join(", ")})`,
    );
  }
  const host = hosts.find((h) => h.name === match[1]);
  if (!host) {
    throw new FleetError(
      `no host ${match[1]} in this stack (hosts: ${hosts.map((h) => h.name).join(", ")})`,
    );
  }
  return { host, agent: Number(match[2]) };
}

/** A fault the host reports about itself (agentctl status --json's host.problems). */
export interface HostProblem {
  level: string;
  kind: string;
  message: string;
}

/** What one host answered: its rows and problems, or why it could not. */
export type HostStatus =
  | { host: FleetHost; rows: StatusRow[]; problems: HostProblem[] }
  | { host: FleetHost; error: string };

/**
 * `agentctl status --json`'s stdout: `{"host":{"healthy":…,"problems":[…]},"agents":[…]}`, or the
 * bare list of agents an older host prints. Throws on anything else.
 */
export function parseStatusJson(stdout: string): { rows: StatusRow[]; problems: HostProblem[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error(`agentctl status --json printed no JSON: ${JSON.stringify(lastLine(stdout))}`);
  }
  const agents = isObject(parsed) ? parsed.agents : parsed;
  const host = isObject(parsed) && isObject(parsed.host) ? parsed.host : {};
  const problems: unknown[] = Array.isArray(host.problems) ? host.problems : [];
  const isRow = (r: unknown) => isObject(r) && typeof r.name === "string";
  const isProblem = (p: unknown) => isObject(p) && typeof p.message === "string";
  if (!Array.isArray(agents) || !agents.every(isRow) || !problems.every(isProblem)) {
    throw new Error("agentctl status --json did not print a list of agents");
  }
  return { rows: agents as StatusRow[], problems: problems as HostProblem[] };
}

/** One line of the table: an agent of a host, a host's problem, or a host that did not answer. */
export interface FleetRow {
  host: string;
  hostIndex: number;
  row?: StatusRow;
  /** A fault the host reports (disk full, a failed apply…): it needs the lead too. */
  problem?: HostProblem;
  /** Why the host did not answer. */
  unreachable?: string;
}

const agentNumber = (name: string) => Number(/(\d+)$/.exec(name)?.[1] ?? 0);

/**
 * Every host's agents in one list: what needs the lead first (agents waiting on it, longest
 * waiting first as agentctl status orders one host, then the hosts' own problems), then host by
 * host in the stack's order, each host's agents by number; a host that did not answer is one row
 * in its place.
 */
export function fleetRows(results: readonly HostStatus[]): FleetRow[] {
  const rows: FleetRow[] = results.flatMap((result, hostIndex): FleetRow[] => {
    const host = result.host.name;
    if ("error" in result) return [{ host, hostIndex, unreachable: result.error }];
    return [
      ...result.problems.map((problem) => ({ host, hostIndex, problem })),
      ...result.rows.map((row) => ({ host, hostIndex, row })),
    ];
  });
  const rank = (r: FleetRow) => (r.row?.needs_you === true ? 0 : r.problem ? 1 : 2);
  return rows.sort((a, b) => {
    if (rank(a) !== rank(b)) return rank(a) - rank(b);
    if (rank(a) === 0) {
      const since = (a.row?.state_since ?? 0) - (b.row?.state_since ?? 0);
      if (since !== 0) return since;
    }
    if (a.hostIndex !== b.hostIndex) return a.hostIndex - b.hostIndex;
    return agentNumber(a.row?.name ?? "") - agentNumber(b.row?.name ?? "");
  });
}

/** The table: HOST, then agentctl status's own columns and cells. */
export function fleetTable(rows: readonly FleetRow[]): string {
  const shown = STATUS_COLUMNS.filter((c) => c.header !== undefined);
  const lines = [
    ["HOST", ...shown.map((c) => c.header as string)],
    ...rows.map((r) => {
      if (!r.row) {
        // A host-wide line: STATE says what it is, WHY says why.
        const state = r.problem ? `host-${r.problem.level}` : "unreachable";
        const why = r.problem ? `${r.problem.kind}: ${r.problem.message}` : (r.unreachable ?? "-");
        return [
          r.host,
          ...shown.map((c) => (c.key === "agent_state" ? state : c.key === "why" ? why : "-")),
        ];
      }
      const row = r.row;
      return [
        r.host,
        ...shown.map((c) => {
          const v = c.cell ? c.cell(row) : row[c.key];
          return v === null || v === undefined || v === "" ? "-" : String(v);
        }),
      ];
    }),
  ];
  return `${alignColumns(lines)}\n`;
}

/** The last line of ssh's or agentctl's stderr, for the WHY cell of an unreachable host. */
export function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter(Boolean);
  return (lines[lines.length - 1] ?? "").trim();
}

/** What `npm run agents -- …` was asked. */
export type AgentsCommand =
  | { command: "status" }
  | { command: "attach"; target: string }
  | { command: "send"; target: string; force: boolean; words: string[] };

export interface AgentsArgs {
  /** A file holding `pulumi stack output --json`; unset = ask pulumi. */
  outputsFile?: string;
  /** Seconds any one SSH call may take before its host counts as unreachable. */
  timeoutSeconds: number;
  run: AgentsCommand;
}

export const AGENTS_USAGE =
  "usage: npm run agents -- [--outputs FILE] [--timeout SECONDS] status | attach HOST/agent-N | send [--force] HOST/agent-N [TEXT…] (TEXT or stdin)";

/** The default bound of one SSH call (connect, handshake and the remote command). */
export const DEFAULT_TIMEOUT_SECONDS = 20;

export function parseAgentsArgs(argv: readonly string[]): AgentsArgs {
  let outputsFile: string | undefined;
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("--"); i++) {
    const option = argv[i];
    const value = argv[i + 1];
    if (option === "--outputs" && value !== undefined) outputsFile = argv[++i];
    else if (option === "--timeout" && value !== undefined && /^[1-9][0-9]{0,3}$/.test(value)) {
      timeoutSeconds = Number(argv[++i]);
    } else throw new FleetError(`unknown or incomplete option ${option}. ${AGENTS_USAGE}`);
  }
  const [command, ...rest] = argv.slice(i);
  switch (command) {
    case "status":
      if (rest.length > 0) throw new FleetError(`status takes no arguments. ${AGENTS_USAGE}`);
      return { outputsFile, timeoutSeconds, run: { command } };
    case "attach":
      if (rest.length !== 1) throw new FleetError(`attach takes one agent. ${AGENTS_USAGE}`);
      return { outputsFile, timeoutSeconds, run: { command, target: rest[0] } };
    case "send": {
      const force = rest[0] === "--force";
      const [target, ...words] = force ? rest.slice(1) : rest;
      if (target === undefined) throw new FleetError(`send: which agent? ${AGENTS_USAGE}`);
      return { outputsFile, timeoutSeconds, run: { command, target, force, words } };
    }
    default:
      throw new FleetError(`unknown command ${JSON.stringify(command ?? "")}. ${AGENTS_USAGE}`);
  }
}
