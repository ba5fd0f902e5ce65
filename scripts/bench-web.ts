// What the dashboard costs (issue 21's figures), each beside a baseline measured in the same run.
// Prints figures, asserts nothing; the behaviour is proven by tests/dashboard.test.ts. Run as root
// (it creates and runs as a user, drives tmux):  npm run --silent bench:web [-- RUNS]
//
// A real tmux server started as agent-host.service starts it (`agentctl server`), 12 agents with
// the stand-in claude (tests/fixtures/claude) as a real unprivileged user, their states written by
// the real recorder (`agent-host.js hook`, as the agent, with 2.1.331's payload shapes), and the
// dashboard as agent-host-web.service runs it (`agentctl web`), in Debian's chromium (playwright-core):
// - page ready: navigation to the list showing all 12 agents, against a static page from a bare
//   Node server in the same browser (the floor: browser and loopback);
// - hook to page: from the recorder's start to the page showing needs-answer, against the hook
//   to status.json (the recorder's own cost, which the page cannot beat);
// - idle CPU and memory of the dashboard process (CPU with its children), with no page and with one
//   page open, against a bare `node` idling (with Node's defaults and with the unit's flags) and
//   the control window's monitor (`agent-host.js monitor`, the other root process that watches
//   every agent). Memory is VmRSS (with its anonymous and file-backed parts), PSS and the peak
//   (VmHWM), from /proc, after the page and hook runs.
//
// Every figure is taken twice: for the dashboard as agent-host-web.service runs it (the unit's
// ExecStart with its Node flags, read from cloud-init/systemd/agent-host-web.service) and with
// Node's defaults, each in turn against the same agents, page and baselines.
//
// `--variant=FLAGS` (repeatable; FLAGS space-separated, e.g. --variant="--max-semi-space-size=1")
// measures the dashboard with those Node flags too, after the two above.
//
// `--debian-node` runs the dashboards and the bare baselines with Debian 12's Node 18
// (tests/fixtures/debian-node.ts), the major the VM runs; without it, the PATH's node.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { chromium, type BrowserContext } from "playwright-core";
import { debianNode } from "../tests/fixtures/debian-node";
import { webUnitNodeFlags } from "../tests/fixtures/web-unit";
import { CHROMIUM, CHROMIUM_FLAGS, freePort, removeTestAgents } from "../tests/support";
import { AGENTCTL, BUNDLE, must, ROOT, stats, until } from "./bench-support";

const AGENT_USER = "agentweb";
/** The product makes agentweb-N (uid 62200+N, homes under the bench's folder); removed after. */
const UID_BASE = 62200;
const AGENTS = 12;
const ARGS = process.argv.slice(2);
const DEBIAN_NODE = ARGS.includes("--debian-node");
const RUNS = Math.max(3, Number(ARGS.find((a) => /^[0-9]+$/.test(a)) ?? 10));
const VARIANTS = ARGS.filter((a) => a.startsWith("--variant=")).map((a) =>
  a.slice("--variant=".length).split(" ").filter(Boolean),
);
const unknown = ARGS.find(
  (a) => !/^[0-9]+$/.test(a) && a !== "--debian-node" && !a.startsWith("--variant="),
);
if (unknown)
  throw new Error(
    `bench-web: unknown argument '${unknown}' (RUNS, --debian-node, --variant=FLAGS)`,
  );
const IDLE_SECONDS = 15;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of a process and its reaped children (utime, stime, cutime, cstime). */
function cpuSeconds(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

/** Memory of one process from /proc, in MiB: VmRSS (anonymous + file-backed), PSS, VmHWM. */
function memory(pid: number): {
  rss: number;
  anon: number;
  file: number;
  pss: number;
  hwm: number;
} {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (text: string, key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`no ${key} for pid ${pid}`);
    return Number(m[1]) / 1024;
  };
  return {
    rss: kb(status, "VmRSS"),
    anon: kb(status, "RssAnon"),
    file: kb(status, "RssFile"),
    pss: kb(rollup, "Pss"),
    hwm: kb(status, "VmHWM"),
  };
}

function showMemory(pid: number): string {
  const m = memory(pid);
  return `RSS ${m.rss.toFixed(1)} MiB (anon ${m.anon.toFixed(1)}, file ${m.file.toFixed(1)}), PSS ${m.pss.toFixed(1)}, peak ${m.hwm.toFixed(1)}`;
}

/** CPU% of each process over the same window. */
async function idleCpu(pids: number[], seconds: number): Promise<number[]> {
  const before = pids.map(cpuSeconds);
  await sleep(seconds * 1000);
  return pids.map((p, i) => ((cpuSeconds(p) - before[i]) / seconds) * 100);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates and runs as a user");
  removeTestAgents(AGENT_USER, UID_BASE);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-web-"));
  fs.chmodSync(dir, 0o755);
  const standin = path.join(dir, "claude");
  fs.copyFileSync(path.join(ROOT, "tests/fixtures/claude"), standin);
  fs.chmodSync(standin, 0o755);
  const bundle = path.join(dir, "agent-host.js");
  fs.copyFileSync(BUNDLE, bundle);
  fs.chmodSync(bundle, 0o755);
  const run = path.join(dir, "run");
  const homes = path.join(dir, "homes");
  /** Agent n's state folder, in its own home (one user per agent). */
  const state = (n: number) => path.join(homes, `${AGENT_USER}-${n}`, ".agent-host");
  const sock = path.join(run, "tmux.sock");
  const conf = path.join(dir, "host.conf");
  const port = await freePort();
  fs.mkdirSync(path.join(dir, "secrets"), { mode: 0o700 });
  fs.writeFileSync(
    conf,
    [
      `AGENT_COUNT=${AGENTS}`,
      `AGENT_USER=${AGENT_USER}`,
      `AGENT_UID_BASE=${UID_BASE}`,
      `AGENT_HOMES_DIR=${homes}`,
      `CLAUDE_BIN=${standin}`,
      "START_STAGGER_SECONDS=0.2",
      `WORKSPACES_DIR=${path.join(dir, "workspaces")}`,
      `STATE_DIR=${path.join(dir, "legacy-state")}`,
      `RUN_DIR=${run}`,
      `TMUX_SOCKET=${sock}`,
      `DASHBOARD_PORT=${port}`,
      `DASHBOARD_TOKEN_FILE=${path.join(dir, "secrets", "dashboard-token")}`,
      "",
    ].join("\n"),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    LANG: "C.UTF-8",
    AGENTCTL_CONFIG: conf,
    AGENT_WRAPPER: path.join(ROOT, "cloud-init/host/agent-wrapper"),
    AGENTCTL_TMUX_CONF: path.join(ROOT, "cloud-init/host/tmux.conf"),
    AGENT_HOST_JS: BUNDLE,
  };
  const children: ChildProcess[] = [];
  const start = (cmd: string, args: string[]) => {
    const c = spawn(cmd, args, { env, stdio: "ignore" });
    children.push(c);
    return c;
  };
  /** argv of the real recorder (`agent-host.js hook`) for agent-N, run as the agent. */
  const recorder = (n: number): string[] => [
    `--reuid=${UID_BASE + n}`,
    `--regid=${UID_BASE + n}`,
    "--init-groups",
    "env",
    `AGENT_HOST_STATE_DIR=${state(n)}`,
    process.execPath,
    bundle,
    "hook",
  ];
  /** The real recorder, as the agent, with a payload as Claude Code 2.1.331 sends it. */
  const hook = (n: number, payload: Record<string, unknown>): void => {
    must(
      "setpriv",
      recorder(n),
      undefined,
      JSON.stringify({
        session_id: "bench",
        cwd: path.join(dir, "workspaces", `agent-${n}`),
        ...payload,
      }),
    );
  };
  const recordedState = (n: number): string | undefined => {
    try {
      return (
        JSON.parse(fs.readFileSync(path.join(state(n), "status.json"), "utf8")) as {
          state: string;
        }
      ).state;
    } catch {
      return undefined;
    }
  };
  const baseline = http.createServer((_req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><meta charset=utf-8><title>baseline</title><p id=ready>ok</p>");
  });
  try {
    start(AGENTCTL, ["server"]);
    await until("the tmux server", () =>
      spawnSync("tmux", ["-S", sock, "list-sessions"]).status === 0 ? true : undefined,
    );
    must(AGENTCTL, ["reconcile", String(AGENTS)], env);
    await until(
      `${AGENTS} claudes`,
      () =>
        Array.from({ length: AGENTS }, (_, i) =>
          fs.existsSync(path.join(run, `agent-${i + 1}`, "pid")),
        ).every(Boolean) || undefined,
    );
    await sleep(1500);
    for (let n = 1; n <= AGENTS; n++)
      hook(n, { hook_event_name: "SessionStart", source: "startup" });

    const unitFlags = webUnitNodeFlags();
    const deb = DEBIAN_NODE ? debianNode() : undefined;
    /** `node FLAGS... ARGS...` with the node this run measures (Debian's 18 or the PATH's). */
    const nodeArgv = (flags: string[], args: string[]): string[] =>
      deb ? deb.argv([...flags, ...args]) : [process.execPath, ...flags, ...args];
    const nodeEnv = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv =>
      deb ? { ...env, ...deb.env, ...extra } : { ...env, ...extra };
    const nodeVersion = must(
      nodeArgv([], ["--version"])[0],
      nodeArgv([], ["--version"]).slice(1),
      nodeEnv({}),
    ).trim();
    const startNode = (flags: string[], args: string[]): ChildProcess => {
      const [cmd, ...rest] = nodeArgv(flags, args);
      const c = spawn(cmd, rest, { env: nodeEnv({}), stdio: "ignore" });
      children.push(c);
      return c;
    };
    const stop = async (c: ChildProcess) => {
      c.kill("SIGTERM");
      await until(
        "the process to end",
        () => (c.exitCode !== null || c.signalCode !== null ? true : undefined),
        10_000,
      );
    };

    const token = await until("the token", () => {
      try {
        return must(AGENTCTL, ["web", "--url"], env).trim();
      } catch {
        return undefined;
      }
    });
    const monitor = start(process.execPath, [bundle, "monitor"]);
    const bare = startNode([], ["-e", "setInterval(() => {}, 1e9)"]);
    const bareUnit = startNode(unitFlags, ["-e", "setInterval(() => {}, 1e9)"]);
    // The floor for any dashboard written for Node: a Node HTTP server that does nothing but
    // answer, with the unit's flags, asked as often as the dashboard's page is loaded below.
    const httpPort = await freePort();
    const bareHttp = startNode(unitFlags, [
      "-e",
      `require("http").createServer((q, r) => r.end("ok")).listen(${httpPort}, "127.0.0.1")`,
    ]);
    const askBareHttp = async (times: number): Promise<void> => {
      for (let i = 0; i < times; i++)
        await new Promise<void>((resolve, reject) =>
          http
            .get({ host: "127.0.0.1", port: httpPort, path: "/" }, (res) => {
              res.resume();
              res.on("end", resolve);
            })
            .on("error", reject),
        );
    };
    await new Promise<void>((r) => baseline.listen(0, "127.0.0.1", r));
    const basePort = (baseline.address() as net.AddressInfo).port;
    const context: BrowserContext = await chromium.launchPersistentContext(
      fs.mkdtempSync(path.join(os.tmpdir(), "bench-web-chromium-")),
      {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 375, height: 812 },
      },
    );
    console.log(
      `node ${nodeVersion}${deb ? " (Debian 12's, the VM's major)" : ""}; the unit's flags: ${unitFlags.join(" ") || "(none)"}; ${AGENTS} agents, ${RUNS} runs`,
    );

    /** Every figure for one way of running the dashboard. */
    const measure = async (label: string, flags: string[]): Promise<void> => {
      const web = startNode(flags, [bundle, "web"]);
      await until("the dashboard", () =>
        spawnSync("curl", ["-sf", "-o", "/dev/null", `http://127.0.0.1:${port}/`]).status === 0
          ? true
          : undefined,
      );
      await sleep(3000);
      const [cpuWebAlone, cpuMonitor, cpuBare] = await idleCpu(
        [web.pid as number, monitor.pid as number, bare.pid as number],
        IDLE_SECONDS,
      );
      console.log(
        `[${label}] idle CPU over ${IDLE_SECONDS} s, no page open: dashboard ${cpuWebAlone.toFixed(2)}%; baseline: bare node ${cpuBare.toFixed(2)}%, control-window monitor ${cpuMonitor.toFixed(2)}%`,
      );
      const ready: number[] = [];
      const floor: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const p = await context.newPage();
        let t = Date.now();
        await p.goto(`http://127.0.0.1:${basePort}/`);
        await p.waitForSelector("#ready");
        floor.push(Date.now() - t);
        t = Date.now();
        await p.goto(token);
        await p.waitForFunction(
          (n) =>
            document.body.dataset.ready === "1" &&
            document.querySelectorAll("#list .agent").length === n,
          AGENTS,
          { polling: "raf" },
        );
        ready.push(Date.now() - t);
        await p.close();
      }
      console.log(
        `[${label}] page ready with ${AGENTS} agents: ${stats(ready)}; baseline static page: ${stats(floor)}`,
      );

      const page = await context.newPage();
      await page.goto(token);
      await page.waitForSelector(`[data-agent="agent-${AGENTS}"]`);
      const toPage: number[] = [];
      const toFile: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const n = 1 + (i % AGENTS);
        const shown = page.waitForSelector(`[data-agent="agent-${n}"][data-state="needs-answer"]`, {
          timeout: 10_000,
        });
        const t = Date.now();
        const rec = spawn("setpriv", recorder(n), { stdio: ["pipe", "ignore", "ignore"] });
        rec.stdin.end(
          JSON.stringify({
            session_id: "bench",
            // A question, as 2.1.331 sends it: needs-answer. (A permission would show as working
            // here: the stand-in claude's own sleep loop starts processes, which is how an
            // approved command is told from a waiting one.)
            hook_event_name: "PreToolUse",
            tool_name: "AskUserQuestion",
            tool_input: { questions: [{ question: `bench question ${i}?`, header: "Bench" }] },
          }),
        );
        await until(
          "status.json",
          () => (recordedState(n) === "needs-answer" ? true : undefined),
          10_000,
        );
        toFile.push(Date.now() - t);
        await shown;
        toPage.push(Date.now() - t);
        hook(n, { hook_event_name: "Stop", last_assistant_message: "done" });
        await page.waitForSelector(`[data-agent="agent-${n}"][data-state="idle"]`, {
          timeout: 10_000,
        });
      }
      console.log(
        `[${label}] hook to page (needs-answer shown): ${stats(toPage)}; baseline hook to status.json: ${stats(toFile)}`,
      );

      const [cpuWebPage, cpuBare2] = await idleCpu(
        [web.pid as number, bare.pid as number],
        IDLE_SECONDS,
      );
      console.log(
        `[${label}] idle CPU over ${IDLE_SECONDS} s, one page open (live updates): dashboard ${cpuWebPage.toFixed(2)}%; baseline bare node ${cpuBare2.toFixed(2)}%`,
      );
      console.log(`[${label}] memory after all that: dashboard ${showMemory(web.pid as number)}`);
      await page.close();
      await stop(web);
    };

    await measure(`as the unit runs it: ${unitFlags.join(" ") || "no flags"}`, unitFlags);
    await measure("Node's defaults", []);
    for (const flags of VARIANTS) await measure(flags.join(" "), flags);
    for (let i = 0; ; i++) {
      const up = await askBareHttp(1).then(
        () => true,
        () => false,
      );
      if (up) break;
      if (i >= 100) throw new Error("the bare HTTP server did not answer in 10 s");
      await sleep(100);
    }
    await askBareHttp(RUNS * 3);
    console.log(`baseline memory: bare node (defaults) ${showMemory(bare.pid as number)}`);
    console.log(
      `baseline memory: a bare Node HTTP server (${unitFlags.join(" ") || "no flags"}), asked ${RUNS * 3 + 1} times: ${showMemory(bareHttp.pid as number)}`,
    );
    console.log(
      `baseline memory: bare node (${unitFlags.join(" ") || "no flags"}) ${showMemory(bareUnit.pid as number)}`,
    );
    console.log(
      `baseline memory: control-window monitor (node ${process.versions.node}, defaults) ${showMemory(monitor.pid as number)}`,
    );
    await context.close();
  } finally {
    baseline.close();
    spawnSync("tmux", ["-S", sock, "kill-server"]);
    for (const c of children) c.kill("SIGTERM");
    await sleep(500);
    removeTestAgents(AGENT_USER, UID_BASE);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
