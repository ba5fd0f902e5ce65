// The auto-stop decision as a table: agent states × presence × time → off / held (why) /
// waiting (until when) / stop. Pure: no tmux, no root.
import {
  activityText,
  agentsIdleFor,
  decide,
  describeDecision,
  shortDuration,
  type AgentActivity,
  type AutoStopDecision,
  type AutoStopInput,
} from "../host/cost/autostop";
import { sshSessionOf } from "../host/cost/presence";
import { stopArgv } from "../host/cost/autostop-run";

const MIN = 60_000;
const BOOT = 1_000_000_000_000;
const HOUR = 60 * MIN;
const nobody = { tmuxClients: [], sshSessions: [] };
const idle = (n: number, sinceMin: number): AgentActivity => ({
  n,
  state: "idle",
  since: BOOT + sinceMin * MIN,
});
const input = (over: Partial<AutoStopInput>): AutoStopInput => ({
  now: BOOT + 3 * HOUR,
  limitMs: HOUR,
  bootAt: BOOT,
  agents: [idle(1, 10), idle(2, 20)],
  presence: nobody,
  ...over,
});

describe("decide", () => {
  const cases: [string, Partial<AutoStopInput>, AutoStopDecision][] = [
    ["0 minutes: off, whatever else", { limitMs: 0 }, { kind: "off" }],
    [
      "every agent idle long enough, nobody there: stop",
      {},
      { kind: "stop", quietSince: BOOT + 20 * MIN },
    ],
    [
      "idle, but the last one only 30 min ago: waiting",
      { agents: [idle(1, 10), idle(2, 150)] },
      { kind: "waiting", quietSince: BOOT + 150 * MIN, stopAt: BOOT + 210 * MIN },
    ],
    [
      "waiting on a person (permission, question) counts as idle",
      {
        agents: [
          { n: 1, state: "needs-permission", since: BOOT + 30 * MIN, reason: "Bash: rm -rf build" },
          { n: 2, state: "needs-answer", since: BOOT + 40 * MIN },
          { n: 3, state: "signed-out", since: BOOT + 5 * MIN },
          { n: 4, state: "exited" },
          { n: 5, state: "crashed" },
          { n: 6, state: "missing" },
        ],
      },
      { kind: "stop", quietSince: BOOT + 40 * MIN },
    ],
    [
      "an agent in a turn (a tool running): held",
      {
        agents: [
          idle(1, 10),
          { n: 2, state: "working", since: BOOT + 20 * MIN, reason: "Bash: npm test" },
        ],
      },
      { kind: "held", reasons: ["agent-2 working (Bash: npm test)"] },
    ],
    [
      "an agent still starting: held",
      { agents: [{ n: 1, state: "starting", reason: "claude is starting" }] },
      { kind: "held", reasons: ["agent-1 starting (claude is starting)"] },
    ],
    [
      "a tmux client attached: held",
      { presence: { tmuxClients: ["/dev/pts/3 pid 4242"], sshSessions: [] } },
      { kind: "held", reasons: ["tmux client attached (/dev/pts/3 pid 4242)"] },
    ],
    [
      "an SSH session: held",
      { presence: { tmuxClients: [], sshSessions: ["agent-admin@notty (pid 77)"] } },
      { kind: "held", reasons: ["SSH session agent-admin@notty (pid 77)"] },
    ],
    [
      "everything at once: every reason, agents first",
      {
        agents: [{ n: 4, state: "working" }],
        presence: { tmuxClients: ["/dev/pts/1 pid 1"], sshSessions: ["a@pts/0 (pid 2)"] },
      },
      {
        kind: "held",
        reasons: [
          "agent-4 working",
          "tmux client attached (/dev/pts/1 pid 1)",
          "SSH session a@pts/0 (pid 2)",
        ],
      },
    ],
    [
      "someone left 10 minutes ago: the quiet time starts when they left",
      { lastBusyAt: BOOT + 170 * MIN },
      { kind: "waiting", quietSince: BOOT + 170 * MIN, stopAt: BOOT + 230 * MIN },
    ],
    [
      "just booted: the quiet time starts at boot, not at the agents' old states",
      { now: BOOT + 30 * MIN, agents: [{ n: 1, state: "idle", since: BOOT - 5 * HOUR }] },
      { kind: "waiting", quietSince: BOOT, stopAt: BOOT + HOUR },
    ],
    [
      "no agents at all (tmux down), nobody there: stop after the quiet time from boot",
      { agents: [] },
      { kind: "stop", quietSince: BOOT },
    ],
    [
      "exactly at the limit: stop",
      { now: BOOT + 80 * MIN },
      { kind: "stop", quietSince: BOOT + 20 * MIN },
    ],
    [
      "one second before the limit: waiting",
      { now: BOOT + 80 * MIN - 1000 },
      { kind: "waiting", quietSince: BOOT + 20 * MIN, stopAt: BOOT + 80 * MIN },
    ],
    [
      "a state change in the future (clock skew) never pushes the quiet time past now",
      { agents: [idle(1, 500)] },
      { kind: "waiting", quietSince: BOOT + 3 * HOUR, stopAt: BOOT + 4 * HOUR },
    ],
  ];
  test.each(cases)("%s", (_label, over, expected) => {
    expect(decide(input(over))).toEqual(expected);
  });
});

describe("describeDecision: the status line says when, or why not", () => {
  const now = BOOT + 3 * HOUR;
  test.each<[AutoStopDecision, string]>([
    [{ kind: "off" }, "auto-stop: off (autoStopMinutes 0)"],
    [
      { kind: "waiting", quietSince: now - 25 * MIN, stopAt: now + 35 * MIN },
      "auto-stop: in 35m00s (quiet for 25m00s: every agent idle or waiting on you, nobody attached)",
    ],
    [
      {
        kind: "held",
        reasons: ["agent-2 working (Bash: npm test)", "SSH session a@pts/0 (pid 9)"],
      },
      "auto-stop: not counting (1h00m of quiet needed): agent-2 working (Bash: npm test); SSH session a@pts/0 (pid 9)",
    ],
    [
      { kind: "held", reasons: ["a", "b", "c", "d", "e", "f"] },
      "auto-stop: not counting (1h00m of quiet needed): a; b; c; d; +2 more",
    ],
    [{ kind: "stop", quietSince: now - HOUR }, "auto-stop: stopping now (quiet for 1h00m)"],
  ])("%j", (decision, line) => {
    expect(describeDecision(decision, now, HOUR)).toBe(line);
  });
});

test.each([
  [0, "0s"],
  [59_400, "59s"],
  [61_000, "1m01s"],
  [3_600_000, "1h00m"],
  [90_000_000, "1d01h"],
])("shortDuration(%d) = %s", (ms, text) => expect(shortDuration(ms)).toBe(text));

describe("agentsIdleFor", () => {
  test("from the latest state change when none is busy", () => {
    expect(agentsIdleFor([idle(1, 10), idle(2, 20)], BOOT + 50 * MIN, BOOT)).toBe(30 * MIN);
  });
  test("undefined while one works", () => {
    expect(
      agentsIdleFor([idle(1, 10), { n: 2, state: "working" }], BOOT + HOUR, BOOT),
    ).toBeUndefined();
  });
});

describe("sshSessionOf: only authenticated sessions count", () => {
  test.each([
    ["sshd: agent-admin@pts/0                    ", "agent-admin@pts/0"],
    ["sshd: agent-admin@notty", "agent-admin@notty"],
    ["sshd-session: alice@pts/12", "alice@pts/12"],
    ["sshd: root@notty\0", "root@notty"],
  ])("%j → %s", (title, session) => expect(sshSessionOf(title)).toBe(session));
  test.each([
    "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
    "sshd: agent-admin [priv]",
    "sshd: unknown [preauth]",
    "sshd: 203.0.113.9 [net]",
    "/usr/sbin/sshd -D",
    "bash -c echo sshd: root@pts/0",
  ])("%j → none", (title) => expect(sshSessionOf(title)).toBeUndefined());
});

test("the stop command is argv, never a shell", () => {
  expect(stopArgv("systemctl poweroff")).toEqual(["systemctl", "poweroff"]);
  expect(stopArgv("  /usr/local/bin/record-stop  --flag ")).toEqual([
    "/usr/local/bin/record-stop",
    "--flag",
  ]);
  expect(stopArgv("")).toEqual(["systemctl", "poweroff"]);
});

// Issue 22, point 7: the cost line said "every agent idle" while agents waited for permission.
test("the cost line says 'every agent idle' only when each one is, and names those waiting", () => {
  const at = (n: number, state: string): AgentActivity => ({ n, state, since: BOOT });
  expect(activityText([at(1, "idle"), at(2, "idle")], 12 * MIN + 3000)).toBe(
    "every agent idle for 12m03s",
  );
  expect(
    activityText([at(1, "idle"), at(3, "needs-permission"), at(5, "needs-answer")], 2 * MIN),
  ).toBe("none busy for 2m00s; agent-3 waits for permission, agent-5 waits for an answer");
  expect(activityText([at(1, "working"), at(2, "needs-permission")], undefined)).toBe(
    "1 of 2 agents busy",
  );
});
