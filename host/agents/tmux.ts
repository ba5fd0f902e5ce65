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

/** One window of the session as list-windows shows it; text fields as tmux prints them. */
export interface Window {
  id: string;
  dead: boolean;
  pid: string;
  /** The dead pane's exit code (128 + signal for a signal); "" while it runs or before tmux reaps it. */
  code: string;
}

/** The session's windows by name (the first of a name) and the ids of later windows of a name. */
export interface WindowList {
  byName: Map<string, Window>;
  duplicates: string[];
}

// The name comes last and keeps any '|'; empty fields stay fields.
export const WINDOW_FORMAT =
  "#{window_id}|#{pane_dead}|#{pane_pid}|#{pane_dead_status}|#{pane_dead_signal}|#{window_name}";

export function parseWindowList(listing: string): WindowList {
  const byName = new Map<string, Window>();
  const duplicates: string[] = [];
  for (const line of listing.split("\n")) {
    const [id, dead, pid, status, signal, ...rest] = line.split("|");
    const name = rest.join("|");
    if (!name) continue;
    if (byName.has(name)) {
      duplicates.push(id);
      continue;
    }
    const code = signal ? String(128 + Number(signal)) : (status ?? "");
    byName.set(name, { id, dead: dead === "1", pid: pid ?? "", code });
  }
  return { byName, duplicates };
}

/** The session's windows; none when there is no session (or no server). */
export function listWindows(socket: string): WindowList {
  const r = tmux(socket, ["list-windows", "-t", `=${SESSION}`, "-F", WINDOW_FORMAT]);
  return parseWindowList(r.code === 0 ? r.stdout : "");
}

/** N of an agent-N window name (agent-1, never agent-01). */
export function agentNumber(name: string): number | undefined {
  const m = /^agent-([1-9][0-9]*)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** agent-N windows of the session by N (the first one of a name, as agentctl does). */
export function agentWindows(socket: string): Map<number, WindowInfo> {
  const out = new Map<number, WindowInfo>();
  for (const [name, w] of listWindows(socket).byName) {
    const n = agentNumber(name);
    if (n === undefined) continue;
    const code = w.code === "" ? NaN : Number(w.code);
    out.set(n, {
      id: w.id,
      dead: w.dead,
      panePid: Number(w.pid),
      ...(Number.isFinite(code) ? { exitCode: code } : {}),
    });
  }
  return out;
}
