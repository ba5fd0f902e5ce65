// What one Unix user per agent costs (issue 20), against the shared user of before, side by side
// on this machine. Prints figures, asserts nothing; the behaviour is proven by
// tests/hostile-agent.test.ts and tests/upgrade-users.test.ts. Run as root, under the shared lock:
//   flock /tmp/agent-host-system.lock npm run --silent bench:agent-users [-- RUNS]
//
// "Before" is the last main commit with one shared agent user: LEGACY_COMMIT, the first parent of
// the merge that brought per-agent users (c8b3180 "Merge branch 'h20-users'"). Its host files come
// from a `git worktree add` of that commit in /tmp, its bundle built there by its own
// scripts/build-host.ts (the bundle is not tracked); the worktree is removed after.
//
// For each product (before, and this tree): a real tmux server, 12 agents of the stand-in claude,
// then, RUNS times (min/median/max):
// - the time to add agent 13: `agentctl reconcile 13` (wall time of the command) and until agent
//   13's claude runs (its wrapper's pid file, a live process) — with per-agent users that
//   includes useradd, the home, the workspace and the state folders. Between runs agent 13 goes
//   again (reconcile 12) and its user, home, state and workspace are removed, so every run adds
//   it as a first 12 → 13 does;
// - the supervisor's memory per agent: PSS and RSS of each agent-wrapper (the pane's process);
// - the disk an agent's own files take before any work: its state (in its home, with per-agent
//   users) and its workspace (du).
// The real claude's memory per agent is printed by npm run bench:scale (the same binary and pages
// under either design).
//
// Then agent 13's Docker (dockerMode rootless; the same design before and now: the daemon user is
// agent-13, uid 2013, by the fixed scheme of host/docker/rootless.ts), RUNS times, each with a
// fresh home: its first `docker version`, with the environment the wrapper hands claude
// (`agent-host.js docker-env 13`), through agent-docker@2013.socket, until it returns; then the
// idle daemon stack's PSS and RSS (every process of uid 2013). The product's own Docker step
// (setUpAgentDocker: subordinate ids), launcher (agent-dockerd) and unit files are used; what
// stands in for systemd, which is not PID 1 here (as in tests/docker-rootless.test.ts):
// systemd-socket-activate listens on the socket unit's ListenStream= and, on the first
// connection, runs the relay unit as uid 2013: its ExecStartPre (`systemctl --user start
// agent-dockerd.service`, a Type=notify unit: it returns once the daemon is ready) is the launcher
// started in the background and waited for until the daemon answers on its own socket; then its
// ExecStart (systemd-socket-proxyd). /run/user/2013 is made as logind makes it, and /dev/net/tun
// is 0666 as udev makes it. /etc/subuid, /etc/subgid and /dev/net/tun's mode are put back after.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pidsOfUid } from "../host/agents/migrate";
import { parseHostConf } from "../host/conf/conf";
import { setUpAgentDocker } from "../host/docker/docker-main";
import { agentDockerSocket, agentUid, agentUserName } from "../host/docker/rootless";
import { stats } from "./bench-support";

const REPO = path.resolve(__dirname, "..");
/** c8b3180^1: main just before "Merge branch 'h20-users'", which brought per-agent users. */
const LEGACY_COMMIT = "e8521ce621b97cb0c10ef786adb619a809431337";
const RUNS = Math.max(1, Number(process.argv[2] ?? 3));
const PREFIX = "benchusers";
const UID_BASE = 61700;

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

function must(
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  opts: { cwd?: string } = {},
): string {
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: 120_000, ...opts });
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

function killUid(uid: number): void {
  for (const pid of pidsOfUid(uid))
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
}

/** Removes the user (and group) `name` if it carries the benchmark's id for it. */
function removeUser(name: string, uid: number): void {
  const pw = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
  if (pw.status === 0 && pw.stdout.split(":")[2] === String(uid)) spawnSync("userdel", [name]);
  const gr = spawnSync("getent", ["group", name], { encoding: "utf8" });
  if (gr.status === 0 && gr.stdout.split(":")[2] === String(uid)) spawnSync("groupdel", [name]);
}

function removeUsers(): void {
  for (let n = 0; n <= 14; n++) removeUser(n === 0 ? PREFIX : `${PREFIX}-${n}`, UID_BASE + n);
}

/** The legacy commit's host files, its bundle built by its own build script in a worktree. */
function buildLegacy(into: string): void {
  const tree = path.join(
    fs.mkdtempSync(path.join(os.tmpdir(), "bench-agent-users-legacy-")),
    "tree",
  );
  must("git", ["-C", REPO, "worktree", "add", "--quiet", "--detach", tree, LEGACY_COMMIT]);
  try {
    fs.symlinkSync(path.join(REPO, "node_modules"), path.join(tree, "node_modules"));
    must(
      path.join(REPO, "node_modules/.bin/ts-node"),
      ["--transpile-only", "scripts/build-host.ts"],
      process.env,
      { cwd: tree },
    );
    const host = path.join(tree, "cloud-init/host");
    for (const f of fs.readdirSync(host)) {
      fs.copyFileSync(path.join(host, f), path.join(into, f));
      fs.chmodSync(path.join(into, f), 0o755);
    }
  } finally {
    spawnSync("git", ["-C", REPO, "worktree", "remove", "--force", tree]);
    fs.rmSync(path.dirname(tree), { recursive: true, force: true });
  }
}

interface Figures {
  reconcileMs: number[];
  runningMs: number[];
  pss: number;
  rss: number;
  stateKb: number;
  workspaceKb: number;
  /** What stateKb measured. */
  ownLabel: string;
}

async function measure(product: "legacy" | "current"): Promise<Figures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-agent-users-${product}-`));
  fs.chmodSync(dir, 0o755);
  let lib = path.join(REPO, "cloud-init/host");
  if (product === "legacy") {
    lib = path.join(dir, "lib");
    fs.mkdirSync(lib, { mode: 0o755 });
    buildLegacy(lib);
    // The shared user, as cloud-init made it before.
    must("groupadd", ["--gid", String(UID_BASE), PREFIX]);
    must("useradd", [
      ...["--uid", String(UID_BASE), "--gid", String(UID_BASE)],
      ...["-M", "-d", path.join(dir, "home"), PREFIX],
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
      // Keys the shared-user product did not know (its parser may refuse them).
      ...(product === "current"
        ? [`AGENT_UID_BASE=${UID_BASE}`, `AGENT_HOMES_DIR=${path.join(dir, "homes")}`]
        : []),
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
    AGENTCTL_TMUX_CONF: path.join(lib, "tmux.conf"),
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
    const own =
      product === "legacy" ? path.join(state, "agent-13") : path.join(dir, "homes", `${PREFIX}-13`);
    const workspace = path.join(dir, "workspaces", "agent-13");
    const du = (p: string) => Number(must("du", ["-sk", p]).split("\t")[0]);
    const add: number[] = [];
    const up: number[] = [];
    let stateKb = 0;
    let workspaceKb = 0;
    must(agentctl, ["reconcile", "12"], env);
    for (let n = 1; n <= 12; n++) await until(`agent-${n}`, () => claudePid(run, n));
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      must(agentctl, ["reconcile", "13"], env);
      add.push(ms(t0));
      await until("agent-13's claude", () => claudePid(run, 13));
      up.push(ms(t0));
      stateKb = du(own);
      workspaceKb = du(workspace);
      if (i === RUNS - 1) break;
      // Agent 13 goes, with everything of its own, so the next run adds it as the first did.
      must(agentctl, ["reconcile", "12"], env);
      await until("agent-13 stopped", () => (claudePid(run, 13) ? undefined : true));
      if (product === "current") {
        killUid(UID_BASE + 13);
        removeUser(`${PREFIX}-13`, UID_BASE + 13);
      }
      for (const p of [own, workspace, path.join(run, "agent-13")])
        fs.rmSync(p, { recursive: true, force: true });
    }
    // The panes' processes: each agent's wrapper.
    const panes = must("tmux", [
      ...["-S", path.join(run, "tmux.sock"), "list-panes", "-s", "-t", "=agents"],
      ...["-F", "#{pane_pid} #{window_name}"],
    ]);
    const wrappers = panes
      .split("\n")
      .filter((l) => / agent-\d+$/.test(l))
      .map((l) => Number(l.split(" ")[0]));
    const mem = wrappers.map(rollup);
    return {
      reconcileMs: add,
      runningMs: up,
      pss: mem.reduce((a, m) => a + m.pss, 0) / Math.max(1, mem.length),
      rss: mem.reduce((a, m) => a + m.rss, 0) / Math.max(1, mem.length),
      stateKb,
      workspaceKb,
      ownLabel: product === "legacy" ? "STATE_DIR/agent-13" : "its home (state inside)",
    };
  } finally {
    spawnSync("tmux", ["-S", path.join(run, "tmux.sock"), "kill-server"]);
    server.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    for (let n = 0; n <= 13; n++) killUid(UID_BASE + n);
    removeUsers();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
const DOCKER_TOOLS = [
  ...["docker", "rootlesskit", "slirp4netns", "newuidmap", "setpriv", "systemd-socket-activate"],
  "/usr/lib/systemd/systemd-socket-proxyd",
];

/** A unit file's KEY= value (cloud-init/systemd). */
function unitLine(file: string, key: string): string {
  const m = new RegExp(`^${key}=(.*)$`, "m").exec(
    fs.readFileSync(path.join(REPO, "cloud-init/systemd", file), "utf8"),
  );
  if (!m) throw new Error(`${file} has no ${key}=`);
  return m[1];
}

interface DockerFigures {
  firstUseMs: number[];
  pssKib: number[];
  rssKib: number[];
  processes: number;
}

/** Agent 13's first `docker version` through its socket, and its idle daemon stack (above). */
async function dockerFirstUse(): Promise<DockerFigures | string> {
  const missing = DOCKER_TOOLS.filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status);
  if (missing.length > 0 || !fs.existsSync("/dev/net/tun"))
    return `skipped: needs /dev/net/tun and ${missing.join(", ")}`;
  const n = 13;
  const name = agentUserName(n);
  const uid = agentUid(n);
  if (spawnSync("getent", ["passwd", name]).status === 0)
    return `skipped: a user ${name} exists already (not this benchmark's)`;
  const group = spawnSync("getent", ["group", String(uid)], { encoding: "utf8" });
  if (group.status === 0 && group.stdout.split(":")[0] !== name)
    return `skipped: gid ${uid} is the group ${group.stdout.split(":")[0]} (not this benchmark's)`;
  const tmp = fs.mkdtempSync(path.join("/var/tmp", "bench-agent-users-docker-"));
  fs.chmodSync(tmp, 0o755);
  const saved = {
    subuid: fs.existsSync("/etc/subuid") ? fs.readFileSync("/etc/subuid", "utf8") : undefined,
    subgid: fs.existsSync("/etc/subgid") ? fs.readFileSync("/etc/subgid", "utf8") : undefined,
    tun: fs.statSync("/dev/net/tun").mode & 0o7777,
  };
  const runtime = `/run/user/${uid}`;
  const sock = agentDockerSocket(n);
  let relay: ChildProcess | undefined;
  let madeUser = false;
  const figures: DockerFigures = { firstUseMs: [], pssKib: [], rssKib: [], processes: 0 };
  const home = path.join(tmp, "home");
  const stop = async () => {
    if (relay?.pid)
      try {
        process.kill(-relay.pid, "SIGTERM");
      } catch {
        // gone
      }
    relay = undefined;
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      for (const pid of pidsOfUid(uid))
        try {
          process.kill(pid, sig);
        } catch {
          // gone
        }
      await until(
        "agent-13's daemon to exit",
        () => (pidsOfUid(uid).length ? undefined : true),
        5000,
      ).catch(() => undefined);
    }
    fs.rmSync(runtime, { recursive: true, force: true });
    fs.rmSync(sock, { force: true });
    fs.rmSync(home, { recursive: true, force: true });
  };
  try {
    if (group.status !== 0) must("groupadd", ["--gid", String(uid), name]);
    must("useradd", [
      ...["--uid", String(uid), "--gid", String(uid), "-M", "-d", home, "-s", "/bin/bash", name],
    ]);
    madeUser = true;
    const conf = path.join(tmp, "host.conf");
    fs.writeFileSync(conf, "DOCKER_MODE=rootless\n");
    // The product's Docker step, as reconcile runs it for 13 agents.
    setUpAgentDocker(parseHostConf("DOCKER_MODE=rootless\nAGENT_USER=agent\n", conf), n, () => {});
    const launcher = path.join(tmp, "agent-dockerd");
    fs.copyFileSync(path.join(REPO, "cloud-init/host/agent-dockerd"), launcher);
    fs.chmodSync(launcher, 0o755);
    const envRun = must(
      "node",
      [path.join(REPO, "cloud-init/host/agent-host.js"), "docker-env", String(n)],
      {
        ...process.env,
        AGENTCTL_CONFIG: conf,
      },
    );
    const dockerEnv = envRun.trim().split("\n");
    fs.chmodSync("/dev/net/tun", 0o666);
    fs.mkdirSync(path.dirname(sock), { recursive: true, mode: 0o755 });
    const listen = unitLine("agent-docker@.socket", "ListenStream").replace("%i", String(uid));
    if (listen !== sock)
      throw new Error(`the socket unit listens on ${listen}, docker-env says ${sock}`);
    const socketMode = parseInt(unitLine("agent-docker@.socket", "SocketMode"), 8);
    const proxy = unitLine("agent-docker@.service", "ExecStart").replace(/%i/g, String(uid));
    const ownSock = `${runtime}/docker.sock`;
    const log = path.join(tmp, "dockerd.log");
    // ExecStartPre (the user manager starting agent-dockerd.service and waiting for it), ExecStart.
    const relayScript = [
      `setsid "$1" >>"$2" 2>&1 </dev/null &`,
      `i=0; until DOCKER_HOST="unix://${ownSock}" docker version >/dev/null 2>&1; do`,
      `  i=$((i+1)); [ "$i" -lt 900 ] || exit 1; sleep 0.1; done`,
      `exec ${proxy}`,
    ].join("\n");
    for (let i = 0; i < RUNS; i++) {
      for (const dir of [home, path.join(home, "workspace")]) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fs.chownSync(dir, uid, uid);
      }
      fs.mkdirSync(runtime, { recursive: true, mode: 0o700 });
      fs.chmodSync(runtime, 0o700);
      fs.chownSync(runtime, uid, uid);
      relay = spawn(
        "systemd-socket-activate",
        [
          ...["-l", sock],
          ...[`-E`, `HOME=${home}`, `-E`, `USER=${name}`, `-E`, `PATH=${SYSTEM_PATH}`],
          ...[`-E`, `XDG_RUNTIME_DIR=${runtime}`],
          ...["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--init-groups", "--"],
          ...["sh", "-c", relayScript, "relay", launcher, log],
        ],
        { stdio: "ignore", detached: true },
      );
      await until(sock, () => (fs.existsSync(sock) ? true : undefined), 10_000);
      // What PID 1 does with SocketUser= and SocketMode=.
      fs.chownSync(sock, uid, uid);
      fs.chmodSync(sock, socketMode);
      const t0 = process.hrtime.bigint();
      const r = spawnSync(
        "setpriv",
        [
          ...[`--reuid=${uid}`, `--regid=${uid}`, "--init-groups", "--", "env", "-i"],
          ...[`HOME=${home}`, `USER=${name}`, `PATH=${SYSTEM_PATH}`, ...dockerEnv],
          ...["docker", "version", "--format", "{{.Server.Version}}"],
        ],
        { cwd: path.join(home, "workspace"), encoding: "utf8", timeout: 150_000 },
      );
      const took = ms(t0);
      if (r.status !== 0) {
        const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-2000) : "";
        throw new Error(`agent-13's first docker version: exit ${r.status}: ${r.stderr}\n${tail}`);
      }
      figures.firstUseMs.push(took);
      // Idle: every process of the agent's uid (launcher, rootlesskit, slirp4netns, dockerd,
      // containerd, the relay).
      await new Promise((res) => setTimeout(res, 3000));
      const pids = pidsOfUid(uid);
      const mem = pids.map((pid) => {
        try {
          return rollup(pid);
        } catch {
          return { pss: 0, rss: 0 };
        }
      });
      figures.processes = pids.length;
      figures.pssKib.push(mem.reduce((a, m) => a + m.pss, 0));
      figures.rssKib.push(mem.reduce((a, m) => a + m.rss, 0));
      await stop();
    }
    return figures;
  } finally {
    await stop();
    if (madeUser) {
      spawnSync("userdel", [name]);
      spawnSync("groupdel", [name]);
    }
    if (saved.subuid !== undefined) fs.writeFileSync("/etc/subuid", saved.subuid);
    if (saved.subgid !== undefined) fs.writeFileSync("/etc/subgid", saved.subgid);
    fs.chmodSync("/dev/net/tun", saved.tun);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates users and drops to them");
  removeUsers();
  const before = await measure("legacy");
  const after = await measure("current");
  console.log(
    `${RUNS} runs each, 12 running agents of the stand-in claude; before = ${LEGACY_COMMIT.slice(0, 7)} (one shared user), now = this tree (one user per agent)`,
  );
  for (const [label, f] of [
    ["before (shared user)", before],
    ["now (one user per agent)", after],
  ] as const) {
    console.log(`${label}:`);
    console.log(`  agentctl reconcile 12 → 13 (exit):     ${stats(f.reconcileMs)}`);
    console.log(`  until agent-13's claude runs:          ${stats(f.runningMs)}`);
    console.log(
      `  agent-wrapper, mean of 13:             PSS ${f.pss.toFixed(0)} KiB, RSS ${f.rss.toFixed(0)} KiB`,
    );
    console.log(
      `  agent-13's own files before any work:  ${f.ownLabel} ${f.stateKb} KiB, workspace ${f.workspaceKb} KiB (du)`,
    );
  }
  console.log("agent-13's rootless Docker (the same under either design), a fresh home each run:");
  const docker = await dockerFirstUse().catch((e: Error) => `failed: ${e.message}`);
  if (typeof docker === "string") {
    console.log(`  ${docker}`);
  } else {
    console.log(`  first docker version through its socket: ${stats(docker.firstUseMs)}`);
    console.log(
      `  idle daemon stack, ${docker.processes} processes: PSS ${stats(
        docker.pssKib.map((k) => k / 1024),
        "MiB",
      )}; RSS ${stats(
        docker.rssKib.map((k) => k / 1024),
        "MiB",
      )}`,
    );
  }
}

void main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
