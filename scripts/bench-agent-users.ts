// What one Unix user per agent costs (issue 20), against the shared user of before, side by side
// on this machine. Prints figures, asserts nothing; the behaviour is proven by
// tests/hostile-agent.test.ts and tests/upgrade-users.test.ts. Run as root, under the shared lock:
//   flock /tmp/agent-host-system.lock npm run --silent bench:agent-users [-- RUNS]
//
// For each product (the last commit before per-agent users, read from git, and this tree): a real
// tmux server, 12 agents of the stand-in claude, then
// - the time to add agent 13: `agentctl reconcile 13` (wall time of the command) and until agent
//   13's claude runs (its wrapper's pid file, a live process) — with per-agent users that
//   includes useradd, the home, the workspace and the state folders;
// - the supervisor's memory per agent: PSS and RSS of each agent-wrapper (the pane's process);
// - the disk an agent's own files take before any work: its home and state (du).
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pidsOfUid } from "../host/agents/migrate";

const REPO = path.resolve(__dirname, "..");
const LEGACY_COMMIT = "285b86cd8d98b3880e55359180cb5a68923a035f";
const RUNS = Math.max(1, Number(process.argv[2] ?? 3));
const PREFIX = "benchusers";
const UID_BASE = 61700;

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

async function until<T>(what: string, probe: () => T | undefined, limitMs = 60_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function claudePid(run: string, n: number): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(run, `agent-${n}`, "pid"), "utf8").trim());
    return pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function rollup(pid: number): { pss: number; rss: number } {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return { pss: kb("Pss"), rss: kb("Rss") };
}

function removeUsers(): void {
  for (let n = 0; n <= 14; n++) {
    const name = n === 0 ? PREFIX : `${PREFIX}-${n}`;
    const pw = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
    if (pw.status === 0 && pw.stdout.split(":")[2] === String(UID_BASE + n))
      spawnSync("userdel", [name]);
    const gr = spawnSync("getent", ["group", name], { encoding: "utf8" });
    if (gr.status === 0 && gr.stdout.split(":")[2] === String(UID_BASE + n))
      spawnSync("groupdel", [name]);
  }
}

interface Figures {
  reconcileMs: number;
  runningMs: number;
  pss: number;
  rss: number;
  diskKb: number;
}

async function measure(product: "legacy" | "current"): Promise<Figures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-agent-users-${product}-`));
  fs.chmodSync(dir, 0o755);
  let lib = path.join(REPO, "cloud-init/host");
  if (product === "legacy") {
    lib = path.join(dir, "lib");
    fs.mkdirSync(lib, { mode: 0o755 });
    for (const f of ["agentctl", "agent-wrapper", "agent-host.js", "seed-claude-config"])
      fs.writeFileSync(
        path.join(lib, f),
        execFileSync("git", ["-C", REPO, "show", `${LEGACY_COMMIT}:cloud-init/host/${f}`]),
        { mode: 0o755 },
      );
    // The shared user, as cloud-init made it before.
    must("groupadd", ["--gid", String(UID_BASE), PREFIX]);
    must("useradd", [
      "--uid",
      String(UID_BASE),
      "--gid",
      String(UID_BASE),
      "-M",
      "-d",
      path.join(dir, "home"),
      PREFIX,
    ]);
    fs.mkdirSync(path.join(dir, "home"), { mode: 0o750 });
    fs.chownSync(path.join(dir, "home"), UID_BASE, UID_BASE);
  }
  const standin = path.join(dir, "claude");
  fs.copyFileSync(path.join(REPO, "tests/fixtures/claude"), standin);
  fs.chmodSync(standin, 0o755);
  const run = path.join(dir, "run");
  const conf = path.join(dir, "host.conf");
  const state = path.join(dir, "home/.agent-host");
  fs.writeFileSync(
    conf,
    [
      `AGENT_USER=${PREFIX}`,
      `AGENT_UID_BASE=${UID_BASE}`,
      `AGENT_HOMES_DIR=${path.join(dir, "homes")}`,
      `STATE_DIR=${state}`,
      `WORKSPACES_DIR=${path.join(dir, "workspaces")}`,
      `RUN_DIR=${run}`,
      `TMUX_SOCKET=${path.join(run, "tmux.sock")}`,
      `CLAUDE_BIN=${standin}`,
      `API_KEY_FILE=${path.join(dir, "no-key")}`,
      "START_STAGGER_SECONDS=0",
      "STOP_TIMEOUT_SECONDS=5",
      "",
    ].join("\n"),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AGENTCTL_CONFIG: conf,
    AGENT_WRAPPER: path.join(lib, "agent-wrapper"),
    AGENT_HOST_JS: path.join(lib, "agent-host.js"),
    AGENTCTL_TMUX_CONF: path.join(REPO, "cloud-init/host/tmux.conf"),
  };
  delete env.TMUX;
  const agentctl = path.join(lib, "agentctl");
  const server: ChildProcess = spawn(agentctl, ["server"], { env, stdio: "ignore" });
  try {
    await until("the tmux server", () =>
      spawnSync("tmux", ["-S", path.join(run, "tmux.sock"), "list-sessions"]).status === 0
        ? true
        : undefined,
    );
    const add: number[] = [];
    const up: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      must(agentctl, ["reconcile", "12"], env);
      for (let n = 1; n <= 12; n++) await until(`agent-${n}`, () => claudePid(run, n));
      const t0 = process.hrtime.bigint();
      must(agentctl, ["reconcile", "13"], env);
      add.push(ms(t0));
      await until("agent-13's claude", () => claudePid(run, 13));
      up.push(ms(t0));
    }
    // The panes' processes: each agent's wrapper.
    const panes = must("tmux", [
      "-S",
      path.join(run, "tmux.sock"),
      "list-panes",
      "-s",
      "-t",
      "=agents",
      "-F",
      "#{pane_pid} #{window_name}",
    ]);
    const wrappers = panes
      .split("\n")
      .filter((l) => / agent-\d+$/.test(l))
      .map((l) => Number(l.split(" ")[0]));
    const mem = wrappers.map(rollup);
    const perWrapper = {
      pss: mem.reduce((a, m) => a + m.pss, 0) / Math.max(1, mem.length),
      rss: mem.reduce((a, m) => a + m.rss, 0) / Math.max(1, mem.length),
    };
    const own =
      product === "legacy" ? path.join(state, "agent-13") : path.join(dir, "homes", `${PREFIX}-13`);
    const diskKb = Number(must("du", ["-sk", own]).split("\t")[0]);
    return { reconcileMs: median(add), runningMs: median(up), ...perWrapper, diskKb };
  } finally {
    spawnSync("tmux", ["-S", path.join(run, "tmux.sock"), "kill-server"]);
    server.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    for (let n = 0; n <= 13; n++)
      for (const pid of pidsOfUid(UID_BASE + n))
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
    removeUsers();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates users and drops to them");
  removeUsers();
  const before = await measure("legacy");
  const after = await measure("current");
  const row = (label: string, f: Figures) =>
    `${label.padEnd(26)} reconcile 12→13 ${f.reconcileMs.toFixed(0).padStart(5)} ms   agent-13 running ${f.runningMs.toFixed(0).padStart(5)} ms   wrapper PSS ${f.pss.toFixed(0)} KiB RSS ${f.rss.toFixed(0)} KiB   agent's own files ${f.diskKb} KiB`;
  console.log(`medians of ${RUNS} runs, 12 running agents, stand-in claude`);
  console.log(row("shared user (before)", before));
  console.log(row("one user per agent (now)", after));
}

void main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
