// What the benchmarks share (scripts/bench-agentctl.ts, bench-web.ts, bench-hooks.ts): timing,
// figures, bounded waits, and a fleet of stand-in agents under a real tmux server started as
// agent-host.service starts it (`agentctl server`), as a real unprivileged user. The benchmarks
// print figures and assert nothing; the behaviour is proven by the tests.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as net from "net";
import { freePort, removeTestAgents } from "../tests/support";

export const ROOT = path.resolve(__dirname, "..");
export const AGENTCTL = path.join(ROOT, "cloud-init/host/agentctl");
export const BUNDLE = path.join(ROOT, "cloud-init/host/agent-host.js");

/** Milliseconds since `start` (process.hrtime.bigint()). */
export function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** "median 12 ms, min 10 ms, max 15 ms (5 runs)". */
export function stats(values: number[], unit = "ms"): string {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  return `median ${at(0.5).toFixed(0)} ${unit}, min ${v[0].toFixed(0)} ${unit}, max ${v[v.length - 1].toFixed(0)} ${unit} (${v.length} runs)`;
}

export const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Runs a command to completion (2 min at most); its stdout, or an error with its stderr. */
export function must(cmd: string, args: string[], env?: NodeJS.ProcessEnv, input?: string): string {
  const r = spawnSync(cmd, args, { env, input, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** Polls `probe` every `everyMs` until it returns something other than undefined; fails after `limitMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined,
  limitMs = 60_000,
  everyMs = 5,
): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The claude pid agent-N's wrapper recorded under `run`, if that process is alive. */
export function claudePid(run: string, n: number): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(run, `agent-${n}`, "pid"), "utf8").trim());
    return pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A benchmark's fleet: its own agent users (the product makes `${user}-N` with uid = gid =
 * uidBase + N, homes under the fleet's folder; any left from an earlier run are removed first,
 * and `close` removes them again), a 0755 folder with the stand-in claude
 * (tests/fixtures/claude), a host.conf of the fleet's paths plus `conf`'s lines, and agentctl's
 * environment.
 */
export class BenchFleet {
  readonly dir: string;
  readonly run: string;
  /** AGENT_HOMES_DIR: agent N's state is in homes/${user}-N/.agent-host. */
  readonly homes: string;
  readonly sock: string;
  readonly conf: string;
  readonly claude: string;
  readonly env: NodeJS.ProcessEnv;
  private readonly children: ChildProcess[] = [];

  constructor(
    readonly prefix: string,
    readonly user: string,
    readonly uidBase: number,
    conf: (fleet: BenchFleet) => string[],
  ) {
    if (process.getuid?.() !== 0) throw new Error("run as root: it creates and runs as users");
    removeTestAgents(user, uidBase);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    fs.chmodSync(this.dir, 0o755);
    this.claude = path.join(this.dir, "claude");
    fs.copyFileSync(path.join(ROOT, "tests/fixtures/claude"), this.claude);
    fs.chmodSync(this.claude, 0o755);
    this.run = path.join(this.dir, "run");
    this.homes = path.join(this.dir, "homes");
    this.sock = path.join(this.run, "tmux.sock");
    this.conf = path.join(this.dir, "host.conf");
    fs.writeFileSync(
      this.conf,
      [
        `AGENT_USER=${user}`,
        `AGENT_UID_BASE=${uidBase}`,
        `AGENT_HOMES_DIR=${this.homes}`,
        `CLAUDE_BIN=${this.claude}`,
        `WORKSPACES_DIR=${path.join(this.dir, "workspaces")}`,
        `STATE_DIR=${path.join(this.dir, "legacy-state")}`,
        `RUN_DIR=${this.run}`,
        `TMUX_SOCKET=${this.sock}`,
        ...conf(this),
        "",
      ].join("\n"),
    );
    this.env = {
      PATH: process.env.PATH,
      LANG: "C.UTF-8",
      AGENTCTL_CONFIG: this.conf,
      AGENT_WRAPPER: path.join(ROOT, "cloud-init/host/agent-wrapper"),
      AGENTCTL_TMUX_CONF: path.join(ROOT, "cloud-init/host/tmux.conf"),
      AGENT_HOST_JS: BUNDLE,
    };
  }

  /** A long-running child with the fleet's environment, ended by `close`. */
  start(cmd: string, args: string[]): ChildProcess {
    const c = spawn(cmd, args, { env: this.env, stdio: "ignore" });
    this.children.push(c);
    return c;
  }

  /** The tmux server as agent-host.service starts it, once it answers. */
  async startServer(): Promise<ChildProcess> {
    const server = this.start(AGENTCTL, ["server"]);
    await until("the tmux server", () => (this.tmuxUp() ? true : undefined));
    return server;
  }

  /** Ends the tmux server (and so every agent) and the children started, and waits for it. */
  async stopServer(): Promise<void> {
    spawnSync("tmux", ["-S", this.sock, "kill-server"]);
    for (const c of this.children.splice(0)) c.kill("SIGTERM");
    await until("the tmux server to end", () => (this.tmuxUp() ? undefined : true));
  }

  /**
   * A real git server for the repositories in `base` (git daemon on 127.0.0.1, read-only, as
   * `nobody`, who must own them), once it accepts connections: a remote as GIT_REPOSITORY names
   * one. Its git:// URL; `close` ends it.
   */
  async gitDaemon(base: string): Promise<string> {
    const port = await freePort();
    const daemon = path.join(must("git", ["--exec-path"]).trim(), "git-daemon");
    const args = [`--listen=127.0.0.1`, `--port=${port}`, `--base-path=${base}`, "--export-all"];
    const c = spawn(daemon, [...args, "--user=nobody", "--group=nogroup", base], {
      env: { PATH: process.env.PATH, HOME: "/nonexistent" },
      stdio: "ignore",
    });
    this.children.push(c);
    const connects = () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          s.end();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
    const deadline = Date.now() + 10_000;
    while (!(await connects())) {
      if (c.exitCode !== null) throw new Error(`git daemon exited with ${c.exitCode}`);
      if (Date.now() > deadline) throw new Error(`git daemon not listening on 127.0.0.1:${port}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return `git://127.0.0.1:${port}`;
  }

  /** Runs agentctl with the fleet's environment; its stdout. */
  agentctl(args: string[]): string {
    return must(AGENTCTL, args, this.env);
  }

  /** Stops everything, then removes the folder and the fleet's agent users. */
  async close(): Promise<void> {
    await this.stopServer();
    removeTestAgents(this.user, this.uidBase);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private tmuxUp(): boolean {
    return spawnSync("tmux", ["-S", this.sock, "list-sessions"]).status === 0;
  }
}
