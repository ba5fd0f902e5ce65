import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  AGENTCTL,
  BUNDLE,
  LIB_DIR,
  MANAGED,
  MANAGED_DIR,
  productHostConf,
  TMUX_CONF,
  WRAPPER,
} from "./host-files";
import { freePort, poll, runAsync, type RunResult } from "./support";

/** The bundle the managed hooks call, where the VM has it (a bind mount in the namespace). */
const LIB_BUNDLE = path.join(LIB_DIR, "agent-host.js");

// Suites that drive real tools (tmux, sshd, loop devices, git servers) skip, saying why, on a
// machine that lacks them; in CI (CI=true) a missing requirement fails instead, so a green CI
// never hides a suite that did not run.
export function unavailableSuite(reason: string): jest.Describe {
  if (process.env.CI === "true") {
    test(`requirements (${reason})`, () => {
      throw new Error(`CI cannot skip this suite: ${reason}`);
    });
  } else {
    console.warn(reason);
  }
  return describe.skip;
}

/**
 * The host the real-Claude suites (agent-state, dashboard, autostop-real, real-claude) run their
 * agents on: a root-owned 0755 folder (the agent user must reach its workspace and state under
 * it) with the API key, the webhook and the login token in a root-only secrets folder; host.conf
 * rendered by the stack's own renderer from a stack config (tests/host-files.ts productHostConf),
 * with this folder's paths as site overrides; agentctl's environment pointing at the repo's host
 * files. The tmux server runs as agent-host.service starts it (`agentctl server`), in a mount
 * namespace of its own when the agents need the shipped managed hooks (`hooks`).
 */
export interface RealHostOptions {
  /** The folder's name prefix (under os.tmpdir()). */
  name: string;
  /** The agents' Unix user (made by the suite). */
  user: string;
  /** The API key the host stores (root-only, 0600). */
  apiKey: string;
  /** The notification webhook (the notifyWebhookUrl secret), if any. */
  webhook?: string;
  /** Stack config on top of the test project: agent-host:<key> → value. */
  stack: Record<string, string>;
  /** More site overrides (tests/host-files.ts SITE_KEYS) beside the folder's paths. */
  site?: Record<string, string> | ((h: RealHost) => Record<string, string>);
  /**
   * "mount": the tmux server (and so every agent) sees this folder's copies of the shipped
   * managed settings and bundle at MANAGED_DIR and LIB_DIR, nothing else on this machine does.
   * "mount+pid": the same in a PID namespace too, whose /proc shows only this host's processes.
   * @default "none": the server runs in this machine's namespaces, no managed hooks.
   */
  namespace?: "none" | "mount" | "mount+pid";
}

/**
 * The loopback proxy where nothing listens, and CLAUDE_ENV that sends the real claude's traffic
 * to it (but for the stand-in on 127.0.0.1) and turns off its non-essential traffic.
 */
export async function offlineClaudeEnv(): Promise<string[]> {
  const deadProxy = `http://127.0.0.1:${await freePort()}`;
  return [
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    `HTTPS_PROXY=${deadProxy}`,
    `HTTP_PROXY=${deadProxy}`,
    "NO_PROXY=127.0.0.1,localhost",
  ];
}

/** tmux on a server's socket; its stdout, or an error with its stderr. */
export function tmux(sock: string, args: string[]): string {
  const r = spawnSync("tmux", ["-S", sock, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tmux ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** agent-N's window, exactly (agentctl's session `agents`). */
export const target = (n: number) => `=agents:=agent-${n}`;

/** What agent-N's pane shows now. */
export const pane = (h: { sock: string }, n: number) =>
  tmux(h.sock, ["capture-pane", "-p", "-t", target(n)]);

/** Types a prompt into agent-N as a person does: the text, then (once it shows) Enter. */
export async function typePrompt(
  h: { sock: string },
  n: number,
  text: string,
  ms = 60_000,
): Promise<void> {
  tmux(h.sock, ["send-keys", "-t", target(n), "-l", text]);
  await poll(`agent-${n} to show the typed text`, () => pane(h, n).includes(text), ms, 100);
  tmux(h.sock, ["send-keys", "-t", target(n), "Enter"]);
}

export class RealHost {
  readonly dir: string;
  readonly conf: string;
  readonly sock: string;
  readonly ws: string;
  readonly state: string;
  readonly run: string;
  readonly secrets: string;
  readonly keyFile: string;
  readonly webhookFile: string;
  readonly tokenFile: string;
  readonly dashboardTokenFile: string;
  readonly env: NodeJS.ProcessEnv;
  server?: ChildProcess;
  /** With namespace "mount+pid": the namespace's PID 1, seen from here. */
  nsPid = 0;
  /** The mount points this host made (MANAGED_DIR, LIB_DIR were missing); removed by close. */
  readonly made: string[] = [];

  constructor(readonly options: RealHostOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${options.name}-`));
    fs.chmodSync(this.dir, 0o755);
    this.conf = path.join(this.dir, "host.conf");
    this.run = path.join(this.dir, "run");
    this.sock = path.join(this.run, "tmux.sock");
    this.ws = path.join(this.dir, "workspaces");
    this.state = path.join(this.dir, "state");
    this.secrets = path.join(this.dir, "secrets");
    this.keyFile = path.join(this.secrets, "anthropic-api-key");
    this.webhookFile = path.join(this.secrets, "notify-webhook-url");
    this.tokenFile = path.join(this.dir, "data", "agent-host", "claude-login-token");
    this.dashboardTokenFile = path.join(this.secrets, "dashboard-token");
    this.env = {
      PATH: process.env.PATH,
      LANG: "C.UTF-8",
      AGENTCTL_CONFIG: this.conf,
      AGENT_WRAPPER: WRAPPER,
      AGENTCTL_TMUX_CONF: TMUX_CONF,
      // In a PID namespace agentctl runs inside it (nsenter): the bundle where the VM has it.
      AGENT_HOST_JS: options.namespace === "mount+pid" ? LIB_BUNDLE : BUNDLE,
    };
    fs.mkdirSync(this.secrets, { mode: 0o700 });
    fs.writeFileSync(this.keyFile, `${options.apiKey}\n`, { mode: 0o600 });
    if (options.webhook !== undefined)
      fs.writeFileSync(this.webhookFile, `${options.webhook}\n`, { mode: 0o600 });
    this.writeConf(options.stack);
  }

  /** host.conf for this stack config (the suite's own site overrides kept), as apply installs it. */
  writeConf(stack: Record<string, string>, site: Record<string, string> = {}): void {
    fs.writeFileSync(
      this.conf,
      productHostConf(stack, {
        AGENT_USER: this.options.user,
        START_STAGGER_SECONDS: "0.25",
        RESTART_BACKOFF_MIN_SECONDS: "1",
        RESTART_BACKOFF_MAX_SECONDS: "2",
        STOP_TIMEOUT_SECONDS: "10",
        WORKSPACES_DIR: this.ws,
        STATE_DIR: this.state,
        RUN_DIR: this.run,
        TMUX_SOCKET: this.sock,
        API_KEY_FILE: this.keyFile,
        LOGIN_TOKEN_FILE: this.tokenFile,
        NOTIFY_WEBHOOK_FILE: this.webhookFile,
        DASHBOARD_TOKEN_FILE: this.dashboardTokenFile,
        ...(typeof this.options.site === "function" ? this.options.site(this) : this.options.site),
        ...site,
      }),
    );
  }

  /** Starts the tmux server and waits (with a deadline) until it answers. */
  async start(): Promise<void> {
    const ns = this.options.namespace ?? "none";
    if (ns === "none") {
      this.server = spawn(AGENTCTL, ["server"], { env: this.env, stdio: "ignore" });
    } else {
      // What the VM has at those paths, as this host's copies, visible only inside the namespace.
      const managed = path.join(this.dir, "managed");
      const lib = path.join(this.dir, "lib");
      fs.mkdirSync(managed, { mode: 0o755 });
      fs.mkdirSync(lib, { mode: 0o755 });
      fs.copyFileSync(MANAGED, path.join(managed, "managed-settings.json"));
      fs.copyFileSync(BUNDLE, path.join(lib, "agent-host.js"));
      fs.chmodSync(path.join(managed, "managed-settings.json"), 0o644);
      fs.chmodSync(path.join(lib, "agent-host.js"), 0o755);
      for (const mountPoint of [MANAGED_DIR, LIB_DIR]) {
        if (!fs.existsSync(mountPoint)) {
          fs.mkdirSync(mountPoint, { recursive: true, mode: 0o755 });
          this.made.push(mountPoint);
        }
      }
      const binds = 'mount --bind "$1" "$2" && mount --bind "$3" "$4"';
      const args = [managed, MANAGED_DIR, lib, LIB_DIR, AGENTCTL];
      // With a PID namespace, its PID 1 is sh (it reaps what it started); the server its child.
      this.server =
        ns === "mount"
          ? spawn(
              "unshare",
              [
                ...["--mount", "--propagation", "private", "--"],
                ...["sh", "-c", `${binds} && exec "$5" server`, "sh", ...args],
              ],
              { env: this.env, stdio: "ignore" },
            )
          : spawn(
              "unshare",
              [
                ...["--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "--"],
                ...["sh", "-c", `${binds} && "$5" server`, "sh", ...args],
              ],
              { env: this.env, stdio: "ignore" },
            );
      if (ns === "mount+pid") {
        const unshare = this.server.pid;
        this.nsPid = await poll(
          "the namespace's first process",
          () => {
            const kids = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8");
            return kids.trim() ? Number(kids.trim().split(" ")[0]) : undefined;
          },
          10_000,
          50,
        );
      }
    }
    await poll(
      "the tmux server",
      () => spawnSync("tmux", ["-S", this.sock, "list-sessions"]).status === 0,
      15_000,
      100,
    );
  }

  /** agentctl, without blocking this process (the stand-in API answers from its event loop). */
  ctl(args: string[], stdin?: string): Promise<RunResult> {
    return runAsync(AGENTCTL, args, this.env, stdin);
  }

  /**
   * Ends the tmux server (every claude dies with its pane; any that did not, pid by pid), the
   * namespace, and removes the folder and the mount points this host made, once no namespace
   * has anything mounted on them.
   */
  async close(): Promise<void> {
    const pids = fs.existsSync(this.run)
      ? fs
          .readdirSync(this.run)
          .filter((a) => /^agent-\d+$/.test(a) && fs.existsSync(path.join(this.run, a, "pid")))
          .map((a) => Number(fs.readFileSync(path.join(this.run, a, "pid"), "utf8")))
      : [];
    spawnSync("tmux", ["-S", this.sock, "kill-server"]);
    // Ending the namespace's PID 1 ends every process in it.
    for (const [pid, sig] of [
      [this.nsPid, "SIGKILL"],
      [this.server?.pid ?? 0, "SIGTERM"],
    ] as const) {
      try {
        if (pid) process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
    for (const p of pids) {
      try {
        if (fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes("claude"))
          process.kill(p, "SIGKILL");
      } catch {
        // already gone
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    // Another suite's namespace may have its copies mounted there right now: removing the mount
    // point would detach them (mount_namespaces(7)); the last one out removes it.
    for (const d of this.made.splice(0)) {
      await poll(`no mount on ${d} in any namespace`, () => !mountedAnywhere(d), 15_000, 100).then(
        () => fs.rmdirSync(d),
        () => undefined,
      );
    }
  }
}

/** Whether any process's mount namespace has something mounted at `dir`. */
function mountedAnywhere(dir: string): boolean {
  for (const pid of fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const lines = fs.readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n");
      if (lines.some((l) => l.split(" ")[4] === dir)) return true;
    } catch {
      // the process ended meanwhile
    }
  }
  return false;
}
