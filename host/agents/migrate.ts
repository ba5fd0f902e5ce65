// Upgrade in place (issue 20, point 5): a host from before per-agent users ran every agent as one
// shared user (the user prefix itself, uid = the uid base) with every agent's state in that user's home
// (the old state folder's agent-N: session-id, claude/ with the conversations) and workspaces it owned, some of
// them worktrees of one shared repository (.repo.git in the workspaces folder). The next reconcile (apply's)
// moves each agent onto its own user, keeping every file and conversation:
//   1. the shared user's processes end (its agents are stopped first by reconcile, then whatever
//      it left running is killed) and the account is locked, out of the docker group, its
//      crontab gone: nothing runs as it again, so nothing can race what follows;
//   2. per agent: its state folder moves into its own home (rename on the data disk, or a copy),
//      its workspace and state are handed to agent-N (lchown, never following a link, never
//      leaving the filesystem), and a worktree of the shared repository becomes a repository of
//      its own (`agent-host.js own-checkout`, run AS agent-N).
// Crash-safe: each step leaves a state the next run recognises and finishes. The workspace's own
// folder is handed over last, so a workspace still owned by the shared user is not done yet; the
// state folder goes through HOME/.agent-host.migrating and is renamed into place when complete.
// Session ids are kept, and claude keys transcripts by the workspace path
// (CLAUDE_CONFIG_DIR/projects/<cwd with / as ->), which does not change: --resume finds them.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  ensureAgentHome,
  grantAdminRead,
  lookupUser,
  runAsAgent,
  type AgentConf,
  type AgentIds,
} from "./agent-user";

export interface MigrateConf extends AgentConf {
  stateDir: string;
  adminUser: string;
}

type Log = (line: string) => void;

const AGENT_DIR_RE = /^agent-([1-9][0-9]*)$/;

const lstat = (p: string): fs.Stats | undefined => {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
};

/** The uid of the shared user of older hosts (the uid base; no agent ever has it). */
export const legacyUid = (conf: AgentConf): number => conf.agentUidBase;

/**
 * Agents with something of the shared user's still to migrate: a state folder in the old state folder, or a
 * workspace the shared user owns. Ascending.
 */
export function legacyAgents(conf: MigrateConf): number[] {
  const found = new Set<number>();
  const scan = (dir: string, keep: (st: fs.Stats) => boolean) => {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = AGENT_DIR_RE.exec(name);
      const st = m ? lstat(path.join(dir, name)) : undefined;
      if (m && st?.isDirectory() && keep(st)) found.add(Number(m[1]));
    }
  };
  scan(conf.stateDir, () => true);
  scan(conf.workspacesDir, (st) => st.uid === legacyUid(conf));
  return [...found].sort((a, b) => a - b);
}

/** Pids whose real uid is `uid` (from /proc/PID/status). */
export function pidsOfUid(uid: number): number[] {
  const out: number[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of names) {
    try {
      const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m && Number(m[1]) === uid) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/**
 * Ends everything the shared user runs (SIGTERM, then SIGKILL after 10 s) and closes the account:
 * locked, expired, no shell, out of the docker group (root-equivalent), no crontab. Its files stay.
 */
export function retireLegacyUser(conf: MigrateConf, log: Log): void {
  const uid = legacyUid(conf);
  const kill = (sig: NodeJS.Signals) => {
    for (const pid of pidsOfUid(uid)) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  };
  if (pidsOfUid(uid).length > 0) {
    log(`ending the processes of the shared user (uid ${uid})`);
    kill("SIGTERM");
    const deadline = Date.now() + 10_000;
    while (pidsOfUid(uid).length > 0 && Date.now() < deadline) pause(100);
    kill("SIGKILL");
  }
  const user = lookupUser(conf.agentUser);
  if (!user || user.uid !== uid) return;
  const quiet = { stdio: "ignore" as const };
  spawnSync("crontab", ["-r", "-u", conf.agentUser], quiet);
  spawnSync("gpasswd", ["--delete", conf.agentUser, "docker"], quiet);
  const shell = fs.existsSync("/usr/sbin/nologin") ? "/usr/sbin/nologin" : "/bin/false";
  const args = ["--lock", "--expiredate", "1", "--shell", shell, conf.agentUser];
  if (spawnSync("usermod", args, quiet).status !== 0)
    log(`warning: could not lock the shared user ${conf.agentUser}`);
}

/**
 * lchown of every entry under `dir` that is on dir's filesystem, deepest first, `dir` itself last.
 * Never follows a symlink (a link is re-owned itself) and never enters another mount. Run only
 * while no process of the old or the new owner is alive: nobody can swap an entry meanwhile.
 */
export function chownTree(dir: string, uid: number, gid: number): void {
  const top = fs.lstatSync(dir);
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      if (st.dev !== top.dev) continue;
      if (st.isDirectory()) walk(p);
      if (st.uid !== uid || st.gid !== gid) fs.lchownSync(p, uid, gid);
    }
  };
  if (top.isSymbolicLink() || !top.isDirectory()) throw new Error(`${dir} is not a directory`);
  walk(dir);
  fs.lchownSync(dir, uid, gid);
}

/** The old state folder's agent-N → HOME/.agent-host, owned by the agent. */
function migrateState(conf: MigrateConf, a: AgentIds, log: Log): void {
  const legacy = path.join(conf.stateDir, `agent-${a.n}`);
  const scratch = `${a.state}.migrating`;
  const legacyThere = lstat(legacy)?.isDirectory() === true && !lstat(legacy)?.isSymbolicLink();
  if (lstat(a.state)) {
    // Done before (renamed into place): only the copy's source may be left.
    if (legacyThere && lstat(path.join(a.state, "session-id")))
      fs.rmSync(legacy, { recursive: true, force: true });
    else if (legacyThere)
      log(`warning: ${legacy} was left as it is: ${a.state} already exists without a session id`);
    return;
  }
  if (legacyThere) {
    fs.rmSync(scratch, { recursive: true, force: true });
    try {
      fs.renameSync(legacy, scratch);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
      const r = spawnSync("cp", ["-a", "--", legacy, scratch], { stdio: ["ignore", "ignore", 2] });
      if (r.status !== 0) throw new Error(`could not copy ${legacy} to ${scratch}`);
    }
  } else if (!lstat(scratch)?.isDirectory()) return;
  chownTree(scratch, a.uid, a.gid);
  fs.chmodSync(scratch, 0o700);
  fs.renameSync(scratch, a.state);
  if (lstat(legacy)) fs.rmSync(legacy, { recursive: true, force: true });
  log(`${a.name}: moved its state and conversations to ${a.state}`);
}

/** The workspace, if the shared user still owns it: handed to the agent, its folder last. */
function migrateWorkspace(conf: MigrateConf, a: AgentIds, log: Log): void {
  const st = lstat(a.workspace);
  if (!st || st.isSymbolicLink() || !st.isDirectory() || st.uid !== legacyUid(conf)) return;
  chownTree(a.workspace, a.uid, a.gid);
  fs.chmodSync(a.workspace, 0o700);
  grantAdminRead(a.workspace, conf.adminUser);
  log(`${a.name}: ${a.workspace} now belongs to ${a.name}`);
}

/**
 * A worktree of the shared repository becomes a repository of the agent's own, as the agent:
 * the shared one stays with the retired user and no agent can write it.
 */
function ownCheckout(a: AgentIds, js: string, log: Log): void {
  const dotgit = lstat(path.join(a.workspace, ".git"));
  const link = lstat(path.join(a.workspace, ".git.worktree-link"));
  if (!(dotgit?.isFile() || (!dotgit && link))) return;
  const r = runAsAgent(a, ["node", js, "own-checkout", a.workspace]);
  if (r.status !== 0)
    throw new Error(
      `${a.name}: could not make ${a.workspace} a repository of its own: ${r.stderr.trim()}`,
    );
  log(`${a.name}: ${a.workspace} is now a git repository of its own (was a shared worktree)`);
}

/** Agent n moved onto its own user; every step is skipped when already done. */
export function migrateAgent(conf: MigrateConf, n: number, js: string, log: Log): void {
  const a = ensureAgentHome(conf, n, log);
  migrateState(conf, a, log);
  migrateWorkspace(conf, a, log);
  if (lstat(a.workspace)?.uid === a.uid) ownCheckout(a, js, log);
}
