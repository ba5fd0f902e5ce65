// The commands of agent-host.js other than `hook` (host/main.ts), loaded only when one of them
// runs: the recorder, which Claude Code waits for on every hook event, never loads them.
import * as fs from "fs";
import * as os from "os";
import { ensureAgent } from "./agents/agent-user";
import { agentctlConf } from "./agents/agentctl";
import { agentctlMain, failed, log } from "./agents/agentctl-main";
import { activityOf, autostopCommand, autostopStatus } from "./cost/autostop-main";
import { loadHostConf } from "./conf/conf";
import { Monitor, webhookReader } from "./attention/monitor";
import { attachCommand, Notifier } from "./attention/notify";
import { parseSendArgs, readStdinText, send, UsageError } from "./agents/send";
import { checkAgentMax } from "./agents/reconcile";
import { statusRows, toJson, toTable } from "./attention/status";
import { healthText, healthy, hostHealth } from "./attention/health";
import { parseArgs } from "util";

async function status(argv: string[]): Promise<number> {
  let json: boolean;
  try {
    json =
      parseArgs({ args: argv, options: { json: { type: "boolean" } }, strict: true }).values
        .json === true;
  } catch {
    throw new UsageError(
      `status: unknown option '${argv.find((a) => a !== "--json") ?? argv[1]}'; use 'agentctl status' or 'agentctl status --json'`,
    );
  }
  const conf = loadHostConf();
  const { rows, effective } = await statusRows(conf, log);
  // The host first: a bad or missing host.conf, a failed or cut-off apply, a failed reconcile, a
  // full disk. Exit 3 when any is an error, so a script (or a person's `&&`) sees it.
  const problems = hostHealth(
    conf,
    effective.map((e) => e.n),
  );
  const code = healthy(problems) ? 0 : UNHEALTHY_EXIT;
  if (json) {
    process.stdout.write(toJson(rows, problems));
    return code;
  }
  process.stdout.write(healthText(problems));
  process.stdout.write(toTable(rows));
  // Under the table: VM uptime, how long the agents have been idle, and when the auto-stop comes
  // or what holds it (`agentctl autostop --json` gives the same as JSON).
  process.stdout.write(autostopStatus(conf, false, activityOf(effective)));
  return code;
}

/** `agentctl status`'s exit status when the host has an error (1 and 2 keep their meaning). */
export const UNHEALTHY_EXIT = 3;

async function monitor(display: boolean): Promise<number> {
  const conf = loadHostConf();
  const m = new Monitor({ conf, display, log, agentctl: process.env.AGENTCTL_SELF });
  const stop = () => {
    m.release();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGHUP", stop);
  // Ctrl-C in the control window must not end the notifications: detach instead (Ctrl-b d).
  process.on("SIGINT", () => log("the control window keeps running; detach with Ctrl-b d"));
  return m.run();
}

async function notifyTest(): Promise<number> {
  const conf = loadHostConf();
  const webhook = webhookReader(conf.notifyWebhookFile);
  const hook = webhook();
  if (!hook) {
    log(
      `no webhook configured (${conf.notifyWebhookFile} is missing or empty); run: pulumi config set --secret notifyWebhookUrl <Slack, ntfy or https URL>, then pulumi up`,
    );
    return 2;
  }
  const host = os.hostname();
  const notifier = new Notifier({ webhook, log });
  const ok = await notifier.deliver({
    agent: 0,
    event: "test",
    reason: "",
    at: Date.now(),
    host,
    attach: attachCommand(conf.adminUser, host, 1).replace(/ 1$/, ""),
  });
  if (ok) process.stdout.write(`notify-test: the ${hook.kind} webhook accepted the test message\n`);
  else log(`notify-test: the ${hook.kind} webhook did not accept the test message (see above)`);
  return ok ? 0 : 1;
}

function sendCommand(argv: string[]): number {
  const conf = loadHostConf();
  const args = parseSendArgs(argv, readStdinText, (f) => fs.readFileSync(f, "utf8"));
  const r = send(conf, args, log);
  return r.refused.length > 0 ? 1 : 0;
}

/**
 * `prepare-agent N`: what the wrapper runs (as root) before it starts agent N: the user, the home,
 * the workspace and the state folders (host/agents/agent-user.ts ensureAgent), then the ids and
 * paths as KEY=value lines for the wrapper. Nothing else in the wrapper touches an agent's path as
 * root.
 */
function prepareAgent(argv: string[]): number {
  if (argv.length !== 1 || !/^[1-9][0-9]*$/.test(argv[0]))
    throw new UsageError("prepare-agent takes one agent number, e.g. 'prepare-agent 3'");
  const conf = agentctlConf(process.env, log);
  const n = Number(argv[0]);
  checkAgentMax(n, conf);
  const a = ensureAgent(conf, n, log);
  const lines = {
    AGENT_NAME: a.name,
    AGENT_UID: a.uid,
    AGENT_GID: a.gid,
    AGENT_HOME: a.home,
    AGENT_STATE: a.state,
    CLAUDE_DIR: a.claudeDir,
    WORKSPACE: a.workspace,
  };
  process.stdout.write(
    Object.entries(lines)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(""),
  );
  return 0;
}

export async function run(cmd: string | undefined, rest: string[]): Promise<number> {
  try {
    switch (cmd) {
      case "reconcile":
      case "restart":
      case "logs":
      case "attach-select":
      case "login-restart":
        return agentctlMain(cmd, rest) ?? 2;
      case "status":
        return await status(rest);
      case "prepare-agent":
        return prepareAgent(rest);
      case "watch":
        return await monitor(true);
      case "monitor":
        return await monitor(false);
      case "send":
        return sendCommand(rest);
      case "notify-test":
        return await notifyTest();
      case "autostop":
        return await autostopCommand(loadHostConf(), log);
      case "claude-env":
        return (await import("./agents/claude-env")).claudeEnvMain(rest);
      case "docker-env":
        return (await import("./docker/docker-main")).dockerEnvMain(rest);
      case "docker-idle":
        return (await import("./docker/docker-main")).dockerIdleMain();
      case "autostop-status":
        process.stdout.write(autostopStatus(loadHostConf(), rest[0] === "--json"));
        return 0;
      default:
        log(
          `agent-host.js: unknown command '${cmd ?? ""}' (hook, conf, status, reconcile, restart, logs, attach-select, login-restart, watch, monitor, send, notify-test, web, autostop, autostop-status, claude-env, docker-env, docker-idle)`,
        );
        return 2;
    }
  } catch (error) {
    return failed(error, cmd, rest);
  }
}
