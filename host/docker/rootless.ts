// Each agent's own Docker (dockerMode rootless): its port block, its subordinate ids, the
// environment its claude gets, and when its idle daemon is stopped. Pure: no fs, no processes;
// host/docker/docker-main.ts does what these decide. Numbers are defined here once: the wrapper,
// apply, the docs and the tests take them from here.
import {
  DEFAULT_AGENT_UID_BASE,
  agentUid as schemeUid,
  agentUserName as schemeUserName,
} from "../agents/agent-user";
import type { DockerMode } from "../../shared-rules";

/** The first agent's first port. Below Linux's ephemeral range (32768-60999 by default). */
export const PORT_BLOCK_START = 20000;
/** Ports per agent: agent-N owns AGENT_PORT_BASE … AGENT_PORT_BASE + 99. */
export const PORT_BLOCK_SIZE = 100;
/** The first port of Linux's default ephemeral range (net.ipv4.ip_local_port_range). */
const EPHEMERAL_START = 32768;
/** The highest agent number whose block ends below the ephemeral range (127). */
export const MAX_PORT_BLOCK_AGENT = Math.floor(
  (EPHEMERAL_START - PORT_BLOCK_START) / PORT_BLOCK_SIZE,
);

/**
 * Subordinate ids (/etc/subuid, /etc/subgid): 65,536 per agent, Docker's documented minimum and
 * what useradd hands out. Pinned above SUB_UID_MAX / SUB_GID_MAX (600,100,000, login.defs), so
 * useradd's own allocation, which stays within [SUB_UID_MIN, SUB_UID_MAX], never gives any other
 * user an id from an agent's range; and the same agent gets the same range on every VM, so the
 * files its containers wrote in ~/.local/share/docker on the data disk keep their owners.
 */
export const SUBID_BASE = 1_000_000_000;
export const SUBID_COUNT = 65536;

/** The directory of the agents' Docker sockets: root-owned 0755, one socket per agent, 0600 its own. */
export const DOCKER_SOCKET_DIR = "/run/agent-docker";

export function checkAgentNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PORT_BLOCK_AGENT)
    throw new Error(
      `agent number ${n} has no port block: blocks of ${PORT_BLOCK_SIZE} from ${PORT_BLOCK_START} reach agent-${MAX_PORT_BLOCK_AGENT} below the ephemeral ports (${EPHEMERAL_START}); use fewer agents`,
    );
}

/** AGENT_PORT_BASE of agent-N: 20000, 20100, 20200, … */
export function agentPortBase(n: number): number {
  checkAgentNumber(n);
  return PORT_BLOCK_START + (n - 1) * PORT_BLOCK_SIZE;
}

/**
 * agent-N's user and uid (and gid): the per-agent users' one scheme (host/agents/agent-user.ts),
 * with its defaults (user prefix agent, uid base 2000).
 */
export { DEFAULT_AGENT_UID_BASE };
export const agentUserName = (n: number): string => schemeUserName(n);
export const agentUid = (n: number): number => schemeUid(n);

/** agent-N's subordinate id range: [start, start + SUBID_COUNT). */
export function agentSubIds(n: number): { start: number; count: number } {
  checkAgentNumber(n);
  return { start: SUBID_BASE + n * SUBID_COUNT, count: SUBID_COUNT };
}

/**
 * The socket agent-N's `docker` talks to: agent-docker@<uid>.socket, which systemd owns (root's
 * directory, the socket 0600 agent-N) and which starts the agent's daemon on first use. The units
 * are instantiated by uid because the proxy needs `user@<uid>.service`, and systemd has no
 * specifier that turns a user name into a uid.
 */
export const agentDockerSocket = (n: number): string => `${DOCKER_SOCKET_DIR}/${agentUid(n)}.sock`;

/**
 * The variables agent-N's claude (and everything it starts) gets for Docker, as NAME=value. Both
 * modes get a port block and a compose project of their own: two agents running the same compose
 * file then neither collide on ports nor share containers by name. Rootless adds DOCKER_HOST;
 * shared uses the root daemon's default socket.
 */
export function agentDockerEnv(n: number, mode: DockerMode): string[] {
  const env = [
    `AGENT_PORT_BASE=${agentPortBase(n)}`,
    `AGENT_PORT_COUNT=${PORT_BLOCK_SIZE}`,
    `COMPOSE_PROJECT_NAME=${agentUserName(n)}`,
  ];
  return mode === "rootless" ? [`DOCKER_HOST=unix://${agentDockerSocket(n)}`, ...env] : env;
}

export interface SubIdPin {
  name: string;
  uid: number;
  start: number;
  count: number;
}

/**
 * /etc/subuid (or subgid) with each pinned user's range set: lines naming the user (by name or
 * uid, as shadow's getsubids matches both) are replaced by the pin; every other line is kept as
 * it is. Throws when another user's range overlaps a pin: two users sharing ids could read and
 * change each other's container files. `changed` is false when the text already says it all.
 */
export function pinSubIds(
  text: string,
  pins: readonly SubIdPin[],
): { text: string; changed: boolean } {
  const owners = new Set(pins.flatMap((p) => [p.name, String(p.uid)]));
  const kept: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const [owner, start, count] = line.split(":");
    if (owners.has(owner)) continue;
    const s = Number(start);
    const c = Number(count);
    if (/^\d+$/.test(start ?? "") && /^\d+$/.test(count ?? "")) {
      const hit = pins.find((p) => s < p.start + p.count && p.start < s + c);
      if (hit)
        throw new Error(
          `'${line}' overlaps ${hit.name}'s subordinate ids ${hit.start}-${hit.start + hit.count - 1}; give that user another range (usermod --del-subuids/--add-subuids) and run again`,
        );
    }
    kept.push(line);
  }
  const lines = [...kept, ...pins.map((p) => `${p.name}:${p.start}:${p.count}`)];
  const out = `${lines.join("\n")}\n`;
  return { text: out, changed: out !== text };
}

/** What the idle check knows about one agent's daemon. */
export interface DaemonFacts {
  agent: number;
  /** agent-dockerd@agent-N.service is active. */
  daemonActive: boolean;
  /** agent-docker@agent-N.service (the socket's proxy) is active: a client used it lately. */
  proxyActive: boolean;
  /** Containers running: containerd shims in the daemon's cgroup. */
  containers: number;
  /** When the daemon became active (ms since the epoch). */
  activeSinceMs: number;
}

/**
 * The agents whose daemon can stop: up for at least `idleMs`, no client for the proxy's idle time
 * (the proxy has exited), and no container running. A stopped daemon costs nothing; the agent's
 * next `docker` starts it again through the socket (~1 s), with its images and volumes as they were.
 */
export function idleDaemons(
  facts: readonly DaemonFacts[],
  nowMs: number,
  idleMs: number,
): number[] {
  return facts
    .filter(
      (f) =>
        f.daemonActive && !f.proxyActive && f.containers === 0 && nowMs - f.activeSinceMs >= idleMs,
    )
    .map((f) => f.agent);
}

/** Process names that mean "a container is running": containerd's runc shims (v1 and v2). */
export const isContainerShim = (comm: string): boolean => /^containerd-shim/.test(comm.trim());

/**
 * Who must leave or join the docker group: in rootless mode every agent user that is in it leaves
 * (the group is root-equivalent), the legacy shared user included; in shared mode the agents join.
 */
export function dockerGroupChanges(
  mode: DockerMode,
  members: readonly string[],
  agents: readonly string[],
  legacyUser: string,
): { remove: string[]; add: string[] } {
  const isAgent = (u: string) => u === legacyUser || /^agent-[1-9][0-9]*$/.test(u);
  if (mode === "rootless") return { remove: members.filter(isAgent), add: [] };
  return { remove: [], add: agents.filter((a) => !members.includes(a)) };
}
