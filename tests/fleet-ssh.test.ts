// Issue 5's proof that runs for real: the fleet's remote.Command, exactly as the mocked program
// registers it (command string and stdin), executed through a real ssh client with the deploy key
// against a real sshd on 127.0.0.1 (Debian's openssh-server, its own config and host key), as a
// dedicated user with sudo. apply then installs the host files under AGENT_HOST_ROOT and
// reconciles agents on a real tmux server with the stand-in claude of tests/fixtures/. Runs: 10
// agents, 10 → 12 (timed), a changed host script, and a failed first boot (a `cloud-init` stand-in
// that reports an error). Every wait has a deadline.
//
// What differs from the VM, and why: the test logs in as its own user (ADMIN below) rather than
// agent-admin, at 127.0.0.1 rather than the static address, and host.conf.local points agentctl
// at paths under the prefix. sshd's SetEnv (kept by sudo's env_keep) carries AGENT_HOST_ROOT and
// the prefixed agent-wrapper and tmux.conf paths, because agentctl's defaults for those two are
// the VM's absolute paths, which apply does not prefix. The command string names the VM's
// /usr/local/lib/agent-host/apply: sshd runs in its own mount namespace where the prefix's
// usr/local/lib is bound there. No systemd is PID 1 here, so agentctl starts the tmux server
// itself (apply skips systemctl).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as files from "../cloud-init/files";
import { HOST_FILES } from "../cloud-init/files";
import { ADMIN_USER_NAME } from "../cloud-init/host-config";
import { APPLY_PATH } from "../components/agent-fleet";
import { DEFAULT_CLAUDE_CODE_VERSION } from "../config";
import {
  BASE_CONFIG,
  MOCK_INSTANCE_ID,
  MOCK_IP,
  one,
  runProgram,
  unwrap,
  type ProgramRun,
  type RecordedResource,
} from "./harness";
import { unavailableSuite } from "./real-suite";
import { ExecTrace, secretExposures, underProgram, type Exec } from "./fixtures/exec-trace";
import { writeClaudeStandin, writeSiteConf } from "./fixtures/host-tree";
import { LoopbackSshd, SSHD_TOOLS, sshKeygen } from "./fixtures/sshd";
import {
  alive,
  filesContaining,
  freePort,
  removeTestAgents,
  standinRecords,
  waitFor,
} from "./support";

const REPO = path.resolve(__dirname, "..");
const CLOUD_INIT_STANDIN = path.join(REPO, "tests/fixtures/cloud-init");
// Per run, so two runs of this file at once (several sessions share this machine) never remove
// each other's users or sudo rule.
const ADMIN = `fleet-admin-${process.pid}`;
/** The agents' user prefix: the product makes fleet-agent-N (uid 61600+N); removed after. */
const AGENT = "fleet-agent";
const UID_BASE = 61600;
const SUDOERS = `/etc/sudoers.d/agent-host-fleet-ssh-${process.pid}`;
const API_KEY_CANARY = `sk-ant-api03-FLEETCANARY${process.pid}x${Date.now()}`;
/** The key a rotation (pulumi config set --secret anthropicApiKey) puts in its place. */
const ROTATED_KEY_CANARY = `sk-ant-api03-FLEETROTATED${process.pid}x${Date.now()}`;
/** A real release after the pinned one (npm view @anthropic-ai/claude-code versions). */
const NEXT_CLAUDE_CODE_VERSION = "2.1.332";
const WEBHOOK_CANARY = `https://ntfy.sh/FLEETHOOK${process.pid}x${Date.now()}`;
const CHANGED_MARK = "# changed by tests/fleet-ssh.test.ts\n";
const SSH_TIMEOUT_MS = 120_000;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const TOOLS = [...SSHD_TOOLS, "tmux", "setpriv", "flock"];
const haveTools = TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `fleet-ssh tests skipped: they need root (users, sudoers, sshd) and ${TOOLS.join(", ")} (apt-get install openssh-server openssh-client sudo tmux)`,
      );

interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Every exec while the command ran, and after it, until the trace stopped (strace). */
  execs: Exec[];
}
interface Row {
  name: string;
  state: string;
  pid: number | null;
}
interface StandinRecord {
  pid: number;
  uid: number;
  cwd: string;
  argv: string[];
  env: string[];
}

// Everything the test creates lives under BASE (root-owned 0755 under /var/lib, so sshd's
// StrictModes accepts the authorized_keys path under it; /tmp is world-writable and would not).
let BASE = "";
let ROOT = "";
const p = {
  conf: () => path.join(ROOT, "etc/agent-host/host.conf"),
  confLocal: () => path.join(ROOT, "etc/agent-host/host.conf.local"),
  keyFile: () => path.join(ROOT, "etc/agent-host/secrets/anthropic-api-key"),
  webhookFile: () => path.join(ROOT, "etc/agent-host/secrets/notify-webhook-url"),
  agentctl: () => path.join(ROOT, "usr/local/bin/agentctl"),
  wrapper: () => path.join(ROOT, "usr/local/lib/agent-host/agent-wrapper"),
  tmuxConf: () => path.join(ROOT, "etc/agent-host/tmux.conf"),
  claudeBin: () => path.join(ROOT, "usr/local/bin/claude"),
  ws: () => path.join(ROOT, "workspaces"),
  homes: () => path.join(ROOT, "data/home"),
  run: () => path.join(ROOT, "run/agent-host"),
  sock: () => path.join(ROOT, "run/agent-host/tmux.sock"),
  adminKeys: () => path.join(ROOT, "home", ADMIN, ".ssh/authorized_keys"),
  cloudInitDir: () => path.join(ROOT, "run/cloud-init"),
  cloudInitLog: () => path.join(ROOT, "var/log/cloud-init-output.log"),
};

let sshd: LoopbackSshd | undefined;
let sshdPort = 0;
let knownHosts = "";
let deployKey = { privateKey: "", publicKey: "" };
const createdUsers: string[] = [];

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

function ensureUser(name: string): void {
  if (spawnSync("id", ["-u", name]).status === 0) return;
  sh("useradd", ["--create-home", "--shell", "/bin/bash", name]);
  createdUsers.push(name);
}

function uidOf(user: string): number {
  return Number(sh("id", ["-u", user]).trim());
}

function agentNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `agent-${i + 1}`);
}

function tmux(args: string[]): string {
  return sh("tmux", ["-S", p.sock(), ...args]);
}

/** name → "pane pid|start command" of every window in the session. */
function panes(): Map<string, { pid: number; command: string }> {
  const out = tmux([
    "list-windows",
    "-t",
    "=agents",
    "-F",
    "#{window_name}|#{pane_pid}|#{pane_start_command}",
  ]);
  const names = out.trim().split("\n");
  const map = new Map(
    names.map((l) => {
      const [name, pid, ...command] = l.split("|");
      return [name, { pid: Number(pid), command: command.join("|") }];
    }),
  );
  expect(map.size).toBe(names.length);
  return map;
}

function expectExactWindows(n: number): Map<string, { pid: number; command: string }> {
  const all = panes();
  expect([...all.keys()].sort()).toEqual(["control", ...agentNames(n)].sort());
  for (const name of agentNames(n)) {
    // The window runs the wrapper apply installed under the prefix, not some other copy.
    expect(all.get(name)?.command).toContain(`${p.wrapper()} ${name.slice("agent-".length)} `);
  }
  return all;
}

interface HostHealth {
  healthy: boolean;
  problems: { level: string; kind: string; message: string }[];
}

/** `agentctl status --json`: exit 0 on a healthy host, 3 when the host reports an error. */
function statusOf(): { code: number | null; host: HostHealth; agents: Row[] } {
  const r = spawnSync(p.agentctl(), ["status", "--json"], {
    // As the SSH login gets it (sshd's SetEnv below): the host files under the prefix.
    env: { ...process.env, AGENTCTL_CONFIG: p.conf(), AGENT_HOST_ROOT: ROOT },
    encoding: "utf8",
    timeout: 30_000,
  });
  expect([0, 3]).toContain(r.status);
  const parsed = JSON.parse(r.stdout) as { host: HostHealth; agents: Row[] };
  expect(r.status === 0).toBe(parsed.host.healthy);
  return { code: r.status, ...parsed };
}

function status(): Row[] {
  return statusOf().agents;
}

/** Waits until agent-1..n all run a claude; returns name → claude pid. */
async function allRunning(n: number): Promise<Map<string, number>> {
  return waitFor(`agent-1..${n} running`, () => {
    const rows = status().filter((r) => agentNames(n).includes(r.name));
    if (rows.length !== n || rows.some((r) => r.state !== "running" || !r.pid)) return undefined;
    return new Map(rows.map((r) => [r.name, r.pid as number]));
  });
}

/**
 * Whether `agent`'s process `pid` is past its exec of CLAUDE_BIN. The wrapper records the pid
 * before its child passes through setpriv to exec claude, so "running" with that pid can come a
 * moment before the exec: a trace stopped then holds setpriv (the key in its environment, on its
 * way to claude) and not the exec that makes it the agent's own. The stand-in writes its record
 * once it runs; the real binary (after a version change) is the pid's executable.
 */
function runsClaude(agent: string, pid: number): boolean {
  if (records(agent).some((r) => r.pid === pid)) return true;
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === fs.realpathSync(p.claudeBin());
  } catch {
    return false;
  }
}

/** agent-1..n running, each pid other than `old`'s for its agent, and each past its exec of claude. */
function claudesStarted(n: number, old = new Map<string, number>(), ms?: number): Promise<unknown> {
  return waitFor(
    `agent-1..${n} each running a new claude`,
    () => {
      const rows = status().filter((row) => agentNames(n).includes(row.name));
      return (
        rows.length === n &&
        rows.every(
          (row) =>
            row.state === "running" &&
            row.pid &&
            row.pid !== old.get(row.name) &&
            runsClaude(row.name, row.pid),
        )
      );
    },
    ms,
  );
}

/** The conversation `agent` (agent-N) runs, as its own user's state folder records it. */
function sessionIdOf(agent: string): string {
  const home = path.join(p.homes(), `${AGENT}-${agent.replace("agent-", "")}`);
  return fs.readFileSync(path.join(home, ".agent-host", "session-id"), "utf8").trim();
}

function records(agent: string): StandinRecord[] {
  // agent-N's state is in its own home (issue 20): HOMES/fleet-agent-N/.agent-host.
  return standinRecords<StandinRecord>(
    path.join(p.homes(), `${AGENT}-${agent.replace(/^.*-/, "")}`, ".agent-host"),
  );
}

/**
 * The stand-in's record of the claude process `pid`. A claude counts as running once its process
 * exists; the stand-in writes its record a moment later (on a loaded machine, after the test
 * looked): wait for it.
 */
function recordOf(agent: string, pid: number): Promise<StandinRecord> {
  return waitFor(`${agent}'s stand-in record for pid ${pid}`, () =>
    records(agent).find((r) => r.pid === pid),
  );
}

/** The remote.Command the program registered, with the values it carries. */
function reconcileCommand(run: ProgramRun): {
  resource: RecordedResource;
  create: string;
  stdin: string;
  privateKey: string;
} {
  const resource = one(run, "command:remote:Command");
  const inputs = unwrap(resource.inputs) as Record<string, any>;
  expect(inputs.update).toBe(inputs.create);
  expect(inputs.connection.user).toBe(ADMIN_USER_NAME);
  expect(inputs.connection.host).toBe(MOCK_IP);
  return {
    resource,
    create: inputs.create,
    stdin: inputs.stdin,
    privateKey: inputs.connection.privateKey,
  };
}

/** The bundle's lines, decoded: host files, host.conf, the admin keys, the API key. */
function decodeBundle(stdin: string): {
  files: { path: string; mode: string; content: string }[];
  conf: string;
  keys: string;
} {
  const lines = stdin.trimEnd().split("\n");
  const b64 = (s: string): string => Buffer.from(s, "base64").toString("utf8");
  const field = (kind: string): string => {
    const found = lines.filter((l) => l.startsWith(`${kind} `));
    expect(found).toHaveLength(1);
    return found[0].slice(kind.length + 1);
  };
  return {
    files: lines
      .filter((l) => l.startsWith("file "))
      .map((l) => {
        const [, file, mode, data] = l.split(" ");
        return { path: file, mode, content: b64(data) };
      }),
    conf: b64(field("conf")),
    keys: b64(field("keys")),
  };
}

/** The canary as it would show in an argv or environment: raw, or base64 as the bundle carries it. */
const KEY_FORMS = [API_KEY_CANARY, Buffer.from(API_KEY_CANARY).toString("base64")];
/** The agent's own claude: CLAUDE_BIN as the wrapper starts it, and everything it starts. */
const agentsOwn = underProgram(() => p.claudeBin());
/** Both keys, after the rotation. */
const KEY_FORMS_ROTATED = [API_KEY_CANARY, ROTATED_KEY_CANARY].flatMap((k) => [
  k,
  Buffer.from(k).toString("base64"),
]);

/**
 * Traces every exec under sshd (each login, sudo, apply, agentctl, the tmux server it starts) and
 * under the tmux server when one already runs (the windows it opens, the wrappers, the claudes).
 */
async function traceExecs(): Promise<ExecTrace> {
  const pids = [sshd?.pid as number];
  if (fs.existsSync(p.sock())) {
    const server = spawnSync("tmux", ["-S", p.sock(), "display-message", "-p", "#{pid}"], {
      encoding: "utf8",
    });
    if (server.status === 0) pids.push(Number(server.stdout.trim()));
  }
  return ExecTrace.attach(pids, path.join(BASE, `execs-${Date.now()}.strace`));
}

/** Runs the resource's exact command string with its exact stdin over ssh, as the deploy key. */
interface SshOptions {
  /** Another command string than the resource's. */
  command?: string;
  /**
   * Awaited after ssh ends and before the trace stops, so the trace also covers what the run
   * started and has not finished starting (the agents' claudes).
   */
  settle?: () => Promise<unknown>;
  timeoutMs?: number;
}

function sshRun(run: ProgramRun, opts: SshOptions = {}): Promise<SshResult> {
  const { stdin, privateKey } = reconcileCommand(run);
  const create = opts.command ?? reconcileCommand(run).create;
  const keyFile = path.join(BASE, "ssh", "deploy-key-from-resource");
  fs.writeFileSync(keyFile, privateKey, { mode: 0o600 });
  const tracing = traceExecs();
  return tracing.then(
    (trace) =>
      new Promise((resolve, reject) => {
        const t0 = process.hrtime.bigint();
        const child = spawn(
          "ssh",
          [
            "-F",
            "/dev/null",
            "-i",
            keyFile,
            "-p",
            String(sshdPort),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
            "-o",
            "ConnectTimeout=10",
            `${ADMIN}@127.0.0.1`,
            create,
          ],
          { stdio: ["pipe", "pipe", "pipe"] },
        );
        let stdout = "";
        let stderr = "";
        const killer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? SSH_TIMEOUT_MS);
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("error", reject);
        child.on("close", (code) => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          clearTimeout(killer);
          // The trace stops whether or not the run settles (a trace left attached would refuse
          // the next one's attach).
          Promise.resolve(code === 0 ? opts.settle?.() : undefined)
            .then(
              () => trace.stop(),
              (e: unknown) => trace.stop().then(() => Promise.reject(e)),
            )
            .then((execs) => resolve({ code, stdout, stderr, ms, execs }), reject);
        });
        child.stdin.end(stdin);
      }),
  );
}

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

/** Every host file, host.conf and the admin keys are on disk exactly as the bundle carries them. */
function expectInstalled(run: ProgramRun): void {
  const bundle = decodeBundle(reconcileCommand(run).stdin);
  expect(bundle.files.map((f) => f.path).sort()).toEqual(HOST_FILES.map((f) => f.path).sort());
  for (const f of bundle.files) {
    const dest = path.join(ROOT, f.path);
    expect({ path: f.path, content: fs.readFileSync(dest, "utf8") }).toEqual({
      path: f.path,
      content: f.content,
    });
    expect({ path: f.path, mode: mode(dest), uid: fs.statSync(dest).uid }).toEqual({
      path: f.path,
      mode: parseInt(f.mode, 8),
      uid: 0,
    });
  }
  const local = fs.readFileSync(p.confLocal(), "utf8");
  expect(fs.readFileSync(p.conf(), "utf8")).toBe(
    `${bundle.conf}# --- appended from ${p.confLocal()} ---\n${local}`,
  );
  expect(mode(p.conf())).toBe(0o644);
  expect(bundle.keys).toBe(`${deployKey.publicKey}\n`);
  expect(fs.readFileSync(p.adminKeys(), "utf8")).toBe(bundle.keys);
  expect(mode(p.adminKeys())).toBe(0o600);
  expect(fs.statSync(p.adminKeys()).uid).toBe(uidOf(ADMIN));
}

/** Host files of the run's bundle that differ from what is installed now (content or mode). */
function pendingChanges(run: ProgramRun): string[] {
  return decodeBundle(reconcileCommand(run).stdin)
    .files.filter((f) => {
      const dest = path.join(ROOT, f.path);
      return (
        !fs.existsSync(dest) ||
        fs.readFileSync(dest, "utf8") !== f.content ||
        mode(dest) !== parseInt(f.mode, 8)
      );
    })
    .map((f) => f.path)
    .sort();
}

/** apply installed exactly the files that differed, and said so. */
function expectFileChangesReported(r: SshResult, pending: string[]): void {
  expect(r.stderr).toContain(
    `apply: host files: ${HOST_FILES.length} shipped, ${pending.length} changed\n`,
  );
  const updated = [...r.stderr.matchAll(/^apply: updated (\/\S+)$/gm)]
    .map((m) => m[1])
    .filter((f) => f !== "/etc/agent-host/host.conf");
  expect(updated.sort()).toEqual(pending);
}

/** The API key: root-only where the wrapper reads it, and nowhere else it should not be. */
function expectSecretKept(r: SshResult, run: ProgramRun): void {
  expect(fs.readFileSync(p.keyFile(), "utf8")).toBe(API_KEY_CANARY);
  expect({ mode: mode(p.keyFile()), uid: fs.statSync(p.keyFile()).uid }).toEqual({
    mode: 0o600,
    uid: 0,
  });
  expect(mode(path.dirname(p.keyFile()))).toBe(0o700);
  expect(r.stdout).not.toContain(API_KEY_CANARY);
  expect(r.stderr).not.toContain(API_KEY_CANARY);
  expect(reconcileCommand(run).create).not.toContain(API_KEY_CANARY);
  // Every exec the reconcile made: none holds the key in its argv, and only the agents' own
  // claude (and what it starts) in its environment. The trace saw the claudes start.
  expect(r.execs.some((e) => e.path === "/usr/bin/sudo")).toBe(true);
  expect(secretExposures(r.execs, KEY_FORMS, agentsOwn)).toEqual([]);
  expect(filesContaining(ROOT, API_KEY_CANARY, [p.keyFile()])).toEqual([]);
  // notifyWebhookUrl: the same way, root-only where the monitor reads it.
  expect(fs.readFileSync(p.webhookFile(), "utf8")).toBe(WEBHOOK_CANARY);
  expect({ mode: mode(p.webhookFile()), uid: fs.statSync(p.webhookFile()).uid }).toEqual({
    mode: 0o600,
    uid: 0,
  });
  expect(`${r.stdout}${r.stderr}${reconcileCommand(run).create}`).not.toContain(WEBHOOK_CANARY);
  expect(filesContaining(ROOT, WEBHOOK_CANARY, [p.webhookFile()])).toEqual([]);
}

/** Exit 0 and exactly this stdout; apply's stderr is in the message when not. */
function expectSummary(r: SshResult, stdout: string): void {
  expect({ code: r.code, stdout: r.stdout, stderr: r.code === 0 ? "" : r.stderr }).toEqual({
    code: 0,
    stdout,
    stderr: "",
  });
}

function summary(desired: number, added: string[], running = desired): string {
  return `${JSON.stringify({ desired, added, removed: [], restarted: [], running })}\n`;
}

function program(
  agentCount: number,
  apiKey = API_KEY_CANARY,
  extra: Record<string, string> = {},
): Promise<ProgramRun> {
  return runProgram(
    {
      ...BASE_CONFIG,
      "agent-host:agentCount": String(agentCount),
      "agent-host:anthropicApiKey": apiKey,
      "agent-host:notifyWebhookUrl": WEBHOOK_CANARY,
      ...extra,
    },
    {
      secretKeys: ["agent-host:anthropicApiKey", "agent-host:notifyWebhookUrl"],
      generatedPrivateKey: deployKey.privateKey,
      generatedPublicKey: deployKey.publicKey,
    },
  );
}

// ---------------------------------------------------------------------------------------------
// "Resources replaced by a count change", from the mocked 10- and 12-agent runs. The rule, per
// resource whose recorded inputs differ between the two runs, is the engine's for these types:
// - paths listed in the resource's ignoreChanges (as the SDK sent them) are not diffed at all;
// - command:remote:Command is replaced only when `triggers` differs (DESIGN.md: a triggers
//   change always replaces); a changed create/update/stdin/connection is an update (runs update);
// - gcp compute Instance is replaced when a diff touches name, zone, project, bootDisk,
//   networkInterfaces[].network or scheduling.provisioningModel/preemptible (DESIGN.md's
//   replacing fields); any other diff is an in-place update (allowStoppingForUpdate);
// - any other type with a diff counts as replaced: there is no rule for it here, so the
//   assertion fails rather than guesses.

type Change = "replace" | "update";

function leaves(value: unknown, prefix: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  if (value && typeof value === "object") {
    const entries = Array.isArray(value)
      ? value.map((v, i) => [String(i), v] as const)
      : Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(JSON.stringify(prefix), JSON.stringify(value));
    for (const [k, v] of entries) for (const [lp, lv] of leaves(v, [...prefix, k])) out.set(lp, lv);
  } else {
    out.set(JSON.stringify(prefix), JSON.stringify(value));
  }
  return out;
}

/** 'metadata["user-data"]' → ["metadata", "user-data"]. */
function ignorePath(spec: string): string[] {
  return [...spec.matchAll(/\["([^"]+)"\]|([^.[\]]+)/g)].map((m) => m[1] ?? m[2]);
}

const startsWith = (pathParts: string[], prefix: string[]): boolean =>
  prefix.every((part, i) => pathParts[i] === part);

function classify(type: string, changedPaths: string[][]): Change {
  // pulumi-command provider/pkg/provider/common/inputs.go: triggers replaces, for both kinds.
  if (type === "command:remote:Command" || type === "command:local:Command") {
    return changedPaths.some((c) => c[0] === "triggers") ? "replace" : "update";
  }
  if (type === "gcp:compute/instance:Instance") {
    const replacing = (c: string[]): boolean =>
      ["name", "zone", "project", "bootDisk"].includes(c[0]) ||
      (c[0] === "networkInterfaces" && c[2] === "network") ||
      (c[0] === "scheduling" && ["provisioningModel", "preemptible"].includes(c[1]));
    return changedPaths.some(replacing) ? "replace" : "update";
  }
  return "replace";
}

function planChanges(before: ProgramRun, after: ProgramRun): Record<string, Change> {
  const key = (r: RecordedResource): string => `${r.type}::${r.name}`;
  const left = new Map(before.resources.map((r) => [key(r), r]));
  const right = new Map(after.resources.map((r) => [key(r), r]));
  expect([...right.keys()].sort()).toEqual([...left.keys()].sort());
  const plan: Record<string, Change> = {};
  for (const [k, a] of left) {
    const b = right.get(k) as RecordedResource;
    const ignored = a.options.ignoreChanges.map(ignorePath);
    const la = leaves(unwrap(a.inputs));
    const lb = leaves(unwrap(b.inputs));
    const changed = [...new Set([...la.keys(), ...lb.keys()])]
      .filter((leaf) => la.get(leaf) !== lb.get(leaf))
      .map((leaf) => JSON.parse(leaf) as string[])
      .filter((c) => !ignored.some((ig) => startsWith(c, ig)));
    if (changed.length > 0) plan[k] = classify(a.type, changed);
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------

suite("the fleet's reconcile command over a real sshd on 127.0.0.1", () => {
  jest.setTimeout(180_000);
  const runs: Record<string, ProgramRun> = {};

  beforeAll(async () => {
    BASE = fs.mkdtempSync("/var/lib/agent-host-fleet-ssh-");
    fs.chmodSync(BASE, 0o755);
    ROOT = path.join(BASE, "root");
    const bin = path.join(BASE, "bin");
    fs.mkdirSync(ROOT, { mode: 0o755 });

    ensureUser(ADMIN);
    removeTestAgents(AGENT, UID_BASE);
    sshdPort = await freePort();
    // sshd's SetEnv (kept by sudo): agentctl's defaults for the wrapper and tmux.conf are the
    // VM's absolute paths, which apply does not prefix.
    sshd = new LoopbackSshd({
      base: BASE,
      root: ROOT,
      admin: ADMIN,
      address: "127.0.0.1",
      port: sshdPort,
      setEnv: {
        AGENT_HOST_ROOT: ROOT,
        AGENT_WRAPPER: p.wrapper(),
        AGENTCTL_TMUX_CONF: p.tmuxConf(),
        CLAUDE_NPM_PREFIX: path.join(ROOT, "usr/local"),
      },
      path: [bin],
      sudoers: SUDOERS,
      by: "tests/fleet-ssh.test.ts",
    });
    const sshDir = sshd.sshDir;
    sshKeygen(`${sshDir}/deploy`, "deploy");
    deployKey = {
      privateKey: fs.readFileSync(`${sshDir}/deploy`, "utf8"),
      publicKey: fs.readFileSync(`${sshDir}/deploy.pub`, "utf8").trim(),
    };

    // Site overrides apply appends to host.conf: the test's users and paths, short delays.
    writeSiteConf(p.confLocal(), "tests/fleet-ssh.test.ts", {
      AGENT_USER: AGENT,
      AGENT_UID_BASE: String(UID_BASE),
      AGENT_HOMES_DIR: p.homes(),
      ADMIN_USER: ADMIN,
      CLAUDE_BIN: p.claudeBin(),
      WORKSPACES_DIR: p.ws(),
      STATE_DIR: path.join(ROOT, "data/home/agent/.agent-host"),
      RUN_DIR: p.run(),
      TMUX_SOCKET: p.sock(),
      API_KEY_FILE: p.keyFile(),
      START_STAGGER_SECONDS: "0.05",
      RESTART_BACKOFF_MIN_SECONDS: "1",
      RESTART_BACKOFF_MAX_SECONDS: "4",
      STOP_TIMEOUT_SECONDS: "5",
    });
    writeClaudeStandin(p.claudeBin(), bin, "tests/fleet-ssh.test.ts");
    fs.symlinkSync(CLOUD_INIT_STANDIN, path.join(bin, "cloud-init"));
    // Harness only: this machine reaches the npm registry through a TLS-inspecting proxy whose CA
    // the machine's global npmrc names (cafile). install-claude-code's `npm install -g --prefix`
    // reads the global npmrc under that prefix instead, so the test's prefix gets the same file.
    if (fs.existsSync("/etc/npmrc")) {
      fs.mkdirSync(path.join(ROOT, "usr/local/etc"), { recursive: true, mode: 0o755 });
      fs.copyFileSync("/etc/npmrc", path.join(ROOT, "usr/local/etc/npmrc"));
    }
    await sshd.start(deployKey.publicKey);
    knownHosts = `${sshDir}/known_hosts`;
    fs.writeFileSync(knownHosts, sshd.knownHostsLine());
  });

  afterAll(async () => {
    const pids = fs.existsSync(p.homes())
      ? fs.readdirSync(p.homes()).flatMap((a) => records(a).map((r) => r.pid))
      : [];
    if (ROOT && fs.existsSync(p.sock())) spawnSync("tmux", ["-S", p.sock(), "kill-server"]);
    // The stand-ins die with their panes (SIGHUP); make sure, pid by pid, that none is left.
    await waitFor("stand-in claudes to exit", () => pids.every((x) => !alive(x)), 10_000).catch(
      () => {
        for (const x of pids.filter(alive)) {
          if (fs.readFileSync(`/proc/${x}/cmdline`, "utf8").includes("claude-standin"))
            process.kill(x, "SIGKILL");
        }
      },
    );
    await sshd?.stop();
    for (const user of createdUsers) spawnSync("userdel", ["--remove", user]);
    removeTestAgents(AGENT, UID_BASE);
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
  });

  test("10 agents: host files installed, windows reconciled, the summary is all stdout", async () => {
    runs.ten = await program(10);
    const { create } = reconcileCommand(runs.ten);
    expect(create).toMatch(
      new RegExp(
        `^sudo ${APPLY_PATH} --agents 10 --bundle-sha256 [0-9a-f]{64} --instance-id ${MOCK_INSTANCE_ID}$`,
      ),
    );
    // The deploy key the resource carries is the one sshd knows.
    expect(reconcileCommand(runs.ten).privateKey).toBe(deployKey.privateKey);

    // Every host file but apply, which cloud-init had already put there.
    const pending = pendingChanges(runs.ten);
    expect(pending).toEqual(
      HOST_FILES.map((f) => f.path)
        .filter((f) => f !== APPLY_PATH)
        .sort(),
    );
    const r = await sshRun(runs.ten, { settle: () => claudesStarted(10) });
    expectSummary(r, summary(10, agentNames(10)));
    expect(r.stderr).toContain("apply: cloud-init: done");
    expectFileChangesReported(r, pending);
    expect(r.stderr).toContain(
      `is already Claude Code ${DEFAULT_CLAUDE_CODE_VERSION}; nothing to do`,
    );
    expect(r.stderr).toContain("apply: stored a new API key (root-only, 0600)");
    expect(fs.readFileSync(path.join(p.cloudInitDir(), "stand-in-calls"), "utf8")).toBe(
      "status --wait\n",
    );
    expectInstalled(runs.ten);
    expectExactWindows(10);
    const running = await allRunning(10);
    // The trace saw each agent's claude start (so the check below looked at their execs too).
    const started = r.execs.filter((e) => e.path === p.claudeBin() && e.argv[1] !== "--version");
    const agents = new Set(
      started.map((e) => e.env.find((v) => v.startsWith("AGENT_HOST_AGENT="))),
    );
    expect(agents.size).toBe(10);
    for (const name of agentNames(10)) {
      const rec = await recordOf(name, running.get(name) as number);
      // Each agent its own user: uid UID_BASE + N.
      expect(rec.uid).toBe(UID_BASE + Number(name.replace("agent-", "")));
      expect(rec.cwd).toBe(path.join(p.ws(), name));
      expect(rec.env).toContain("ANTHROPIC_API_KEY");
    }
    expectSecretKept(r, runs.ten);
  });

  test("the exec trace catches a key held in an argv for a millisecond (what a ps sample misses)", async () => {
    // The regression it stands for: a script that passes the key as an argument
    // (`printf %s "$KEY" > file`, `curl -H "x-api-key: $KEY"`) to a process that ends at once.
    const r = await sshRun(runs.ten, { command: `sudo -n /bin/true ${API_KEY_CANARY}` });
    expect(r.code).toBe(0);
    const exposures = secretExposures(r.execs, KEY_FORMS, agentsOwn);
    expect(exposures).toEqual(
      expect.arrayContaining([expect.stringMatching(/ \/bin\/true: argv\[1\] holds a secret$/)]),
    );
  });

  // How many seconds is a printed figure (and npm run bench:agentctl), not an assertion.
  test("10 → 12: agent-11 and agent-12 added, the ten keep their processes", async () => {
    const before = await allRunning(10);
    const panesBefore = expectExactWindows(10);
    runs.twelve = await program(12);
    const pending = pendingChanges(runs.twelve);

    const r = await sshRun(runs.twelve, { settle: () => claudesStarted(12) });
    console.log(
      `10 → 12 reconcile over loopback SSH (ssh client start to exit): ${r.ms.toFixed(0)} ms`,
    );
    expectSummary(r, summary(12, ["agent-11", "agent-12"]));
    expectFileChangesReported(r, pending);
    expect(r.stderr).not.toContain("restarting every agent");
    expectInstalled(runs.twelve);
    expect(fs.readFileSync(p.conf(), "utf8")).toMatch(/^AGENT_COUNT=12$/m);
    const panesAfter = expectExactWindows(12);
    const after = await allRunning(12);
    for (const name of agentNames(10)) {
      expect({ name, claude: after.get(name), wrapper: panesAfter.get(name)?.pid }).toEqual({
        name,
        claude: before.get(name),
        wrapper: panesBefore.get(name)?.pid,
      });
    }
    expectSecretKept(r, runs.twelve);
  });

  test("a count change 10 → 12 replaces 0 resources: only the reconcile command (and its host key probe) is updated", () => {
    const plan = planChanges(runs.ten, runs.twelve);
    const replaced = Object.entries(plan).filter(([, c]) => c === "replace");
    console.log(
      `resources replaced by agentCount 10 → 12: ${replaced.length}; changes: ${JSON.stringify(plan)}`,
    );
    expect(plan).toEqual({
      "command:local:Command::agent-host-hostkey-probe": "update",
      "command:remote:Command::agent-host-reconcile": "update",
    });
    // The VM's user-data is the same bytes for 10 and 12 (nothing in it follows the count), and
    // the VM ignores nothing: a replacement boots from the current user-data.
    const userData = (run: ProgramRun): unknown =>
      (unwrap(one(run, "gcp:compute/instance:Instance").inputs) as Record<string, any>).metadata[
        "user-data"
      ];
    expect(userData(runs.twelve)).toEqual(userData(runs.ten));
    expect(one(runs.twelve, "gcp:compute/instance:Instance").options.ignoreChanges).toEqual([]);
    expect(replaced).toHaveLength(0);
    // The rule can see a replacement: a trigger on the command would be one.
    expect(classify("command:remote:Command", [["triggers", "0"]])).toBe("replace");
  });

  test("a changed host script is installed by the next run and runs it; agents untouched", async () => {
    const before = await allRunning(12);
    const original = files.readHostFiles;
    const spy = jest
      .spyOn(files, "readHostFiles")
      .mockImplementation((root?: string) =>
        original(root).map((f) =>
          f.source === "host/agentctl" ? { ...f, content: `${f.content}${CHANGED_MARK}` } : f,
        ),
      );
    try {
      runs.changed = await program(12);
    } finally {
      spy.mockRestore();
    }
    expect(reconcileCommand(runs.changed).create).not.toBe(reconcileCommand(runs.twelve).create);

    // Only agentctl, unless someone edits other host files in this checkout meanwhile.
    const pending = pendingChanges(runs.changed);
    expect(pending).toContain("/usr/local/bin/agentctl");
    const r = await sshRun(runs.changed);
    expectSummary(r, summary(12, []));
    expectFileChangesReported(r, pending);
    expect(fs.readFileSync(p.agentctl(), "utf8").endsWith(CHANGED_MARK)).toBe(true);
    expectInstalled(runs.changed);
    expectExactWindows(12);
    expect(await allRunning(12)).toEqual(before);
    expectSecretKept(r, runs.changed);
  });

  test("a failed first boot: non-zero exit, the tail of cloud-init-output.log on stderr, nothing changed", async () => {
    const before = await allRunning(12);
    const panesBefore = expectExactWindows(12);
    const confBefore = fs.readFileSync(p.conf(), "utf8");
    const logLines = Array.from(
      { length: 60 },
      (_, i) => `Cloud-init v. 22.4 stand-in output line ${String(i + 1).padStart(2, "0")}`,
    );
    logLines.push("E: Unable to locate package does-not-exist-anywhere");
    fs.mkdirSync(path.dirname(p.cloudInitLog()), { recursive: true });
    fs.writeFileSync(p.cloudInitLog(), `${logLines.join("\n")}\n`);
    fs.writeFileSync(path.join(p.cloudInitDir(), "stand-in-result"), "error\n");
    try {
      const r = await sshRun(await program(11));
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(
        `apply: cloud-init: boot provisioning FAILED (exit 1); last lines of ${p.cloudInitLog()}:\n${logLines.slice(-40).join("\n")}\n`,
      );
      expect(r.stderr).not.toContain(logLines[logLines.length - 41]);
      expect(r.stderr).toContain(
        "apply: error: the VM did not finish its first boot; fix the cause above, then run pulumi up again",
      );
      expect(r.stderr).not.toContain(API_KEY_CANARY);
      // It stopped before installing anything: the changed agentctl, 12 agents, same processes.
      expect(fs.readFileSync(p.conf(), "utf8")).toBe(confBefore);
      expectInstalled(runs.changed);
      const panesAfter = expectExactWindows(12);
      expect(await allRunning(12)).toEqual(before);
      for (const name of agentNames(12))
        expect(panesAfter.get(name)?.pid).toBe(panesBefore.get(name)?.pid);
    } finally {
      fs.rmSync(path.join(p.cloudInitDir(), "stand-in-result"), { force: true });
    }
  });
  // Day-2 paths the docs promise (docs/operations.md), after the runs above: 12 agents running.
  test("an API key rotation: stored root-only, every agent restarted with the new key, each on its own conversation", async () => {
    const before = await allRunning(12);
    const sessions = new Map(agentNames(12).map((n) => [n, sessionIdOf(n)]));
    const r = await sshRun(await program(12, ROTATED_KEY_CANARY));
    expect([r.code, r.stdout]).toEqual([0, summary(12, [])]);
    expect(r.stderr).toContain("apply: stored a new API key (root-only, 0600)");
    expect(r.stderr).toContain("restarting every agent (conversations resume)");
    expect(fs.readFileSync(p.keyFile(), "utf8")).toBe(ROTATED_KEY_CANARY);
    const after = await waitFor(
      "every agent on a new claude",
      () => {
        const rows = status().filter((x) => agentNames(12).includes(x.name));
        const fresh = rows.filter(
          (x) => x.state === "running" && x.pid && x.pid !== before.get(x.name),
        );
        return fresh.length === 12
          ? new Map(fresh.map((x) => [x.name, x.pid as number]))
          : undefined;
      },
      120_000,
    );
    for (const name of agentNames(12)) {
      const pid = after.get(name) as number;
      const rec = await recordOf(name, pid);
      // Its own conversation resumed, not a new one.
      expect({ name, argv: rec.argv.slice(-2) }).toEqual({
        name,
        argv: ["--resume", sessions.get(name)],
      });
      // The new key's effect: the agent's claude runs with it, and never with the old one.
      const environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      expect({ name, key: environ.find((v) => v.startsWith("ANTHROPIC_API_KEY=")) }).toEqual({
        name,
        key: `ANTHROPIC_API_KEY=${ROTATED_KEY_CANARY}`,
      });
    }
    // Neither key in any argv, nor in any environment but the agents' own claude.
    expect(secretExposures(r.execs, KEY_FORMS_ROTATED, agentsOwn)).toEqual([]);
    expect(`${r.stdout}${r.stderr}`).not.toContain(ROTATED_KEY_CANARY);
    expect(filesContaining(ROOT, ROTATED_KEY_CANARY, [p.keyFile()])).toEqual([]);
  });

  test("an extraPackages entry apt cannot install: a clear error naming it and the fix, every agent left running", async () => {
    const before = await allRunning(12);
    const missing = `agent-host-no-such-package-${process.pid}`;
    // Real apt-get on this machine: the package exists in no archive.
    const r = await sshRun(
      await program(12, ROTATED_KEY_CANARY, {
        "agent-host:extraPackages": JSON.stringify([missing]),
      }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`apply: installing extra packages: ${missing}`);
    expect(r.stderr).toContain(`E: Unable to locate package ${missing}`);
    expect(r.stderr).toContain(
      `apply: error: installing ${missing} failed (apt-get's output is above); fix extraPackages and run pulumi up again`,
    );
    expect(await allRunning(12)).toEqual(before);
    // Status says so first, and exits 3, until an apply succeeds.
    const after = statusOf();
    expect(after.code).toBe(3);
    expect(after.host.problems.map((problem) => problem.kind)).toContain("apply");
  }, 600_000);
  // Last: from here on the agents run the real binary, not the recording stand-in.
  test("a Claude Code version change: the new version installed by npm, every agent restarted on it with --resume of its own conversation", async () => {
    const before = await allRunning(12);
    const sessions = new Map(agentNames(12).map((n) => [n, sessionIdOf(n)]));
    // npm downloads the release's native binary (~200 MB): minutes on a loaded machine.
    const r = await sshRun(
      await program(12, ROTATED_KEY_CANARY, {
        "agent-host:claudeCodeVersion": NEXT_CLAUDE_CODE_VERSION,
      }),
      {
        timeoutMs: 480_000,
        // The restart is staggered: the trace must run until every agent runs a new claude, not
        // just until all twelve run one (the last may still be its old one).
        settle: () => claudesStarted(12, before, 120_000),
      },
    );
    // A failed install says why: the end of apply's log.
    if (r.code !== 0) throw new Error(`apply exited ${r.code}:\n${r.stderr.slice(-4000)}`);
    expect(r.stderr).toContain(
      `install-claude-code: installing @anthropic-ai/claude-code@${NEXT_CLAUDE_CODE_VERSION} with npm`,
    );
    expect(r.stderr).toContain("restarting every agent (conversations resume)");
    // CLAUDE_BIN now runs the new release (the real binary, from the npm registry).
    const version = spawnSync(p.claudeBin(), ["--version"], {
      encoding: "utf8",
      env: { PATH: "/usr/bin:/bin", HOME: "/tmp", DISABLE_AUTOUPDATER: "1" },
    });
    expect(version.stdout.trim()).toBe(`${NEXT_CLAUDE_CODE_VERSION} (Claude Code)`);
    const real = fs.realpathSync(p.claudeBin());
    expect(real.startsWith(path.join(ROOT, "usr/local/"))).toBe(true);
    // The trace saw each agent's wrapper start the new binary on its own conversation, after the
    // old claude was stopped.
    for (const name of agentNames(12)) {
      const starts = r.execs.filter(
        (e) =>
          fs.existsSync(e.path) && fs.realpathSync(e.path) === real && e.argv.includes("--resume"),
      );
      const mine = starts.filter((e) => e.argv.includes(sessions.get(name) as string));
      expect({ name, started: mine.length > 0 }).toEqual({ name, started: true });
      expect(alive(before.get(name) as number)).toBe(false);
    }
    expect(secretExposures(r.execs, KEY_FORMS_ROTATED, agentsOwn)).toEqual([]);
  }, 600_000);
});
