// The real Claude Code (the pinned 2.1.331 from the npm registry, tests/fixtures/real-claude.ts)
// under agentctl and agent-wrapper, in real tmux windows, as an unprivileged agent user as in
// production, against a stand-in of the Messages API and of Vertex AI on 127.0.0.1
// (tests/fixtures/messages-api.ts). Nothing here prepares the agents' Claude config: every window
// must reach the prompt through the product's own seeding (seed-claude-config).
//
// The binary's traffic stays on this machine: CLAUDE_ENV (host.conf) gives it
// CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and an HTTPS_PROXY on a loopback port where nothing
// listens (NO_PROXY for the stand-in), so anything meant for Anthropic's or Google's hosts is
// refused on 127.0.0.1. Vertex auth: CLAUDE_CODE_SKIP_VERTEX_AUTH=1, also through CLAUDE_ENV (on
// the VM, google-auth takes the service account's token from the metadata server instead).
//
// `agentctl login` runs the real `claude setup-token` as the agent user; its OAuth exchange needs
// claude.ai and platform.claude.com, which no stand-in here can honestly play, so the test ends
// setup-token and pastes a recorded token: what is proven is the storing (root-only) and that
// every restarted agent signs in with it.
//
// Figures (time for 12 agents to reach the prompt, their memory) are printed, not asserted.
import { spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { startMessagesApi, type MessagesApi, type RecordedRequest } from "./fixtures/messages-api";
import { atClaudePrompt, realClaudeBin } from "./fixtures/real-claude";
import { offlineClaudeEnv, pane, RealHost, tmux, typePrompt, unavailableSuite } from "./real-suite";
import { alive, filesContaining, poll, removeTestAgents, type RunResult } from "./support";
import { AGENTCTL } from "./host-files";
import { HOST_FILES } from "../cloud-init/files";
import { agentDockerEnv } from "../host/docker/rootless";

const AGENT_USER = "claudereal";
/** Its agent users claudereal-N (uid 61200+N): made by the product's reconcile, removed after. */
const UID_BASE = 61200;
const COUNT = 12;
const NONCE = randomBytes(4).toString("hex");
// Look like what Anthropic issues; nothing outside 127.0.0.1 ever sees them.
const API_KEY = `sk-ant-api03-REALTEST${NONCE}${"k".repeat(60)}`;
const RECORDED_TOKEN = `sk-ant-oat01-RECORDED${NONCE}${"t".repeat(70)}`;
const VERTEX = {
  project: "agent-host-test",
  region: "us-east5",
  model: "claude-sonnet-4-5@20250929",
};

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const haveTools = ["tmux", "setpriv", "flock", "jq", "npm"].every(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `real Claude Code tests skipped: they need root (to run the agents as ${AGENT_USER}) and tmux, setpriv, flock, jq, npm`,
      );

interface Row {
  name: string;
  state: string;
  exit_code: number | null;
  pid: number | null;
  memory_bytes: number | null;
  restarts: number;
  signin: string | null;
  auth: string | null;
  last_exit_reason: string | null;
}

type Host = RealHost;

const ctl = (h: Host, args: string[], stdin?: string): Promise<RunResult> => h.ctl(args, stdin);

async function status(h: Host): Promise<Row[]> {
  const r = await ctl(h, ["status", "--json"]);
  if (r.code !== 0) throw new Error(`agentctl status --json: ${r.code} ${r.stderr}`);
  const num = (x: Row) => Number(x.name.replace("agent-", ""));
  return (JSON.parse(r.stdout) as { agents: Row[] }).agents.sort((a, b) => num(a) - num(b));
}

const atPrompt = atClaudePrompt;

const conversation = (r: RecordedRequest) => JSON.stringify(r.body?.messages ?? []);

/** The stack config of the suite's host (the stack's own renderer writes host.conf from it). */
const stackConfig = (api: MessagesApi, claudeEnv: string[]): Record<string, string> => ({
  "agent-host:agentCount": String(COUNT),
  "agent-host:agentPermissionMode": "bypassPermissions",
  "agent-host:anthropicBaseUrl": api.url,
  "agent-host:claudeEnv": JSON.stringify(claudeEnv),
});
function claudePid(h: Host, n: number): number {
  return Number(fs.readFileSync(path.join(h.run, `agent-${n}`, "pid"), "utf8").trim());
}

/** NAME=value pairs of a process's environment (root reads any /proc/PID/environ). */
function environOf(pid: number): Map<string, string> {
  const raw = fs.readFileSync(`/proc/${pid}/environ`, "utf8");
  return new Map(
    raw
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

/** Agent n's uid: each agent its own user (issue 20). */
const uidOf = (n: number): number => UID_BASE + n;
/** Agent n's state folder: HOME/.agent-host. */
const stateOf = (h: Host, n: number): string =>
  path.join(h.homes, `${AGENT_USER}-${n}`, ".agent-host");

suite("the real Claude Code under agentctl, against a stand-in API", () => {
  jest.setTimeout(300_000);
  let api: MessagesApi;
  let h: Host;
  let claudeEnv: string[];

  beforeAll(async () => {
    const bin = realClaudeBin();
    removeTestAgents(AGENT_USER, UID_BASE);
    api = await startMessagesApi({ defaultText: `stand-in ${NONCE}`, models: [VERTEX.model] });
    claudeEnv = await offlineClaudeEnv();
    h = new RealHost({
      name: "real-claude",
      user: AGENT_USER,
      uidBase: UID_BASE,
      apiKey: API_KEY,
      stack: stackConfig(api, claudeEnv),
      site: { CLAUDE_BIN: bin },
    });
    await h.start();
  });

  afterAll(async () => {
    await h?.close();
    await api?.close();
    removeTestAgents(AGENT_USER, UID_BASE);
  });

  test(`${COUNT} agents reach the ❯ prompt with no keypress, in bypassPermissions mode`, async () => {
    // The deploy (apply, in beforeAll) reconciled them; the figures count from its start.
    const t0 = h.deployedAt;
    const r = await ctl(h, ["reconcile", String(COUNT)]);
    expect(r.code).toBe(0);
    const ready = new Map<number, number>();
    await poll(
      `${COUNT} windows at the prompt`,
      () => {
        for (let n = 1; n <= COUNT; n++) {
          if (!ready.has(n) && atPrompt(pane(h, n))) ready.set(n, Date.now() - t0);
        }
        return ready.size === COUNT;
      },
      240_000,
    );
    for (let n = 1; n <= COUNT; n++) {
      const text = pane(h, n);
      // The mode the operator chose, really in effect (not the silent fallback to default).
      expect(text).toContain("bypass permissions on");
      for (const dialog of [
        "Do you want to use this API key",
        "Is this a project you created or one you trust",
        "Unable to connect to Anthropic services",
        "running in Bypass Permissions mode",
      ])
        expect(text).not.toContain(dialog);
    }
    const rows = await status(h);
    expect(rows.map((x) => [x.name, x.state, x.signin, x.auth])).toEqual(
      Array.from({ length: COUNT }, (_, i) => [
        `agent-${i + 1}`,
        "running",
        "signed-in",
        "api-key config",
      ]),
    );
    for (const row of rows)
      expect(fs.statSync(`/proc/${row.pid}`).uid).toBe(uidOf(Number(row.name.slice(6))));
    const mem = rows.reduce((a, x) => a + (x.memory_bytes ?? 0), 0);
    console.log(
      `real claude ${COUNT} agents: ${(Math.max(...ready.values()) / 1000).toFixed(
        1,
      )} s from the deploy to the last prompt (first ${(Math.min(...ready.values()) / 1000).toFixed(
        1,
      )} s); memory ${(mem / 2 ** 20).toFixed(0)} MiB in all, ${(mem / COUNT / 2 ** 20).toFixed(0)} MiB each`,
    );
  });

  // A scripted reply left unused, or a request that broke the API's rules, fails the test that
  // caused it; the queue is empty for the next one.
  afterEach(() => api?.verify());

  test("a prompt typed into agent 5 gets the stand-in's reply", async () => {
    api.reply({ text: `PONG ${NONCE}`, cwd: path.join(h.ws, "agent-5") });
    await typePrompt(h, 5, `ping ${NONCE}`);
    const req = await api.waitForRequest(
      (x) => x.scripted && conversation(x).includes(`ping ${NONCE}`),
      60_000,
    );
    expect(req.path).toBe("/v1/messages");
    expect(req.headers["x-api-key"]).toBe(API_KEY);
    expect(req.body?.stream).toBe(true);
    await poll("agent-5 to show the reply", () => pane(h, 5).includes(`PONG ${NONCE}`), 30_000);
  });

  test("after `agentctl restart 5` the next request carries the earlier messages", async () => {
    const sessionId = fs.readFileSync(path.join(stateOf(h, 5), "session-id"), "utf8").trim();
    const before = claudePid(h, 5);
    const r = await ctl(h, ["restart", "5"]);
    expect(r.code).toBe(0);
    await poll(
      "agent-5's new claude at the prompt",
      () =>
        fs.existsSync(path.join(h.run, "agent-5", "pid")) &&
        claudePid(h, 5) !== before &&
        atPrompt(pane(h, 5)),
      60_000,
    );
    const log = fs.readFileSync(path.join(h.run, "agent-5", "wrapper.log"), "utf8");
    expect(log).toContain(`(--resume ${sessionId})`);
    api.reply({ text: `second ${NONCE}`, cwd: path.join(h.ws, "agent-5") });
    await typePrompt(h, 5, `again ${NONCE}`);
    const req = await api.waitForRequest(
      (x) => x.scripted && conversation(x).includes(`again ${NONCE}`),
      60_000,
    );
    const msgs = conversation(req);
    expect(msgs).toContain(`ping ${NONCE}`);
    expect(msgs).toContain(`PONG ${NONCE}`);
    await poll(
      "agent-5 to show the second reply",
      () => pane(h, 5).includes(`second ${NONCE}`),
      30_000,
    );
  });

  test("a claude that keeps exiting shows as restarting with its exit code and reason, never running", async () => {
    // The test plays a kernel that OOM-kills agent-12's claude each time it starts (SIGKILL by
    // pid): the wrapper restarts it after a second, so most polls find a live claude.
    const killed = new Set<number>();
    const pidFile = path.join(h.run, "agent-12", "pid");
    const killNewClaude = (): void => {
      if (!fs.existsSync(pidFile)) return;
      const pid = Number(fs.readFileSync(pidFile, "utf8"));
      if (!pid || killed.has(pid)) return;
      try {
        if (fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("claude")) {
          process.kill(pid, "SIGKILL");
          killed.add(pid);
        }
      } catch {
        // it ended by itself between the read and the kill
      }
    };
    const seen: string[] = [];
    const looping = await poll(
      "agent-12 restarting after at least three short runs",
      async () => {
        killNewClaude();
        const row = (await status(h)).find((x) => x.name === "agent-12");
        // From the crash-loop verdict on (a live claude called restarting: its last two runs were
        // short); "restarting" in the backoff after the first kill says only that it crashed.
        if (row && (seen.length > 0 || (row.state === "restarting" && row.pid !== null)))
          seen.push(row.state);
        return row && row.state === "restarting" && row.restarts >= 3 ? row : undefined;
      },
      120_000,
      200,
    );
    expect(looping.exit_code).toBe(137);
    expect(looping.last_exit_reason).toBe("killed by signal 9 (SIGKILL)");
    // From the first restarting on, no poll says running: a claude alive for a second between two
    // crashes is not running. Asked while each next claude is alive (when a lenient status would
    // say running), and again in the backoff after it is killed.
    const state12 = async () => ((await status(h)).find((x) => x.name === "agent-12") as Row).state;
    for (let i = 0; i < 6; i++) {
      await poll(
        `agent-12's next claude (${i + 1} of 6)`,
        () => {
          const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, "utf8")) : 0;
          return pid > 0 && !killed.has(pid) && alive(pid);
        },
        30_000,
        50,
      );
      seen.push(await state12());
      killNewClaude();
      seen.push(await state12());
    }
    expect(seen.filter((x) => x !== "restarting")).toEqual([]);
    // Left alone, it comes back: restarting for its first STABLE_RUN_SECONDS, then running.
    await poll("agent-12 back at the prompt", () => atPrompt(pane(h, 12)), 60_000);
    const row = await poll(
      "agent-12 running again",
      async () => (await status(h)).find((x) => x.name === "agent-12" && x.state === "running"),
      90_000,
      2000,
    );
    expect(row.signin).toBe("signed-in");
  });

  test("a 401 from the API shows as key-rejected in status --json", async () => {
    api.rejectCredential(API_KEY);
    await typePrompt(h, 7, `hello ${NONCE}`);
    await api.waitForRequest(
      (x) => x.status === 401 && conversation(x).includes(`hello ${NONCE}`),
      60_000,
    );
    const row = await poll(
      "agent-7 key-rejected",
      async () =>
        (await status(h)).find((x) => x.name === "agent-7" && x.signin === "key-rejected"),
      60_000,
    );
    expect(row.state).toBe("running");
    const others = (await status(h)).filter((x) => x.name !== "agent-7");
    expect(others.map((x) => x.signin)).toEqual(others.map(() => "signed-in"));
  });

  test("`agentctl login` runs setup-token as the agent, stores the token root-only, and restarted agents use it", async () => {
    expect((await ctl(h, ["reconcile", "3"])).code).toBe(0);
    fs.rmSync(h.keyFile);
    // A wrong token is refused before anything is stored.
    const bad = await ctl(h, ["login", "--token-stdin"], "sk-ant-api03-not-a-login-token\n");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a token from 'claude setup-token'/);
    expect(fs.existsSync(h.tokenFile)).toBe(false);

    // The person's terminal: its own tmux server, running `agentctl login`.
    const term = path.join(h.dir, "terminal.sock");
    const envArgs = Object.entries(h.env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    tmux(term, [
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-s",
      "t",
      "-x",
      "160",
      "-y",
      "45",
      ...envArgs,
      // The exit code, printed: tmux 3.3a leaves #{pane_dead_status} empty now and then for a
      // server's first pane (seen in CI and by hand), so it is not asked.
      "sh",
      "-c",
      `'${AGENTCTL}' login; echo "agentctl login exited $?"`,
      // Keep the pane's text after `agentctl login` exits (for the asserts, and a failure's cause).
      ";",
      "set-option",
      "-w",
      "-t",
      "=t:0",
      "remain-on-exit",
      "on",
    ]);
    try {
      const shot = () => tmux(term, ["capture-pane", "-p", "-t", "=t:0"]);
      await poll(
        "setup-token's sign-in screen",
        () => shot().includes("Paste code here if prompted"),
        60_000,
      );
      // setup-token below this terminal's agentctl (not some other login's).
      const panePid = Number(tmux(term, ["display-message", "-p", "-t", "=t:0", "#{pane_pid}"]));
      const procs = spawnSync("ps", ["-eo", "pid=,ppid=,uid=,args="], { encoding: "utf8" })
        .stdout.split("\n")
        .filter((l) => l.trim())
        .map((l) => l.trim().split(/\s+/));
      const parent = new Map(procs.map((f) => [Number(f[0]), Number(f[1])]));
      const below = (pid: number): boolean => {
        for (let p = pid, hops = 0; p > 1 && hops < 16; p = parent.get(p) ?? 0, hops++)
          if (p === panePid) return true;
        return false;
      };
      const setup = procs
        .map((f) => [f[0], f[2], ...f.slice(3)])
        .find(
          (f) => f.slice(2).join(" ").endsWith("claude.exe setup-token") && below(Number(f[0])),
        );
      expect(setup).toBeDefined();
      // setup-token runs as agent-1's user, with a throw-away config folder.
      expect(Number(setup?.[1])).toBe(uidOf(1));
      // The OAuth exchange cannot happen here: end setup-token, then paste a recorded token.
      process.kill(Number(setup?.[0]), "SIGTERM");
      await poll("the paste prompt", () => shot().includes("Paste the token"), 30_000);
      tmux(term, ["send-keys", "-t", "=t:0", "-l", RECORDED_TOKEN]);
      tmux(term, ["send-keys", "-t", "=t:0", "Enter"]);
      // It stores the token, restarts every agent with it, and exits 0.
      await poll(
        "agentctl login to finish",
        () => /agentctl login exited \d+/.test(shot()),
        90_000,
      );
      expect(shot()).toMatch(/^agentctl login exited 0$/m);
      expect(shot()).toMatch(/restarted agent-3/);
      // read -s: the token never showed in the terminal.
      expect(shot()).not.toContain(RECORDED_TOKEN);
    } finally {
      spawnSync("tmux", ["-S", term, "kill-server"]);
    }
    const st = fs.statSync(h.tokenFile);
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o600]);
    expect(fs.statSync(path.dirname(h.tokenFile)).mode & 0o777).toBe(0o700);
    expect(fs.readFileSync(h.tokenFile, "utf8").trim()).toBe(RECORDED_TOKEN);

    const rows = await poll(
      "agents 1-3 restarted with the login",
      async () => {
        const all = await status(h);
        return all.length === 3 &&
          // The pid too: the run files are written a moment apart, and the environment is read below.
          all.every(
            (x) =>
              x.auth === "oauth-token login" &&
              x.signin === "signed-in" &&
              typeof x.pid === "number",
          )
          ? all
          : undefined;
      },
      90_000,
    );
    await poll("agent-2 at the prompt", () => atPrompt(pane(h, 2)), 60_000);
    api.reply({ text: `logged in ${NONCE}`, cwd: path.join(h.ws, "agent-2") });
    await typePrompt(h, 2, `with login ${NONCE}`);
    const req = await api.waitForRequest(
      (x) => x.scripted && conversation(x).includes(`with login ${NONCE}`),
      60_000,
    );
    expect(req.headers.authorization).toBe(`Bearer ${RECORDED_TOKEN}`);
    expect(req.headers["x-api-key"]).toBeUndefined();
    // The token is in claude's environment only: never in argv, a pane, or the agents' files.
    const argv = spawnSync("ps", ["-eo", "args="], { encoding: "utf8" }).stdout;
    expect(argv).not.toContain(RECORDED_TOKEN);
    for (let n = 1; n <= 3; n++) expect(pane(h, n)).not.toContain(RECORDED_TOKEN);
    expect(filesContaining(h.dir, RECORDED_TOKEN)).toEqual([h.tokenFile]);
    expect(environOf(rows[0].pid as number).get("CLAUDE_CODE_OAUTH_TOKEN")).toBe(RECORDED_TOKEN);
  });

  test("Vertex AI: the agent reaches :streamRawPredict with no key anywhere on the host", async () => {
    fs.rmSync(h.tokenFile, { force: true });
    // The stack's project is the Vertex project (config.ts: vertexProjectId is gcp:project).
    const { "agent-host:anthropicBaseUrl": _anthropicOnly, ...onVertex } = stackConfig(api, [
      ...claudeEnv,
      // On the VM google-auth gets the service account's token from the metadata server.
      "CLAUDE_CODE_SKIP_VERTEX_AUTH=1",
    ]);
    // A deploy of the new config (pulumi config set claudeProvider vertex; pulumi up), no key.
    await h.apply(
      {
        ...onVertex,
        "gcp:project": VERTEX.project,
        "agent-host:agentCount": "1",
        "agent-host:claudeProvider": "vertex",
        "agent-host:vertexRegion": VERTEX.region,
        "agent-host:vertexBaseUrl": `${api.url}/v1`,
        "agent-host:claudeModel": VERTEX.model,
      },
      null,
    );
    expect((await ctl(h, ["reconcile", "1"])).code).toBe(0);
    expect((await ctl(h, ["restart", "1"])).code).toBe(0);
    const row = await poll(
      "agent-1 on Vertex",
      async () =>
        (await status(h)).find(
          (x) => x.name === "agent-1" && x.auth === "vertex" && x.state === "running",
        ),
      60_000,
    );
    expect(row.signin).toBe("signed-in");
    await poll("agent-1 at the prompt", () => atPrompt(pane(h, 1)), 60_000);
    api.reply({ text: `vertex ${NONCE}`, cwd: path.join(h.ws, "agent-1") });
    await typePrompt(h, 1, `on vertex ${NONCE}`);
    const req = await api.waitForRequest(
      (x) => x.api === "vertex" && x.scripted && conversation(x).includes(`on vertex ${NONCE}`),
      60_000,
    );
    expect(req.path).toBe(
      `/v1/projects/${VERTEX.project}/locations/${VERTEX.region}/publishers/anthropic/models/${VERTEX.model}:streamRawPredict`,
    );
    expect(req.headers["x-api-key"]).toBeUndefined();
    expect(req.headers.authorization).toBeUndefined();
    await poll(
      "agent-1 to show the Vertex reply",
      () => pane(h, 1).includes(`vertex ${NONCE}`),
      30_000,
    );
    const env = environOf(claudePid(h, 1));
    expect(env.get("CLAUDE_CODE_USE_VERTEX")).toBe("1");
    expect(env.get("ANTHROPIC_VERTEX_PROJECT_ID")).toBe(VERTEX.project);
    expect(env.get("CLOUD_ML_REGION")).toBe(VERTEX.region);
    expect(env.get("ANTHROPIC_MODEL")).toBe(VERTEX.model);
    for (const k of ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"])
      expect(env.has(k)).toBe(false);
    // Its own Docker (dockerMode rootless, the default): host/docker/rootless.ts agentDockerEnv.
    for (const pair of agentDockerEnv(1, "rootless"))
      expect(env.get(pair.split("=")[0])).toBe(pair.slice(pair.indexOf("=") + 1));
    // No key file, no login, and no Anthropic key or token in any file the host has: the two this
    // suite used nowhere, and no other one but in the shipped host files' own text (agentctl and
    // the wrapper name the prefixes they check).
    expect(fs.existsSync(h.keyFile) || fs.existsSync(h.tokenFile)).toBe(false);
    expect(filesContaining(h.dir, API_KEY)).toEqual([]);
    expect(filesContaining(h.dir, RECORDED_TOKEN)).toEqual([]);
    const shipped = HOST_FILES.map((f) => path.join(h.root, f.path));
    expect(filesContaining(h.dir, "sk-ant-a", shipped)).toEqual([]);
    expect(filesContaining(h.dir, "sk-ant-o", shipped)).toEqual([]);
  });
});
