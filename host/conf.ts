// host.conf as the TypeScript host code reads it: KEY=value lines, `#` comments, no quoting, no
// expansion; the last value of a key wins (host.conf.local is appended after the stack's lines).
// Defaults are agentctl's (cloud-init/HOST.md); keys other parts of the host read are ignored here.
import * as fs from "fs";

export const DEFAULT_CONFIG = "/etc/agent-host/host.conf";

export interface HostConf {
  agentCount: number;
  agentUser: string;
  adminUser: string;
  stateDir: string;
  workspacesDir: string;
  runDir: string;
  tmuxSocket: string;
  /** Root-only file holding the webhook URL; absent or empty = no notifications. */
  notifyWebhookFile: string;
  /** Also notify when an agent finishes a turn after real work. */
  notifyOnIdle: boolean;
  /** Quiet time before the VM powers itself off (host/autostop.ts); 0 = off. */
  autoStopSeconds: number;
  /** The stop command, as argv words (never a shell). */
  autoStopCommand: string;
  autoStopPollSeconds: number;
}

export const HOST_CONF_DEFAULTS: HostConf = {
  agentCount: 1,
  agentUser: "agent",
  adminUser: "agent-admin",
  stateDir: "/home/agent/.agent-host",
  workspacesDir: "/workspaces",
  runDir: "/run/agent-host",
  tmuxSocket: "/run/agent-host/tmux.sock",
  notifyWebhookFile: "/etc/agent-host/secrets/notify-webhook-url",
  notifyOnIdle: true,
  // Off unless the stack says otherwise: a host.conf from before auto-stop never stops the VM.
  autoStopSeconds: 0,
  autoStopCommand: "systemctl poweroff",
  autoStopPollSeconds: 15,
};

export function parseHostConf(text: string): HostConf {
  const values = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    values.set(m[1], m[2].trimEnd());
  }
  const d = HOST_CONF_DEFAULTS;
  const text_ = (key: string, fallback: string) => values.get(key) || fallback;
  const num = (key: string, fallback: number) => {
    const v = Number(values.get(key));
    return values.has(key) && Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  const bool = (key: string, fallback: boolean) => {
    const v = values.get(key)?.toLowerCase();
    return v === "true" ? true : v === "false" ? false : fallback;
  };
  return {
    agentCount: num("AGENT_COUNT", d.agentCount),
    agentUser: text_("AGENT_USER", d.agentUser),
    adminUser: text_("ADMIN_USER", d.adminUser),
    stateDir: text_("STATE_DIR", d.stateDir),
    workspacesDir: text_("WORKSPACES_DIR", d.workspacesDir),
    runDir: text_("RUN_DIR", d.runDir),
    tmuxSocket: text_("TMUX_SOCKET", d.tmuxSocket),
    notifyWebhookFile: text_("NOTIFY_WEBHOOK_FILE", d.notifyWebhookFile),
    notifyOnIdle: bool("NOTIFY_ON_IDLE", d.notifyOnIdle),
    autoStopSeconds: num("AUTO_STOP_SECONDS", d.autoStopSeconds),
    autoStopCommand: text_("AUTO_STOP_COMMAND", d.autoStopCommand),
    autoStopPollSeconds:
      num("AUTO_STOP_POLL_SECONDS", d.autoStopPollSeconds) || d.autoStopPollSeconds,
  };
}

export function loadHostConf(env: NodeJS.ProcessEnv = process.env): HostConf {
  const file = env.AGENTCTL_CONFIG || DEFAULT_CONFIG;
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    // agentctl says "no config; using defaults" already.
  }
  return parseHostConf(text);
}
