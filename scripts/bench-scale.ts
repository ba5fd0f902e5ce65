// Issue 25 point 6: a count change 10 → 12 over SSH, until both new agents show the real Claude
// Code's `❯` prompt (goal: < 10 s). Prints figures against baselines measured in the same run;
// asserts nothing (tests/fleet-ssh.test.ts and tests/real-claude.test.ts prove the behaviour).
// Run as root, under the shared lock:
//   flock /tmp/agent-host-system.lock npm run --silent bench:scale [-- RUNS]
//
// The host (tests/real-suite.ts RealHost): host.conf from the stack's own renderer, the tmux
// server as agent-host.service starts it, the first deploy (10 agents) through the product's
// apply; the pinned real Claude Code (tests/fixtures/real-claude.ts), offline, against the
// Messages API stand-in on 127.0.0.1 (tests/fixtures/messages-api.ts). A real sshd on 127.0.0.1
// (tests/fixtures/sshd.ts) in front of it, key-only, sudo as cloud-init sets up the admin.
//
// Measured, each RUNS times (min/median/max):
// - 10 → 12: from the laptop side, the stack's reconcile Command for agentCount 12 — its command
//   string and stdin exactly as the mocked program registers it (components/agent-fleet.ts) —
//   through `ssh` with the deploy key, until agent-11's and agent-12's panes both show the `❯`
//   prompt (atClaudePrompt); also when ssh returned. Agents 1–10 must keep their claude pids (a
//   run where one changed is reported, not hidden). Between runs the host goes back to 10 and
//   agent-11/12's users and homes are removed, so every run makes them as a first 10 → 12 does.
// - baseline: one SSH round trip (`ssh … true`, same key, options and sshd);
// - baseline: one real claude started on its own to `❯`: agent-1's claude, cloned (its argv with
//   a new session id, its environment, its uid and workspace), in a bare tmux server of its own.
import { spawnSync } from "child_process";
import { randomBytes, randomUUID } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BASE_CONFIG, one, runProgram, unwrap } from "../tests/harness";
import { startMessagesApi, type MessagesApi } from "../tests/fixtures/messages-api";
import { atClaudePrompt, REAL_CLAUDE_VERSION, realClaudeBin } from "../tests/fixtures/real-claude";
import { LoopbackSshd, sshKeygen } from "../tests/fixtures/sshd";
import { offlineClaudeEnv, pane, RealHost } from "../tests/real-suite";
import {
  descendants,
  freePort,
  poll,
  removeTestAgents,
  runAsync,
  type RunResult,
} from "../tests/support";
import { ms, stats } from "./bench-support";

const RUNS = Math.max(1, Number(process.argv[2] ?? 3));
const USER = "benchscale";
/** Its agent users benchscale-N (uid 62900+N), made by the product, removed after. */
const UID_BASE = 62900;
const ADMIN = `bench-scale-admin-${process.pid}`;
const SUDOERS = `/etc/sudoers.d/agent-host-bench-scale-${process.pid}`;
const API_KEY = `sk-ant-api03-BENCHSCALE${randomBytes(4).toString("hex")}${"k".repeat(60)}`;
/** Every wait's deadline. */
const PROMPT_MS = 120_000;
const SSH_MS = 120_000;

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

const claudePidOf = (h: RealHost, n: number): number | undefined => {
  try {
    const pid = Number(fs.readFileSync(path.join(h.run, `agent-${n}`, "pid"), "utf8").trim());
    return pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
};

const atPrompt = (h: RealHost, n: number): boolean => {
  try {
    return atClaudePrompt(pane(h, n));
  } catch {
    return false; // no such window yet
  }
};

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates users and runs sshd");
  const bin = realClaudeBin();
  // sshd's StrictModes refuses an authorized_keys path under /tmp (world-writable): RealHost's
  // folder (os.tmpdir()) goes under a root-owned 0755 one in /var/lib.
  const base = fs.mkdtempSync("/var/lib/agent-host-bench-scale-");
  fs.chmodSync(base, 0o755);
  process.env.TMPDIR = base;
  removeTestAgents(USER, UID_BASE);
  let api: MessagesApi | undefined;
  let h: RealHost | undefined;
  let sshd: LoopbackSshd | undefined;
  let madeAdmin = false;
  try {
    api = await startMessagesApi({ defaultText: "bench-scale" });
    const claudeEnv = await offlineClaudeEnv();
    const stack = (count: number): Record<string, string> => ({
      "agent-host:agentCount": String(count),
      "agent-host:agentPermissionMode": "bypassPermissions",
      "agent-host:anthropicBaseUrl": (api as MessagesApi).url,
      "agent-host:claudeEnv": JSON.stringify(claudeEnv),
    });
    h = new RealHost({
      name: "bench-scale",
      user: USER,
      uidBase: UID_BASE,
      apiKey: API_KEY,
      stack: stack(10),
      site: { CLAUDE_BIN: bin },
    });
    const host = h;

    // The admin user and sshd, as cloud-init leaves them on a VM.
    sh("useradd", ["--create-home", "--shell", "/bin/bash", ADMIN]);
    madeAdmin = true;
    const port = await freePort();
    sshd = new LoopbackSshd({
      base,
      root: host.root,
      admin: ADMIN,
      address: "127.0.0.1",
      port,
      // agentctl's defaults for these are the VM's absolute paths, which apply does not prefix.
      setEnv: {
        AGENT_HOST_ROOT: host.root,
        AGENT_WRAPPER: host.env.AGENT_WRAPPER as string,
        AGENTCTL_TMUX_CONF: host.env.AGENTCTL_TMUX_CONF as string,
        AGENT_HOST_JS: host.env.AGENT_HOST_JS as string,
      },
      // RealHost's bin: the cloud-init stand-in apply waits on.
      path: [path.join(host.dir, "bin")],
      sudoers: SUDOERS,
      by: "scripts/bench-scale.ts",
    });
    sshKeygen(path.join(sshd.sshDir, "deploy"), "deploy");
    const deployKey = {
      privateKey: fs.readFileSync(path.join(sshd.sshDir, "deploy"), "utf8"),
      publicKey: fs.readFileSync(path.join(sshd.sshDir, "deploy.pub"), "utf8").trim(),
    };
    await sshd.start(deployKey.publicKey);
    const knownHosts = path.join(sshd.sshDir, "known_hosts");
    fs.writeFileSync(knownHosts, sshd.knownHostsLine());

    // The first deploy: 10 agents, each at the prompt.
    const t10 = process.hrtime.bigint();
    await host.start();
    await poll(
      "agent-1..10 at the ❯ prompt",
      () => Array.from({ length: 10 }, (_, i) => i + 1).every((n) => atPrompt(host, n)),
      4 * PROMPT_MS,
      100,
    );
    console.log(
      `setup: 10 agents at ❯ ${(ms(t10) / 1000).toFixed(1)} s after the first deploy began`,
    );

    // The Command for 12 agents, as the stack registers it (the deploy key is the generated one).
    const program = await runProgram(
      { ...BASE_CONFIG, ...stack(12), "agent-host:anthropicApiKey": API_KEY },
      {
        secretKeys: ["agent-host:anthropicApiKey"],
        generatedPrivateKey: deployKey.privateKey,
        generatedPublicKey: deployKey.publicKey,
      },
    );
    const command = unwrap(one(program, "command:remote:Command").inputs) as {
      create: string;
      stdin: string;
      connection: { privateKey: string };
    };
    const keyFile = path.join(sshd.sshDir, "deploy-key-from-resource");
    fs.writeFileSync(keyFile, command.connection.privateKey, { mode: 0o600 });
    const ssh = (remote: string, stdin = ""): Promise<RunResult> =>
      runAsync(
        "timeout",
        [
          `${SSH_MS / 1000}`,
          "ssh",
          ...["-F", "/dev/null", "-i", keyFile, "-p", String(port)],
          ...["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"],
          ...["-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=10"],
          `${ADMIN}@127.0.0.1`,
          remote,
        ],
        { PATH: process.env.PATH },
        stdin,
      );

    const roundTrip: number[] = [];
    for (let i = 0; i < Math.max(RUNS, 5); i++) {
      const t0 = process.hrtime.bigint();
      const r = await ssh("true");
      if (r.code !== 0) throw new Error(`ssh … true: exit ${r.code}: ${r.stderr}`);
      roundTrip.push(ms(t0));
    }

    const toPrompt: number[] = [];
    const sshReturned: number[] = [];
    const untouched: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const before = Array.from({ length: 10 }, (_, k) => claudePidOf(host, k + 1));
      const t0 = process.hrtime.bigint();
      const running = ssh(command.create, command.stdin).then((r) => {
        sshReturned.push(ms(t0));
        return r;
      });
      const ready = poll(
        "agent-11 and agent-12 at the ❯ prompt",
        () => atPrompt(host, 11) && atPrompt(host, 12),
        PROMPT_MS,
        20,
      ).then(() => ms(t0));
      const [r, at] = await Promise.all([running, ready]);
      if (r.code !== 0) throw new Error(`the reconcile over ssh: exit ${r.code}: ${r.stderr}`);
      toPrompt.push(at);
      const after = Array.from({ length: 10 }, (_, k) => claudePidOf(host, k + 1));
      const changed = after.flatMap((pid, k) => (pid === before[k] ? [] : [`agent-${k + 1}`]));
      untouched.push(changed.length === 0 ? "yes" : `NO (${changed.join(", ")} changed pid)`);
      console.log(
        `run ${i + 1}: 10 → 12 both at ❯ ${at.toFixed(0)} ms (ssh returned ${sshReturned[i].toFixed(0)} ms); agents 1–10 untouched: ${untouched[i]}`,
      );
      // Back to 10, and agent-11/12's users gone, so the next run makes them again.
      await host.apply(stack(10));
      await poll(
        "agent-11 and agent-12 stopped",
        () => claudePidOf(host, 11) === undefined && claudePidOf(host, 12) === undefined,
        PROMPT_MS,
        100,
      );
      for (const n of [11, 12]) {
        const name = `${USER}-${n}`;
        const pw = spawnSync("getent", ["passwd", name], { encoding: "utf8" });
        if (pw.status === 0 && pw.stdout.split(":")[2] === String(UID_BASE + n)) {
          sh("userdel", [name]);
          spawnSync("groupdel", [name]);
        }
        fs.rmSync(path.join(host.homes, name), { recursive: true, force: true });
        fs.rmSync(path.join(host.ws, `agent-${n}`), { recursive: true, force: true });
      }
    }

    // Memory per agent (at 10 agents, idle at ❯): the pane's process tree, wrapper and claude.
    const panePids = sh("tmux", [
      ...["-S", host.sock, "list-panes", "-s", "-t", "=agents", "-F", "#{pane_pid} #{window_name}"],
    ])
      .split("\n")
      .filter((l) => / agent-\d+$/.test(l))
      .map((l) => Number(l.split(" ")[0]));
    const wrapperMem = panePids.map((pid) => rollup([pid]));
    const treeMem = panePids.map((pid) => rollup(descendants(pid)));

    // One real claude on its own: agent-1's, cloned into a bare tmux server.
    const pid1 = claudePidOf(host, 1);
    if (!pid1) throw new Error("agent-1 has no claude");
    const argv = fs.readFileSync(`/proc/${pid1}/cmdline`, "utf8").split("\0").filter(Boolean);
    const env = Object.fromEntries(
      fs
        .readFileSync(`/proc/${pid1}/environ`, "utf8")
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    const cwd = fs.readlinkSync(`/proc/${pid1}/cwd`);
    const { uid, gid } = fs.statSync(`/proc/${pid1}`);
    const alone: number[] = [];
    let aloneError = "";
    for (let i = 0; i < RUNS && !aloneError; i++) {
      const args = argv.slice(1);
      const at = args.findIndex((a) => a === "--session-id" || a === "--resume");
      if (at >= 0) args.splice(at, 2, "--session-id", randomUUID());
      const sock = path.join(base, `alone-${i}.sock`);
      const t0 = process.hrtime.bigint();
      try {
        const r = await runAsync(
          "tmux",
          [
            ...["-S", sock, "-f", host.env.AGENTCTL_TMUX_CONF as string],
            ...["new-session", "-d", "-s", "alone", "-x", "200", "-y", "50", "-c", cwd, "--"],
            ...["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--", argv[0]],
            ...args,
          ],
          { ...env, TMUX: "" },
        );
        if (r.code !== 0) throw new Error(`tmux new-session: ${r.stderr}`);
        await poll("the lone claude at the ❯ prompt", () => aloneAtPrompt(sock), PROMPT_MS, 20);
        alone.push(ms(t0));
      } catch (e) {
        // The figures above still print.
        aloneError = (e as Error).message;
      } finally {
        spawnSync("tmux", ["-S", sock, "kill-server"]);
      }
    }

    console.log("");
    console.log(
      `real Claude Code ${REAL_CLAUDE_VERSION}, ${RUNS} runs each (2 shared cores), host with 10 agents at ❯:`,
    );
    console.log(`  10 → 12 over SSH, until both new agents show ❯:  ${stats(toPrompt)}`);
    console.log(`    of which the ssh command (start to exit):     ${stats(sshReturned)}`);
    console.log(`    agents 1–10 kept their claude pids:           ${untouched.join(", ")}`);
    console.log(`  baseline: one SSH round trip (ssh … true):      ${stats(roundTrip)}`);
    console.log(
      `  baseline: one real claude alone, start to ❯:    ${alone.length ? stats(alone) : aloneError}`,
    );
    console.log(`  goal (issue 25): 10 → 12 < 10000 ms`);
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length) / 1024;
    console.log(
      `  memory per agent, ${panePids.length} idle at ❯ (mean): wrapper PSS ${mean(wrapperMem.map((m) => m.pss)).toFixed(1)} MiB RSS ${mean(wrapperMem.map((m) => m.rss)).toFixed(1)} MiB; wrapper + claude tree PSS ${mean(treeMem.map((m) => m.pss)).toFixed(0)} MiB RSS ${mean(treeMem.map((m) => m.rss)).toFixed(0)} MiB`,
    );
  } finally {
    await h?.close().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    await sshd?.stop().catch((e: Error) => console.error(`cleanup: ${e.message}`));
    await api?.close();
    removeTestAgents(USER, UID_BASE);
    if (madeAdmin) spawnSync("userdel", ["--remove", ADMIN]);
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** Summed PSS and RSS (KiB) of these processes (smaps_rollup). */
function rollup(pids: number[]): { pss: number; rss: number } {
  let pss = 0;
  let rss = 0;
  for (const pid of pids) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
      pss += kb("Pss");
      rss += kb("Rss");
    } catch {
      // gone
    }
  }
  return { pss, rss };
}

/** The lone claude's pane (its only window) shows the prompt. */
function aloneAtPrompt(sock: string): boolean {
  const r = spawnSync("tmux", ["-S", sock, "capture-pane", "-p", "-t", "=alone:"], {
    encoding: "utf8",
  });
  return r.status === 0 && atClaudePrompt(r.stdout);
}

void main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exitCode = 1;
});
