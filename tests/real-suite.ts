import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { writeSiteConf } from "./fixtures/host-tree";
import { startMessagesApi, type MessagesApi } from "./fixtures/messages-api";
import { realClaudeBin } from "./fixtures/real-claude";
import { startWebhookReceiver, type WebhookReceiver } from "./fixtures/webhook-receiver";
import {
  AGENTCTL,
  bootHostConf,
  BUNDLE,
  LIB_DIR,
  MANAGED_DIR,
  REPO,
  TMUX_CONF,
  WRAPPER,
} from "./host-files";
import { freePort, poll, removeTestAgents, runAsync, type RunResult } from "./support";

const APPLY = path.join(REPO, "cloud-init/host/apply");
const CLOUD_INIT_STANDIN = path.join(REPO, "tests/fixtures/cloud-init");

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
 * agents on, prepared as a VM is and changed only by the product's own apply:
 * - what cloud-init leaves before the first deploy: the boot host.conf (the stack's
 *   renderBootHostConf) and the tmux server agent-host.service starts (`agentctl server`);
 * - then the fleet's reconcile command, as the mocked program registers it (its command line and
 *   its stdin: the bundle with the host files, host.conf, the API key and the webhook), run by
 *   cloud-init/host/apply with this folder as AGENT_HOST_ROOT: it installs the host files,
 *   host.conf (with the site's host.conf.local appended), the key (root-only), and reconciles.
 * The site overrides (host.conf.local) are only this machine's users, paths and delays
 * (tests/host-files.ts SITE_KEYS). With `namespace`, the tmux server, apply and so every agent
 * run in a mount namespace where MANAGED_DIR and LIB_DIR are bind mounts of the installed copies
 * (nothing else on this machine sees them).
 */
export interface RealHostOptions {
  /** The folder's name prefix (under os.tmpdir()). */
  name: string;
  /**
   * The agents' Unix user prefix (AGENT_USER): the product makes `${user}-N` with uid = gid =
   * uidBase + N (host/agents/agent-user.ts), homes under this host's `homes` folder.
   */
  user: string;
  /** AGENT_UID_BASE: each suite its own range, so suites never share a user. */
  uidBase: number;
  /** The anthropicApiKey secret, if any: it reaches the host only through apply. */
  apiKey?: string;
  /**
   * The notifyWebhookUrl secret, if any: like the key, it reaches the host only through apply
   * (the bundle's secret line; apply stores it root-only). An https:// URL, as the stack demands:
   * tests/fixtures/webhook-receiver.ts, with `trustCa`.
   */
  webhook?: string;
  /**
   * A certificate the host's node trusts besides its own CAs (NODE_EXTRA_CA_CERTS): the loopback
   * HTTPS receiver's self-signed one, as a VM trusts a public CA.
   */
  trustCa?: string;
  /** Stack config on top of the mocked program's project: agent-host:<key> → value. */
  stack: Record<string, string>;
  /** More site overrides (tests/host-files.ts SITE_KEYS) beside the folder's paths. */
  site?: Record<string, string> | ((h: RealHost) => Record<string, string>);
  /**
   * "mount": the managed hooks, in a mount namespace. "mount+pid": the same in a PID namespace
   * too, whose /proc shows only this host's processes.
   * @default "none": this machine's namespaces, no managed hooks.
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

/**
 * An AskUserQuestion tool use, as Claude Code 2.1.331 takes it: one question, two options; with
 * `multiSelect`, one that takes several (Claude Code boxes them).
 */
export const databaseQuestion = (nonce: string, multiSelect = false) => ({
  name: "AskUserQuestion",
  input: {
    questions: [
      {
        question: `Which database for ${nonce}?`,
        header: "Database",
        options: [
          { label: "Postgres", description: "relational" },
          { label: "SQLite", description: "embedded" },
        ],
        multiSelect,
      },
    ],
  },
});

/** One AskUserQuestion of two parts: Claude Code asks them one after the other, then for a submit. */
export const stackQuestion = (nonce: string) => ({
  name: "AskUserQuestion",
  input: {
    questions: [
      databaseQuestion(nonce).input.questions[0],
      {
        question: `Which cache for ${nonce}?`,
        header: "Cache",
        options: [
          { label: "Redis", description: "a server" },
          { label: "Memcached", description: "plain keys" },
        ],
        multiSelect: false,
      },
    ],
  },
});

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
  /** AGENT_HOST_ROOT: where apply installs (a VM's /). */
  readonly root: string;
  readonly conf: string;
  readonly sock: string;
  readonly ws: string;
  readonly state: string;
  /** AGENT_HOMES_DIR: each agent's HOME, with its state in HOME/.agent-host. */
  readonly homes: string;
  readonly run: string;
  readonly secrets: string;
  readonly keyFile: string;
  readonly webhookFile: string;
  readonly tokenFile: string;
  readonly dashboardTokenFile: string;
  /** agentctl as apply installed it. */
  readonly agentctl: string;
  /** agentctl's environment: the installed host files. */
  readonly env: NodeJS.ProcessEnv;
  server?: ChildProcess;
  /** When the last deploy (apply) began, in ms since the epoch. */
  deployedAt = 0;
  /** With a namespace: a process in it (the PID namespace's PID 1 with "mount+pid"). */
  nsPid = 0;
  /** The mount points this host made (MANAGED_DIR, LIB_DIR were missing); removed by close. */
  readonly made: string[] = [];
  private stack: Record<string, string>;
  /** The notifyWebhookUrl of the last deploy (null: none). */
  private webhook: string | null;
  private readonly bin: string;

  constructor(readonly options: RealHostOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${options.name}-`));
    fs.chmodSync(this.dir, 0o755);
    this.root = path.join(this.dir, "root");
    const at = (rel: string) => path.join(this.root, rel);
    this.conf = at("etc/agent-host/host.conf");
    this.secrets = at("etc/agent-host/secrets");
    this.keyFile = path.join(this.secrets, "anthropic-api-key");
    this.webhookFile = path.join(this.secrets, "notify-webhook-url");
    this.dashboardTokenFile = path.join(this.secrets, "dashboard-token");
    this.agentctl = at("usr/local/bin/agentctl");
    this.run = path.join(this.dir, "run");
    this.sock = path.join(this.run, "tmux.sock");
    this.ws = path.join(this.dir, "workspaces");
    this.state = path.join(this.dir, "state");
    this.homes = path.join(this.dir, "homes");
    this.tokenFile = path.join(this.dir, "data", "agent-host", "claude-login-token");
    this.bin = path.join(this.dir, "bin");
    this.stack = options.stack;
    this.webhook = options.webhook ?? null;
    this.env = {
      PATH: process.env.PATH,
      LANG: "C.UTF-8",
      AGENTCTL_CONFIG: this.conf,
      AGENT_WRAPPER: at("usr/local/lib/agent-host/agent-wrapper"),
      AGENTCTL_TMUX_CONF: at("etc/agent-host/tmux.conf"),
      AGENT_HOST_JS: at("usr/local/lib/agent-host/agent-host.js"),
      ...(options.trustCa ? { NODE_EXTRA_CA_CERTS: options.trustCa } : {}),
    };
    for (const d of [this.root, this.bin, at(MANAGED_DIR.slice(1)), at(LIB_DIR.slice(1))])
      fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    // apply first waits for cloud-init's boot provisioning: here a stand-in that says it is done.
    fs.symlinkSync(CLOUD_INIT_STANDIN, path.join(this.bin, "cloud-init"));
    const site = {
      AGENT_USER: options.user,
      AGENT_UID_BASE: String(options.uidBase),
      AGENT_HOMES_DIR: this.homes,
      ADMIN_USER: "root",
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
      ...(typeof options.site === "function" ? options.site(this) : options.site),
    };
    writeSiteConf(`${this.conf}.local`, `tests/real-suite.ts (${options.name})`, site);
    // What cloud-init writes before agent-host.service starts: the boot host.conf (here with the
    // site's overrides, which the server needs for its socket).
    fs.writeFileSync(this.conf, bootHostConf(options.stack, site), { mode: 0o644 });
  }

  /**
   * Starts the tmux server (waited for), then the first deploy through apply (unless `deploy` is
   * false: the suite runs it itself, e.g. to time it).
   */
  async start(deploy = true): Promise<void> {
    // As agent-host.service starts it after cloud-init: the files cloud-init wrote are the
    // repo's (apply installs the same).
    const serverEnv = {
      ...this.env,
      AGENTCTL_TMUX_CONF: TMUX_CONF,
      AGENT_WRAPPER: WRAPPER,
      AGENT_HOST_JS: BUNDLE,
    };
    const ns = this.options.namespace ?? "none";
    if (ns === "none") {
      this.server = spawn(AGENTCTL, ["server"], {
        env: serverEnv,
        stdio: ["ignore", "ignore", "pipe"],
      });
    } else {
      for (const mountPoint of [MANAGED_DIR, LIB_DIR]) {
        if (!fs.existsSync(mountPoint)) {
          fs.mkdirSync(mountPoint, { recursive: true, mode: 0o755 });
          this.made.push(mountPoint);
        }
      }
      const binds = 'mount --bind "$1" "$2" && mount --bind "$3" "$4"';
      const args = [
        ...[path.join(this.root, MANAGED_DIR.slice(1)), MANAGED_DIR],
        ...[path.join(this.root, LIB_DIR.slice(1)), LIB_DIR, AGENTCTL],
      ];
      // With a PID namespace, its PID 1 is sh (it reaps what it started); the server its child.
      this.server = spawn(
        "unshare",
        [
          ...(ns === "mount"
            ? ["--mount", "--propagation", "private", "--"]
            : ["--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "--"]),
          ...["sh", "-c", `${binds} && ${ns === "mount" ? "exec " : ""}"$5" server`, "sh", ...args],
        ],
        { env: serverEnv, stdio: ["ignore", "ignore", "pipe"] },
      );
      const unshare = this.server.pid;
      this.nsPid =
        ns === "mount"
          ? (unshare as number)
          : await poll(
              "the namespace's first process",
              () => {
                const kids = fs.readFileSync(`/proc/${unshare}/task/${unshare}/children`, "utf8");
                return kids.trim() ? Number(kids.trim().split(" ")[0]) : undefined;
              },
              10_000,
              50,
            );
    }
    let said = "";
    this.server.stderr?.on("data", (d: Buffer) => (said += d.toString()));
    await poll(
      "the tmux server",
      () => spawnSync("tmux", ["-S", this.sock, "list-sessions"]).status === 0,
      15_000,
      100,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; agentctl server said: ${said}`);
    });
    if (deploy) await this.apply();
  }

  /**
   * A deploy of this stack config (a later one: what `pulumi up` after `pulumi config set` runs):
   * the mocked program's reconcile command, run by the product's apply in this host's namespace.
   */
  async apply(
    stack: Record<string, string> = this.stack,
    /** The anthropicApiKey secret; null: none (a provider without one). */
    apiKey: string | null = this.options.apiKey ?? null,
    /** The notifyWebhookUrl secret; null: none (apply removes the stored one). @default the last */
    webhook: string | null = this.webhook,
  ): Promise<RunResult> {
    this.stack = stack;
    this.webhook = webhook;
    this.deployedAt = Date.now();
    // Loaded here: the Pulumi mocks are only for the suites that deploy.
    const { BASE_CONFIG, one, runProgram, unwrap } = await import("./harness");
    const secrets: Record<string, string> = {
      ...(apiKey ? { "agent-host:anthropicApiKey": apiKey } : {}),
      ...(webhook ? { "agent-host:notifyWebhookUrl": webhook } : {}),
    };
    const program = await runProgram(
      { ...BASE_CONFIG, ...stack, ...secrets },
      { secretKeys: Object.keys(secrets) },
    );
    const command = unwrap(one(program, "command:remote:Command").inputs) as {
      create: string;
      stdin: string;
    };
    // "sudo /usr/local/lib/agent-host/apply --agents N --bundle-sha256 SHA --instance-id ID"
    const argv = ["bash", APPLY, ...command.create.split(" ").slice(2)];
    const inNs = this.nsPid
      ? [
          "nsenter",
          "-t",
          String(this.nsPid),
          "-m",
          ...(this.options.namespace === "mount+pid" ? ["-p"] : []),
          "--",
        ]
      : [];
    const [cmd, ...args] = [...inNs, ...argv];
    const r = await runAsync(
      cmd,
      args,
      { ...this.env, PATH: `${this.bin}:${process.env.PATH ?? ""}`, AGENT_HOST_ROOT: this.root },
      command.stdin,
    );
    if (r.code !== 0) throw new Error(`apply exited ${r.code}:\n${r.stderr.slice(-4000)}`);
    return r;
  }

  /** agentctl as installed, without blocking this process (the stand-in API answers meanwhile). */
  ctl(args: string[], stdin?: string): Promise<RunResult> {
    return runAsync(this.agentctl, args, this.env, stdin);
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
    // Ending the PID namespace's PID 1 ends every process in it.
    for (const [pid, sig] of [
      [this.options.namespace === "mount+pid" ? this.nsPid : 0, "SIGKILL"],
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

/**
 * A RealHost whose real claudes talk to a loopback Messages API (tests/fixtures/messages-api.ts)
 * and notify a loopback HTTPS receiver (tests/fixtures/webhook-receiver.ts), as agent-state and
 * autostop-real run theirs: the suite's agent users are removed first (a run that was killed
 * leaves them), the receiver's URL is the notifyWebhookUrl secret (through apply, with its
 * certificate trusted as a VM trusts a public CA), and the stack sends the agents to the API
 * with the offline CLAUDE_ENV. CLAUDE_BIN, the real claude, is a site override like the paths.
 */
export async function startNotifyingHost(
  options: Omit<RealHostOptions, "webhook" | "trustCa"> & { count: number; nonce: string },
): Promise<{ host: RealHost; api: MessagesApi; receiver: WebhookReceiver }> {
  const bin = realClaudeBin();
  removeTestAgents(options.user, options.uidBase);
  const api = await startMessagesApi({ defaultText: `stand-in ${options.nonce}` });
  // The suite closes what this returns; what started before a failure here is closed here.
  let receiver: WebhookReceiver | undefined;
  try {
    receiver = await startWebhookReceiver();
    const { site, stack } = options;
    const host = new RealHost({
      ...options,
      webhook: `json:${receiver.url}/hook`,
      trustCa: receiver.caFile,
      stack: {
        "agent-host:agentCount": String(options.count),
        "agent-host:anthropicBaseUrl": api.url,
        "agent-host:claudeEnv": JSON.stringify(await offlineClaudeEnv()),
        ...stack,
      },
      site: (h) => ({ CLAUDE_BIN: bin, ...(typeof site === "function" ? site(h) : site) }),
    });
    return { host, api, receiver };
  } catch (error) {
    await receiver?.close();
    await api.close();
    throw error;
  }
}
