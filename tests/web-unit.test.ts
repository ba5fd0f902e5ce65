// The dashboard's pure parts (host/web/guard.ts, prompt.ts, token.ts), without a server or tmux.
// The panes below are what the real Claude Code 2.1.331 drew in tmux (120 columns) against the
// Messages-API stand-in; tests/dashboard.test.ts answers the same dialogs for real.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  agentParam,
  bearerToken,
  FailureLimiter,
  hostAllowed,
  originAllowed,
  parseAnswer,
  parseSendBody,
  tokenMatches,
} from "../host/web/guard";
import { answerKey, keyArgs, NEXT_KEY, parsePrompt } from "../host/web/prompt";
import { dashboardUrl, ensureToken, readToken, TOKEN_RE, writeToken } from "../host/web/token";
import { patchRows } from "../host/web/rows";
import { runAs } from "../host/web/run-as";
import { COLUMNS, toJson, type StatusRow } from "../host/attention/status";
import { sortForStatus, type AgentState, type Effective } from "../host/attention/effective";
import { applyHook, type Recorded } from "../host/attention/state";

const PERMISSION_PANE = `❯ do it

────────────────────────────────────────────────────────────────────────────────
 Bash command
 Tip: auto mode handles these prompts for you — choose "switch to auto mode" below
 write
╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌
 echo hi > a.txt
╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌
 Do you want to proceed?
 ❯ 1. Yes
   2. Yes, and always allow access to /tmp/h21x/ws from this project
   3. Yes, and switch to auto mode · auto mode handles these prompts for you
   4. No

 Esc to cancel · Tab to amend
`;

const QUESTION_PANE = `❯ ask me
────────────────────────────────────────────────────────────────────────────────
 ☐ DB

Which db?

❯ 1. Postgres
     rel
  2. SQLite
     emb
  3. Mongo
     doc
  4. Type something.
────────────────────────────────────────────────────────────────────────────────
  5. Chat about this

Enter to select · ↑/↓ to navigate · Esc to cancel
`;

const IDLE_PANE = `❯ list three steps

● Here is the plan:
  1. Yes
  2. No
  3. Maybe

────────────────────────────────────────────────────────────────────────────────
❯ 
────────────────────────────────────────────────────────────────────────────────
  ⏸ manual mode on · ? for shortcuts · ← for agents
`;

/** Claude Code 2.1.331's review of a question of two parts, as tests/dashboard.test.ts captured it. */
const REVIEW_PANE = `❯ pick a stack
────────────────────────────────────────────────────────────────────────────────
←  ☒ Database  ☒ Cache  ✔ Submit  →

Review your answers

 ● Which database?
   → Postgres
 ● Which cache?
   → Memcached

❯ 1. Submit answers
  2. Cancel
`;

/** Claude Code 2.1.331's question that takes several options, Postgres ticked (tests/dashboard.test.ts). */
const MULTI_PANE = `❯ pick databases
────────────────────────────────────────────────────────────────────────────────
←  ☒ Database  ✔ Submit  →

Which database?

❯ 1. [✔] Postgres
         relational
  2. [ ] SQLite
         embedded
  3. [ ] Type something
     Submit
────────────────────────────────────────────────────────────────────────────────
  4. Chat about this

Enter to select · ↑/↓ to navigate · Esc to cancel
`;

describe("the dialog in a pane", () => {
  test("a permission: Yes is 1, No is its own digit (4 here, not always 3)", () => {
    const p = parsePrompt(PERMISSION_PANE);
    expect(p?.kind).toBe("permission");
    expect(p?.options.map((o) => o.n)).toEqual([1, 2, 3, 4]);
    expect(answerKey(p, "approve")).toEqual({ key: "1" });
    expect(answerKey(p, "deny")).toEqual({ key: "4" });
    expect(answerKey(p, "option", 2)).toEqual({ refused: expect.stringContaining("permission") });
  });

  test("a question: its labelled options only, never 'Type something.'; 'Chat about this' and the cursor apart", () => {
    const p = parsePrompt(QUESTION_PANE);
    expect(p).toEqual({
      kind: "question",
      options: [
        { n: 1, label: "Postgres" },
        { n: 2, label: "SQLite" },
        { n: 3, label: "Mongo" },
      ],
      chat: 5,
      cursor: 1,
    });
    expect(answerKey(p, "option", 2)).toEqual({ key: "2" });
    expect(answerKey(p, "option", 4)).toEqual({ refused: expect.stringContaining("no option 4") });
    expect(answerKey(p, "approve")).toEqual({ refused: expect.stringContaining("question") });
  });

  test("a question's review (no footer): Submit answers is 1, Cancel 2, and only at the pane's bottom", () => {
    const p = parsePrompt(REVIEW_PANE);
    expect(p).toEqual({
      kind: "question",
      options: [
        { n: 1, label: "Submit answers" },
        { n: 2, label: "Cancel" },
      ],
    });
    expect(answerKey(p, "option", 1)).toEqual({ key: "1" });
    expect(answerKey(p, "approve")).toEqual({ refused: expect.stringContaining("question") });
    // The same words in a reply, with the input box under them, are no dialog.
    const replied = `${REVIEW_PANE}\n● Done.\n\n${"─".repeat(80)}\n❯ \n${"─".repeat(80)}\n  ? for shortcuts\n`;
    expect(parsePrompt(replied)).toBeUndefined();
    // Nor are the two options without the heading, or other options under it.
    expect(parsePrompt(REVIEW_PANE.replace("Review your answers", "Your answers"))).toBeUndefined();
    expect(parsePrompt(REVIEW_PANE.replace("2. Cancel", "2. Cancel it"))).toBeUndefined();
  });

  test("a question that takes several options: ticks read from the boxes, digits tick, Next is Right by name", () => {
    const p = parsePrompt(MULTI_PANE);
    expect(p).toEqual({
      kind: "question",
      multiSelect: true,
      options: [
        { n: 1, label: "Postgres", checked: true },
        { n: 2, label: "SQLite", checked: false },
      ],
      chat: 4,
      cursor: 1,
    });
    expect(answerKey(p, "option", 2)).toEqual({ key: "2" });
    expect(answerKey(p, "option", 3)).toEqual({ refused: expect.stringContaining("no option 3") });
    expect(answerKey(p, "next")).toEqual({ key: NEXT_KEY });
    expect(keyArgs(NEXT_KEY)).toEqual(["Right"]);
    // A digit is never a key name: "-l" before it, always.
    expect(keyArgs("2")).toEqual(["-l", "2"]);
    // A question that takes one option moves on by itself: no Next.
    expect(answerKey(parsePrompt(QUESTION_PANE), "next")).toEqual({
      refused: expect.stringContaining("takes one option"),
    });
    expect(answerKey(parsePrompt(PERMISSION_PANE), "next")).toEqual({
      refused: expect.stringContaining("permission"),
    });
  });

  test("Chat about this: the cursor moves a line per key toward it, then Enter; all by key name", () => {
    const at = (pane: string, cursorLine: RegExp) =>
      parsePrompt(
        pane.replace("❯ 1.", "  1.").replace(cursorLine, (l) => l.replace(/^ {2}/, "❯ ")),
      );
    // From 1 (and from Type something., whose text input the cursor passes through): Down.
    expect(answerKey(parsePrompt(QUESTION_PANE), "chat")).toEqual({ key: "Down" });
    expect(answerKey(at(QUESTION_PANE, /^ {2}4\. Type something\.$/m), "chat")).toEqual({
      key: "Down",
    });
    // On it: Enter. Past it (a wrap, or a key taken twice): Up.
    const onChat = at(QUESTION_PANE, /^ {2}5\. Chat about this$/m);
    expect(onChat?.cursor).toBe(5);
    expect(answerKey(onChat, "chat")).toEqual({ key: "Enter" });
    expect(answerKey({ ...onChat!, cursor: 6 }, "chat")).toEqual({ key: "Up" });
    // On a line with no number (a multiSelect's Submit): Down, to the option under it.
    expect(answerKey({ ...parsePrompt(MULTI_PANE)!, cursor: undefined }, "chat")).toEqual({
      key: "Down",
    });
    for (const key of ["Down", "Up", "Enter"]) expect(keyArgs(key)).toEqual([key]);
    // No such option: the review, a permission, no dialog.
    expect(answerKey(parsePrompt(REVIEW_PANE), "chat")).toEqual({
      refused: "its question has no 'Chat about this'",
    });
    expect(answerKey(parsePrompt(PERMISSION_PANE), "chat")).toEqual({
      refused: expect.stringContaining("permission"),
    });
    expect(answerKey(parsePrompt(IDLE_PANE), "chat")).toEqual({
      refused: "no dialog shows in its pane",
    });
  });

  test("a numbered list in a reply, with no dialog under it, is no dialog", () => {
    expect(parsePrompt(IDLE_PANE)).toBeUndefined();
    expect(answerKey(parsePrompt(IDLE_PANE), "approve")).toEqual({
      refused: "no dialog shows in its pane",
    });
  });
});

describe("the door", () => {
  test("Host: exactly 127.0.0.1:PORT or localhost:PORT", () => {
    expect(hostAllowed("127.0.0.1:7420", 7420)).toBe(true);
    expect(hostAllowed("localhost:7420", 7420)).toBe(true);
    for (const bad of [undefined, "127.0.0.1", "127.0.0.1:7421", "evil.example:7420", "[::1]:7420"])
      expect(hostAllowed(bad, 7420)).toBe(false);
  });

  test("Origin: none, or the page's own", () => {
    expect(originAllowed(undefined, 7420)).toBe(true);
    expect(originAllowed("http://127.0.0.1:7420", 7420)).toBe(true);
    for (const bad of [
      "null",
      "http://evil.example",
      "https://127.0.0.1:7420",
      "http://127.0.0.1:7421",
    ])
      expect(originAllowed(bad, 7420)).toBe(false);
  });

  test("Bearer: well-formed only, compared whole", () => {
    const t = "A".repeat(43);
    expect(bearerToken(`Bearer ${t}`)).toBe(t);
    expect(bearerToken(`bearer ${t}`)).toBeUndefined();
    expect(bearerToken(`Bearer ${t} x`)).toBeUndefined();
    expect(tokenMatches(t, t)).toBe(true);
    expect(tokenMatches(t.slice(1), t)).toBe(false);
    expect(tokenMatches(undefined, t)).toBe(false);
    expect(tokenMatches(t, undefined)).toBe(false);
  });

  test("failures past the limit wait out the window", () => {
    const l = new FailureLimiter(3, 60_000);
    expect([l.fail(0), l.fail(1), l.fail(2)]).toEqual([undefined, undefined, undefined]);
    expect(l.fail(1000)).toBe(59);
    expect(l.fail(59_999)).toBe(1);
    expect(l.fail(61_000)).toBeUndefined();
  });

  test("bodies: exact fields, typed", () => {
    expect(parseAnswer('{"action":"approve"}')).toEqual({ action: "approve" });
    expect(parseAnswer('{"action":"option","option":2}')).toEqual({ action: "option", option: 2 });
    expect(parseAnswer('{"action":"next"}')).toEqual({ action: "next" });
    expect(parseAnswer('{"action":"chat"}')).toEqual({ action: "chat" });
    for (const bad of [
      "",
      "[]",
      '{"action":"approve","option":1}',
      '{"action":"next","option":1}',
      '{"action":"chat","option":4}',
      '{"action":"option","option":"2"}',
      '{"action":"option","option":10}',
      '{"action":"rm -rf"}',
      '{"action":"deny","keys":"y"}',
    ])
      expect(() => parseAnswer(bad)).toThrow();
    expect(parseSendBody('{"text":"run the tests"}')).toBe("run the tests");
    expect(() => parseSendBody('{"text":1}')).toThrow("text must be a string");
    expect(() => parseSendBody('{"text":"x","force":true}')).toThrow("unknown field 'force'");
    expect(agentParam("agent-12")).toBe(12);
    for (const bad of ["agent-0", "agent-01", "agent-1;ls", "agent-10000", "../agent-1"])
      expect(() => agentParam(bad)).toThrow();
  });
});

describe("the token", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "web-token-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // readToken's owner is root on the VM; here it is whoever runs the test (root or not: no skip).
  const me = process.getuid?.() ?? 0;

  test("256 random bits, base64url, 0600; rotation replaces it", () => {
    const file = path.join(dir, "secrets", "dashboard-token");
    const a = writeToken(file);
    expect(a).toMatch(TOKEN_RE);
    expect(Buffer.from(a, "base64url")).toHaveLength(32);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readToken(file, me)).toBe(a);
    expect(ensureToken(file, me)).toBe(a);
    const b = writeToken(file);
    expect(b).not.toBe(a);
    expect(dashboardUrl(7420, b)).toBe(`http://127.0.0.1:7420/#token=${b}`);
  });

  test("a token file others can read, or not its owner's, or a link, is no token", () => {
    const file = path.join(dir, "loose");
    fs.writeFileSync(file, `${"A".repeat(43)}\n`, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(readToken(file, me)).toBeUndefined();
    fs.chmodSync(file, 0o600);
    expect(readToken(file, me)).toBe("A".repeat(43));
    // Someone else's file: on the VM, a token file that is not root's.
    expect(readToken(file, me + 1)).toBeUndefined();
    if (me !== 0) expect(readToken(file)).toBeUndefined();
    fs.symlinkSync(file, path.join(dir, "link"));
    expect(readToken(path.join(dir, "link"), me)).toBeUndefined();
    // ensureToken replaces what readToken refuses.
    expect(ensureToken(file, me + 1)).not.toBe("A".repeat(43));
  });
});

describe("the rows pushed at once", () => {
  const row = (name: string, state: string): StatusRow =>
    ({
      ...Object.fromEntries(COLUMNS.map((c) => [c.key, null])),
      name,
      agent_state: state,
      state: "running",
      restarts: 0,
      why: "ready: new session",
      branch: `${name}-branch`,
    }) as StatusRow;
  const eff = (n: number, state: AgentState, reason: string, since: number): Effective => ({
    n,
    name: `agent-${n}`,
    state,
    reason,
    since,
    needsYou: state === "needs-permission",
  });

  test("the state columns of the hook, the rest as gathered, who needs you first", () => {
    const now = Date.now();
    const rows = [row("agent-1", "idle"), row("agent-2", "idle")];
    const patched = patchRows(
      rows,
      sortForStatus([
        eff(1, "idle", "ready", now - 5000),
        eff(2, "needs-permission", "Bash: make", now),
      ]),
    );
    expect(patched?.map((r) => [r.name, r.agent_state, r.needs_you, r.why, r.branch])).toEqual([
      ["agent-2", "needs-permission", true, "Bash: make", "agent-2-branch"],
      ["agent-1", "idle", false, "ready", "agent-1-branch"],
    ]);
    expect(patched?.[0].state_since).toBe(Math.floor(now / 1000));
    // The same keys as `agentctl status --json`, in its order.
    expect(Object.keys(JSON.parse(toJson(patched ?? [])).agents[0])).toEqual(
      COLUMNS.map((c) => c.key),
    );
  });

  test("an agent never gathered: no patch (a full gather instead)", () => {
    expect(patchRows([row("agent-1", "idle")], [eff(2, "idle", "ready", 0)])).toBeUndefined();
  });
});

describe("a deny the dashboard typed (Claude Code fires no hook after it)", () => {
  // agent-2's pane after the dashboard's deny, as the real 2.1.331 drew it (tests/dashboard.test.ts).
  const AFTER_DENY_PANE = `❯ try the denied one 66f4a517

  Did not run 1 call
  ⎿  $ echo denied-66f4a517 > denied.txt
  ⎿  Interrupted · What should Claude do instead?

────────────────────────────────────────────────────────────────────────────────
❯
────────────────────────────────────────────────────────────────────────────────
  ⏸ manual mode on · ? for shortcuts`;
  const t0 = 1_800_000_000_000;
  const asking = (): Recorded => {
    const started = applyHook(undefined, { hook_event_name: "UserPromptSubmit", prompt: "go" }, t0);
    const r = applyHook(
      started?.next,
      {
        hook_event_name: "PermissionRequest",
        tool_name: "Bash",
        tool_input: { command: "echo denied > denied.txt" },
      },
      t0 + 100,
    );
    return r?.next as Recorded;
  };

  test("the dialog has left the pane: the dashboard may record the deny", () => {
    expect(parsePrompt(AFTER_DENY_PANE)).toBeUndefined();
    expect(parsePrompt(PERMISSION_PANE)?.kind).toBe("permission");
  });

  test("the record it answered becomes idle, 'you denied: <command>', with no notification", () => {
    const rec = asking();
    expect(rec.state).toBe("needs-permission");
    const r = applyHook(rec, { hook_event_name: "DashboardDeny", seq: rec.seq }, t0 + 900);
    expect(r?.next).toMatchObject({
      state: "idle",
      reason: "you denied: Bash: echo denied > denied.txt",
      since: t0 + 900,
      seq: rec.seq + 1,
      event: "DashboardDeny",
    });
    expect(r?.next.turn).toBeUndefined();
    expect(r?.transition).toEqual({
      seq: rec.seq + 1,
      at: t0 + 900,
      state: "idle",
      reason: "you denied: Bash: echo denied > denied.txt",
      event: "DashboardDeny",
    });
  });

  test("a newer record has the last word: another seq, or no longer needs-permission, changes nothing", () => {
    const rec = asking();
    expect(
      applyHook(rec, { hook_event_name: "DashboardDeny", seq: rec.seq - 1 }, t0),
    ).toBeUndefined();
    expect(
      applyHook(rec, { hook_event_name: "DashboardDeny", seq: String(rec.seq) }, t0),
    ).toBeUndefined();
    expect(applyHook(rec, { hook_event_name: "DashboardDeny" }, t0)).toBeUndefined();
    const working = applyHook(
      rec,
      { hook_event_name: "PostToolUse", tool_name: "Bash", tool_input: { command: "x" } },
      t0 + 200,
    )?.next as Recorded;
    expect(
      applyHook(working, { hook_event_name: "DashboardDeny", seq: working.seq }, t0 + 300),
    ).toBeUndefined();
    expect(applyHook(undefined, { hook_event_name: "DashboardDeny", seq: 1 }, t0)).toBeUndefined();
  });
});

describe("the recorder's run as the agent", () => {
  test("a setpriv that ends without reading its input is a refusal with its reason, not a crash of the server", async () => {
    // Past a pipe's buffer (64 KiB), so the write is still going when setpriv has already exited.
    const input = "x".repeat(1024 * 1024);
    await expect(runAs(["--bogus-option", "true"], os.tmpdir(), input)).rejects.toThrow(
      /^the recorder exited 1: .*bogus-option/s,
    );
  });
});
