// Several hosts from one stack (hostCount), against the engine's own rules (tests/engine/
// lifecycle.ts: state keyed by URN, parents, aliases, retainOnDelete read from the state, import):
// an existing one-host stack upgrades with nothing replaced; 1 → 2 → 3 creates only the new
// host's resources; 3 → 2 deletes host 3's VM and keeps its data disk; 2 → 3 adopts that disk
// again, with its data; a count change updates each host's reconcile, a per-host count only that
// host's; and no host's resources depend on another's, so the engine runs them side by side.
import { LifecycleEngine, type StateEntry, type Step, type StepLog } from "./engine/lifecycle";
import { urnName } from "./engine/urn";
import { BASE_CONFIG, runProgram } from "./harness";

jest.setTimeout(180_000);

const STACK = "urn:pulumi:dev::agent-host::";
const HOST = "agent-host:host:AgentHost";
const FLEET = "agent-host:fleet:AgentFleet";

/** The GCE names of host n, as config.ts's hostNamesFor gives them. */
const vmName = (n: number) => (n === 1 ? "agent-host-dev" : `agent-host-dev-${n}`);
const diskName = (n: number) => `${vmName(n)}-data`;
/** The Pulumi name prefix of host n's resources. */
const prefix = (n: number) => (n === 1 ? "agent-host" : `agent-host-${n}`);

/** Which host a URN belongs to: its component's or its own name's prefix; 0 for shared ones. */
function hostOf(urn: string): number {
  const name = urnName(urn);
  const match = /^agent-host(?:-(\d+))?(?:-|$)/.exec(name);
  if (!match) return 0;
  // agent-host-ip, agent-host-data…: host 1; agent-host-3-ip, agent-host-3: host 3.
  return match[1] ? Number(match[1]) : 1;
}

function report(step: string, log: StepLog): void {
  const ops = log.steps.map((s) => `${urnName(s.urn)}:${s.op}`).join(" ");
  console.log(`fleet ${step}: ${ops || "(no changes)"}${log.error ? ` ERROR ${log.error}` : ""}`);
}

const hostsTouched = (steps: Step[]) => [...new Set(steps.map((s) => hostOf(s.urn)))].sort();

/** The URNs a resource waits for: its dependencies and its parent, transitively. */
function closure(state: Map<string, StateEntry>, urn: string): Set<string> {
  const seen = new Set<string>();
  const visit = (u: string) => {
    const entry = state.get(u);
    if (!entry) return;
    for (const dep of [...entry.dependencies, ...(entry.parent ? [entry.parent] : [])]) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      visit(dep);
    }
  };
  visit(urn);
  return seen;
}

describe("a stack grows from one host to three and back", () => {
  const engine = new LifecycleEngine();
  const config: Record<string, string> = { ...BASE_CONFIG, "agent-host:agentCount": "10" };
  const contents = new Map<number, string>();
  let failed = false;

  afterAll(() => engine.dispose());

  async function up(step: string): Promise<StepLog> {
    if (failed) throw new Error(`an earlier step failed; ${step} not run`);
    const log = await engine.up(config);
    report(step, log);
    if (log.error) failed = true;
    expect(log.error).toBeUndefined();
    return log;
  }

  /** Host n runs, its data disk is attached, the same disk as before, and its agents reconciled. */
  function expectHost(n: number, agents: number): void {
    const vm = engine.cloud.instanceNamed(vmName(n));
    expect(vm?.status).toBe("RUNNING");
    expect(vm?.reconciled?.agents).toBe(agents);
    const disk = engine.cloud.diskNamed(diskName(n))!;
    expect(disk.attachedTo).toBe(vm!.id);
    if (contents.has(n)) expect(disk.contents).toBe(contents.get(n));
    else contents.set(n, disk.contents);
  }

  test("today's one-host stack (no hostCount set), then hostCount 1: nothing changes", async () => {
    const first = await up("one host, created");
    expect(hostsTouched(first.steps)).toEqual([0, 1]);
    // Host 1's URNs are today's (tests/urns.test.ts pins them all against the released state).
    expect(first.byUrn).toMatchObject({
      [`${STACK}${HOST}$gcp:compute/instance:Instance::agent-host-vm`]: "create",
      [`${STACK}${HOST}$gcp:compute/disk:Disk::agent-host-data`]: "create",
      [`${STACK}${FLEET}$command:remote:Command::agent-host-reconcile`]: "create",
    });
    expectHost(1, 10);
    const urns = [...engine.state.keys()].sort();
    config["agent-host:hostCount"] = "1";
    const same = await up("hostCount 1");
    expect(same.steps).toEqual([]);
    expect([...engine.state.keys()].sort()).toEqual(urns);
  });

  test("1 → 2: only host 2's resources are created; host 1 keeps its URNs and GCE names", async () => {
    const before = new Map(engine.state);
    config["agent-host:hostCount"] = "2";
    const log = await up("1→2");
    expect(hostsTouched(log.steps)).toEqual([2]);
    expect(new Set(log.steps.map((s) => s.op))).toEqual(new Set(["create"]));
    expect(log.byUrn).toMatchObject({
      [`${STACK}${HOST}::agent-host-2`]: "create",
      [`${STACK}${HOST}$gcp:compute/instance:Instance::agent-host-2-vm`]: "create",
      [`${STACK}${HOST}$gcp:compute/disk:Disk::agent-host-2-data`]: "create",
      [`${STACK}${FLEET}$command:remote:Command::agent-host-2-reconcile`]: "create",
    });
    for (const [urn, entry] of before) expect(engine.state.get(urn)?.id).toBe(entry.id);
    expectHost(1, 10);
    expectHost(2, 10);
  });

  test("2 → 3: only host 3's resources are created", async () => {
    config["agent-host:hostCount"] = "3";
    const log = await up("2→3");
    expect(hostsTouched(log.steps)).toEqual([3]);
    expect(new Set(log.steps.map((s) => s.op))).toEqual(new Set(["create"]));
    for (const n of [1, 2, 3]) expectHost(n, 10);
    expect(engine.cloud.instances.size).toBe(3);
  });

  test("agentCount 10 → 12: each host's reconcile runs, nothing else", async () => {
    config["agent-host:agentCount"] = "12";
    const log = await up("agentCount 10→12");
    expect(log.ops).toEqual({
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
      "agent-host-2-hostkey-probe": "update",
      "agent-host-2-reconcile": "update",
      "agent-host-3-hostkey-probe": "update",
      "agent-host-3-reconcile": "update",
    });
    for (const n of [1, 2, 3]) expectHost(n, 12);
  });

  test("no host's resources wait for another host's: the engine runs the hosts side by side", () => {
    // The step executor starts a step once its dependencies are done (pkg/resource/deploy/
    // step_executor.go, over the same dependency graph): independent closures run in parallel.
    for (const entry of engine.state.values()) {
      const own = hostOf(entry.urn);
      if (own === 0) continue;
      const others = [...closure(engine.state, entry.urn)].filter(
        (u) => ![0, own].includes(hostOf(u)),
      );
      expect({ urn: entry.urn, dependsOnOtherHosts: others }).toEqual({
        urn: entry.urn,
        dependsOnOtherHosts: [],
      });
    }
  });

  test("hostAgentCounts 12,4,12: only host 2's reconcile runs", async () => {
    config["agent-host:hostAgentCounts"] = "12,4,12";
    const log = await up("hostAgentCounts 12,4,12");
    expect(log.ops).toEqual({
      "agent-host-2-hostkey-probe": "update",
      "agent-host-2-reconcile": "update",
    });
    expectHost(1, 12);
    expectHost(2, 4);
    expectHost(3, 12);
  });

  test("3 → 2: host 3's VM and the rest go, its data disk stays in the project (retainOnDelete)", async () => {
    config["agent-host:hostCount"] = "2";
    config["agent-host:hostAgentCounts"] = "12,4";
    const log = await up("3→2");
    expect(hostsTouched(log.steps)).toEqual([3]);
    expect(log.ops["agent-host-3-vm"]).toBe("delete");
    expect(log.ops["agent-host-3-reconcile"]).toBe("delete");
    expect(log.ops["agent-host-3-data"]).toBe("retain");
    const ops = new Set(Object.values(log.ops));
    expect(ops).toEqual(new Set(["delete", "retain"]));
    expect(engine.cloud.instanceNamed(vmName(3))).toBeUndefined();
    const kept = engine.cloud.diskNamed(diskName(3))!;
    expect(kept.contents).toBe(contents.get(3));
    expect(kept.attachedTo).toBeUndefined();
    expectHost(1, 12);
    expectHost(2, 4);
  });

  test("2 → 3 again: host 3's kept disk is adopted (import) with its data, the rest of host 3 created", async () => {
    config["agent-host:hostCount"] = "3";
    config["agent-host:hostAgentCounts"] = "12,4,12";
    const log = await up("2→3 again");
    expect(hostsTouched(log.steps)).toEqual([3]);
    expect(log.ops["agent-host-3-data"]).toBe("import");
    const others = Object.entries(log.ops).filter(([name]) => name !== "agent-host-3-data");
    expect(new Set(others.map(([, op]) => op))).toEqual(new Set(["create"]));
    for (const n of [1, 2, 3]) expectHost(n, n === 2 ? 4 : 12);
  });

  test("and the next up is a normal one: nothing changes", async () => {
    const log = await up("settled");
    expect(log.steps).toEqual([]);
  });

  test("destroy: every host's data disk stays, with its data", () => {
    const log = engine.destroy();
    report("destroy", log);
    for (const n of [1, 2, 3]) {
      expect(log.ops[`${prefix(n)}-data`]).toBe("retain");
      expect(engine.cloud.diskNamed(diskName(n))?.contents).toBe(contents.get(n));
    }
    expect(engine.cloud.instances.size).toBe(0);
  });
});

describe("3 → 2 under deleteDataDiskOnDestroy: today's retention rule, host by host", () => {
  test("host 3's disk is deleted with its VM, as destroy would; hosts 1 and 2 keep theirs", async () => {
    const engine = new LifecycleEngine();
    try {
      const config = {
        ...BASE_CONFIG,
        "agent-host:hostCount": "3",
        "agent-host:deleteDataDiskOnDestroy": "true",
      };
      expect((await engine.up(config)).error).toBeUndefined();
      const log = await engine.up({ ...config, "agent-host:hostCount": "2" });
      report("3→2 deleting", log);
      expect(log.error).toBeUndefined();
      expect(log.ops["agent-host-3-data"]).toBe("delete");
      expect(engine.cloud.diskNamed(diskName(3))).toBeUndefined();
      expect(engine.cloud.diskNamed(diskName(2))).toBeDefined();
    } finally {
      engine.dispose();
    }
  });
});

describe("the hosts output", () => {
  test("one entry per host: name, address, ssh and attach commands; host 1 also under the one-host outputs", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:hostCount": "3" });
    const hosts = run.outputs.hosts.value as Record<string, unknown>[];
    expect(hosts.map((h) => [h.name, h.instanceName])).toEqual([
      ["host-1", "agent-host-dev"],
      ["host-2", "agent-host-dev-2"],
      ["host-3", "agent-host-dev-3"],
    ]);
    for (const host of hosts) {
      const ssh = `ssh -i ~/.ssh/agent-host-dev agent-admin@${host.address}`;
      expect(host).toMatchObject({
        sshCommand: ssh,
        attachCommand: `${ssh} -t sudo agentctl attach`,
        statusCommand: `${ssh} sudo agentctl status`,
        agentCount: 10,
      });
    }
    expect(run.outputs.sshCommand.value).toBe(hosts[0].sshCommand);
    expect(run.outputs.instanceName.value).toBe("agent-host-dev");
  });
});
