// scripts/fleet-view.ts, the pure part of `npm run agents`: the stack's hosts output read and
// checked, the known_hosts file from the pinned keys, each ssh argv (pinning, strict checking,
// bounded waits, IAP), `host-2/agent-3`, and the merged table (HOST column, who needs the lead
// first, an unreachable host as one row). The processes are proven by tests/fleet-cli.test.ts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { StatusRow } from "../host/attention/status";
import {
  fleetRows,
  fleetTable,
  hostsFromOutputs,
  knownHostsText,
  parseAgentsArgs,
  parseStatusJson,
  parseTarget,
  sshArgv,
  type FleetHost,
} from "../scripts/fleet-view";
import { BASE_CONFIG, runProgram } from "./harness";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHostKey12";

const host = (n: number, extra: Partial<FleetHost> = {}): FleetHost => ({
  name: `host-${n}`,
  instanceName: n === 1 ? "agent-host-dev" : `agent-host-dev-${n}`,
  address: `198.51.100.${n}`,
  user: "agent-admin",
  identityFile: "~/.ssh/agent-host-dev",
  zone: "europe-west1-b",
  project: "acme-agents",
  sshHostKey: `${KEY}${n}`.slice(0, KEY.length),
  ...extra,
});

const OPTIONS = { knownHostsFile: "/tmp/kh", connectTimeoutSeconds: 7, home: "/home/lead" };

function row(name: string, extra: Partial<StatusRow> = {}): StatusRow {
  return {
    name,
    agent_state: "idle",
    state_seconds: 5,
    state_since: 1000,
    needs_you: false,
    state: "running",
    exit_code: null,
    pid: 100,
    uptime_seconds: 60,
    cpu_percent: 0.5,
    memory_bytes: 1 << 20,
    workspace_bytes: 4096,
    branch: "main",
    unsaved: false,
    uncommitted_files: 0,
    unpushed_commits: 0,
    restarts: 0,
    signin: "api-key",
    auth: null,
    last_exit_reason: null,
    why: "",
    ...extra,
  };
}

describe("the stack's hosts output", () => {
  test("what the program exports is what the laptop reads (three hosts)", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:hostCount": "3" });
    const outputs = Object.fromEntries(Object.entries(run.outputs).map(([k, v]) => [k, v.value]));
    const hosts = hostsFromOutputs(JSON.parse(JSON.stringify(outputs)));
    expect(hosts.map((h) => [h.name, h.instanceName, h.user, h.identityFile])).toEqual([
      ["host-1", "agent-host-dev", "agent-admin", "~/.ssh/agent-host-dev"],
      ["host-2", "agent-host-dev-2", "agent-admin", "~/.ssh/agent-host-dev"],
      ["host-3", "agent-host-dev-3", "agent-admin", "~/.ssh/agent-host-dev"],
    ]);
  });

  test("connectVia iap: no address, and the laptop tunnels through IAP with the same pinned key", async () => {
    const run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:hostCount": "2",
      "agent-host:connectVia": "iap",
      "agent-host:sshSourceRanges": JSON.stringify(["35.235.240.0/20"]),
    });
    const outputs = Object.fromEntries(Object.entries(run.outputs).map(([k, v]) => [k, v.value]));
    const hosts = hostsFromOutputs(JSON.parse(JSON.stringify(outputs)));
    expect(hosts.map((h) => h.address)).toEqual([null, null]);
    expect(hosts.every((h) => h.sshHostKey)).toBe(true);
    const argv = sshArgv(hosts[1], OPTIONS, ["true"]);
    expect(argv).toContain(
      "ProxyCommand=gcloud compute start-iap-tunnel agent-host-dev-2 22 --listen-on-stdin --zone europe-west1-b --project acme-agents --verbosity=warning",
    );
  });

  test("refuses outputs without hosts, and entries that are not what the program writes", () => {
    expect(() => hostsFromOutputs({ publicIp: "198.51.100.1" })).toThrow(/no `hosts` list/);
    expect(() => hostsFromOutputs({ hosts: [{ ...host(1), user: "a b" }] })).toThrow(
      "hosts[0].user is not a single word",
    );
    expect(() => hostsFromOutputs({ hosts: [{ ...host(1), sshHostKey: "not a key" }] })).toThrow(
      "hosts[0].sshHostKey is not an OpenSSH public key",
    );
    expect(() => hostsFromOutputs({ hosts: [{ ...host(1), name: "-oProxyCommand=x" }] })).toThrow(
      "unexpected name",
    );
    expect(hostsFromOutputs({ hosts: [{ ...host(1), address: null }] })[0].address).toBeNull();
  });
});

describe("host-key pinning", () => {
  test("known_hosts files each pinned key under its instance name; a host without one has no line", () => {
    const hosts = [host(1), host(2, { sshHostKey: undefined }), host(3)];
    expect(knownHostsText(hosts)).toBe(
      `agent-host-dev ${hosts[0].sshHostKey}\nagent-host-dev-3 ${hosts[2].sshHostKey}\n`,
    );
  });

  test("every call checks that key, strictly, with the deploy's identity only, every wait bounded", () => {
    const argv = sshArgv(host(2), OPTIONS, ["sudo", "agentctl", "status", "--json"]);
    const options = argv.flatMap((a, i) => (argv[i - 1] === "-o" ? [a] : []));
    expect(options).toEqual([
      "IdentitiesOnly=yes",
      "BatchMode=yes",
      "StrictHostKeyChecking=yes",
      "UserKnownHostsFile=/tmp/kh",
      "GlobalKnownHostsFile=/dev/null",
      "HostKeyAlias=agent-host-dev-2",
      "UpdateHostKeys=no",
      "ConnectTimeout=7",
      "ServerAliveInterval=5",
      "ServerAliveCountMax=2",
      "LogLevel=ERROR",
    ]);
    expect(argv.slice(0, 3)).toEqual(["-T", "-i", "/home/lead/.ssh/agent-host-dev"]);
    expect(argv.slice(-7)).toEqual([
      "-l",
      "agent-admin",
      "198.51.100.2",
      "sudo",
      "agentctl",
      "status",
      "--json",
    ]);
  });

  test("no pinned key: no connection at all", () => {
    expect(() => sshArgv(host(2, { sshHostKey: undefined }), OPTIONS, ["true"])).toThrow(
      "host-2 has no pinned SSH host key",
    );
  });

  test("a host without an address (IAP only) is reached through an IAP tunnel, same pinning", () => {
    const argv = sshArgv(host(2, { address: null }), { ...OPTIONS, tty: true }, ["true"]);
    expect(argv[0]).toBe("-t");
    expect(argv).toContain(
      "ProxyCommand=gcloud compute start-iap-tunnel agent-host-dev-2 22 --listen-on-stdin --zone europe-west1-b --project acme-agents --verbosity=warning",
    );
    expect(argv).toContain("HostKeyAlias=agent-host-dev-2");
    expect(argv.slice(-3)).toEqual(["agent-admin", "agent-host-dev-2", "true"]);
  });
});

describe("arguments", () => {
  test("host-2/agent-3 and host-2/3 name agent 3 of host-2; anything else is refused with the hosts", () => {
    const hosts = [host(1), host(2)];
    expect(parseTarget("host-2/agent-3", hosts)).toEqual({ host: hosts[1], agent: 3 });
    expect(parseTarget("host-2/3", hosts).agent).toBe(3);
    expect(() => parseTarget("host-9/agent-1", hosts)).toThrow(
      "no host host-9 in this stack (hosts: host-1, host-2)",
    );
    for (const bad of [undefined, "agent-3", "host-2/agent-0", "host-2/agent-3;id", "host-2/"]) {
      expect(() => parseTarget(bad, hosts)).toThrow("Give it as HOST/agent-N");
    }
  });

  test("status, attach and send, with --outputs and a bounded --timeout", () => {
    expect(parseAgentsArgs(["status"])).toEqual({ timeoutSeconds: 20, run: { command: "status" } });
    expect(
      parseAgentsArgs(["--outputs", "o.json", "--timeout", "5", "attach", "host-2/3"]),
    ).toEqual({
      outputsFile: "o.json",
      timeoutSeconds: 5,
      run: { command: "attach", target: "host-2/3" },
    });
    expect(parseAgentsArgs(["send", "--force", "host-1/agent-2", "run", "the tests"]).run).toEqual({
      command: "send",
      target: "host-1/agent-2",
      force: true,
      words: ["run", "the tests"],
    });
    for (const bad of [
      [],
      ["stat"],
      ["--timeout", "0", "status"],
      ["--timeout", "x"],
      ["status", "x"],
    ]) {
      expect(() => parseAgentsArgs(bad)).toThrow("usage: npm run agents");
    }
  });
});

describe("one table for every host", () => {
  test("the agents that need the lead first (longest waiting first), then host by host, by number", () => {
    const rows = fleetRows([
      {
        host: host(1),
        rows: [
          row("agent-10"),
          row("agent-2", { needs_you: true, agent_state: "needs-permission", state_since: 300 }),
          row("agent-1"),
        ],
        problems: [],
      },
      { host: host(2), error: "unreachable: Connection refused" },
      {
        host: host(3),
        rows: [
          row("agent-1", { needs_you: true, agent_state: "needs-answer", state_since: 200 }),
          row("agent-2"),
        ],
        problems: [{ level: "error", kind: "disk", message: "/workspaces is 97% full" }],
      },
    ]);
    expect(rows.map((r) => `${r.host}/${r.row?.name ?? r.problem?.kind ?? "-"}`)).toEqual([
      "host-3/agent-1",
      "host-1/agent-2",
      "host-3/disk",
      "host-1/agent-1",
      "host-1/agent-10",
      "host-2/-",
      "host-3/agent-2",
    ]);
    const table = fleetTable(rows).split("\n");
    expect(table[0]).toMatch(/^HOST\s+NAME\s+STATE\s+SINCE\s+PID\b/);
    expect(table[1]).toMatch(/^host-3\s+agent-1\s+needs-answer\s/);
    expect(table[3]).toMatch(/^host-3\s+-\s+host-error\s.*disk: \/workspaces is 97% full$/);
    expect(table[6]).toMatch(/^host-2\s+-\s+unreachable\s.*unreachable: Connection refused$/);
  });

  test("agentctl status --json is parsed (the host's problems and agents, or an older host's list)", () => {
    const problem = { level: "warning", kind: "disk", message: "80% full" };
    const current = JSON.stringify({
      host: { healthy: false, problems: [problem] },
      agents: [row("agent-1")],
    });
    expect(parseStatusJson(current)).toEqual({ rows: [row("agent-1")], problems: [problem] });
    expect(parseStatusJson(JSON.stringify([row("agent-1")]))).toEqual({
      rows: [row("agent-1")],
      problems: [],
    });
    expect(() => parseStatusJson("{}")).toThrow("did not print a list of agents");
    expect(() => parseStatusJson("Permission denied")).toThrow(
      'agentctl status --json printed no JSON: "Permission denied"',
    );
  });
});

// `npm run agents` itself (scripts/agents-cli.js: scripts/agents.ts bundled, run by node), for what it
// decides before any ssh: an outputs file it cannot read or parse is bad input (64), named with the
// fix.
describe("npm run agents: an outputs file it cannot use", () => {
  const script = path.join(__dirname, "../scripts/agents-cli.js");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agents-outputs-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test.each([
    ["missing", undefined, "ENOENT"],
    ["not JSON", "{", "JSON"],
  ])("%s: exit 64, the file and the fix named", (_, text, why) => {
    const file = path.join(dir, "outputs.json");
    fs.rmSync(file, { force: true });
    if (text !== undefined) fs.writeFileSync(file, text);
    const r = spawnSync(process.execPath, [script, "--outputs", file, "status"], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect({ code: r.status, stdout: r.stdout }).toEqual({ code: 64, stdout: "" });
    expect(r.stderr).toContain(`agents: --outputs ${file}: `);
    expect(r.stderr).toContain(why);
    expect(r.stderr).toContain(
      `save the stack's outputs with 'pulumi stack output --json > ${file}'`,
    );
  });
});
