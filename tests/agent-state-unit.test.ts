// The host logic's pure parts (host/*.ts), without tmux or root: the hook state machine fed the
// payloads the real Claude Code 2.1.331 sent (tests/fixtures/hook-payloads-2.1.331.jsonl, recorded
// from its hooks against the Messages API stand-in), the recorder's files, the merged state,
// the notification bodies and their delivery rules, and send's arguments.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawn, type ChildProcess } from "child_process";
import { waitFor } from "./support";
import { parseHostConf } from "../host/conf/conf";
import { descendantStartedSince, onItsWayBack, stopPending } from "../host/agents/facts";
import { effectiveState, sortForStatus, type ProcessFacts } from "../host/attention/effective";
import { recordHook } from "../host/attention/hook";
import {
  backoffMs,
  Notifier,
  parseWebhook,
  renderRequest,
  dashboardLink,
  type Delivery,
  type Message,
  type Request,
} from "../host/attention/notify";
import { parseSendArgs, refusal, UsageError } from "../host/agents/send";
import { applyHook, type HookInput, type Recorded, type Transition } from "../host/attention/state";
import { readBounded, readStatus, readTransitions } from "../host/attention/store";
import { oneLine, reasonText, redact } from "../host/attention/text";

const PAYLOADS: HookInput[] = fs
  .readFileSync(path.join(__dirname, "fixtures/hook-payloads-2.1.331.jsonl"), "utf8")
  .trim()
  .split("\n")
  .map((l) => JSON.parse(l) as HookInput);

function replay(inputs: HookInput[], t0 = 1_000_000, step = 1000) {
  let rec: Recorded | undefined;
  const states: string[] = [];
  const transitions: Transition[] = [];
  inputs.forEach((input, i) => {
    const r = applyHook(rec, input, t0 + i * step);
    if (r) {
      rec = r.next;
      if (r.transition) transitions.push(r.transition);
    }
    states.push(rec?.state ?? "none");
  });
  return { rec: rec as Recorded, states, transitions };
}

describe("the hook state machine, fed the real binary's payloads", () => {
  test("a permission, a question and a final answer, in the order 2.1.331 fires them", () => {
    const { states, transitions, rec } = replay(PAYLOADS);
    expect(PAYLOADS.map((p) => p.hook_event_name)).toEqual([
      "SessionStart",
      "UserPromptSubmit",
      "PreToolUse",
      "PermissionRequest",
      "PostToolUse",
      "PreToolUse",
      "PermissionRequest",
      "PostToolUse",
      "Stop",
    ]);
    expect(states).toEqual([
      "idle",
      "working",
      "working",
      "needs-permission",
      "working",
      "needs-answer",
      "needs-answer",
      "working",
      "idle",
    ]);
    const byState = (s: string) => transitions.filter((t) => t.state === s);
    expect(byState("needs-permission")).toHaveLength(1);
    expect(byState("needs-permission")[0]).toMatchObject({
      reason: "Bash: sleep 5 && echo done > /workspaces/agent-1/out.txt",
      notify: "needs-you",
    });
    expect(byState("needs-answer")).toEqual([
      expect.objectContaining({ reason: "Which color?", notify: "needs-you" }),
    ]);
    // The last line of the answer, and a turn with tool use is worth a message.
    expect(transitions[transitions.length - 1]).toMatchObject({
      state: "idle",
      reason: "The file is written.",
      notify: "turn-done",
    });
    expect(rec.turn).toBeUndefined();
    // seq counts transitions; since moves only with the state.
    expect(transitions.map((t) => t.seq)).toEqual(transitions.map((_, i) => i + 1));
  });

  test("as the managed settings deliver them (PreToolUse for AskUserQuestion only): same states, same messages", () => {
    const delivered = PAYLOADS.filter(
      (p) => p.hook_event_name !== "PreToolUse" || p.tool_name === "AskUserQuestion",
    );
    const { transitions } = replay(delivered);
    expect(transitions.map((t) => [t.state, t.notify ?? ""])).toEqual([
      ["idle", ""],
      ["working", ""],
      ["needs-permission", "needs-you"],
      ["working", ""],
      ["needs-answer", "needs-you"],
      ["working", ""],
      ["idle", "turn-done"],
    ]);
    // A turn whose only tool ran without asking is still real work.
    const quiet = replay([
      { hook_event_name: "UserPromptSubmit", prompt: "list files" },
      { hook_event_name: "PostToolUse", tool_name: "Bash", tool_input: { command: "ls" } },
      { hook_event_name: "Stop", last_assistant_message: "Two files." },
    ]);
    expect(quiet.transitions.pop()?.notify).toBe("turn-done");
  });

  test("the permission_prompt Notification after a PermissionRequest changes nothing", () => {
    const upTo = PAYLOADS.slice(0, 4);
    const { rec } = replay(upTo);
    const r = applyHook(
      rec,
      {
        hook_event_name: "Notification",
        notification_type: "permission_prompt",
        message: "Claude needs your permission to use Bash",
      },
      9e6,
    );
    expect(r).toBeUndefined();
    // Alone (no PermissionRequest hook seen), it names the tool the agent was about to run.
    const working = replay(PAYLOADS.slice(0, 3)).rec;
    const alone = applyHook(
      working,
      {
        hook_event_name: "Notification",
        notification_type: "permission_prompt",
        message: "Claude needs your permission to use Bash",
      },
      9e6,
    );
    expect(alone?.next).toMatchObject({
      state: "needs-permission",
      reason: expect.stringContaining("Bash: sleep 5"),
    });
  });

  test("idle_prompt never hides a pending question; compaction keeps a working agent working", () => {
    const asking = replay(PAYLOADS.slice(0, 6)).rec;
    expect(asking.state).toBe("needs-answer");
    expect(
      applyHook(asking, { hook_event_name: "Notification", notification_type: "idle_prompt" }, 9e6),
    ).toBeUndefined();
    const working = replay(PAYLOADS.slice(0, 2)).rec;
    expect(
      applyHook(working, { hook_event_name: "SessionStart", source: "compact" }, 9e6),
    ).toBeUndefined();
    expect(
      applyHook(working, { hook_event_name: "SessionStart", source: "resume" }, 9e6)?.next,
    ).toMatchObject({ state: "idle", reason: "ready: conversation resumed" });
  });

  test("a short turn without tools is not worth a message; a long one is", () => {
    const prompt = { hook_event_name: "UserPromptSubmit", prompt: "hi" };
    const stop = { hook_event_name: "Stop", last_assistant_message: "Hello!" };
    const short = replay([prompt, stop], 0, 2000).transitions.pop();
    expect(short).toMatchObject({ state: "idle", reason: "Hello!" });
    expect(short?.notify).toBeUndefined();
    const long = replay([prompt, stop], 0, 31_000).transitions.pop();
    expect(long?.notify).toBe("turn-done");
  });

  test("a refused login (StopFailure) is signed-out and needs you", () => {
    const working = replay(PAYLOADS.slice(0, 2)).rec;
    const r = applyHook(
      working,
      {
        hook_event_name: "StopFailure",
        error: "authentication_failed",
        error_details: "401 invalid x-api-key",
      },
      9e6,
    );
    expect(r?.transition).toMatchObject({ state: "signed-out", notify: "needs-you" });
    const other = applyHook(
      working,
      { hook_event_name: "StopFailure", error: "server_error" },
      9e6,
    );
    expect(other?.next.state).toBe("idle");
  });

  test("garbage and unknown events change nothing", () => {
    expect(applyHook(undefined, {}, 1)).toBeUndefined();
    expect(applyHook(undefined, { hook_event_name: "SubagentStart" }, 1)).toBeUndefined();
    // Fields of the wrong type are read as absent.
    expect(
      applyHook(undefined, { hook_event_name: "PreToolUse", tool_name: 3, tool_input: "x" }, 1)
        ?.next,
    ).toMatchObject({ state: "working", reason: "a tool" });
  });
});

describe("reasons: one line, bounded, token-shaped strings removed", () => {
  test.each([
    ["ANTHROPIC_API_KEY=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx claude", "sk-ant-api03"],
    ["curl -H 'Authorization: Bearer abcdefghijklmnopqrstuv' x", "abcdefghijklmnopqrstuv"],
    [
      "git push https://x-access-token:ghp_0123456789abcdefghijABCDEFGHIJ@github.com/a/b",
      "ghp_0123",
    ],
    ["git clone https://bob:hunter22@example.com/r.git", "hunter22"],
    ["export DB_PASSWORD=correct-horse-battery", "correct-horse"],
    ["echo xoxb-1234567890-abcdefghij", "xoxb-1234567890"],
    ["aws configure set AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"],
    [
      "key 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c",
      "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c",
    ],
    ["notify https://hooks.slack.com/services/T000/B000/XXXXXXXX", "hooks.slack.com/services"],
  ])("%s", (text, secret) => {
    const out = reasonText(text);
    expect(out).not.toContain(secret);
    expect(out).toContain("[redacted]");
  });

  test("ordinary commands survive; newlines and escapes become spaces; long text is cut", () => {
    expect(redact("npm test -- --runInBand src/a.test.ts")).toBe(
      "npm test -- --runInBand src/a.test.ts",
    );
    expect(oneLine("a\nb\x1b[2Jc\td")).toBe("a b [2Jc d");
    const long = reasonText("x".repeat(500));
    expect([...long]).toHaveLength(160);
    expect(long.endsWith("…")).toBe(true);
  });
});

describe("the recorder's files", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-state-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("each payload updates status.json atomically; transitions append; a restart reads both back", () => {
    const env = { AGENT_HOST_STATE_DIR: dir };
    PAYLOADS.forEach((p, i) => recordHook(env, JSON.stringify(p), 1000 + i));
    const status = readStatus(dir);
    expect(status).toMatchObject({ state: "idle", reason: "The file is written.", seq: 7 });
    expect(readTransitions(dir, 0).map((t) => t.state)).toEqual([
      "idle",
      "working",
      "needs-permission",
      "working",
      "needs-answer",
      "working",
      "idle",
    ]);
    expect(readTransitions(dir, 4).map((t) => t.seq)).toEqual([5, 6, 7]);
    // No temp file, no lock left behind.
    expect(fs.readdirSync(dir).sort()).toEqual(["events.jsonl", "status.json"]);
  });

  test("not an agent (no AGENT_HOST_STATE_DIR), or a payload that is not JSON: nothing written", () => {
    expect(recordHook({}, JSON.stringify(PAYLOADS[0]), 1)).toBe(false);
    expect(recordHook({ AGENT_HOST_STATE_DIR: dir }, "{not json", 1)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test("root never reads through a symlink, nor a file another user owns", () => {
    const secret = path.join(dir, "secret");
    fs.writeFileSync(secret, "root's secret");
    fs.symlinkSync(secret, path.join(dir, "status.json"));
    expect(readBounded(path.join(dir, "status.json"), 1000)).toBeUndefined();
    expect(readBounded(secret, 1000, 4242)).toBeUndefined();
    expect(readBounded(secret, 4)).toBe("root");
  });
});

describe("the state a person sees", () => {
  const rec = (state: Recorded["state"], since: number, updated = since): Recorded => ({
    v: 1,
    seq: 1,
    state,
    since,
    reason: "Bash: make",
    event: "x",
    updated,
  });
  const up: ProcessFacts = { n: 3, window: true, dead: false, pid: 10, startedAt: 5000 };

  test("process facts win over the record; a record older than this claude is stale", () => {
    expect(effectiveState({ n: 3, window: false, dead: false }, rec("idle", 9000)).state).toBe(
      "missing",
    );
    expect(
      effectiveState({ n: 3, window: true, dead: true, exitCode: 1 }, rec("idle", 9000)),
    ).toMatchObject({ state: "exited", needsYou: true });
    expect(
      effectiveState({ n: 3, window: true, dead: false, lastExit: 137 }, rec("idle", 9000)),
    ).toMatchObject({ state: "crashed", needsYou: false });
    expect(effectiveState(up, rec("working", 1000)).state).toBe("starting");
    expect(effectiveState(up, rec("needs-permission", 9000))).toMatchObject({
      state: "needs-permission",
      needsYou: true,
      since: 9000,
    });
    expect(effectiveState({ ...up, signedOut: "401 from the API" }, rec("idle", 9000)).state).toBe(
      "signed-out",
    );
  });

  // `agentctl restart all` stops every agent before it starts any: a pane that died first stays
  // dead until the last one has stopped. The monitor must not tell the lead it stopped for good.
  test("a dead pane agentctl stopped a moment ago is on its way back: not exited, nobody paged", () => {
    expect(
      effectiveState(
        { n: 3, window: true, dead: true, exitCode: 0, stopping: true },
        rec("idle", 9000),
      ),
    ).toMatchObject({ state: "starting", needsYou: false });
  });

  test("stopPending: a stop marker younger than requestStop's wait and the starts after it", () => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "stop-pending-"));
    try {
      const conf = parseHostConf(`RUN_DIR=${runDir}\nSTOP_TIMEOUT_SECONDS=20\n`);
      const now = Date.now();
      expect(stopPending(conf, 3, now)).toBe(false);
      fs.mkdirSync(path.join(runDir, "agent-3"));
      const marker = path.join(runDir, "agent-3", "stop");
      fs.writeFileSync(marker, "");
      expect(stopPending(conf, 3, now)).toBe(true);
      expect(stopPending(conf, 4, now)).toBe(false);
      // 20 s to stop, 5 s more, 30 s for the starts: 55 s; an agentctl gone longer never finished.
      const at = (ago: number) => fs.utimesSync(marker, (now - ago) / 1000, (now - ago) / 1000);
      at(54_000);
      expect(stopPending(conf, 3, now)).toBe(true);
      at(56_000);
      expect(stopPending(conf, 3, now)).toBe(false);
      // Started again: the `restarted` marker covers the moment until the pane is respawned.
      expect(onItsWayBack(conf, 3, now)).toBe(false);
      const restarted = path.join(runDir, "agent-3", "restarted");
      fs.writeFileSync(restarted, "");
      expect(onItsWayBack(conf, 3, now)).toBe(true);
      fs.utimesSync(restarted, (now - 11_000) / 1000, (now - 11_000) / 1000);
      expect(onItsWayBack(conf, 3, now)).toBe(false);
    } finally {
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  });

  test("an approved command that runs is working (no hook fires on approval)", () => {
    expect(
      effectiveState({ ...up, childSinceState: true }, rec("needs-permission", 9000)),
    ).toMatchObject({
      state: "working",
      needsYou: false,
      reason: "approved, running Bash: make",
    });
  });

  /** Ends a child and waits for its exit. */
  const end = (child: ChildProcess): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });

  /** Waits until `pid` runs a program whose command line holds `word` (its exec is done). */
  const running = (pid: number, word: string) =>
    waitFor(`pid ${pid} to run ${word}`, () => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(word);
      } catch {
        return false;
      }
    });

  test("a process claude started since the dialog counts as running work; its own hooks do not", async () => {
    const since = Date.now();
    // What a hook's process looks like: node running agent-host.js hook.
    // No pipes to this process, and each one ended and waited for: a child left holding a pipe
    // (`sh -c "sleep 5"` forks sleep, and killing sh left sleep with the pipes) kept jest from
    // exiting for 5 s after the run ("Jest did not exit one second after the test run").
    const hook = spawn(
      process.execPath,
      ["-e", "setTimeout(() => {}, 5000)", "/usr/local/lib/agent-host/agent-host.js", "hook"],
      { stdio: "ignore" },
    );
    try {
      await running(hook.pid as number, "agent-host.js");
      expect(descendantStartedSince(process.pid, since)).toBe(false);
      const work = spawn("sleep", ["5"], { stdio: "ignore" });
      try {
        await running(work.pid as number, "sleep");
        expect(descendantStartedSince(process.pid, since)).toBe(true);
        // A process older than the state does not count.
        expect(descendantStartedSince(process.pid, Date.now() + 1000)).toBe(false);
      } finally {
        await end(work);
      }
    } finally {
      await end(hook);
    }
  });

  test("who needs you sorts first, longest waiting first; the rest by number", () => {
    const rows = [1, 2, 3, 4].map((n) => ({
      n,
      name: `agent-${n}`,
      state: "idle" as const,
      reason: "",
      needsYou: false,
      since: 0,
    }));
    rows[3] = { ...rows[3], needsYou: true, since: 500 };
    rows[1] = { ...rows[1], needsYou: true, since: 100 };
    expect(sortForStatus(rows).map((r) => r.n)).toEqual([2, 4, 1, 3]);
  });
});

describe("notifications", () => {
  const msg = (over: Partial<Message> = {}): Message => ({
    agent: 3,
    event: "needs-permission",
    reason: "Bash: rm -rf build <now> & sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
    at: Date.UTC(2026, 10, 29, 20, 0, 0),
    host: "agent-host-vm",
    attach: "ssh -t agent-admin@agent-host-vm sudo agentctl attach 3",
    ...over,
  });

  test("the format follows the URL (or a slack:/ntfy:/json: prefix)", () => {
    expect(parseWebhook("https://hooks.slack.com/services/T/B/X")?.kind).toBe("slack");
    expect(parseWebhook("https://ntfy.sh/my-agents")?.kind).toBe("ntfy");
    expect(parseWebhook("https://ntfy.example.com/agents")?.kind).toBe("ntfy");
    expect(parseWebhook("https://example.com/hook")?.kind).toBe("json");
    expect(parseWebhook("ntfy:https://push.example.com/agents")).toMatchObject({ kind: "ntfy" });
    expect(parseWebhook("ntfy:https://push.example.com/agents")?.url.href).toBe(
      "https://push.example.com/agents",
    );
    expect(parseWebhook("ftp://example.com/x")).toBeUndefined();
    expect(parseWebhook("not a url")).toBeUndefined();
  });

  test("Slack gets {text} with &, < and > escaped (Slack's 'Escaping text')", () => {
    const req = renderRequest(parseWebhook("https://hooks.slack.com/services/T/B/X")!, msg());
    expect(req.headers["Content-Type"]).toBe("application/json");
    const body = JSON.parse(req.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(["text"]);
    expect(body.text).toBe(
      "agent-3 on agent-host-vm needs your permission: Bash: rm -rf build &lt;now&gt; &amp; [redacted]\nAttach: ssh -t agent-admin@agent-host-vm sudo agentctl attach 3",
    );
  });

  test("ntfy gets a plain-text body with Title, Priority and Tags headers (docs.ntfy.sh/publish)", () => {
    const req = renderRequest(
      parseWebhook("https://ntfy.sh/agents")!,
      msg({ event: "needs-answer", reason: "Which color? — Ünïcode" }),
    );
    expect(req.body).toBe(
      "agent-3 on agent-host-vm asks you a question: Which color? — Ünïcode\nAttach: ssh -t agent-admin@agent-host-vm sudo agentctl attach 3",
    );
    expect(req.headers).toMatchObject({
      Title: "agent-3 asks you a question",
      Priority: "high",
      Tags: "warning,robot",
    });
    for (const v of Object.values(req.headers)) expect(v).toMatch(/^[\x20-\x7e]*$/);
  });

  test("any other URL gets the documented JSON body", () => {
    const req = renderRequest(
      parseWebhook("https://example.com/hook")!,
      msg({ event: "turn-done", reason: "All tests pass." }),
    );
    expect(JSON.parse(req.body)).toEqual({
      source: "agent-host",
      version: 1,
      event: "turn-done",
      host: "agent-host-vm",
      agent: "agent-3",
      agent_number: 3,
      reason: "All tests pass.",
      at: "2026-11-29T20:00:00.000Z",
      attach: "ssh -t agent-admin@agent-host-vm sudo agentctl attach 3",
      title: "agent-3 finished its turn",
      text: "agent-3 on agent-host-vm finished its turn: All tests pass.\nAttach: ssh -t agent-admin@agent-host-vm sudo agentctl attach 3",
    });
  });

  test("with dashboardUrl, a message links to the agent on the dashboard, never with the token", () => {
    const link = dashboardLink("http://127.0.0.1:7420/", 3);
    expect(link).toBe("http://127.0.0.1:7420/#agent=agent-3");
    expect(dashboardLink("", 3)).toBeUndefined();
    const req = renderRequest(
      parseWebhook("https://example.com/hook")!,
      msg({ event: "needs-permission", reason: "Bash: make", dashboard: link }),
    );
    const body = JSON.parse(req.body) as Record<string, string>;
    expect(body.dashboard).toBe("http://127.0.0.1:7420/#agent=agent-3");
    expect(body.text).toBe(
      "agent-3 on agent-host-vm needs your permission: Bash: make\nAttach: ssh -t agent-admin@agent-host-vm sudo agentctl attach 3\nOpen: http://127.0.0.1:7420/#agent=agent-3",
    );
    expect(req.body).not.toContain("token");
  });

  /** A Notifier on a fake clock: sleeps advance it; answers come from a script. */
  function rig(answers: number[]) {
    let now = 0;
    const waits: number[] = [];
    const sent: Request[] = [];
    const logs: string[] = [];
    const n = new Notifier({
      webhook: () => parseWebhook("https://example.com/hook"),
      log: (l) => logs.push(l),
      now: () => now,
      sleep: async (ms) => {
        waits.push(ms);
        now += ms;
      },
      send: async (req): Promise<Delivery> => {
        sent.push(req);
        return { status: answers.shift() ?? 200 };
      },
    });
    return { n, waits, sent, logs, advance: (ms: number) => (now += ms) };
  }

  test("5xx and no answer are retried with doubling backoff; 4xx is not", async () => {
    const a = rig([500, 0, 503, 200]);
    expect(await a.n.deliver(msg())).toBe(true);
    expect(a.sent).toHaveLength(4);
    expect(a.waits).toEqual([1000, 2000, 4000]);
    expect(a.logs.join("\n")).not.toContain("example.com");
    const b = rig([404]);
    expect(await b.n.deliver(msg())).toBe(false);
    expect(b.sent).toHaveLength(1);
    const c = rig(Array(10).fill(500));
    expect(await c.n.deliver(msg())).toBe(false);
    expect(c.sent).toHaveLength(6);
    expect(backoffMs(10)).toBe(60_000);
    expect(backoffMs(1, { status: 429, retryAfter: 7 })).toBe(7000);
  });

  test("the same agent, event and reason within a minute is sent once", async () => {
    const a = rig([]);
    expect(a.n.enqueue(msg())).toBe(true);
    expect(a.n.enqueue(msg())).toBe(false);
    expect(a.n.enqueue(msg({ event: "needs-answer" }))).toBe(true);
    await a.n.idle();
    a.advance(61_000);
    expect(a.n.enqueue(msg())).toBe(true);
    await a.n.idle();
    expect(a.sent).toHaveLength(3);
  });

  test("a burst is rate-limited: 10 at once, then one per 3 s", async () => {
    const a = rig([]);
    for (let i = 0; i < 14; i++) a.n.enqueue(msg({ agent: i + 1 }));
    await a.n.idle();
    expect(a.sent).toHaveLength(14);
    expect(a.waits.reduce((s, w) => s + w, 0)).toBe(4 * 3000);
  });
});

describe("send's arguments", () => {
  const none = () => {
    throw new Error("stdin must not be read");
  };
  const noFile = () => {
    throw new Error("no file");
  };

  test("everything after N is the text, verbatim, a leading '-' included", () => {
    expect(parseSendArgs(["3", "-rf", "$(id)", "'q'"], none, noFile)).toEqual({
      targets: 3,
      force: false,
      text: "-rf $(id) 'q'",
    });
    expect(parseSendArgs(["--force", "all", "--file", "x"], none, noFile)).toEqual({
      targets: "all",
      force: true,
      text: "--file x",
    });
    expect(parseSendArgs(["--file", "t.md", "2"], none, () => "line 1\nline 2\n\n")).toEqual({
      targets: 2,
      force: false,
      text: "line 1\nline 2",
    });
    expect(parseSendArgs(["4"], () => "from stdin\n", noFile).text).toBe("from stdin");
  });

  test.each([
    [[], "which agent"],
    [["0", "x"], "not an agent number"],
    [["agent-3", "x"], "not an agent number"],
    [["--bogus", "3", "x"], "unknown option"],
    [["--file", "f", "3", "x"], "not both"],
    [["3", "  "], "empty"],
  ])("refuses %j", (argv, words) => {
    expect(() =>
      parseSendArgs(
        argv as string[],
        () => "",
        () => "x",
      ),
    ).toThrow(UsageError);
    expect(() =>
      parseSendArgs(
        argv as string[],
        () => "",
        () => "x",
      ),
    ).toThrow(words);
  });

  test("refuses a working agent or one in a dialog unless --force; never a dead one", () => {
    const row = (state: string) =>
      ({ n: 1, name: "agent-1", state, reason: "r", needsYou: false }) as Parameters<
        typeof refusal
      >[0];
    expect(refusal(row("idle"), false)).toBeUndefined();
    expect(refusal(row("working"), false)).toContain("--force");
    expect(refusal(row("working"), true)).toBeUndefined();
    expect(refusal(row("needs-permission"), false)).toContain("would answer its dialog");
    expect(refusal(row("exited"), true)).toContain("nothing to type into");
  });
});

test("host.conf: last value wins, unknown keys and bad lines are ignored, defaults fill the rest", () => {
  const conf = parseHostConf(
    "# c\nRUN_DIR=/run/a\nRUN_DIR=/run/b  \nNOTIFY_ON_IDLE=false\nbogus line\nAGENT_COUNT=x\n",
  );
  expect(conf).toMatchObject({
    runDir: "/run/b",
    notifyOnIdle: false,
    agentCount: 1,
    stateDir: "/data/home/agent/.agent-host",
  });
});
