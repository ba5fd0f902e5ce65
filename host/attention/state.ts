// Each agent's state, from Claude Code's own hooks: a pure state machine. The recorder
// (host/attention/hook.ts) feeds it one hook payload at a time; agentctl adds what only it knows (the
// process exited, crashed, is starting) in host/attention/effective.ts.
//
// Payload fields are those Claude Code 2.1.331 sends (measured: ../shared/DESIGN.md, "Claude Code,
// measured here"; the Stop payload's `last_assistant_message` is in the binary's hook schema).
import { lastLine, reasonText } from "./text";

/** States the hooks record. */
export const RECORDED_STATES = [
  "working",
  "needs-permission",
  "needs-answer",
  "idle",
  "signed-out",
] as const;
export type RecordedState = (typeof RECORDED_STATES)[number];

/** A turn lasting this long counts as real work even without a tool use. */
export const DEFAULT_REAL_WORK_SECONDS = 30;

export interface Turn {
  /** Epoch ms of the prompt that started it. */
  started: number;
  /** Tool uses in it so far. */
  tools: number;
}

/** What the recorder keeps per agent (status.json). */
export interface Recorded {
  v: 1;
  /** Increases by one per transition (a change of state). */
  seq: number;
  state: RecordedState;
  /** Epoch ms of the transition into `state`. */
  since: number;
  /** One line, redacted: the command awaiting permission, the question, the end of the answer. */
  reason: string;
  /** The hook event that last changed the record. */
  event: string;
  /** Epoch ms of the last hook event seen. */
  updated: number;
  turn?: Turn;
}

/** What a transition asks the notifier to say. */
export type Notify = "needs-you" | "turn-done";

/** One line of events.jsonl: a transition. */
export interface Transition {
  seq: number;
  at: number;
  state: RecordedState;
  reason: string;
  event: string;
  notify?: Notify;
}

/** The parts of a hook payload the state machine reads (every field is optional on input). */
export interface HookInput {
  hook_event_name?: unknown;
  source?: unknown;
  prompt?: unknown;
  tool_name?: unknown;
  tool_input?: unknown;
  notification_type?: unknown;
  message?: unknown;
  last_assistant_message?: unknown;
  error?: unknown;
  error_details?: unknown;
  transcript_path?: unknown;
  /**
   * Not Claude Code's: the tool use a permission_prompt Notification waits on, read by the
   * recorder from the transcript's end (host/attention/hook.ts) when no PermissionRequest named it.
   */
  pending_tool?: unknown;
  /** Not Claude Code's: the needs-permission record a DashboardDeny answered (its `seq`). */
  seq?: unknown;
}

export interface ApplyOptions {
  /** A turn this long (seconds) without a tool use still counts as real work. */
  realWorkSeconds?: number;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const obj = (v: unknown): Record<string, unknown> =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

export const NEEDS_YOU: ReadonlySet<string> = new Set([
  "needs-permission",
  "needs-answer",
  "signed-out",
]);

/** "Bash: npm test", "Edit: src/a.ts": what a tool is about to do, in one line. */
export function describeTool(name: string, input: unknown): string {
  const i = obj(input);
  const detail =
    str(i.command) ??
    str(i.file_path) ??
    str(i.notebook_path) ??
    str(i.url) ??
    str(i.query) ??
    str(i.pattern) ??
    str(i.description) ??
    str(i.prompt);
  const tool = name || "a tool";
  return reasonText(detail ? `${tool}: ${detail}` : tool);
}

/** The question of an AskUserQuestion tool use (the first one, and how many more). */
export function describeQuestion(input: unknown): string {
  const questions = obj(input).questions;
  const list = Array.isArray(questions) ? questions : [];
  const first = str(obj(list[0]).question) ?? str(obj(list[0]).header) ?? "a question";
  const more = list.length > 1 ? ` (+${list.length - 1} more)` : "";
  return reasonText(`${first}${more}`);
}

function authFailure(error: string): boolean {
  return /auth|401|403|api.?key|login|credential|unauthori[sz]ed|forbidden|oauth|token/i.test(
    error,
  );
}

interface Change {
  state: RecordedState;
  reason: string;
  turn?: Turn | null;
  notify?: Notify;
}

/** What a handler knows: the payload, the record before it, the clock and the options. */
interface Ctx {
  input: HookInput;
  event: string;
  tool: string;
  prev: Recorded | undefined;
  now: number;
  opts: ApplyOptions;
}

const startWords: Record<string, string> = {
  startup: "ready: new session",
  resume: "ready: conversation resumed",
  clear: "ready: conversation cleared",
};

function onSessionStart({ input }: Ctx): Change | undefined {
  const source = str(input.source) ?? "startup";
  // A compaction happens inside a turn: the agent keeps working.
  if (source === "compact") return undefined;
  return {
    state: "idle",
    reason: startWords[source] ?? `ready (${reasonText(source, 40)})`,
    turn: null,
  };
}

function onPrompt({ input, now }: Ctx): Change {
  const prompt = str(input.prompt) ?? "";
  return {
    state: "working",
    reason: reasonText(`prompt: ${prompt}`),
    turn: { started: now, tools: 0 },
  };
}

function onPreToolUse({ input, tool, prev, now }: Ctx): Change {
  // A question is a tool use too: the turn did something a person may want to hear about.
  const turn = prev?.turn
    ? { ...prev.turn, tools: prev.turn.tools + 1 }
    : { started: now, tools: 1 };
  if (tool === "AskUserQuestion") {
    return { state: "needs-answer", reason: describeQuestion(input.tool_input), turn };
  }
  return { state: "working", reason: describeTool(tool, input.tool_input), turn };
}

function onPermissionRequest({ input, tool }: Ctx): Change {
  if (tool === "AskUserQuestion")
    return { state: "needs-answer", reason: describeQuestion(input.tool_input) };
  return { state: "needs-permission", reason: describeTool(tool, input.tool_input) };
}

function onNotification({ input, prev }: Ctx): Change | undefined {
  const state = prev?.state;
  const needsYou = state !== undefined && NEEDS_YOU.has(state) && state !== "signed-out";
  const type = str(input.notification_type) ?? "";
  const message = reasonText(str(input.message) ?? "");
  if (type === "permission_prompt") {
    if (needsYou) return undefined;
    // The PermissionRequest before it named the tool (when it fired, and was recorded first); else
    // the tool use at the transcript's end; the notification's own words name only the tool.
    const pending = obj(input.pending_tool);
    const reason =
      state === "working" && prev?.reason && !prev.reason.startsWith("prompt: ")
        ? prev.reason
        : typeof pending.name === "string"
          ? describeTool(pending.name, pending.input)
          : message;
    return { state: "needs-permission", reason: reason || "permission requested" };
  }
  if (type === "elicitation_dialog") {
    if (needsYou) return undefined;
    return { state: "needs-answer", reason: message || "an MCP server asks for input" };
  }
  // idle_prompt is sent after 60 s at the prompt: it only confirms idle, never hides a question.
  if (type === "idle_prompt" && (state === undefined || state === "working"))
    return { state: "idle", reason: message || "waiting for input" };
  return undefined;
}

const toolVerbs: Record<string, string> = {
  PostToolUse: "done",
  PostToolUseFailure: "failed",
  PermissionDenied: "denied",
};

function onToolDone({ input, event, tool, prev }: Ctx): Change {
  const what =
    tool === "AskUserQuestion"
      ? "question answered"
      : `${describeTool(tool, input.tool_input)} (${toolVerbs[event]})`;
  // The managed settings run PreToolUse for AskUserQuestion only (one hook process less per
  // tool call): a finished tool is what counts it for the turn.
  const turn =
    tool === "AskUserQuestion" || !prev?.turn
      ? prev?.turn
      : { ...prev.turn, tools: prev.turn.tools + 1 };
  return { state: "working", reason: reasonText(what), ...(turn ? { turn } : {}) };
}

function onStop({ input, prev, now, opts }: Ctx): Change {
  const answer = lastLine(str(input.last_assistant_message) ?? "");
  const turn = prev?.turn;
  const seconds = opts.realWorkSeconds ?? DEFAULT_REAL_WORK_SECONDS;
  const realWork = turn !== undefined && (turn.tools > 0 || now - turn.started >= seconds * 1000);
  return {
    state: "idle",
    reason: answer ? reasonText(answer) : "turn finished",
    turn: null,
    notify: realWork ? "turn-done" : undefined,
  };
}

function onStopFailure({ input }: Ctx): Change {
  const error = [str(input.error), str(input.error_details)].filter(Boolean).join(": ");
  if (authFailure(error)) {
    return {
      state: "signed-out",
      reason: reasonText(`API refused the login: ${error}`),
      turn: null,
    };
  }
  return {
    state: "idle",
    reason: reasonText(`stopped on an error: ${error || "unknown"}`),
    turn: null,
    notify: "turn-done",
  };
}

/**
 * Not a Claude Code event: the dashboard (host/web/server.ts) records the deny it typed. After a
 * permission dialog is refused ("No", or Esc) Claude Code 2.1.331 fires no hook at all: no
 * PostToolUse, PostToolUseFailure or PermissionDenied (auto mode's classifier only), no Stop (not
 * on an interrupt), no Notification within 75 s (measured: docs/dashboard.md, "After Deny"); the
 * pane says "Interrupted · What should Claude do instead?" and the prompt waits for the user. It
 * applies only to the very record it answered (same seq, still needs-permission): a newer hook
 * has the last word. No notification: the lead who denied is the one who would get it.
 */
function onDashboardDeny({ input, prev }: Ctx): Change | undefined {
  if (prev?.state !== "needs-permission" || input.seq !== prev.seq) return undefined;
  return { state: "idle", reason: reasonText(`you denied: ${prev.reason}`), turn: null };
}

/** One handler per hook event the managed settings send; any other event changes nothing. */
const HANDLERS: Record<string, (c: Ctx) => Change | undefined> = {
  SessionStart: onSessionStart,
  UserPromptSubmit: onPrompt,
  PreToolUse: onPreToolUse,
  PermissionRequest: onPermissionRequest,
  Notification: onNotification,
  PostToolUse: onToolDone,
  PostToolUseFailure: onToolDone,
  PermissionDenied: onToolDone,
  Stop: onStop,
  StopFailure: onStopFailure,
  DashboardDeny: onDashboardDeny,
};

function decide(
  prev: Recorded | undefined,
  input: HookInput,
  now: number,
  opts: ApplyOptions,
): Change | undefined {
  const event = str(input.hook_event_name) ?? "";
  const handler = Object.prototype.hasOwnProperty.call(HANDLERS, event)
    ? HANDLERS[event]
    : undefined;
  return handler?.({ input, event, tool: str(input.tool_name) ?? "", prev, now, opts });
}

/**
 * Applies one hook payload. Returns the new record and, when the state changed, the transition to
 * log; undefined when the payload changes nothing. Reasons are updated within a state (the next
 * tool of a working agent), but `since` and `seq` move only on a change of state.
 */
export function applyHook(
  prev: Recorded | undefined,
  input: HookInput,
  now: number,
  opts: ApplyOptions = {},
): { next: Recorded; transition?: Transition } | undefined {
  const change = decide(prev, input, now, opts);
  if (!change) return undefined;
  const event = str(input.hook_event_name) ?? "";
  const turn = change.turn === null ? undefined : (change.turn ?? prev?.turn);
  const moved = prev === undefined || prev.state !== change.state;
  const next: Recorded = {
    v: 1,
    seq: moved ? (prev?.seq ?? 0) + 1 : prev.seq,
    state: change.state,
    since: moved ? now : prev.since,
    reason: change.reason,
    event,
    updated: now,
    ...(turn ? { turn } : {}),
  };
  if (!moved) return { next };
  const notify: Notify | undefined =
    change.notify ?? (NEEDS_YOU.has(change.state) ? "needs-you" : undefined);
  return {
    next,
    transition: {
      seq: next.seq,
      at: now,
      state: next.state,
      reason: next.reason,
      event,
      ...(notify ? { notify } : {}),
    },
  };
}

/** Validates what was read back from disk (the file is the agent's; root reads it). */
export function parseRecorded(text: string): Recorded | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = obj(v);
  if (
    r.v !== 1 ||
    typeof r.seq !== "number" ||
    !Number.isSafeInteger(r.seq) ||
    !(RECORDED_STATES as readonly unknown[]).includes(r.state) ||
    typeof r.since !== "number" ||
    typeof r.updated !== "number" ||
    typeof r.reason !== "string" ||
    typeof r.event !== "string"
  ) {
    return undefined;
  }
  const t = obj(r.turn);
  const turn =
    typeof t.started === "number" && typeof t.tools === "number"
      ? { started: t.started, tools: t.tools }
      : undefined;
  return {
    v: 1,
    seq: r.seq,
    state: r.state as RecordedState,
    since: r.since,
    reason: reasonText(r.reason),
    event: reasonText(r.event, 40),
    updated: r.updated,
    ...(turn ? { turn } : {}),
  };
}

/** Validates one events.jsonl line. */
export function parseTransition(line: string): Transition | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  const t = obj(v);
  if (
    typeof t.seq !== "number" ||
    typeof t.at !== "number" ||
    !(RECORDED_STATES as readonly unknown[]).includes(t.state) ||
    typeof t.reason !== "string" ||
    typeof t.event !== "string"
  ) {
    return undefined;
  }
  const notify = t.notify === "needs-you" || t.notify === "turn-done" ? t.notify : undefined;
  return {
    seq: t.seq,
    at: t.at,
    state: t.state as RecordedState,
    reason: reasonText(t.reason),
    event: reasonText(t.event, 40),
    ...(notify ? { notify } : {}),
  };
}
