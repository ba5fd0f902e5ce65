// The agent user, and how root runs a program as that user: through setpriv (its uid, gid and
// supplementary groups) with `env -i` and a clean environment, from its home. agentctl's checkouts,
// status's git queries and apply's git set-up all run this way: a repository's config can name
// programs git runs (core.fsmonitor, hooks), so git never runs as root.
import { spawnSync } from "child_process";
import * as fs from "fs";

/** The PATH every program run for the agent gets (root's own environment never crosses over). */
export const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A user as passwd has it (getent: NSS, not only /etc/passwd). */
export interface AgentUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** One `getent passwd` line → the user; undefined when it is not one. */
export function parsePasswd(line: string): AgentUser | undefined {
  const f = line.trim().split(":");
  if (f.length < 7 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) return undefined;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

/** The user from NSS, as agentctl's bash did (`getent passwd`), or undefined. */
export function lookupUser(name: string): AgentUser | undefined {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  return r.status === 0 ? parsePasswd(r.stdout.split("\n")[0]) : undefined;
}

/**
 * Several users from NSS with one getent (`getent passwd a b c` prints the ones that exist and
 * exits 2 when any is missing): a reconcile of 12 agents spawns one process, not 12. Keyed by the
 * name asked for; a missing user has no entry.
 */
export function lookupUsers(names: readonly string[]): Map<string, AgentUser> {
  const out = new Map<string, AgentUser>();
  if (names.length === 0) return out;
  const r = spawnSync("getent", ["passwd", ...names], { encoding: "utf8" });
  if (r.status !== 0 && r.status !== 2) return out;
  const wanted = new Set(names);
  for (const line of (r.stdout ?? "").split("\n")) {
    const u = parsePasswd(line);
    if (u && wanted.has(u.name) && !out.has(u.name)) out.set(u.name, u);
  }
  return out;
}

/**
 * The argv that runs `argv` as `u`: setpriv, then env -i with HOME, USER, LOGNAME, PATH, LANG, git's
 * prompts off, and `extraEnv`. Run it from agentCwd(u).
 */
export function asAgentArgv(
  u: AgentUser,
  argv: readonly string[],
  extraEnv: readonly string[] = [],
): string[] {
  return [
    ...[`--reuid=${u.uid}`, `--regid=${u.gid}`, "--init-groups", "--"],
    ...["env", "-i", `HOME=${u.home}`, `USER=${u.name}`, `LOGNAME=${u.name}`],
    ...[`PATH=${SYSTEM_PATH}`, "LANG=C.UTF-8", "GIT_TERMINAL_PROMPT=0", ...extraEnv],
    ...argv,
  ];
}

/**
 * The agent's home, never the caller's directory: sudo keeps the cwd of the SSH login
 * (agent-admin's home, 0750 on Ubuntu), where git run as the agent stops with "failed to stat".
 */
export function agentCwd(u: AgentUser): string {
  try {
    return fs.statSync(u.home).isDirectory() ? u.home : "/";
  } catch {
    return "/";
  }
}
