// Where the host files live in the repo (what cloud-init ships to the VM, HOST.md), and where the
// VM has the ones Claude Code's managed hooks name: shared by the suites that run them for real.
import * as path from "path";

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
