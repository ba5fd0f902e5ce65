// Where the host files live in the repo (what cloud-init ships to the VM, HOST.md), and where the
// VM has the ones Claude Code's managed hooks name: shared by the suites that run them for real.
import * as path from "path";
import { hostSettingsFor, renderBootHostConf, renderHostConf } from "../cloud-init/host-config";
import { parseConfig } from "../config";

export const REPO = path.resolve(__dirname, "..");
export const AGENTCTL = path.join(REPO, "cloud-init/host/agentctl");
export const WRAPPER = path.join(REPO, "cloud-init/host/agent-wrapper");
export const TMUX_CONF = path.join(REPO, "cloud-init/host/tmux.conf");
export const BUNDLE = path.join(REPO, "cloud-init/host/agent-host.js");
export const MANAGED = path.join(REPO, "cloud-init/claude/managed-settings.json");
/** Claude Code's managed settings folder on Linux; the hooks there cannot be turned off. */
export const MANAGED_DIR = "/etc/claude-code";
/** On the VM: the folder the managed hooks' command (agent-host.js) is in. */
export const LIB_DIR = "/usr/local/lib/agent-host";

/**
 * What differs on a test machine from the VM, and so may be set in the host.conf.local a test
 * writes (apply appends host.conf.local to host.conf, as a site does): users, paths, and the
 * supervisor's delays. Everything else comes from the stack's own renderer.
 */
const SITE_KEYS = new Set([
  "AGENT_USER",
  "AGENT_UID_BASE",
  "AGENT_HOMES_DIR",
  "ADMIN_USER",
  "CLAUDE_BIN",
  "WORKSPACES_DIR",
  "STATE_DIR",
  "RUN_DIR",
  "TMUX_SOCKET",
  "API_KEY_FILE",
  "LOGIN_TOKEN_FILE",
  "NOTIFY_WEBHOOK_FILE",
  "START_STAGGER_SECONDS",
  "RESTART_BACKOFF_MIN_SECONDS",
  "RESTART_BACKOFF_MAX_SECONDS",
  "STOP_TIMEOUT_SECONDS",
  "SHUTDOWN_STOP_TIMEOUT_SECONDS",
  "DASHBOARD_TOKEN_FILE",
  // The auto-stop's delays in seconds (the stack has whole minutes) and the stand-in systemctl.
  "AUTO_STOP_SECONDS",
  "AUTO_STOP_POLL_SECONDS",
  "AUTO_STOP_COMMAND",
]);

/**
 * host.conf as the product writes it for a stack config (config.ts parseConfig, then
 * cloud-init/host-config.ts renderHostConf: the text the reconcile command installs), with this
 * machine's site overrides appended the way apply appends host.conf.local. A site key outside
 * SITE_KEYS is refused: a test never gives the host a value the stack cannot render.
 */
export function productHostConf(
  stack: Record<string, string>,
  site: Record<string, string>,
  render = renderHostConf,
): string {
  const outside = Object.keys(site).filter((k) => !SITE_KEYS.has(k));
  if (outside.length > 0) {
    throw new Error(
      `productHostConf: ${outside.join(", ")} must come from the stack config (agent-host:<key>), not the site overrides`,
    );
  }
  const { config } = parseConfig({
    "gcp:project": "agent-host-test",
    "gcp:zone": "europe-west1-b",
    "agent-host:sshSourceRanges": JSON.stringify(["127.0.0.1/32"]),
    ...stack,
  });
  const local = Object.entries(site)
    .map(([k, v]) => `${k}=${v}\n`)
    .join("");
  return `${render(hostSettingsFor(config, []))}# --- appended from host.conf.local (this test machine) ---\n${local}`;
}

/** The host.conf cloud-init writes at first boot (renderBootHostConf), with the site's overrides. */
export const bootHostConf = (stack: Record<string, string>, site: Record<string, string>) =>
  productHostConf(stack, site, renderBootHostConf);
