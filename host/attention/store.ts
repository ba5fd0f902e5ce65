// The state files on disk, per agent, in the agent's own state folder (STATE_DIR/agent-N, which
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

/**
 * Runs `fn` holding the agent's lock (an O_EXCL file), so two hooks of one agent that fire
 * together (a Notification beside a tool hook) do not lose each other's update. Bounded: a lock
 * older than STALE_LOCK_MS is taken over, and after LOCK_WAIT_MS the update runs anyway.
 */
export function withLock<T>(dir: string, fn: () => T): T {
  const lock = path.join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  let held = false;
  while (!held) {
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
    } catch {
      let age = 0;
      try {
        age = Date.now() - fs.lstatSync(lock).mtimeMs;
      } catch {
        continue;
      }
      if (age > STALE_LOCK_MS) {
        fs.rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) break;
      sleepSync(5);
    }
  }
  try {
    return fn();
  } finally {
    if (held) fs.rmSync(lock, { force: true });
  }
}
