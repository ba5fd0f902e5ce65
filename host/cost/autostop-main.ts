// The auto-stop's commands in agent-host.js: `autostop` (the daemon agent-host-autostop.service
// runs) and `autostop-status` (the lines `agentctl status` prints under its table: VM uptime, how
// long the agents have been idle, and when the auto-stop comes or why it does not). The agents'
// states come from the hook recorder through host/agents/facts.ts (issue 15), read here behind
// agentActivity() alone.
import * as os from "os";
import {
  activityText,
  agentsIdleFor,
  decide,
  describeDecision,
  shortDuration,
  type AgentActivity,
} from "./autostop";
import { readState, runAutoStop } from "./autostop-run";
import type { HostConf } from "../conf/conf";
import type { Effective } from "../attention/effective";
import { snapshot } from "../agents/facts";
import { attachCommand, Notifier } from "../attention/notify";
import { webhookReader } from "../attention/monitor";
import { bootTime, presence } from "./presence";

/** Every agent's state as the auto-stop sees it. */
export function agentActivity(conf: HostConf): AgentActivity[] {
  return activityOf(snapshot(conf).rows);
}

export function activityOf(rows: readonly Effective[]): AgentActivity[] {
  return rows.map((r) => ({ n: r.n, state: r.state, since: r.since, reason: r.reason }));
}

const NOTIFY_TIMEOUT_MS = 15_000;

export async function autostopCommand(
  conf: HostConf,
  log: (line: string) => void,
): Promise<number> {
  const webhook = webhookReader(conf.notifyWebhookFile);
  const host = os.hostname();
  return runAutoStop(
    {
      runDir: conf.runDir,
      limitMs: conf.autoStopSeconds * 1000,
      pollMs: conf.autoStopPollSeconds * 1000,
      command: conf.autoStopCommand,
    },
    {
      now: () => Date.now(),
      bootAt: bootTime() ?? Date.now(),
      agents: () => agentActivity(conf),
      presence: () => presence(conf.tmuxSocket),
      log,
      notify: async (text) => {
        if (!webhook()) return;
        // The stop must not wait on a slow or failing webhook for long: one bounded attempt.
        const notifier = new Notifier({ webhook, log });
        const sent = notifier.deliver({
          agent: 0,
          event: "auto-stop",
          reason: text,
          at: Date.now(),
          host,
          attach: attachCommand(conf.adminUser, host, 1).replace(/ 1$/, ""),
        });
        await Promise.race([
          sent,
          new Promise((resolve) => setTimeout(resolve, NOTIFY_TIMEOUT_MS)),
        ]);
      },
    },
  );
}

/** Seconds the machine has been up, from /proc/uptime (os.uptime reads the same). */
const uptimeMs = () => os.uptime() * 1000;

/** The lines under `agentctl status`'s table; with json, one JSON object. */
/** agents: their states when the caller has them already (agentctl status), else read now. */
export function autostopStatus(
  conf: HostConf,
  json: boolean,
  agents: AgentActivity[] = agentActivity(conf),
): string {
  const now = Date.now();
  const bootAt = bootTime() ?? now - uptimeMs();
  const idleMs = agentsIdleFor(agents, now, bootAt);
  const decision = decide({
    now,
    limitMs: conf.autoStopSeconds * 1000,
    bootAt,
    lastBusyAt: readState(conf.runDir).lastBusyAt,
    agents,
    presence: presence(conf.tmuxSocket),
  });
  if (json) {
    return `${JSON.stringify({
      vm_uptime_seconds: Math.round((now - bootAt) / 1000),
      agents_idle_seconds: idleMs === undefined ? null : Math.round(idleMs / 1000),
      auto_stop: {
        kind: decision.kind,
        limit_seconds: conf.autoStopSeconds,
        ...(decision.kind === "waiting"
          ? { stop_in_seconds: Math.round((decision.stopAt - now) / 1000) }
          : {}),
        ...(decision.kind === "held" ? { held_by: decision.reasons } : {}),
      },
    })}\n`;
  }
  return `VM up ${shortDuration(now - bootAt)}; ${activityText(agents, idleMs)}\n${describeDecision(decision, now, conf.autoStopSeconds * 1000)}\n`;
}
