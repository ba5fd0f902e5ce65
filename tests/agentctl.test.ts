// agentctl and the agent wrapper, driven for real: a tmux server on its own socket started the
// way agent-host.service starts it (`agentctl server`), a stand-in `claude`
// (tests/fixtures/claude) that records how it was started and keeps running, and a real
// unprivileged user. Every wait polls a condition with a deadline.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { StatusRow } from "../host/attention/status";
import { CONFIG_KEY_TABLE } from "../config-keys";
import { PERMISSION_MODES } from "../shared-rules";
import { RealHost, unavailableSuite } from "./real-suite";
import {
  agentNo,
  alive,
  filesContaining,
  removeTestAgents,
  standinRecords,
  testAgentState,
  testAgentUid,
  waitFor,
  type TestAgents,
  TestUsers,
} from "./support";
import { REPO, AGENTCTL, WRAPPER, TMUX_CONF, productHostConf } from "./host-files";

const STANDIN_SOURCE = path.join(REPO, "tests/fixtures/claude");
/**
 * The agent user runs the stand-in: a copy in a 0755 dir, since CI's clone may be in a 0700 one.
 * It stands in for the stack's pinned Claude Code version (what it answers to --version, as apply's
 * install-claude-code asks on every deploy).
 */
const STANDIN = (() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agentctl-standin-"));
  fs.chmodSync(dir, 0o755);
  const copy = path.join(dir, "claude");
  fs.copyFileSync(STANDIN_SOURCE, copy);
  fs.chmodSync(copy, 0o755);
  fs.writeFileSync(path.join(dir, "version"), String(CONFIG_KEY_TABLE.claudeCodeVersion.default));
  return copy;
})();
const AGENT_USER = "agenttest";
/** Its own agent users (agenttest-N, uid 61000+N): the product makes them, afterAll removes them. */
const UID_BASE = 61000;
/** What the stack renders for its default machineType (e2-standard-8: 20 agents). */
const AGENT_MAX = Number(
  /^AGENT_MAX=(\d+)$/m.exec(productHostConf({ "agent-host:agentCount": "1" }, {}))?.[1],
);
const BACKOFF_MIN_SECONDS = 1;
const API_KEY_CANARY = `sk-ant-api03-CANARY${process.pid}x${Date.now()}`;
const OAUTH_CANARY = `sk-ant-oat01-CANARY${process.pid}y${Date.now()}`;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const haveTools = ["tmux", "shellcheck", "setpriv", "flock"].every(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `agentctl tests skipped: they need root (to create ${AGENT_USER} and drop privileges to it) and tmux, shellcheck, setpriv, flock`,
      );

interface Host {
  dir: string;
  conf: string;
  sock: string;
  ws: string;
  homes: string;
  agents: TestAgents;
  run: string;
  keyFile: string;
  env: NodeJS.ProcessEnv;
  server?: ChildProcess;
}
/** Agent `name`'s state folder (HOME/.agent-host) and uid. */
const stateOf = (h: Host, name: string | number) => testAgentState(h.agents, agentNo(name));
const uidOfAgent = (h: Host, name: string | number) => testAgentUid(h.agents, agentNo(name));
interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}
/** A row of `agentctl status --json`, as host/attention/status.ts declares it. */
type Row = StatusRow;
interface Record {
  pid: number;
  uid: number;
  cwd: string;
  argv: string[];
  env: string[];
}

const hosts: Host[] = [];

function makeHost(name: string, agentCount: number): Host {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `agentctl-${name}-`));
  // The agent user must reach its workspace and state under this root-owned temp dir.
  fs.chmodSync(dir, 0o755);
  const h: Host = {
    dir,
    conf: path.join(dir, "host.conf"),
    sock: path.join(dir, "run", "tmux.sock"),
    ws: path.join(dir, "workspaces"),
    homes: path.join(dir, "homes"),
    agents: { prefix: AGENT_USER, uidBase: UID_BASE, homes: path.join(dir, "homes") },
    run: path.join(dir, "run"),
    keyFile: path.join(dir, "secrets", "anthropic-api-key"),
    env: {
      ...process.env,
      AGENTCTL_CONFIG: path.join(dir, "host.conf"),
      AGENT_WRAPPER: WRAPPER,
      AGENTCTL_TMUX_CONF: TMUX_CONF,
      AGENT_HOST_JS: path.join(REPO, "cloud-init/host/agent-host.js"),
    },
  };
  delete h.env.TMUX;
  fs.writeFileSync(h.conf, renderConf(h, agentCount, "default"));
  hosts.push(h);
  return h;
}

/**
 * host.conf through the stack's own renderer (AGENT_MAX sized from the default machineType), for
 * this agent count and permission mode; this machine's user, paths and short delays are site
 * overrides.
 */
function renderConf(h: Host, agentCount: number, permissionMode: string): string {
  return productHostConf(
    {
      "agent-host:agentCount": String(agentCount),
      "agent-host:agentPermissionMode": permissionMode,
    },
    {
      AGENT_USER,
      CLAUDE_BIN: STANDIN,
      START_STAGGER_SECONDS: "0.05",
      RESTART_BACKOFF_MIN_SECONDS: String(BACKOFF_MIN_SECONDS),
      RESTART_BACKOFF_MAX_SECONDS: "4",
      STOP_TIMEOUT_SECONDS: "5",
      WORKSPACES_DIR: h.ws,
      AGENT_UID_BASE: String(UID_BASE),
      AGENT_HOMES_DIR: h.homes,
      STATE_DIR: path.join(h.dir, "legacy-state"),
      RUN_DIR: h.run,
      TMUX_SOCKET: h.sock,
      API_KEY_FILE: h.keyFile,
    },
  );
}

/** Starts the tmux server the way agent-host.service does: `agentctl server`, in the foreground. */
function startServer(h: Host): void {
  h.server = spawn(AGENTCTL, ["server"], { env: h.env, stdio: "ignore" });
}

function ctl(h: Host, args: string[]): Result {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(AGENTCTL, args, { env: h.env, encoding: "utf8", timeout: 60_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms };
}

function ctlAsync(h: Host, args: string[], onStderr?: (text: string) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(AGENTCTL, args, { env: h.env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr);
    });
    p.on("error", reject);
    p.on("close", (code) =>
      resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - t0) / 1e6 }),
    );
  });
}

function tmux(h: Host, args: string[]): string {
  const r = spawnSync("tmux", ["-S", h.sock, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Window names in the session, in tmux's order (duplicates would show up twice). */
function windows(h: Host): string[] {
  return tmux(h, ["list-windows", "-t", "=agents", "-F", "#{window_name}"]).trim().split("\n");
}

function agentNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `agent-${i + 1}`);
}

function expectExactly(h: Host, n: number): void {
  const names = windows(h);
  expect(new Set(names).size).toBe(names.length);
  expect([...names].sort()).toEqual(["control", ...agentNames(n)].sort());
}

function status(h: Host): Row[] {
  const r = ctl(h, ["status", "--json"]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { agents: Row[] }).agents;
}

/** Waits until agent-1..n are all running; returns name → claude pid. */
async function allRunning(h: Host, n: number): Promise<Map<string, number>> {
  return waitFor(`agent-1..${n} running`, () => {
    const rows = status(h).filter((r) => agentNames(n).includes(r.name));
    if (rows.length !== n || rows.some((r) => r.state !== "running" || !r.pid)) return undefined;
    return new Map(rows.map((r) => [r.name, r.pid as number]));
  });
}

function records(h: Host, agent: string): Record[] {
  return standinRecords<Record>(stateOf(h, agent));
}

/**
 * The stand-in's record of the claude the agent runs now. A claude counts as running once its
 * process exists; the stand-in writes its record a moment later (on a loaded machine, after a
 * test looked): wait for the record with the running pid, never take the last one written.
 */
function lastRecord(h: Host, agent: string): Promise<Record> {
  return waitFor(`${agent}'s stand-in record of its running claude`, () => {
    const pid = status(h).find((r) => r.name === agent && r.state === "running")?.pid;
    return pid ? records(h, agent).find((r) => r.pid === pid) : undefined;
  });
}

function ps(pid: number, fields: string): string {
  return spawnSync("ps", ["-o", `${fields}=`, "-p", String(pid)], {
    encoding: "utf8",
  }).stdout.trim();
}

/** Every file under dir (path, size, mtime), to prove a bad input changed nothing. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSocket()) continue;
      const st = fs.lstatSync(p);
      out.push(`${p} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

function stopHost(h: Host): void {
  spawnSync("tmux", ["-S", h.sock, "kill-server"]);
  h.server?.kill("SIGTERM");
}

/**
 * The main host, prepared as a VM is and deployed only through the product's apply
 * (tests/real-suite.ts): the boot host.conf and the tmux server, then each deploy's bundle (host
 * files, the rendered host.conf, the anthropicApiKey secret) installed by apply. Only this
 * machine's user, paths and short delays are site overrides.
 */
function mainHost(): { real: RealHost; h: Host } {
  const real = new RealHost({
    name: "agentctl-main",
    user: AGENT_USER,
    uidBase: UID_BASE,
    apiKey: API_KEY_CANARY,
    stack: { "agent-host:agentCount": "12", "agent-host:agentPermissionMode": "default" },
    site: {
      CLAUDE_BIN: STANDIN,
      START_STAGGER_SECONDS: "0.05",
      RESTART_BACKOFF_MIN_SECONDS: String(BACKOFF_MIN_SECONDS),
      RESTART_BACKOFF_MAX_SECONDS: "4",
      STOP_TIMEOUT_SECONDS: "5",
    },
  });
  const env: NodeJS.ProcessEnv = { ...process.env, ...real.env };
  delete env.TMUX;
  const h: Host = {
    dir: real.dir,
    conf: real.conf,
    sock: real.sock,
    ws: real.ws,
    homes: real.homes,
    agents: { prefix: AGENT_USER, uidBase: UID_BASE, homes: real.homes },
    run: real.run,
    keyFile: real.keyFile,
    env,
  };
  hosts.push(h);
  return { real, h };
}

suite("agentctl and agent-wrapper on a real tmux server", () => {
  jest.setTimeout(60_000);
  let h: Host;
  let real: RealHost;

  beforeAll(async () => {
    removeTestAgents(AGENT_USER, UID_BASE);
    ({ real, h } = mainHost());
    // The tmux server as agent-host.service starts it; the first deploy is the first test's.
    await real.start(false);
    h.server = real.server;
  }, 60_000);

  afterAll(async () => {
    const pids = hosts.flatMap((x) =>
      fs.existsSync(x.homes)
        ? fs.readdirSync(x.homes).flatMap((a) => records(x, a).map((r) => r.pid))
        : [],
    );
    hosts.forEach(stopHost);
    // The stand-ins die with their panes (SIGHUP); make sure, pid by pid, that none is left.
    await waitFor("stand-in claudes to exit", () => pids.every((p) => !alive(p)), 10_000).catch(
      () => {
        for (const p of pids.filter(alive)) {
          if (fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(STANDIN))
            process.kill(p, "SIGKILL");
        }
      },
    );
    await real?.close();
    for (const x of hosts) fs.rmSync(x.dir, { recursive: true, force: true });
    fs.rmSync(path.dirname(STANDIN), { recursive: true, force: true });
    removeTestAgents(AGENT_USER, UID_BASE);
  });

  test("the first deploy (apply) reconciles 0 → 12, then 12 → 12 changes nothing (timed)", async () => {
    const t0 = process.hrtime.bigint();
    const deployed = await real.apply();
    const first = { ms: Number(process.hrtime.bigint() - t0) / 1e6 };
    // apply's stdout is agentctl's JSON summary, and nothing else.
    expect(JSON.parse(deployed.stdout)).toEqual({
      desired: 12,
      added: agentNames(12),
      removed: [],
      restarted: [],
      running: 12,
    });
    expectExactly(h, 12);
    const before = await allRunning(h, 12);
    // The first deploy installs the API key (a key change): the agents it starts already have it,
    // so none is stopped and started again (apply once restarted all 12 right after starting them).
    expect(deployed.stderr.split("\n").filter((l) => /restarted agent-/.test(l))).toEqual([]);
    for (const name of agentNames(12)) {
      const log = fs.readFileSync(path.join(h.run, name, "wrapper.log"), "utf8");
      expect({ name, stops: log.split("\n").filter((l) => /stop requested/.test(l)) }).toEqual({
        name,
        stops: [],
      });
    }

    const noop = ctl(h, ["reconcile", "12", "--json"]);
    expect(noop.code).toBe(0);
    expect(JSON.parse(noop.stdout)).toEqual({
      desired: 12,
      added: [],
      removed: [],
      restarted: [],
      running: 12,
    });
    const human = ctl(h, ["reconcile", "12"]);
    expect(human.stdout).toBe("reconcile: desired 12, running 12; no change\n");
    expectExactly(h, 12);
    expect(await allRunning(h, 12)).toEqual(before);
    console.log(
      `agentctl: first deploy (apply, 0 → 12) ${first.ms.toFixed(0)} ms; no-op reconcile 12 → 12 ${noop.ms.toFixed(0)} ms (reconcile alone: npm run bench:agentctl)`,
    );
  });

  test("each agent runs the pinned command as the agent user, in its workspace, with a stable session", async () => {
    await allRunning(h, 12);
    for (const name of agentNames(12)) {
      // Each agent its own user: agenttest-N, uid UID_BASE+N (issue 20).
      const uid = uidOfAgent(h, name);
      const rec = await lastRecord(h, name);
      expect(rec.uid).toBe(uid);
      expect(rec.cwd).toBe(path.join(h.ws, name));
      const sessionId = fs.readFileSync(path.join(stateOf(h, name), "session-id"), "utf8").trim();
      expect(sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(rec.argv).toEqual(["--permission-mode", "default", "--session-id", sessionId]);
      expect(rec.env).toEqual(
        expect.arrayContaining([
          "DISABLE_AUTOUPDATER",
          "CLAUDE_CONFIG_DIR",
          "HOME",
          "ANTHROPIC_API_KEY",
        ]),
      );
      expect(rec.env).not.toContain("CLAUDE_CODE_OAUTH_TOKEN");
      expect(fs.statSync(path.join(stateOf(h, name), "claude")).uid).toBe(uid);
      expect(fs.statSync(path.join(h.ws, name)).uid).toBe(uid);
    }
    // No systemd as PID 1 here: the wrapper says, once, that limits are not applied.
    expect(fs.readFileSync(path.join(h.run, "agent-1", "wrapper.log"), "utf8")).toContain(
      "systemd is not PID 1: running without memory/CPU limits",
    );
  });

  test("status --json matches tmux and ps", async () => {
    await allRunning(h, 12);
    const statusStarted = Date.now();
    const rows = status(h);
    const panes = new Map(
      tmux(h, ["list-windows", "-t", "=agents", "-F", "#{window_name} #{pane_pid} #{pane_dead}"])
        .trim()
        .split("\n")
        .map((l) => l.split(" "))
        .filter(([n]) => n !== "control")
        .map(([n, pid, dead]) => [n, { pid: Number(pid), dead }]),
    );
    expect(rows.map((r) => r.name)).toEqual(agentNames(12));
    expect([...panes.keys()].sort()).toEqual(agentNames(12).sort());
    for (const r of rows) {
      expect(r.state).toBe("running");
      expect(panes.get(r.name)?.dead).toBe("0");
      const pid = r.pid as number;
      // The pid is the stand-in's own, runs as the agent user, and is the pane wrapper's child.
      expect((await lastRecord(h, r.name)).pid).toBe(pid);
      expect(ps(pid, "user")).toBe(`${AGENT_USER}-${agentNo(r.name)}`);
      expect(ps(pid, "args")).toContain(STANDIN);
      expect(Number(ps(pid, "ppid"))).toBe(panes.get(r.name)?.pid);
      // uptime is read while status runs and etimes now: allow the time in between.
      const etimes = Number(ps(pid, "etimes"));
      const slack = 2 + Math.ceil((Date.now() - statusStarted) / 1000);
      expect(Math.abs(etimes - (r.uptime_seconds as number))).toBeLessThanOrEqual(slack);
      expect(r.memory_bytes).toBeGreaterThan(0);
      expect(r.cpu_percent).toBeGreaterThanOrEqual(0);
      expect(r.workspace_bytes).toBeGreaterThan(0);
      expect(r.exit_code).toBeNull();
    }
    // The host's health comes first (host/attention/health.ts), then the agents' table.
    const [host, ...table] = ctl(h, ["status"]).stdout.trim().split("\n");
    expect(host).toBe("HOST  healthy");
    expect(table[0].split(/\s+/)).toEqual([
      "NAME",
      "STATE",
      "SINCE",
      "PID",
      "UPTIME",
      "CPU%",
      "MEM",
      "WORKSPACE",
      "BRANCH",
      "UNSAVED",
      "RESTARTS",
      "SIGNIN",
      "WHY",
    ]);
    // Header, 12 agents, then the VM's uptime and the auto-stop line (host/cost/autostop-main.ts).
    expect(table).toHaveLength(15);
    expect(table[13]).toMatch(/^VM up \S+; /);
    expect(table[14]).toMatch(/^auto-stop: /);
  });

  // status reads every pane with one tmux client (host/agents/facts.ts capturePanes): each text
  // must land on its own agent. A refused key shown in agent-3's pane only (typed there, the
  // terminal echoes it) makes agent-3, and no other, signed out.
  test("status reads each agent's own pane: a refused key in agent-3's pane is agent-3's alone", async () => {
    expect(ctl(h, ["reconcile", "12"]).code).toBe(0);
    await allRunning(h, 12);
    tmux(h, ["send-keys", "-t", "=agents:=agent-3", "-l", "Invalid API key"]);
    const rows = await waitFor("agent-3 signed out in status", () => {
      const r = status(h);
      return r.find((x) => x.name === "agent-3")?.signin === "key-rejected" ? r : undefined;
    });
    expect(rows.filter((r) => r.signin === "key-rejected").map((r) => r.name)).toEqual(["agent-3"]);
    expect(rows.find((r) => r.name === "agent-3")?.agent_state).toBe("signed-out");
    // A new window for agent-3 (a fresh screen) for the tests after this one.
    tmux(h, ["kill-window", "-t", "=agents:=agent-3"]);
    expect(ctl(h, ["reconcile", "12"]).code).toBe(0);
    await allRunning(h, 12);
  });

  test("status reuses a workspace's size for a minute (du is costly on big trees)", () => {
    const before = status(h).find((r) => r.name === "agent-1")?.workspace_bytes as number;
    const big = path.join(h.ws, "agent-1", "size-cache-probe.bin");
    fs.writeFileSync(big, Buffer.alloc(4 * 1024 * 1024));
    try {
      expect(status(h).find((r) => r.name === "agent-1")?.workspace_bytes).toBe(before);
      // An hour-old cache entry is measured again.
      const cache = path.join(h.run, "agent-1", "workspace-bytes");
      const old = new Date(Date.now() - 3600_000);
      fs.utimesSync(cache, old, old);
      const after = status(h).find((r) => r.name === "agent-1")?.workspace_bytes as number;
      expect(after).toBeGreaterThanOrEqual(before + 4 * 1024 * 1024);
    } finally {
      fs.rmSync(big);
    }
  });

  test("reconcile 10 → 12 → 3 → 12 → 1 → 10: exact windows, stayers keep their pid, nothing deleted", async () => {
    let current = 12;
    let pids = await allRunning(h, current);
    const sessions = new Map(
      agentNames(12).map((n) => [
        n,
        fs.readFileSync(path.join(stateOf(h, n), "session-id"), "utf8").trim(),
      ]),
    );
    for (const target of [10, 12, 3, 12, 1, 10]) {
      if (target === 3) {
        for (let i = 4; i <= 12; i++)
          fs.writeFileSync(path.join(h.ws, `agent-${i}`, "work.txt"), `agent ${i}\n`);
      }
      const r = ctl(h, ["reconcile", String(target), "--json"]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.desired).toBe(target);
      expect(out.added).toEqual(agentNames(target).slice(current));
      expect(out.removed).toEqual(agentNames(current).slice(target));
      expect(out.restarted).toEqual([]);
      expectExactly(h, target);
      const now = await allRunning(h, target);
      for (let i = 1; i <= Math.min(current, target); i++) {
        expect(now.get(`agent-${i}`)).toBe(pids.get(`agent-${i}`));
      }
      for (const gone of agentNames(current).slice(target))
        expect(alive(pids.get(gone) as number)).toBe(false);
      if (target === 3) {
        for (let i = 4; i <= 12; i++) {
          expect(fs.readFileSync(path.join(h.ws, `agent-${i}`, "work.txt"), "utf8")).toBe(
            `agent ${i}\n`,
          );
          expect(
            fs.readFileSync(path.join(stateOf(h, `agent-${i}`), "session-id"), "utf8").trim(),
          ).toBe(sessions.get(`agent-${i}`));
        }
      }
      if (target === 12 && current === 3) {
        // Scaling back up resumes each conversation instead of starting a new one.
        for (let i = 4; i <= 12; i++) {
          expect((await lastRecord(h, `agent-${i}`)).argv).toEqual([
            "--permission-mode",
            "default",
            "--resume",
            sessions.get(`agent-${i}`),
          ]);
        }
      }
      current = target;
      pids = now;
    }
  });

  test("the tmux prefix pitfall cannot bite: agent-1 missing while agent-10 exists", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const id = tmux(h, ["list-windows", "-t", "=agents", "-F", "#{window_name} #{window_id}"])
      .split("\n")
      .find((l) => l.startsWith("agent-1 "))
      ?.split(" ")[1] as string;
    tmux(h, ["kill-window", "-t", id]);
    await waitFor("agent-1's claude to exit", () => !alive(pids.get("agent-1") as number));

    const restart = ctl(h, ["restart", "1"]);
    expect(restart.code).toBe(2);
    expect(ctl(h, ["logs", "1"]).code).toBe(2);
    expect(status(h).find((r) => r.name === "agent-1")?.state).toBe("missing");

    const r = ctl(h, ["reconcile", "10", "--json"]);
    expect(JSON.parse(r.stdout)).toMatchObject({ added: ["agent-1"], removed: [], restarted: [] });
    expectExactly(h, 10);
    const now = await allRunning(h, 10);
    for (let i = 2; i <= 10; i++) expect(now.get(`agent-${i}`)).toBe(pids.get(`agent-${i}`));
  });

  // reconcile starts its agents with one tmux client (host/agents/agents.ts startAgents); tmux runs
  // nothing after a failed command, so a taken index part-way must not leave the rest unstarted.
  test("a window made by hand at agent-3's index: reconcile still starts agent-2..5, each keeping its name", async () => {
    ctl(h, ["reconcile", "1"]);
    expectExactly(h, 1);
    tmux(h, ["new-window", "-d", "-t", "=agents:3", "-n", "scratch", "sleep 600"]);
    const r = ctl(h, ["reconcile", "5", "--json"]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/fail|in use|did not start/i);
    expect(JSON.parse(r.stdout)).toMatchObject({
      desired: 5,
      added: ["agent-2", "agent-3", "agent-4", "agent-5"],
      running: 5,
    });
    await allRunning(h, 5);
    for (const name of agentNames(5))
      for (const option of ["automatic-rename", "allow-rename"])
        expect(
          `${name} ${option} ${tmux(h, ["show-options", "-wv", "-t", `=agents:=${name}`, option]).trim()}`,
        ).toBe(`${name} ${option} off`);
    tmux(h, ["kill-window", "-t", "=agents:=scratch"]);
    expectExactly(h, 5);
  });

  // How soon is measured by npm run bench:agentctl, not asserted here.
  test("a killed claude runs again, resuming its conversation", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const old = pids.get("agent-2") as number;
    process.kill(old, "SIGKILL");
    // One crash is not a crash loop: the new claude is "running" at once (host/attention/status.ts).
    const pid = await waitFor("agent-2's claude to run again", () => {
      const row = status(h).find((r) => r.name === "agent-2");
      return row?.state === "running" && row.pid !== old ? row.pid : undefined;
    });
    expect(alive(pid)).toBe(true);
    const sessionId = fs
      .readFileSync(path.join(stateOf(h, "agent-2"), "session-id"), "utf8")
      .trim();
    expect((await lastRecord(h, "agent-2")).argv).toEqual([
      "--permission-mode",
      "default",
      "--resume",
      sessionId,
    ]);
    const rows = status(h);
    expect(rows.find((r) => r.name === "agent-2")?.restarts).toBeGreaterThanOrEqual(1);
    // The whole row on failure: which agent, and the exit and reason that moved it.
    for (const r of rows.filter((x) => x.name !== "agent-2")) {
      expect({ row: r, state: r.state, pid: r.pid }).toEqual({
        row: r,
        state: "running",
        pid: pids.get(r.name),
      });
    }
  });

  test("one agent out of memory: the kernel kills the process that blew the agent's limit; that agent and the nine others keep running", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const claude = pids.get("agent-3") as number;
    // On the VM the limit is the agent's scope (agent-wrapper: systemd-run --scope -p MemoryMax).
    // PID 1 here is not systemd and the memory controller is cgroup v1, so the test makes the same
    // kernel limit by hand: a memory cgroup holding agent-3's claude and what it runs.
    const root = "/sys/fs/cgroup/memory";
    const cg = `${root}/agent-host-test-${process.pid}-agent-3`;
    const procs = () =>
      fs.readFileSync(path.join(cg, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
    fs.mkdirSync(cg);
    try {
      fs.writeFileSync(path.join(cg, "memory.limit_in_bytes"), String(64 << 20));
      fs.writeFileSync(path.join(cg, "cgroup.procs"), String(claude));
      // A tool the agent runs grows past the limit: as the agent user, in the agent's cgroup.
      const uid = uidOfAgent(h, 3);
      const hog = spawnSync(
        "sh",
        [
          "-c",
          `echo $$ > "$1/cgroup.procs" && exec setpriv --reuid=${uid} --regid=${uid} --clear-groups /usr/bin/python3 -c 'b = b"x" * (512 << 20)'`,
          "sh",
          cg,
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
      const control = fs.readFileSync(path.join(cg, "memory.oom_control"), "utf8");
      expect(Number(/^oom_kill (\d+)$/m.exec(control)?.[1])).toBeGreaterThanOrEqual(1);
      expect(hog.signal).toBe("SIGKILL");
    } finally {
      // Back to the machine's cgroup; the stand-in's short children leave with their exit.
      fs.writeFileSync(path.join(root, "cgroup.procs"), String(claude));
      await waitFor("the test's memory cgroup to empty", () => procs().length === 0);
      fs.rmdirSync(cg);
    }
    // Agent-3's claude itself was not the one to go (the tool was the biggest), and no agent
    // noticed: same processes, all running, no restart.
    const rows = status(h);
    for (const r of rows) {
      expect({ name: r.name, state: r.state, pid: r.pid }).toEqual({
        name: r.name,
        state: "running",
        pid: pids.get(r.name),
      });
    }
    expect(alive(claude)).toBe(true);
  });

  test("a dead wrapper shows as exited with its code; reconcile restarts it and ends the orphan", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const wrapper = Number(
      tmux(h, ["display-message", "-p", "-t", "=agents:=agent-3", "#{pane_pid}"]).trim(),
    );
    process.kill(wrapper, "SIGKILL");
    // tmux marks the pane dead when its pty closes and records the exit status when it reaps the
    // wrapper, a moment later: until then the row is exited with no code yet.
    const row = await waitFor("agent-3 exited, with its code", () =>
      status(h).find((r) => r.name === "agent-3" && r.state === "exited" && r.exit_code !== null),
    );
    expect(row.exit_code).toBe(137);
    expect(ctl(h, ["status"]).stdout).toMatch(/^agent-3\s+exited\s.*stopped \(exit code 137\)/m);

    const r = ctl(h, ["reconcile", "10", "--json"]);
    expect(JSON.parse(r.stdout)).toEqual({
      desired: 10,
      added: [],
      removed: [],
      restarted: ["agent-3"],
      running: 10,
    });
    // Until the new wrapper has prepared the agent (prepare-agent), ended the orphan and started
    // its own claude, agent-3's run files still name the orphan (alive, so "running"): wait for
    // the new pid.
    const now = await waitFor("agent-3 running a new claude", () => {
      const rows = status(h).filter((r) => agentNames(10).includes(r.name));
      if (rows.length !== 10 || rows.some((r) => r.state !== "running" || !r.pid)) return undefined;
      const running = new Map(rows.map((r) => [r.name, r.pid as number]));
      return running.get("agent-3") !== pids.get("agent-3") ? running : undefined;
    });
    expect(now.get("agent-3")).not.toBe(pids.get("agent-3"));
    // The claude its killed wrapper left behind is gone: never two claudes on one conversation.
    await waitFor(
      "the orphaned claude to exit",
      () => !alive(pids.get("agent-3") as number),
      5_000,
    );
    for (let i = 1; i <= 10; i++)
      if (i !== 3) expect(now.get(`agent-${i}`)).toBe(pids.get(`agent-${i}`));
  });

  test("two reconciles at once (12 and 5): the end state is exactly one of them", async () => {
    for (const start of [10, 3]) {
      ctl(h, ["reconcile", String(start)]);
      await allRunning(h, start);
      const finished: number[] = [];
      const run = (n: number): Promise<Result> =>
        ctlAsync(h, ["reconcile", String(n), "--json"]).then((res) => {
          finished.push(n);
          return res;
        });
      const [a, b] = await Promise.all([run(12), run(5)]);
      expect(a.code).toBe(0);
      expect(b.code).toBe(0);
      // The lock serializes them: the one that finished last holds.
      const winner = finished[1];
      expectExactly(h, winner);
      await allRunning(h, winner);
    }
  });

  test("bad input: exit 2, one line naming the input and the fix, nothing changed", async () => {
    ctl(h, ["reconcile", "10"]);
    await allRunning(h, 10);
    const agents = agentNames(10).join(" ");
    const cases: [string[], string][] = [
      [
        ["reconcile", "-1"],
        `agentctl: invalid agent count '-1': give a whole number from 1 to ${AGENT_MAX} (AGENT_MAX), e.g. 'agentctl reconcile 12'`,
      ],
      [
        ["reconcile", "abc"],
        `agentctl: invalid agent count 'abc': give a whole number from 1 to ${AGENT_MAX} (AGENT_MAX), e.g. 'agentctl reconcile 12'`,
      ],
      [
        ["reconcile", "0"],
        `agentctl: invalid agent count '0': give a whole number from 1 to ${AGENT_MAX} (AGENT_MAX), e.g. 'agentctl reconcile 12'`,
      ],
      [
        ["reconcile", String(AGENT_MAX + 1)],
        `agentctl: agent count ${AGENT_MAX + 1} is above AGENT_MAX=${AGENT_MAX} (sized from this machine's memory in ${h.conf}); use at most ${AGENT_MAX} or deploy a larger machineType`,
      ],
      [
        ["frobnicate"],
        "agentctl: unknown command 'frobnicate'; run 'agentctl help' for the commands (reconcile, status, restart, logs, attach, send, notify-test, web)",
      ],
      [
        ["restart", "99"],
        `agentctl: restart: there is no agent-99 (agents here: ${agents}); run 'agentctl status' to see them`,
      ],
    ];
    const snapshot = (): string[] => [
      ...tmux(h, [
        "list-windows",
        "-t",
        "=agents",
        "-F",
        "#{window_id} #{window_name} #{pane_pid} #{pane_dead}",
      ]).split("\n"),
      // Not the workspace-size cache: the control window's status refresh rewrites it when it
      // is a minute old, whatever the bad command does.
      ...tree(h.dir).filter((f) => !/\/workspace-bytes(\.tmp)? /.test(f)),
    ];
    for (const [args, message] of cases) {
      const before = snapshot();
      const r = ctl(h, args);
      expect({ args, code: r.code, stderr: r.stderr, stdout: r.stdout }).toEqual({
        args,
        code: 2,
        stderr: `${message}\n`,
        stdout: "",
      });
      expect(snapshot()).toEqual(before);
    }
  });

  test("restart N, logs N --lines K", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const r = ctl(h, ["restart", "4"]);
    expect(r.code).toBe(0);
    const now = await allRunning(h, 10);
    expect(now.get("agent-4")).not.toBe(pids.get("agent-4"));
    for (let i = 1; i <= 10; i++)
      if (i !== 4) expect(now.get(`agent-${i}`)).toBe(pids.get(`agent-${i}`));
    const logs = await waitFor("agent-4's pane to show the stand-in", () => {
      const out = ctl(h, ["logs", "4", "--lines", "3"]);
      return out.stdout.includes(`stand-in claude pid ${now.get("agent-4")}`) ? out : undefined;
    });
    expect(logs.code).toBe(0);
    expect(logs.stdout.trimEnd().split("\n").length).toBeLessThanOrEqual(3);
  });

  // restart all stops every agent before it starts any, so a pane that died at once stays dead
  // while a slow one takes its stop budget. Status (and the monitor, from the same state) must
  // show it on its way back: an "exited" there pages the lead about an agent nobody stopped.
  test("restart all: an agent already stopped while another takes its stop budget is restarting, never exited", async () => {
    ctl(h, ["reconcile", "3"]);
    const before = await allRunning(h, 3);
    const slow = path.join(stateOf(h, "agent-3"), "claude", "standin-ignore-term");
    fs.writeFileSync(slow, "");
    try {
      let done = false;
      const restarting = ctlAsync(h, ["restart", "all"]).finally(() => (done = true));
      const seen: Row[] = [];
      // agent-3 holds restart all for STOP_TIMEOUT_SECONDS (5): polled until restart ends.
      await waitFor(
        "restart all to end",
        () => {
          seen.push(...status(h).filter((r) => r.name !== "agent-3"));
          return done;
        },
        40_000,
      );
      const r = await restarting;
      expect(r.stderr).toContain("restarted agent-3");
      expect(r.code).toBe(0);
      // agent-3's claude held out until the wrapper's SIGKILL: the others stayed stopped that long.
      expect(r.ms).toBeGreaterThanOrEqual(5_000);
      const stopped = seen.filter((row) => row.pid === null);
      expect(stopped.map((row) => row.name)).toContain("agent-1");
      expect(
        stopped.filter((row) => row.state === "exited" || row.agent_state === "exited"),
      ).toEqual([]);
      const why = "agentctl stopped it a moment ago (a restart or a scale-down)";
      expect(stopped.filter((row) => row.name === "agent-1" && row.why === why)).toContainEqual(
        expect.objectContaining({ state: "restarting", needs_you: false }),
      );
    } finally {
      fs.rmSync(slow, { force: true });
    }
    const after = await allRunning(h, 3);
    for (const n of [1, 2, 3]) expect(after.get(`agent-${n}`)).not.toBe(before.get(`agent-${n}`));
  });

  test("the API key never shows in argv, panes or logs; an OAuth token goes to CLAUDE_CODE_OAUTH_TOKEN", async () => {
    ctl(h, ["reconcile", "10"]);
    await allRunning(h, 10);
    const leaks = (canary: string): string[] => {
      const found: string[] = [];
      const args = spawnSync("ps", ["-eo", "args"], { encoding: "utf8" }).stdout;
      if (args.includes(canary)) found.push("ps -eo args");
      for (const w of windows(h)) {
        if (tmux(h, ["capture-pane", "-p", "-S", "-", "-t", `=agents:=${w}`]).includes(canary))
          found.push(`pane ${w}`);
      }
      found.push(...filesContaining(h.dir, canary, [h.keyFile]));
      // The root wrappers never hold it in their own environment either.
      for (const line of tmux(h, ["list-panes", "-s", "-t", "=agents", "-F", "#{pane_pid}"])
        .trim()
        .split("\n")) {
        const env = fs.readFileSync(`/proc/${line}/environ`);
        if (env.includes(canary)) found.push(`environ of wrapper ${line}`);
      }
      return found;
    };
    expect((await lastRecord(h, "agent-1")).env).toContain("ANTHROPIC_API_KEY");
    expect(leaks(API_KEY_CANARY)).toEqual([]);

    // anthropicApiKey set to an OAuth token (the stack takes either): a deploy, whose apply
    // stores it root-only and restarts every agent with it.
    const before = (await allRunning(h, 10)).get("agent-1");
    const rotated = await real.apply(
      { "agent-host:agentCount": "10", "agent-host:agentPermissionMode": "default" },
      OAUTH_CANARY,
    );
    expect(rotated.stderr).toContain("the API key changed: restarting every agent");
    expect({ mode: fs.statSync(h.keyFile).mode & 0o777, uid: fs.statSync(h.keyFile).uid }).toEqual({
      mode: 0o600,
      uid: 0,
    });
    await waitFor("agent-1 restarted", () =>
      status(h).find((r) => r.name === "agent-1" && r.state === "running" && r.pid !== before),
    );
    const rec = await lastRecord(h, "agent-1");
    expect(rec.env).toContain("CLAUDE_CODE_OAUTH_TOKEN");
    expect(rec.env).not.toContain("ANTHROPIC_API_KEY");
    expect(leaks(OAUTH_CANARY)).toEqual([]);
  });

  test("a /login made in one agent is never copied to another (copies of one OAuth login revoke each other)", async () => {
    ctl(h, ["reconcile", "10"]);
    const pids = await allRunning(h, 10);
    const uid = uidOfAgent(h, 1);
    const source = path.join(stateOf(h, "agent-1"), "claude", ".credentials.json");
    const target = path.join(stateOf(h, "agent-5"), "claude", ".credentials.json");
    fs.writeFileSync(source, '{"claudeAiOauth":{"accessToken":"test"}}\n', { mode: 0o600 });
    fs.chownSync(source, uid, uid);
    expect(ctl(h, ["restart", "5"]).code).toBe(0);
    await waitFor("agent-5 restarted", () =>
      status(h).find(
        (r) => r.name === "agent-5" && r.state === "running" && r.pid !== pids.get("agent-5"),
      ),
    );
    expect(fs.existsSync(target)).toBe(false);
    fs.rmSync(source);
  });

  test("PERMISSION_MODE: Claude Code 2.1's auto and manual start; a mode it lacks is refused, naming the key", async () => {
    const p = makeHost("modes", 1);
    const conf = fs.readFileSync(p.conf, "utf8");
    // A hand-edited host.conf on purpose: the stack refuses yolo before rendering (config.ts), so
    // only an edit on the host gets it this far, and agentctl must refuse it too.
    fs.writeFileSync(p.conf, conf.replace("PERMISSION_MODE=default", "PERMISSION_MODE=yolo"));
    const bad = ctl(p, ["reconcile", "1"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      "PERMISSION_MODE=yolo in " +
        p.conf +
        ` is not a Claude Code permission mode; use one of: ${PERMISSION_MODES.join(" ")}`,
    );
    expect(fs.existsSync(path.join(p.run, "desired"))).toBe(false);
    // agentctl server refuses the bad mode too: the server starts with a good one.
    fs.writeFileSync(p.conf, conf);
    startServer(p);
    await waitFor(
      "the tmux server",
      () => spawnSync("tmux", ["-S", p.sock, "list-sessions"]).status === 0,
      60_000,
    );
    const runs: [string, string[]][] = [
      ["auto", ["reconcile", "1"]],
      ["manual", ["restart", "1"]],
    ];
    for (const [mode, command] of runs) {
      // A deploy of agentPermissionMode=mode: the host.conf the stack renders for it.
      fs.writeFileSync(p.conf, renderConf(p, 1, mode));
      const started = ctl(p, command);
      expect(started.stderr).toBe(started.code === 0 ? started.stderr : "");
      expect(started.code).toBe(0);
      const rec = await waitFor(
        `agent-1 started with --permission-mode ${mode}`,
        () => records(p, "agent-1").find((r) => r.argv[1] === mode),
        60_000,
      );
      expect(rec.argv.slice(0, 2)).toEqual(["--permission-mode", mode]);
    }
    stopHost(p);
  });

  test("reconcile --boot waits for the tmux server systemd is still starting; the count comes from host.conf", async () => {
    const boot = makeHost("boot", 2);
    let sawWait = false;
    const pending = ctlAsync(boot, ["reconcile", "--boot", "--json"], (err) => {
      sawWait ||= err.includes("waiting up to 60s for the tmux server");
    });
    await waitFor("reconcile --boot to wait for the socket", () => sawWait);
    startServer(boot);
    const r = await pending;
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      desired: 2,
      added: agentNames(2),
      removed: [],
      restarted: [],
      running: 2,
    });
    expectExactly(boot, 2);
    await allRunning(boot, 2);
    stopHost(boot);
  });

  test("shellcheck is clean over every script in cloud-init/host (with the repo's .shellcheckrc: enable=all)", () => {
    // Scripts are the files with a shell shebang; tmux.conf and sshd.conf are not shell.
    const dir = path.join(REPO, "cloud-init/host");
    const scripts = fs
      .readdirSync(dir)
      .map((f) => path.join(dir, f))
      .filter((f) => /^#!.*\b(bash|sh)\b/.test(fs.readFileSync(f, "utf8").split("\n")[0]));
    expect(scripts).toEqual(expect.arrayContaining([AGENTCTL, WRAPPER]));
    const r = spawnSync("shellcheck", [...scripts, STANDIN_SOURCE], {
      cwd: REPO,
      encoding: "utf8",
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});

// The helper every host suite removes its users with (tests/support.ts), on a user of its own.
suite("TestUsers: a suite leaves /etc/passwd, /etc/group and /home as it found them", () => {
  const name = `h24users${process.pid}`;

  test("a created user is removed with its group and home once its processes end; one that existed is kept", async () => {
    const passwdBefore = fs.readFileSync("/etc/passwd", "utf8");
    const groupBefore = fs.readFileSync("/etc/group", "utf8");
    const users = new TestUsers();
    users.ensure(name);
    users.ensure(name); // the second call finds it and changes nothing
    const home = spawnSync("getent", ["passwd", name], { encoding: "utf8" }).stdout.split(":")[5];
    expect(fs.existsSync(home)).toBe(true);
    // A process of the user's still running when the suite ends: ended by pid, then removed.
    const uid = Number(spawnSync("id", ["-u", name], { encoding: "utf8" }).stdout.trim());
    const proc = spawn("setpriv", [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "sleep",
      "300",
    ]);
    const exited = new Promise((resolve) => proc.once("exit", (_code, signal) => resolve(signal)));
    await waitFor("the user's process", () => spawnSync("pgrep", ["-u", name]).status === 0);
    await users.removeAll();
    expect(await exited).toBe("SIGKILL");
    expect(spawnSync("getent", ["passwd", name]).status).not.toBe(0);
    expect(fs.existsSync(home)).toBe(false);
    expect(fs.readFileSync("/etc/passwd", "utf8")).toBe(passwdBefore);
    expect(fs.readFileSync("/etc/group", "utf8")).toBe(groupBefore);

    // A user that was there before the suite is used and left alone.
    const kept = new TestUsers();
    kept.ensure("root");
    await kept.removeAll();
    expect(spawnSync("getent", ["passwd", "root"]).status).toBe(0);
  }, 60_000);
});
