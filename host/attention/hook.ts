// The recorder: what Claude Code's managed hooks run (cloud-init/claude/managed-settings.json),
// once per hook event, as the agent user, inside claude's own environment. It reads the payload on
// stdin, updates STATE_DIR/agent-N/status.json and events.jsonl, and exits 0 at once: no network,
// no tmux, no output (a UserPromptSubmit hook's stdout would be added to the prompt).
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
