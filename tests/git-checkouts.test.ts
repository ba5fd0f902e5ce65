// Issue 9's proof, run for real: the agents' git against real git servers on 127.0.0.1 — git's
// own http-backend behind an HTTPS server that demands a token (tests/fixtures/git-https-server.ts)
// and a bare repository served by a real sshd to a deploy key. The stack's program (under the
// SDK's mocks) gives the reconcile command and its stdin; host/apply runs them as on the VM
// (paths under AGENT_HOST_ROOT) and agentctl reconciles real agents on a real tmux server with
// the stand-in claude. git runs as a real unprivileged agent user; another user tries to read
// the credentials. Every wait has a deadline.
//
// Stand-ins (BASE/bin, first on apply's PATH): cloud-init (boot is over), apt-get (records what
// it would install; dpkg-query is the real one), gh (records its argv and a hash of its stdin:
// GitHub cannot be reached from here), and a claude that answers --version.
import { ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { BASE_CONFIG, one, plainStrings, runProgram, unwrap, type ProgramRun } from "./harness";
import { ExecTrace, readTrace, secretExposures, straceArgv } from "./fixtures/exec-trace";
import { writeSiteConf } from "./fixtures/host-tree";
import { bootHostConf } from "./host-files";
import { unavailableSuite } from "./real-suite";
import { filesContaining, freePort, removeTestAgents, waitFor } from "./support";
import { cloudInitUserData } from "./user-data";

const REPO = path.resolve(__dirname, "..");
const APPLY = path.join(REPO, "cloud-init/host/apply");
const STANDIN = path.join(REPO, "tests/fixtures/claude");
const HTTPS_SERVER = path.join(REPO, "tests/fixtures/git-https-server.ts");
const TS_NODE = path.join(REPO, "node_modules/.bin/ts-node");
/** Each agent its own user (issue 20): ahgit-agent-N, uid = gid = 61500 + N. */
const PREFIX = "ahgit-agent";
const UID_BASE = 61500;
const agentName = (n: number): string => `${PREFIX}-${n}`;
/** The checks of one agent's git set-up look at agent 1's. */
const AGENT = agentName(1);
const OTHER = "ahgit-other";
const SRV = "ahgit-srv";
const TOKEN = `ghp_CANARY${process.pid}x${Date.now()}`;
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const TOOLS = ["git", "/usr/sbin/sshd", "ssh", "ssh-keygen", "openssl", "tmux", "setpriv", "flock"];
const haveTools = TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
const haveGitShell = fs.existsSync("/usr/bin/git-shell");
const suite =
  isRoot && haveTools && haveGitShell
    ? describe
    : unavailableSuite(
        `git-checkouts tests skipped: they need root (users, sshd) and ${TOOLS.join(", ")}, git-shell`,
      );

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every exec apply and the tmux server made while it ran (strace), and each argv that held a secret. */
  execs: number;
  argvLeaks: string[];
}

interface Row {
  name: string;
  state: string;
  branch: string | null;
  unsaved: boolean | null;
  uncommitted_files: number | null;
  unpushed_commits: number | null;
}

let BASE = "";
/** AGENT_HOMES_DIR of the test's host (one host root for both scenarios, as one VM). */
const agentHomes = (): string => path.join(BASE, "host/data/home");
let httpsServer: ChildProcess | undefined;
let sshd: ChildProcess | undefined;
let httpsPort = 0;
let sshPort = 0;
let sshKey = "";
const tmuxServers: { sock: string; proc: ChildProcess }[] = [];

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

function ids(user: string): { uid: string; gid: string; home: string } {
  const [, , uid, gid, , home] = sh("getent", ["passwd", user]).trim().split(":");
  return { uid, gid, home };
}

/** Runs a command as `user` with only HOME and PATH, the way apply and agentctl run git. */
function asUser(
  user: string,
  args: string[],
  cwd?: string,
  input?: string,
): SpawnSyncReturns<string> {
  const { uid, gid, home } = ids(user);
  return spawnSync(
    "setpriv",
    [
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--init-groups",
      "--",
      "env",
      "-i",
      `HOME=${home}`,
      `PATH=${SYSTEM_PATH}`,
      "LANG=C.UTF-8",
      "GIT_TERMINAL_PROMPT=0",
      ...args,
    ],
    // Never the test's own cwd: CI's clone may sit in a directory the user cannot enter (git
    // then stops with "Unable to read current working directory").
    { encoding: "utf8", cwd: cwd ?? home, input, timeout: 60_000 },
  );
}

function git(user: string, cwd: string, args: string[]): string {
  const r = asUser(user, ["git", ...args], cwd);
  if (r.status !== 0) throw new Error(`git ${args.join(" ")} as ${user} in ${cwd}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The users this run made, removed (with their homes) at its end. */
const createdUsers: string[] = [];

function ensureUser(name: string, shell = "/bin/bash"): void {
  if (spawnSync("id", ["-u", name]).status !== 0) {
    sh("useradd", ["--create-home", "--shell", shell, name]);
    createdUsers.push(name);
  }
  // A locked password ("!") makes sshd without PAM refuse even key logins; "*" is no password.
  sh("usermod", ["-p", "*", name]);
}

function writeExecutable(file: string, text: string): void {
  fs.writeFileSync(file, text, { mode: 0o755 });
}

/**
 * One host: an AGENT_HOST_ROOT (shared by both scenarios, as one VM would be) with this
 * scenario's workspaces, state, run dir and tmux server.
 */
class Host {
  readonly root: string;
  /** This machine's users and paths (tests/host-files.ts SITE_KEYS), pointed at this root. */
  private readonly site: Record<string, string>;
  /** The scenario's stack config: `stack` what it deploys (the boot host.conf is rendered from it). */
  constructor(
    readonly tag: string,
    private readonly stack: Record<string, string>,
  ) {
    this.root = path.join(BASE, "host");
    this.site = {
      AGENT_USER: PREFIX,
      AGENT_UID_BASE: String(UID_BASE),
      AGENT_HOMES_DIR: agentHomes(),
      ADMIN_USER: OTHER,
      CLAUDE_BIN: path.join(BASE, "bin/claude"),
      START_STAGGER_SECONDS: "0.05",
      RESTART_BACKOFF_MIN_SECONDS: "1",
      STOP_TIMEOUT_SECONDS: "5",
      WORKSPACES_DIR: this.ws(),
      STATE_DIR: path.join(this.root, `state-${tag}`),
      RUN_DIR: this.run(),
      TMUX_SOCKET: this.sock(),
      API_KEY_FILE: path.join(this.root, "etc/agent-host/secrets/anthropic-api-key"),
    };
    // The site's host.conf.local: apply appends it to the host.conf the stack renders.
    writeSiteConf(
      path.join(this.root, "etc/agent-host/host.conf.local"),
      `tests/git-checkouts.test.ts (${tag})`,
      this.site,
    );
  }
  ws(name?: string): string {
    const dir = path.join(this.root, `workspaces-${this.tag}`);
    return name ? path.join(dir, name) : dir;
  }
  run(): string {
    return path.join(this.root, `run-${this.tag}`);
  }
  sock(): string {
    return path.join(this.run(), "tmux.sock");
  }
  conf(): string {
    return path.join(this.root, "etc/agent-host/host.conf");
  }
  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: `${path.join(BASE, "bin")}:${process.env.PATH}`,
      AGENT_HOST_ROOT: this.root,
      AGENTCTL_CONFIG: this.conf(),
      AGENT_WRAPPER: path.join(this.root, "usr/local/lib/agent-host/agent-wrapper"),
      AGENTCTL_TMUX_CONF: path.join(this.root, "etc/agent-host/tmux.conf"),
    };
    delete env.TMUX;
    return env;
  }

  /** The tmux server, started the way agent-host.service starts it (`agentctl server`). */
  async startServer(): Promise<void> {
    // What cloud-init writes before agent-host.service starts: the boot host.conf the stack
    // renders (renderBootHostConf) with this site's overrides. Beside the shared host.conf, since
    // both scenarios' hosts share one root (apply installs the full host.conf there).
    const conf = path.join(this.root, `server-${this.tag}.conf`);
    fs.writeFileSync(conf, bootHostConf(this.stack, this.site));
    const proc = spawn(path.join(REPO, "cloud-init/host/agentctl"), ["server"], {
      env: {
        ...this.env(),
        AGENTCTL_CONFIG: conf,
        AGENTCTL_TMUX_CONF: path.join(REPO, "cloud-init/host/tmux.conf"),
        // Before apply installs the host files: the parser agentctl reads host.conf through.
        AGENT_HOST_JS: path.join(REPO, "cloud-init/host/agent-host.js"),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let said = "";
    proc.stderr?.on("data", (d: Buffer) => (said += d.toString()));
    tmuxServers.push({ sock: this.sock(), proc });
    await waitFor(
      "the tmux server",
      () => spawnSync("tmux", ["-S", this.sock(), "list-sessions"]).status === 0,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; agentctl server said: ${said}`);
    });
  }

  /**
   * Runs the reconcile command's string (without sudo) with its stdin, every exec traced: apply's
   * own tree under strace, and the tmux server's (the windows and wrappers it starts) attached.
   */
  async apply(command: string, stdin: string, secrets: string[]): Promise<Run> {
    const args = command.replace(/^sudo \/usr\/local\/lib\/agent-host\/apply /, "").split(" ");
    const server = spawnSync("tmux", ["-S", this.sock(), "display-message", "-p", "#{pid}"], {
      encoding: "utf8",
    });
    const stamp = `${this.tag}-${Date.now()}`;
    // The server runs before every apply here (startServer); without one, apply's own tree is all.
    const serverTrace =
      server.status === 0
        ? await ExecTrace.attach(
            [Number(server.stdout.trim())],
            path.join(BASE, `server-${stamp}.strace`),
          )
        : undefined;
    const applyTrace = path.join(BASE, `apply-${stamp}.strace`);
    const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const [strace, ...prefix] = straceArgv(applyTrace);
        const p = spawn(strace, [...prefix, "bash", APPLY, ...args], { env: this.env() });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        p.on("error", reject);
        const timer = setTimeout(() => p.kill("SIGKILL"), 180_000);
        p.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
        p.stdin.end(stdin);
      },
    );
    const execs = [...readTrace(applyTrace), ...((await serverTrace?.stop()) ?? [])];
    // argv only: a secret in any argv is world-readable (/proc/PID/cmdline).
    const argvLeaks = secretExposures(execs, secrets, () => true);
    return { ...result, execs: execs.length, argvLeaks };
  }

  ctl(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(path.join(this.root, "usr/local/bin/agentctl"), args, {
      env: this.env(),
      encoding: "utf8",
      timeout: 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  status(): Row[] {
    const r = this.ctl(["status", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout) as { agents: Row[] }).agents;
  }
}

/** A bare repository with one commit on main (a README), owned by `owner`. */
function serverRepo(dir: string, owner: string): string {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  sh("git", ["init", "--quiet", "--bare", "--initial-branch=main", dir]);
  const work = fs.mkdtempSync(path.join(BASE, "seed-"));
  sh("git", ["-C", work, "init", "--quiet", "--initial-branch=main"]);
  fs.writeFileSync(path.join(work, "README.md"), "# team app\n");
  sh("git", ["-C", work, "add", "README.md"]);
  sh("git", [
    "-C",
    work,
    "-c",
    "user.name=Seed",
    "-c",
    "user.email=seed@example.test",
    "commit",
    "--quiet",
    "-m",
    "initial commit",
  ]);
  sh("git", ["-C", work, "push", "--quiet", dir, "main"]);
  fs.rmSync(work, { recursive: true, force: true });
  const { uid, gid } = ids(owner);
  sh("chown", ["-R", `${uid}:${gid}`, dir]);
  return sh("git", ["--git-dir", dir, "rev-parse", "refs/heads/main"]).trim();
}

function serverRef(dir: string, ref: string): string {
  const r = spawnSync("git", ["--git-dir", dir, "rev-parse", "--verify", "--quiet", ref], {
    encoding: "utf8",
  });
  return r.status === 0 ? r.stdout.trim() : "";
}

function stdinOf(run: ProgramRun): { command: string; stdin: string; stdinSecret: boolean } {
  const cmd = one(run, "command:remote:Command");
  const stdin = cmd.inputs.stdin as Record<string, unknown>;
  return {
    command: String(unwrap(cmd.inputs.create)),
    stdin: String(unwrap(stdin)),
    stdinSecret: plainStrings(stdin).length === 0,
  };
}

/** The canary appears in no plain (non-secret) input or output of the program. */
function expectOnlyInSecrets(run: ProgramRun, canary: string): void {
  for (const r of run.resources) {
    const leaks = plainStrings(r.inputs).filter((s) => s.text.includes(canary));
    expect({ resource: `${r.type}::${r.name}`, leaks }).toEqual({
      resource: `${r.type}::${r.name}`,
      leaks: [],
    });
  }
  for (const [name, out] of Object.entries(run.outputs)) {
    if (!out.secret)
      expect({ name, plain: JSON.stringify(out.value).includes(canary) }).toEqual({
        name,
        plain: false,
      });
  }
}

function ghCalls(): string[] {
  const f = path.join(BASE, "gh-calls");
  return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim().split("\n").filter(Boolean) : [];
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

suite("the agents' git against real git servers on 127.0.0.1", () => {
  jest.setTimeout(180_000);
  let httpsRepo = "";
  let sshRepo = "";
  let httpsMain = "";
  let sshMain = "";
  let agentHome = "";
  const https = () => `https://127.0.0.1:${httpsPort}/team.git`;
  const ssh = () => `ssh://${SRV}@127.0.0.1:${sshPort}${sshRepo}`;

  beforeAll(async () => {
    BASE = fs.mkdtempSync(path.join(os.tmpdir(), "git-checkouts-"));
    fs.chmodSync(BASE, 0o755);
    removeTestAgents(PREFIX, UID_BASE);
    // The agents' users and homes as a host that ran before has them on its data disk (the
    // product adopts them: same pinned ids, homes of their own), so their git can be told to trust
    // the test's certificate before the first apply.
    fs.mkdirSync(agentHomes(), { recursive: true, mode: 0o755 });
    for (const n of [1, 2, 3]) {
      const id = String(UID_BASE + n);
      const home = path.join(agentHomes(), agentName(n));
      sh("groupadd", ["--gid", id, agentName(n)]);
      sh("useradd", [
        "--uid",
        id,
        "--gid",
        id,
        "--home-dir",
        home,
        "--no-create-home",
        agentName(n),
      ]);
      fs.mkdirSync(home, { mode: 0o700 });
      fs.chownSync(home, Number(id), Number(id));
    }
    ensureUser(OTHER);
    ensureUser(SRV, "/usr/bin/git-shell");
    agentHome = ids(AGENT).home;

    const bin = path.join(BASE, "bin");
    fs.mkdirSync(bin);
    writeExecutable(path.join(bin, "cloud-init"), '#!/bin/sh\necho "status: done"\n');
    const aptCalls = path.join(BASE, "apt-calls");
    writeExecutable(path.join(bin, "apt-get"), `#!/bin/sh\necho "$*" >>'${aptCalls}'\n`);
    const calls = path.join(BASE, "gh-calls");
    fs.writeFileSync(calls, "", { mode: 0o666 });
    fs.chmodSync(calls, 0o666);
    writeExecutable(
      path.join(bin, "gh"),
      `#!/bin/bash\nsum="$(sha256sum | cut -d ' ' -f 1)"\nprintf '%s|%s|%s\\n' "$(id -un)" "$*" "$sum" >>'${calls}'\n`,
    );
    // The agent runs a copy: CI's clone may sit in a directory the agent cannot enter.
    const standin = path.join(bin, "claude-standin");
    writeExecutable(standin, fs.readFileSync(STANDIN, "utf8"));
    writeExecutable(
      path.join(bin, "claude"),
      `#!/bin/sh\nif [ "$1" = --version ]; then echo "2.1.331 (Claude Code)"; exit 0; fi\nexec '${standin}' "$@"\n`,
    );

    // HTTPS: a self-signed certificate for 127.0.0.1 that the agent's git is told to trust.
    const tls = path.join(BASE, "tls");
    fs.mkdirSync(tls, { mode: 0o755 });
    sh("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      path.join(tls, "key.pem"),
      "-out",
      path.join(tls, "cert.pem"),
    ]);
    fs.chmodSync(path.join(tls, "cert.pem"), 0o644);
    httpsRepo = path.join(BASE, "https-root/team.git");
    httpsMain = serverRepo(httpsRepo, "root");
    httpsServer = spawn(
      TS_NODE,
      ["--transpile-only", "-P", path.join(REPO, "tsconfig.json"), HTTPS_SERVER],
      {
        env: {
          PATH: process.env.PATH,
          GIT_PROJECT_ROOT: path.join(BASE, "https-root"),
          TLS_CERT: path.join(tls, "cert.pem"),
          TLS_KEY: path.join(tls, "key.pem"),
          AUTH_USER: "x-access-token",
          AUTH_PASS: TOKEN,
          REQUEST_LOG: path.join(BASE, "https-requests"),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let httpsOut = "";
    httpsServer.stdout?.on("data", (d: Buffer) => (httpsOut += d.toString()));
    httpsServer.stderr?.on("data", (d: Buffer) => (httpsOut += d.toString()));
    httpsPort = Number(
      (await waitFor("the HTTPS git server", () => /listening (\d+)/.exec(httpsOut), 30_000))[1],
    );
    for (const n of [1, 2, 3]) {
      const ca = asUser(agentName(n), [
        "git",
        "config",
        "--global",
        `http.https://127.0.0.1:${httpsPort}/.sslCAInfo`,
        path.join(tls, "cert.pem"),
      ]);
      expect(ca.status).toBe(0);
    }

    // SSH: sshd on 127.0.0.1, the repository in the git user's home, the deploy key authorized.
    const sshDir = path.join(BASE, "ssh");
    fs.mkdirSync(sshDir, { mode: 0o755 });
    sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(sshDir, "host")]);
    sh("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "deploy",
      "-f",
      path.join(sshDir, "deploy"),
    ]);
    sshKey = fs.readFileSync(path.join(sshDir, "deploy"), "utf8");
    fs.writeFileSync(
      path.join(sshDir, `authorized_keys.${SRV}`),
      fs.readFileSync(path.join(sshDir, "deploy.pub")),
      { mode: 0o644 },
    );
    sshRepo = path.join(ids(SRV).home, "team.git");
    fs.rmSync(sshRepo, { recursive: true, force: true });
    sshMain = serverRepo(sshRepo, SRV);
    sshPort = await freePort();
    const sshdConfig = path.join(sshDir, "sshd_config");
    fs.writeFileSync(
      sshdConfig,
      [
        `Port ${sshPort}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${path.join(sshDir, "host")}`,
        `PidFile ${path.join(sshDir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(sshDir, "authorized_keys.%u")}`,
        // The test's folders live under /tmp (world-writable), which StrictModes refuses.
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        `AllowUsers ${SRV}`,
        "",
      ].join("\n"),
    );
    // sshd refuses to start without its privilege-separation directory; it stays (other tests).
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    let sshdLog = "";
    sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", sshdConfig], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    sshd.stderr?.on("data", (d: Buffer) => (sshdLog += d.toString()));
    await waitFor(
      "sshd to listen",
      () => sshdLog.includes(`Server listening on 127.0.0.1 port ${sshPort}`),
      30_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; sshd said: ${sshdLog}`);
    });
  });

  afterAll(async () => {
    for (const t of tmuxServers) {
      spawnSync("tmux", ["-S", t.sock, "kill-server"]);
      t.proc.kill("SIGTERM");
    }
    httpsServer?.kill("SIGTERM");
    sshd?.kill("SIGTERM");
    // The stand-in claudes die with their panes; whatever the agents left, pid by pid, and users.
    removeTestAgents(PREFIX, UID_BASE);
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
    for (const user of createdUsers.splice(0)) spawnSync("userdel", ["--remove", user]);
  });

  // The trace every apply here runs under (tests/fixtures/exec-trace.ts). A stressed CI run once
  // saw strace never detach (it sat in wait4 on a zombie tracee); the test then hung, and the
  // strace it left attached failed the tests after it.
  test("the exec trace: a strace that does not detach in time is killed, and what it logged is read", async () => {
    const shell = spawn("bash", ["-c", 'while read -r l; do /bin/echo "$l" >/dev/null; done'], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    let trace: ExecTrace | undefined;
    try {
      const out = path.join(BASE, `stuck-${Date.now()}.strace`);
      trace = await ExecTrace.attach([shell.pid as number], out, { detachMs: 2_000 });
      shell.stdin?.write("before-the-hang\n");
      await waitFor("the traced echo in the log", () =>
        fs.readFileSync(out, "utf8").includes('"before-the-hang"'),
      );
      // strace stops answering, as it did in wait4.
      process.kill(trace.pid, "SIGSTOP");
      const execs = await trace.stop();
      expect(execs.filter((e) => e.argv.includes("before-the-hang")).map((e) => e.path)).toEqual([
        "/bin/echo",
      ]);
      // The kernel detached the shell when strace died: it still runs what it reads, and ends.
      shell.stdin?.end("after-the-trace\n");
      await waitFor("the shell to end", () => shell.exitCode !== null, 15_000);
      expect(shell.exitCode).toBe(0);
    } finally {
      shell.kill("SIGKILL");
      // A stop that failed leaves strace stopped: the suite would never end.
      if (trace && fs.existsSync(`/proc/${trace.pid}`)) process.kill(trace.pid, "SIGKILL");
    }
  });

  describe("an HTTPS repository with a GitHub token", () => {
    let h: Host;
    let run: ProgramRun;
    let applied: Run;
    const config = () => ({
      ...BASE_CONFIG,
      "agent-host:agentCount": "3",
      "agent-host:repository": https(),
      "agent-host:gitCredentials": TOKEN,
      "agent-host:gitUserName": "Agent Host Test",
      "agent-host:gitUserEmail": "agents@example.test",
      "agent-host:extraPackages": JSON.stringify(["git", "tmux", "ahgit-fake-tool"]),
    });

    beforeAll(async () => {
      h = new Host("a", config());
      await h.startServer();
      run = await runProgram(config(), { secretKeys: ["agent-host:gitCredentials"] });
      const { command, stdin } = stdinOf(run);
      applied = await h.apply(command, stdin, [TOKEN]);
    });

    test("the token is in secret values only: stdin, never user-data, the command or outputs", () => {
      expectOnlyInSecrets(run, TOKEN);
      const { command, stdin, stdinSecret } = stdinOf(run);
      expect(stdinSecret).toBe(true);
      expect(stdin).toContain(
        `\nsecret git-credentials ${Buffer.from(TOKEN).toString("base64")}\n`,
      );
      expect(command).not.toContain(TOKEN);
      const vm = unwrap(one(run, "gcp:compute/instance:Instance").inputs) as Record<string, any>;
      expect(vm.metadata["user-data"]).not.toContain(TOKEN);
      const userData = cloudInitUserData(vm.metadata);
      expect(userData).not.toContain(TOKEN);
      expect(userData).not.toContain(Buffer.from(TOKEN).toString("base64"));
      const conf = parse(userData).write_files.find(
        (f: { path: string }) => f.path === "/etc/agent-host/host.conf",
      ).content;
      expect(conf).toContain(`\nGIT_REPOSITORY=${https()}\n`);
      expect(conf).toContain(`\nGIT_CREDENTIAL_HOST=127.0.0.1:${httpsPort}\n`);
      expect(parse(userData).packages).toEqual(expect.arrayContaining(["gh", "ahgit-fake-tool"]));
    });

    test("apply: each agent's workspace is a checkout of the repository on its own branch", () => {
      // This machine's /run is not tmpfs (a VM's is): apply says so, and nothing else warns.
      const warnings = applied.stderr
        .split("\n")
        .filter((line) => line.includes("warning"))
        .filter(
          (line) => !/^apply: warning: \/run\/agent-host-apply is on \S+, not tmpfs/.test(line),
        );
      expect(warnings).toEqual([]);
      expect(applied.code).toBe(0);
      expect(JSON.parse(applied.stdout)).toEqual({
        desired: 3,
        added: ["agent-1", "agent-2", "agent-3"],
        removed: [],
        restarted: [],
        running: 3,
      });
      for (const n of [1, 2, 3]) {
        const ws = h.ws(`agent-${n}`);
        expect(applied.stderr).toContain(
          `agent-${n}: ${ws} is a checkout of ${https()} on its own branch agent-${n} (from origin/main)`,
        );
        expect(git(agentName(n), ws, ["symbolic-ref", "--short", "HEAD"])).toBe(`agent-${n}`);
        expect(git(agentName(n), ws, ["rev-parse", "HEAD"])).toBe(httpsMain);
        expect(fs.readFileSync(path.join(ws, "README.md"), "utf8")).toBe("# team app\n");
        // A repository of its own, the agent's: no object store another agent could write.
        expect(git(agentName(n), ws, ["rev-parse", "--git-common-dir"])).toBe(".git");
        expect(fs.statSync(path.join(ws, ".git")).uid).toBe(UID_BASE + n);
        expect(asUser(agentName(n === 3 ? 1 : n + 1), ["git", "-C", ws, "status"]).status).not.toBe(
          0,
        );
      }
      expect(fs.existsSync(h.ws(".repo.git"))).toBe(false);
    });

    test("the agent user's git: identity, push.default, a token scoped to the repository's host", () => {
      const cfg = (key: string) => git(AGENT, agentHome, ["config", "--global", "--get", key]);
      expect(cfg("user.name")).toBe("Agent Host Test");
      expect(cfg("user.email")).toBe("agents@example.test");
      expect(cfg("push.default")).toBe("current");
      expect(cfg(`credential.https://127.0.0.1:${httpsPort}.helper`)).toBe(
        `!f() { if [ "$1" = get ]; then exec git credential-store --file=${agentHome}/.config/git/agent-host-credentials get; fi; }; f`,
      );
      expect(
        asUser(AGENT, ["git", "config", "--global", "--get", "credential.helper"]).stdout,
      ).toBe("");
      // Asked for another host, git has no credential to give.
      const other = asUser(
        AGENT,
        ["git", "credential", "fill"],
        agentHome,
        "protocol=https\nhost=evil.example\n\n",
      );
      expect(other.stdout).not.toContain(TOKEN);
    });

    test("the credentials file: the agent's, 0600; another user cannot read it", () => {
      const file = path.join(agentHome, ".config/git/agent-host-credentials");
      const st = fs.statSync(file);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.uid).toBe(Number(ids(AGENT).uid));
      expect(fs.readFileSync(file, "utf8")).toBe(
        `https://x-access-token:${TOKEN}@127.0.0.1:${httpsPort}\n`,
      );
      const stolen = asUser(OTHER, ["cat", file]);
      expect(stolen.status).not.toBe(0);
      expect(stolen.stderr).toContain("Permission denied");
      expect(stolen.stdout).toBe("");
      const byGit = asUser(
        OTHER,
        ["git", "credential-store", `--file=${file}`, "get"],
        undefined,
        `protocol=https\nhost=127.0.0.1:${httpsPort}\n\n`,
      );
      expect(byGit.stdout).not.toContain(TOKEN);
    });

    test("the token never leaves the credentials file: not in apply's output, any exec's argv, the host's files, gh's argv", () => {
      expect(applied.execs).toBeGreaterThan(0);
      expect(applied.argvLeaks).toEqual([]);
      expect(applied.stdout).not.toContain(TOKEN);
      expect(applied.stderr).not.toContain(TOKEN);
      // Only each agent's own credentials file holds it (the homes are under the host's root).
      expect(filesContaining(h.root, TOKEN).sort()).toEqual(
        [1, 2, 3].map((n) =>
          path.join(agentHomes(), agentName(n), ".config/git/agent-host-credentials"),
        ),
      );
      expect(ghCalls()).toEqual(
        [1, 2, 3].map(
          (n) =>
            `${agentName(n)}|auth login --hostname 127.0.0.1:${httpsPort} --with-token|${sha256(`${TOKEN}\n`)}`,
        ),
      );
    });

    test("extraPackages: apt-get installs the missing ones only", () => {
      expect(fs.readFileSync(path.join(BASE, "apt-calls"), "utf8")).toBe(
        "-q update\n-q install -y --no-install-recommends -o DPkg::Lock::Timeout=300 ahgit-fake-tool\n",
      );
    });

    test("an agent's commit is pushed with the configured token", () => {
      const ws = h.ws("agent-1");
      fs.writeFileSync(path.join(ws, "feature.txt"), "agent 1 was here\n");
      fs.chownSync(path.join(ws, "feature.txt"), Number(ids(AGENT).uid), Number(ids(AGENT).gid));
      git(AGENT, ws, ["add", "feature.txt"]);
      git(AGENT, ws, ["commit", "--quiet", "-m", "agent 1: a feature"]);
      const sha = git(AGENT, ws, ["rev-parse", "HEAD"]);
      const push = asUser(AGENT, ["git", "push", "--quiet"], ws);
      expect(push.stderr).toBe("");
      expect(push.status).toBe(0);
      expect(serverRef(httpsRepo, "refs/heads/agent-1")).toBe(sha);
      expect(git(AGENT, ws, ["log", "-1", "--format=%an <%ae>", "HEAD"])).toBe(
        "Agent Host Test <agents@example.test>",
      );
      // git used the token but never rewrote the file (a rejected request would have erased it).
      expect(
        fs.readFileSync(path.join(agentHome, ".config/git/agent-host-credentials"), "utf8"),
      ).toBe(`https://x-access-token:${TOKEN}@127.0.0.1:${httpsPort}\n`);
      const requests = fs.readFileSync(path.join(BASE, "https-requests"), "utf8");
      expect(requests).toContain("POST /team.git/git-receive-pack 200 x-access-token\n");
      expect(requests).not.toContain("wrong-credentials");
    });

    test("status: branch and unsaved work per agent, in the table and --json", () => {
      // agent-1 pushed everything; agent-2 has an uncommitted file; agent-3 an unpushed commit.
      const { uid, gid } = ids(agentName(2));
      fs.writeFileSync(path.join(h.ws("agent-2"), "notes.txt"), "half done\n");
      fs.chownSync(path.join(h.ws("agent-2"), "notes.txt"), Number(uid), Number(gid));
      git(agentName(3), h.ws("agent-3"), [
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "agent 3: local",
      ]);
      const rows = h.status();
      const pick = (r: Row) => ({
        name: r.name,
        branch: r.branch,
        unsaved: r.unsaved,
        uncommitted_files: r.uncommitted_files,
        unpushed_commits: r.unpushed_commits,
      });
      expect(rows.map(pick)).toEqual([
        {
          name: "agent-1",
          branch: "agent-1",
          unsaved: false,
          uncommitted_files: 0,
          unpushed_commits: 0,
        },
        {
          name: "agent-2",
          branch: "agent-2",
          unsaved: true,
          uncommitted_files: 1,
          unpushed_commits: 0,
        },
        {
          name: "agent-3",
          branch: "agent-3",
          unsaved: true,
          uncommitted_files: 0,
          unpushed_commits: 1,
        },
      ]);
      const [host, ...table] = h.ctl(["status"]).stdout.trim().split("\n");
      expect(host).toBe("HOST  healthy");
      const header = table[0].split(/\s{2,}/);
      expect(header).toEqual(expect.arrayContaining(["BRANCH", "UNSAVED"]));
      const cells = (line: string) => {
        const c = line.split(/\s{2,}/);
        return [c[header.indexOf("BRANCH")], c[header.indexOf("UNSAVED")]];
      };
      const agentRows = table.slice(1).filter((line) => line.startsWith("agent-"));
      expect(agentRows.map(cells)).toEqual([
        ["agent-1", "no"],
        ["agent-2", "1 uncommitted"],
        ["agent-3", "1 unpushed"],
      ]);
    });

    test("scale 3 → 1 → 3: it says who has unsaved work, and every checkout comes back as it was", async () => {
      const heads = [1, 2, 3].map((n) =>
        git(agentName(n), h.ws(`agent-${n}`), ["rev-parse", "HEAD"]),
      );
      const down = h.ctl(["reconcile", "1", "--json"]);
      expect(down.code).toBe(0);
      expect(JSON.parse(down.stdout).removed).toEqual(["agent-2", "agent-3"]);
      expect(down.stderr).toContain(
        `agentctl: agent-2 agent-3: uncommitted or unpushed work in the checkout; kept in ${h.ws()} (workspaces are never deleted), and scaling back up resumes it\n`,
      );
      for (const n of [2, 3])
        expect(fs.existsSync(path.join(h.ws(`agent-${n}`), ".git"))).toBe(true);
      expect(fs.readFileSync(path.join(h.ws("agent-2"), "notes.txt"), "utf8")).toBe("half done\n");

      const up = h.ctl(["reconcile", "3", "--json"]);
      expect(up.code).toBe(0);
      expect(JSON.parse(up.stdout).added).toEqual(["agent-2", "agent-3"]);
      expect(up.stderr).not.toContain("is a checkout of");
      expect(up.stderr).not.toContain("fetching");
      expect(
        [1, 2, 3].map((n) => git(agentName(n), h.ws(`agent-${n}`), ["rev-parse", "HEAD"])),
      ).toEqual(heads);
      expect(fs.readFileSync(path.join(h.ws("agent-2"), "notes.txt"), "utf8")).toBe("half done\n");
      await waitFor("3 agents running", () => {
        const rows = h.status();
        return rows.length === 3 && rows.every((r) => r.state === "running");
      });
      expect(h.status().map((r) => [r.name, r.unsaved])).toEqual([
        ["agent-1", false],
        ["agent-2", true],
        ["agent-3", true],
      ]);
    });

    test("a workspace that already has files (made before the repository was set) is left alone", () => {
      const ws = h.ws("agent-4");
      fs.mkdirSync(ws);
      fs.writeFileSync(path.join(ws, "old-work.txt"), "from before\n");
      const r = h.ctl(["reconcile", "4", "--json"]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(
        "agentctl: agent-4: workspace already has files and is not a git checkout; left alone (the repository is checked out only into new or empty workspaces)\n",
      );
      expect(fs.readdirSync(ws)).toEqual(["old-work.txt"]);
      // A workspace deleted by hand comes back as a checkout of its branch, as pushed: each
      // agent's repository is its own clone (issue 20), so only what reached the remote survives.
      expect(asUser(agentName(3), ["git", "push", "--quiet"], h.ws("agent-3")).status).toBe(0);
      fs.rmSync(h.ws("agent-3"), { recursive: true, force: true });
      const again = h.ctl(["reconcile", "4", "--json"]);
      expect(again.code).toBe(0);
      expect(again.stderr).toContain(
        `agent-3: ${h.ws("agent-3")} checks out its existing branch agent-3`,
      );
      expect(git(agentName(3), h.ws("agent-3"), ["log", "-1", "--format=%s"])).toBe(
        "agent 3: local",
      );
    });
    test("the next deploy with the same config rewrites nothing and resets no checkout", async () => {
      const heads = [1, 2, 3].map((n) =>
        git(agentName(n), h.ws(`agent-${n}`), ["rev-parse", "HEAD"]),
      );
      const calls = ghCalls().length;
      const { command, stdin } = stdinOf(run);
      const again = await h.apply(command, stdin, [TOKEN]);
      expect(again.code).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({
        desired: 3,
        added: [],
        removed: ["agent-4"],
      });
      // (ahgit-fake-tool is asked for again: the stand-in apt-get never really installs it.)
      expect(again.stderr).not.toMatch(
        /stored the agents|removed the agents|fetching|is a checkout of|checks out/,
      );
      expect(ghCalls()).toHaveLength(calls);
      expect(
        [1, 2, 3].map((n) => git(agentName(n), h.ws(`agent-${n}`), ["rev-parse", "HEAD"])),
      ).toEqual(heads);
      expect(fs.readFileSync(path.join(h.ws("agent-2"), "notes.txt"), "utf8")).toBe("half done\n");
      expect(fs.readdirSync(h.ws("agent-4"))).toEqual(["old-work.txt"]);
    });
  });

  describe("an SSH repository with a deploy key (replacing the token)", () => {
    let h: Host;
    let run: ProgramRun;
    let applied: Run;
    // The key's body: what must never show up outside the key file.
    const keyBody = () => sshKey.split("\n")[2];

    beforeAll(async () => {
      const config = {
        ...BASE_CONFIG,
        "agent-host:agentCount": "2",
        "agent-host:repository": ssh(),
        "agent-host:gitCredentials": sshKey.trimEnd(),
        "agent-host:gitUserName": "Agent Host Test",
        "agent-host:gitUserEmail": "agents@example.test",
      };
      h = new Host("b", config);
      await h.startServer();
      run = await runProgram(config, { secretKeys: ["agent-host:gitCredentials"] });
      const { command, stdin } = stdinOf(run);
      applied = await h.apply(command, stdin, [keyBody()]);
    });

    test("the key is in secret values only", () => {
      expectOnlyInSecrets(run, keyBody());
      expect(stdinOf(run).stdinSecret).toBe(true);
      const vm = unwrap(one(run, "gcp:compute/instance:Instance").inputs) as Record<string, any>;
      expect(vm.metadata["user-data"]).not.toContain(keyBody());
      expect(cloudInitUserData(vm.metadata)).not.toContain(keyBody());
    });

    test("apply: the token and gh's login are gone, the key is the agent's only, 0600", () => {
      expect(applied.stderr).toContain("removed the agents' git token");
      expect(applied.code).toBe(0);
      expect(fs.existsSync(path.join(agentHome, ".config/git/agent-host-credentials"))).toBe(false);
      expect(
        asUser(AGENT, ["git", "config", "--global", "--get-regexp", "^credential\\."]).stdout,
      ).toBe("");
      expect(ghCalls().slice(-2)).toEqual([
        `${agentName(1)}|auth logout --hostname 127.0.0.1:${httpsPort}|${sha256("")}`,
        `${agentName(2)}|auth logout --hostname 127.0.0.1:${httpsPort}|${sha256("")}`,
      ]);
      const keyFile = path.join(agentHome, ".ssh/agent-host-git");
      const st = fs.statSync(keyFile);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.uid).toBe(Number(ids(AGENT).uid));
      expect(fs.readFileSync(keyFile, "utf8")).toBe(sshKey);
      const stolen = asUser(OTHER, ["cat", keyFile]);
      expect(stolen.status).not.toBe(0);
      expect(stolen.stderr).toContain("Permission denied");
      expect(git(AGENT, agentHome, ["config", "--global", "--get", "core.sshCommand"])).toBe(
        `ssh -i ${keyFile} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new`,
      );
      expect(applied.argvLeaks).toEqual([]);
      expect(applied.stderr).not.toContain(keyBody());
      // Only each agent's own key file holds it (the homes are under the host's root).
      expect(filesContaining(h.root, keyBody()).sort()).toEqual(
        [1, 2].map((n) => path.join(agentHomes(), agentName(n), ".ssh/agent-host-git")),
      );
      expect(filesContaining(agentHome, keyBody())).toEqual([keyFile]);
    });

    test("checkouts over SSH on their own branches, and an agent's commit is pushed with the key", () => {
      for (const n of [1, 2]) {
        const ws = h.ws(`agent-${n}`);
        expect(git(agentName(n), ws, ["symbolic-ref", "--short", "HEAD"])).toBe(`agent-${n}`);
        expect(git(agentName(n), ws, ["rev-parse", "HEAD"])).toBe(sshMain);
      }
      const ws = h.ws("agent-2");
      git(agentName(2), ws, ["commit", "--quiet", "--allow-empty", "-m", "agent 2 over ssh"]);
      const sha = git(agentName(2), ws, ["rev-parse", "HEAD"]);
      const push = asUser(agentName(2), ["git", "push", "--quiet"], ws);
      expect(push.status).toBe(0);
      expect(serverRef(sshRepo, "refs/heads/agent-2")).toBe(sha);
      const row = h.status().find((r) => r.name === "agent-2");
      expect(row).toMatchObject({ branch: "agent-2", unsaved: false, unpushed_commits: 0 });
    });
  });
});
