// How apply runs other programs: as root with its output on stderr (stdout is agentctl's JSON
// summary only), or as the agent user with nothing of root's environment.
import { spawnSync, type StdioOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { agentCwd, asAgentArgv, type AgentUser } from "../agents/agent-user";

export { lookupUser, type AgentUser } from "../agents/agent-user";

export const applyLog = (line: string): void => {
  process.stderr.write(`apply: ${line}\n`);
};

/** Output of a captured child; git config listings and gh's chatter are small. */
const MAX_BUFFER = 64 * 1024 * 1024;

export interface Ran {
  status: number;
  stdout: string;
  stderr: string;
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
 * there cannot turn a write into a root write elsewhere (host/agents/agent-user.ts). `umask`: the agent's
 * files are created under it.
 */
export function asAgent(
  a: AgentUser,
  argv: readonly string[],
  input: string | Buffer = "",
  umask?: number,
): Ran {
  // spawnSync is synchronous: nothing else runs while the umask is narrowed for the child.
  const before = umask === undefined ? undefined : process.umask(umask);
  try {
    const r = spawnSync("setpriv", asAgentArgv(a, argv), {
      cwd: agentCwd(a),
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
