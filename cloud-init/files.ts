// The host files: real files in this folder, shipped verbatim to the VM by cloud-init at first
// boot and by the fleet's reconcile command on every deploy. One list, so both paths ship the
// same set. See HOST.md for what each one does.
import { readFileSync } from "fs";
import * as path from "path";
import { buildHostBundle } from "./host-bundle";

export interface HostFile {
  /** Path in the repository, relative to cloud-init/. */
  source: string;
  /** Absolute path on the VM. */
  path: string;
  /** Octal file mode on the VM. */
  mode: "0755" | "0644";
}

/** The one host file that is built, not read: the bundle of the TypeScript in host/. */
export const BUNDLE_SOURCE = "host/agent-host.js";

export const HOST_FILES: readonly HostFile[] = [
  { source: "host/agentctl", path: "/usr/local/bin/agentctl", mode: "0755" },
  { source: "host/agent-wrapper", path: "/usr/local/lib/agent-host/agent-wrapper", mode: "0755" },
  {
    source: "host/seed-claude-config",
    path: "/usr/local/lib/agent-host/seed-claude-config",
    mode: "0755",
  },
  // Built from host/**/*.ts by esbuild (host-bundle.ts) whenever the files are read; not in git.
  { source: BUNDLE_SOURCE, path: "/usr/local/lib/agent-host/agent-host.js", mode: "0755" },
  { source: "host/data-disk", path: "/usr/local/lib/agent-host/data-disk", mode: "0755" },
  { source: "host/install-docker", path: "/usr/local/lib/agent-host/install-docker", mode: "0755" },
  { source: "host/agent-dockerd", path: "/usr/local/lib/agent-host/agent-dockerd", mode: "0755" },
  {
    source: "apparmor/rootlesskit",
    path: "/usr/local/lib/agent-host/apparmor-rootlesskit",
    mode: "0644",
  },
  {
    source: "host/install-claude-code",
    path: "/usr/local/lib/agent-host/install-claude-code",
    mode: "0755",
  },
  { source: "host/apply", path: "/usr/local/lib/agent-host/apply", mode: "0755" },
  { source: "host/first-boot", path: "/usr/local/lib/agent-host/first-boot", mode: "0755" },
  { source: "host/tmux.conf", path: "/etc/agent-host/tmux.conf", mode: "0644" },
  { source: "host/sshd.conf", path: "/etc/ssh/sshd_config.d/60-agent-host.conf", mode: "0644" },
  {
    source: "systemd/agent-host-data.service",
    path: "/etc/systemd/system/agent-host-data.service",
    mode: "0644",
  },
  {
    source: "systemd/agent-host.service",
    path: "/etc/systemd/system/agent-host.service",
    mode: "0644",
  },
  {
    source: "systemd/agent-host-autostop.service",
    path: "/etc/systemd/system/agent-host-autostop.service",
    mode: "0644",
  },
  // Each agent's own Docker (dockerMode rootless; docs/operations.md, "Docker").
  {
    source: "systemd/agent-docker@.socket",
    path: "/etc/systemd/system/agent-docker@.socket",
    mode: "0644",
  },
  {
    source: "systemd/agent-docker@.service",
    path: "/etc/systemd/system/agent-docker@.service",
    mode: "0644",
  },
  {
    source: "systemd/user/agent-dockerd.service",
    path: "/etc/systemd/user/agent-dockerd.service",
    mode: "0644",
  },
  {
    source: "systemd/agent-docker-idle.service",
    path: "/etc/systemd/system/agent-docker-idle.service",
    mode: "0644",
  },
  {
    source: "systemd/agent-docker-idle.timer",
    path: "/etc/systemd/system/agent-docker-idle.timer",
    mode: "0644",
  },
  {
    source: "systemd/agent-host-web.service",
    path: "/etc/systemd/system/agent-host-web.service",
    mode: "0644",
  },
  {
    source: "claude/managed-settings.json",
    path: "/etc/claude-code/managed-settings.json",
    mode: "0644",
  },
];

export interface HostFileContent extends HostFile {
  content: string;
}

let bundle: string | undefined;

/**
 * Every host file: read from `root` (default: this folder), the bundle built from the sources
 * (once per process, ~0.1 s), so what ships is always what host/ says.
 */
export function readHostFiles(root: string = __dirname): HostFileContent[] {
  return HOST_FILES.map((file) => ({
    ...file,
    content:
      file.source === BUNDLE_SOURCE
        ? (bundle ??= buildHostBundle())
        : readFileSync(path.join(root, file.source), "utf8"),
  }));
}
