// The recorder: what Claude Code's managed hooks run (cloud-init/claude/managed-settings.json),
// once per hook event, as the agent user, inside claude's own environment. It reads the payload on
// stdin, updates status.json and events.jsonl in the agent's state folder, and exits 0 at once: no
// network, no tmux, no output (a UserPromptSubmit hook's stdout would be added to the prompt).
//
// Which agent: the wrapper sets AGENT_HOST_STATE_DIR (the agent's own state folder) in claude's
// environment; a claude started by hand, without it, is not an agent and is left alone.
import * as fs from "fs";
import { applyHook, type HookInput } from "./state";
import { appendTransition, readStatus, withLock, writeAtomic, STATUS_FILE } from "./store";
import * as path from "path";

export function recordHook(
  env: NodeJS.ProcessEnv,
  payload: string,
  now: number,
  log: (line: string) => void = () => undefined,
): boolean {
  const dir = env.AGENT_HOST_STATE_DIR;
  if (!dir || !path.isAbsolute(dir) || !fs.existsSync(dir)) return false;
  let input: HookInput;
  try {
    input = JSON.parse(payload) as HookInput;
  } catch {
    return false;
  }
  if (!input || typeof input !== "object") return false;
  if (input.notification_type === "permission_prompt") {
    const pending = lastToolUse(input.transcript_path);
    if (pending) input = { ...input, pending_tool: pending };
  }
  return withLock(
    dir,
    () => {
      const result = applyHook(readStatus(dir), input, now);
      if (!result) return false;
      writeAtomic(path.join(dir, STATUS_FILE), `${JSON.stringify(result.next)}\n`);
      if (result.transition) appendTransition(dir, result.transition);
      return true;
    },
    { log },
  );
}

/** The transcript's end that is read for the pending tool use: it is the last line written. */
const TRANSCRIPT_TAIL_BYTES = 256 * 1024;

/**
 * The last tool use in a Claude Code transcript (JSONL: `{"type":"assistant","message":{"content":
 * [{"type":"tool_use","name","input"}]}}`), read from its last TRANSCRIPT_TAIL_BYTES, never
 * through a symlink. Only for a permission_prompt Notification (rare): what it waits to run.
 */
export function lastToolUse(file: unknown): { name: string; input: unknown } | undefined {
  if (typeof file !== "string" || !path.isAbsolute(file)) return undefined;
  let text: string;
  let fd: number | undefined;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
    );
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return undefined;
    const start = Math.max(0, st.size - TRANSCRIPT_TAIL_BYTES);
    const buf = Buffer.alloc(st.size - start);
    const n = fs.readSync(fd, buf, 0, buf.length, start);
    text = buf.subarray(0, n).toString("utf8");
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].includes('"tool_use"')) continue;
    try {
      const entry = JSON.parse(lines[i]) as { message?: { content?: unknown } };
      const content = Array.isArray(entry.message?.content) ? entry.message.content : [];
      const uses = content.filter(
        (b): b is { name: string; input: unknown } =>
          (b as { type?: unknown }).type === "tool_use" &&
          typeof (b as { name?: unknown }).name === "string",
      );
      if (uses.length > 0)
        return { name: uses[uses.length - 1].name, input: uses[uses.length - 1].input };
    } catch {
      // a line cut by the tail's start, or not JSON: look further up
    }
  }
  return undefined;
}

/**
 * Entry point: never fails the hook (a failed hook would show an error in the agent's pane), and
 * never waits long (withLock is bounded). What went wrong is one line on stderr, which for a hook
 * that exits 0 goes to claude's debug log; `agentctl status` finds a state folder the agent cannot
 * write by itself (host/attention/health.ts).
 */
export function hookMain(): number {
  const say = (line: string) => process.stderr.write(`agent-host hook: ${line}\n`);
  try {
    const payload = fs.readFileSync(0, "utf8");
    recordHook(process.env, payload, Date.now(), say);
  } catch (error) {
    say(oneLineMessage(error));
  }
  return 0;
}

const oneLineMessage = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, " ");
