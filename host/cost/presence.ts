// Who is there, for the auto-stop: tmux clients attached to the agents' server, and SSH sessions.
//
// SSH sessions are read from sshd's own process titles, not from utmp (`who`) or logind: sshd
// writes utmp only for sessions with a terminal, so `ssh vm 'long command'` and the stack's own
// reconcile command (a `pulumi up` in progress) would not count, and logind is absent in
// containers. Every authenticated session has a per-session sshd process titled
// "sshd: USER@pts/N" or "sshd: USER@notty" (OpenSSH's sshd.c/session.c setproctitle; 9.8 and later
// name the process sshd-session). Unauthenticated connections are titled "[preauth]" or "[net]"
// and do not count: a port scan must not keep the VM up.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { Presence } from "./autostop";

const SSH_SESSION_RE = /^sshd(?:-session)?: (\S+@(?:pts\/\d+|notty|tty\d+))\s*$/;

/** The session part of an sshd process title ("agent-admin@pts/0"), or undefined. */
export function sshSessionOf(cmdline: string): string | undefined {
  return SSH_SESSION_RE.exec(cmdline.replace(/\0/g, " ").trimEnd())?.[1];
}

/** Every authenticated SSH session on this machine, as USER@TTY (with the sshd pid). */
export function sshSessions(procRoot = "/proc"): string[] {
  let pids: string[];
  try {
    pids = fs.readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  const sessions: string[] = [];
  for (const pid of pids) {
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(path.join(procRoot, pid, "cmdline"), "utf8");
    } catch {
      continue; // ended while we looked
    }
    const session = sshSessionOf(cmdline);
    if (session) sessions.push(`${session} (pid ${pid})`);
  }
  return sessions.sort();
}

/** Clients attached to the agents' tmux server, as their terminal (or pid). */
export function tmuxClients(socket: string): string[] {
  const r = spawnSync(
    "tmux",
    ["-S", socket, "list-clients", "-F", "#{client_tty} pid #{client_pid}"],
    {
      encoding: "utf8",
      timeout: 10_000,
    },
  );
  if (r.status !== 0) return [];
  return (r.stdout ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

export function presence(socket: string, procRoot = "/proc"): Presence {
  return { tmuxClients: tmuxClients(socket), sshSessions: sshSessions(procRoot) };
}

/** Epoch ms the machine booted (/proc/stat btime), or undefined. */
export function bootTime(procRoot = "/proc"): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(fs.readFileSync(path.join(procRoot, "stat"), "utf8"));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}
