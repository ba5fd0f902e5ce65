// What the hooks cost an agent, measured on this machine (issue 15.5). Prints figures, asserts
// nothing. Run: npm run --silent bench:hooks [-- RUNS [CPU_PERCENT]]
//
// CPU_PERCENT (root, cgroup v1 or v2 cpu controller) runs every timed process in a cgroup capped
// at that share of one CPU, as the smallest machine types give it (issue 23.3): e2-micro's
// sustained share is 25% of a vCPU (2 vCPUs at 12.5%), e2-small's 50%, e2-medium's 100%. The
// hooks' timeout is 10 s (cloud-init/claude/managed-settings.json).
//
// - per event: the wall time of one `agent-host.js hook` run (what Claude Code waits for, the
//   managed hooks being synchronous), fed the payloads the real 2.1.331 sent
//   (tests/fixtures/hook-payloads-2.1.331.jsonl), beside a bare `node -e 0` (Node's own start);
// - per agent: the recorder keeps nothing running; its peak RSS while it runs;
// - the monitor (one process for all agents, the control window): RSS, PSS and CPU while it
//   watches 12 agents' state files, and one `agent-host.js status --json` (what agentctl status runs; no tmux server here).
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const BUNDLE = path.join(ROOT, "cloud-init/host/agent-host.js");
const PAYLOADS = fs
  .readFileSync(path.join(ROOT, "tests/fixtures/hook-payloads-2.1.331.jsonl"), "utf8")
  .trim()
  .split("\n");
const AGENTS = 12;

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function stats(values: number[]): string {
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => v[Math.min(v.length - 1, Math.floor(q * v.length))];
  return `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${v[v.length - 1].toFixed(1)} ms`;
}

/** The cgroup's task file when a CPU cap is asked for (set up in main). */
let cappedTasks: string | undefined;

/** argv that runs node with `args`, inside the capped cgroup when there is one. */
function nodeArgv(args: string[]): [string, string[]] {
  if (!cappedTasks) return [process.execPath, args];
  return [
    "sh",
    ["-c", 'echo $$ > "$1" && shift && exec "$@"', "sh", cappedTasks, process.execPath, ...args],
  ];
}

/** A cgroup capped at `percent` of one CPU (v2 cpu.max, else v1 cfs quota); its tasks file. */
function capCpu(percent: number): { tasks: string; remove: () => void } {
  const v2 = "/sys/fs/cgroup/cgroup.controllers";
  const base = fs.existsSync(v2) ? "/sys/fs/cgroup" : "/sys/fs/cgroup/cpu";
  const dir = path.join(base, `bench-hooks-${process.pid}`);
  fs.mkdirSync(dir);
  const quota = Math.round(percent * 1000);
  if (base === "/sys/fs/cgroup") fs.writeFileSync(path.join(dir, "cpu.max"), `${quota} 100000`);
  else {
    fs.writeFileSync(path.join(dir, "cpu.cfs_period_us"), "100000");
    fs.writeFileSync(path.join(dir, "cpu.cfs_quota_us"), String(quota));
  }
  const tasks = path.join(dir, base === "/sys/fs/cgroup" ? "cgroup.procs" : "tasks");
  return { tasks, remove: () => fs.rmdirSync(dir) };
}

function timeRun(args: string[], input: string, env: NodeJS.ProcessEnv): number {
  const t = process.hrtime.bigint();
  const [file, argv] = nodeArgv(args);
  const r = spawnSync(file, argv, { input, env, stdio: ["pipe", "ignore", "pipe"] });
  const took = ms(t);
  if (r.status !== 0) throw new Error(`${args.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return took;
}

/** Peak RSS (KiB) of one run, from GNU time when it is installed. */
function peakRssKib(args: string[], input: string, env: NodeJS.ProcessEnv): number | undefined {
  if (!fs.existsSync("/usr/bin/time")) return undefined;
  const r = spawnSync("/usr/bin/time", ["-f", "%M", process.execPath, ...args], {
    input,
    env,
    encoding: "utf8",
  });
  const kib = Number(r.stderr.trim().split("\n").pop());
  return Number.isFinite(kib) ? kib : undefined;
}

function smapsKib(pid: number, field: "Rss" | "Pss"): number {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
}

function cpuTicks(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 20);
  const percent = process.argv[3] === undefined ? undefined : Number(process.argv[3]);
  const cap = percent === undefined ? undefined : capCpu(percent);
  cappedTasks = cap?.tasks;
  if (percent !== undefined) console.log(`every timed process capped at ${percent}% of one CPU`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-hooks-"));
  try {
    const state = path.join(dir, "state");
    for (let n = 1; n <= AGENTS; n++)
      fs.mkdirSync(path.join(state, `agent-${n}`), { recursive: true });
    const env = { PATH: process.env.PATH, AGENT_HOST_STATE_DIR: path.join(state, "agent-1") };
    console.log(
      `hook latency, ${runs} runs each (${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}):`,
    );
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) bare.push(timeRun(["-e", "0"], "", env));
    console.log(`  node -e 0 (Node's start alone)      ${stats(bare)}`);
    const all: number[] = [];
    for (const payload of PAYLOADS) {
      const event = JSON.parse(payload) as { hook_event_name: string; tool_name?: string };
      const label = `${event.hook_event_name}${event.tool_name ? ` (${event.tool_name})` : ""}`;
      const times: number[] = [];
      for (let i = 0; i < runs; i++) times.push(timeRun([BUNDLE, "hook"], payload, env));
      all.push(...times);
      console.log(`  ${label.padEnd(36)} ${stats(times)}`);
    }
    console.log(`  every event                          ${stats(all)}`);
    const bareMedian = [...bare].sort((a, b) => a - b)[Math.floor(bare.length / 2)];
    const allMedian = [...all].sort((a, b) => a - b)[Math.floor(all.length / 2)];
    console.log(
      `  the recorder's own work over Node's start: ${(allMedian - bareMedian).toFixed(1)} ms (medians)`,
    );
    const rss = peakRssKib([BUNDLE, "hook"], PAYLOADS[3], env);
    console.log(
      `per agent: nothing stays running (one short process per hook event)${rss ? `; peak RSS of one run ${(rss / 1024).toFixed(1)} MiB` : ""}`,
    );

    // The monitor over 12 agents with recorded states (no tmux server: marks are skipped).
    for (let n = 1; n <= AGENTS; n++) {
      const env1 = { ...env, AGENT_HOST_STATE_DIR: path.join(state, `agent-${n}`) };
      for (const payload of PAYLOADS.slice(0, 4)) timeRun([BUNDLE, "hook"], payload, env1);
    }
    const conf = path.join(dir, "host.conf");
    fs.writeFileSync(
      conf,
      [
        `AGENT_COUNT=${AGENTS}`,
        `AGENT_USER=${os.userInfo().username}`,
        `STATE_DIR=${state}`,
        `RUN_DIR=${path.join(dir, "run")}`,
        `TMUX_SOCKET=${path.join(dir, "run", "tmux.sock")}`,
        `NOTIFY_WEBHOOK_FILE=${path.join(dir, "no-webhook")}`,
        "",
      ].join("\n"),
    );
    const confEnv = { PATH: process.env.PATH, AGENTCTL_CONFIG: conf };
    const statesTimes: number[] = [];
    for (let i = 0; i < Math.min(runs, 10); i++)
      statesTimes.push(timeRun([BUNDLE, "status", "--json"], "", confEnv));
    console.log(
      `agent-host.js status --json, ${AGENTS} agents, no tmux server: ${stats(statesTimes)}`,
    );
    const monitor = spawn(process.execPath, [BUNDLE, "monitor"], { env: confEnv, stdio: "ignore" });
    try {
      const pid = monitor.pid as number;
      await new Promise((r) => setTimeout(r, 3000)); // warm up: a few rounds of its 500 ms poll
      const ticks0 = cpuTicks(pid);
      const t0 = process.hrtime.bigint();
      await new Promise((r) => setTimeout(r, 10_000));
      const cpuMs = (cpuTicks(pid) - ticks0) * 10;
      const wallMs = ms(t0);
      const rssKib = smapsKib(pid, "Rss");
      const pssKib = smapsKib(pid, "Pss");
      console.log(
        `monitor (one process, ${AGENTS} agents): RSS ${(rssKib / 1024).toFixed(1)} MiB, PSS ${(pssKib / 1024).toFixed(1)} MiB ` +
          `(${(pssKib / 1024 / AGENTS).toFixed(2)} MiB per agent); CPU ${((cpuMs / wallMs) * 100).toFixed(2)}% of one core`,
      );
    } finally {
      monitor.kill("SIGTERM");
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    // The cgroup can be removed once its processes have ended (the monitor's SIGTERM above).
    await new Promise((r) => setTimeout(r, 500));
    cap?.remove();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
