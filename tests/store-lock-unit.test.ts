// The recorder's lock (host/attention/store.ts withLock) is bounded: it never spins, backs off
// while another hook holds it, takes over a lock its dead owner left, and refuses at once, in one
// line naming the folder, the cause and the fix, where the lock cannot be created at all (the
// old loop spun at 100% CPU there until killed: issue 23, point 4).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LOCK_FILE, LockError, withLock } from "../host/attention/store";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "store-lock-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test("a folder where no lock can be made: LockError at once, one line, no pause, fn not run", () => {
  const gone = path.join(dir, "no-such-agent");
  const pauses: number[] = [];
  let ran = false;
  let error: unknown;
  const t0 = Date.now();
  try {
    withLock(gone, () => (ran = true), { sleep: (ms) => pauses.push(ms) });
  } catch (e) {
    error = e;
  }
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(error).toBeInstanceOf(LockError);
  expect((error as Error).message).toBe(
    `cannot record in ${gone}: ENOENT (no such file or directory, open '${gone}/${LOCK_FILE}'); restart the agent ('sudo agentctl restart N') to have the wrapper make it again`,
  );
  expect((error as Error).message).not.toContain("\n");
  expect(pauses).toEqual([]);
  expect(ran).toBe(false);
});

test("a held lock: doubling pauses up to the deadline, then the update runs anyway and says so", () => {
  fs.writeFileSync(path.join(dir, LOCK_FILE), "");
  const pauses: number[] = [];
  const said: string[] = [];
  const result = withLock(dir, () => "recorded", {
    waitMs: 300,
    log: (l) => said.push(l),
    sleep: (ms) => {
      pauses.push(ms);
      // the clock moves as a real pause would move it
      const until = Date.now() + ms;
      while (Date.now() < until);
    },
  });
  expect(result).toBe("recorded");
  expect(pauses.slice(0, 6)).toEqual([2, 4, 8, 16, 32, 64]);
  expect(Math.max(...pauses)).toBeLessThanOrEqual(100);
  expect(pauses.length).toBeLessThan(20);
  expect(said).toEqual([
    `${path.join(dir, LOCK_FILE)} still held after 300 ms (another hook of this agent is stuck); recorded without it`,
  ]);
  // Someone else's lock is left alone.
  expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(true);
});

test("a lock left by a dead recorder (older than 2 s) is taken over once, and released", () => {
  const lock = path.join(dir, LOCK_FILE);
  fs.writeFileSync(lock, "");
  const old = new Date(Date.now() - 10_000);
  fs.utimesSync(lock, old, old);
  const pauses: number[] = [];
  expect(withLock(dir, () => fs.existsSync(lock), { sleep: (ms) => pauses.push(ms) })).toBe(true);
  expect(pauses).toEqual([]);
  expect(fs.existsSync(lock)).toBe(false);
});
