// agentctl reconcile, restart and logs: the pure parts (arguments, the plan, stagger, output),
// unit-tested without tmux (tests/reconcile-unit.test.ts). host/agents/agentctl.ts runs them against
// the real server (host/agents/agents.ts) and the git checkouts (host/agents/checkouts.ts).
import { KEY, rawOf, type HostConf } from "../conf/conf";
import { UsageError } from "./send";
import { agentNumber, type Window } from "./tmux";
import { parseArgs } from "util";

/** agentctl's whole-number rule for counts and --lines (host.conf's agent count rule too). */
const COUNT_RE = /^[1-9][0-9]{0,5}$/;

/** "agent-3 agent-7", or "none". */
export function namesOrNone(agents: readonly (number | string)[]): string {
  return agents.length === 0 ? "none" : agents.map((i) => `agent-${i}`).join(" ");
}

export interface ReconcileArgs {
  count: number;
  json: boolean;
  boot: boolean;
}

type CountConf = Pick<HostConf, "agentCount" | "agentMax" | "file" | "raw">;

/** `reconcile [N] [--json] [--boot]`; N defaults to host.conf's count. Throws UsageError (exit 2). */
export function parseReconcileArgs(argv: readonly string[], conf: CountConf): ReconcileArgs {
  let json = false;
  let boot = false;
  let count = "";
  for (const arg of argv) {
    if (arg === "--json") json = true;
    else if (arg === "--boot") boot = true;
    else if (count !== "")
      throw new UsageError(
        `reconcile takes one count, got '${count}' and '${arg}'; run e.g. 'agentctl reconcile 12'`,
      );
    else count = arg;
  }
  const max = conf.agentMax;
  if (count === "") {
    count = rawOf(conf, "agentCount");
    if (!COUNT_RE.test(count))
      throw new UsageError(
        `${KEY.agentCount}=${count} in ${conf.file} is not a whole number from 1 to ${max}; fix the config or pass a count: 'agentctl reconcile 12'`,
      );
  }
  if (!COUNT_RE.test(count))
    throw new UsageError(
      `invalid agent count '${count}': give a whole number from 1 to ${max} (${KEY.agentMax}), e.g. 'agentctl reconcile 12'`,
    );
  checkAgentMax(Number(count), conf);
  return { count: Number(count), json, boot };
}

/** An agent count, or agent number, above the host's limit: refused, naming the key and the fix. */
export function checkAgentMax(count: number, conf: CountConf): void {
  if (count > conf.agentMax)
    throw new UsageError(
      `agent count ${count} is above ${KEY.agentMax}=${conf.agentMax} (sized from this machine's memory in ${conf.file}); use at most ${conf.agentMax} or deploy a larger machineType`,
    );
}

/**
 * The wrapper's --delay for the k-th agent started together (0, 2, 4, … with 2 s): agents started
 * at once (boot, scale-up) do not all start in the same second. Printed as awk's `print k * s`
 * printed it (integers whole, others as %.6g), since the wrapper reads it as text.
 */
export function staggerDelay(k: number, seconds: number): string {
  const x = k * seconds;
  if (Number.isInteger(x)) return String(x);
  const [mantissa, exp] = x.toExponential(5).split("e");
  const e = Number(exp);
  const trim = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (e < -4 || e >= 6) {
    const digits = String(Math.abs(e)).padStart(2, "0");
    return `${trim(mantissa)}e${e < 0 ? "-" : "+"}${digits}`;
  }
  return trim(x.toFixed(5 - e));
}

/** One agent to start: a new window (added) or a respawn of its dead pane (restarted). */
export interface Start {
  agent: number;
  delay: string;
  restart: boolean;
  /** The dead pane's exit code, "?" when tmux has not recorded it. */
  exitCode: string;
}

export interface ReconcilePlan {
  starts: Start[];
  /** Agents with a window above the count, ascending: stopped and their windows removed. */
  surplus: number[];
}

const alive = (w: Window | undefined): boolean => w !== undefined && !w.dead;

/** Agent numbers that have a window, ascending. */
export function agentsWithWindows(windows: ReadonlyMap<string, Window>): number[] {
  const found = [...windows.keys()].map(agentNumber).filter((n) => n !== undefined);
  return found.sort((a, b) => a - b);
}

/** What reconcile does to run exactly `count` agents, given the session's windows. */
export function planReconcile(
  windows: ReadonlyMap<string, Window>,
  count: number,
  staggerSeconds: number,
): ReconcilePlan {
  const starts: Start[] = [];
  for (let i = 1; i <= count; i++) {
    const w = windows.get(`agent-${i}`);
    if (alive(w)) continue;
    const delay = staggerDelay(starts.length, staggerSeconds);
    starts.push({ agent: i, delay, restart: w !== undefined, exitCode: w?.code || "?" });
  }
  const surplus = agentsWithWindows(windows).filter((i) => i > count);
  return { starts, surplus };
}

/** Agents 1..count whose pane is alive. */
export function runningCount(windows: ReadonlyMap<string, Window>, count: number): number {
  let running = 0;
  for (let i = 1; i <= count; i++) if (alive(windows.get(`agent-${i}`))) running++;
  return running;
}

/** Of `targets`, the ones whose pane is alive (those a restart must stop first). */
export function liveAgents(windows: ReadonlyMap<string, Window>, targets: readonly number[]) {
  return targets.filter((i) => alive(windows.get(`agent-${i}`)));
}

export interface ReconcileSummary {
  desired: number;
  added: number[];
  removed: number[];
  restarted: number[];
  running: number;
}

/** `reconcile --json`: one line, keys in this order (apply passes it on as its summary). */
export function reconcileJson(s: ReconcileSummary): string {
  const names = (list: number[]) => list.map((i) => `agent-${i}`);
  const out = {
    desired: s.desired,
    added: names(s.added),
    removed: names(s.removed),
    restarted: names(s.restarted),
    running: s.running,
  };
  return `${JSON.stringify(out)}\n`;
}

export function reconcileText(s: ReconcileSummary): string {
  const head = `reconcile: desired ${s.desired}, running ${s.running}`;
  if (s.added.length + s.removed.length + s.restarted.length === 0) return `${head}; no change\n`;
  return `${head}; added ${namesOrNone(s.added)}; removed ${namesOrNone(s.removed)}; restarted ${namesOrNone(s.restarted)}\n`;
}

/** `restart N|all`: "all" or the agent number as given; `all --if-any` for apply. */
export function parseRestartArgs(argv: readonly string[]): { target: string; ifAny: boolean } {
  // `all --if-any`: apply's form. With no agent (or no tmux server) there is nothing to restart,
  // and that is not an error: every agent reconcile starts reads the new settings then.
  if (argv.length === 2 && argv[0] === "all" && argv[1] === "--if-any")
    return { target: "all", ifAny: true };
  if (argv.length !== 1 || argv[0].startsWith("-"))
    throw new UsageError(
      "restart takes one argument, N or all (all --if-any: none is no error); e.g. 'agentctl restart 3'",
    );
  return { target: argv[0], ifAny: false };
}

/**
 * An agent named on the command line (restart, logs, attach): N of an existing agent-N window.
 * Throws UsageError naming the agents there are.
 */
export function resolveAgent(windows: ReadonlyMap<string, Window>, arg: string, cmd: string) {
  if (!/^[1-9][0-9]*$/.test(arg))
    throw new UsageError(
      `${cmd}: '${arg}' is not an agent number; give N as in agent-N, e.g. 'agentctl ${cmd} 3'`,
    );
  const window = windows.get(`agent-${arg}`);
  if (!window)
    throw new UsageError(
      `${cmd}: there is no agent-${arg} (agents here: ${namesOrNone(agentsWithWindows(windows))}); run 'agentctl status' to see them`,
    );
  return { agent: Number(arg), window };
}

export interface LogsArgs {
  agent: string;
  lines: number;
}

/** `logs N [--lines K]` (default 100 lines). */
export function parseLogsArgs(argv: readonly string[]): LogsArgs {
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    options: { lines: { type: "string" } },
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  // Not strict: an unknown word is an agent "number" resolveAgent refuses by name, as before.
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (token.name !== "lines") positionals.push(token.rawName);
    else if (token.value === undefined)
      throw new UsageError("logs: --lines needs a number, e.g. 'agentctl logs 3 --lines 50'");
  }
  if (positionals.length > 1)
    throw new UsageError(
      `logs takes one agent number, got '${positionals[0]}' and '${positionals[1]}'`,
    );
  const agent = positionals[0] ?? "";
  const lines = typeof values.lines === "string" ? values.lines : "100";
  if (agent === "") throw new UsageError("logs needs an agent number, e.g. 'agentctl logs 3'");
  if (!COUNT_RE.test(lines))
    throw new UsageError(`logs: --lines '${lines}' is not a whole number >= 1, e.g. '--lines 50'`);
  return { agent, lines: Number(lines) };
}

/**
 * A pane's captured text as `logs` prints it: without the blank lines an idle screen ends with,
 * then the last `lines` lines.
 */
export function paneTail(captured: string, lines: number): string {
  const all = captured.split("\n");
  if (all[all.length - 1] === "") all.pop();
  let last = all.length;
  // awk's NF: only blanks and tabs separate fields, so only they make a line blank.
  while (last > 0 && !/[^ \t]/.test(all[last - 1])) last--;
  const kept = all.slice(0, last).slice(-lines);
  return kept.map((l) => `${l}\n`).join("");
}

// ---------------------------------------------------------------------------------------------
// What the last reconcile did, for `agentctl status` (conf.runDir/reconcile.json): the desired count
// moves only when every agent it asked for started, and a failure names the agent and the cause.

/** conf.runDir/reconcile.json: what the last reconcile did (host/attention/health.ts reads it). */
export const RECONCILE_RECORD = "reconcile.json";

export interface AgentFailure {
  agent: number;
  /** One line: the cause and the fix. */
  error: string;
}

export interface ReconcileRecord {
  /** Epoch seconds. */
  at: number;
  requested: number;
  /** The desired count after it: `requested` on success, the one before on a failure. */
  desired: number;
  ok: boolean;
  failed: AgentFailure[];
}

export function parseReconcileRecord(text: string | undefined): ReconcileRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as Partial<ReconcileRecord>;
    if (
      typeof r.at !== "number" ||
      typeof r.requested !== "number" ||
      typeof r.desired !== "number" ||
      typeof r.ok !== "boolean" ||
      !Array.isArray(r.failed)
    )
      return undefined;
    const failed = r.failed
      .filter((f) => typeof f?.agent === "number" && typeof f?.error === "string")
      .map((f) => ({ agent: f.agent, error: f.error }));
    return { at: r.at, requested: r.requested, desired: r.desired, ok: r.ok, failed };
  } catch {
    return undefined;
  }
}

/**
 * One line for a failure to change the host: what failed (errno and path, as Node names them) and
 * what to do about it. `where`: the folder whose disk is meant when the disk is full ("": unknown).
 */
export function faultLine(error: unknown, where: string, retry: string): string {
  const e = error as NodeJS.ErrnoException;
  const message = (e instanceof Error ? e.message : String(error)).replace(/\s*\n\s*/g, " ");
  switch (e?.code) {
    case "ENOSPC":
    case "EDQUOT":
      return where
        ? `${message}: the disk of ${where} is full; free space there (df -h ${where}), then run '${retry}'`
        : `${message}: a disk is full; free space (df -h), then run '${retry}'`;
    case "EROFS":
      return `${message}: ${where || "a disk"} is mounted read-only; check the disk (dmesg), then run '${retry}'`;
    case "EACCES":
    case "EPERM":
      return `${message}: permission denied; run agentctl as root ('sudo ${retry}')`;
    default:
      return `${message}; fix the cause, then run '${retry}'`;
  }
}
