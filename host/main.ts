// agent-host.js: the host logic in TypeScript, bundled into one file by esbuild
// (cloud-init/host-bundle.ts; built, never tracked) and run by the VM's Node. agentctl calls
// it for the commands below; Claude Code's managed hooks call `hook` directly.
//
//   hook           record one hook event (stdin: the payload); as the agent, inside claude
//   conf [--as NAME] [--vars SCRIPT] [--file F] [--quiet] [--unchecked] [KEY...]  host.conf
//                  through the one parser (host/conf/conf.ts), as KEY=value lines, or as the
//                  script's own name=value lines (--vars): how the bash scripts read it
//   apply --agents N --bundle-sha256 SHA --instance-id ID < bundle  the day-2 step (host/apply/apply.ts),
//                  run by cloud-init/host/apply from the bundle being deployed
//   status [--json]  agentctl status: one row per agent (host/attention/status.ts)
//   reconcile, restart, logs  agentctl's commands of those names (host/agents/agentctl.ts); with
//                  attach-select and login-restart, the tmux halves of agentctl attach and login
//   watch          the control window: live view, tmux marks, notifications
//   monitor        the same without the view
//   send ...       type a prompt into agents (host/agents/send.ts)
//   notify-test    send a test message to the configured webhook
//   web [--url | --rotate-token]  the dashboard (agent-host-web.service; host/web/main.ts)
//   autostop       the auto-stop daemon (agent-host-autostop.service; host/cost/autostop-main.ts)
//   autostop-status [--json]  VM uptime, agents' idle time, when the auto-stop comes or why not
//   prepare-agent N  (root, the wrapper) agent N's user, home, workspace and state folders, made
//                  safely (host/agents/agent-user.ts); prints its ids and paths as KEY=value lines
//   own-checkout WS  (as the agent, the migration) a shared worktree becomes its own repository
//   claude-env N   what agent-N's claude gets from host.conf in its environment (agent-wrapper;
//                  host/agents/claude-env.ts): the site's pairs, the provider's, its Docker's
//   docker-env N   the Docker variables alone (host/docker/)
//   docker-idle    stop the agents' idle rootless Docker daemons (agent-docker-idle.timer)
import { confMain } from "./conf/conf";
import { hookMain } from "./attention/hook";

const AGENTCTL_COMMANDS = new Set([
  "reconcile",
  "restart",
  "logs",
  "attach-select",
  "login-restart",
]);

// `hook` runs on every hook event while claude waits: it loads the recorder alone (fs, path). The
// other commands (monitor, notifier, tmux, send) load on demand.
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === "hook") return hookMain();
  if (cmd === "conf") return confMain(rest);
  if (cmd === "own-checkout") return (await import("./agents/own-checkout")).ownCheckoutMain(rest);
  if (cmd === "apply") return (await import("./apply/apply")).applyMain(rest);
  if (cmd === "web") return (await import("./web/main")).webCommand(rest);
  // reconcile and its kin load agentctl's modules alone (host/agents/agentctl-main.ts).
  if (AGENTCTL_COMMANDS.has(cmd))
    return (await import("./agents/agentctl-main")).agentctlMain(cmd, rest) ?? 2;
  const { run } = await import("./commands");
  return run(cmd, rest);
}

if (require.main === module) {
  // `agentctl logs 3 --lines 5000 | head` closes the pipe early: the reader's choice, not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
