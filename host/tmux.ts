// tmux, always on agent-host's socket, always with argv (never a shell), always with exact
// targets: `=agents:=agent-3` (tmux matches names by prefix: agent-1 would hit agent-10).
import { spawnSync } from "child_process";

export const SESSION = "agents";

export const windowTarget = (n: number): string => `=${SESSION}:=agent-${n}`;

export interface TmuxResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function tmux(socket: string, args: readonly string[], input?: string): TmuxResult {
  const r = spawnSync("tmux", ["-S", socket, ...args], {
    encoding: "utf8",
    input,
    timeout: 10_000,
  });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export interface WindowInfo {
  id: string;
  dead: boolean;
  panePid: number;
  exitCode?: number;
}

/** agent-N windows of the session by N (the first one of a name, as agentctl does). */
export function agentWindows(socket: string): Map<number, WindowInfo> {
  const out = new Map<number, WindowInfo>();
  const r = tmux(socket, [
    "list-windows",
    "-t",
    `=${SESSION}`,
    "-F",
    "#{window_id}|#{pane_dead}|#{pane_pid}|#{pane_dead_status}|#{pane_dead_signal}|#{window_name}",
  ]);
  if (r.code !== 0) return out;
  for (const line of r.stdout.split("\n")) {
    const [id, dead, pid, status, signal, ...rest] = line.split("|");
    const m = /^agent-([1-9][0-9]*)$/.exec(rest.join("|"));
    if (!m || out.has(Number(m[1]))) continue;
    const code = signal ? 128 + Number(signal) : status ? Number(status) : undefined;
    out.set(Number(m[1]), {
      id,
      dead: dead === "1",
      panePid: Number(pid),
      ...(code !== undefined && Number.isFinite(code) ? { exitCode: code } : {}),
    });
  }
  return out;
}
