// `agentctl status`'s rows without tmux or root (host/attention/status.ts): the process state from the
// window and the wrapper's run files, sign-in, CPU and memory of a process tree, and the table
// and JSON as printed. tests/agentctl.test.ts proves the same against a real tmux server.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  alignColumns,
  COLUMNS,
  humanBytes,
  processState,
  readProcs,
  signinState,
  STABLE_RUN_SECONDS,
  toJson,
  toTable,
  treeUsage,
  unsavedText,
  type StatusRow,
} from "../host/attention/status";

const live = { id: "@3", dead: false, panePid: 100 };
const alive = (up: number) => (pid: number) => (pid === 4242 ? up : undefined);

describe("processState: the window and the wrapper's run files", () => {
  test("no window: missing", () => {
    expect(processState(undefined, {}, alive(5))).toMatchObject({ state: "missing", pid: null });
  });

  test("a dead pane: exited, with its code or ? when tmux gave none", () => {
    expect(processState({ ...live, dead: true, exitCode: 137 }, {}, alive(5))).toEqual({
      state: "exited",
      text: "exited (code 137)",
      exitCode: 137,
      pid: null,
    });
    expect(processState({ ...live, dead: true }, {}, alive(5)).text).toBe("exited (code ?)");
  });

  test("a dead pane agentctl stopped a moment ago (restart, scale-down): restarting, not exited", () => {
    expect(processState({ ...live, dead: true, exitCode: 0 }, {}, alive(5), true)).toEqual({
      state: "restarting",
      text: "stopping (agentctl restart or scale-down)",
      exitCode: 0,
      pid: null,
    });
  });

  test("claude alive: running, with its pid", () => {
    expect(processState(live, { pid: "4242" }, alive(300))).toEqual({
      state: "running",
      text: "running",
      exitCode: null,
      pid: 4242,
    });
  });

  test(`alive, but younger than ${STABLE_RUN_SECONDS} s after two runs shorter than that: restarting`, () => {
    const files = { pid: "4242", lastRun: "1700000000 3 4", lastExit: "1", lastExitReason: "boom" };
    expect(processState(live, files, alive(2))).toEqual({
      state: "restarting",
      text: "restarting (exited with code 1 after 3s: boom)",
      exitCode: 1,
      pid: 4242,
    });
    // One short run, after a long one or none (a fresh wrapper): one crash is not a loop.
    for (const lastRun of ["1700000000 3 600", "1700000000 3 -", "1700000000 600 3"])
      expect(processState(live, { ...files, lastRun }, alive(2)).state).toBe("running");
    // This run has lasted: it is running again.
    expect(processState(live, files, alive(STABLE_RUN_SECONDS)).state).toBe("running");
  });

  test("no live claude after a crash: restarting (the wrapper's backoff); before any: starting", () => {
    expect(processState(live, { pid: "4242", lastExit: "2" }, alive(0)).state).toBe("running");
    expect(processState(live, { pid: "999", lastExit: "2" }, alive(0))).toEqual({
      state: "restarting",
      text: "restarting (exited with code 2)",
      exitCode: 2,
      pid: null,
    });
    expect(processState(live, { pid: "999" }, alive(0)).state).toBe("starting");
    expect(processState(live, {}, alive(0)).state).toBe("starting");
  });
});

describe("signinState: the pane first, then what the wrapper handed claude", () => {
  test.each([
    ["401 invalid x-api-key · retrying in 2s · attempt 4/10", "api-key config", "key-rejected"],
    ["Invalid API key · Fix external API key", "api-key config", "key-rejected"],
    ["Not logged in · Please run /login", "none", "needs-login"],
    ["❯ ", "none", "needs-login"],
    ["❯ ", "oauth-token login", "signed-in"],
    ["❯ ", "vertex", "signed-in"],
    ["❯ ", undefined, null],
  ])("pane %j, auth %j → %j", (pane, auth, expected) => {
    expect(signinState(true, auth, pane, false)).toBe(expected);
  });

  test("nothing handed over: a /login made in that window signs it in", () => {
    expect(signinState(true, "none", "❯ ", true)).toBe("signed-in");
  });

  test("no live pane: unknown", () => {
    expect(signinState(false, "api-key config", "Invalid API key", false)).toBeNull();
  });

  test("a port number with 401 in it is not a refused key", () => {
    expect(signinState(true, "api-key config", "listening on :14010 invalid", false)).toBe(
      "signed-in",
    );
  });
});

describe("treeUsage: claude and everything it started", () => {
  const procs = new Map([
    [10, { ppid: 1, cpuTicks: 1000, startTicks: 0, rssPages: 100 }], // the wrapper
    [11, { ppid: 10, cpuTicks: 500, startTicks: 1000, rssPages: 10 }], // claude
    [12, { ppid: 11, cpuTicks: 300, startTicks: 2000, rssPages: 5 }], // a tool
    [13, { ppid: 12, cpuTicks: 0, startTicks: 5000, rssPages: 1 }], // its child
    [20, { ppid: 1, cpuTicks: 9999, startTicks: 0, rssPages: 999 }], // someone else
    [30, { ppid: 31, cpuTicks: 0, startTicks: 0, rssPages: 1 }], // a cycle: never loops
    [31, { ppid: 30, cpuTicks: 0, startTicks: 0, rssPages: 1 }],
  ]);

  test("memory sums the subtree; CPU% is ps's pcpu per process (time over whole seconds)", () => {
    // uptime 110 s: claude 100 s old with 5 s of CPU → 5.0%; the tool 90 s with 3 s → 3.3%;
    // its child 60 s with none → 0.
    expect(treeUsage(procs, 11, 110)).toEqual({ cpu: 8.3, rss: 16 * 4096 });
  });

  test("a process started this second counts no CPU (ps divides by whole seconds)", () => {
    expect(treeUsage(procs, 13, 50.5).cpu).toBe(0);
  });

  test("this test's own process, read from the real /proc", () => {
    const mine = readProcs().get(process.pid);
    expect(mine?.ppid).toBe(process.ppid);
    expect(mine?.rssPages).toBeGreaterThan(0);
  });

  test("a /proc it cannot read gives no processes", () => {
    expect(readProcs(path.join(os.tmpdir(), "no-such-proc")).size).toBe(0);
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), "status-proc-"));
    // A process name with spaces and parentheses: the fields start after the last ')'.
    fs.mkdirSync(path.join(fake, "77"));
    const fields = [
      "S",
      "5",
      ...Array(9).fill("0"),
      "40",
      "2",
      ...Array(6).fill("0"),
      "300",
      "0",
      "12",
    ];
    fs.writeFileSync(path.join(fake, "77", "stat"), `77 (a (b) c) ${fields.join(" ")}\n`);
    expect(readProcs(fake).get(77)).toEqual({
      ppid: 5,
      cpuTicks: 42,
      startTicks: 300,
      rssPages: 12,
    });
    fs.rmSync(fake, { recursive: true });
  });
});

const row = (over: Partial<StatusRow>): StatusRow => ({
  name: "agent-1",
  agent_state: "idle",
  state_seconds: 75,
  state_since: 1_700_000_000,
  needs_you: false,
  state: "running",
  exit_code: null,
  pid: 4242,
  uptime_seconds: 3700,
  cpu_percent: 1.25,
  memory_bytes: 5 * 1024 * 1024,
  workspace_bytes: 4096,
  branch: "agent-1",
  unsaved: true,
  uncommitted_files: 3,
  unpushed_commits: 2,
  restarts: 0,
  signin: "signed-in",
  auth: "api-key config",
  last_exit_reason: null,
  why: "finished its turn",
  ...over,
});

describe("the table and the JSON", () => {
  test("sizes and unsaved work as agentctl prints them", () => {
    expect([0, 512, 4096, 5 * 1024 * 1024, 3 * 1024 ** 4].map(humanBytes)).toEqual([
      "0B",
      "512B",
      "4.0KiB",
      "5.0MiB",
      "3.0TiB",
    ]);
    expect(unsavedText({ uncommitted_files: 3, unpushed_commits: 2 })).toBe(
      "3 uncommitted, 2 unpushed",
    );
    expect(unsavedText({ uncommitted_files: 0, unpushed_commits: 2 })).toBe("2 unpushed");
    expect(unsavedText({ uncommitted_files: 0, unpushed_commits: 0 })).toBe("no");
    expect(unsavedText({ uncommitted_files: null, unpushed_commits: null })).toBeUndefined();
  });

  test("JSON: every column, in COLUMNS order, null where nothing is known", () => {
    const out = JSON.parse(
      toJson([row({ pid: null, branch: null, unsaved: null, uncommitted_files: null })]),
    ) as { host: unknown; agents: Record<string, unknown>[] };
    expect(out.host).toEqual({ healthy: true, problems: [] });
    const [parsed] = out.agents;
    expect(Object.keys(parsed)).toEqual(COLUMNS.map((c) => c.key));
    expect(parsed).toMatchObject({ pid: null, branch: null, unsaved: null, needs_you: false });
  });

  test("table: the headed columns, '-' for nothing, WHY cut to 72 characters", () => {
    const why = "x".repeat(100);
    const lines = toTable([
      row({}),
      row({
        name: "agent-10",
        agent_state: "missing",
        state_seconds: null,
        pid: null,
        uptime_seconds: null,
        cpu_percent: null,
        memory_bytes: null,
        workspace_bytes: null,
        branch: null,
        uncommitted_files: null,
        unpushed_commits: null,
        signin: null,
        why,
      }),
    ])
      .trimEnd()
      .split("\n");
    expect(lines[0].split(/\s+/)).toEqual(COLUMNS.filter((c) => c.header).map((c) => c.header));
    expect(lines[1].split(/\s{2,}/)).toEqual([
      "agent-1",
      "idle",
      "1m15s",
      "4242",
      "1h01m",
      "1.3",
      "5.0MiB",
      "4.0KiB",
      "agent-1",
      "3 uncommitted, 2 unpushed",
      "0",
      "signed-in",
      "finished its turn",
    ]);
    const cells = lines[2].split(/\s{2,}/);
    expect(cells.slice(0, 3)).toEqual(["agent-10", "missing", "-"]);
    expect(cells[cells.length - 1]).toBe(`${"x".repeat(71)}…`);
  });

  test("alignColumns: two spaces between columns, no trailing spaces", () => {
    expect(
      alignColumns([
        ["a", "bb", "c"],
        ["ccc", "d", "e"],
      ]),
    ).toBe("a    bb  c\nccc  d   e");
  });
});
