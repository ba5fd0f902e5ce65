// Issue 23, the pure halves: the host's health as status shows it (host/attention/health.ts),
// state that heals from what the pane shows (host/attention/effective.ts, host/agents/facts.ts
// paneView), the one-line fault of a failed reconcile (host/agents/reconcile.ts faultLine), and
// what an apply inherits from the journal of one that was cut off (host/apply/journal.ts).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { lastToolUse, recordHook } from "../host/attention/hook";
import { readStatus } from "../host/attention/store";
import { applyAlive, assessHealth, healthText, type HealthInputs } from "../host/attention/health";
import { effectiveState, HOOK_GRACE_MS, type ProcessFacts } from "../host/attention/effective";
import type { Recorded } from "../host/attention/state";
import { paneView } from "../host/agents/facts";
import { faultLine } from "../host/agents/reconcile";
import { carriedOver, type JournalState } from "../host/apply/journal";
import { parseHostConf } from "../host/conf/conf";

const GiB = 1024 ** 3;
const base = (over: Partial<HealthInputs> = {}): HealthInputs => ({
  conf: parseHostConf("AGENT_COUNT=2\n", "/etc/agent-host/host.conf"),
  confExists: true,
  applyRunning: false,
  bootId: "boot-1",
  disks: [
    { what: "/data (the data disk)", path: "/data", availBytes: 40 * GiB, totalBytes: 50 * GiB },
  ],
  stateFolders: [{ agent: 1, dir: "/home/agent/.agent-host/agent-1", uid: 1001, mode: 0o40700 }],
  ...over,
});

const journal = (over: Partial<JournalState> = {}): JournalState => ({
  v: 1,
  pid: 4242,
  instance: "i-1",
  agents: 5,
  bundle_sha256: "ab".repeat(32),
  started: 1_800_000_000,
  boot_id: "boot-1",
  step: "conf",
  restart_owed: "the API key changed",
  reload_owed: false,
  ...over,
});

describe("the host's health", () => {
  test("nothing wrong: healthy, one line", () => {
    expect(assessHealth(base())).toEqual([]);
    expect(healthText([])).toBe("HOST  healthy\n");
  });

  test("host.conf: a bad value is an error naming key, value and fix; an unknown key a warning", () => {
    const conf = parseHostConf("AGENT_COUNT=lots\nAGENT_COUNTT=3\n", "/etc/agent-host/host.conf");
    const p = assessHealth(base({ conf }));
    expect(p).toEqual([
      {
        level: "error",
        kind: "conf",
        message:
          "AGENT_COUNT=lots in /etc/agent-host/host.conf is not a whole number from 1 to 999999; fix the config",
      },
      {
        level: "warning",
        kind: "conf",
        message:
          "/etc/agent-host/host.conf:2: unknown key AGENT_COUNTT, ignored; remove the line or fix its key",
      },
    ]);
    expect(healthText(p).split("\n")[0]).toBe("HOST  UNHEALTHY: 1 error, 1 warning");
  });

  test("no host.conf at all is an error, not a quiet run on defaults", () => {
    expect(assessHealth(base({ confExists: false }))).toEqual([
      {
        level: "error",
        kind: "conf",
        message:
          "no host config at /etc/agent-host/host.conf: every agent runs on defaults; run 'pulumi up' to install it",
      },
    ]);
  });

  test("an apply cut off after a step, with a restart owed in this boot", () => {
    const [p] = assessHealth(base({ journal: journal() }));
    expect(p.level).toBe("error");
    expect(p.message).toBe(
      "the last apply (started 2027-01-15T08:00:00Z) was cut off after step 'conf'. Agents still run with the old settings (the API key changed). Run 'pulumi up' again: the next apply finishes the job",
    );
    // The same journal while that apply still runs: a warning, not an error.
    expect(assessHealth(base({ journal: journal(), applyRunning: true }))[0].level).toBe("warning");
    // After a reboot the agents did restart: nothing is said to be owed.
    expect(
      assessHealth(base({ journal: journal({ boot_id: "boot-0" }) }))[0].message,
    ).not.toContain("old settings");
  });

  test("a failed apply names its error; a finished one is nothing", () => {
    const failed = journal({
      finished: 1_800_000_060,
      ok: false,
      error: "installing Claude Code 2.1.331 failed",
      restart_owed: null,
    });
    expect(assessHealth(base({ journal: failed }))[0].message).toBe(
      "the last apply (2027-01-15T08:01:00Z) failed after step 'conf': installing Claude Code 2.1.331 failed. Fix that, then run 'pulumi up' again",
    );
    expect(assessHealth(base({ journal: journal({ finished: 1, ok: true }) }))).toEqual([]);
  });

  test("a failed reconcile names the agent, the cause and the desired count kept", () => {
    const [p] = assessHealth(
      base({
        reconcile: {
          at: 1_800_000_000,
          requested: 5,
          desired: 4,
          ok: false,
          failed: [
            {
              agent: 5,
              error:
                "ENOSPC: no space left on device, mkdir '/workspaces/agent-5': the disk of /workspaces is full",
            },
          ],
        },
      }),
    );
    expect(p.message).toBe(
      "the last reconcile to 5 agents (2027-01-15T08:00:00Z) left the desired count at 4: agent-5 did not start: ENOSPC: no space left on device, mkdir '/workspaces/agent-5': the disk of /workspaces is full",
    );
  });

  test("a full disk is an error, an almost full one a warning", () => {
    const disk = (availBytes: number) => ({
      what: "/data (the data disk)",
      path: "/data",
      availBytes,
      totalBytes: 50 * GiB,
    });
    const full = assessHealth(base({ disks: [disk(10 * 1024 * 1024)] }));
    expect(full.map((p) => [p.level, p.kind])).toEqual([["error", "disk"]]);
    expect(full[0].message).toBe(
      "disk full at /data (the data disk): 10 MiB free of 51200 MiB; agents cannot write there: free space (du -xsh /data/*) or grow the disk (dataDiskSizeGb, then pulumi up)",
    );
    expect(assessHealth(base({ disks: [disk(3 * GiB)] })).map((p) => p.level)).toEqual(["warning"]);
    // Out of inodes with bytes to spare is full too: nothing new can be created.
    const inodes = { ...disk(40 * GiB), availInodes: 3, totalInodes: 3_000_000 };
    expect(assessHealth(base({ disks: [inodes] }))[0].message).toBe(
      "disk full at /data (the data disk): 3 of 3000000 inodes free (too many small files); agents cannot create files there: remove files (du -xs --inodes /data/*) or grow the disk",
    );
  });

  test("a state folder its agent cannot write (root's, or no write bit) is an error", () => {
    const p = assessHealth(
      base({ stateFolders: [{ agent: 2, dir: "/s/agent-2", uid: 0, mode: 0o40755 }] }),
    );
    expect(p[0].message).toBe(
      "agent-2's state folder /s/agent-2 is not writable by its user (owner uid 0, mode 0755): its hooks record nothing; run 'sudo agentctl restart 2' (the wrapper makes it the agent's again)",
    );
    // Another user's folder, when the agent's uid is known; its own (even root's, for a root
    // agent user in a sandbox) is fine.
    const folder = { agent: 2, dir: "/s/agent-2", mode: 0o40700 };
    expect(
      assessHealth(base({ stateFolders: [{ ...folder, uid: 1002, expectedUid: 1001 }] })),
    ).toHaveLength(1);
    expect(assessHealth(base({ stateFolders: [{ ...folder, uid: 0, expectedUid: 0 }] }))).toEqual(
      [],
    );
  });
});

describe("state that heals from the pane", () => {
  const started = 1_800_000_000_000;
  const facts = (over: Partial<ProcessFacts>): ProcessFacts => ({
    n: 1,
    window: true,
    dead: false,
    pid: 100,
    startedAt: started,
    now: started + 60_000,
    ...over,
  });
  const rec = (state: Recorded["state"], updated: number): Recorded => ({
    v: 1,
    seq: 1,
    state,
    since: updated,
    reason: "prompt: hi",
    event: "UserPromptSubmit",
    updated,
  });

  test("a lost SessionStart: the pane at its prompt makes it idle, saying the hooks missed it", () => {
    const e = effectiveState(facts({ pane: "prompt" }), undefined);
    expect([e.state, e.reason]).toEqual([
      "idle",
      "at its prompt; its hooks recorded nothing since it started (a hook event was lost)",
    ]);
    // Right after the start the hook may still come: starting, as before.
    expect(
      effectiveState(facts({ pane: "prompt", now: started + HOOK_GRACE_MS - 1 }), undefined).state,
    ).toBe("starting");
    // A pane that shows nothing telling: still starting.
    expect(effectiveState(facts({ pane: "unknown" }), undefined).state).toBe("starting");
  });

  test("a lost PermissionRequest: the dialog in the pane wins over an old 'working'", () => {
    const e = effectiveState(facts({ pane: "permission-dialog" }), rec("working", started + 1000));
    expect(e.state).toBe("needs-permission");
    expect(e.needsYou).toBe(true);
    expect(e.reason).toBe(
      "its pane shows a permission dialog; the hooks last recorded working (prompt: hi): a hook event was lost",
    );
    // A fresh record (the hook may be on its way) is believed.
    expect(
      effectiveState(facts({ pane: "permission-dialog" }), rec("working", started + 58_000)).state,
    ).toBe("working");
  });

  test("a permission refused in the terminal (no hook fires): the pane back at its prompt makes it idle", () => {
    const asked = { ...rec("needs-permission", started + 1000), reason: "Bash: rm -rf build" };
    const e = effectiveState(facts({ pane: "prompt" }), asked);
    expect([e.state, e.reason, e.needsYou, e.since]).toEqual([
      "idle",
      "denied in the terminal: Bash: rm -rf build",
      false,
      undefined,
    ]);
    // The dialog still shows, or claude works on (the spinner), or the pane shows nothing telling:
    // still waiting as recorded.
    for (const pane of ["permission-dialog", "working", "unknown"] as const)
      expect(effectiveState(facts({ pane }), asked).state).toBe("needs-permission");
    // A fresh record (the dialog may not be drawn yet) is believed.
    const fresh = { ...asked, updated: started + 60_000 - HOOK_GRACE_MS + 1 };
    expect(effectiveState(facts({ pane: "prompt" }), fresh).state).toBe("needs-permission");
    // Approved: its command's process shows it runs, whatever the pane.
    expect(effectiveState(facts({ pane: "prompt", childSinceState: true }), asked).state).toBe(
      "working",
    );
  });

  test("a question declined in the terminal (Esc, no hook fires): the pane back at its prompt makes it idle", () => {
    const asked: Recorded = {
      ...rec("needs-answer", started + 1000),
      reason: "Which database?",
      event: "PermissionRequest",
    };
    const e = effectiveState(facts({ pane: "prompt" }), asked);
    expect([e.state, e.reason, e.needsYou, e.since]).toEqual([
      "idle",
      "declined in the terminal: Which database?",
      false,
      undefined,
    ]);
    // The dialog still shows (paneView reads it as nothing telling, below), or the answered
    // question's turn goes on: still waiting as recorded, until PostToolUse says otherwise.
    for (const pane of ["unknown", "working", "permission-dialog"] as const)
      expect(effectiveState(facts({ pane }), asked).state).toBe("needs-answer");
    expect(effectiveState(facts({}), asked).state).toBe("needs-answer");
    // A fresh record (the dialog may not be drawn yet) is believed.
    const fresh = { ...asked, updated: started + 60_000 - HOOK_GRACE_MS + 1 };
    expect(effectiveState(facts({ pane: "prompt" }), fresh).state).toBe("needs-answer");
    // A working or idle record at its prompt is left as it is (the rule is the question's only).
    expect(effectiveState(facts({ pane: "prompt" }), rec("working", started + 1000)).state).toBe(
      "working",
    );
  });

  test("paneView: Claude Code 2.1.331's question dialog, in each state it was captured in, is no prompt; declined, it is", () => {
    // Captured with the real binary (tests/dashboard.test.ts): the dialog as drawn, after Down,
    // and with "Type something." chosen and typed into; then the pane after Esc.
    const rule = "─".repeat(60);
    const head = `❯ pick a database\n${rule}\n ☐ Database\nWhich database for x?\n`;
    const foot = `${rule}\n  4. Chat about this\nEnter to select · ↑/↓ to navigate · Esc to cancel\n`;
    const dialogs = [
      `${head}❯ 1. Postgres\n     relational\n  2. SQLite\n     embedded\n  3. Type something.\n${foot}`,
      `${head}  1. Postgres\n     relational\n❯ 2. SQLite\n     embedded\n  3. Type something.\n${foot}`,
      `${head}  1. Postgres\n     relational\n  2. SQLite\n     embedded\n❯ 3. MariaDB\n${foot}`,
    ];
    for (const d of dialogs) expect(paneView(d)).toBe("unknown");
    const declined = `❯ pick a database\n● Declined to answer Claude's questions:\n  ⎿  · Which database for x? (Postgres / SQLite)\n${rule}\n❯ \n${rule}\n  ⏸ manual mode on · ? for shortcuts\n`;
    expect(paneView(declined)).toBe("prompt");
  });

  test("paneView reads Claude Code's input box, its dialog and a turn in progress", () => {
    const rule = "─".repeat(40);
    expect(paneView(`hello\n${rule}\n❯ \n${rule}\n  ? for shortcuts\n`)).toBe("prompt");
    expect(paneView(`Bash command\n  sleep 20\nDo you want to proceed?\n❯ 1. Yes\n  2. No\n`)).toBe(
      "permission-dialog",
    );
    expect(paneView(`✻ Working… (esc to interrupt)\n${rule}\n❯ \n${rule}\n`)).toBe("working");
    // A dialog's ❯ is not under a rule; quoted text far up is not the pane's state.
    expect(paneView("❯ 1. Yes\n  2. No\n")).toBe("unknown");
  });
});

test("faultLine: a full disk names the folder, the fix and the retry", () => {
  const e = Object.assign(new Error("ENOSPC: no space left on device, mkdir '/ws/agent-5'"), {
    code: "ENOSPC",
  });
  expect(faultLine(e, "/ws", "agentctl reconcile 5")).toBe(
    "ENOSPC: no space left on device, mkdir '/ws/agent-5': the disk of /ws is full; free space there (df -h /ws), then run 'agentctl reconcile 5'",
  );
});

test("journal: a restart owed by a cut-off apply is carried over in the same boot only", () => {
  expect(carriedOver(journal(), "boot-1")).toEqual({
    restart_owed: "the API key changed",
    reload_owed: false,
  });
  expect(carriedOver(journal(), "boot-2")).toEqual({ restart_owed: null, reload_owed: false });
  expect(carriedOver(journal({ ok: true, finished: 1 }), "boot-1")).toEqual({
    restart_owed: null,
    reload_owed: false,
  });
  expect(carriedOver(journal({ reload_owed: true }), "boot-2").reload_owed).toBe(true);
  expect(carriedOver(undefined, "boot-1")).toEqual({ restart_owed: null, reload_owed: false });
});

// Issue 22, point 7: a needs-permission agent's WHY names the command it waits to run, even when
// the PermissionRequest hook was lost (or came after the Notification): the recorder reads the
// tool use at the transcript's end.
describe("the command a permission prompt waits on", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "pending-tool-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const transcript = (lines: unknown[]) => {
    const f = path.join(dir, "t.jsonl");
    fs.writeFileSync(f, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    return f;
  };
  const assistant = (content: unknown[]) => ({
    type: "assistant",
    message: { role: "assistant", content },
  });

  test("lastToolUse: the last tool_use block of the last assistant line that has one", () => {
    const f = transcript([
      assistant([{ type: "tool_use", id: "t1", name: "Bash", input: { command: "ls" } }]),
      {
        type: "user",
        message: { role: "user", content: [{ type: "tool_result", tool_use_id: "t1" }] },
      },
      assistant([
        { type: "text", text: "now this" },
        { type: "tool_use", id: "t2", name: "Bash", input: { command: "sleep 20" } },
      ]),
    ]);
    expect(lastToolUse(f)).toEqual({ name: "Bash", input: { command: "sleep 20" } });
    expect(lastToolUse(path.join(dir, "none.jsonl"))).toBeUndefined();
    expect(lastToolUse("relative.jsonl")).toBeUndefined();
    fs.symlinkSync(f, path.join(dir, "link.jsonl"));
    expect(lastToolUse(path.join(dir, "link.jsonl"))).toBeUndefined();
  });

  test("a permission_prompt with no PermissionRequest before it: WHY is the command, not 'Claude needs your permission'", () => {
    const f = transcript([
      assistant([{ type: "tool_use", id: "t", name: "Bash", input: { command: "sleep 20" } }]),
    ]);
    const stateDir = path.join(dir, "agent-1");
    fs.mkdirSync(stateDir);
    const env = { AGENT_HOST_STATE_DIR: stateDir };
    recordHook(
      env,
      JSON.stringify({ hook_event_name: "UserPromptSubmit", prompt: "wait a bit" }),
      1000,
    );
    recordHook(
      env,
      JSON.stringify({
        hook_event_name: "Notification",
        notification_type: "permission_prompt",
        message: "Claude needs your permission to use Bash",
        transcript_path: f,
      }),
      2000,
    );
    const rec = readStatus(stateDir);
    expect([rec?.state, rec?.reason]).toEqual(["needs-permission", "Bash: sleep 20"]);
  });
});

test("applyAlive: a zombie, or a pid reused by another program, is no running apply", () => {
  const proc = fs.mkdtempSync(path.join(os.tmpdir(), "proc-"));
  const fake = (pid: number, state: string, argv: string[]) => {
    fs.mkdirSync(path.join(proc, String(pid)));
    fs.writeFileSync(path.join(proc, String(pid), "stat"), `${pid} (node) ${state} 1 1 1`);
    fs.writeFileSync(path.join(proc, String(pid), "cmdline"), `${argv.join("\0")}\0`);
  };
  try {
    fake(10, "S", ["node", "/usr/local/lib/agent-host/agent-host.js", "apply", "--agents", "3"]);
    fake(11, "Z", ["node", "/usr/local/lib/agent-host/agent-host.js", "apply"]);
    fake(12, "S", ["sshd: agent-admin"]);
    expect([10, 11, 12, 13].map((pid) => applyAlive(pid, proc))).toEqual([
      true,
      false,
      false,
      false,
    ]);
  } finally {
    fs.rmSync(proc, { recursive: true, force: true });
  }
});
