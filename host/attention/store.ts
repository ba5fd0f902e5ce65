// The state files on disk, per agent, in the agent's own state folder (AGENT_HOST_STATE_DIR, which
// the agent owns: the recorder runs as the agent, inside claude's hooks):
//   status.json   the current Recorded state (host/attention/state.ts), replaced atomically
//   events.jsonl  one Transition per line, bounded (oldest half dropped past EVENTS_MAX_BYTES)
// Root (agentctl, the monitor) reads them without following symlinks and within a size bound: the
// folder belongs to the agent, so nothing in it is trusted.
import * as fs from "fs";
import * as path from "path";
import { parseRecorded, parseTransition, type Recorded, type Transition } from "./state";

export const STATUS_FILE = "status.json";
export const EVENTS_FILE = "events.jsonl";
export const LOCK_FILE = "status.lock";
const STATUS_MAX_BYTES = 16 * 1024;
export const EVENTS_MAX_BYTES = 256 * 1024;
/** A lock older than this was left by a recorder that died: hooks finish in milliseconds. */
const STALE_LOCK_MS = 2000;
const LOCK_WAIT_MS = 1500;

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Writes a file so that readers see the old or the new content, never a part. */
export function writeAtomic(file: string, content: string, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(
    tmp,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW,
    mode,
  );
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * Reads a regular file, never through a symlink, at most `maxBytes`; with `uid`, only a file that
 * user owns (root reading an agent's folder must not be turned into reading root's files).
 */
export function readBounded(file: string, maxBytes: number, uid?: number): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
    );
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (uid !== undefined && st.uid !== uid)) return undefined;
    const size = Math.min(st.size, maxBytes);
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n <= 0) break;
      off += n;
    }
    return buf.subarray(0, off).toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}

export function readStatus(dir: string, uid?: number): Recorded | undefined {
  const text = readBounded(path.join(dir, STATUS_FILE), STATUS_MAX_BYTES, uid);
  return text === undefined ? undefined : parseRecorded(text);
}

/** Transitions with seq > `after`, oldest first (lines that do not parse are skipped). */
export function readTransitions(dir: string, after: number, uid?: number): Transition[] {
  const text = readBounded(path.join(dir, EVENTS_FILE), EVENTS_MAX_BYTES * 2, uid);
  if (!text) return [];
  const out: Transition[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const t = parseTransition(line);
    if (t && t.seq > after) out.push(t);
  }
  return out.sort((a, b) => a.seq - b.seq);
}

export function appendTransition(dir: string, t: Transition): void {
  const file = path.join(dir, EVENTS_FILE);
  const fd = fs.openSync(
    file,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW,
    0o600,
  );
  let size: number;
  try {
    fs.writeSync(fd, `${JSON.stringify(t)}\n`);
    size = fs.fstatSync(fd).size;
  } finally {
    fs.closeSync(fd);
  }
  if (size > EVENTS_MAX_BYTES) {
    const lines = fs.readFileSync(file, "utf8").split("\n").filter(Boolean);
    writeAtomic(file, `${lines.slice(Math.floor(lines.length / 2)).join("\n")}\n`);
  }
}

/** Why the lock could not be had: the one line the recorder prints (claude's debug log). */
export class LockError extends Error {}

/** The first pause between two tries of a held lock; each next pause doubles, up to LOCK_MAX_PAUSE_MS. */
const LOCK_FIRST_PAUSE_MS = 2;
const LOCK_MAX_PAUSE_MS = 100;

/**
 * Runs `fn` holding the agent's lock (an O_EXCL file), so two hooks of one agent that fire
 * together (a Notification beside a tool hook) do not lose each other's update. Bounded, never a
 * spin: a held lock is retried with a doubling pause up to `waitMs`, a lock older than
 * STALE_LOCK_MS (its recorder died) is taken over once, and after `waitMs` the update runs without
 * the lock (the event is recorded; at worst a racing one is overwritten). A folder where the lock
 * cannot be created at all (not writable, gone, full) is no wait: LockError at once, naming the
 * folder, the cause and the fix, and the caller reports it.
 */
export function withLock<T>(
  dir: string,
  fn: () => T,
  opts: { waitMs?: number; log?: (line: string) => void; sleep?: (ms: number) => void } = {},
): T {
  const lock = path.join(dir, LOCK_FILE);
  const waitMs = opts.waitMs ?? LOCK_WAIT_MS;
  const sleep = opts.sleep ?? sleepSync;
  const deadline = Date.now() + waitMs;
  let pause = LOCK_FIRST_PAUSE_MS;
  let tookOver = false;
  let held = false;
  for (;;) {
    try {
      fs.closeSync(
        fs.openSync(
          lock,
          fs.constants.O_WRONLY |
            fs.constants.O_CREAT |
            fs.constants.O_EXCL |
            fs.constants.O_NOFOLLOW,
          0o600,
        ),
      );
      held = true;
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EEXIST") throw lockError(dir, error as NodeJS.ErrnoException);
    }
    let age: number | undefined;
    try {
      age = Date.now() - fs.lstatSync(lock).mtimeMs;
    } catch {
      age = undefined; // released meanwhile: try again at once (still bounded by the deadline)
    }
    if (age !== undefined && age > STALE_LOCK_MS && !tookOver) {
      tookOver = true;
      try {
        fs.rmSync(lock, { force: true });
      } catch (error) {
        throw lockError(dir, error as NodeJS.ErrnoException);
      }
      continue;
    }
    if (Date.now() >= deadline) break;
    if (age !== undefined) {
      sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
      pause = Math.min(pause * 2, LOCK_MAX_PAUSE_MS);
    }
  }
  if (!held)
    opts.log?.(
      `${lock} still held after ${waitMs} ms (another hook of this agent is stuck); recorded without it`,
    );
  try {
    return fn();
  } finally {
    if (held) fs.rmSync(lock, { force: true });
  }
}

function lockError(dir: string, error: NodeJS.ErrnoException): LockError {
  const uid = process.getuid?.() ?? "?";
  const fix =
    error.code === "EACCES" || error.code === "EPERM" || error.code === "EROFS"
      ? `the folder must belong to the agent's user (uid ${uid}): chown it, or run 'sudo agentctl restart N' to have the wrapper make it again`
      : error.code === "ENOSPC" || error.code === "EDQUOT"
        ? "free space on that disk"
        : error.code === "ENOENT" || error.code === "ENOTDIR"
          ? "restart the agent ('sudo agentctl restart N') to have the wrapper make it again"
          : "see the error";
  return new LockError(
    `cannot record in ${dir}: ${error.code ?? "error"} (${error.message.replace(/^[A-Z]+: /, "")}); ${fix}`,
  );
}
