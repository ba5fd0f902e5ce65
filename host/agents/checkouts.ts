// git for agentctl reconcile: each agent's workspace is a clone of conf.gitRepository of its own, on
// its own branch agent-N (HOST.md, "Repository"), made and queried AS that agent, never as root:
// a repository's config can name programs git runs (core.fsmonitor, hooks), and the credentials
// are in the agent's own git config, readable by the agent only. No object store is shared: a
// repository two agents could write would let one agent's hooks or refs run in or rewrite
// another's checkout (issue 20).
import { spawnSync, type StdioOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { agentCwd, asAgentArgv, lexists, type AgentUser } from "./agent-user";
import type { Agents } from "./agents";
import { isDir } from "./agents";
import { namesOrNone } from "./reconcile";

/** A clone of the team's repository. */
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

function git(a: Agents, u: AgentUser, args: readonly string[], opts: AsAgentOptions = {}) {
  return asAgent(u, a.conf.workspacesDir, ["git", ...args], opts);
}

/** Missing, or a directory with nothing in it (an unreadable one counts as empty, as find did). */
function missingOrEmpty(ws: string): boolean {
  if (!lexists(ws)) return true;
  if (!isDir(ws)) return false;
  try {
    return fs.readdirSync(ws).length === 0;
  } catch {
    return true;
  }
}

/**
 * Makes agent i's (empty) workspace a clone of the repository, as agent i, on branch agent-i: the
 * remote's agent-i when it has one (pushed before, the workspace deleted by hand), else a new
 * branch from the remote's default branch.
 */
function cloneInto(a: Agents, i: number): boolean {
  const u = a.ensureAgent(i);
  const ws = u.workspace;
  const url = a.conf.gitRepository;
  const branch = `agent-${i}`;
  a.log(`agent-${i}: cloning ${url} into ${ws}`);
  const clone = ["clone", "--quiet", "--origin", "origin", url, ws];
  if (!git(a, u, clone, { timeoutSeconds: GIT_FETCH_TIMEOUT_SECONDS }).ok) return false;
  const remote = ["-C", ws, "rev-parse", "--verify", "--quiet", `refs/remotes/origin/${branch}`];
  if (git(a, u, remote, { stdout: "ignore" }).ok) {
    const track = ["-C", ws, "checkout", "--quiet", "-b", branch, "--track", `origin/${branch}`];
    if (!git(a, u, track).ok) return false;
    a.log(`agent-${i}: ${ws} checks out its existing branch ${branch}`);
    return true;
  }
  const head = ["-C", ws, "symbolic-ref", "--short", "refs/remotes/origin/HEAD"];
  const base = git(a, u, head, { stdout: "capture", stderr: "ignore" });
  const from = base.ok ? base.stdout.replace(/\n+$/, "") : "";
  const create = ["-C", ws, "checkout", "--quiet", "--no-track", "-b", branch];
  if (!git(a, u, from ? [...create, from] : create).ok) return false;
  a.log(
    `agent-${i}: ${ws} is a checkout of ${url} on its own branch ${branch}${from ? ` (from ${from})` : ""}`,
  );
  return true;
}

/**
 * Before agents start: each of agent-1..N whose workspace is missing or empty becomes a clone. A
 * workspace with anything in it is never touched: checkouts are never reset, cleaned or deleted,
 * and a folder of other files stays as it is.
 */
export function prepareCheckouts(a: Agents, count: number): void {
  if (a.conf.gitRepository === "") return;
  const want: number[] = [];
  const foreign: number[] = [];
  for (let i = 1; i <= count; i++) {
    const ws = a.workspace(i);
    if (missingOrEmpty(ws)) want.push(i);
    else if (!lexists(path.join(ws, ".git"))) foreign.push(i);
  }
  if (foreign.length > 0)
    a.log(
      `${namesOrNone(foreign)}: workspace already has files and is not a git checkout; left alone (the repository is checked out only into new or empty workspaces)`,
    );
  for (const i of want) {
    if (!cloneInto(a, i))
      a.log(
        `warning: agent-${i}: could not clone ${a.conf.gitRepository} (git's message is above); it starts in an empty workspace, and the next reconcile tries again`,
      );
  }
}

/**
 * Whether agent i's workspace is a git checkout with changed or untracked files, or commits on no
 * remote branch (what a scale-down must warn about; `status` shows the counts, host/attention/status.ts).
 */
function checkoutDirty(a: Agents, i: number): boolean {
  const u = a.ids(i);
  const ws = u.workspace;
  if (!lexists(path.join(ws, ".git"))) return false;
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
  return agents.filter((i) => checkoutDirty(a, i));
}
