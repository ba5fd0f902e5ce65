// The agent user, and how root runs a program as that user: through setpriv (its uid, gid and
// supplementary groups) with `env -i` and a clean environment, from its home. agentctl's checkouts,
// status's git queries and apply's git set-up all run this way: a repository's config can name
// programs git runs (core.fsmonitor, hooks), so git never runs as root.
import { spawnSync } from "child_process";
import * as fs from "fs";
import { KEY, defaultOf } from "../conf/conf";

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
 * name asked for, or by the uid when a key is a uid (all digits: no user name is); a missing user
 * has no entry.
 */
export function lookupUsers(names: readonly string[]): Map<string, AgentUser> {
  const out = new Map<string, AgentUser>();
  if (names.length === 0) return out;
  const r = spawnSync("getent", ["passwd", ...names], { encoding: "utf8" });
  if (r.status !== 0 && r.status !== 2) return out;
  const wanted = new Set(names);
  for (const line of (r.stdout ?? "").split("\n")) {
    const u = parsePasswd(line);
    if (!u) continue;
    for (const key of [u.name, String(u.uid)])
      if (wanted.has(key) && !out.has(key)) out.set(key, u);
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

// ---------------------------------------------------------------------------------------------
// One Unix user per agent (issue 20). The scheme, defined here once and imported by everything
// else (reconcile, the wrapper through `agent-host.js prepare-agent`, status, the monitor, apply,
// the Docker set-up): agent N is the user <agentUser>-N (agent-1, agent-2, …) with
// uid = gid = the uid base + N (2001, 2002, …). The number is the whole identity, so the uid is
// the same after a reboot, a VM replacement (a new image with other users in it) and a
// scale-down and up, and the files on the data disk keep their owner. The base itself
// (2000) is the uid of the shared user `agent` of older hosts; no agent ever gets it.

/** The host.conf keys the scheme reads. */
export interface AgentConf {
  agentUser: string;
  agentUidBase: number;
  agentHomesDir: string;
  workspacesDir: string;
}

/** The uid base's default, from host.conf's key table: also the uid of the shared user of older hosts. */
export const DEFAULT_AGENT_UID_BASE = Number(defaultOf("agentUidBase"));

/** Agent n's uid (and gid): the uid base + n. */
export const agentUid = (n: number, base = DEFAULT_AGENT_UID_BASE): number => base + n;

/** Agent n's user (and group) name: <agentUser>-n. */
export const agentUserName = (n: number, prefix = "agent"): string => `${prefix}-${n}`;

/** Everything the host knows about agent n's identity and its paths. Pure. */
export interface AgentIds extends AgentUser {
  n: number;
  /** HOME/.agent-host: session-id, claude/ (CLAUDE_CONFIG_DIR), status.json, events.jsonl. */
  state: string;
  claudeDir: string;
  workspace: string;
}

export function agentIds(conf: AgentConf, n: number): AgentIds {
  const name = agentUserName(n, conf.agentUser);
  const uid = agentUid(n, conf.agentUidBase);
  const home = `${conf.agentHomesDir}/${name}`;
  const state = `${home}/.agent-host`;
  return {
    n,
    name,
    uid,
    gid: uid,
    home,
    state,
    claudeDir: `${state}/claude`,
    // The workspace keeps the agent's number, not the user name (a prefix other than "agent"
    // changes the users, never the workspaces, windows or transcripts' keys).
    workspace: `${conf.workspacesDir}/agent-${n}`,
  };
}

/** agent n of a uid, when it is one of the scheme's (1..max); undefined otherwise. */
export function agentOfUid(conf: AgentConf, uid: number, max: number): number | undefined {
  const n = uid - conf.agentUidBase;
  return Number.isSafeInteger(n) && n >= 1 && n <= max ? n : undefined;
}

export interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs argv as the agent (setpriv, env -i, from its home); never through a shell. */
export function runAsAgent(u: AgentUser, argv: readonly string[], input?: string | Buffer): Ran {
  const r = spawnSync("setpriv", asAgentArgv(u, argv), {
    cwd: agentCwd(u),
    input,
    encoding: "utf8",
    timeout: 60_000,
  });
  return {
    status: r.status ?? 127,
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? (r.error ? r.error.message : ""),
  };
}

function run(cmd: string, args: readonly string[]): Ran {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
  return {
    status: r.status ?? 127,
    stdout: r.stdout ?? "",
    stderr: r.stderr ?? (r.error ? r.error.message : ""),
  };
}

const getent = (db: string, key: string): string[] | undefined => {
  const r = run("getent", [db, key]);
  return r.status === 0 ? r.stdout.split("\n")[0].split(":") : undefined;
};

/**
 * The user and group of agent n, created when missing (groupadd, useradd with the pinned ids;
 * no home is made here: ensureAgent makes it safely). A user or group of that name with other
 * ids, or another user holding the uid, stops here: files on the data disk carry the pinned uid,
 * and silently taking another would hand them to someone else.
 */
export function ensureAgentUser(
  conf: AgentConf,
  n: number,
  lookup: (name: string) => AgentUser | undefined = lookupUser,
): { created: boolean } {
  const a = agentIds(conf, n);
  const fix = `agent-host pins agent-${n} to ${a.name} with uid = gid = ${a.uid} (${KEY.agentUidBase} ${conf.agentUidBase} + ${n}) so files on the data disk keep their owner; remove or renumber that entry, or set ${KEY.agentUidBase}`;
  const user = lookup(a.name);
  if (user) {
    if (user.uid !== a.uid || user.gid !== a.gid)
      throw new Error(`user ${a.name} exists with uid ${user.uid} and gid ${user.gid}; ${fix}`);
    // The home the host uses is the homes folder's (agentIds); passwd follows when it can (usermod
    // refuses while the user runs a process).
    if (user.home !== a.home) run("usermod", ["--home", a.home, a.name]);
    return { created: false };
  }
  const group = getent("group", a.name);
  if (group && group[2] !== String(a.gid))
    throw new Error(`group ${a.name} exists with gid ${group[2]}; ${fix}`);
  const gidOwner = getent("group", String(a.gid));
  if (!group && gidOwner) throw new Error(`gid ${a.gid} belongs to group ${gidOwner[0]}; ${fix}`);
  const uidOwner = getent("passwd", String(a.uid));
  if (uidOwner) throw new Error(`uid ${a.uid} belongs to user ${uidOwner[0]}; ${fix}`);
  if (!group) {
    const r = run("groupadd", ["--gid", String(a.gid), a.name]);
    if (r.status !== 0) throw new Error(`groupadd ${a.name}: ${r.stderr.trim()}`);
  }
  const args = ["--uid", String(a.uid), "--gid", String(a.gid), "--home-dir", a.home];
  const more = ["--no-create-home", "--shell", "/bin/bash", "--comment", `agent-host agent ${n}`];
  const r = run("useradd", [...args, ...more, a.name]);
  if (r.status !== 0) throw new Error(`useradd ${a.name}: ${r.stderr.trim()}`);
  return { created: true };
}

const O_DIR = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;

/**
 * A root-owned directory (parents as needed): the homes and the workspaces folders. What an agent may
 * never write into, so an entry in it is the agent's only if root made it so.
 */
export function ensureRootDir(dir: string, mode = 0o755): void {
  fs.mkdirSync(dir, { recursive: true, mode });
  const fd = fs.openSync(dir, O_DIR);
  try {
    fs.fchownSync(fd, 0, 0);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `dir` (an entry of a root-owned directory) as a directory of the agent: created 0700 when
 * missing (true), else checked to be a real directory of the agent's, never through a symlink.
 * One that belongs to someone else (the old shared user, another agent) is refused: the
 * migration hands those over, nothing else does.
 */
export function ensureAgentDir(dir: string, u: AgentUser): boolean {
  let created = false;
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    created = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  let fd: number;
  try {
    fd = fs.openSync(dir, O_DIR);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      `${dir} is not a directory (${code}: a symlink or a file); refusing to use it for ${u.name}: move it away`,
    );
  }
  try {
    const st = fs.fstatSync(fd);
    if (created || (st.uid === 0 && st.gid === 0)) {
      fs.fchownSync(fd, u.uid, u.gid);
      fs.fchmodSync(fd, 0o700);
    } else if (st.uid !== u.uid)
      throw new Error(
        `${dir} belongs to uid ${st.uid}, not ${u.name} (uid ${u.uid}); refusing to start ${u.name} there`,
      );
  } finally {
    fs.closeSync(fd);
  }
  return created;
}

/**
 * The admin (SSH) user reads every workspace for review: an ACL entry on the workspace, and a
 * default one so what the agent creates inherits it. No other user gets one; the agent may drop
 * it (it owns the folder). False when it could not be set (no setfacl, no such admin user).
 */
export function grantAdminRead(dir: string, admin: string): boolean {
  if (!lookupUser(admin)) return false;
  const entry = `u:${admin}:rX`;
  return run("setfacl", ["-m", `${entry},d:${entry}`, "--", dir]).status === 0;
}

/** Agent n's user and its home (what apply needs to set up the agent's git). */
export function ensureAgentHome(
  conf: AgentConf,
  n: number,
  log: (line: string) => void,
  lookup?: (name: string) => AgentUser | undefined,
): AgentIds {
  const a = agentIds(conf, n);
  if (ensureAgentUser(conf, n, lookup).created) log(`created user ${a.name} (uid ${a.uid})`);
  ensureRootDir(conf.agentHomesDir);
  ensureAgentDir(a.home, a);
  return a;
}

/**
 * Agent n ready to start, as root does it: its user and group, its home in the homes folder and its
 * workspace in the workspaces folder (root-owned folders, so those two entries cannot be links an agent
 * planted; each is opened O_NOFOLLOW and checked), then its state folders made AS the agent.
 */
export function ensureAgent(
  conf: AgentConf & { adminUser: string },
  n: number,
  log: (line: string) => void,
  lookup?: (name: string) => AgentUser | undefined,
): AgentIds {
  const a = ensureAgentHome(conf, n, log, lookup);
  ensureRootDir(conf.workspacesDir);
  if (ensureAgentDir(a.workspace, a) && !grantAdminRead(a.workspace, conf.adminUser))
    log(`warning: could not give ${conf.adminUser} read access to ${a.workspace} (setfacl)`);
  // Already the agent's own real folders (lstat: a link is never taken for one): nothing to make,
  // and no process to start (a settled reconcile checks twelve agents).
  if (ownDir(a.state, a.uid) && ownDir(a.claudeDir, a.uid)) return a;
  const r = runAsAgent(a, ["install", "-d", "-m", "0700", "--", a.state, a.claudeDir]);
  if (r.status !== 0)
    throw new Error(`could not create ${a.claudeDir} as ${a.name}: ${r.stderr.trim()}`);
  return a;
}

/** Whether a path is there, never following a link (root looks into agents' folders). */
export function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Whether `dir` is a real directory (not a link) of `uid`'s, 0700: read with lstat, never followed. */
function ownDir(dir: string, uid: number): boolean {
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
}
