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

export function recordHook(env: NodeJS.ProcessEnv, payload: string, now: number): boolean {
  const dir = env.AGENT_HOST_STATE_DIR;
  if (!dir || !path.isAbsolute(dir) || !fs.existsSync(dir)) return false;
  let input: HookInput;
  try {
    input = JSON.parse(payload) as HookInput;
  } catch {
    return false;
  }
  if (!input || typeof input !== "object") return false;
  return withLock(dir, () => {
    const result = applyHook(readStatus(dir), input, now);
    if (!result) return false;
    writeAtomic(path.join(dir, STATUS_FILE), `${JSON.stringify(result.next)}\n`);
    if (result.transition) appendTransition(dir, result.transition);
    return true;
  });
}

/** Entry point: never fails the hook (a failed hook would show an error in the agent's pane). */
export function hookMain(): number {
  try {
    const payload = fs.readFileSync(0, "utf8");
    recordHook(process.env, payload, Date.now());
  } catch (error) {
    // stderr of a hook that exits 0 goes to claude's debug log only.
    process.stderr.write(`agent-host hook: ${(error as Error).message}\n`);
  }
  return 0;
}
