// agentctl's tmux commands (reconcile, restart, logs, attach-select, login-restart), loaded by
// host/main.ts without the rest of host/commands.ts: reconcile is what the lead waits for, and
// loading the monitor, the notifier and status with it cost a third of a Node start.
import { agentctlPaths, Agents } from "./agents";
import { agentctlConf, attachSelect, loginRestart, logs, reconcile, restart } from "./agentctl";
import { loadHostConf } from "../conf/conf";
import { faultLine } from "./reconcile";
import { UsageError } from "./send";

export const log = (line: string): void => {
  process.stderr.write(`agentctl: ${line}\n`);
};

/**
 * The agents' windows as agentctl's bash resolved its files (its env: AGENTCTL_SELF, …). `checked`:
 * host.conf is read as load_config reads it (agentctl did not read it first).
 */
export const agents = (checked = true): Agents => {
  const conf = checked ? agentctlConf(process.env, log) : loadHostConf();
  return new Agents(conf, agentctlPaths(process.env), log, process.env);
};

/**
 * A command's failure as its exit status: a UsageError's line, exit 2; any other fault as one line
 * (a system error, a full disk or a permission, also says what to do), exit 1.
 */
export function failed(error: unknown, cmd: string | undefined, rest: readonly string[]): number {
  if (error instanceof UsageError) {
    log(error.message);
    return 2;
  }
  const e = error as NodeJS.ErrnoException;
  const retry = `agentctl ${[cmd ?? "", ...rest].join(" ").trim()}`;
  log(typeof e?.code === "string" ? faultLine(e, "", retry) : oneLine(e?.message ?? String(error)));
  return 1;
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ");

/** One of host/main.ts's AGENTCTL_COMMANDS; undefined for any other. */
export function agentctlMain(cmd: string, rest: string[]): number | undefined {
  try {
    switch (cmd) {
      case "reconcile":
        return reconcile(agents(), rest);
      case "restart":
        return restart(agents(), rest);
      case "logs":
        return logs(agents(), rest);
      case "attach-select":
        return attachSelect(agents(false), rest);
      case "login-restart":
        return loginRestart(agents(false));
      default:
        return undefined;
    }
  } catch (error) {
    return failed(error, cmd, rest);
  }
}
