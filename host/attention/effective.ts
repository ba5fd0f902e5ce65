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
  /** agentctl stopped it a moment ago, to restart or remove it (host/agents/facts.ts onItsWayBack). */
  stopping?: boolean;
  exitCode?: number;
  /** claude's pid, while it runs. */
  pid?: number;
  /** Epoch ms claude started. */
  startedAt?: number;
  /** Epoch ms now (the clock the checks against the pane use; Date.now() when absent). */
  now?: number;
  /** Exit code of claude's last run, when the wrapper is waiting to restart it. */
  lastExit?: number;
  /** claude started a process after the recorded state began (an approved command runs). */
  childSinceState?: boolean;
  /** The login was refused (agentctl's sign-in check), with its reason. */
  signedOut?: string;
  /** What claude's pane shows now (host/agents/facts.ts paneView), to check the hooks' record. */
  pane?: PaneView;
}

/**
 * What a pane shows, as far as the state goes: Claude Code's input box (at its prompt), a
 * permission dialog, a turn in progress, or nothing telling.
 */
export type PaneView = "prompt" | "permission-dialog" | "working" | "unknown";

/**
 * A hook event this recent may still be on its way (the recorder runs while claude draws): the
 * pane is trusted over the record only when the record is older.
 */
export const HOOK_GRACE_MS = 5000;

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
  if (facts.dead && facts.stopping) {
    return make("starting", "agentctl stopped it a moment ago (a restart or a scale-down)");
  }
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
  if (!recorded || !fresh) {
    // No hook since this claude started. A lost or timed-out SessionStart (a busy VM, a recorder
    // that crashed) must not leave it "starting" for good: its pane says where it is.
    const lost = "; its hooks recorded nothing since it started (a hook event was lost)";
    const seenFor = (facts.now ?? Date.now()) - (facts.startedAt ?? 0);
    if (seenFor >= HOOK_GRACE_MS) {
      if (facts.pane === "prompt") return make("idle", `at its prompt${lost}`, facts.startedAt);
      if (facts.pane === "permission-dialog")
        return make("needs-permission", `its pane shows a permission dialog${lost}`);
      if (facts.pane === "working") return make("working", `working${lost}`, facts.startedAt);
    }
    return make("starting", "claude is starting", facts.startedAt);
  }
  const age = (facts.now ?? Date.now()) - recorded.updated;
  if (
    facts.pane === "permission-dialog" &&
    !NEEDS_YOU.has(recorded.state) &&
    age >= HOOK_GRACE_MS &&
    !facts.childSinceState
  ) {
    return make(
      "needs-permission",
      `its pane shows a permission dialog; the hooks last recorded ${recorded.state} (${recorded.reason}): a hook event was lost`,
    );
  }
  if (recorded.state === "needs-permission" && facts.childSinceState) {
    // No hook fires when a person approves: the command's process is the sign it runs.
    return make("working", `approved, running ${recorded.reason}`, recorded.since);
  }
  if (recorded.state === "needs-permission" && facts.pane === "prompt" && age >= HOOK_GRACE_MS) {
    // Claude Code 2.1.331 fires no hook when its permission dialog is refused in the terminal
    // (Esc, or the "No" option: "Interrupted · What should Claude do instead?"; an approval fires
    // PostToolUse, or starts the command's process above): the record would say needs-permission
    // until the next prompt. The dialog has gone and claude waits at its prompt: it was refused.
    // (tests/dashboard.test.ts presses Esc in the real pane.) Since: unknown (no event marks it).
    return make("idle", `denied in the terminal: ${recorded.reason}`);
  }
  if (recorded.state === "needs-answer" && facts.pane === "prompt" && age >= HOOK_GRACE_MS) {
    // Nor when its question (AskUserQuestion) is closed in the terminal with Esc: the pane says
    // "Declined to answer Claude's questions:" over the input box, no request goes to the model,
    // and the record would say needs-answer until the next prompt (an answer fires PostToolUse,
    // and the turn goes on). The question's dialog, its options moved through or "Type something."
    // typed into, never puts a `❯` line under a rule (tests/dashboard.test.ts presses Esc in the
    // real pane). Since: unknown, as above.
    return make("idle", `declined in the terminal: ${recorded.reason}`);
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
