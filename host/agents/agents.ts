// The agents' tmux windows, as agentctl reconcile and restart change them: one tmux server (owned
// by agent-host.service), session "agents", a permanent "control" window and one window agent-N
// per agent, each running agent-wrapper N. Every target is exact (`=agents:=agent-3` or a @window
// id) because tmux matches names by prefix (agent-1 would hit agent-10). What to do is decided
// by host/agents/reconcile.ts; this file only does it.
import { spawnSync, type StdioOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  agentIds,
  ensureAgent,
  lookupUser,
  lookupUsers,
  type AgentIds,
  type AgentUser,
} from "./agent-user";
import { rawOf, type HostConf } from "../conf/conf";
import { legacyUid } from "./migrate";
import { listWindows, parseWindowList, SESSION, WINDOW_FORMAT, type WindowList } from "./tmux";

export const CONTROL_WINDOW = "control";
/** How long `reconcile --boot` waits for the tmux server that systemd is starting. */
export const BOOT_SOCKET_WAIT_SECONDS = 60;
/** How long a command waits for another agentctl's lock (conf.runDir/agentctl.lock). */
export const LOCK_WAIT_SECONDS = 300;
const POLL_MS = 100;
const TMUX_TIMEOUT_MS = 30_000;
/** The line startAgents' tmux sequence prints after each agent it started. */
const STARTED_MARK = "agentctl-started ";
const LIST_WINDOWS = ["list-windows", "-t", `=${SESSION}`, "-F", WINDOW_FORMAT];
/** The session's size when it is made (no client is attached yet). */
const SIZE = ["-x", "200", "-y", "50"];
/** What probe's first command prints: the server answered. */
const SERVER_UP = "agentctl-server-up";

export type Log = (line: string) => void;

/** The files agentctl resolved (its defaults and the overrides tests use), passed in its env. */
export interface AgentctlPaths {
  /** agentctl itself: what the control window runs (`agentctl watch`). */
  self: string;
  wrapper: string;
  tmuxConf: string;
}

export function agentctlPaths(env: NodeJS.ProcessEnv): AgentctlPaths {
  const need = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set: run this command through agentctl`);
    return value;
  };
  return {
    // agentctl passes itself as called; the control window runs it by its real path.
    self: fs.realpathSync(need("AGENTCTL_SELF")),
    wrapper: need("AGENTCTL_WRAPPER"),
    tmuxConf: need("AGENTCTL_TMUX_CONF"),
  };
}

/**
 * `install -d -m MODE` of a root-only folder (conf.runDir and what is in it): parents as needed; the
 * mode set even if it exists. Never for a path an agent can write (agent-user.ts has those).
 */
export function installDir(dir: string, mode: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, mode);
}

export const isDir = (p: string): boolean => {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** A synchronous pause inside a bounded poll (the command has nothing else to do meanwhile). */
const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

const hasSystemd = (): boolean => isDir("/run/systemd/system");

const epochSeconds = (): number => Math.floor(Date.now() / 1000);

export class Agents {
  /** The session's windows as last read (readWindows). */
  windows: WindowList = { byName: new Map(), duplicates: [] };
  /** ensureSession found no session: the next startAgents (or createSession) makes it. */
  private sessionToCreate = false;

  constructor(
    readonly conf: HostConf,
    readonly paths: AgentctlPaths,
    readonly log: Log,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** tmux on our socket; a failure ends the command (exit 1), after tmux's own message. */
  tmux(args: readonly string[], stderr: "inherit" | "ignore" = "inherit"): string {
    const r = this.tryTmux(args, stderr);
    if (r.status !== 0) throw new Error(`tmux ${args[0]} failed (exit ${r.status ?? "?"})`);
    return r.stdout;
  }

  tryTmux(args: readonly string[], stderr: "inherit" | "ignore" = "ignore") {
    const stdio: StdioOptions = ["ignore", "pipe", stderr];
    const r = spawnSync("tmux", ["-S", this.conf.tmuxSocket, ...args], {
      encoding: "utf8",
      stdio,
      timeout: TMUX_TIMEOUT_MS,
    });
    return { status: r.status, stdout: r.stdout ?? "" };
  }

  serverUp(): boolean {
    return this.tryTmux(["list-sessions"]).status === 0;
  }

  /**
   * Whether the tmux server is up and, when it is, the session's windows (into `windows`; none
   * without a session), with one tmux client: what reconcile asks first under its lock.
   */
  probe(): boolean {
    const r = this.tryTmux(["display-message", "-p", SERVER_UP, ";", ...LIST_WINDOWS]);
    const lines = r.stdout.split("\n");
    if (lines[0] !== SERVER_UP) return false;
    this.windows = parseWindowList(r.status === 0 ? lines.slice(1).join("\n") : "");
    return true;
  }

  sessionUp(): boolean {
    return this.tryTmux(["has-session", "-t", `=${SESSION}`]).status === 0;
  }

  /** Reads the session's windows into `windows` (none without a session). */
  readWindows(): WindowList {
    this.windows = listWindows(this.conf.tmuxSocket);
    return this.windows;
  }

  /** Agent i's user and paths (the scheme of host/agents/agent-user.ts). */
  ids(i: number): AgentIds {
    return agentIds(this.conf, i);
  }

  prepareRunDir(): void {
    installDir(this.conf.runDir, 0o700);
    installDir(path.dirname(this.conf.tmuxSocket), 0o700);
  }

  /**
   * Waits for the tmux server. Under systemd the server belongs to agent-host.service: wait while
   * it starts (boot, ExecStartPost), never start one that would belong to the caller's SSH login.
   * Without systemd (containers, tests) start one ourselves unless --boot says someone else is.
   */
  ensureServer(boot: boolean): void {
    if (this.serverUp()) return;
    const sock = this.conf.tmuxSocket;
    if (boot || (hasSystemd() && serviceStarting())) {
      this.log(`waiting up to ${BOOT_SOCKET_WAIT_SECONDS}s for the tmux server on ${sock}`);
      const deadline = Date.now() + BOOT_SOCKET_WAIT_SECONDS * 1000;
      while (!this.serverUp()) {
        if (Date.now() >= deadline)
          throw new Error(
            `no tmux server on ${sock} after ${BOOT_SOCKET_WAIT_SECONDS}s; check: systemctl status agent-host`,
          );
        pause(POLL_MS);
      }
      return;
    }
    if (hasSystemd())
      throw new Error(`no tmux server on ${sock}; start it with: systemctl start agent-host`);
    this.log(
      `no systemd: starting the tmux server on ${sock} (it will not come back after a reboot)`,
    );
    this.prepareRunDir();
    this.tmux(["-f", this.paths.tmuxConf, "start-server"]);
    if (!this.serverUp()) throw new Error(`could not start tmux on ${sock}`);
  }

  /**
   * conf.runDir/agentctl.lock, held until this process exits. flock(1) locks the open file this
   * process hands it as fd 3, so the lock is the same flock(2) lock agentctl's bash took and
   * outlives the flock process; an exit (or a crash) releases it.
   */
  takeLock(): void {
    this.prepareRunDir();
    const file = path.join(this.conf.runDir, "agentctl.lock");
    const fd = fs.openSync(file, "a");
    const flock = (args: string[]): boolean => {
      const r = spawnSync("flock", [...args, "3"], { stdio: ["ignore", "ignore", "inherit", fd] });
      if (r.error) throw new Error(`flock: ${r.error.message}`);
      return r.status === 0;
    };
    if (flock(["-n"])) return;
    this.log(`waiting for another agentctl (lock ${file})`);
    if (!flock(["-w", String(LOCK_WAIT_SECONDS)]))
      throw new Error(`lock ${file} still held after ${LOCK_WAIT_SECONDS}s`);
  }

  /** Environment the windows need when agentctl itself runs with overrides (tests, staging). */
  windowEnv(): string[] {
    const out = ["-e", `AGENTCTL_CONFIG=${this.conf.file}`];
    if (this.env.AGENT_WRAPPER) out.push("-e", `AGENT_WRAPPER=${this.env.AGENT_WRAPPER}`);
    if (this.env.AGENT_HOST_JS) out.push("-e", `AGENT_HOST_JS=${this.env.AGENT_HOST_JS}`);
    return out;
  }

  /**
   * The session with its permanent control window: removing agents can never end the session.
   * Reads the windows (or takes `listed`, just read by probe): one list-windows, which lists
   * nothing only when there is no session (a session always has a window; the server is up). A missing session is created by the next
   * startAgents, in the same tmux call as the agents' windows (the control window's monitor is a
   * Node start that would otherwise compete with the rest of the reconcile), or by createSession.
   */
  ensureSession(listed = this.readWindows()): void {
    const watch = this.watchArgs();
    if (listed.byName.size === 0 && listed.duplicates.length === 0) {
      this.sessionToCreate = true;
      return;
    }
    const control = this.windows.byName.get(CONTROL_WINDOW);
    if (!control) {
      this.tmux(["new-window", "-d", "-t", `=${SESSION}:`, "-n", CONTROL_WINDOW, ...watch]);
      this.readWindows();
    } else if (control.dead) {
      this.tmux(["respawn-pane", "-k", "-t", control.id, ...watch]);
    }
  }

  /** The session ensureSession found missing, now, if no startAgents has created it. */
  createSession(): void {
    if (!this.sessionToCreate) return;
    this.windows = parseWindowList(this.tmux([...this.newSession(), ";", ...LIST_WINDOWS]));
    this.sessionToCreate = false;
    this.log(`created tmux session ${SESSION}`);
  }

  private watchArgs(): string[] {
    return [...this.windowEnv(), "--", this.paths.self, "watch"];
  }

  private newSession(): string[] {
    return ["new-session", "-d", "-s", SESSION, "-n", CONTROL_WINDOW, ...SIZE, ...this.watchArgs()];
  }

  /** The control window in a session that has none, at the first free index (0). */
  private newControlWindow(): string[] {
    return ["new-window", "-d", "-t", `=${SESSION}:`, "-n", CONTROL_WINDOW, ...this.watchArgs()];
  }

  /**
   * The session made with agent i's window (new-session puts it at index 0), which then moves to
   * index i, as newWindow would have put it; its options as newWindow sets them.
   */
  private newSessionWith(i: number, delay: string): string[] {
    const name = `agent-${i}`;
    const create = ["new-session", "-d", "-s", SESSION, "-n", name, ...SIZE];
    const move = ["move-window", "-s", `=${SESSION}:=${name}`, "-t", `=${SESSION}:${i}`];
    return [...create, ...this.wrapperArgs(i, delay), ...this.windowOptions(name), ";", ...move];
  }

  workspace(i: number): string {
    return this.ids(i).workspace;
  }

  /**
   * Agent i's user, home, workspace and state folders (made safely, as agent-user.ts says), once
   * per command; the users of 1..count are looked up with one getent first (knowAgents).
   */
  ensureAgent(i: number): AgentIds {
    const done = this.ensured.get(i);
    if (done) return done;
    const made = ensureAgent(
      this.conf,
      i,
      this.log,
      (name) => this.users?.get(name) ?? lookupUser(name),
    );
    this.ensured.set(i, made);
    return made;
  }

  /**
   * Looks up the users of agents 1..count, and whether any user has the uid of the shared user of
   * older hosts (legacyUidInUse), with one getent: for ensureAgent and the migration; and the
   * `also` names with them (the Docker step's, knownUsers: on the VM the same names).
   */
  knowAgents(count: number, also: readonly string[] = []): void {
    const names = Array.from({ length: count }, (_, k) => agentIds(this.conf, k + 1).name);
    const legacy = String(legacyUid(this.conf));
    this.users = lookupUsers([...new Set([...names, ...also, legacy])]);
    this.legacyUidInUse = this.users.has(legacy);
    this.ensured.clear();
  }

  /**
   * Of `names`, the users knowAgents found, or ensureAgent has made or checked since (a scale-up
   * makes its new agents' users in between): what a second getent would say now, without one.
   */
  knownUsers(names: readonly string[]): Map<string, AgentUser> {
    const made = new Map([...this.ensured.values()].map((u) => [u.name, u] as const));
    const out = new Map<string, AgentUser>();
    for (const name of names) {
      const user = made.get(name) ?? this.users?.get(name);
      if (user) out.set(name, user);
    }
    return out;
  }

  /** A user has the uid of the shared user of older hosts (as knowAgents last found). */
  legacyUidInUse = true;

  private readonly ensured = new Map<number, AgentIds>();
  private users?: Map<string, AgentUser>;

  /**
   * Agent i's files before its window starts: run folder, no stop marker. reconcile made the agent
   * (ensureAgent) and the wrapper checks it again (prepare-agent). A stop marker gives way to a
   * `restarted` one, written first, so that from the stop to the respawn one of them is there for
   * the monitor (host/agents/facts.ts onItsWayBack).
   */
  private prepareStart(i: number): void {
    const dir = path.join(this.conf.runDir, `agent-${i}`);
    installDir(dir, 0o700);
    const stop = path.join(dir, "stop");
    if (!fs.existsSync(stop)) return;
    fs.writeFileSync(path.join(dir, "restarted"), "");
    fs.rmSync(stop, { force: true });
  }

  /** What agent i's pane runs: the wrapper in its workspace, with `delay`. */
  private wrapperArgs(i: number, delay: string): string[] {
    const run = ["-c", this.workspace(i), ...this.windowEnv(), "--", this.paths.wrapper];
    return [...run, String(i), "--delay", delay];
  }

  /**
   * Agent i's new window (at index `index`, "" for the next free one) and its options, as one
   * command sequence: the name is the contract, and claude's terminal titles must never rename
   * the window. tmux runs none of the options if new-window fails.
   */
  private newWindow(i: number, delay: string, index: string): string[] {
    const name = `agent-${i}`;
    const create = ["new-window", "-d", "-t", `=${SESSION}:${index}`, "-n", name];
    return [...create, ...this.wrapperArgs(i, delay), ...this.windowOptions(name)];
  }

  /** "; set-option …" for each option an agent's window needs: claude never renames it. */
  private windowOptions(name: string): string[] {
    const target = `=${SESSION}:=${name}`;
    return ["automatic-rename", "allow-rename"].flatMap((o) => [
      ...[";", "set-option", "-w", "-t", target, o, "off"],
    ]);
  }

  /**
   * Starts agent i in a new window, or respawns its dead pane. `delay`: seconds the wrapper waits
   * first, so agents started together (boot, scale-up) do not all start in the same second.
   */
  startAgent(i: number, delay: string): void {
    const name = `agent-${i}`;
    this.prepareStart(i);
    const existing = this.windows.byName.get(name);
    if (existing) {
      this.tmux(["respawn-pane", "-k", "-t", existing.id, ...this.wrapperArgs(i, delay)]);
      return;
    }
    // Window index = agent number where that index is free, so prefix-key + digit finds agent-N.
    const first = this.tryTmux(this.newWindow(i, delay, String(i)));
    if (first.status === 0) return;
    if (this.readWindows().byName.has(name))
      throw new Error(`tmux could not set the options of window ${name}`);
    this.tmux(this.newWindow(i, delay, ""));
  }

  /**
   * startAgent for several agents with ONE tmux client (reconcile 0 -> 12 was mostly its 12 tmux
   * processes): each agent's new window or respawn is a part of one command sequence, followed
   * by a `started N` line it prints, and the session's windows are listed at the end (into
   * `windows`). tmux runs nothing after a failed command, so on a failure (an index already
   * taken, say) the agents whose line did not come are started one by one by startAgent, which
   * has the fallbacks and names each one's own error. Returns the agents that failed, with why.
   */
  startAgents(starts: readonly { agent: number; delay: string }[]): Map<number, unknown> {
    const failed = new Map<number, unknown>();
    const ready: { agent: number; delay: string }[] = [];
    for (const s of starts) {
      try {
        this.prepareStart(s.agent);
        ready.push(s);
      } catch (error) {
        failed.set(s.agent, error);
      }
    }
    if (ready.length === 0) {
      this.createSession();
      return failed;
    }
    // The last delay first: a wrapper with a delay only sleeps, and what starts working at once
    // (the wrapper with delay 0, and the control window's monitor: Node starts both) comes last,
    // competing with no other start of this sequence for the CPU. A session to make is made with
    // the first agent's window (moved to its index), its control window added at the end.
    const creating = this.sessionToCreate;
    const seq: string[] = [];
    for (const [k, { agent, delay }] of [...ready].reverse().entries()) {
      const existing = this.windows.byName.get(`agent-${agent}`);
      seq.push(
        ...(existing
          ? ["respawn-pane", "-k", "-t", existing.id, ...this.wrapperArgs(agent, delay)]
          : creating && k === 0
            ? this.newSessionWith(agent, delay)
            : this.newWindow(agent, delay, String(agent))),
        ...[";", "display-message", "-p", `${STARTED_MARK}${agent}`, ";"],
      );
    }
    if (creating) seq.push(...this.newControlWindow(), ";");
    seq.push(...LIST_WINDOWS);
    const r = this.tryTmux(seq);
    const lines = r.stdout.split("\n");
    const started = new Set(
      lines.filter((l) => l.startsWith(STARTED_MARK)).map((l) => l.slice(STARTED_MARK.length)),
    );
    if (r.status === 0) {
      if (this.sessionToCreate) this.log(`created tmux session ${SESSION}`);
      this.sessionToCreate = false;
      this.windows = parseWindowList(lines.filter((l) => !l.startsWith(STARTED_MARK)).join("\n"));
      return failed;
    }
    // Part-way: the session, if it was to be made, exists unless its new-session failed.
    if (this.sessionToCreate) {
      this.readWindows();
      if (this.windows.byName.size > 0) {
        this.sessionToCreate = false;
        this.log(`created tmux session ${SESSION}`);
        // Its control window came at the end of the sequence, which stopped before it.
        this.ensureSession(this.windows);
      } else this.createSession();
    }
    this.readWindows();
    for (const { agent, delay } of ready) {
      if (started.has(String(agent))) continue;
      try {
        this.startAgent(agent, delay);
      } catch (error) {
        failed.set(agent, error);
      }
    }
    this.readWindows();
    return failed;
  }

  /**
   * Asks the given agents to exit: a stop marker (so the wrapper does not restart claude) and
   * SIGTERM to the wrapper, which forwards it to claude. Waits up to conf.stopTimeoutSeconds+5 for
   * their panes to die. Workspaces and agents' state (session id, conversation) are never touched.
   */
  requestStop(agents: readonly number[]): void {
    for (const i of agents) {
      const dir = path.join(this.conf.runDir, `agent-${i}`);
      installDir(dir, 0o700);
      fs.writeFileSync(path.join(dir, "stop"), "");
      const w = this.windows.byName.get(`agent-${i}`);
      if (w && !w.dead) signal(w.pid, "SIGTERM");
    }
    const deadline = epochSeconds() + Math.trunc(this.conf.stopTimeoutSeconds) + 5;
    for (;;) {
      const byName = this.readWindows().byName;
      const pending = agents.filter((i) => {
        const w = byName.get(`agent-${i}`);
        return w !== undefined && !w.dead;
      }).length;
      if (pending === 0) return;
      if (epochSeconds() >= deadline) {
        this.log(
          `warning: ${pending} agent(s) did not exit within ${rawOf(this.conf, "stopTimeoutSeconds")}s; killing them`,
        );
        return;
      }
      pause(POLL_MS);
    }
  }

  /** Scale-down: stop, then remove the windows. */
  stopAgents(agents: readonly number[]): void {
    this.requestStop(agents);
    for (const i of agents) {
      const w = this.windows.byName.get(`agent-${i}`);
      if (w) this.tmux(["kill-window", "-t", w.id]);
      // A claude that outlived its wrapper (it ignored SIGTERM and SIGHUP) must not linger.
      const pid = this.readRunFile(i, "pid");
      if (pid !== undefined) signal(pid, "SIGKILL");
    }
  }

  /** conf.runDir/agent-N/FILE without its trailing newlines; undefined if unreadable. */
  readRunFile(i: number, file: string): string | undefined {
    try {
      return fs
        .readFileSync(path.join(this.conf.runDir, `agent-${i}`, file), "utf8")
        .replace(/\n+$/, "");
    } catch {
      return undefined;
    }
  }

  /** Applies host.conf limits to running agents' scopes and to agents.slice (systemd only). */
  applyLimits(): void {
    if (!hasSystemd()) return;
    const conf = this.conf;
    if (conf.agentsMemoryMaxMb !== "") {
      const ok = systemctl([
        "set-property",
        "--runtime",
        "agents.slice",
        `MemoryMax=${conf.agentsMemoryMaxMb}M`,
      ]);
      if (!ok) this.log("warning: could not set MemoryMax on agents.slice");
    }
    for (const unit of this.agentUnits()) {
      if (!systemctl(["is-active", "--quiet", unit])) continue;
      const limits = [
        `MemoryMax=${conf.agentMemoryMaxMb}M`,
        `CPUQuota=${conf.agentCpuQuotaPercent}%`,
      ];
      if (!systemctl(["set-property", "--runtime", unit, ...limits]))
        this.log(`warning: could not update limits of ${unit}`);
    }
  }

  /** The systemd scopes the wrappers recorded (conf.runDir/agent-*\/unit), in glob order. */
  private agentUnits(): string[] {
    let dirs: string[];
    try {
      dirs = fs.readdirSync(this.conf.runDir).filter((d) => d.startsWith("agent-"));
    } catch {
      return [];
    }
    const units: string[] = [];
    for (const d of dirs.sort()) {
      try {
        units.push(
          fs.readFileSync(path.join(this.conf.runDir, d, "unit"), "utf8").replace(/\n+$/, ""),
        );
      } catch {
        // no scope recorded (no systemd when it started, or not started yet)
      }
    }
    return units;
  }
}

/** A signal to a pid as text from tmux or a run file; no process, or no such pid, is no error. */
function signal(pid: string, sig: NodeJS.Signals): void {
  // Only a real process id: `kill 0` or a negative one would signal a whole process group.
  if (!/^[0-9]+$/.test(pid) || Number(pid) <= 0) return;
  try {
    process.kill(Number(pid), sig);
  } catch {
    // already gone
  }
}

function systemctl(args: string[]): boolean {
  // Its output goes to stderr: stdout carries only agentctl's data (--json).
  return spawnSync("systemctl", args, { stdio: ["ignore", 2, 2] }).status === 0;
}

/** agent-host.service is up or starting: its tmux server is on the way. */
function serviceStarting(): boolean {
  if (systemctl(["is-active", "--quiet", "agent-host.service"])) return true;
  const r = spawnSync("systemctl", ["show", "-P", "ActiveState", "agent-host.service"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  return (r.stdout ?? "").trim() === "activating";
}
