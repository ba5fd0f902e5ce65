// Agent-aware auto-stop, the decision: pure, so every case is a table test. The VM powers itself
// off once, for the configured time, every agent has been idle or waiting on a person (none runs
// a turn or a tool, none is starting), and nobody has been there (no tmux client attached, no SSH
// session). host/cost/autostop-run.ts gathers the inputs and acts on the decision.

/**
 * Agent states that hold the VM up. `working` is a turn in progress, tools included (the hooks
 * record it from UserPromptSubmit and PreToolUse until Stop; an approved command shows as
 * working too, host/attention/effective.ts). `starting`: claude is coming up and has not reported yet.
 * Everything else (idle, needs-permission, needs-answer, signed-out, exited, crashed, missing)
 * waits on a person or on nothing.
 */
export const BUSY_STATES: ReadonlySet<string> = new Set(["working", "starting"]);

export interface AgentActivity {
  n: number;
  state: string;
  /** Epoch ms the state began, when known. */
  since?: number;
  /** One line: what it is doing (shown when it holds the stop). */
  reason?: string;
}

/** Who is there: one description per attached tmux client and per SSH session. */
export interface Presence {
  tmuxClients: string[];
  sshSessions: string[];
}

export interface AutoStopInput {
  now: number;
  /** The quiet time before a stop, ms; 0 turns auto-stop off. */
  limitMs: number;
  /** Epoch ms the machine booted: nothing before it counts as quiet. */
  bootAt: number;
  /** Epoch ms the daemon last saw something holding the VM up (persisted across its restarts). */
  lastBusyAt?: number;
  agents: readonly AgentActivity[];
  presence: Presence;
}

export type AutoStopDecision =
  | { kind: "off" }
  /** Something holds the VM up now; `reasons` says what, one line each. */
  | { kind: "held"; reasons: string[] }
  /** Quiet since `quietSince`; the stop comes at `stopAt` unless something happens. */
  | { kind: "waiting"; quietSince: number; stopAt: number }
  | { kind: "stop"; quietSince: number };

/** What holds the VM up right now, one line each; empty when nothing does. */
export function blockers(input: Pick<AutoStopInput, "agents" | "presence">): string[] {
  const reasons: string[] = [];
  for (const a of input.agents) {
    if (BUSY_STATES.has(a.state)) {
      reasons.push(`agent-${a.n} ${a.state}${a.reason ? ` (${a.reason})` : ""}`);
    }
  }
  for (const client of input.presence.tmuxClients) reasons.push(`tmux client attached (${client})`);
  for (const session of input.presence.sshSessions) reasons.push(`SSH session ${session}`);
  return reasons;
}

/**
 * The start of the quiet time: the latest of boot, the last time something held the VM up, and
 * every agent's last change of state (a turn shorter than the daemon's poll still counts: its
 * Stop moved the agent's `since`).
 */
export function quietSince(input: AutoStopInput): number {
  let since = Math.max(input.bootAt, input.lastBusyAt ?? 0);
  for (const a of input.agents) if (a.since !== undefined) since = Math.max(since, a.since);
  return Math.min(since, input.now);
}

export function decide(input: AutoStopInput): AutoStopDecision {
  if (input.limitMs <= 0) return { kind: "off" };
  const reasons = blockers(input);
  if (reasons.length > 0) return { kind: "held", reasons };
  const since = quietSince(input);
  const stopAt = since + input.limitMs;
  return input.now >= stopAt
    ? { kind: "stop", quietSince: since }
    : { kind: "waiting", quietSince: since, stopAt };
}

/** "1h05m", "12m30s", "45s": compact, for one status line. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400)
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

/** The auto-stop line of `agentctl status`: when, or why not. */
export function describeDecision(decision: AutoStopDecision, now: number, limitMs: number): string {
  switch (decision.kind) {
    case "off":
      return "auto-stop: off (autoStopMinutes 0)";
    case "held": {
      const shown = decision.reasons.slice(0, 4).join("; ");
      const more = decision.reasons.length > 4 ? `; +${decision.reasons.length - 4} more` : "";
      return `auto-stop: not counting (${shortDuration(limitMs)} of quiet needed): ${shown}${more}`;
    }
    case "waiting":
      return `auto-stop: in ${shortDuration(decision.stopAt - now)} (quiet for ${shortDuration(now - decision.quietSince)}: every agent idle or waiting on you, nobody attached)`;
    case "stop":
      return `auto-stop: stopping now (quiet for ${shortDuration(now - decision.quietSince)})`;
  }
}

/**
 * How long every agent has been idle (none busy): from the latest change of state, or undefined
 * while one is busy. For `agentctl status`'s cost line.
 */
export function agentsIdleFor(
  agents: readonly AgentActivity[],
  now: number,
  bootAt: number,
): number | undefined {
  if (agents.some((a) => BUSY_STATES.has(a.state))) return undefined;
  let since = bootAt;
  for (const a of agents) if (a.since !== undefined) since = Math.max(since, a.since);
  return Math.max(0, now - since);
}

const WAITING_WORDS: Record<string, string> = {
  "needs-permission": "waits for permission",
  "needs-answer": "waits for an answer",
  "signed-out": "is signed out",
  exited: "has exited",
  crashed: "crashed",
  missing: "is missing",
};

/**
 * The agents' half of `agentctl status`'s cost line. "every agent idle" only when each one is: an
 * agent waiting for permission or an answer is not idle (it holds nothing up, but a person is
 * needed), so it is named, e.g. "none busy for 12m03s; agent-3 waits for permission".
 */
export function activityText(
  agents: readonly AgentActivity[],
  quietMs: number | undefined,
): string {
  if (quietMs === undefined) {
    const busy = agents.filter((a) => BUSY_STATES.has(a.state)).length;
    return `${busy} of ${agents.length} agents busy`;
  }
  const others = agents.filter((a) => a.state !== "idle");
  if (others.length === 0) return `every agent idle for ${shortDuration(quietMs)}`;
  const named = others.map((a) => `agent-${a.n} ${WAITING_WORDS[a.state] ?? `is ${a.state}`}`);
  return `none busy for ${shortDuration(quietMs)}; ${named.join(", ")}`;
}
