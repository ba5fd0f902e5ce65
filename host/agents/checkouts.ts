// git for agentctl reconcile: one shared object store (WORKSPACES_DIR/.repo.git, a bare
// repository fetched from GIT_REPOSITORY) and one worktree per agent on its own branch agent-N
// (HOST.md, "Repository"). git runs as AGENT_USER, never as root: a repository's config can name
// programs git runs (core.fsmonitor, hooks), and the credentials are in the agent's own git
// config, readable by the agent only.
import { spawnSync, type StdioOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { agentCwd, asAgentArgv, type AgentUser } from "./agent-user";
import type { Agents } from "./agents";
import { isDir } from "./agents";
import { namesOrNone } from "./reconcile";

/** A fetch of the team's repository. */
export const GIT_FETCH_TIMEOUT_SECONDS = 600;
/** One query of a checkout (status, rev-list, set-head). */
export const GIT_QUERY_TIMEOUT_SECONDS = 20;

interface AsAgentOptions {
  /** Where git's stdout goes: captured, to our stderr (logs), or nowhere. */
  stdout?: "capture" | "stderr" | "ignore";
  /** git's own messages: shown (to our stderr) or dropped. */
  stderr?: "inherit" | "ignore";
  /** Run under timeout(1) with this many seconds. */
  timeoutSeconds?: number;
}

/** A command as the agent with a clean environment, from its home (host/agents/agent-user.ts). */
export function asAgent(
  u: AgentUser,
  workspacesDir: string,
  argv: readonly string[],
  opts: AsAgentOptions = {},
): { ok: boolean; stdout: string } {
  const out = { capture: "pipe", stderr: 2, ignore: "ignore" }[opts.stdout ?? "stderr"];
  const stdio = ["ignore", out, opts.stderr ?? "inherit"] as StdioOptions;
  const timed = opts.timeoutSeconds ? ["timeout", String(opts.timeoutSeconds)] : [];
  const r = spawnSync(
    "setpriv",
    asAgentArgv(u, [...timed, ...argv], [`GIT_CEILING_DIRECTORIES=${workspacesDir}`]),
    { cwd: agentCwd(u), stdio, encoding: "utf8" },
  );
  return { ok: r.status === 0, stdout: r.stdout ?? "" };
}

const repoDir = (a: Agents): string => path.join(a.conf.workspacesDir, ".repo.git");

function git(a: Agents, u: AgentUser, args: readonly string[], opts: AsAgentOptions = {}) {
  return asAgent(u, a.conf.workspacesDir, ["git", ...args], opts);
}

/** Missing, or a directory with nothing in it (an unreadable one counts as empty, as find did). */
function missingOrEmpty(ws: string): boolean {
  if (!fs.existsSync(ws)) return true;
  if (!isDir(ws)) return false;
  try {
    return fs.readdirSync(ws).length === 0;
  } catch {
    return true;
  }
}

/** The bare repository every worktree shares, created on first use, then fetched as the agent. */
function fetchRepository(a: Agents, u: AgentUser): boolean {
  const repo = repoDir(a);
  const url = a.conf.gitRepository;
  if (!isDir(repo)) {
    try {
      fs.mkdirSync(a.conf.workspacesDir, { recursive: true });
      fs.chmodSync(a.conf.workspacesDir, 0o755);
      fs.mkdirSync(repo, { recursive: true });
      fs.chmodSync(repo, 0o755);
      fs.chownSync(repo, u.uid, u.gid);
    } catch (error) {
      a.log((error as Error).message);
      return false;
    }
    a.log(`creating the shared object store ${repo}`);
    if (!git(a, u, ["init", "--quiet", "--bare", repo]).ok) return false;
  }
  const current = git(a, u, ["-C", repo, "config", "--get", "remote.origin.url"], {
    stdout: "capture",
  }).stdout.replace(/\n+$/, "");
  if (current === "") {
    if (!git(a, u, ["-C", repo, "remote", "add", "origin", url]).ok) return false;
  } else if (current !== url) {
    a.log(
      `the repository changed from ${current} to ${url}: new checkouts come from it; existing ones are left as they are`,
    );
    if (!git(a, u, ["-C", repo, "remote", "set-url", "origin", url]).ok) return false;
  }
  a.log(`fetching ${url} into ${repo}`);
  const fetch = ["-C", repo, "fetch", "--quiet", "--prune", "origin"];
  if (!git(a, u, fetch, { timeoutSeconds: GIT_FETCH_TIMEOUT_SECONDS }).ok) return false;
  // origin/HEAD: the remote's default branch, which new branches start from.
  const setHead = ["-C", repo, "remote", "set-head", "origin", "--auto"];
  return git(a, u, setHead, { stdout: "ignore", timeoutSeconds: GIT_QUERY_TIMEOUT_SECONDS }).ok;
}

/**
 * Makes agent i's (empty) workspace a worktree on branch agent-i: a new branch from the default
 * branch, or the existing branch agent-i when there is one (a workspace deleted by hand).
 */
function addWorktree(a: Agents, u: AgentUser, i: number): boolean {
  const repo = repoDir(a);
  const ws = a.workspace(i);
  const branch = `agent-${i}`;
  // Forgets worktrees whose folder is gone (metadata only; no file is touched).
  git(a, u, ["-C", repo, "worktree", "prune"]);
  const verify = ["-C", repo, "rev-parse", "--verify", "--quiet", `refs/heads/${branch}`];
  if (git(a, u, verify, { stdout: "ignore" }).ok) {
    if (!git(a, u, ["-C", repo, "worktree", "add", "--quiet", ws, branch]).ok) return false;
    a.log(`agent-${i}: ${ws} checks out its existing branch ${branch}`);
    return true;
  }
  const head = ["-C", repo, "symbolic-ref", "--short", "refs/remotes/origin/HEAD"];
  const base = git(a, u, head, { stdout: "capture" });
  if (!base.ok) return false;
  const from = base.stdout.replace(/\n+$/, "");
  const add = ["-C", repo, "worktree", "add", "--quiet", "--no-track", "-b", branch, ws, from];
  if (!git(a, u, add).ok) return false;
  a.log(
    `agent-${i}: ${ws} is a checkout of ${a.conf.gitRepository} on its own branch ${branch} (from ${from})`,
  );
  return true;
}

/**
 * Before agents start: each of agent-1..N whose workspace is missing or empty becomes a worktree
 * (the repository is fetched once, first). A workspace with anything in it is never touched:
 * checkouts are never reset, cleaned or deleted, and a folder of other files stays as it is.
 */
export function prepareCheckouts(a: Agents, count: number): void {
  if (a.conf.gitRepository === "") return;
  const want: number[] = [];
  const foreign: number[] = [];
  for (let i = 1; i <= count; i++) {
    const ws = a.workspace(i);
    if (missingOrEmpty(ws)) want.push(i);
    else if (!fs.existsSync(path.join(ws, ".git"))) foreign.push(i);
  }
  if (foreign.length > 0)
    a.log(
      `${namesOrNone(foreign)}: workspace already has files and is not a git checkout; left alone (the repository is checked out only into new or empty workspaces)`,
    );
  if (want.length === 0) return;
  const u = a.requireAgentUser();
  if (!fetchRepository(a, u)) {
    a.log(
      `warning: could not fetch ${a.conf.gitRepository} (git's message is above); ${namesOrNone(want)} start in empty workspaces, and the next reconcile tries again`,
    );
    return;
  }
  for (const i of want) {
    a.ensureWorkspace(i);
    if (!addWorktree(a, u, i))
      a.log(
        `warning: agent-${i}: git worktree add failed (above); it starts in an empty workspace`,
      );
  }
}

/**
 * Whether agent i's workspace is a git checkout with changed or untracked files, or commits on no
 * remote branch (what a scale-down must warn about; `status` shows the counts, host/attention/status.ts).
 */
function checkoutDirty(a: Agents, u: AgentUser, i: number): boolean {
  const ws = a.workspace(i);
  if (!fs.existsSync(path.join(ws, ".git"))) return false;
  const query = { stdout: "capture", stderr: "ignore", timeoutSeconds: GIT_QUERY_TIMEOUT_SECONDS };
  const opts = query as AsAgentOptions;
  const status = git(a, u, ["-C", ws, "--no-optional-locks", "status", "--porcelain=v1"], opts);
  if (!status.ok) return false;
  if (status.stdout.replace(/\n+$/, "") !== "") return true;
  // An unborn branch (empty repository) has no commits to count.
  const revList = ["-C", ws, "--no-optional-locks", "rev-list", "--count", "HEAD", "--not"];
  const commits = git(a, u, [...revList, "--remotes"], opts);
  return commits.ok && Number(commits.stdout.trim()) > 0;
}

/** Of `agents`, those whose checkout has uncommitted or unpushed work. */
export function agentsWithUnsavedWork(a: Agents, agents: readonly number[]): number[] {
  const u = a.agentUser();
  if (!u) return [];
  return agents.filter((i) => checkoutDirty(a, u, i));
}
