// The host files: real files in this folder, shipped to the VM (bash scripts without their
// comments: shippedScript) by cloud-init at first boot and by the fleet's reconcile command on
// every deploy. One list, so both paths ship the same set. See HOST.md for what each one does.
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
 * (once per process, ~0.1 s), so what ships is always what host/ says. Shell scripts ship
 * without their whole-line comments (shippedScript).
 */
export function readHostFiles(root: string = __dirname): HostFileContent[] {
  return HOST_FILES.map((file) => ({
    ...file,
    content:
      file.source === BUNDLE_SOURCE
        ? (bundle ??= buildHostBundle())
        : shippedScript(readFileSync(path.join(root, file.source), "utf8")),
  }));
}

/** A here-document's opening on a line (`<<EOF`, `<<-'EOF'`, `<< "EOF"`; not a `<<<` string). */
const HEREDOC = /(?<!<)<<(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2/g;

/**
 * A bash script as it ships: the shebang, then every line but whole-line comments and blank
 * lines, except inside a here-document, whose lines are data. The comments stay in the
 * repository, where they are read; on the VM they cost a third of the scripts' share of the
 * user-data (tests/user-data-size.test.ts). tests/shipped-scripts.test.ts proves with bash itself
 * that each shipped script is the same program as its source (`declare -f` of both, which prints
 * the parsed code). Any other file is returned as it is.
 */
export function shippedScript(text: string): string {
  if (!text.startsWith("#!/usr/bin/env bash\n")) return text;
  const [shebang, ...lines] = text.split("\n");
  const out = [shebang];
  const pending: { end: string; tabs: boolean }[] = [];
  let inside: { end: string; tabs: boolean } | undefined;
  for (const line of lines) {
    if (inside) {
      out.push(line);
      if ((inside.tabs ? line.replace(/^\t+/, "") : line) === inside.end) inside = pending.shift();
      continue;
    }
    if (/^\s*(#.*)?$/.test(line)) continue;
    out.push(line);
    for (const m of line.matchAll(HEREDOC)) pending.push({ end: m[3], tabs: m[1] === "-" });
    inside = pending.shift();
  }
  return `${out.join("\n")}\n`;
}
