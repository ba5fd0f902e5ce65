// `npm run agents -- status | attach host-2/agent-3 | send host-2/agent-3 "…"`: every host of the
// stack from the laptop (scripts/agents-cli.js bundles this file and runs it). Reads `pulumi stack
// output --json` (or --outputs FILE), reaches each host over SSH with the host key the deploy
// pinned (scripts/fleet-view.ts builds the known_hosts file and the argv), every call bounded by
// --timeout, all hosts at once for status. The decisions are in scripts/fleet-view.ts
// (tests/fleet-view.test.ts); this file runs processes.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  FleetError,
  fleetRows,
  fleetTable,
  hostsFromOutputs,
  knownHostsText,
  lastLine,
  parseAgentsArgs,
  parseStatusJson,
  parseTarget,
  sshArgv,
  type FleetHost,
  type HostStatus,
  type SshOptions,
} from "./fleet-view";

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** ssh with this argv, stdin given, killed after `timeoutSeconds`. */
function runSsh(argv: string[], stdin: string, timeoutSeconds: number): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn("ssh", argv, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${error.message}\n`, timedOut });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

function readOutputs(file: string | undefined): unknown {
  if (file !== undefined) {
    try {
      return JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (error) {
      throw new FleetError(
        `--outputs ${file}: ${(error as Error).message}; save the stack's outputs with 'pulumi stack output --json > ${file}'`,
      );
    }
  }
  const r = spawnSync("pulumi", ["stack", "output", "--json"], {
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new FleetError(
      `pulumi stack output --json failed: ${lastLine(`${r.stderr ?? ""}${r.error?.message ?? ""}`)}`,
    );
  }
  return JSON.parse(r.stdout);
}

/** One host's `agentctl status --json` over ssh, or why it could not be had. */
async function hostStatus(
  host: FleetHost,
  options: SshOptions,
  timeout: number,
): Promise<HostStatus> {
  try {
    const argv = sshArgv(host, options, ["sudo", "agentctl", "status", "--json"]);
    const r = await runSsh(argv, "", timeout);
    if (r.timedOut) return { host, error: `unreachable: no answer within ${timeout} s` };
    if (r.code !== 0) {
      return { host, error: `unreachable: ${lastLine(r.stderr) || `ssh exited ${r.code}`}` };
    }
    return { host, ...parseStatusJson(r.stdout) };
  } catch (error) {
    return { host, error: (error as Error).message };
  }
}

/** Every host's status at once (each bounded by `timeout` seconds), in the hosts' order. */
export function fleetStatus(
  hosts: readonly FleetHost[],
  options: SshOptions,
  timeout: number,
): Promise<HostStatus[]> {
  return Promise.all(hosts.map((h) => hostStatus(h, options, timeout)));
}

/** The known_hosts file of `hosts` in `dir`, and ssh's options for a call bounded by `timeout`. */
export function sshOptions(hosts: readonly FleetHost[], dir: string, timeout: number): SshOptions {
  const knownHostsFile = path.join(dir, "known_hosts");
  fs.writeFileSync(knownHostsFile, knownHostsText(hosts), { mode: 0o600 });
  return {
    knownHostsFile,
    // The handshake's share of the call's bound.
    connectTimeoutSeconds: Math.max(1, Math.min(10, Math.floor(timeout / 2))),
    home: os.homedir(),
  };
}

async function main(argv: string[]): Promise<number> {
  const args = parseAgentsArgs(argv);
  const hosts = hostsFromOutputs(readOutputs(args.outputsFile));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-host-agents-"));
  try {
    const options = sshOptions(hosts, dir, args.timeoutSeconds);
    const run = args.run;
    if (run.command === "status") {
      const results = await fleetStatus(hosts, options, args.timeoutSeconds);
      process.stdout.write(fleetTable(fleetRows(results)));
      return results.some((r) => "error" in r) ? 2 : 0;
    }
    const { host, agent } = parseTarget(run.target, hosts);
    if (run.command === "attach") {
      // Interactive: no overall bound, but the connect is bounded and ServerAlive ends a dead one.
      const r = spawnSync(
        "ssh",
        sshArgv(host, { ...options, tty: true }, ["sudo", "agentctl", "attach", String(agent)]),
        { stdio: "inherit" },
      );
      return r.status ?? 1;
    }
    // send: the text travels on stdin, never in a command line on either side.
    const text = run.words.length > 0 ? run.words.join(" ") : fs.readFileSync(0, "utf8");
    const remote = ["sudo", "agentctl", "send", ...(run.force ? ["--force"] : []), String(agent)];
    const r = await runSsh(sshArgv(host, options, remote), text, args.timeoutSeconds);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    if (r.timedOut) {
      process.stderr.write(`agents: ${host.name}: no answer within ${args.timeoutSeconds} s\n`);
      return 2;
    }
    return r.code ?? 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the command and exits with its code (64: bad input); what scripts/agents-cli.js calls. */
export function cli(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`agents: ${error.message}\n`);
      process.exit(error instanceof FleetError ? 64 : 1);
    },
  );
}

// Run directly (ts-node scripts/agents.ts …) as well; the benchmark (scripts/bench-fleet.ts) loads
// it for fleetStatus and runs no command.
if (require.main === module) cli(process.argv.slice(2));
