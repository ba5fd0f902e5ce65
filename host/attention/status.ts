// `agentctl status [--json]`: one row per agent — its state as the hooks recorded it merged with
// the process facts (host/agents/facts.ts), claude's pid, uptime, CPU and memory (its whole process
// tree, from /proc), the workspace's size, the checkout's branch and unsaved work (git, as the
// agent), restarts and sign-in. One process for every agent: gathering runs the per-agent tools
// (du, git, capture-pane) side by side, and everything else is read from /proc and conf.runDir.
//
// COLUMNS declares every field once, in JSON order: the table header (none = JSON only), the
// JSON key and type, and the table cell. A new column is one COLUMNS entry plus where its value
// is gathered (gatherRow).
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import { agentCwd, agentIds, asAgentArgv, lexists, type AgentUser } from "../agents/agent-user";
import { GIT_QUERY_TIMEOUT_SECONDS } from "../agents/checkouts";
import type { HostConf } from "../conf/conf";
import { humanDuration, sortForStatus, type Effective } from "./effective";
import { KEY_REJECTED_RE, NEEDS_LOGIN_RE, onItsWayBack, paneText, snapshot } from "../agents/facts";
import { healthy, type Problem } from "./health";
import { oneLine } from "./text";
import { agentWindows, tmux, type WindowInfo } from "../agents/tmux";

const run = promisify(execFile);

export interface StatusRow {
  name: string;
  agent_state: string;
  state_seconds: number | null;
  state_since: number | null;
  needs_you: boolean | null;
  /** The process state: missing, exited, restarting, running, starting. */
  state: string;
  exit_code: number | null;
  pid: number | null;
  uptime_seconds: number | null;
  cpu_percent: number | null;
  memory_bytes: number | null;
  workspace_bytes: number | null;
  branch: string | null;
  unsaved: boolean | null;
  uncommitted_files: number | null;
  unpushed_commits: number | null;
  restarts: number;
  signin: string | null;
  auth: string | null;
  last_exit_reason: string | null;
  why: string;
}

interface Column {
  key: keyof StatusRow;
  header?: string;
  cell?: (r: StatusRow) => string | undefined;
}

/** The WHY cell is cut to this many characters (the JSON keeps it whole). */
export const WHY_MAX_CHARS = 72;

export const COLUMNS: readonly Column[] = [
  { key: "name", header: "NAME" },
  { key: "agent_state", header: "STATE" },
  {
    key: "state_seconds",
    header: "SINCE",
    cell: (r) => (r.state_seconds === null ? undefined : humanDuration(r.state_seconds)),
  },
  { key: "state_since" },
  { key: "needs_you" },
  { key: "state" },
  { key: "exit_code" },
  { key: "pid", header: "PID" },
  {
    key: "uptime_seconds",
    header: "UPTIME",
    cell: (r) => (r.uptime_seconds === null ? undefined : humanDuration(r.uptime_seconds)),
  },
  { key: "cpu_percent", header: "CPU%", cell: (r) => r.cpu_percent?.toFixed(1) },
  {
    key: "memory_bytes",
    header: "MEM",
    cell: (r) => (r.memory_bytes === null ? undefined : humanBytes(r.memory_bytes)),
  },
  {
    key: "workspace_bytes",
    header: "WORKSPACE",
    cell: (r) => (r.workspace_bytes === null ? undefined : humanBytes(r.workspace_bytes)),
  },
  { key: "branch", header: "BRANCH" },
  { key: "unsaved", header: "UNSAVED", cell: (r) => unsavedText(r) },
  { key: "uncommitted_files" },
  { key: "unpushed_commits" },
  { key: "restarts", header: "RESTARTS" },
  { key: "signin", header: "SIGNIN" },
  { key: "auth" },
  { key: "last_exit_reason" },
  { key: "why", header: "WHY", cell: (r) => cut(r.why || "-", WHY_MAX_CHARS) },
];

// ---------------------------------------------------------------------------------------------
// pure: formatting

/** "512B", "4.0KiB", "3.2MiB": as `agentctl status` has always printed sizes. */
export function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let b = bytes;
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return i === 0 ? `${Math.floor(b)}B` : `${b.toFixed(1)}${units[i]}`;
}

/** The UNSAVED cell: "no", "3 uncommitted", "2 unpushed" or "3 uncommitted, 2 unpushed". */
export function unsavedText(
  r: Pick<StatusRow, "uncommitted_files" | "unpushed_commits">,
): string | undefined {
  if (r.uncommitted_files === null) return undefined;
  const parts = [];
  if (r.uncommitted_files > 0) parts.push(`${r.uncommitted_files} uncommitted`);
  if ((r.unpushed_commits ?? 0) > 0) parts.push(`${r.unpushed_commits} unpushed`);
  return parts.length ? parts.join(", ") : "no";
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * `agentctl status --json`: the host's health, then the rows, keys in COLUMNS order:
 * `{"host":{"healthy":true,"problems":[{"level","kind","message"}]},"agents":[...]}`.
 */
export function toJson(rows: readonly StatusRow[], problems: readonly Problem[] = []): string {
  const agents = rows.map((r) => Object.fromEntries(COLUMNS.map((c) => [c.key, r[c.key]])));
  const host = { healthy: healthy(problems), problems };
  return `${JSON.stringify({ host, agents })}\n`;
}

/** Columns two spaces apart, each as wide as its widest cell; the last cell is not padded. */
export function alignColumns(lines: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const cells of lines)
    cells.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return lines
    .map((cells) =>
      cells
        .map((c, i) => (i < cells.length - 1 ? c + " ".repeat(widths[i] - [...c].length + 2) : c))
        .join(""),
    )
    .join("\n");
}

export function toTable(rows: readonly StatusRow[]): string {
  const shown = COLUMNS.filter((c) => c.header !== undefined);
  const lines = [
    shown.map((c) => c.header as string),
    ...rows.map((r) =>
      shown.map((c) => {
        const v = c.cell ? c.cell(r) : r[c.key];
        return v === null || v === undefined || v === "" ? "-" : String(v);
      }),
    ),
  ];
  return `${alignColumns(lines)}\n`;
}

// ---------------------------------------------------------------------------------------------
// pure: one agent's process state and sign-in, from the facts gathered below

/**
 * A claude younger than this whose last two runs both ended sooner is restarting, not running:
 * one that exits within seconds (offline onboarding, a bad flag) is alive most of the time
 * between its crashes, so a poll would otherwise catch it "running". One crash is not a loop.
 */
export const STABLE_RUN_SECONDS = 30;

export interface RunFiles {
  pid?: string;
  restarts?: string;
  lastExit?: string;
  /** "END_EPOCH SECONDS_RAN PREVIOUS_SECONDS_RAN" of claude's last run (and the one before, or -). */
  lastRun?: string;
  lastExitReason?: string;
  /** What the wrapper handed claude: "api-key config", "oauth-token login", "vertex", "none". */
  auth?: string;
}

export interface ProcessState {
  state: "missing" | "exited" | "restarting" | "running" | "starting";
  /** How agentctl has always described it, e.g. "restarting (exited with code 1 after 3s)". */
  text: string;
  exitCode: number | null;
  pid: number | null;
}

const whole = (s: string | undefined): number | undefined =>
  s !== undefined && /^-?\d+$/.test(s.trim()) ? Number(s.trim()) : undefined;

/**
 * etimes: seconds claude has run, when `pid` is alive (undefined when it is not). stopping:
 * agentctl stopped it a moment ago (host/agents/facts.ts onItsWayBack), so a dead pane is on its way
 * back or out.
 */
export function processState(
  window: WindowInfo | undefined,
  files: RunFiles,
  etimes: (pid: number) => number | undefined,
  stopping = false,
): ProcessState {
  const none = { exitCode: null, pid: null };
  if (!window) return { state: "missing", text: "missing", ...none };
  if (window.dead && stopping) {
    return {
      state: "restarting",
      text: "stopping (agentctl restart or scale-down)",
      exitCode: window.exitCode ?? null,
      pid: null,
    };
  }
  if (window.dead) {
    return {
      state: "exited",
      text: `exited (code ${window.exitCode ?? "?"})`,
      exitCode: window.exitCode ?? null,
      pid: null,
    };
  }
  const reason = files.lastExitReason ? `: ${files.lastExitReason}` : "";
  const pid = whole(files.pid);
  const up = pid !== undefined && pid > 0 ? etimes(pid) : undefined;
  const lastExit = whole(files.lastExit) ?? null;
  if (pid !== undefined && up !== undefined) {
    const [, ran, before] = (files.lastRun ?? "").trim().split(/\s+/).map(whole);
    const short = (s: number | undefined) => s !== undefined && s < STABLE_RUN_SECONDS;
    if (up < STABLE_RUN_SECONDS && short(ran) && short(before)) {
      return {
        state: "restarting",
        text: `restarting (exited with code ${lastExit ?? "?"} after ${ran}s${reason})`,
        exitCode: lastExit,
        pid,
      };
    }
    return { state: "running", text: "running", exitCode: null, pid };
  }
  if (files.lastExit !== undefined) {
    return {
      state: "restarting",
      text: `restarting (exited with code ${files.lastExit}${reason})`,
      exitCode: lastExit,
      pid: null,
    };
  }
  return { state: "starting", text: "starting", ...none };
}

/**
 * Sign-in, observed: what the pane shows now (a refused key, a login prompt), else what the
 * wrapper handed claude; with nothing handed over, only a /login made in that window
 * (CLAUDE_CONFIG_DIR/.credentials.json) signs it in. Null when it cannot be told (no live pane).
 */
export function signinState(
  live: boolean,
  auth: string | undefined,
  pane: string,
  hasCredentials: boolean,
): string | null {
  if (!live) return null;
  if (KEY_REJECTED_RE.test(pane)) return "key-rejected";
  if (NEEDS_LOGIN_RE.test(pane)) return "needs-login";
  if (auth === "none") return hasCredentials ? "signed-in" : "needs-login";
  return auth ? "signed-in" : null;
}

// ---------------------------------------------------------------------------------------------
// /proc: every process once (pid, ppid, CPU ticks, start, resident pages)

/** USER_HZ and the page size on every Linux this runs on (x86_64 and arm64 VMs). */
const CLOCK_TICKS = 100;
const PAGE_BYTES = 4096;

interface Proc {
  ppid: number;
  cpuTicks: number;
  startTicks: number;
  rssPages: number;
}

export function readProcs(procRoot = "/proc"): Map<number, Proc> {
  const out = new Map<number, Proc>();
  let entries: string[];
  try {
    entries = fs.readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const d of entries) {
    let text: string;
    try {
      text = fs.readFileSync(path.join(procRoot, d, "stat"), "utf8");
    } catch {
      continue; // ended meanwhile
    }
    // proc(5): the command name is in parentheses and may hold spaces; fields resume after ')'.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    out.set(Number(d), {
      ppid: Number(f[1]),
      cpuTicks: Number(f[11]) + Number(f[12]),
      startTicks: Number(f[19]),
      rssPages: Number(f[21]),
    });
  }
  return out;
}

/**
 * CPU% and resident bytes of `root` and everything below it. CPU% per process as ps(1) computes
 * pcpu (procps ps/output.c, pr_pcpu: CPU time over whole seconds since the process started, in
 * tenths), summed over the tree.
 */
export function treeUsage(
  procs: ReadonlyMap<number, Proc>,
  root: number,
  uptimeSeconds: number,
): { cpu: number; rss: number } {
  let cpu = 0;
  let rss = 0;
  for (const [pid, p] of procs) {
    let q = pid;
    for (let hops = 0; q !== root && hops < 64; hops++) q = procs.get(q)?.ppid ?? 0;
    if (q !== root) continue;
    const seconds = Math.floor(uptimeSeconds - p.startTicks / CLOCK_TICKS);
    if (seconds > 0) cpu += Math.floor((p.cpuTicks * 1000) / CLOCK_TICKS / seconds) / 10;
    rss += p.rssPages * PAGE_BYTES;
  }
  return { cpu: Math.round(cpu * 10) / 10, rss };
}

// ---------------------------------------------------------------------------------------------
// gathering, as root

const readSmall = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
};

/** A workspace's size is reused this long: du over node_modules or a build tree costs seconds. */
export const SIZE_CACHE_SECONDS = 60;

async function workspaceBytes(ws: string, cache: string): Promise<number | null> {
  try {
    if (Date.now() - fs.statSync(cache).mtimeMs < SIZE_CACHE_SECONDS * 1000) {
      const cached = whole(fs.readFileSync(cache, "utf8"));
      if (cached !== undefined) return cached;
    }
  } catch {
    // no cache yet
  }
  let bytes: number | undefined;
  try {
    bytes = whole((await run("du", ["-sxb", ws], { timeout: 60_000 })).stdout.split("\t")[0]);
  } catch (error) {
    // du exits 1 when some file vanished or is unreadable; its total still stands.
    bytes = whole(String((error as { stdout?: string }).stdout ?? "").split("\t")[0]);
  }
  if (bytes === undefined) return null;
  if (fs.existsSync(path.dirname(cache))) {
    try {
      fs.writeFileSync(`${cache}.tmp`, `${bytes}\n`);
      fs.renameSync(`${cache}.tmp`, cache);
    } catch {
      // the size is shown anyway; the next status measures again
    }
  }
  return bytes;
}

/** Agent n's user when it exists (git runs as it); undefined before reconcile made it. */
function agentUser(conf: HostConf, n: number): AgentUser | undefined {
  const ids = agentIds(conf, n);
  const line = (readSmall("/etc/passwd") ?? "")
    .split("\n")
    .find((l) => l.startsWith(`${ids.name}:`));
  return line?.split(":")[2] === String(ids.uid) ? ids : undefined;
}

/**
 * git (here: a sh running git) as the agent, never as root: a repository's config can name
 * programs git runs (core.fsmonitor, hooks). From the agent's home (the caller's cwd may be
 * closed to it).
 */
async function gitAsAgent(u: AgentUser, conf: HostConf, argv: string[]): Promise<string> {
  const r = await run(
    "setpriv",
    asAgentArgv(
      u,
      ["timeout", String(GIT_QUERY_TIMEOUT_SECONDS), ...argv],
      [`GIT_CEILING_DIRECTORIES=${conf.workspacesDir}`],
    ),
    { cwd: agentCwd(u), timeout: (GIT_QUERY_TIMEOUT_SECONDS + 5) * 1000 },
  );
  return r.stdout;
}

/** Between git status's lines and rev-list's count in checkoutState's one run (no porcelain line is it). */
const REV_LIST_MARK = "@agent-host rev-list";

/**
 * Branch, changed or untracked files, and commits on no remote branch; undefined if no checkout.
 * One process chain per agent (setpriv, timeout, sh, then both gits), not two: status spent most
 * of its time starting processes. The path is sh's $1, never part of the script.
 */
async function checkoutState(
  u: AgentUser | undefined,
  conf: HostConf,
  ws: string,
): Promise<{ branch: string; files: number; commits: number } | undefined> {
  if (!u || !lexists(path.join(ws, ".git"))) return undefined;
  const script = [
    'git -C "$1" --no-optional-locks status --porcelain=v2 --branch || exit 1',
    `echo '${REV_LIST_MARK}'`,
    // An unborn branch (empty repository) has no commits to count: rev-list fails, 0.
    'git -C "$1" --no-optional-locks rev-list --count HEAD --not --remotes 2>/dev/null || :',
  ].join("\n");
  let out: string;
  try {
    out = await gitAsAgent(u, conf, ["sh", "-c", script, "agent-host-git", ws]);
  } catch {
    return undefined;
  }
  const lines = out.split("\n");
  const mark = lines.indexOf(REV_LIST_MARK);
  if (mark < 0) return undefined;
  let branch = "";
  let files = 0;
  for (const line of lines.slice(0, mark)) {
    if (line.startsWith("# branch.head ")) branch = line.slice("# branch.head ".length);
    else if (line && !line.startsWith("#")) files++;
  }
  const revList = lines[mark + 1];
  return { branch, files, commits: whole(revList) ?? 0 };
}

function uptimeSeconds(): number {
  return Number((readSmall("/proc/uptime") ?? "0").split(" ")[0]);
}

async function gatherRow(
  conf: HostConf,
  n: number,
  window: WindowInfo | undefined,
  effective: Effective | undefined,
  procs: ReadonlyMap<number, Proc>,
): Promise<StatusRow> {
  const user = agentUser(conf, n);
  const ids = agentIds(conf, n);
  const name = `agent-${n}`;
  const dir = path.join(conf.runDir, name);
  const file = (f: string) => readSmall(path.join(dir, f));
  const files: RunFiles = {
    pid: file("pid"),
    restarts: file("restarts"),
    lastExit: file("last-exit"),
    lastRun: file("last-run"),
    lastExitReason: file("last-exit-reason"),
    auth: file("auth"),
  };
  const up = uptimeSeconds();
  const etimes = (pid: number) => {
    const p = procs.get(pid);
    return p ? Math.max(0, Math.floor(up - p.startTicks / CLOCK_TICKS)) : undefined;
  };
  const proc = processState(window, files, etimes, window?.dead === true && onItsWayBack(conf, n));
  const live = window !== undefined && !window.dead;
  const ws = ids.workspace;
  // The pane was read a moment ago for the sign-in check of snapshot() (host/agents/facts.ts caches it).
  const pane = live ? paneText(conf, n) : "";
  const [bytes, checkout] = await Promise.all([
    fs.existsSync(ws) ? workspaceBytes(ws, path.join(dir, "workspace-bytes")) : null,
    checkoutState(user, conf, ws),
  ]);
  const running = proc.state === "running" && proc.pid !== null;
  const usage = running ? treeUsage(procs, proc.pid as number, up) : undefined;
  return {
    name,
    ...stateFields(effective, proc),
    state: proc.state,
    exit_code: proc.exitCode,
    pid: proc.pid,
    uptime_seconds: running ? (etimes(proc.pid as number) ?? null) : null,
    cpu_percent: usage ? usage.cpu : null,
    memory_bytes: usage ? usage.rss : null,
    workspace_bytes: bytes,
    branch: checkout ? checkout.branch : null,
    unsaved: checkout ? checkout.files + checkout.commits > 0 : null,
    uncommitted_files: checkout ? checkout.files : null,
    unpushed_commits: checkout ? checkout.commits : null,
    restarts: whole(files.restarts) ?? 0,
    signin: signinState(
      live,
      files.auth,
      pane,
      lexists(path.join(ids.claudeDir, ".credentials.json")),
    ),
    auth: files.auth || null,
    last_exit_reason: files.lastExitReason || null,
    why: stateFields(effective, proc).why,
  };
}

/**
 * A row's state columns, from the effective state (and the process state when there is none): what
 * changes with every hook. The dashboard (host/web/server.ts) pushes these at once and the rest of
 * the row when it has gathered it again.
 */
export function stateFields(
  effective: Effective | undefined,
  proc: { state: string; text: string },
  now = Date.now(),
): Pick<StatusRow, "agent_state" | "state_seconds" | "state_since" | "needs_you" | "why"> {
  return {
    agent_state: effective?.state ?? proc.state,
    state_seconds:
      effective?.since !== undefined
        ? Math.max(0, Math.floor((now - effective.since) / 1000))
        : null,
    state_since: effective?.since !== undefined ? Math.floor(effective.since / 1000) : null,
    needs_you: effective ? effective.needsYou : null,
    why: effective ? oneLine(effective.reason) : proc.text,
  };
}

/** Every agent's row, those who need you first (host/attention/effective.ts sortForStatus). */
export async function statusRows(
  conf: HostConf,
  log: (line: string) => void,
): Promise<{ rows: StatusRow[]; effective: Effective[] }> {
  // One list-windows for the whole command; it lists nothing without a server (or a session).
  const windows = agentWindows(conf.tmuxSocket);
  if (windows.size === 0 && tmux(conf.tmuxSocket, ["list-sessions"]).code !== 0)
    log(`warning: no tmux server on ${conf.tmuxSocket}; every agent is missing`);
  const procs = readProcs();
  const effective = sortForStatus(snapshot(conf, windows).rows);
  const byN = new Map(effective.map((e) => [e.n, e]));
  const order = [
    ...effective.map((e) => e.n),
    ...[...windows.keys()].filter((n) => !byN.has(n)).sort((a, b) => a - b),
  ];
  const rows = await Promise.all(
    order.map((n) => gatherRow(conf, n, windows.get(n), byN.get(n), procs)),
  );
  return { rows, effective };
}
