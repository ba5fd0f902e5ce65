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
// - idle CPU and RSS of the dashboard process (its children included), with no page and with one
//   page open, against a bare `node` idling and the control window's monitor (`agent-host.js
//   monitor`, the other root process that watches every agent).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_FLAGS, freePort } from "../tests/support";
import { AGENTCTL, BenchFleet, BUNDLE, must, stats, until } from "./bench-support";

const AGENT_USER = "agenttest";
const AGENTS = 12;
const RUNS = Math.max(3, Number(process.argv[2] ?? 10));
const IDLE_SECONDS = 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of a process and its reaped children (utime, stime, cutime, cstime). */
function cpuSeconds(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1]) / 1024;
}

/** CPU% of each process over the same window. */
async function idleCpu(pids: number[], seconds: number): Promise<number[]> {
  const before = pids.map(cpuSeconds);
  await sleep(seconds * 1000);
  return pids.map((p, i) => ((cpuSeconds(p) - before[i]) / seconds) * 100);
}

async function main(): Promise<void> {
  const port = await freePort();
  const fleet = new BenchFleet("bench-web", AGENT_USER, (f) => [
    `AGENT_COUNT=${AGENTS}`,
    "START_STAGGER_SECONDS=0.2",
    `DASHBOARD_PORT=${port}`,
    `DASHBOARD_TOKEN_FILE=${path.join(f.dir, "secrets", "dashboard-token")}`,
  ]);
  const { dir, run, state, env } = fleet;
  const uid = Number(must("id", ["-u", AGENT_USER]).trim());
  const gid = Number(must("id", ["-g", AGENT_USER]).trim());
  const bundle = path.join(dir, "agent-host.js");
  fs.copyFileSync(BUNDLE, bundle);
  fs.chmodSync(bundle, 0o755);
  fs.mkdirSync(path.join(dir, "secrets"), { mode: 0o700 });
  const start = (cmd: string, args: string[]) => fleet.start(cmd, args);
  /** argv of the real recorder (`agent-host.js hook`) for agent-N, run as the agent. */
  const recorder = (n: number): string[] => [
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--init-groups",
    "env",
    `AGENT_HOST_STATE_DIR=${path.join(state, `agent-${n}`)}`,
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
        JSON.parse(fs.readFileSync(path.join(state, `agent-${n}`, "status.json"), "utf8")) as {
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
    await fleet.startServer();
    fleet.agentctl(["reconcile", String(AGENTS)]);
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

    const web = start(AGENTCTL, ["web"]);
    const token = await until("the token", () => {
      try {
        return must(AGENTCTL, ["web", "--url"], env).trim();
      } catch {
        return undefined;
      }
    });
    await until("the dashboard", () =>
      spawnSync("curl", ["-sf", "-o", "/dev/null", `http://127.0.0.1:${port}/`]).status === 0
        ? true
        : undefined,
    );
    const monitor = start(process.execPath, [bundle, "monitor"]);
    const bare = start(process.execPath, ["-e", "setInterval(() => {}, 1e9)"]);
    await new Promise<void>((r) => baseline.listen(0, "127.0.0.1", r));
    const basePort = (baseline.address() as net.AddressInfo).port;
    await sleep(3000);

    const [cpuWebAlone, cpuMonitor, cpuBare] = await idleCpu(
      [web.pid as number, monitor.pid as number, bare.pid as number],
      IDLE_SECONDS,
    );
    console.log(
      `idle CPU over ${IDLE_SECONDS} s, no page open: dashboard ${cpuWebAlone.toFixed(2)}%; baseline: bare node ${cpuBare.toFixed(2)}%, control-window monitor ${cpuMonitor.toFixed(2)}%`,
    );

    const context = await chromium.launchPersistentContext(
      fs.mkdtempSync(path.join(os.tmpdir(), "bench-web-chromium-")),
      {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 375, height: 812 },
      },
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
      `page ready with ${AGENTS} agents: ${stats(ready)}; baseline static page: ${stats(floor)}`,
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
      `hook to page (needs-answer shown): ${stats(toPage)}; baseline hook to status.json: ${stats(toFile)}`,
    );

    const [cpuWebPage, cpuBare2] = await idleCpu(
      [web.pid as number, bare.pid as number],
      IDLE_SECONDS,
    );
    console.log(
      `idle CPU over ${IDLE_SECONDS} s, one page open (live updates): dashboard ${cpuWebPage.toFixed(2)}%; baseline bare node ${cpuBare2.toFixed(2)}%`,
    );
    console.log(
      `RSS: dashboard ${rssMiB(web.pid as number).toFixed(1)} MiB (node ${process.versions.node} here; the VM runs Ubuntu 24.04's 18.19); baseline: bare node ${rssMiB(bare.pid as number).toFixed(1)} MiB, control-window monitor ${rssMiB(monitor.pid as number).toFixed(1)} MiB`,
    );
    await context.close();
  } finally {
    baseline.close();
    await fleet.close();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
