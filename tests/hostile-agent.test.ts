// Issue 20's proof: the agents attacked as a hostile agent would attack them. The product is
// installed by its OWN apply (cloud-init/host/apply, with the bundle and command string the
// stack's program registers, as the fleet's remote command runs it) into a sandbox root
// (AGENT_HOST_ROOT), and reconciles real agents on a real tmux server with the stand-in claude.
// Every attack runs as an agent's own uid (setpriv), against the product's installed files;
// root-owned canary files (and every installed host file, host.conf and the secrets) must be
// byte-, mode- and owner-identical afterwards.
//
// Users: hostile-1..3 (uid 61300+N, made by the product), hostile-admin (the admin user, made
// here); all removed afterwards, with everything under the sandbox.
import { spawn, spawnSync, type SpawnSyncReturns } from "child_process";
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BASE_CONFIG, one, runProgram, unwrap } from "./harness";
import { unavailableSuite } from "./real-suite";
import { removeTestAgents, waitFor } from "./support";
import { DEFAULT_CLAUDE_CODE_VERSION } from "../config";

const REPO = path.resolve(__dirname, "..");
const APPLY = path.join(REPO, "cloud-init/host/apply");
const STANDIN = path.join(REPO, "tests/fixtures/claude");
const CLOUD_INIT_STANDIN = path.join(REPO, "tests/fixtures/cloud-init");
const PREFIX = "hostile";
const UID_BASE = 61300;
const ADMIN = "hostile-admin";
const NONCE = randomBytes(6).toString("hex");
const API_KEY = `sk-ant-api03-HOSTILE${NONCE}${"k".repeat(40)}`;
const GIT_TOKEN = `ghp_HOSTILE${NONCE}${"t".repeat(24)}`;
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const isRoot = process.getuid?.() === 0;
const TOOLS = ["tmux", "setpriv", "flock", "setfacl", "getfacl", "strace", "useradd"];
const haveTools = TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `hostile-agent tests need root and ${TOOLS.join(", ")} (apt-get install acl strace)`,
      );

let BASE = "";
let ROOT = "";
let CANARY = "";
const p = {
  conf: () => path.join(ROOT, "etc/agent-host/host.conf"),
  lib: () => path.join(ROOT, "usr/local/lib/agent-host"),
  js: () => path.join(ROOT, "usr/local/lib/agent-host/agent-host.js"),
  agentctl: () => path.join(ROOT, "usr/local/bin/agentctl"),
  secrets: () => path.join(ROOT, "etc/agent-host/secrets"),
  loginToken: () => path.join(ROOT, "data/agent-host/claude-login-token"),
  homes: () => path.join(ROOT, "data/home"),
  ws: (n: number) => path.join(ROOT, "workspaces", `agent-${n}`),
  run: () => path.join(ROOT, "run/agent-host"),
  sock: () => path.join(ROOT, "run/agent-host/tmux.sock"),
};
const name = (n: number) => `${PREFIX}-${n}`;
const uid = (n: number) => UID_BASE + n;
const home = (n: number) => path.join(p.homes(), name(n));
const state = (n: number) => path.join(home(n), ".agent-host");

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.join(BASE, "bin")}:${SYSTEM_PATH}`,
    AGENT_HOST_ROOT: ROOT,
    AGENTCTL_CONFIG: p.conf(),
    AGENT_WRAPPER: path.join(p.lib(), "agent-wrapper"),
    AGENTCTL_TMUX_CONF: path.join(ROOT, "etc/agent-host/tmux.conf"),
  };
  delete e.TMUX;
  return e;
}

function ctl(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(p.agentctl(), args, { env: env(), encoding: "utf8", timeout: 120_000 });
}

/** A shell script run as agent n: its uid, gid and groups, a clean environment, from /. */
function asAgent(n: number, script: string, extra: string[] = [], input?: string) {
  return spawnSync(
    "setpriv",
    [
      `--reuid=${uid(n)}`,
      `--regid=${uid(n)}`,
      "--init-groups",
      "--",
      "env",
      "-i",
      `HOME=${home(n)}`,
      `PATH=${SYSTEM_PATH}`,
      `WS=${p.ws(n)}`,
      `CANARY=${CANARY}`,
      ...extra,
      "bash",
      "-c",
      script,
    ],
    { cwd: "/", encoding: "utf8", input, timeout: 30_000 },
  );
}

/** The command string and stdin the stack's program gives the fleet's remote command. */
let command = "";
let stdin = "";
let applyLog = "";

function apply(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = command.replace(/^sudo \/usr\/local\/lib\/agent-host\/apply /, "").split(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [APPLY, ...args], { env: env() });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

interface Row {
  name: string;
  state: string;
  agent_state: string;
  pid: number | null;
}
function status(): Row[] {
  const r = ctl(["status", "--json"]);
  if (r.status !== 0) throw new Error(`status: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { agents: Row[] }).agents;
}

async function running(n: number): Promise<Map<string, number>> {
  return waitFor(
    `agent-1..${n} running`,
    () => {
      const rows = status().filter((r) => Number(r.name.slice(6)) <= n);
      if (rows.length !== n || rows.some((r) => r.state !== "running" || !r.pid)) return undefined;
      return new Map(rows.map((r) => [r.name, r.pid as number]));
    },
    30_000,
  ).catch((error: Error) => {
    // What the agents said: the wrappers' logs and the panes.
    const logs = [1, 2, 3]
      .map((i) => path.join(p.run(), `agent-${i}`, "wrapper.log"))
      .filter((f) => fs.existsSync(f))
      .map((f) => `${f}:\n${fs.readFileSync(f, "utf8")}`);
    const panes = [1, 2].map(
      (i) =>
        spawnSync("tmux", ["-S", p.sock(), "capture-pane", "-p", "-t", `=agents:=agent-${i}`], {
          encoding: "utf8",
        }).stdout,
    );
    throw new Error(`${error.message}\n${logs.join("\n")}\n${panes.join("\n---\n")}`);
  });
}

/** path → "mode uid:gid sha256" of every file and folder under the given roots (no following). */
function snapshot(roots: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (f: string) => {
    const st = fs.lstatSync(f);
    const sum = st.isFile()
      ? createHash("sha256").update(fs.readFileSync(f)).digest("hex")
      : st.isSymbolicLink()
        ? `-> ${fs.readlinkSync(f)}`
        : "dir";
    out.set(f, `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${sum}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(f)) visit(path.join(f, e));
  };
  roots.filter((r) => fs.existsSync(r)).forEach(visit);
  return out;
}

/** Root-owned things an agent must never change: canaries, the installed code, config, secrets. */
const guarded = () => [
  CANARY,
  p.lib(),
  p.agentctl(),
  path.join(ROOT, "etc"),
  path.dirname(p.loginToken()),
];

const payload = (event: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ hook_event_name: event, session_id: "x", ...extra });

suite("a hostile agent, on a host installed by the product's own apply", () => {
  jest.setTimeout(120_000);
  let before: Map<string, string>;

  beforeAll(async () => {
    removeTestAgents(PREFIX, UID_BASE);
    BASE = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-"));
    fs.chmodSync(BASE, 0o755);
    ROOT = path.join(BASE, "root");
    CANARY = path.join(BASE, "canary");
    const bin = path.join(BASE, "bin");
    for (const d of [ROOT, CANARY, bin]) fs.mkdirSync(d, { mode: 0o755 });
    // Root's files the attacks aim at: a secret, code root runs, a root-only folder.
    fs.writeFileSync(path.join(CANARY, "secret"), `root secret ${NONCE}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(CANARY, "code"), "#!/bin/sh\necho root code\n", { mode: 0o755 });
    fs.mkdirSync(path.join(CANARY, "sub"), { mode: 0o700 });
    fs.writeFileSync(path.join(CANARY, "sub/file"), "inside\n", { mode: 0o644 });

    if (spawnSync("id", ["-u", ADMIN]).status !== 0)
      sh("useradd", ["--no-create-home", "--home-dir", `/home/${ADMIN}`, ADMIN]);
    fs.mkdirSync(path.join(ROOT, `home/${ADMIN}/.ssh`), { recursive: true, mode: 0o755 });

    // Stand-ins first on apply's PATH: cloud-init (boot is over); claude answers --version with the
    // pinned version (so install-claude-code installs nothing) and otherwise is the recording one.
    fs.symlinkSync(CLOUD_INIT_STANDIN, path.join(bin, "cloud-init"));
    fs.copyFileSync(STANDIN, path.join(bin, "claude-standin"));
    fs.chmodSync(path.join(bin, "claude-standin"), 0o755);
    fs.writeFileSync(
      path.join(bin, "claude"),
      [
        "#!/bin/sh",
        `[ "$1" = --version ] && { echo '${DEFAULT_CLAUDE_CODE_VERSION} (Claude Code)'; exit 0; }`,
        `exec '${path.join(bin, "claude-standin")}' "$@"`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    fs.mkdirSync(path.join(ROOT, "etc/agent-host"), { recursive: true, mode: 0o755 });
    fs.writeFileSync(
      path.join(ROOT, "etc/agent-host/host.conf.local"),
      [
        "# tests/hostile-agent.test.ts: this host's users and paths under AGENT_HOST_ROOT",
        `AGENT_USER=${PREFIX}`,
        `AGENT_UID_BASE=${UID_BASE}`,
        `AGENT_HOMES_DIR=${p.homes()}`,
        `ADMIN_USER=${ADMIN}`,
        `CLAUDE_BIN=${path.join(bin, "claude")}`,
        `WORKSPACES_DIR=${path.join(ROOT, "workspaces")}`,
        `STATE_DIR=${path.join(p.homes(), PREFIX, ".agent-host")}`,
        `RUN_DIR=${p.run()}`,
        `TMUX_SOCKET=${p.sock()}`,
        `API_KEY_FILE=${path.join(p.secrets(), "anthropic-api-key")}`,
        `LOGIN_TOKEN_FILE=${p.loginToken()}`,
        `NOTIFY_WEBHOOK_FILE=${path.join(p.secrets(), "notify-webhook-url")}`,
        "START_STAGGER_SECONDS=0.05",
        "RESTART_BACKOFF_MIN_SECONDS=1",
        "RESTART_BACKOFF_MAX_SECONDS=2",
        "STOP_TIMEOUT_SECONDS=5",
        "",
      ].join("\n"),
    );
    // The data disk's root is 0755 (agents' homes are under it); the login token's folder is 0700.
    fs.mkdirSync(path.join(ROOT, "data"), { mode: 0o755 });
    fs.mkdirSync(path.dirname(p.loginToken()), { mode: 0o700 });
    fs.writeFileSync(p.loginToken(), `sk-ant-oat01-HOSTILELOGIN${NONCE}\n`, { mode: 0o600 });

    const run = await runProgram(
      {
        ...BASE_CONFIG,
        "agent-host:agentCount": "2",
        "agent-host:anthropicApiKey": API_KEY,
        "agent-host:gitCredentials": GIT_TOKEN,
        "agent-host:gitUserName": "Hostile Test",
        "agent-host:gitUserEmail": "hostile@example.test",
        "agent-host:notifyWebhookUrl": `https://ntfy.sh/hostile${NONCE}`,
      },
      {
        secretKeys: [
          "agent-host:anthropicApiKey",
          "agent-host:gitCredentials",
          "agent-host:notifyWebhookUrl",
        ],
      },
    );
    const cmd = one(run, "command:remote:Command");
    command = String(unwrap(cmd.inputs.create));
    stdin = String(unwrap(cmd.inputs.stdin));
    const applied = await apply();
    if (applied.code !== 0) throw new Error(`apply: ${applied.code}\n${applied.stderr}`);
    applyLog = applied.stderr;
    await running(2).catch((error: Error) => {
      throw new Error(`${error.message}\napply said:\n${applyLog}`);
    });
  });

  afterAll(async () => {
    if (ROOT) spawnSync("tmux", ["-S", p.sock(), "kill-server"]);
    removeTestAgents(PREFIX, UID_BASE);
    spawnSync("userdel", [ADMIN]);
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
  });

  test("one user per agent, pinned ids, made by reconcile; private homes and workspaces; none in the docker group", async () => {
    const rows = await running(2);
    for (const n of [1, 2]) {
      expect(sh("id", ["-u", name(n)]).trim()).toBe(String(uid(n)));
      expect(sh("id", ["-g", name(n)]).trim()).toBe(String(uid(n)));
      // Its own group only: no docker (root-equivalent), no other agent's group.
      expect(sh("id", ["-nG", name(n)]).trim()).toBe(name(n));
      const claude = rows.get(`agent-${n}`) as number;
      expect(fs.readFileSync(`/proc/${claude}/status`, "utf8")).toMatch(
        new RegExp(`^Uid:\\s+${uid(n)}\\s`, "m"),
      );
      for (const dir of [home(n), p.ws(n), state(n)]) {
        const st = fs.statSync(dir);
        expect([dir, st.uid, st.mode & 0o077 & ~0o050]).toEqual([dir, uid(n), 0]);
      }
      expect(fs.statSync(home(n)).mode & 0o777).toBe(0o700);
    }
    const docker = spawnSync("getent", ["group", "docker"], { encoding: "utf8" }).stdout;
    expect(docker.split(":")[3] ?? "").not.toMatch(new RegExp(`\\b${PREFIX}-`));
    if (fs.existsSync("/var/run/docker.sock"))
      expect(asAgent(1, "test -w /var/run/docker.sock").status).not.toBe(0);
  });

  test("the admin user reads every workspace for review (ACL); no agent reads another's", () => {
    expect(
      asAgent(
        1,
        'echo "agent 1 work" >"$WS/review.txt" && mkdir -p "$WS/src" && echo x >"$WS/src/a.ts"',
      ).status,
    ).toBe(0);
    expect(sh("getfacl", ["-cp", p.ws(1)])).toContain(`user:${ADMIN}:r-x`);
    const admin = spawnSync(
      "setpriv",
      [
        "--reuid",
        ADMIN,
        "--regid",
        ADMIN,
        "--init-groups",
        "--",
        "cat",
        path.join(p.ws(1), "review.txt"),
        path.join(p.ws(1), "src/a.ts"),
      ],
      { encoding: "utf8" },
    );
    expect(admin.stdout).toBe("agent 1 work\nx\n");
    const other = asAgent(2, `cat "${p.ws(1)}/review.txt"; ls "${p.ws(1)}"`);
    expect(other.stdout).toBe("");
    expect(other.stderr).toMatch(/Permission denied/);
  });

  test("another agent's workspace, home, conversations and credentials: neither readable nor writable", () => {
    const targets = [
      p.ws(1),
      path.join(p.ws(1), "review.txt"),
      home(1),
      path.join(home(1), ".gitconfig"),
      path.join(home(1), ".config/git/agent-host-credentials"),
      path.join(state(1), "session-id"),
      path.join(state(1), "claude/.claude.json"),
      path.join(state(1), "claude/standin.jsonl"),
      path.join(state(1), "claude/projects"),
    ];
    for (const t of targets) {
      const read = asAgent(
        2,
        `cat -- '${t}' 2>&1 || ls -- '${t}' 2>&1; echo forged >>'${t}' 2>&1 || true`,
      );
      expect([t, read.stdout]).toEqual([t, expect.stringMatching(/Permission denied/)]);
      expect(read.stdout).not.toContain(GIT_TOKEN);
    }
    // The files are really there: agent 1 reads its own.
    const own = asAgent(
      1,
      `cat "$HOME/.config/git/agent-host-credentials" "$HOME/.agent-host/session-id"`,
    );
    expect(own.status).toBe(0);
    expect(own.stdout).toContain(GIT_TOKEN);
    expect(fs.readFileSync(path.join(p.ws(1), "review.txt"), "utf8")).toBe("agent 1 work\n");
  });

  test("secrets: the API key, the login token and the webhook are root-only", () => {
    for (const f of [
      path.join(p.secrets(), "anthropic-api-key"),
      path.join(p.secrets(), "notify-webhook-url"),
      p.loginToken(),
    ]) {
      expect(fs.existsSync(f)).toBe(true);
      const r = asAgent(1, `cat -- '${f}' 2>&1; ls -- '${path.dirname(f)}' 2>&1`);
      expect(r.stdout).toMatch(/Permission denied/);
      expect(r.stdout).not.toContain(API_KEY);
      expect(r.stdout).not.toContain(NONCE);
    }
  });

  test("another agent's process: /proc/PID/environ and ptrace are refused", async () => {
    const pids = await running(2);
    const victim = pids.get("agent-1") as number;
    const own = asAgent(1, `tr '\\0' '\\n' </proc/${victim}/environ`);
    // The attack reads the right thing: agent 1's own claude has its key in its environment.
    expect(own.stdout).toContain(`ANTHROPIC_API_KEY=${API_KEY}`);
    const environ = asAgent(2, `cat /proc/${victim}/environ 2>&1`);
    expect(environ.stdout).toMatch(/Permission denied/);
    expect(environ.stdout).not.toContain(API_KEY);
    const trace = asAgent(2, `timeout 5 strace -p ${victim} -e trace=none 2>&1`);
    expect(trace.stdout).toMatch(/Operation not permitted/);
    const mem = asAgent(2, `head -c 16 /proc/${victim}/mem 2>&1`);
    expect(mem.stdout).toMatch(/Permission denied/);
    expect(asAgent(2, `kill -STOP ${victim} 2>&1`).stdout).toMatch(/Operation not permitted/);
  });

  test("forging another agent's state: refused; status shows only what each agent's own hooks recorded", () => {
    const hook = (n: number, dir: string, event: string, extra = {}) =>
      asAgent(
        n,
        `exec node '${p.js()}' hook`,
        [`AGENT_HOST_STATE_DIR=${dir}`],
        payload(event, extra),
      );
    const permission = { tool_name: "Bash", tool_input: { command: "rm -rf /" } };
    // Agent 2 tries to make agent 1 look as if it needed the lead: its state folder, its hook.
    // The shell reports a refused redirection on its own stderr.
    expect(asAgent(2, `echo '{}' >'${state(1)}/status.json'`).stderr).toMatch(/Permission denied/);
    expect(hook(2, state(1), "PermissionRequest", permission).status).toBe(0);
    // And to pass agent 1's record off as its own: its state folder a link to agent 1's.
    expect(
      asAgent(
        2,
        `mv "$HOME/.agent-host" "$HOME/.agent-host.own" && ln -s '${state(1)}' "$HOME/.agent-host"`,
      ).status,
    ).toBe(0);
    // Agent 1's own hook works (the channel is real).
    expect(hook(1, state(1), "UserPromptSubmit", { prompt: "hello" }).status).toBe(0);
    const rows = status();
    const agentState = (n: number) => rows.find((r) => r.name === `agent-${n}`)?.agent_state;
    expect(agentState(1)).toBe("working");
    expect(agentState(2)).not.toBe("working");
    expect(agentState(1)).not.toBe("needs-permission");
    expect(
      asAgent(2, `rm "$HOME/.agent-host" && mv "$HOME/.agent-host.own" "$HOME/.agent-host"`).status,
    ).toBe(0);
  });

  test("tmux: no agent reaches the server's socket or writes into another agent's pane", () => {
    const sockTry = asAgent(1, `tmux -S '${p.sock()}' list-sessions 2>&1; ls '${p.run()}' 2>&1`);
    expect(sockTry.stdout).toMatch(/Permission denied|error connecting|no server running/);
    expect(sockTry.stdout).not.toContain("agents:");
    const tty = sh("tmux", [
      "-S",
      p.sock(),
      "display-message",
      "-p",
      "-t",
      "=agents:=agent-2",
      "#{pane_tty}",
    ]).trim();
    expect(tty).toMatch(/^\/dev\/pts\/\d+$/);
    const write = asAgent(1, `printf 'echo pwned\\r' >'${tty}'`);
    expect(write.stderr).toMatch(/Permission denied/);
    const read = asAgent(1, `timeout 1 cat '${tty}' 2>&1`);
    expect(read.stdout).toMatch(/Permission denied/);
  });

  /** Agent n's wrapper.log (empty before its first line). */
  const wrapperLog = (n: number): string => {
    const log = path.join(p.run(), `agent-${n}`, "wrapper.log");
    return fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
  };
  /**
   * The lines of agent n's wrapper.log that end a start attempt (cloud-init/host/agent-wrapper):
   * claude started, or root's side refused (prepare-agent's "could not", "refusing").
   */
  const attempts = (n: number): string[] =>
    wrapperLog(n)
      .split("\n")
      .filter((l) => /starting claude|could not|refusing/.test(l));
  /**
   * Waits until each agent's wrapper has ended an attempt after its first `since(n)` ones, and
   * its log's last word is not a restart still to come ("restarting in Ns").
   */
  const attemptsRan = (what: string, agents: number[], since: (n: number) => number) =>
    waitFor(
      what,
      () =>
        agents.every(
          (n) => attempts(n).length > since(n) && !/restarting in \S+s\n$/.test(wrapperLog(n)),
        ),
      30_000,
    );

  test("symlinks planted on every path root touches: crash restart, reconcile, restart, apply, status, a hook — root's files stay as they were", async () => {
    before = snapshot(guarded());
    const pids = await running(2);
    // The entries root makes for an agent sit in root-owned folders: an agent cannot replace them.
    const parents = asAgent(
      1,
      `mv "$WS" "$WS.x" 2>&1; ln -s "$CANARY/sub" '${p.ws(3)}' 2>&1; ln -s "$CANARY/sub" '${home(3)}' 2>&1; mv "$HOME" "$HOME.x" 2>&1`,
    );
    expect(parents.stdout.match(/Permission denied/g)?.length).toBe(4);
    // Agent 1: every file root (or root's code) reads or writes in its home, a link to root's files.
    const plant1 = asAgent(
      1,
      [
        "set -e",
        'st="$HOME/.agent-host"',
        'for f in session-id session-id.tmp status.json events.jsonl status.lock; do rm -f "$st/$f"; ln -s "$CANARY/secret" "$st/$f"; done',
        'for f in .claude.json settings.json .credentials.json standin.jsonl; do rm -f "$st/claude/$f"; ln -s "$CANARY/secret" "$st/claude/$f"; done',
        'rm -rf "$st/claude/projects"; ln -s "$CANARY/sub" "$st/claude/projects"',
        'rm -f "$HOME/.gitconfig"; ln -s "$CANARY/secret" "$HOME/.gitconfig"',
        'c="$HOME/.config/git/agent-host-credentials"; rm -f "$c" "$c.tmp"; ln -s "$CANARY/secret" "$c"; ln -s "$CANARY/code" "$c.tmp"',
        'rm -rf "$WS/.git"; ln -s "$CANARY/sub" "$WS/.git"',
      ].join("\n"),
    );
    expect(plant1.stderr).toBe("");
    expect(plant1.status).toBe(0);
    // Agent 2: the folders themselves: its state folder and its claude folder, links to root's.
    const plant2 = asAgent(
      2,
      'mv "$HOME/.agent-host" "$HOME/.agent-host.real" && ln -s "$CANARY/sub" "$HOME/.agent-host" && ln -s "$CANARY" "$HOME/.agent-host.real/claude.link"',
    );
    expect(plant2.status).toBe(0);

    // A crash: both claudes die; their wrappers restart them (prepare-agent, session id, seed).
    // Each step below ends once every wrapper it set off has run root's side over the links (it
    // started claude or refused, not merely scheduled a restart), so the snapshot sees its effect.
    const beforeCrash = new Map([1, 2].map((n) => [n, attempts(n).length]));
    for (const n of [1, 2]) process.kill(pids.get(`agent-${n}`) as number, "SIGKILL");
    await attemptsRan("both wrappers' restarts after the crash", [1, 2], (n) =>
      Number(beforeCrash.get(n)),
    );
    // The hook, as agent 1, into its linked state files.
    asAgent(1, `exec node '${p.js()}' hook`, [`AGENT_HOST_STATE_DIR=${state(1)}`], payload("Stop"));
    // agentctl's commands, and the whole deploy again.
    const r1 = ctl(["reconcile", "3", "--json"]);
    ctl(["status"]);
    ctl(["status", "--json"]);
    const beforeRestart = new Map([1, 2, 3].map((n) => [n, attempts(n).length]));
    ctl(["restart", "all"]);
    await attemptsRan("every wrapper's start after restart all", [1, 2, 3], (n) =>
      Number(beforeRestart.get(n)),
    );
    const again = await apply();
    ctl(["reconcile", "2"]);
    ctl(["status", "--json"]);
    // What may still run after the deploy and reconcile 2 is a restart one of them set off in
    // agent 1's or 2's wrapper: each has ended its last attempt, none is pending.
    await attemptsRan(
      "agent-1's and agent-2's wrappers to have no restart pending",
      [1, 2],
      () => 0,
    );

    const after = snapshot(guarded());
    expect([...after.entries()]).toEqual([...before.entries()]);
    // Nothing of root's anywhere now belongs to an agent.
    const owned = sh("find", [
      ROOT,
      CANARY,
      "-xdev",
      "(",
      "-uid",
      String(uid(1)),
      "-o",
      "-uid",
      String(uid(2)),
      ")",
      "-not",
      "-path",
      `${p.homes()}/*`,
      "-not",
      "-path",
      `${ROOT}/workspaces/agent-*`,
    ]);
    expect(owned.trim()).toBe("");
    // The product refused what it could not do safely, and said so; agent 3 came up as its own user.
    expect(r1.stdout).toContain('"added":["agent-3"]');
    expect(sh("id", ["-u", name(3)]).trim()).toBe(String(uid(3)));
    expect(again.stderr).not.toContain(GIT_TOKEN);
    // Agent 2's planted state folder stopped its own start, not root.
    expect(fs.readFileSync(path.join(p.run(), "agent-2", "wrapper.log"), "utf8")).toMatch(
      /could not prepare agent-2|could not create/,
    );
  });
});
