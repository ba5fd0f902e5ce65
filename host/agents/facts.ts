// What agentctl knows about each agent's process, gathered as root: the tmux window, the wrapper's
// run files (conf.runDir/agent-N: pid, last-exit) and /proc. Feeds host/attention/effective.ts.
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { HostConf } from "../conf/conf";
import {
  effectiveState,
  type Effective,
  type PaneView,
  type ProcessFacts,
} from "../attention/effective";
import { readStatus } from "../attention/store";
import type { Recorded } from "../attention/state";
import { agentIds } from "./agent-user";
import { agentWindows, tmux, windowTarget, type WindowInfo } from "./tmux";

const readSmall = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
};

/** What `stopPending` allows past requestStop's own wait, for the starts that follow a restart's stops. */
const STOP_SLACK_SECONDS = 30;

/** How long after agentctl restarted an agent a dead pane still counts as its respawn to come. */
const RESTART_GRACE_MS = 10_000;

/** A regular file at `file` written within [now - ms, now + ms]. */
function freshFile(file: string, now: number, ms: number): boolean {
  try {
    const st = fs.lstatSync(file);
    const age = now - st.mtimeMs;
    return st.isFile() && age <= ms && age > -ms;
  } catch {
    return false;
  }
}

/**
 * agentctl asked agent n to stop a moment ago and may not be done (a restart, a scale-down): its
 * stop marker (conf.runDir/agent-N/stop, written by requestStop) is younger than requestStop's
 * wait (stopTimeoutSeconds + 5) plus STOP_SLACK_SECONDS. A restart stops every agent before it
 * starts any, so a pane that died first stays dead that long: it is restarting, not stopped. An
 * older marker on a dead pane is an agentctl that never finished: the agent has stopped.
 */
export function stopPending(conf: HostConf, n: number, now = Date.now()): boolean {
  const budgetMs = (Math.trunc(conf.stopTimeoutSeconds) + 5 + STOP_SLACK_SECONDS) * 1000;
  return freshFile(path.join(conf.runDir, `agent-${n}`, "stop"), now, budgetMs);
}

/**
 * Agent n's pane, listed dead a moment ago, is on its way back: agentctl stopped it to restart or
 * remove it (stopPending), or is starting it again. Starting, agentctl writes a `restarted` marker
 * before it removes the stop marker, then respawns the pane: a listing taken before the respawn
 * and a look at the markers after it still find one (host/agents/agents.ts prepareStart). A pane
 * that dies again after RESTART_GRACE_MS has stopped, and says so.
 */
export function onItsWayBack(conf: HostConf, n: number, now = Date.now()): boolean {
  const dir = path.join(conf.runDir, `agent-${n}`);
  return stopPending(conf, n, now) || freshFile(path.join(dir, "restarted"), now, RESTART_GRACE_MS);
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK) is not reachable from Node). */
const CLOCK_TICKS = 100;

/**
 * Epoch ms of a moment given in clock ticks since boot. Measured back from now with the uptime
 * (10 ms resolution): /proc/stat's btime is whole seconds and moves with clock adjustments, which
 * put a fresh process up to a second off.
 */
function epochOfTicks(ticks: number): number {
  const uptime = Number((readSmall("/proc/uptime") ?? "0").split(" ")[0]);
  return Date.now() - (uptime - ticks / CLOCK_TICKS) * 1000;
}

interface ProcStat {
  ppid: number;
  /** Start, in clock ticks since boot. */
  ticks: number;
}

function procStat(pid: number): ProcStat | undefined {
  const text = readSmall(`/proc/${pid}/stat`);
  if (!text) return undefined;
  // The command name is in parentheses and may hold spaces: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(fields[1]), ticks: Number(fields[19]) };
}

/** Whether any descendant of `root` started at or after `since` (epoch ms). */
export function descendantStartedSince(root: number, since: number): boolean {
  let pids: number[];
  try {
    pids = fs
      .readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return false;
  }
  const stats = new Map<number, ProcStat>();
  for (const pid of pids) {
    const st = procStat(pid);
    if (st) stats.set(pid, st);
  }
  const zero = epochOfTicks(0);
  for (const [pid, st] of stats) {
    if (pid === root || zero + (st.ticks * 1000) / CLOCK_TICKS + 10 < since) continue;
    let p = st.ppid;
    for (let hops = 0; hops < 64 && p > 1; hops++) {
      if (p === root) {
        if (runsACommand(pid)) return true;
        break;
      }
      p = stats.get(p)?.ppid ?? 0;
    }
  }
  return false;
}

/**
 * Whether a process of claude's is work for the agent (claude 2.1.331 runs a Bash tool use as
 * `/bin/bash -c 'source <snapshot> … eval <command>'`), not one of its hooks: the Notification
 * hook fires while the permission dialog still waits.
 */
function runsACommand(pid: number): boolean {
  let argv: string[];
  try {
    argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return false;
  }
  return !argv.some((a) => a.includes("agent-host.js"));
}

/** Agent numbers to report: 1..desired (last reconcile, else conf.agentCount) plus any window. */
export function agentNumbers(conf: HostConf, windows: ReadonlyMap<number, unknown>): number[] {
  const text = readSmall(path.join(conf.runDir, "desired"));
  const desired = text === undefined ? NaN : Number(text);
  // "0" is a count (a first reconcile failed before any agent started): only the windows there are.
  const count = Number.isSafeInteger(desired) && desired >= 0 ? desired : conf.agentCount;
  const all = new Set<number>(windows.keys());
  for (let i = 1; i <= count; i++) all.add(i);
  return [...all].sort((a, b) => a - b);
}

// What Claude Code 2.1.331 shows in its pane (captured with the real binary against the stand-in
// API, tests/real-claude.test.ts): a refused key or token while retrying ("401 invalid x-api-key ·
// retrying in 2s · attempt 4/10") and after ("Invalid API key · Fix external API key"), and a
// missing sign-in ("Not logged in · Please run /login", the /login method picker).
export const KEY_REJECTED_RE =
  /(^|[^0-9])401 [^·]*(invalid|expired|revoked|authentication)|Invalid API key|Invalid bearer token|OAuth token (has expired|revoked|is invalid)|API Error: 401/;
export const NEEDS_LOGIN_RE =
  /Not logged in|Please run \/login|Select login method|Paste code here if prompted/;

/**
 * What Claude Code 2.1.331's pane shows (captured with the real binary, tests/agent-state.test.ts
 * and tests/real-claude.test.ts): a permission dialog ("Do you want to proceed?" over its options,
 * the first marked "❯ 1. Yes"), a turn in progress ("esc to interrupt" under the spinner), or the
 * input box: a `❯` line right under the box's top rule (a dialog's `❯` never is). Only the pane's
 * last lines count: the conversation above may quote anything.
 */
export function paneView(pane: string): PaneView {
  const lines = pane.replace(/\s+$/, "").split("\n").slice(-30);
  const tail = lines.join("\n");
  if (/Do you want to proceed\?[\s\S]{0,400}❯ 1\. Yes/.test(tail)) return "permission-dialog";
  if (/esc to interrupt/.test(tail)) return "working";
  if (lines.some((l, i) => i > 0 && /^❯(\s|$)/.test(l) && /^─{20,}/.test(lines[i - 1])))
    return "prompt";
  return "unknown";
}

/** A pane is read at most this often per agent: the monitor polls every 500 ms. */
const PANE_EVERY_MS = 3000;
const paneCache = new Map<number, { at: number; text: string }>();

/** What agent n's pane shows (joined lines), read at most every PANE_EVERY_MS. */
export function paneText(conf: HostConf, n: number, now = Date.now()): string {
  const cached = paneCache.get(n);
  if (cached && now - cached.at < PANE_EVERY_MS) return cached.text;
  const text = tmux(conf.tmuxSocket, ["capture-pane", "-p", "-J", "-t", windowTarget(n)]).stdout;
  paneCache.set(n, { at: now, text });
  return text;
}

/**
 * The panes of `agents` whose cached text is older than PANE_EVERY_MS, with ONE tmux client (12
 * capture-pane processes took a third of `agentctl status`): each capture-pane follows a line with
 * a random marker and the agent's number, which no pane can forge. tmux runs nothing after a
 * failed command (a window that ended meanwhile): those agents are left to paneText, one by one.
 */
export function capturePanes(conf: HostConf, agents: readonly number[], now = Date.now()): void {
  const stale = agents.filter((n) => {
    const cached = paneCache.get(n);
    return !cached || now - cached.at >= PANE_EVERY_MS;
  });
  if (stale.length < 2) return;
  const mark = `agent-host-pane-${randomBytes(16).toString("hex")}`;
  const seq = stale.flatMap((n, k) => [
    ...(k > 0 ? [";"] : []),
    ...["display-message", "-p", `${mark} ${n}`, ";"],
    ...["capture-pane", "-p", "-J", "-t", windowTarget(n)],
  ]);
  const r = tmux(conf.tmuxSocket, seq);
  const sections = r.stdout.split(`${mark} `).slice(1);
  // After a failed capture, its marker is the last line printed: that pane was not read.
  if (r.code !== 0) sections.pop();
  for (const section of sections) {
    const eol = section.indexOf("\n");
    const n = Number(section.slice(0, eol));
    if (eol > 0 && stale.includes(n)) paneCache.set(n, { at: now, text: section.slice(eol + 1) });
  }
}

/** Why agent n is signed out, from what its pane shows; undefined when it is not. */
function paneSignedOut(conf: HostConf, n: number, now: number): string | undefined {
  const pane = paneText(conf, n, now);
  return KEY_REJECTED_RE.test(pane)
    ? "the API refuses the key or token (401); set a new one (anthropicApiKey) or run sudo agentctl login"
    : NEEDS_LOGIN_RE.test(pane)
      ? "not signed in: run sudo agentctl login, or set anthropicApiKey"
      : undefined;
}

export interface Snapshot {
  rows: Effective[];
  recorded: Map<number, Recorded | undefined>;
}

/** Every agent's effective state, now (from `listed`, the windows a caller listed a moment ago). */
export function snapshot(conf: HostConf, listed?: ReadonlyMap<number, WindowInfo>): Snapshot {
  const windows = listed ?? agentWindows(conf.tmuxSocket);
  capturePanes(
    conf,
    [...windows].filter(([, w]) => !w.dead).map(([n]) => n),
  );
  const rows: Effective[] = [];
  const recorded = new Map<number, Recorded | undefined>();
  for (const n of agentNumbers(conf, windows)) {
    const w = windows.get(n);
    const run = path.join(conf.runDir, `agent-${n}`);
    // In agent n's own home, a file agent n owns: no other agent can write there (issue 20).
    const ids = agentIds(conf, n);
    const rec = readStatus(ids.state, ids.uid);
    recorded.set(n, rec);
    const facts: ProcessFacts = { n, window: w !== undefined, dead: w?.dead ?? false };
    if (w?.exitCode !== undefined) facts.exitCode = w.exitCode;
    if (w?.dead && onItsWayBack(conf, n)) facts.stopping = true;
    const pid = Number(readSmall(path.join(run, "pid")));
    const st = Number.isSafeInteger(pid) && pid > 0 ? procStat(pid) : undefined;
    if (w && !w.dead && st) {
      facts.pid = pid;
      facts.startedAt = epochOfTicks(st.ticks);
      facts.now = Date.now();
      facts.pane = paneView(paneText(conf, n, facts.now));
      const signedOut = paneSignedOut(conf, n, Date.now());
      if (signedOut) facts.signedOut = signedOut;
      if (rec?.state === "needs-permission")
        facts.childSinceState = descendantStartedSince(pid, rec.since);
    }
    const lastExit = Number(readSmall(path.join(run, "last-exit")));
    if (readSmall(path.join(run, "last-exit")) !== undefined && Number.isFinite(lastExit))
      facts.lastExit = lastExit;
    rows.push(effectiveState(facts, rec));
  }
  return { rows, recorded };
}
