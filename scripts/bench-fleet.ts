// Issue 25 point 6: fleet status across 3 hosts against one host (goal ≤ 1.5×), from the laptop
// side. Prints figures against baselines measured in the same run; asserts nothing
// (tests/fleet-cli.test.ts proves the behaviour). Run as root, under the shared lock:
//   flock /tmp/agent-host-system.lock npm run --silent bench:fleet [-- RUNS]
//
// The hosts (tests/fixtures/fleet-hosts.ts): three real sshds on 127.0.0.2-4 port 22, each in
// front of a host tree set up by the stack's own reconcile command for that host (a hostCount 3
// program's remote.Commands, over ssh), 12 stand-in claudes each. Measured in each of RUNS
// rounds, one after another in this order, so that every figure of a round meets the machine in
// the same state:
// - baseline: one `ssh … true` to host-1 (the same argv the fleet command builds: pinned key,
//   deploy identity, bounds);
// - one host: scripts/agents.ts's fleetStatus for host-1 alone (ssh, sudo, `agentctl status
//   --json` of 12 agents, parsed), in this process;
// - three hosts: the same for the three, at once, as `npm run agents -- status` does;
// - both again as the lead runs them, `npm run agents -- --outputs F status` without npm's own
//   start (scripts/agents-cli.js: its esbuild and Node start are in both, so they bring the ratio
//   towards 1).
// All three hosts share this machine's two cores, where three VMs would each have their own: the
// three-host figure here carries three hosts' agentctl on one machine, more than a fleet pays.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { agents, LoopbackFleet, run } from "../tests/fixtures/fleet-hosts";
import { fleetStatus, sshOptions } from "./agents";
import { hostsFromOutputs, sshArgv, type HostStatus } from "./fleet-view";
import { poll } from "../tests/support";
import { median, ms, stats } from "./bench-support";

const RUNS = Math.max(1, Number(process.argv[2] ?? 10));
const AGENTS = 12;
const HOSTS = 3;
const TIMEOUT_SECONDS = 20;
/** USER_HZ, the unit of /proc/stat (`getconf CLK_TCK`: 100 on Linux). */
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
/** Its users fbench-aI-PID (admins) and fbench-gI-N (agents, uid 63300 + 100·I + N), removed after. */
const UID_BASE = 63300;

/** Rows with a claude pid, or a problem (the figure would be of a failure). */
function checked(results: HostStatus[], want: number): number {
  const errors = results.flatMap((r) => ("error" in r ? [`${r.host.name}: ${r.error}`] : []));
  if (errors.length > 0) throw new Error(`fleet status failed: ${errors.join("; ")}`);
  const rows = results.flatMap((r) => ("rows" in r ? r.rows : []));
  if (rows.length !== want) throw new Error(`fleet status gave ${rows.length} rows, not ${want}`);
  return rows.filter((row) => typeof row.pid === "number").length;
}

/** CPU time the whole machine has spent (user, nice, system, irq, softirq), in ms: /proc/stat. */
function machineCpuMs(): number {
  const fields = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const ticks = [1, 2, 3, 6, 7].reduce((sum, i) => sum + Number(fields[i]), 0);
  return (ticks * 1000) / CLOCK_TICKS;
}

/** Wall time of `f` and the machine's CPU time meanwhile (this process's share included). */
async function timed<T>(f: () => Promise<T>): Promise<[number, T, number]> {
  const cpu = machineCpuMs();
  const t = process.hrtime.bigint();
  const value = await f();
  return [ms(t), value, machineCpuMs() - cpu];
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates users and sshds");
  const fleet = new LoopbackFleet(
    Array.from({ length: HOSTS }, () => AGENTS),
    "scripts/bench-fleet.ts",
    "fbench",
    UID_BASE,
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-fleet-"));
  try {
    await fleet.start();
    const outputs = JSON.parse(fs.readFileSync(fleet.outputsFile, "utf8")) as unknown;
    const all = hostsFromOutputs(outputs);
    const one = all.slice(0, 1);
    const oneFile = fleet.writeOutputs(
      path.join(fleet.dir, "one.json"),
      (h) => h.hostKey,
      undefined,
      1,
    );
    const options = sshOptions(all, dir, TIMEOUT_SECONDS);
    await poll(
      `${HOSTS * AGENTS} agents with a claude`,
      async () =>
        checked(await fleetStatus(all, options, TIMEOUT_SECONDS), HOSTS * AGENTS) ===
        HOSTS * AGENTS,
      120_000,
      500,
    );

    const sshTrue: number[] = [];
    const threeTrue: number[] = [];
    const cpuOne: number[] = [];
    const cpuThree: number[] = [];
    const oneHost: number[] = [];
    const threeHosts: number[] = [];
    const oneCli: number[] = [];
    const threeCli: number[] = [];
    const pairs: number[] = [];
    const cliPairs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const [tTrue, r] = await timed(() => run("ssh", sshArgv(one[0], options, ["true"])));
      if (r.code !== 0) throw new Error(`ssh … true exited ${r.code}: ${r.stderr}`);
      sshTrue.push(tTrue);
      const [tTrue3, r3] = await timed(() =>
        Promise.all(all.map((h) => run("ssh", sshArgv(h, options, ["true"])))),
      );
      if (r3.some((x) => x.code !== 0)) throw new Error("ssh … true to a host failed");
      threeTrue.push(tTrue3);
      const [tOne, a, cOne] = await timed(() => fleetStatus(one, options, TIMEOUT_SECONDS));
      checked(a, AGENTS);
      const [tThree, b, cThree] = await timed(() => fleetStatus(all, options, TIMEOUT_SECONDS));
      checked(b, HOSTS * AGENTS);
      cpuOne.push(cOne);
      cpuThree.push(cThree);
      oneHost.push(tOne);
      threeHosts.push(tThree);
      pairs.push(tThree / tOne);
      const c1 = await agents(["--outputs", oneFile, "status"]);
      const c3 = await agents(["--outputs", fleet.outputsFile, "status"]);
      if (c1.code !== 0 || c3.code !== 0)
        throw new Error(
          `npm run agents status exited ${c1.code} / ${c3.code}: ${c1.stderr}${c3.stderr}`,
        );
      oneCli.push(c1.ms);
      threeCli.push(c3.ms);
      cliPairs.push(c3.ms / c1.ms);
    }
    const verdict = (x: number) => `goal ≤ 1.5×: ${x <= 1.5 ? "met" : "NOT met"}`;
    const ratios = (v: number[]) => v.map((x) => `${x.toFixed(2)}×`).join(" ");
    const cores = os.cpus().length;
    console.log(`baseline: one ssh … true to host-1: ${stats(sshTrue)}`);
    console.log(
      `baseline: ${HOSTS} ssh … true at once, one to each host: ${stats(threeTrue)}; ${(median(threeTrue) / median(sshTrue)).toFixed(2)}× one (what ${HOSTS} hosts sharing this machine's ${cores} cores cost before any status)`,
    );
    console.log(`fleet status, 1 host (${AGENTS} agents), in process: ${stats(oneHost)}`);
    console.log(
      `fleet status, ${HOSTS} hosts (${HOSTS * AGENTS} agents), in process: ${stats(threeHosts)}; ${(median(threeHosts) / median(oneHost)).toFixed(2)}× 1 host (medians)`,
    );
    console.log(
      `  each round's ${HOSTS} hosts against its 1 host: ${ratios(pairs)}; median ${median(pairs).toFixed(2)}× (${verdict(median(pairs))})`,
    );
    console.log(
      `  CPU the machine spent (every process: the hosts' sshd, sudo and agentctl, the ssh clients): 1 host median ${median(cpuOne).toFixed(0)} ms, ${HOSTS} hosts ${median(cpuThree).toFixed(0)} ms; on ${cores} cores ${HOSTS} hosts take at least ${(median(cpuThree) / cores).toFixed(0)} ms, where ${HOSTS} VMs would each have their own`,
    );
    console.log(
      `  1 host against ssh … true: ${(median(oneHost) / median(sshTrue)).toFixed(2)}× (agentctl status on the host, sudo, parsing)`,
    );
    console.log(`npm run agents -- status, 1 host: ${stats(oneCli)}`);
    console.log(
      `npm run agents -- status, ${HOSTS} hosts: ${stats(threeCli)}; each round against its 1 host: median ${median(cliPairs).toFixed(2)}× (${verdict(median(cliPairs))}; the command's start is in both)`,
    );
  } finally {
    await fleet.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
