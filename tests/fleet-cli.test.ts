// `npm run agents` (scripts/agents.ts) against three real hosts on loopback: each a real sshd
// (Debian's openssh-server, its own host key) on 127.0.0.2, .3 and .4 port 22, its own admin and
// agent users, and a host tree set up by the stack's own reconcile command for that host (the
// three remote.Commands a hostCount 3 program registers, run over ssh with their stdin, as
// tests/fleet-ssh.test.ts runs one), so agentctl, tmux and the stand-in claude run for real.
// Proves: one table across the hosts with a HOST column; a host whose key is not the pinned one
// is refused before anything runs; send and attach reach host-2's agent-3; a host that is down
// or that never answers shows as unreachable within the bound, and the other hosts still show.
//
// The hosts are tests/fixtures/fleet-hosts.ts's (what differs from GCE is said there); the figure
// (fleet status across 3 hosts against 1) is scripts/bench-fleet.ts's.

import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { spawn, spawnSync } from "child_process";
import { unavailableSuite } from "./real-suite";
import {
  AGENTS_SCRIPT,
  agents,
  FLEET_TOOLS,
  LoopbackFleet,
  type HostSandbox,
} from "./fixtures/fleet-hosts";
import { poll, waitFor } from "./support";

const COUNTS = [2, 3, 2];
const NONCE = `fleet-cli-${process.pid}-${Date.now()}`;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const haveTools = FLEET_TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `fleet-cli tests skipped: they need root (users, sudoers, sshd on port 22 of 127.0.0.2-4) and ${FLEET_TOOLS.join(", ")}`,
      );

suite("npm run agents across three hosts on loopback", () => {
  jest.setTimeout(300_000);
  const fleet = new LoopbackFleet(COUNTS, "tests/fleet-cli.test.ts", "fcli", 62300);
  const hosts: HostSandbox[] = fleet.hosts;
  let outputsFile = "";
  const writeOutputs = fleet.writeOutputs.bind(fleet);

  const tableLines = (out: string) => out.trim().split("\n");

  beforeAll(async () => {
    await fleet.start();
    outputsFile = fleet.outputsFile;
    // Every agent's claude has started (a PID in its row), asked the way the lead asks.
    let last = "";
    await poll(
      "every agent running",
      async () => {
        const r = await agents(["--outputs", outputsFile, "status"]);
        const rows = tableLines(r.stdout).slice(1);
        const running = rows.filter((l) => /^\S+\s+agent-\d+\s+\S+\s+\S+\s+\d+\s/.test(l));
        last = `${r.stdout}${r.stderr}`;
        return r.code === 0 && running.length === 7;
      },
      60_000,
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}:\n${last}`);
    });
  });

  afterAll(async () => {
    await fleet.dispose();
  });

  test("status: one table, a HOST column, every agent of every host", async () => {
    const r = await agents(["--outputs", outputsFile, "status"]);
    console.log(
      `npm run agents -- status, 3 hosts (${COUNTS.join("+")} agents): ${r.ms} ms\n${r.stdout}`,
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const lines = tableLines(r.stdout);
    expect(lines[0]).toMatch(/^HOST\s+NAME\s+STATE\s/);
    const listed = lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join("/"));
    const expected = COUNTS.flatMap((n, i) =>
      Array.from({ length: n }, (_, a) => `host-${i + 1}/agent-${a + 1}`),
    );
    expect(listed.sort()).toEqual(expected.sort());
    // Each host's rows are that host's agents: each pid a process of that host's user for that
    // agent (one user per agent, issue 20).
    for (const line of lines.slice(1)) {
      const [hostName, agentName, , , pid] = line.split(/\s+/);
      const sandbox = hosts[Number(hostName.slice("host-".length)) - 1];
      if (/^\d+$/.test(pid)) {
        expect({ line, uid: fs.statSync(`/proc/${pid}`).uid }).toEqual({
          line,
          uid: sandbox.uidBase + Number(agentName.replace("agent-", "")),
        });
      }
    }
  });

  test("a host whose key is not the pinned one is refused before anything runs", async () => {
    // host-2's entry pins host-1's key: whoever answers at host-2's address is not the VM.
    const file = writeOutputs(path.join(fleet.dir, "wrong-key.json"), (h) =>
      h.index === 2 ? hosts[0].hostKey : h.hostKey,
    );
    const r = await agents(["--outputs", file, "status"]);
    expect(r.code).toBe(2);
    const row = tableLines(r.stdout).find((l) => l.startsWith("host-2 "));
    expect(row).toMatch(/^host-2\s+-\s+unreachable\s.*Host key verification failed/);
    expect(tableLines(r.stdout).filter((l) => /^host-[13] /.test(l))).toHaveLength(4);
    // And with no pinned key at all, no ssh is started for that host.
    const none = writeOutputs(path.join(fleet.dir, "no-key.json"), (h) =>
      h.index === 2 ? undefined : h.hostKey,
    );
    const r2 = await agents(["--outputs", none, "status"]);
    expect(tableLines(r2.stdout).find((l) => l.startsWith("host-2 "))).toContain(
      "host-2 has no pinned SSH host key",
    );
  });

  // What this proves: the text goes to host-2's agentctl for agent 3 (not another host's, not
  // another agent's), over SSH with the pinned host key and over stdin, and reaches that agent's
  // pane; agentctl decides for itself (from the pane) that the agent can take it, and its answer
  // and exit code come back unchanged. A "starting" agent (host-1's) is refused word for word.
  test("send host-2/agent-3: the text reaches host-2's agent-3 pane, and only it", async () => {
    const text = `please run the tests ${NONCE}`;
    // At its prompt once agentctl's grace for a first hook has passed (HOOK_GRACE_MS), as the lead sees it.
    let table = "";
    for (const deadline = Date.now() + 30_000; ;) {
      table = (await agents(["--outputs", outputsFile, "status"])).stdout;
      if (tableLines(table).some((l) => /^host-2\s+agent-3\s+idle\s/.test(l))) break;
      if (Date.now() > deadline) throw new Error(`host-2's agent-3 never idle:\n${table}`);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the poll interval
    }
    const r = await agents(["--outputs", outputsFile, "send", "host-2/agent-3", text]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: r.stderr });
    expect(r.stderr).toMatch(/typed \d+ bytes into agent-3/);
    await waitFor(
      "the text in host-2's agent-3 window",
      () => hosts[1].tmux(["capture-pane", "-p", "-t", "=agents:=agent-3"]).includes(NONCE),
      10_000,
    );
    const starting = await agents([
      "--outputs",
      outputsFile,
      "send",
      "--force",
      "host-1/agent-2",
      text,
    ]);
    expect({ code: starting.code, stderr: starting.stderr }).toEqual({
      code: 1,
      stderr:
        "agentctl: send: refused: agent-2 is starting (claude is starting); nothing to type into\n",
    });
    // Nowhere else: not in host-2's agent-1, not on host-1 or host-3.
    expect(hosts[1].tmux(["capture-pane", "-p", "-t", "=agents:=agent-1"])).not.toContain(NONCE);
    for (const h of [hosts[0], hosts[2]]) {
      for (const w of ["agent-1", "agent-2"]) {
        expect(h.tmux(["capture-pane", "-p", "-t", `=agents:=${w}`])).not.toContain(NONCE);
      }
    }
    // A host without that agent answers as agentctl does, through the same path.
    const missing = await agents(["--outputs", outputsFile, "send", "host-1/agent-9", text]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("agent-9");
  });

  test("attach host-2/agent-3: a terminal on host-2's session, at agent-3", async () => {
    const child = spawn(
      "script",
      [
        "-q",
        "-e",
        "-c",
        `${process.execPath} ${AGENTS_SCRIPT} --outputs ${outputsFile} attach host-2/agent-3`,
        "/dev/null",
      ],
      { stdio: ["pipe", "ignore", "ignore"] },
    );
    try {
      const client = await waitFor(
        "a client attached to host-2's session",
        () =>
          hosts[1]
            .tmux(["list-clients", "-F", "#{client_session} #{window_name}"])
            .trim()
            .split("\n")
            .find((l) => l.startsWith("agents ")),
        20_000,
      );
      expect(client).toBe("agents agent-3");
      expect(hosts[0].tmux(["list-clients"]).trim()).toBe("");
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("one host down, one that never answers: each shows as unreachable within the bound, the rest as usual", async () => {
    await hosts[2].stopSshd();
    const down = await agents(["--outputs", outputsFile, "--timeout", "6", "status"]);
    console.log(`status with host-3 down: ${down.ms} ms\n${down.stdout}`);
    expect(down.code).toBe(2);
    expect(tableLines(down.stdout).find((l) => l.startsWith("host-3 "))).toMatch(
      /^host-3\s+-\s+unreachable\s.*Connection refused/,
    );
    expect(tableLines(down.stdout).filter((l) => /^host-[12] /.test(l))).toHaveLength(5);

    // A host that accepts TCP and then says nothing (a hung VM, a black hole behind a proxy).
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(22, "127.0.0.5", resolve));
    try {
      const file = writeOutputs(
        path.join(fleet.dir, "silent.json"),
        (h) => h.hostKey,
        (h) => (h.index === 3 ? "127.0.0.5" : h.address),
      );
      const hung = await agents(["--outputs", file, "--timeout", "6", "status"]);
      console.log(`status with host-3 silent, --timeout 6: ${hung.ms} ms`);
      expect(hung.code).toBe(2);
      expect(tableLines(hung.stdout).find((l) => l.startsWith("host-3 "))).toMatch(
        /^host-3\s+-\s+unreachable\s/,
      );
      expect(tableLines(hung.stdout).filter((l) => /^host-[12] /.test(l))).toHaveLength(5);
      // The bound: 6 s for the slowest host, plus the script's own start.
      expect(hung.ms).toBeLessThan(6_000 + 5_000);
    } finally {
      silent.close();
    }
  });
});
