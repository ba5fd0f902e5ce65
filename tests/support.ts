// Small helpers shared by the suites that drive real processes.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { pidsOfUid } from "../host/agents/migrate";

/** Polls `probe` every 50 ms until it returns something truthy; fails after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every regular file under `dir` whose bytes contain `needle`, except the paths in `except`. */
export function filesContaining(dir: string, needle: string, except: string[] = []): string[] {
  const hits: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.isFile() && !except.includes(f) && fs.readFileSync(f).includes(needle))
        hits.push(f);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return hits.sort();
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Debian's chromium, which the dashboard's browser tests and its benchmark drive (playwright-core). */
export const CHROMIUM = "/usr/bin/chromium";
/** Headless, and nothing that reaches past 127.0.0.1. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * The JSON lines the stand-in claude (tests/fixtures/claude) recorded in a state folder: complete
 * lines only. bash's printf writes a long record (argv and environment) in more than one write(2),
 * so a reader can catch the last line half written; it counts once its newline is there (a
 * stressed CI run failed fleet-ssh with "Unexpected end of JSON input" on such a line).
 */
export function standinRecords<T>(agentStateDir: string): T[] {
  const f = path.join(agentStateDir, "claude", "standin.jsonl");
  if (!fs.existsSync(f)) return [];
  const text = fs.readFileSync(f, "utf8");
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as T);
}

/** Polls a probe, which may be async, every `everyMs` until it returns something truthy; fails after `ms`. */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  ms: number,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A command run without blocking this process: a stand-in server living in it (the Messages API,
 * a webhook receiver) keeps answering from the event loop meanwhile.
 */
export function runAsync(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  stdin = "",
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
    // A command that ends without reading its input (cat refused a file) fails the write with
    // EPIPE: its exit status is the result, not an error of the test.
    p.stdin.on("error", () => undefined);
    p.stdin.end(stdin);
  });
}

/**
 * A suite's own agent users (issue 20: one Unix user per agent, host/agents/agent-user.ts): the
 * product makes `${prefix}-N` with uid = gid = uidBase + N; each suite gets its own prefix and uid
 * base so suites never share a user, and removes them all afterwards.
 */
export interface TestAgents {
  prefix: string;
  uidBase: number;
  /** AGENT_HOMES_DIR of the suite's host. */
  homes: string;
}

export const testAgentName = (t: TestAgents, n: number): string => `${t.prefix}-${n}`;
export const testAgentUid = (t: TestAgents, n: number): number => t.uidBase + n;
export const testAgentHome = (t: TestAgents, n: number): string =>
  path.join(t.homes, testAgentName(t, n));
/** HOME/.agent-host: session-id, claude/, status.json, events.jsonl. */
export const testAgentState = (t: TestAgents, n: number): string =>
  path.join(testAgentHome(t, n), ".agent-host");

/** agent-N (or a bare N) → N. */
export const agentNo = (name: string | number): number =>
  typeof name === "number" ? name : Number(name.replace(/^.*-/, ""));

/** Removes `${prefix}-1..max` (users and groups) that carry the suite's pinned ids. */
export function removeTestAgents(prefix: string, uidBase: number, max = 40): void {
  for (let n = 1; n <= max; n++) {
    const name = `${prefix}-${n}`;
    const pw = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
    if (pw.status === 0 && pw.stdout.split(":")[2] === String(uidBase + n)) {
      // What the suite's agents left running, pid by pid (those uids are the suite's own). A
      // SIGKILLed process is still in /proc until it has died and been reaped, and userdel refuses
      // a user with any process ("currently used by process N"): under load that was seen to leave
      // a suite's user behind (fleet-agent-8). So wait for them to be gone, 10 s at most.
      const uid = uidBase + n;
      const deadline = Date.now() + 10_000;
      for (let left = pidsOfUid(uid); left.length > 0; left = pidsOfUid(uid)) {
        for (const pid of left) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        if (Date.now() > deadline) break;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      }
      const r = spawnSync("userdel", [name], { encoding: "utf8" });
      if (r.status !== 0) {
        throw new Error(`removeTestAgents: userdel ${name} exited ${r.status}: ${r.stderr.trim()}`);
      }
    }
    // What the real Claude Code left in the shared /tmp as that uid (claude-UID, cc-socks-UID,
    // cc-socks): the uid is the suite's own, so whatever it owns there is the suite's too.
    for (const entry of fs.readdirSync(os.tmpdir())) {
      const file = path.join(os.tmpdir(), entry);
      try {
        if (fs.lstatSync(file).uid === uidBase + n)
          fs.rmSync(file, { recursive: true, force: true });
      } catch {
        // gone
      }
    }
    const gr = spawnSync("getent", ["group", name], { encoding: "utf8" });
    if (gr.status === 0 && gr.stdout.split(":")[2] === String(uidBase + n))
      spawnSync("groupdel", [name]);
  }
}

/**
 * The Unix users a suite creates, removed again at its end: a suite leaves /etc/passwd,
 * /etc/group and /home as it found them. A user that already exists is used and left alone.
 *
 *   const users = new TestUsers();
 *   beforeAll(() => users.ensure("claudereal"));
 *   afterAll(() => users.removeAll());   // after the user's processes are ended
 */
export class TestUsers {
  private readonly created: string[] = [];

  ensure(name: string, opts: { shell?: string; args?: string[] } = {}): void {
    if (spawnSync("id", ["-u", name]).status === 0) return;
    const r = spawnSync(
      "useradd",
      ["--create-home", "--shell", opts.shell ?? "/bin/bash", ...(opts.args ?? []), name],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
    this.created.push(name);
  }

  /**
   * Removes every user this suite created, with its home and group, once none of its processes
   * is left (waited for, with a deadline); throws naming what is left behind.
   */
  async removeAll(): Promise<void> {
    const left: string[] = [];
    for (const name of this.created.splice(0)) {
      const home = spawnSync("getent", ["passwd", name], { encoding: "utf8" }).stdout.split(":")[5];
      const ended = () => spawnSync("pgrep", ["-u", name]).status === 1;
      await poll(`${name}'s processes to end`, ended, 15_000).catch(async () => {
        // Still running after the suite's own teardown: its processes, ended by pid. A killed
        // child of this process stays a zombie (userdel counts it) until the event loop reaps
        // it: wait for them to be gone, never userdel right after the kill.
        const pids = spawnSync("pgrep", ["-u", name], { encoding: "utf8" }).stdout.split("\n");
        for (const pid of pids.filter(Boolean)) process.kill(Number(pid), "SIGKILL");
        await poll(`${name}'s killed processes to be reaped`, ended, 10_000).catch(() => undefined);
      });
      const r = spawnSync("userdel", ["--remove", name], { encoding: "utf8" });
      if (r.status !== 0 && r.status !== 12) left.push(`userdel ${name}: ${r.stderr.trim()}`);
      if (spawnSync("getent", ["passwd", name]).status === 0) left.push(`user ${name}`);
      if (spawnSync("getent", ["group", name]).status === 0) left.push(`group ${name}`);
      if (home && fs.existsSync(home)) left.push(`home ${home}`);
    }
    if (left.length > 0) throw new Error(`the suite left behind: ${left.join("; ")}`);
  }
}

/** `root` and every process under it (parent chains from /proc/PID/stat, at most 64 deep). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone
    }
  }
  const under = (pid: number): boolean => {
    for (let p = pid, i = 0; p > 1 && i < 64; p = parent.get(p) ?? 0, i++)
      if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(under);
}

/**
 * One compose file two agents run at once (docker-rootless, the boot test): a web page saying
 * whose project it is, published on the agent's own AGENT_PORT_BASE.
 */
export const SAME_COMPOSE_FILE = [
  'version: "3"',
  "services:",
  "  web:",
  "    image: busybox:local",
  '    command: ["sh", "-c", "echo $$WHO > /www/index.html; exec httpd -f -p 8080 -h /www"]',
  "    environment:",
  "      WHO: ${COMPOSE_PROJECT_NAME}",
  "    ports:",
  '      - "${AGENT_PORT_BASE}:8080"',
  "",
].join("\n");
