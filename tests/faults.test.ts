// Issue 23's fault suite: the host keeps its word under faults. A host sandbox under
// AGENT_HOST_ROOT is built and changed only by the product's own apply (cloud-init/host/apply,
// fed the bundle and the command line the mocked program's remote.Command carries: host.conf comes
// from the stack's renderer), with the test's paths as a site's host.conf.local. WORKSPACES_DIR is
// a small loop-mounted ext4 (no reserved blocks) that the full-disk case fills. The agents run the
// recording stand-in claude (tests/fixtures/claude) behind a CLAUDE_BIN that first draws Claude
// Code 2.1.331's input box (a `❯` line under the box's rule, as captured from the real binary:
// tests/fixtures/real-claude.ts atClaudePrompt): no managed hooks are installed here, so every
// hook event is lost, which is one of the faults.
//
// For each fault: the one line that names it and its fix, the exit status, and nothing lost or
// half-changed (running agents keep their pids; files as before). Run under the shared lock:
//   flock /tmp/agent-host-system.lock npx jest tests/faults.test.ts
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { APPLY_STEPS } from "../host/apply/journal";
import { BASE_CONFIG, one, runProgram, unwrap } from "./harness";
import { writeClaudeStandin, writeSiteConf } from "./fixtures/host-tree";
import { unavailableSuite } from "./real-suite";
import { filesContaining, poll, removeTestAgents } from "./support";

const REPO = path.resolve(__dirname, "..");
const APPLY = path.join(REPO, "cloud-init/host/apply");
const CLOUD_INIT_STANDIN = path.join(REPO, "tests/fixtures/cloud-init");
const ADMIN = `faults-admin-${process.pid}`;
/** The agents' user prefix: the product makes faults-agent-N (uid 61900+N); removed after. */
const AGENT = "faults-agent";
const UID_BASE = 61900;
const AGENT_1_UID = UID_BASE + 1;
const KEY = (tag: string) => `sk-ant-api03-FAULTS${tag}x${process.pid}x${"k".repeat(40)}`;
const WORK_PARENT = "/run/agent-host-apply";

const isRoot = process.getuid?.() === 0;
const TOOLS = ["tmux", "setpriv", "flock", "mkfs.ext4", "mount", "umount", "losetup", "useradd"];
const haveTools = TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
const suite =
  isRoot && haveTools ? describe : unavailableSuite(`faults: needs root and ${TOOLS.join(", ")}`);

interface Row {
  name: string;
  agent_state: string;
  state: string;
  pid: number | null;
  why: string;
}
interface Problem {
  level: string;
  kind: string;
  message: string;
}
interface Status {
  code: number | null;
  stdout: string;
  stderr: string;
  host: { healthy: boolean; problems: Problem[] };
  agents: Row[];
}
interface Ran {
  /** apply's pid: its work folder is apply.PID. */
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let BASE = "";
let ROOT = "";
let mounted = false;
const created: string[] = [];
const p = {
  conf: () => path.join(ROOT, "etc/agent-host/host.conf"),
  confLocal: () => path.join(ROOT, "etc/agent-host/host.conf.local"),
  keyFile: () => path.join(ROOT, "etc/agent-host/secrets/anthropic-api-key"),
  agentctl: () => path.join(ROOT, "usr/local/bin/agentctl"),
  lib: () => path.join(ROOT, "usr/local/lib/agent-host"),
  ws: () => path.join(ROOT, "workspaces"),
  homes: () => path.join(ROOT, "data/home"),
  /** Agent 1's state folder, in its own home (issue 20). */
  state1: () => path.join(ROOT, "data/home", `${AGENT}-1`, ".agent-host"),
  run: () => path.join(ROOT, "run/agent-host"),
  sock: () => path.join(ROOT, "run/agent-host/tmux.sock"),
  claudeBin: () => path.join(ROOT, "usr/local/bin/claude"),
  journal: () => path.join(ROOT, "var/lib/agent-host/apply.json"),
};

const env = (): NodeJS.ProcessEnv => ({
  ...process.env,
  PATH: `${path.join(BASE, "bin")}:${process.env.PATH ?? ""}`,
  AGENT_HOST_ROOT: ROOT,
  AGENTCTL_CONFIG: p.conf(),
  AGENT_WRAPPER: path.join(p.lib(), "agent-wrapper"),
  AGENTCTL_TMUX_CONF: path.join(ROOT, "etc/agent-host/tmux.conf"),
  TMUX: "",
});

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

/** The bundle and the arguments of the program's remote command for this config. */
async function deploy(agents: number, key: string): Promise<{ args: string[]; stdin: string }> {
  const run = await runProgram(
    { ...BASE_CONFIG, "agent-host:agentCount": String(agents), "agent-host:anthropicApiKey": key },
    { secretKeys: ["agent-host:anthropicApiKey"] },
  );
  const inputs = unwrap(one(run, "command:remote:Command").inputs) as {
    create: string;
    stdin: string;
  };
  // "sudo /usr/local/lib/agent-host/apply --agents N --bundle-sha256 SHA --instance-id ID"
  return { args: inputs.create.split(" ").slice(2), stdin: inputs.stdin };
}

/** Runs the product's apply as the remote command does, as the leader of its own process group. */
function apply(d: { args: string[]; stdin: string }, extra: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    // The repo keeps it 0644; the bundle installs it 0755 (cloud-init/files.ts).
    const child = spawn("bash", [APPLY, ...d.args], {
      env: { ...env(), ...extra },
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    // Bounded: the whole group (apply, Node, what they run), as a stuck deploy would be cut.
    const timer = setTimeout(() => process.kill(-(child.pid as number), "SIGKILL"), 120_000);
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    let ended = 0;
    let exited: [number | null, NodeJS.Signals | null] | undefined;
    const done = () => {
      if (!exited) return;
      clearTimeout(timer);
      resolve({ pid: child.pid as number, code: exited[0], signal: exited[1], stdout, stderr });
    };
    child.stdout.on("end", () => ++ended === 2 && done());
    child.stderr.on("end", () => ++ended === 2 && done());
    child.on("exit", (code, signal) => {
      exited = [code, signal];
      if (ended === 2) done();
      // A process apply started may hold its stderr open: its exit is what counts. Not a fixed
      // sleep: done() runs when both streams end, or 2 s after the exit at the latest.
      else setTimeout(done, 2000);
    });
    child.stdin.end(d.stdin);
  });
}

function status(): Status {
  const r = spawnSync(p.agentctl(), ["status", "--json"], {
    env: env(),
    encoding: "utf8",
    timeout: 60_000,
  });
  const parsed = JSON.parse(r.stdout || "{}") as Partial<Status>;
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    host: parsed.host!,
    agents: parsed.agents ?? [],
  };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `agent-${i + 1}`);

/** agent-1..n running (and no other agent listed); name → claude pid. */
async function running(n: number): Promise<Map<string, number>> {
  return poll(
    `agent-1..${n} running`,
    () => {
      const s = status();
      const rows = s.agents.filter((r) => /^agent-\d+$/.test(r.name));
      if (
        rows
          .map((r) => r.name)
          .sort()
          .join() !== names(n).sort().join()
      )
        return undefined;
      if (rows.some((r) => r.state !== "running" || !r.pid)) return undefined;
      return new Map(rows.map((r) => [r.name, r.pid as number]));
    },
    30_000,
  );
}

/** Every installed file of the sandbox with its content, to compare before and after a fault. */
function snapshotFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of ["etc/agent-host", "usr/local/lib/agent-host", "usr/local/bin"]) {
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const f = path.join(d, e.name);
        if (e.isDirectory()) walk(f);
        else if (e.isFile()) out.set(path.relative(ROOT, f), fs.readFileSync(f, "base64"));
      }
    };
    if (fs.existsSync(path.join(ROOT, dir))) walk(path.join(ROOT, dir));
  }
  return out;
}

/** Progress on stderr as it happens (jest holds console output until a test ends). */
const note = (line: string) =>
  process.stderr.write(`faults: ${new Date().toISOString()} ${line}\n`);

const errors = (s: Status) => s.host.problems.filter((x) => x.level === "error");

suite("faults: the host keeps its word (issue 23)", () => {
  jest.setTimeout(600_000);
  let key = KEY("base");

  beforeAll(async () => {
    note("building the sandbox");
    BASE = fs.mkdtempSync("/var/lib/agent-host-faults-");
    fs.chmodSync(BASE, 0o755);
    ROOT = path.join(BASE, "root");
    fs.mkdirSync(ROOT, { mode: 0o755 });
    removeTestAgents(AGENT, UID_BASE);
    for (const u of [ADMIN]) {
      sh("useradd", ["--create-home", "--shell", "/bin/bash", u]);
      created.push(u);
    }
    const bin = path.join(BASE, "bin");
    fs.mkdirSync(bin, { mode: 0o755 });
    fs.symlinkSync(CLOUD_INIT_STANDIN, path.join(bin, "cloud-init"));
    // WORKSPACES_DIR: a 160 MiB ext4 with no blocks reserved for root, so it fills for root too.
    const img = path.join(BASE, "workspaces.img");
    sh("truncate", ["-s", "160M", img]);
    // Few inodes: ext4 lets mkdir through on a disk whose blocks are all used (it draws on its
    // reserve), but not on one out of inodes, which a full disk of small files is.
    sh("mkfs.ext4", ["-q", "-F", "-m", "0", "-N", "64", img]);
    fs.mkdirSync(p.ws(), { recursive: true, mode: 0o755 });
    sh("mount", ["-o", "loop", img, p.ws()]);
    mounted = true;
    // The claude the agents run: draws the input box, then the recording stand-in.
    const rule = "─".repeat(60);
    writeClaudeStandin(p.claudeBin(), bin, "tests/faults.test.ts", [
      "# Claude Code's input box in the pane, as the real 2.1.331 draws it",
      `printf '%s\\n' '${rule}' '❯ ' '${rule}'`,
    ]);
    writeSiteConf(p.confLocal(), "tests/faults.test.ts", {
      AGENT_USER: AGENT,
      ADMIN_USER: ADMIN,
      CLAUDE_BIN: p.claudeBin(),
      WORKSPACES_DIR: p.ws(),
      DATA_MOUNT: p.ws(),
      AGENT_UID_BASE: String(UID_BASE),
      AGENT_HOMES_DIR: p.homes(),
      STATE_DIR: path.join(ROOT, "data/home/agent/.agent-host"),
      RUN_DIR: p.run(),
      TMUX_SOCKET: p.sock(),
      API_KEY_FILE: p.keyFile(),
      LOGIN_TOKEN_FILE: path.join(ROOT, "data/agent-host/claude-login-token"),
      NOTIFY_WEBHOOK_FILE: path.join(ROOT, "etc/agent-host/secrets/notify-webhook-url"),
      START_STAGGER_SECONDS: "0.05",
      RESTART_BACKOFF_MIN_SECONDS: "1",
      RESTART_BACKOFF_MAX_SECONDS: "4",
      STOP_TIMEOUT_SECONDS: "5",
    });
    note("rendering the program");
    const first = await deploy(2, key);
    note("the first apply");
    const r = await apply(first);
    note(`the first apply ended: ${r.code}`);
    if (r.code !== 0) throw new Error(`the first apply failed (${r.code}): ${r.stderr}`);
    await running(2);
    note("2 agents running");
  }, 180_000);

  afterAll(() => {
    if (ROOT && fs.existsSync(p.sock())) spawnSync("tmux", ["-S", p.sock(), "kill-server"]);
    removeTestAgents(AGENT, UID_BASE);
    if (mounted) spawnSync("umount", ["-l", p.ws()]);
    for (const u of created) spawnSync("userdel", ["--remove", u]);
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
  });

  test("a healthy host: status says so first, exit 0", () => {
    const s = status();
    expect([s.code, s.host]).toEqual([0, { healthy: true, problems: [] }]);
    const table = spawnSync(p.agentctl(), ["status"], { env: env(), encoding: "utf8" });
    expect(table.stdout.split("\n")[0]).toBe("HOST  healthy");
  });

  test("a bad value in host.conf: status exit 3 naming key, value and fix; agents untouched", async () => {
    const before = await running(2);
    const good = fs.readFileSync(p.conf(), "utf8");
    fs.appendFileSync(p.conf(), "AGENT_COUNT=lots\n");
    try {
      const s = status();
      expect(s.code).toBe(3);
      expect(errors(s)).toEqual([
        {
          level: "error",
          kind: "conf",
          message: `AGENT_COUNT=lots in ${p.conf()} is not a whole number from 1 to 999999; fix the config`,
        },
      ]);
      expect(new Map(s.agents.map((r) => [r.name, r.pid]))).toEqual(before);
      const table = spawnSync(p.agentctl(), ["status"], { env: env(), encoding: "utf8" });
      expect(table.status).toBe(3);
      expect(table.stdout.split("\n").slice(0, 2)).toEqual([
        "HOST  UNHEALTHY: 1 error",
        `  error: AGENT_COUNT=lots in ${p.conf()} is not a whole number from 1 to 999999; fix the config`,
      ]);
      // A command that would act on it refuses, in one line, exit 2.
      const rec = spawnSync(p.agentctl(), ["reconcile"], { env: env(), encoding: "utf8" });
      expect([rec.status, rec.stderr]).toEqual([
        2,
        `agentctl: AGENT_COUNT=lots in ${p.conf()} is not a whole number from 1 to 999999; fix the config\n`,
      ]);
    } finally {
      fs.writeFileSync(p.conf(), good);
    }
    expect(await running(2)).toEqual(before);
  });

  test("a bad host.conf.local stops apply before anything changes: exit 2, one line", async () => {
    const before = await running(2);
    const files = snapshotFiles();
    const local = fs.readFileSync(p.confLocal(), "utf8");
    fs.appendFileSync(p.confLocal(), "PERMISSION_MODE=yolo\n");
    let r: Ran;
    try {
      r = await apply(await deploy(2, key));
    } finally {
      fs.writeFileSync(p.confLocal(), local);
    }
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n").filter((l) => l.includes("PERMISSION_MODE"))).toEqual([
      `apply: PERMISSION_MODE=yolo in ${p.conf()} is not a Claude Code permission mode; use one of: default auto manual acceptEdits plan dontAsk bypassPermissions`,
    ]);
    // The host files were installed (step 1, the same bytes as before): nothing else changed.
    expect(snapshotFiles()).toEqual(files);
    expect(await running(2)).toEqual(before);
    // Status tells, until the next good apply.
    const s = status();
    expect(s.code).toBe(3);
    expect(errors(s).map((x) => x.kind)).toEqual(["apply"]);
    expect(errors(s)[0].message).toContain("PERMISSION_MODE=yolo");
    expect((await apply(await deploy(2, key))).code).toBe(0);
    expect(status().code).toBe(0);
  });

  test("no host.conf: status exit 3, 'no host config', agents untouched", async () => {
    const before = await running(2);
    fs.renameSync(p.conf(), `${p.conf()}.away`);
    try {
      const s = status();
      expect(s.code).toBe(3);
      expect(errors(s)).toEqual([
        {
          level: "error",
          kind: "conf",
          message: `no host config at ${p.conf()}: every agent runs on defaults; run 'pulumi up' to install it`,
        },
      ]);
    } finally {
      fs.renameSync(`${p.conf()}.away`, p.conf());
    }
    expect(await running(2)).toEqual(before);
  });

  test("run as a non-root user: one line saying it needs sudo and who may, exit 2", () => {
    const uid = AGENT_1_UID;
    const r = spawnSync(
      "setpriv",
      [`--reuid=${uid}`, `--regid=${uid}`, "--init-groups", p.agentctl(), "status"],
      { env: env(), encoding: "utf8", cwd: "/" },
    );
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      new RegExp(
        `^agentctl: status needs root \\(it reads every agent's files and drives their tmux server\\): run 'sudo agentctl status' as ${ADMIN}( or a member of group sudo \\([^)]*\\))?\\n$`,
      ),
    );
  });

  test("a state folder the recorder cannot write: the hook ends at once with one line; status tells", () => {
    const dir = p.state1();
    const st = fs.statSync(dir);
    const uid = AGENT_1_UID;
    fs.chownSync(dir, 0, 0);
    fs.chmodSync(dir, 0o755);
    try {
      const t0 = Date.now();
      const r = spawnSync(
        "setpriv",
        [
          `--reuid=${uid}`,
          `--regid=${uid}`,
          "--init-groups",
          "node",
          path.join(p.lib(), "agent-host.js"),
          "hook",
        ],
        {
          env: { PATH: process.env.PATH, AGENT_HOST_STATE_DIR: dir },
          input: JSON.stringify({ hook_event_name: "SessionStart", source: "startup" }),
          encoding: "utf8",
          timeout: 10_000,
          cwd: "/",
        },
      );
      const ms = Date.now() - t0;
      console.log(`faults: the hook in an unwritable state folder ended after ${ms} ms`);
      // The old withLock spun here until killed (the timeout's SIGTERM).
      expect([r.signal, r.status]).toEqual([null, 0]);
      expect(r.stderr).toBe(
        `agent-host hook: cannot record in ${dir}: EACCES (permission denied, open '${dir}/status.lock'); the folder must belong to the agent's user (uid ${uid}): chown it, or run 'sudo agentctl restart N' to have the wrapper make it again\n`,
      );
      const s = status();
      expect(s.code).toBe(3);
      expect(errors(s).map((x) => x.message)).toEqual([
        `agent-1's state folder ${dir} is not writable by its user (owner uid 0, mode 0755): its hooks record nothing; run 'sudo agentctl restart 1' (the wrapper makes it the agent's again)`,
      ]);
    } finally {
      fs.chownSync(dir, st.uid, st.gid);
      fs.chmodSync(dir, st.mode & 0o7777);
    }
    expect(status().code).toBe(0);
  });

  test("every hook event lost: an agent at its prompt is idle, and status says the hooks missed it", async () => {
    // No managed hooks here: claude started, drew its prompt, and nothing was recorded.
    const rows = await poll(
      "the lost hooks noticed",
      () => {
        const s = status();
        return s.agents.every((r) => r.agent_state === "idle") ? s.agents : undefined;
      },
      30_000,
    );
    for (const r of rows)
      expect(r.why).toBe(
        "at its prompt; its hooks recorded nothing since it started (a hook event was lost)",
      );
  });

  test("a full disk during scale-up: no phantom agent, the desired count kept, the cause named; then it heals", async () => {
    const before = await running(2);
    const fill = path.join(p.ws(), "fill");
    fs.mkdirSync(fill);
    spawnSync("dd", ["if=/dev/zero", `of=${fill}/big`, "bs=1M"], { stdio: "ignore" });
    spawnSync("dd", ["if=/dev/zero", `of=${fill}/rest`, "bs=4k"], { stdio: "ignore" });
    // Every inode left, in a bounded loop: a file each until the disk refuses.
    for (let i = 0; i < 100_000; i++) {
      try {
        fs.writeFileSync(path.join(fill, `f${i}`), "");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
        throw error;
      }
    }
    let r: Ran;
    try {
      r = await apply(await deploy(3, key));
      // apply's own words in the failure message when it does not fail.
      expect([r.code, r.code === 1 ? "" : r.stderr]).toEqual([1, ""]);
      expect(r.stdout).toBe(
        `${JSON.stringify({ desired: 2, added: [], removed: [], restarted: [], running: 2 })}\n`,
      );
      const ws3 = path.join(p.ws(), "agent-3");
      const line = `agentctl: reconcile 3: agent-3 did not start: ENOSPC: no space left on device, mkdir '${ws3}': the disk of ${p.ws()} is full; free space there (df -h ${p.ws()}), then run 'agentctl reconcile 3'`;
      expect(r.stderr.split("\n")).toContain(line);
      expect(r.stderr).toContain("apply: error: agentctl reconcile 3 failed (exit 1");
      expect(fs.readFileSync(path.join(p.run(), "desired"), "utf8")).toBe("2\n");
      const s = status();
      expect(s.code).toBe(3);
      expect(s.agents.map((x) => x.name)).toEqual(names(2));
      expect(new Map(s.agents.map((x) => [x.name, x.pid]))).toEqual(before);
      expect(
        errors(s)
          .map((x) => x.kind)
          .sort(),
      ).toEqual(["apply", "disk", "reconcile"]);
      expect(errors(s).find((x) => x.kind === "disk")?.message).toMatch(
        new RegExp(
          `^disk full at ${p.ws()} \\(the data disk\\), ${p.ws()} \\(WORKSPACES_DIR\\): 0 MiB free of \\d+ MiB; agents cannot write there`,
        ),
      );
    } finally {
      fs.rmSync(fill, { recursive: true, force: true });
    }
    r = await apply(await deploy(3, key));
    expect(r.code).toBe(0);
    const after = await running(3);
    for (const n of names(2)) expect(after.get(n)).toBe(before.get(n));
    expect(status().code).toBe(0);
  });

  test.each(APPLY_STEPS.map((s, i) => [i + 1, s] as const))(
    "apply killed (SIGKILL) after step %i (%s), then run again: the new key is in and every agent restarted once",
    async (_, step) => {
      const before = await running(3);
      const files = snapshotFiles();
      key = KEY(`step${step.replace(/\W/g, "")}`);
      const d = await deploy(3, key);
      const cut = await apply(d, { AGENT_HOST_APPLY_CRASH_AFTER: step });
      expect([cut.code, cut.signal]).toEqual([null, "SIGKILL"]);
      // The bundle (the new key) is nowhere on disk: not in the work folder, not in the sandbox.
      expect(filesContaining(WORK_PARENT, key)).toEqual([]);
      expect(filesContaining(ROOT, key, [p.keyFile()])).toEqual([]);
      const s = status();
      expect(s.code).toBe(3);
      expect(errors(s)).toHaveLength(1);
      expect(errors(s)[0].message).toMatch(
        new RegExp(`^the last apply \\(started \\S+\\) was cut off after step '${step}'\\.`),
      );
      const cutIndex = APPLY_STEPS.indexOf(step);
      const restarted = cutIndex >= APPLY_STEPS.indexOf("restart");
      if (!restarted) {
        // Nothing half-changed that runs: the agents keep their processes until the job is done.
        expect(new Map(s.agents.map((x) => [x.name, x.pid]))).toEqual(before);
        if (cutIndex < APPLY_STEPS.indexOf("secrets")) {
          const installed = snapshotFiles();
          // Only files the bundle replaces whole (content-identical here), never a part.
          expect(installed).toEqual(files);
        }
      }
      const midway = await running(3);
      const again = await apply(d);
      expect([again.code, again.stderr]).toEqual([
        0,
        expect.stringContaining("was cut off after step"),
      ]);
      expect(fs.readFileSync(p.keyFile(), "utf8")).toBe(key);
      // On failure, both runs' words: which apply left its folder, and what the re-run removed.
      expect({
        left: fs.readdirSync(WORK_PARENT).filter((e) => e.startsWith("apply.")),
        cut: [cut.pid, cut.stderr],
        again: [again.pid, again.stderr],
      }).toEqual({ left: [], cut: [cut.pid, cut.stderr], again: [again.pid, again.stderr] });
      const after = await running(3);
      for (const n of names(3)) {
        // Restarted exactly once for the new key: by the re-run, or already by the cut-off run.
        if (restarted) expect({ n, pid: after.get(n) }).toEqual({ n, pid: midway.get(n) });
        else expect({ n, changed: after.get(n) !== before.get(n) }).toEqual({ n, changed: true });
      }
      expect(status().code).toBe(0);
    },
  );

  test("a bad bundle (cut off in transfer): refused in one line, nothing changed, status tells", async () => {
    const before = await running(3);
    const files = snapshotFiles();
    const d = await deploy(3, KEY("badbundle"));
    const cut = { ...d, stdin: d.stdin.split("\n").slice(0, -3).join("\n") };
    const r = await apply(cut);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    const errorLines = r.stderr.split("\n").filter((l) => l.startsWith("apply: error:"));
    expect(errorLines).toEqual([
      "apply: error: the bundle is truncated (no end line); nothing was changed; run 'pulumi up' again",
    ]);
    expect(snapshotFiles()).toEqual(files);
    expect(await running(3)).toEqual(before);
    const s = status();
    expect(s.code).toBe(3);
    expect(errors(s).map((x) => x.kind)).toEqual(["apply"]);
    expect((await apply(await deploy(3, key))).code).toBe(0);
    expect(status().code).toBe(0);
  });
});
