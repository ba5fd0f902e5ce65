// Issue 16's proof of the agent-aware auto-stop, with the real Claude Code (the pinned 2.1.331)
// against the Messages API stand-in, in real tmux, its state recorded by the shipped managed hooks
// (issue 15). Everything runs in its own mount and PID namespace: the hooks' paths
// (/etc/claude-code, /usr/local/lib/agent-host) are bind mounts of this test's copies, and /proc
// shows only this test's processes, so the SSH sessions the auto-stop counts are this test's own
// (sshd on 127.0.0.1, started inside), not other suites' on this machine.
//
// The stop goes through a stand-in for systemctl (the daemon's AUTO_STOP_COMMAND): it records the
// call, so this machine keeps running.
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { type MessagesApi } from "./fixtures/messages-api";
import { atClaudePrompt } from "./fixtures/real-claude";
import { type WebhookReceiver } from "./fixtures/webhook-receiver";
import {
  pane as paneOf,
  RealHost,
  startNotifyingHost,
  typePrompt,
  unavailableSuite,
} from "./real-suite";
import { freePort, poll, removeTestAgents, runAsync } from "./support";
import { AGENTCTL, LIB_DIR } from "./host-files";

const AGENT_USER = "claudestop";
/** Its agent users claudestop-N (uid 61800+N): made by the product's reconcile, removed after. */
const UID_BASE = 61800;
const COUNT = 2;
const QUIET_SECONDS = 4;
const NONCE = randomBytes(4).toString("hex");
const API_KEY = `sk-ant-api03-STOPTEST${NONCE}${"k".repeat(60)}`;

// Stand-in for systemctl, as the daemon calls it (`systemctl poweroff`). Enforces what the real
// one does for this verb: only root may power off without a polkit agent (systemd
// src/systemctl/systemctl-start-special.c: start_special → logind's PowerOff, refused as "Access
// denied" to others), and an unknown verb is refused ("Unknown command verb"). It records the
// call instead of powering off.
const SYSTEMCTL_STANDIN = `#!/usr/bin/env bash
set -euo pipefail
main() {
  [[ "\${1:-}" == poweroff && $# -eq 1 ]] || { printf 'Unknown command verb %s.\\n' "\${1:-}" >&2; exit 1; }
  [[ "$(id -u)" == 0 ]] || { printf 'Call to PowerOff failed: Access denied\\n' >&2; exit 1; }
  printf '%s poweroff\\n' "$(date +%s%3N)" >>"\${0%/*}/poweroff.log"
}
main "$@"
`;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const haveTools =
  [
    "tmux",
    "setpriv",
    "flock",
    "jq",
    "npm",
    "unshare",
    "nsenter",
    "mount",
    "script",
    "ssh",
    "ssh-keygen",
  ].every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0) &&
  fs.existsSync("/usr/sbin/sshd");
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `auto-stop tests skipped: they need root and tmux, setpriv, flock, jq, npm, unshare, nsenter, mount, script, ssh, sshd`,
      );

interface AutoStopJson {
  vm_uptime_seconds: number;
  agents_idle_seconds: number | null;
  auto_stop: { kind: string; limit_seconds: number; stop_in_seconds?: number; held_by?: string[] };
}

const atPrompt = atClaudePrompt;

suite("agent-aware auto-stop with the real claude, real tmux and a real sshd", () => {
  jest.setTimeout(1_200_000);
  let api: MessagesApi;
  let dir: string;
  let sock: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let host: RealHost | undefined;
  let nsPid = 0;
  let sshd: ChildProcess | undefined;
  let daemon: ChildProcess | undefined;
  let receiver: WebhookReceiver | undefined;
  const hooks = (): { body: string }[] => receiver?.hits ?? [];

  /** A command inside the test's namespaces (the PID namespace's /proc, the bind mounts). */
  const inNs = (args: string[]) => ["-t", String(nsPid), "-p", "-m", "--", ...args];
  const ctl = (args: string[]) => runAsync("nsenter", inNs([AGENTCTL, ...args]), env);
  const autostop = async (): Promise<AutoStopJson> => {
    const r = await ctl(["autostop", "--json"]);
    if (r.code !== 0) throw new Error(`agentctl autostop --json: ${r.code} ${r.stderr}`);
    return JSON.parse(r.stdout) as AutoStopJson;
  };
  const pane = (n: number) => paneOf({ sock }, n);
  const recorded = (n: number): { state: string; event: string; reason: string } | undefined => {
    try {
      // Agent N's state is in its own home (issue 20).
      return JSON.parse(
        fs.readFileSync(
          path.join(stateDir, `${AGENT_USER}-${n}`, ".agent-host", "status.json"),
          "utf8",
        ),
      );
    } catch {
      return undefined;
    }
  };
  const say = (n: number, text: string) => typePrompt({ sock }, n, text, 20_000);

  const poweroffs = () =>
    fs.existsSync(path.join(dir, "stop-bin", "poweroff.log"))
      ? fs
          .readFileSync(path.join(dir, "stop-bin", "poweroff.log"), "utf8")
          .split("\n")
          .filter(Boolean)
      : [];

  beforeAll(async () => {
    ({ host, api, receiver } = await startNotifyingHost({
      name: "autostop-real",
      user: AGENT_USER,
      uidBase: UID_BASE,
      apiKey: API_KEY,
      count: COUNT,
      nonce: NONCE,
      stack: {
        // The agents run tools without asking: a tool call is a turn that holds the stop by itself.
        "agent-host:agentPermissionMode": "bypassPermissions",
        "agent-host:autoStopMinutes": "10",
      },
      site: (x) => ({
        // Seconds, not the stack's whole minutes, and the stand-in systemctl below.
        AUTO_STOP_SECONDS: String(QUIET_SECONDS),
        AUTO_STOP_POLL_SECONDS: "0.5",
        AUTO_STOP_COMMAND: `${path.join(x.dir, "stop-bin", "systemctl")} poweroff`,
      }),
      namespace: "mount+pid",
    }));
    dir = host.dir;
    sock = host.sock;
    // The agents' homes: agent N's state is in its own HOME/.agent-host (issue 20).
    stateDir = host.homes;
    env = host.env;
    fs.mkdirSync(path.join(dir, "stop-bin"), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir, "stop-bin", "systemctl"), SYSTEMCTL_STANDIN, { mode: 0o755 });
    await host.start();
    nsPid = host.nsPid;
    expect((await ctl(["reconcile", String(COUNT)])).code).toBe(0);
    try {
      await poll(
        `${COUNT} windows at the prompt`,
        () => [1, 2].every((n) => atPrompt(pane(n))),
        // Minutes on a loaded 2-core machine: other suites run real claudes too.
        600_000,
        500,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; agent-1's pane:\n${pane(1)}`);
    }
    await poll(
      "every agent idle",
      () => [1, 2].every((n) => recorded(n)?.state === "idle"),
      60_000,
    );
  });

  afterAll(async () => {
    daemon?.kill("SIGTERM");
    sshd?.kill("SIGTERM");
    // Ending the namespace's PID 1 ends every process in it (claude included).
    await host?.close();
    await api?.close();
    await receiver?.close();
  });
  // Last: the agent user goes once its processes are gone (the teardown above ends them).
  afterAll(() => removeTestAgents(AGENT_USER, UID_BASE));

  // A scripted reply left unused, or a request that broke the API's rules, fails the test that
  // caused it; the queue is empty for the next one.
  afterEach(() => api?.verify());

  test("an agent after Stop counts as idle: nothing holds the stop, and the idle time is shown", async () => {
    await say(1, `say hello ${NONCE}`);
    await poll(
      "agent-1's Stop",
      () => recorded(1)?.event === "Stop" && recorded(1)?.state === "idle",
      60_000,
    );
    const s = await autostop();
    expect(s.auto_stop.held_by).toBeUndefined();
    expect(["waiting", "stop"]).toContain(s.auto_stop.kind);
    expect(s.agents_idle_seconds).not.toBeNull();
    expect(s.vm_uptime_seconds).toBeGreaterThan(0);
    // The table's lines as a person reads them.
    const table = await ctl(["status"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^VM up \S+; every agent idle for \S+$/m);
    expect(table.stdout).toMatch(/^auto-stop: (in|stopping now)/m);
  });

  test("an agent inside a long tool call counts as working, from the tool's start to its end", async () => {
    const done = path.join(dir, "workspaces", "agent-2", "long.txt");
    const command = `sleep 15 && echo long-${NONCE} > long.txt`;
    const cwd = path.join(dir, "workspaces", "agent-2");
    api.reply({ toolUse: { name: "Bash", input: { command, description: "a long step" } }, cwd });
    api.reply({ text: `Long step finished for ${NONCE}.`, cwd });
    await say(2, `run the long step ${NONCE}`);
    await poll("agent-2 working", () => recorded(2)?.state === "working", 60_000, 100);
    const seen: string[][] = [];
    // Bounded in time, not in looks: a look takes ~75 ms on a quiet machine, so 200 looks ended
    // before the 15 s command did ("the long step never finished" on a quiet machine only).
    const deadline = Date.now() + 120_000;
    while (!fs.existsSync(done)) {
      const s = await autostop();
      if (fs.existsSync(done)) break;
      seen.push(s.auto_stop.held_by ?? [s.auto_stop.kind]);
      if (Date.now() > deadline) {
        throw new Error(
          `the long step did not finish within 120 s (${seen.length} looks); agent-2's pane:\n${pane(2)}`,
        );
      }
    }
    // At least two looks while the tool ran (one look takes seconds on a loaded machine).
    expect(seen.length).toBeGreaterThanOrEqual(2);
    console.log(
      `long tool call: ${seen.length} looks while it ran, every one held by agent-2 working`,
    );
    for (const reasons of seen)
      expect(reasons).toEqual([expect.stringMatching(/^agent-2 working/)]);
    await poll("agent-2 idle after the tool", () => recorded(2)?.state === "idle", 60_000);
    expect((await autostop()).auto_stop.held_by).toBeUndefined();
  });

  test("a real tmux client attached holds the stop; detaching releases it", async () => {
    // `script` gives the client the terminal tmux needs.
    const client = spawn(
      "script",
      ["-qfec", `tmux -S ${sock} attach-session -t =agents`, "/dev/null"],
      {
        stdio: ["pipe", "ignore", "ignore"],
        env: { PATH: process.env.PATH, TERM: "xterm-256color" },
      },
    );
    try {
      const held = await poll(
        "the attached client holds the stop",
        async () => {
          const s = await autostop();
          return s.auto_stop.held_by?.some((r) => r.startsWith("tmux client attached"))
            ? s
            : undefined;
        },
        120_000,
      );
      expect(held.auto_stop.kind).toBe("held");
    } finally {
      spawnSync("tmux", ["-S", sock, "detach-client", "-a", "-s", "=agents"]);
      spawnSync("tmux", ["-S", sock, "detach-client", "-s", "=agents"]);
      client.kill("SIGTERM");
    }
    await poll(
      "released after the detach",
      async () => (await autostop()).auto_stop.kind !== "held",
      20_000,
    );
  });

  describe("SSH sessions and the stop itself", () => {
    let port = 0;
    let keyDir = "";
    const sshArgs = () => [
      "-i",
      path.join(keyDir, "user"),
      "-p",
      String(port),
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "root@127.0.0.1",
    ];

    beforeAll(async () => {
      // sshd on 127.0.0.1 inside the namespace: its session processes are what the auto-stop
      // sees in /proc, exactly as on the VM.
      // Root-owned 0755 all the way up (sshd's StrictModes refuses keys under the world-writable
      // /tmp).
      keyDir = fs.mkdtempSync("/var/lib/agent-host-autostop-ssh-");
      fs.chmodSync(keyDir, 0o755);
      for (const k of ["host", "user"]) {
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(keyDir, k)]);
      }
      fs.copyFileSync(path.join(keyDir, "user.pub"), path.join(keyDir, "authorized_keys"));
      fs.chmodSync(path.join(keyDir, "authorized_keys"), 0o600);
      port = await freePort();
      fs.writeFileSync(
        path.join(keyDir, "sshd_config"),
        [
          `Port ${port}`,
          "ListenAddress 127.0.0.1",
          `HostKey ${path.join(keyDir, "host")}`,
          `PidFile ${path.join(keyDir, "sshd.pid")}`,
          `AuthorizedKeysFile ${path.join(keyDir, "authorized_keys")}`,
          "PermitRootLogin prohibit-password",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "UsePAM no",
          "",
        ].join("\n"),
      );
      fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
      let log = "";
      sshd = spawn(
        "nsenter",
        inNs(["/usr/sbin/sshd", "-D", "-e", "-f", path.join(keyDir, "sshd_config")]),
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      sshd.stderr?.on("data", (d: Buffer) => (log += d.toString()));
      try {
        await poll(
          "sshd to accept",
          () => spawnSync("ssh", [...sshArgs(), "true"], { timeout: 60_000 }).status === 0,
          // Generous: other suites load this 2-core machine (load averages of 40 were seen).
          180_000,
          200,
        );
      } catch (error) {
        throw new Error(`${(error as Error).message}; sshd said: ${log}`);
      }
    });

    afterAll(() => {
      if (keyDir) fs.rmSync(keyDir, { recursive: true, force: true });
    });

    test("an SSH session on 127.0.0.1 holds the stop; the daemon powers off once it ends and the quiet time has passed, through the stand-in", async () => {
      const session = spawn("ssh", [...sshArgs(), "sleep 300"], { stdio: "ignore" });
      try {
        await poll(
          "the SSH session holds the stop",
          async () =>
            (await autostop()).auto_stop.held_by?.some((r) => /^SSH session root@notty/.test(r)),
          120_000,
        );
        // The daemon, as agent-host-autostop.service runs it, with the stand-in as its stop command.
        let daemonLog = "";
        daemon = spawn("nsenter", inNs(["node", path.join(LIB_DIR, "agent-host.js"), "autostop"]), {
          env,
          stdio: ["ignore", "ignore", "pipe"],
        });
        daemon.stderr?.on("data", (d: Buffer) => (daemonLog += d.toString()));
        const state = path.join(dir, "run", "autostop.json");
        await poll(
          "the daemon's record names the SSH session",
          () =>
            fs.existsSync(state) && /SSH session root@notty/.test(fs.readFileSync(state, "utf8")),
          120_000,
        );
        expect(poweroffs()).toEqual([]);
        expect(daemonLog).toContain("auto-stop: the VM stops after 4 s");
      } finally {
        session.kill("SIGTERM");
      }
      const ended = Date.now();
      await poll(
        "the session gone from /proc",
        async () => (await autostop()).auto_stop.kind !== "held",
        120_000,
      );
      const calls = await poll(
        "the stand-in poweroff",
        () => (poweroffs().length > 0 ? poweroffs() : undefined),
        30_000,
      );
      expect(calls).toHaveLength(1);
      console.log(
        `auto-stop: stand-in poweroff ${Number(calls[0].split(" ")[0]) - ended} ms after the SSH session ended (quiet time ${QUIET_SECONDS} s, poll 0.5 s)`,
      );
      // Not before the quiet time after the last person left.
      expect(Number(calls[0].split(" ")[0])).toBeGreaterThanOrEqual(
        ended + QUIET_SECONDS * 1000 - 1000,
      );
      // One message on the notification channel, saying why and how to start again.
      // One auto-stop message on the notification channel, saying why and how to start again
      // (the monitor's own messages, such as agent-2's finished long turn, go there too).
      const stops = () =>
        hooks()
          .map((x) => JSON.parse(x.body) as { event: string; text: string })
          .filter((b) => b.event === "auto-stop");
      await poll("the auto-stop notification", () => stops().length > 0, 120_000);
      expect(stops()).toHaveLength(1);
      expect(stops()[0].text).toMatch(
        /stopping itself \(auto-stop\): stopping the VM after \d+s with every agent idle or waiting on a person and nobody attached/,
      );
      expect(stops()[0].text).toContain("startCommand");
      for (const x of hooks()) expect(x.body).not.toContain(API_KEY);
    });
  });
});
