// Issue 21's proof: the dashboard in a real headless browser (Debian's /usr/bin/chromium, driven
// by playwright-core) against the real host manager and the real Claude Code 2.1.331. The host is
// set up as tests/agent-state.test.ts sets it up: agentctl's tmux server in its own mount namespace
// where /etc/claude-code and /usr/local/lib/agent-host are this test's copies of the shipped
// managed settings and bundle, agents in `manual` mode as an unprivileged user, against the
// Messages-API stand-in (tests/fixtures/messages-api.ts). The dashboard is the shipped bundle's
// `agent-host.js web`, as root, with its token in a root-only file.
//
// The page is driven as a person does: tap an agent, tap Approve, Deny, an option, type in the
// send box. What matters is checked where it happens: the file the tool writes, the request the
// stand-in gets, the recorder's state. The 1 s push is measured from the recorder's own time stamp
// of the transition (status.json `since`) to the moment the page shows it.
import { ChildProcess, spawn, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startMessagesApi, type MessagesApi, type RecordedRequest } from "./fixtures/messages-api";
import { atClaudePrompt, realClaudeBin } from "./fixtures/real-claude";
import {
  databaseQuestion,
  stackQuestion,
  offlineClaudeEnv,
  pane,
  RealHost,
  target,
  tmux,
  unavailableSuite,
} from "./real-suite";
import { CHROMIUM, CHROMIUM_FLAGS, freePort, poll, removeTestAgents, runAsync } from "./support";
import { AGENTCTL } from "./host-files";
import { HOOK_GRACE_MS } from "../host/attention/effective";
import { webUnitArgv } from "./fixtures/web-unit";

const AGENT_USER = "claudeweb";
/** Its agent users claudeweb-N (uid 62000+N): made by the product's reconcile, removed after. */
const UID_BASE = 62000;
/** Agent n's state folder: HOME/.agent-host (issue 20: each agent its own user and home). */
const stateOf = (h: { homes: string }, n: number): string =>
  path.join(h.homes, `${AGENT_USER}-${n}`, ".agent-host");
const COUNT = 2;
const NONCE = randomBytes(4).toString("hex");
const API_KEY = `sk-ant-api03-WEBTEST${NONCE}${"k".repeat(60)}`;
/** Where the 375×812 screenshot goes (gitignored .cache/). */
const SHOTS = path.resolve(__dirname, "..", ".cache", "dashboard");

const isRoot = process.getuid?.() === 0;
const haveTools =
  fs.existsSync(CHROMIUM) &&
  ["tmux", "setpriv", "flock", "jq", "npm", "unshare", "mount"].every(
    (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
  );
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `dashboard tests skipped: they need root, ${CHROMIUM} and tmux, setpriv, flock, jq, npm, unshare, mount`,
      );

/** The host (tests/real-suite.ts), with the dashboard this suite starts beside it. */
type Host = RealHost & { port: number; web?: ChildProcess; webLog: string[] };

const atPrompt = atClaudePrompt;

/** The input box's line (the last `❯` line): what a stray key would have typed into. */
const inputLine = (text: string): string | undefined =>
  text
    .split("\n")
    .filter((l) => /^❯/.test(l))
    .pop();

/**
 * What had been typed into agent-N's input box when a marker typed now arrived: tmux handles keys
 * in the order they come, so any key the dashboard sent before is there ahead of the marker. The
 * marker is erased again; the text before it is returned ("" when nothing was typed).
 */
async function typedBefore(h: Host, n: number): Promise<string> {
  const mark = `zq${NONCE.replace(/\d/g, "")}mark`;
  tmux(h.sock, ["send-keys", "-t", target(n), "-l", mark]);
  const line = await poll(
    `agent-${n}'s input to show the marker`,
    () => inputLine(pane(h, n))?.includes(mark) && (inputLine(pane(h, n)) as string),
    10_000,
    50,
  );
  tmux(h.sock, ["send-keys", "-t", target(n), "-N", String(mark.length), "BSpace"]);
  await poll(
    `agent-${n}'s marker erased`,
    () => !inputLine(pane(h, n))?.includes(mark),
    10_000,
    50,
  );
  return line.replace(/^❯\s*/, "").slice(0, line.replace(/^❯\s*/, "").indexOf(mark)).trim();
}

interface StatusFile {
  state: string;
  since: number;
  seq: number;
  reason: string;
  event: string;
  updated: number;
}

function recorded(h: Host, n: number): StatusFile | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateOf(h, n), "status.json"), "utf8"));
  } catch {
    return undefined;
  }
}

const conversation = (r: RecordedRequest) => JSON.stringify(r.body?.messages ?? []);

/** In a request to the model: the tool_result for the first tool_use that `isUse` picks. */
function toolResult(
  r: RecordedRequest,
  isUse: (block: Record<string, unknown>) => boolean,
): Record<string, unknown> | undefined {
  const blocks = (r.body?.messages ?? []).flatMap((m: { content?: unknown }) =>
    Array.isArray(m.content) ? (m.content as Record<string, unknown>[]) : [],
  );
  const use = blocks.find((b) => b.type === "tool_use" && isUse(b));
  return blocks.find((b) => b.type === "tool_result" && b.tool_use_id === use?.id);
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with exactly these headers (a browser cannot forge Host; an attacker's tool can). */
function request(
  port: number,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path: urlPath, headers, setHost: false },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

suite("the dashboard in a real browser, driving real Claude Code agents", () => {
  jest.setTimeout(600_000);
  let api: MessagesApi;
  let h: Host;
  let token = "";
  let context: BrowserContext;
  let profile = "";
  let page: Page;
  const host = () => `127.0.0.1:${h.port}`;

  async function openAgent(n: number): Promise<void> {
    if (await page.isVisible("#back")) await page.click("#back");
    await page.click(`#list [data-agent="agent-${n}"]`);
    await page.waitForSelector(`#card [data-agent="agent-${n}"]`);
  }

  async function sendFromPage(n: number, text: string): Promise<void> {
    await openAgent(n);
    await page.fill("#send-text", text);
    await page.click("#send");
    await page.waitForFunction(() => document.getElementById("msg")?.textContent === "Sent.");
  }

  /** POSTs each body to agent-N's /answer from the page, all at once: each reply's status and body. */
  function answersFromPage(
    n: number,
    bodies: unknown[],
  ): Promise<{ status: number; body: { error?: string } }[]> {
    return page.evaluate(
      ({ t, n, bodies }) =>
        Promise.all(
          bodies.map(async (b) => {
            const r = await fetch(`/api/agents/agent-${n}/answer`, {
              method: "POST",
              headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
              body: JSON.stringify(b),
            });
            return { status: r.status, body: (await r.json()) as { error?: string } };
          }),
        ),
      { t: token, n, bodies },
    );
  }

  /** Waits for agent-1's buttons to be exactly `want`, in order; fails with its pane otherwise. */
  async function offered(want: string[], what: string): Promise<void> {
    const buttons = () => page.$$eval("#actions button", (b) => b.map((x) => x.textContent));
    await poll(
      what,
      async () => JSON.stringify(await buttons()) === JSON.stringify(want),
      15_000,
      50,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; agent-1's pane:\n${pane(h, 1)}`);
    });
  }

  /** agent-1 asks `question` (AskUserQuestion) when the page sends it `prompt`; then it says done. */
  async function ask(
    question: { name: string; input: Record<string, unknown> },
    prompt: string,
  ): Promise<void> {
    api.reply({ toolUse: question });
    api.reply({ text: `Noted, ${NONCE}.` });
    await sendFromPage(1, prompt);
    await pageShows(1, "needs-answer");
  }

  /**
   * At the review of agent-1's question: Submit answers from the page. The model's next request,
   * which must hold `answer`; agent-1 idle again after it.
   */
  async function submitReview(answer: string): Promise<RecordedRequest> {
    await offered(["1. Submit answers", "2. Cancel"], "the review's options");
    await page.tap('#actions [data-option="1"]');
    const answered = await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes(answer),
      60_000,
    );
    await pageShows(1, "idle");
    return answered;
  }

  /** Waits for the recorder's transition, then for the page; returns ms from the one to the other. */
  async function pageShows(n: number, state: string): Promise<number> {
    const rec = await poll(
      `agent-${n} recorded ${state}`,
      () => (recorded(h, n)?.state === state ? recorded(h, n) : undefined),
      180_000,
      20,
    );
    await page.waitForSelector(`[data-agent="agent-${n}"][data-state="${state}"]`, {
      state: "attached",
      timeout: 10_000,
    });
    return Date.now() - rec.since;
  }

  /**
   * The lead presses Esc in agent-n's pane, again if the first key came before the dialog took
   * input (`open` still true 3 s later); returns when the last key was sent.
   */
  async function escInPane(n: number, open: () => boolean): Promise<number> {
    let pressed = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      tmux(h.sock, ["send-keys", "-t", target(n), "Escape"]);
      pressed = Date.now();
      const gone = await poll(`agent-${n}'s dialog gone`, () => !open(), 3000, 50).then(
        () => true,
        () => false,
      );
      if (gone) break;
    }
    return pressed;
  }

  /**
   * Waits for agent-n idle on the page, then checks that the page, agentctl status and the API
   * agree on it: idle, `why`, not needing the lead. Returns ms from `since` to the page.
   */
  async function idleEverywhere(n: number, why: string, since: number): Promise<number> {
    await page.waitForSelector(`#card [data-agent="agent-${n}"][data-state="idle"]`, {
      state: "attached",
      timeout: 15_000,
    });
    const onPage = Date.now() - since;
    expect(await page.textContent("#card .why")).toBe(why);
    const cli = JSON.parse((await runAsync(AGENTCTL, ["status", "--json"], h.env)).stdout) as {
      agents: Record<string, unknown>[];
    };
    const fromApi = await page.evaluate(async (t) => {
      const r = await fetch("/api/agents", { headers: { Authorization: `Bearer ${t}` } });
      return (await r.json()) as { agents: Record<string, unknown>[] };
    }, token);
    const row = (rows: Record<string, unknown>[]) => {
      const r = rows.find((x) => x.name === `agent-${n}`);
      return [r?.agent_state, r?.why, r?.needs_you];
    };
    expect(row(cli.agents)).toEqual(["idle", why, false]);
    expect(row(fromApi.agents)).toEqual(row(cli.agents));
    return onPage;
  }

  beforeAll(async () => {
    const bin = realClaudeBin();
    removeTestAgents(AGENT_USER, UID_BASE);
    api = await startMessagesApi({ defaultText: `stand-in ${NONCE}` });
    const port = await freePort();
    const host = new RealHost({
      name: "dashboard",
      user: AGENT_USER,
      uidBase: UID_BASE,
      apiKey: API_KEY,
      stack: {
        "agent-host:agentCount": String(COUNT),
        "agent-host:agentPermissionMode": "manual",
        "agent-host:anthropicBaseUrl": api.url,
        "agent-host:claudeEnv": JSON.stringify(await offlineClaudeEnv()),
        "agent-host:dashboardPort": String(port),
      },
      site: { CLAUDE_BIN: bin },
      namespace: "mount",
    });
    h = Object.assign(host, { port, webLog: [] as string[] });
    await h.start();
    // The dashboard as agent-host-web.service runs it: the unit's ExecStart (its Node flags), with
    // the bundle the managed hooks run (the one it runs the recorder from after a deny).
    const [node, ...webArgs] = webUnitArgv(process.execPath, h.env.AGENT_HOST_JS as string);
    h.web = spawn(node, webArgs, { env: h.env, stdio: ["ignore", "ignore", "pipe"] });
    h.web.stderr?.on("data", (d: Buffer) => h.webLog.push(...d.toString().trim().split("\n")));
    await poll(
      "the dashboard listening",
      () => h.webLog.some((l) => l.includes("listens")),
      15_000,
      50,
    );
    const url = await runAsync(AGENTCTL, ["web", "--url"], h.env);
    expect(url.code).toBe(0);
    expect(url.stdout).toMatch(
      new RegExp(`^http://127\\.0\\.0\\.1:${h.port}/#token=[A-Za-z0-9_-]{43}\\n$`),
    );
    token = url.stdout.trim().split("#token=")[1];

    expect((await runAsync(AGENTCTL, ["reconcile", String(COUNT)], h.env)).code).toBe(0);
    await poll(
      "every agent at its prompt",
      () => [1, 2].every((n) => atPrompt(pane(h, n))),
      240_000,
      500,
    );
    await poll(
      "every agent idle",
      () => [1, 2].every((n) => recorded(h, n)?.state === "idle"),
      180_000,
    );

    fs.mkdirSync(SHOTS, { recursive: true });
    context = await chromium.launchPersistentContext(
      (profile = fs.mkdtempSync(path.join(os.tmpdir(), "dashboard-chromium-"))),
      {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 375, height: 812 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
      },
    );
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(url.stdout.trim());
    await page.waitForSelector('[data-agent="agent-2"]');
  });

  afterAll(async () => {
    await context?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    h?.web?.kill("SIGTERM");
    await h?.close();
    await api?.close();
  });
  // Last: the agent users go once their processes are gone (the teardown above ends them).
  afterAll(() => removeTestAgents(AGENT_USER, UID_BASE));

  test("the page: every agent with state, SINCE and WHY; the token leaves the address bar; no other origin is asked", async () => {
    expect(page.url()).toBe(`http://127.0.0.1:${h.port}/`);
    const cards = await page.$$eval("#list .agent", (els) =>
      els.map((e) => [
        e.getAttribute("data-agent"),
        e.getAttribute("data-state"),
        e.querySelector(".since")?.textContent,
        e.querySelector(".why")?.textContent,
      ]),
    );
    expect(cards).toEqual([
      ["agent-1", "idle", expect.stringMatching(/^\d+(s|m\d\ds)$/), "ready: new session"],
      ["agent-2", "idle", expect.stringMatching(/^\d+(s|m\d\ds)$/), "ready: new session"],
    ]);
    // The API's rows are `agentctl status --json`'s, field for field.
    const fromApi = await page.evaluate(async (t) => {
      const r = await fetch("/api/agents", { headers: { Authorization: `Bearer ${t}` } });
      return (await r.json()) as { host: unknown; agents: Record<string, unknown>[] };
    }, token);
    const cli = JSON.parse((await runAsync(AGENTCTL, ["status", "--json"], h.env)).stdout) as {
      host: unknown;
      agents: Record<string, unknown>[];
    };
    expect(Object.keys(fromApi)).toEqual(Object.keys(cli));
    expect(fromApi.host).toEqual(cli.host);
    expect(fromApi.agents.map((r) => Object.keys(r))).toEqual(
      cli.agents.map((r) => Object.keys(r)),
    );
    expect(fromApi.agents.map((r) => [r.name, r.agent_state, r.why])).toEqual(
      cli.agents.map((r) => [r.name, r.agent_state, r.why]),
    );
    // The page's HTML holds no secret.
    const html = await (await page.request.get(`http://${host()}/`)).text();
    for (const secret of [token, API_KEY]) expect(html).not.toContain(secret);
    expect(await page.content()).not.toContain(token);
  });

  test("send a task from the page; it asks permission: shown within 1 s, Approve runs the tool and the state goes to working", async () => {
    const command = `sleep 3 && echo approved-${NONCE} > perm.txt`;
    api.reply({ toolUse: { name: "Bash", input: { command, description: "write perm.txt" } } });
    api.reply({ text: `perm.txt holds approved-${NONCE}.` });
    await sendFromPage(1, `write the file ${NONCE}`);
    const req = await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes(`write the file ${NONCE}`),
      180_000,
    );
    expect(req.status).toBe(200);
    const latency = await pageShows(1, "needs-permission");
    console.log(`dashboard: needs-permission on the page ${latency} ms after the hook recorded it`);
    expect(latency).toBeLessThan(1000);
    await page.waitForSelector("#approve", { timeout: 10_000 });
    expect(await page.textContent("#card .why")).toBe(`Bash: ${command}`);
    fs.writeFileSync(
      path.join(SHOTS, "dashboard-375x812.png"),
      await page.screenshot({ fullPage: false }),
    );
    // The list view too: agent-1 first (it needs you).
    await page.click("#back");
    expect(
      await page.$$eval("#list .agent", (els) => els.map((e) => e.getAttribute("data-agent"))),
    ).toEqual(["agent-1", "agent-2"]);
    fs.writeFileSync(
      path.join(SHOTS, "dashboard-list-375x812.png"),
      await page.screenshot({ fullPage: false }),
    );
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(375);
    await openAgent(1);
    await page.waitForSelector("#approve");
    await page.tap("#approve");
    await page.waitForSelector('#card [data-agent="agent-1"][data-state="working"]', {
      timeout: 10_000,
    });
    await poll(
      "perm.txt",
      () => fs.existsSync(path.join(h.ws, "agent-1", "perm.txt")),
      60_000,
      100,
    );
    expect(fs.readFileSync(path.join(h.ws, "agent-1", "perm.txt"), "utf8").trim()).toBe(
      `approved-${NONCE}`,
    );
    await pageShows(1, "idle");
    expect(await page.textContent("#card .why")).toBe(`perm.txt holds approved-${NONCE}.`);
    // The buttons went with the dialog.
    await page.waitForFunction(() => !document.getElementById("approve"));
  });

  test("Deny refuses the tool, and the page and agentctl status say at once that the agent waits for you; an answer once the agent no longer waits types nothing", async () => {
    const command = `echo denied-${NONCE} > denied.txt`;
    api.reply({ toolUse: { name: "Bash", input: { command, description: "write denied.txt" } } });
    await sendFromPage(2, `try the denied one ${NONCE}`);
    await pageShows(2, "needs-permission");
    await page.waitForSelector("#deny", { timeout: 10_000 });
    const asked = recorded(h, 2) as StatusFile;
    expect(asked.reason).toBe(`Bash: ${command}`);
    const before = api.requests.length;
    const tapped = Date.now();
    await page.tap("#deny");
    // Claude Code 2.1.331 fires no hook after a refused permission (docs/dashboard.md, "After
    // Deny"): the dashboard records the deny it typed, once the dialog has left the pane.
    await page.waitForSelector('#card [data-agent="agent-2"][data-state="idle"]', {
      state: "attached",
      timeout: 10_000,
    });
    const onPage = Date.now() - tapped;
    const cli = await runAsync(AGENTCTL, ["status", "--json"], h.env);
    const inStatus = Date.now() - tapped;
    const row = (
      JSON.parse(cli.stdout) as { agents: { name: string; agent_state: string; why: string }[] }
    ).agents.find((r) => r.name === "agent-2");
    console.log(
      `dashboard: Deny tapped -> idle on the page in ${onPage} ms; agentctl status --json (started then) printed it at ${inStatus} ms`,
    );
    expect(row?.agent_state).toBe("idle");
    expect(row?.why).toBe(`you denied: Bash: ${command}`);
    expect(await page.textContent("#card .why")).toBe(`you denied: Bash: ${command}`);
    expect(onPage).toBeLessThan(1000);
    // The recorder's own record, written as the agent (the file stays the agent's), one transition.
    const after = recorded(h, 2) as StatusFile;
    expect([after.state, after.seq, after.event]).toEqual(["idle", asked.seq + 1, "DashboardDeny"]);
    expect(fs.statSync(path.join(stateOf(h, 2), "status.json")).uid).toBe(UID_BASE + 2);
    // What Claude Code shows: the call did not run, the prompt waits for the user.
    await poll(
      "the pane says the call did not run",
      () => pane(h, 2).includes("Did not run") && atPrompt(pane(h, 2)),
      30_000,
      100,
    );
    expect(pane(h, 2)).toContain("Interrupted · What should Claude do instead?");
    expect(fs.existsSync(path.join(h.ws, "agent-2", "denied.txt"))).toBe(false);
    // No dialog any more: approving now is refused and no key reaches the agent.
    const inputBefore = inputLine(pane(h, 2));
    const [late] = await answersFromPage(2, [{ action: "approve" }]);
    expect(late.status).toBe(409);
    expect(late.body.error).toMatch(/nothing was typed/);
    // A negative check's observation window: no key reaches agent-2's input line in the 1.5 s
    // after the refused approve.
    await new Promise((r) => setTimeout(r, 1500));
    expect(inputLine(pane(h, 2))).toBe(inputBefore);
    expect(api.requests.slice(before).filter((r) => r.scripted)).toEqual([]);
  });

  test("a Deny typed in the terminal (Esc in the pane, no hook fires): the page and agentctl status stop saying it needs permission within 10 s, and agree", async () => {
    const command = `echo terminal-${NONCE} > terminal.txt`;
    api.reply({ toolUse: { name: "Bash", input: { command, description: "write terminal.txt" } } });
    await sendFromPage(2, `try the terminal one ${NONCE}`);
    await pageShows(2, "needs-permission");
    await poll(
      "agent-2's permission dialog",
      () => /Do you want to proceed\?/.test(pane(h, 2)),
      30_000,
      100,
    );
    const asked = recorded(h, 2) as StatusFile;
    expect(asked.reason).toBe(`Bash: ${command}`);
    // The lead, attached to agent-2's window, presses Esc at the dialog.
    const pressed = await escInPane(2, () => /Do you want to proceed\?/.test(pane(h, 2)));
    await poll(
      "agent-2's pane back at its prompt, the call refused",
      () =>
        pane(h, 2).includes("Interrupted · What should Claude do instead?") && atPrompt(pane(h, 2)),
      30_000,
      100,
    );
    const onPage = await idleEverywhere(2, `denied in the terminal: Bash: ${command}`, pressed);
    console.log(`dashboard: Esc pressed in the pane -> idle on the page in ${onPage} ms`);
    // HOOK_GRACE_MS (5 s from the record) + the pane cache (3 s) + the page's 1 s look.
    expect(onPage).toBeLessThan(10_000);
    // Claude Code fired no hook: the recorder's file still says needs-permission, unchanged.
    const after = recorded(h, 2) as StatusFile;
    expect([after.state, after.seq, after.event]).toEqual([asked.state, asked.seq, asked.event]);
    expect(fs.existsSync(path.join(h.ws, "agent-2", "terminal.txt"))).toBe(false);
  });

  test("a question declined in the terminal (Esc in the pane, no hook fires): needs-answer while its dialog shows, moved through and typed into; idle within 10 s of the Esc on the page and in agentctl status, and the page can send again", async () => {
    const cwd = path.join(h.ws, "agent-2");
    const question = `Which database for ${NONCE}-esc?`;
    const tool = databaseQuestion(`${NONCE}-esc`);
    api.reply({ toolUse: tool, cwd });
    await sendFromPage(2, `pick one, or not ${NONCE}`);
    await pageShows(2, "needs-answer");
    const dialog = () => pane(h, 2).includes(question) && /Esc to cancel/.test(pane(h, 2));
    await poll("agent-2's question dialog", dialog, 30_000, 50);
    const asked = recorded(h, 2) as StatusFile;
    expect(asked.reason).toBe(question);
    // The lead, attached, moves through the options and types an answer of their own: the dialog
    // redraws, and stays.
    tmux(h.sock, ["send-keys", "-t", target(2), "Down"]);
    await poll("the cursor on SQLite", () => /^❯ 2\. SQLite/m.test(pane(h, 2)), 10_000, 50);
    tmux(h.sock, ["send-keys", "-t", target(2), "3"]);
    await poll(
      "the cursor on Type something.",
      () => /^❯ 3\. Type something\./m.test(pane(h, 2)),
      10_000,
      50,
    );
    // Keys typed the moment the cursor lands on it can be dropped before its text input takes
    // them (seen 1 run in 3): typed again if nothing showed 2 s later, as a person would.
    let typed = false;
    for (let attempt = 0; attempt < 3 && !typed; attempt++) {
      tmux(h.sock, ["send-keys", "-t", target(2), "-l", "MariaDB"]);
      typed = await poll("the typed answer", () => /^❯ 3\. \S*MariaDB/m.test(pane(h, 2)), 2000, 50)
        .then(() => true)
        .catch(() => false);
    }
    if (!typed) throw new Error(`the typed answer never showed; agent-2's pane:\n${pane(h, 2)}`);
    // Past the grace, the server's pane cache and the page's look, the dialog still up: nobody
    // says it was declined. (Waiting out a time is the point here: nothing is to happen.)
    const settled = asked.updated + HOOK_GRACE_MS + 3000 + 1500;
    await new Promise((r) => setTimeout(r, Math.max(0, settled - Date.now())));
    const cliOpen = JSON.parse((await runAsync(AGENTCTL, ["status", "--json"], h.env)).stdout) as {
      agents: Record<string, unknown>[];
    };
    expect(dialog()).toBe(true);
    expect(cliOpen.agents.find((x) => x.name === "agent-2")?.agent_state).toBe("needs-answer");
    expect(await page.getAttribute('#card [data-agent="agent-2"]', "data-state")).toBe(
      "needs-answer",
    );
    const pressed = await escInPane(2, dialog);
    await poll(
      "agent-2's pane back at its prompt, the question declined",
      () => pane(h, 2).includes("Declined to answer Claude's questions:") && atPrompt(pane(h, 2)),
      30_000,
      100,
    );
    const onPage = await idleEverywhere(2, `declined in the terminal: ${question}`, pressed);
    console.log(`dashboard: Esc at the question -> idle on the page in ${onPage} ms`);
    // HOOK_GRACE_MS (5 s from the record) + the pane cache (3 s) + the page's 1 s look.
    expect(onPage).toBeLessThan(10_000);
    // Claude Code fired no hook: the recorder's file still holds the question, unchanged.
    const after = recorded(h, 2) as StatusFile;
    expect([after.state, after.seq, after.event]).toEqual([asked.state, asked.seq, asked.event]);
    // The agent takes a prompt again (send refuses one that waits for an answer), and the model
    // learns then what became of its question: the tool result Claude Code sends for it.
    api.reply({ text: `No database then, ${NONCE}.`, cwd });
    await sendFromPage(2, `carry on without it ${NONCE}`);
    const next = await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes(`carry on without it ${NONCE}`),
      60_000,
    );
    const result = toolResult(next, (b) => b.name === "AskUserQuestion");
    console.log(
      `dashboard: the model's tool_result for the declined question: ${JSON.stringify(result)}`,
    );
    // Claude Code 2.1.331's words for any refused tool use: the model is told to stop and wait.
    expect(result).toMatchObject({ type: "tool_result", is_error: true });
    expect(String(result?.content)).toMatch(
      /^The user doesn't want to proceed with this tool use\. The tool use was rejected .*STOP what you are doing and wait for the user to tell you how to proceed\.$/,
    );
    await pageShows(2, "idle");
    expect(recorded(h, 2)?.reason).toBe(`No database then, ${NONCE}.`);
  });

  test("a question: the page offers its options; tapping one answers it", async () => {
    api.reply({
      toolUse: databaseQuestion(NONCE),
    });
    api.reply({ text: `SQLite it is for ${NONCE}.` });
    await sendFromPage(1, `pick a database ${NONCE}`);
    await pageShows(1, "needs-answer");
    await page.waitForSelector('#actions [data-option="2"]', { timeout: 10_000 });
    expect(await page.$$eval("#actions button", (b) => b.map((x) => x.textContent))).toEqual([
      "1. Postgres",
      "2. SQLite",
      "Chat about this",
    ]);
    await page.tap('#actions [data-option="2"]');
    const answered = await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes(`=\\"SQLite\\"`),
      60_000,
    );
    expect(conversation(answered)).toContain(`Which database for ${NONCE}?`);
    await pageShows(1, "idle");
  });

  test("a question of two parts: the page offers each part's options in turn, then Submit; the model gets both answers", async () => {
    await ask(stackQuestion(NONCE), `pick a stack ${NONCE}`);
    await offered(["1. Postgres", "2. SQLite", "Chat about this"], "the first part's options");
    await page.tap('#actions [data-option="1"]');
    await offered(["1. Redis", "2. Memcached", "Chat about this"], "the second part's options");
    expect(await page.textContent("#pane")).toContain(`Which cache for ${NONCE}?`);
    await page.tap('#actions [data-option="2"]');
    const answered = await submitReview(`=\\"Memcached\\"`);
    expect(conversation(answered)).toContain(`=\\"Postgres\\"`);
  });

  test("a question that takes several options: the page ticks them, Next leads to the review, Submit sends them all", async () => {
    await ask(databaseQuestion(NONCE, true), `pick databases ${NONCE}`);
    await offered(
      ["1. ☐ Postgres", "2. ☐ SQLite", "Next →", "Chat about this"],
      "the boxes, none ticked",
    );
    const asked = api.requests.length;
    await page.tap('#actions [data-option="1"]');
    await offered(["1. ☑ Postgres", "2. ☐ SQLite", "Next →", "Chat about this"], "Postgres ticked");
    await page.tap('#actions [data-option="2"]');
    await offered(["1. ☑ Postgres", "2. ☑ SQLite", "Next →", "Chat about this"], "both ticked");
    // Nothing goes to the model while the lead ticks.
    expect(api.requests.slice(asked).filter((r) => r.scripted)).toEqual([]);
    await page.tap("#actions #next");
    const answered = await submitReview(`=\\"Postgres, SQLite\\"`);
    expect(conversation(answered)).toContain(`Which database for ${NONCE}?`);
  });

  test("a question the lead would rather talk over: Chat about this from the page, the cursor moved in the terminal first; the model is asked what to clarify, and the page's next message reaches it", async () => {
    const question = `Which database for ${NONCE}-chat?`;
    await ask(databaseQuestion(`${NONCE}-chat`), `pick or talk ${NONCE}`);
    await offered(
      ["1. Postgres", "2. SQLite", "Chat about this"],
      "the options and Chat about this",
    );
    // The lead, attached a moment ago, left the cursor on SQLite: no digit picks Chat about this,
    // so the page's keys must start from where the cursor is.
    tmux(h.sock, ["send-keys", "-t", target(1), "Down"]);
    await poll("the cursor on SQLite", () => /^❯ 2\. SQLite/m.test(pane(h, 1)), 10_000, 50);
    await page.tap("#actions #chat");
    const told = await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes("The user wants to clarify these questions"),
      60_000,
    );
    // Claude Code's tool result for this question: declined, for a conversation; no answer in it.
    const result = toolResult(told, (b) => JSON.stringify(b.input).includes(question));
    expect(result).toMatchObject({ type: "tool_result", is_error: true });
    expect(String(result?.content)).toContain("The user wants to clarify these questions");
    expect(String(result?.content)).toContain("(No answer provided)");
    await pageShows(1, "idle");
    api.reply({ text: `Understood, ${NONCE}.` });
    await sendFromPage(1, `I meant the cache, not the database ${NONCE}`);
    await api.waitForRequest(
      (r) => r.scripted && conversation(r).includes(`I meant the cache, not the database ${NONCE}`),
      60_000,
    );
    await pageShows(1, "idle");
    // Two at once (a double tap, a second tab): one is typed, the other refused, none of its keys
    // between the first one's.
    await ask(databaseQuestion(`${NONCE}-chat2`), `again, pick or talk ${NONCE}`);
    await offered(["1. Postgres", "2. SQLite", "Chat about this"], "the options again");
    const both = await answersFromPage(1, [{ action: "chat" }, { action: "chat" }]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(both.find((r) => r.status === 409)?.body.error).toMatch(/still being typed/);
    await api.waitForRequest(
      (r) =>
        r.scripted &&
        conversation(r).includes(`${NONCE}-chat2`) &&
        conversation(r).includes("The user wants to clarify these questions"),
      60_000,
    );
    await pageShows(1, "idle");
  });

  test("send refuses an agent that is working, as agentctl send does", async () => {
    api.reply({ text: `slow answer ${NONCE}`, delayMs: 8000 });
    await sendFromPage(1, `take your time ${NONCE}`);
    await pageShows(1, "working");
    await page.fill("#send-text", "are you done?");
    await page.click("#send");
    await page.waitForFunction(() =>
      /is working/.test(document.getElementById("msg")?.textContent ?? ""),
    );
    expect(await page.getAttribute("#msg", "class")).toBe("bad");
    await pageShows(1, "idle");
    expect(api.requests.some((r) => conversation(r).includes("are you done?"))).toBe(false);
  });

  test("rotating the token: the page's old token gets 401 and the page says how to get a new one", async () => {
    const rotated = await runAsync(AGENTCTL, ["web", "--rotate-token"], h.env);
    expect(rotated.code).toBe(0);
    const file = h.dashboardTokenFile;
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const fresh = fs.readFileSync(file, "utf8").trim();
    expect(fresh).not.toBe(token);
    expect(
      (
        await request(h.port, "GET", "/api/agents", {
          Host: host(),
          Authorization: `Bearer ${token}`,
        })
      ).status,
    ).toBe(401);
    await page.reload();
    await page.waitForFunction(() =>
      /token was refused/.test(document.getElementById("notice")?.textContent ?? ""),
    );
    // Nothing of the token in the page, the server's log or the command's output.
    expect(await page.content()).not.toContain(fresh);
    expect(h.webLog.join("\n")).not.toContain(fresh);
    expect(rotated.stdout + rotated.stderr).not.toContain(fresh);
    token = fresh;
  });

  test("every refusal: no token, a wrong one, a foreign Host, a foreign Origin, too many failures", async () => {
    const auth = { Authorization: `Bearer ${token}` };
    const wrong = { Authorization: `Bearer ${"x".repeat(43)}` };
    const ok = await request(h.port, "GET", "/api/agents", { Host: host(), ...auth });
    expect(ok.status).toBe(200);
    expect(Object.keys(ok.headers).filter((k) => k.startsWith("access-control"))).toEqual([]);

    // As an agent would try it: agent-1's own uid, the installed paths. The token file stays closed to
    // it and unchanged; the port answers 401 without the token.
    const tokenFile = h.dashboardTokenFile;
    const before = fs.readFileSync(tokenFile, "utf8");
    const asAgent = (cmd: string[]) =>
      runAsync(
        "setpriv",
        [`--reuid=${UID_BASE + 1}`, `--regid=${UID_BASE + 1}`, "--init-groups", ...cmd],
        {
          PATH: process.env.PATH,
        },
      );
    const read = await asAgent(["cat", tokenFile]);
    expect([read.code, read.stdout]).toEqual([1, ""]);
    expect(read.stderr).toMatch(/Permission denied/);
    const guess = await asAgent([
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-H",
      `Authorization: Bearer ${"A".repeat(43)}`,
      `http://127.0.0.1:${h.port}/api/agents`,
    ]);
    expect(guess.stdout).toBe("401");
    const bare = await asAgent([
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `http://127.0.0.1:${h.port}/api/agents`,
    ]);
    expect(bare.stdout).toBe("401");
    expect(fs.readFileSync(tokenFile, "utf8")).toBe(before);

    const none = await request(h.port, "GET", "/api/agents", { Host: host() });
    expect([none.status, none.headers["www-authenticate"]]).toEqual([
      401,
      'Bearer realm="agent-host"',
    ]);
    expect((await request(h.port, "GET", "/api/agents", { Host: host(), ...wrong })).status).toBe(
      401,
    );

    // DNS rebinding: a name that resolves to 127.0.0.1, with the right token even.
    const rebound = await request(h.port, "GET", "/api/agents", {
      Host: `evil.example:${h.port}`,
      ...auth,
    });
    expect(rebound.status).toBe(403);
    expect((await request(h.port, "GET", "/", { Host: `evil.example:${h.port}` })).status).toBe(
      403,
    );

    // A foreign Origin on a POST, token or not; nothing is typed.
    const foreign = await request(
      h.port,
      "POST",
      "/api/agents/agent-1/send",
      { Host: host(), Origin: "http://evil.example", "Content-Type": "application/json", ...auth },
      JSON.stringify({ text: `from evil ${NONCE}` }),
    );
    expect(foreign.status).toBe(403);
    const preflight = await request(h.port, "OPTIONS", "/api/agents/agent-1/send", {
      Host: host(),
      Origin: "http://evil.example",
      "Access-Control-Request-Method": "POST",
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();

    // The same from a real page on another origin, in the browser: the request fails there.
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end("<!doctype html><title>evil</title>");
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    const evilPort = (evil.address() as import("net").AddressInfo).port;
    const other = await context.newPage();
    const statuses: number[] = [];
    other.on("response", (r) => {
      if (r.url().includes(`:${h.port}/api/`)) statuses.push(r.status());
    });
    await other.goto(`http://localhost:${evilPort}/`);
    const outcome = await other.evaluate(
      async ([port, t, n]) => {
        try {
          const r = await fetch(`http://127.0.0.1:${port}/api/agents/agent-1/send`, {
            method: "POST",
            headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" },
            body: JSON.stringify({ text: `cross-site ${n}` }),
          });
          return `status ${r.status}`;
        } catch (e) {
          return `blocked: ${(e as Error).message}`;
        }
      },
      [h.port, token, NONCE] as const,
    );
    expect(outcome).toMatch(/^blocked/);
    await other.close();
    await new Promise<void>((r) => evil.close(() => r()));
    expect(statuses.every((s) => s === 403)).toBe(true);
    expect(await typedBefore(h, 1)).toBe("");
    expect(pane(h, 1)).not.toMatch(/from evil|cross-site/);
    expect(api.requests.some((r) => /from evil|cross-site/.test(conversation(r)))).toBe(false);

    // Past 20 failures a minute: 429 with Retry-After; the right token is still served.
    const codes: number[] = [];
    for (let i = 0; i < 25; i++)
      codes.push((await request(h.port, "GET", "/api/agents", { Host: host(), ...wrong })).status);
    expect(codes.filter((c) => c === 401).length).toBeLessThanOrEqual(20);
    const limited = await request(h.port, "GET", "/api/agents", { Host: host(), ...wrong });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect((await request(h.port, "GET", "/api/agents", { Host: host(), ...auth })).status).toBe(
      200,
    );
  });
});
