// How apply runs other programs: as root with its output on stderr (stdout is agentctl's JSON
// summary only), or as the agent user with nothing of root's environment.
import { spawnSync, type StdioOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const applyLog = (line: string): void => {
  process.stderr.write(`apply: ${line}\n`);
};

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Output of a captured child; git config listings and gh's chatter are small. */
const MAX_BUFFER = 64 * 1024 * 1024;

export interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

/** A user as passwd has it (getent: NSS, not only /etc/passwd). */
export interface AgentUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** One `getent passwd` line → the user; undefined when it is not one. */
export function parsePasswd(line: string): AgentUser | undefined {
  const f = line.trim().split(":");
  if (f.length < 7 || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) return undefined;
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

export function lookupUser(name: string): AgentUser | undefined {
  const r = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  return r.status === 0 ? parsePasswd(r.stdout.split("\n")[0]) : undefined;
}

/** `command -v NAME` on root's PATH: the absolute path, or undefined. */
export function commandPath(name: string, envPath = process.env.PATH ?? ""): string | undefined {
  for (const dir of envPath.split(":").filter(Boolean)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Runs a program as root. `stdout: "stderr"` (the default) sends its output to apply's stderr;
 * "inherit" gives it apply's stdout (agentctl's summary). Exit status, or 127 when it did not start.
 */
export function runRoot(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; stdout?: "stderr" | "inherit" } = {},
): number {
  const stdio: StdioOptions = ["ignore", opts.stdout === "inherit" ? "inherit" : 2, 2];
  const r = spawnSync(file, args, { stdio, env: { ...process.env, ...opts.env } });
  if (r.error) applyLog(`could not run ${file}: ${r.error.message}`);
  return r.status ?? 127;
}

/**
 * Runs argv as the agent user with its HOME and nothing else of root's environment. Every file in
 * the agent's home is written this way: it belongs to the agent, and a symlink the agent planted
 * there cannot turn a write into a root write elsewhere. From the agent's home, never the caller's
 * directory: sudo keeps the cwd of the SSH login (agent-admin's home, 0750 on Ubuntu), where git
 * run as the agent stops with "failed to stat". `umask`: the agent's files are created under it.
 */
export function asAgent(
  a: AgentUser,
  argv: readonly string[],
  input: string | Buffer = "",
  umask?: number,
): Ran {
  const cwd = fs.existsSync(a.home) && fs.statSync(a.home).isDirectory() ? a.home : "/";
  const env = [
    `HOME=${a.home}`,
    `USER=${a.name}`,
    `LOGNAME=${a.name}`,
    `PATH=${SYSTEM_PATH}`,
    "LANG=C.UTF-8",
    "GIT_TERMINAL_PROMPT=0",
  ];
  const ids = [`--reuid=${a.uid}`, `--regid=${a.gid}`, "--init-groups", "--"];
  // spawnSync is synchronous: nothing else runs while the umask is narrowed for the child.
  const before = umask === undefined ? undefined : process.umask(umask);
  try {
    const r = spawnSync("setpriv", [...ids, "env", "-i", ...env, ...argv], {
      cwd,
      input,
      maxBuffer: MAX_BUFFER,
    });
    return {
      status: r.status ?? 127,
      stdout: r.stdout?.toString("utf8") ?? "",
      stderr: r.stderr?.toString("utf8") ?? (r.error ? r.error.message : ""),
    };
  } finally {
    if (before !== undefined) process.umask(before);
  }
}
