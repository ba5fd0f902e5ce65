// agentctl reconcile, restart and logs without tmux or root (host/agents/reconcile.ts): the arguments and
// their refusals, the plan (which agents to add, respawn and stop), the stagger, the window list
// as tmux prints it, and the output. tests/agentctl.test.ts proves the same against a real tmux
// server, and tests/git-checkouts.test.ts the checkouts.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AGENTCTL_KEYS, agentctlConf } from "../host/agents/agentctl";
import { SCRIPT_VARS, parseHostConf } from "../host/conf/conf";
import {
  agentsWithWindows,
  liveAgents,
  namesOrNone,
  paneTail,
  parseLogsArgs,
  parseReconcileArgs,
  parseRestartArgs,
  planReconcile,
  reconcileJson,
  reconcileText,
  resolveAgent,
  runningCount,
  staggerDelay,
} from "../host/agents/reconcile";
import { UsageError } from "../host/agents/send";
import { parseWindowList, type Window } from "../host/agents/tmux";
import { AGENTCTL } from "./host-files";

const FILE = "/etc/agent-host/host.conf";
const conf = (text = "AGENT_COUNT=3\nAGENT_MAX=12\n") => parseHostConf(text, FILE);

const live = (id: string): Window => ({ id, dead: false, pid: "100", code: "" });
const dead = (id: string, code = "137"): Window => ({ id, dead: true, pid: "100", code });
const windows = (entries: Record<string, Window>) => new Map(Object.entries(entries));

/** The UsageError (exit 2) `fn` throws, as its message. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("parseReconcileArgs", () => {
  test("a count, --json and --boot in any order; the count defaults to AGENT_COUNT", () => {
    expect(parseReconcileArgs(["12", "--json"], conf())).toEqual({
      count: 12,
      json: true,
      boot: false,
    });
    expect(parseReconcileArgs(["--boot", "--json", "5"], conf())).toEqual({
      count: 5,
      json: true,
      boot: true,
    });
    expect(parseReconcileArgs([], conf())).toEqual({ count: 3, json: false, boot: false });
    expect(parseReconcileArgs(["12"], conf()).count).toBe(12);
  });

  // The wording is the point: agentctl.test.ts checks the same lines through agentctl.
  test.each([
    [
      ["-1"],
      "invalid agent count '-1': give a whole number from 1 to 12 (AGENT_MAX), e.g. 'agentctl reconcile 12'",
    ],
    [
      ["abc"],
      "invalid agent count 'abc': give a whole number from 1 to 12 (AGENT_MAX), e.g. 'agentctl reconcile 12'",
    ],
    [
      ["0"],
      "invalid agent count '0': give a whole number from 1 to 12 (AGENT_MAX), e.g. 'agentctl reconcile 12'",
    ],
    [
      ["012"],
      "invalid agent count '012': give a whole number from 1 to 12 (AGENT_MAX), e.g. 'agentctl reconcile 12'",
    ],
    [
      ["13"],
      `agent count 13 is above AGENT_MAX=12 (sized from this machine's memory in ${FILE}); use at most 12 or deploy a larger machineType`,
    ],
    [["3", "4"], "reconcile takes one count, got '3' and '4'; run e.g. 'agentctl reconcile 12'"],
    [
      ["--jsn"],
      "invalid agent count '--jsn': give a whole number from 1 to 12 (AGENT_MAX), e.g. 'agentctl reconcile 12'",
    ],
  ])("%j is refused: %s", (argv, message) => {
    expect(refusal(() => parseReconcileArgs(argv, conf()))).toBe(message);
  });

  test("a bad AGENT_COUNT is named with its file when no count is given, and ignored when one is", () => {
    const bad = conf("AGENT_COUNT=many\nAGENT_MAX=12\n");
    expect(refusal(() => parseReconcileArgs(["--json"], bad))).toBe(
      `AGENT_COUNT=many in ${FILE} is not a whole number from 1 to 12; fix the config or pass a count: 'agentctl reconcile 12'`,
    );
    expect(parseReconcileArgs(["4"], bad).count).toBe(4);
  });

  test("AGENT_COUNT above AGENT_MAX is refused like a count above it", () => {
    expect(refusal(() => parseReconcileArgs([], conf("AGENT_COUNT=30\nAGENT_MAX=24\n")))).toMatch(
      /^agent count 30 is above AGENT_MAX=24 /,
    );
  });
});

describe("staggerDelay: k × START_STAGGER_SECONDS, printed as awk printed it", () => {
  test.each([
    [0, 2, "0"],
    [1, 2, "2"],
    [11, 2, "22"],
    [3, 0.05, "0.15"],
    [3, 0.1, "0.3"],
    [7, 0.35, "2.45"],
    [1, 0.5, "0.5"],
    [2, 1.25, "2.5"],
    [5, 0, "0"],
    [3, 1 / 3, "1"],
    [1, 1 / 3, "0.333333"],
    [1, 0.00001, "1e-05"],
    [1, 1234567.5, "1.23457e+06"],
  ])("k=%d, s=%d: %s", (k, s, text) => {
    expect(staggerDelay(k, s)).toBe(text);
  });
});

describe("planReconcile: which agents to add, respawn and stop", () => {
  test("0 → 12: every agent is added, 0, 2, 4, … s apart", () => {
    const plan = planReconcile(windows({ control: live("@0") }), 12, 2);
    expect(plan.starts.map((s) => s.agent)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(plan.starts.map((s) => s.delay)).toEqual([
      "0",
      "2",
      "4",
      "6",
      "8",
      "10",
      "12",
      "14",
      "16",
      "18",
      "20",
      "22",
    ]);
    expect(plan.starts.every((s) => !s.restart)).toBe(true);
    expect(plan.surplus).toEqual([]);
  });

  test("12 → 12 with every pane alive: nothing to do", () => {
    const all = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [`agent-${i + 1}`, live(`@${i + 1}`)]),
    );
    expect(planReconcile(windows(all), 12, 2)).toEqual({ starts: [], surplus: [] });
  });

  test("dead panes are respawned with their exit code, missing ones added; the stagger counts only starts", () => {
    const w = windows({
      control: live("@0"),
      "agent-1": live("@1"),
      "agent-2": dead("@2", "137"),
      "agent-4": live("@4"),
      "agent-5": dead("@5", ""),
    });
    expect(planReconcile(w, 5, 0.5).starts).toEqual([
      { agent: 2, delay: "0", restart: true, exitCode: "137" },
      { agent: 3, delay: "0.5", restart: false, exitCode: "?" },
      { agent: 5, delay: "1", restart: true, exitCode: "?" },
    ]);
  });

  test("12 → 3: agents above the count with a window are surplus, dead or alive, in number order", () => {
    const w = windows({
      "agent-10": live("@10"),
      "agent-2": live("@2"),
      "agent-4": dead("@4"),
      "agent-12": live("@12"),
      "agent-3": live("@3"),
      "agent-1": live("@1"),
      "agent-04": live("@99"),
      "agent-x": live("@98"),
      control: live("@0"),
    });
    expect(planReconcile(w, 3, 2)).toEqual({ starts: [], surplus: [4, 10, 12] });
  });

  test("the prefix pitfall: agent-1 missing while agent-10 exists adds agent-1", () => {
    const w = windows({ "agent-10": live("@10"), "agent-2": live("@2") });
    expect(planReconcile(w, 10, 2).starts.map((s) => s.agent)).toEqual([1, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("running counts live panes of agents 1..count only", () => {
    const w = windows({ "agent-1": live("@1"), "agent-2": dead("@2"), "agent-4": live("@4") });
    expect(runningCount(w, 3)).toBe(1);
    expect(runningCount(w, 4)).toBe(2);
    expect(liveAgents(w, [1, 2, 3, 4])).toEqual([1, 4]);
  });
});

describe("parseWindowList: list-windows as agentctl asks for it", () => {
  test("dead panes get their exit code (128 + signal for a signal), names keep '|', duplicates by id", () => {
    const listing = [
      "@0|0|10|||control",
      "@1|0|11|||agent-1",
      "@2|1|12|1||agent-2",
      "@3|1|13||9|agent-3",
      "@4|1|14|||agent-4",
      "@5|0|15|||agent-1",
      "@6|0|16|||odd|name",
      "",
    ].join("\n");
    const { byName, duplicates } = parseWindowList(listing);
    expect(byName.get("agent-1")).toEqual({ id: "@1", dead: false, pid: "11", code: "" });
    expect(byName.get("agent-2")).toEqual({ id: "@2", dead: true, pid: "12", code: "1" });
    expect(byName.get("agent-3")?.code).toBe("137");
    expect(byName.get("agent-4")?.code).toBe("");
    expect(byName.has("odd|name")).toBe(true);
    expect(duplicates).toEqual(["@5"]);
    expect(agentsWithWindows(byName)).toEqual([1, 2, 3, 4]);
  });
});

describe("output", () => {
  const summary = { desired: 5, added: [4, 5], removed: [], restarted: [2], running: 5 };

  test("--json: one line, keys in agentctl's order", () => {
    expect(reconcileJson(summary)).toBe(
      '{"desired":5,"added":["agent-4","agent-5"],"removed":[],"restarted":["agent-2"],"running":5}\n',
    );
  });

  test("text: what changed, 'none' for an empty list, or no change", () => {
    expect(reconcileText(summary)).toBe(
      "reconcile: desired 5, running 5; added agent-4 agent-5; removed none; restarted agent-2\n",
    );
    expect(reconcileText({ ...summary, added: [], restarted: [] })).toBe(
      "reconcile: desired 5, running 5; no change\n",
    );
    expect(namesOrNone([])).toBe("none");
    expect(namesOrNone([3, 7])).toBe("agent-3 agent-7");
  });
});

describe("restart and logs arguments", () => {
  const w = windows({ control: live("@0"), "agent-1": live("@1"), "agent-10": dead("@10") });

  test("restart takes exactly one argument, or apply's `all --if-any`", () => {
    expect(parseRestartArgs(["all"])).toEqual({ target: "all", ifAny: false });
    expect(parseRestartArgs(["3"])).toEqual({ target: "3", ifAny: false });
    expect(parseRestartArgs(["all", "--if-any"])).toEqual({ target: "all", ifAny: true });
    for (const argv of [[], ["1", "2"], ["3", "--if-any"], ["--if-any"], ["--if-any", "all"]])
      expect(refusal(() => parseRestartArgs(argv))).toBe(
        "restart takes one argument, N or all (all --if-any: none is no error); e.g. 'agentctl restart 3'",
      );
  });

  test("an agent is N of an existing agent-N window; otherwise the refusal lists the agents", () => {
    expect(resolveAgent(w, "10", "restart")).toEqual({ agent: 10, window: dead("@10") });
    expect(refusal(() => resolveAgent(w, "99", "restart"))).toBe(
      "restart: there is no agent-99 (agents here: agent-1 agent-10); run 'agentctl status' to see them",
    );
    expect(refusal(() => resolveAgent(new Map(), "2", "logs"))).toBe(
      "logs: there is no agent-2 (agents here: none); run 'agentctl status' to see them",
    );
    for (const bad of ["0", "01", "agent-1", "-1", ""])
      expect(refusal(() => resolveAgent(w, bad, "attach"))).toBe(
        `attach: '${bad}' is not an agent number; give N as in agent-N, e.g. 'agentctl attach 3'`,
      );
  });

  test("logs N [--lines K | --lines=K], 100 lines by default", () => {
    expect(parseLogsArgs(["3"])).toEqual({ agent: "3", lines: 100 });
    expect(parseLogsArgs(["--lines", "5", "3"])).toEqual({ agent: "3", lines: 5 });
    expect(parseLogsArgs(["3", "--lines=7"])).toEqual({ agent: "3", lines: 7 });
    expect(refusal(() => parseLogsArgs([]))).toBe(
      "logs needs an agent number, e.g. 'agentctl logs 3'",
    );
    expect(refusal(() => parseLogsArgs(["3", "--lines"]))).toBe(
      "logs: --lines needs a number, e.g. 'agentctl logs 3 --lines 50'",
    );
    expect(refusal(() => parseLogsArgs(["3", "4"]))).toBe(
      "logs takes one agent number, got '3' and '4'",
    );
    expect(refusal(() => parseLogsArgs(["3", "--lines=0"]))).toBe(
      "logs: --lines '0' is not a whole number >= 1, e.g. '--lines 50'",
    );
  });

  test("a pane's text: trailing blank lines of an idle screen dropped, then the last K lines", () => {
    const captured = "one\ntwo\n\nthree\n  \t\n\n\n";
    expect(paneTail(captured, 100)).toBe("one\ntwo\n\nthree\n");
    expect(paneTail(captured, 2)).toBe("\nthree\n");
    expect(paneTail("\n\n", 10)).toBe("");
  });
});

describe("the host.conf keys agentctl checks", () => {
  test("agent-host.js checks exactly the keys agentctl's load_config reads (its SCRIPT_VARS)", () => {
    const text = fs.readFileSync(AGENTCTL, "utf8");
    expect(text).toMatch(/^ {2}conf="\$\(.* conf --as agentctl --vars agentctl\)"/m);
    expect([...AGENTCTL_KEYS].sort()).toEqual(Object.values(SCRIPT_VARS.agentctl).sort());
  });

  test("a bad value of one of them is refused naming key, value and file; another key's is not", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reconcile-unit-"));
    const file = path.join(dir, "host.conf");
    const logged: string[] = [];
    try {
      fs.writeFileSync(file, "PERMISSION_MODE=yolo\nNO_SUCH_KEY=1\n");
      const message = refusal(() => agentctlConf({ AGENTCTL_CONFIG: file }, (l) => logged.push(l)));
      expect(message).toMatch(new RegExp(`^PERMISSION_MODE=yolo in ${file} .*use one of: `));
      expect(logged).toEqual([`warning: ${file}:2: unknown key NO_SUCH_KEY, ignored`]);
      // A key only apply reads (DOCKER_KEY_URL) does not stop agentctl, as before.
      fs.writeFileSync(file, "DOCKER_KEY_URL=ftp://x\nAGENT_COUNT=4\n");
      expect(agentctlConf({ AGENTCTL_CONFIG: file }, () => undefined).agentCount).toBe(4);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
