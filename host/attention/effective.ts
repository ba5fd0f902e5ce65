// What `agentctl status`, the control window, tmux and the notifier show per agent: the state the
// hooks recorded, merged with what only agentctl knows (the window is gone, claude exited or is
// between a crash and its restart, it is still starting). Pure.
import { NEEDS_YOU, type Recorded, type RecordedState } from "./state";

export type AgentState = RecordedState | "missing" | "starting" | "exited" | "crashed";

/** What agentctl knows about one agent's process. */
export interface ProcessFacts {
  n: number;
  /** The tmux window agent-N exists. */
  window: boolean;
  /** Its pane is dead (the wrapper ended: stopped for good or failed). */
  dead: boolean;
  exitCode?: number;
  /** claude's pid, while it runs. */
  pid?: number;
  /** Epoch ms claude started. */
  startedAt?: number;
  /** Exit code of claude's last run, when the wrapper is waiting to restart it. */
  lastExit?: number;
  /** claude started a process after the recorded state began (an approved command runs). */
  childSinceState?: boolean;
  /** The login was refused (agentctl's sign-in check), with its reason. */
  signedOut?: string;
}

export interface Effective {
  n: number;
  name: string;
  state: AgentState;
  /** Epoch ms the state began; undefined when unknown. */
  since?: number;
  reason: string;
  needsYou: boolean;
}

/** Which states a person must act on (sorted first, marked in tmux, notified). */
export function needsYou(state: AgentState): boolean {
  return NEEDS_YOU.has(state) || state === "exited";
}

export function effectiveState(facts: ProcessFacts, recorded: Recorded | undefined): Effective {
  const base = { n: facts.n, name: `agent-${facts.n}` };
  const make = (state: AgentState, reason: string, since?: number): Effective => ({
    ...base,
    state,
    reason,
    since,
    needsYou: needsYou(state),
  });
  if (!facts.window) return make("missing", "no window (agentctl reconcile starts it)");
  if (facts.dead) {
    return make(
      "exited",
      `stopped (exit code ${facts.exitCode ?? "?"}); agentctl restart ${facts.n}`,
    );
  }
  if (facts.pid === undefined) {
    if (facts.lastExit !== undefined) {
      return make("crashed", `claude exited with code ${facts.lastExit}; restarting`);
    }
    return make("starting", "claude is starting");
  }
  if (facts.signedOut !== undefined) return make("signed-out", facts.signedOut);
  // A record older than this claude belongs to its previous run (it crashed mid-turn, or the VM
  // rebooted): the new one reports itself with SessionStart once it is at its prompt.
  const fresh =
    recorded && (facts.startedAt === undefined || recorded.updated >= facts.startedAt - 1000);
  if (!recorded || !fresh) return make("starting", "claude is starting", facts.startedAt);
  if (recorded.state === "needs-permission" && facts.childSinceState) {
    // No hook fires when a person approves: the command's process is the sign it runs.
    return make("working", `approved, running ${recorded.reason}`, recorded.since);
  }
  return make(recorded.state, recorded.reason, recorded.since);
}

/** Agents that need you first (longest waiting first), then the rest by number. */
export function sortForStatus(rows: readonly Effective[]): Effective[] {
  return [...rows].sort((a, b) => {
    if (a.needsYou !== b.needsYou) return a.needsYou ? -1 : 1;
    if (a.needsYou && b.needsYou && (a.since ?? 0) !== (b.since ?? 0))
      return (a.since ?? 0) - (b.since ?? 0);
    return a.n - b.n;
  });
}

/** "45s", "12m03s", "3h05m", "2d04h": as agentctl prints uptimes. */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (v: number) => String(v).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

/** The short mark tmux shows beside a window name; empty when nobody is needed. */
export function tmuxMark(state: AgentState): string {
  switch (state) {
    case "needs-permission":
      return "PERMISSION";
    case "needs-answer":
      return "QUESTION";
    case "signed-out":
      return "SIGNED OUT";
    case "exited":
      return "EXITED";
    default:
      return "";
  }
}
