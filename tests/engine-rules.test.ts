// The lifecycle stand-in's engine rules, each driven by a small program through the real SDK (its
// alias specs, parents, options) and checked against what pulumi/pulumi and GCE do. The rules are
// cited in tests/engine/lifecycle.ts and tests/engine/urn.ts; the stack itself is driven by
// tests/lifecycle.test.ts and its URNs are pinned by tests/urns.test.ts.
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import {
  dependentReplacements,
  LifecycleEngine,
  scheduleDeletes,
  type Program,
  type StateEntry,
} from "./engine/lifecycle";
import { AliasResolver, createUrn, generateUrn, newUrn } from "./engine/urn";

jest.setTimeout(60_000);

const PROJECT = "acme-agents";
const ZONE = "europe-west1-b";
const CONFIG = { "gcp:project": PROJECT, "gcp:zone": ZONE };
const INSTANCE = "gcp:compute/instance:Instance";
const DISK = "gcp:compute/disk:Disk";
const BOX = "test:index:Box";

class Box extends pulumi.ComponentResource {
  constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
    super(BOX, name, {}, opts);
  }
}

function vmArgs(
  name: string,
  extra: Partial<gcp.compute.InstanceArgs> = {},
): gcp.compute.InstanceArgs {
  return {
    project: PROJECT,
    zone: ZONE,
    name,
    machineType: "e2-standard-8",
    bootDisk: { initializeParams: { image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64" } },
    networkInterfaces: [{ network: "default" }],
    allowStoppingForUpdate: true,
    ...extra,
  };
}

const diskArgs = (name: string, size = 10): gcp.compute.DiskArgs => ({
  project: PROJECT,
  zone: ZONE,
  name,
  size,
  type: "pd-balanced",
});

/** A program from a function that builds resources. */
const program =
  (build: () => void): Program =>
  async () => {
    build();
    return {};
  };

async function withEngine(body: (engine: LifecycleEngine) => Promise<void>): Promise<void> {
  const engine = new LifecycleEngine();
  try {
    await body(engine);
  } finally {
    engine.dispose();
  }
}

const up = (engine: LifecycleEngine, build: () => void) => engine.up(CONFIG, [], program(build));

describe("URNs (urn.New, Deployment.generateURN, alias.go CreateURN)", () => {
  test("a child's URN carries its parent's whole type chain; the root stack type never", () => {
    const box = generateUrn("dev", "p", "", BOX, "a");
    expect(box).toBe("urn:pulumi:dev::p::test:index:Box::a");
    const inner = generateUrn("dev", "p", box, BOX, "a-inner");
    expect(inner).toBe("urn:pulumi:dev::p::test:index:Box$test:index:Box::a-inner");
    expect(generateUrn("dev", "p", inner, INSTANCE, "vm")).toBe(
      `urn:pulumi:dev::p::test:index:Box$test:index:Box$${INSTANCE}::vm`,
    );
    expect(newUrn("dev", "p", "pulumi:pulumi:Stack", INSTANCE, "vm")).toBe(
      `urn:pulumi:dev::p::${INSTANCE}::vm`,
    );
    expect(createUrn("vm", INSTANCE, box, "p", "dev")).toBe(
      `urn:pulumi:dev::p::test:index:Box$${INSTANCE}::vm`,
    );
  });

  test("the SDK, under the harness, gives a nested resource the engine's URN", async () => {
    await withEngine(async (engine) => {
      const log = await up(engine, () => {
        const outer = new Box("a");
        const inner = new Box("a-inner", { parent: outer });
        new gcp.compute.Disk("a-disk", diskArgs("a-disk"), { parent: inner });
      });
      expect(log.error).toBeUndefined();
      expect(log.steps.map((s) => s.urn)).toEqual([
        "urn:pulumi:dev::agent-host::test:index:Box::a",
        "urn:pulumi:dev::agent-host::test:index:Box$test:index:Box::a-inner",
        `urn:pulumi:dev::agent-host::test:index:Box$test:index:Box$${DISK}::a-disk`,
      ]);
    });
  });

  test("two resources with one URN: Duplicate resource URN", async () => {
    await withEngine(async (engine) => {
      const log = await up(engine, () => {
        new gcp.compute.Disk("d", diskArgs("d1"));
        new gcp.compute.Disk("d", diskArgs("d2"));
      });
      expect(log.error).toContain(
        `Duplicate resource URN 'urn:pulumi:dev::agent-host::${DISK}::d'`,
      );
    });
  });
});

describe("moves and renames (generateAliases, getOldResource)", () => {
  const v1 = () => {
    const box = new Box("app");
    new gcp.compute.Instance("app-vm", vmArgs("app-vm"), { parent: box });
  };

  test("a VM moved out of its component with no alias: a new URN, and GCE refuses a second VM of its name", async () => {
    await withEngine(async (engine) => {
      expect((await up(engine, v1)).error).toBeUndefined();
      const log = await up(engine, () => {
        new Box("app");
        new gcp.compute.Instance("app-vm", vmArgs("app-vm"));
      });
      expect(log.error).toContain("googleapi: Error 409");
      expect(log.error).toContain("instances/app-vm' already exists");
      // The old VM is still there and still in the state, under its old URN.
      expect(engine.state.has(`urn:pulumi:dev::agent-host::${BOX}$${INSTANCE}::app-vm`)).toBe(true);
    });
  });

  test("the same move with an alias to the old parent: the old state is found, nothing changes", async () => {
    await withEngine(async (engine) => {
      expect((await up(engine, v1)).error).toBeUndefined();
      const log = await up(engine, () => {
        const box = new Box("app");
        new gcp.compute.Instance("app-vm", vmArgs("app-vm"), { aliases: [{ parent: box }] });
      });
      expect(log.error).toBeUndefined();
      expect(log.steps).toEqual([]);
      expect([...engine.state.keys()]).toContain(`urn:pulumi:dev::agent-host::${INSTANCE}::app-vm`);
    });
  });

  test("a component renamed with an alias: its `{name}-…` children follow it (inheritedChildAlias)", async () => {
    await withEngine(async (engine) => {
      expect((await up(engine, v1)).error).toBeUndefined();
      const log = await up(engine, () => {
        const box = new Box("web", { aliases: [{ name: "app" }] });
        // The GCE name stays: only the Pulumi names moved.
        new gcp.compute.Instance("web-vm", vmArgs("app-vm"), { parent: box });
      });
      expect(log.error).toBeUndefined();
      expect(log.steps).toEqual([]);
      expect([...engine.state.keys()]).toEqual([
        `urn:pulumi:dev::agent-host::${BOX}::web`,
        `urn:pulumi:dev::agent-host::${BOX}$${INSTANCE}::web-vm`,
      ]);
    });
  });

  test("the same rename with no alias: a create of the new URNs, and GCE refuses the VM", async () => {
    await withEngine(async (engine) => {
      expect((await up(engine, v1)).error).toBeUndefined();
      const log = await up(engine, () => {
        const box = new Box("web");
        new gcp.compute.Instance("web-vm", vmArgs("app-vm"), { parent: box });
      });
      expect(log.steps[0]).toMatchObject({ name: "web", op: "create" });
      expect(log.error).toContain("instances/app-vm' already exists");
    });
  });

  test("two resources claiming one old URN through aliases: refused", async () => {
    await withEngine(async (engine) => {
      expect(
        (await up(engine, () => new gcp.compute.Disk("d", diskArgs("d")))).error,
      ).toBeUndefined();
      const log = await up(engine, () => {
        new gcp.compute.Disk("d1", diskArgs("d"), { aliases: [{ name: "d" }] });
        new gcp.compute.Disk("d2", diskArgs("d"), { aliases: [{ name: "d" }] });
      });
      expect(log.error).toContain(
        `Duplicate resource alias 'urn:pulumi:dev::agent-host::${DISK}::d'`,
      );
    });
  });

  test("alias resolution on its own: a parent's alias is multiplied out to its children", () => {
    const resolver = new AliasResolver("dev", "p");
    const newParent = generateUrn("dev", "p", "", BOX, "web");
    resolver.aliases.set(newParent, generateUrn("dev", "p", "", BOX, "app"));
    expect(resolver.generateAliases("web-vm", INSTANCE, newParent, [])).toEqual([
      `urn:pulumi:dev::p::${BOX}$${INSTANCE}::app-vm`,
    ]);
    // noParent: the alias is at the top of the stack.
    expect(resolver.generateAliases("x", DISK, newParent, [{ noParent: true }])[0]).toBe(
      `urn:pulumi:dev::p::${DISK}::x`,
    );
  });
});

describe("replacement options (continueStepsFromDiff, applyReplaceOnChanges)", () => {
  test("a named GCE object is deleted before its replacement; deleteBeforeReplace: false creates first and GCE refuses", async () => {
    await withEngine(async (engine) => {
      expect(
        (await up(engine, () => new gcp.compute.Disk("d", diskArgs("d", 20)))).error,
      ).toBeUndefined();
      // A smaller disk replaces it (IsDiskShrinkage).
      const dbr = await up(engine, () => new gcp.compute.Disk("d", diskArgs("d", 10)));
      expect(dbr.error).toBeUndefined();
      expect(dbr.ops).toEqual({ d: "replace" });
      const cbd = await up(
        engine,
        () => new gcp.compute.Disk("d", diskArgs("d", 5), { deleteBeforeReplace: false }),
      );
      expect(cbd.error).toContain("disks/d' already exists");
    });
  });

  test("replaceOnChanges turns an in-place change into a replacement", async () => {
    await withEngine(async (engine) => {
      const labelled = (value: string, replaceOnChanges?: string[]) => () =>
        new gcp.compute.Disk("d", { ...diskArgs("d"), labels: { v: value } }, { replaceOnChanges });
      expect((await up(engine, labelled("1"))).error).toBeUndefined();
      expect((await up(engine, labelled("2"))).ops).toEqual({ d: "update" });
      expect((await up(engine, labelled("3", ["labels"]))).ops).toEqual({ d: "replace" });
      expect((await up(engine, labelled("4", ["*"]))).ops).toEqual({ d: "replace" });
      expect((await up(engine, labelled("5", ["size"]))).ops).toEqual({ d: "update" });
    });
  });

  test("protect: no replacement and no delete of a protected resource", async () => {
    await withEngine(async (engine) => {
      const disk = (size: number) => () =>
        new gcp.compute.Disk("d", diskArgs("d", size), { protect: true });
      expect((await up(engine, disk(20))).error).toBeUndefined();
      const replace = await up(engine, disk(10));
      expect(replace.error).toContain("unable to replace resource");
      expect(replace.error).toContain("as it is currently marked for protection");
      const gone = await up(engine, () => undefined);
      expect(gone.error).toContain("cannot be deleted\nbecause it is protected");
      expect(engine.cloud.diskNamed("d")).toBeDefined();
      expect(engine.destroy().error).toContain("because it is protected");
      // Unprotected by an up first, then it goes.
      expect(
        (await up(engine, () => new gcp.compute.Disk("d", diskArgs("d", 20)))).error,
      ).toBeUndefined();
      expect(engine.destroy().ops).toEqual({ d: "delete" });
    });
  });
});

describe("dependents of a delete-before-replace (calculateDependentReplacements)", () => {
  // pulumi/pulumi pkg/engine/lifecycletest/delete_before_replace_test.go, TestDeleteBeforeReplace,
  // over generateComplexTestDependencyGraph's snapshot:
  //
  //             A
  //    _________|_________
  //    B        C        D
  //          ___|___  ___|___
  //          E  F  G  H  I  J
  //             |__|
  //             K  L
  //
  // For R in (A, C, D): its first dependent has R as its provider, its second takes R's output in
  // its replacing property "A", its third in its updating property "B"; K's "A" comes from F and
  // G, L's "B" from F and G. The engine replaces A, B, C, E, F and K when A is replaced.
  // Providers are not in the stand-in's state: the first dependents are deletedWith R instead,
  // which requiresReplacement treats the same way (replaced whatever the diff).
  const entry = (
    name: string,
    props: Record<string, string[]> = {},
    deletedWith = "",
  ): StateEntry => ({
    urn: `urn:pulumi:dev::p::pkgA:m:typA::${name}`,
    type: "pkgA:m:typA",
    name,
    parent: "",
    custom: true,
    id: name,
    inputs: Object.fromEntries(Object.keys(props).map((k) => [k, `${name}-${k}`])),
    outputs: {},
    retainOnDelete: false,
    importId: "",
    protect: false,
    deletedWith: deletedWith ? `urn:pulumi:dev::p::pkgA:m:typA::${deletedWith}` : "",
    dependencies: [...new Set(Object.values(props).flat())].map(
      (n) => `urn:pulumi:dev::p::pkgA:m:typA::${n}`,
    ),
    propertyDependencies: Object.fromEntries(
      Object.entries(props).map(([k, ns]) => [
        k,
        ns.map((n) => `urn:pulumi:dev::p::pkgA:m:typA::${n}`),
      ]),
    ),
    ignoreChanges: [],
    // The test's provider: a change of "A" replaces (DiffF: ReplaceKeys ["A"]), of "B" updates.
    replaceOnChanges: ["A"],
  });
  const snapshot = [
    entry("A", { A: [] }),
    entry("B", {}, "A"),
    entry("C", { A: ["A"] }),
    entry("D", { B: ["A"] }),
    entry("E", {}, "C"),
    entry("F", { A: ["C"] }),
    entry("G", { B: ["C"] }),
    entry("H", {}, "D"),
    entry("I", { A: ["D"] }),
    entry("J", { B: ["D"] }),
    entry("K", { A: ["F", "G"] }),
    entry("L", { B: ["F", "G"] }),
  ];
  const names = (found: StateEntry[]) => found.map((e) => e.name);

  test("A replaced: B, C, E, F and K with it, in dependency order; not D, G, H, I, J, L", () => {
    expect(names(dependentReplacements(snapshot, snapshot[0], new Set()))).toEqual([
      "B",
      "C",
      "E",
      "F",
      "K",
    ]);
  });

  test("an input the resource ignores, or a component, is not replaced; URNs already stepped are skipped", () => {
    const ignoring = snapshot.map((e) => (e.name === "C" ? { ...e, ignoreChanges: ["A"] } : e));
    expect(names(dependentReplacements(ignoring, ignoring[0], new Set()))).toEqual(["B"]);
    const component = snapshot.map((e) => (e.name === "F" ? { ...e, custom: false } : e));
    expect(names(dependentReplacements(component, component[0], new Set()))).toEqual([
      "B",
      "C",
      "E",
    ]);
    // impossibleDependents: C already registered in this deployment, so nothing below it.
    expect(names(dependentReplacements(snapshot, snapshot[0], new Set([snapshot[2].urn])))).toEqual(
      ["B"],
    );
  });

  test("through the SDK: a disk replaced before its replacement takes the attachment naming it along", async () => {
    await withEngine(async (engine) => {
      const build = (size: number) => () => {
        const disk = new gcp.compute.Disk("d", diskArgs("d", size));
        const policy = new gcp.compute.ResourcePolicy("p", {
          project: PROJECT,
          region: "europe-west1",
          name: "p",
          snapshotSchedulePolicy: {
            schedule: { dailySchedule: { daysInCycle: 1, startTime: "03:00" } },
          },
        });
        // `disk` (ForceNew) comes from the disk: replaced with it. `labels` (in place) from the
        // policy: not replaced when only the disk is.
        new gcp.compute.DiskResourcePolicyAttachment("a", {
          project: PROJECT,
          zone: ZONE,
          disk: disk.name,
          name: policy.name,
        });
        new gcp.compute.Disk("other", { ...diskArgs("other"), labels: { of: disk.name } });
      };
      expect((await up(engine, build(20))).error).toBeUndefined();
      const shrink = await up(engine, build(10));
      expect(shrink.error).toBeUndefined();
      expect(shrink.ops).toEqual({ d: "replace", a: "replace" });
      // The attachment is created again after the disk it names.
      const order = shrink.steps.map((x) => x.name);
      expect(order.indexOf("d")).toBeLessThan(order.indexOf("a"));
    });
  });
});

describe("deletes (ScheduleDeletes, DeleteStep.Apply)", () => {
  test("deletedWith: no provider delete when the resource it goes with is deleted too", async () => {
    await withEngine(async (engine) => {
      expect(
        (
          await up(engine, () => {
            const vm = new gcp.compute.Instance("vm", vmArgs("vm"));
            new gcp.compute.Disk("scratch", diskArgs("scratch"), { deletedWith: vm });
          })
        ).error,
      ).toBeUndefined();
      const log = engine.destroy();
      expect(log.ops).toEqual({ vm: "delete", scratch: "deleted-with" });
    });
  });

  test("dependents go first: the command, then the VM, then what it uses, then their parent", () => {
    const entry = (name: string, dependencies: string[] = [], parent = ""): StateEntry => ({
      urn: `urn:${name}`,
      type: "t",
      name,
      parent,
      custom: true,
      id: name,
      inputs: {},
      outputs: {},
      retainOnDelete: false,
      importId: "",
      protect: false,
      deletedWith: "",
      dependencies,
      propertyDependencies: {},
      ignoreChanges: [],
      replaceOnChanges: [],
    });
    const box = entry("box");
    const address = entry("address", [], "urn:box");
    const disk = entry("disk", [], "urn:box");
    const vm = entry("vm", ["urn:address", "urn:disk"], "urn:box");
    const command = entry("command", ["urn:vm"]);
    const order = [box, address, disk, vm, command];
    const names = (chains: StateEntry[][]) => chains.map((c) => c.map((e) => e.name).sort());
    expect(names(scheduleDeletes(order, order))).toEqual([
      ["command"],
      ["vm"],
      ["address", "disk"],
      ["box"],
    ]);
    // Only some condemned: the rest do not hold the order back.
    expect(names(scheduleDeletes(order, [address, command]))).toEqual([["address", "command"]]);
  });

  test("the fake GCE refuses to delete an address or a disk a VM still uses", async () => {
    await withEngine(async (engine) => {
      const build = () => {
        const ip = new gcp.compute.Address("ip", {
          project: PROJECT,
          region: "europe-west1",
          name: "ip",
        });
        const disk = new gcp.compute.Disk("data", diskArgs("data"));
        new gcp.compute.Instance(
          "vm",
          vmArgs("vm", {
            attachedDisks: [{ source: disk.selfLink }],
            networkInterfaces: [{ network: "default", accessConfigs: [{ natIp: ip.address }] }],
          }),
        );
      };
      expect((await up(engine, build)).error).toBeUndefined();
      expect(engine.destroy().ops).toEqual({ vm: "delete", ip: "delete", data: "delete" });
      expect((await up(engine, build)).error).toBeUndefined();
      // Dropping the VM's dependencies' order: deleting the address while the VM stands fails.
      const ip = engine.entryNamed("ip")!;
      expect(() =>
        (engine as unknown as { deleteFromCloud(e: StateEntry): void }).deleteFromCloud(ip),
      ).toThrow(/address resource .* is already being used by .*instances\/vm/);
    });
  });
});

describe("imports (isImport, ImportReplacementStep)", () => {
  test("an import over a resource already in the state under another ID: the new one is read, the old one deleted", async () => {
    await withEngine(async (engine) => {
      const v1 = await up(engine, () => {
        // A disk the stack lets go of (kept in GCE), and the disk "d" manages.
        new gcp.compute.Disk("kept", diskArgs("d2"), { retainOnDelete: true });
        new gcp.compute.Disk("d", diskArgs("d1"));
      });
      expect(v1.error).toBeUndefined();
      const kept = engine.cloud.diskNamed("d2")!;
      const log = await up(engine, () => {
        new gcp.compute.Disk("d", diskArgs("d2"), { import: kept.id });
      });
      expect(log.error).toBeUndefined();
      expect(log.ops).toEqual({ d: "import-replace", kept: "retain" });
      expect(engine.entryNamed("d")!.id).toBe(kept.id);
      // The object d managed before is deleted with the other deletes; the adopted one, with its
      // data, stays.
      expect(engine.cloud.diskNamed("d1")).toBeUndefined();
      expect(engine.cloud.diskNamed("d2")!.contents).toBe(kept.contents);
    });
  });
});

describe("GCE names (the fake cloud)", () => {
  test("a second VM or disk of one name in one project and zone: already exists; another zone: fine", async () => {
    await withEngine(async (engine) => {
      const twice = await up(engine, () => {
        new gcp.compute.Instance("a", vmArgs("same"));
        new gcp.compute.Instance("b", vmArgs("same"));
      });
      expect(twice.error).toContain(
        `projects/${PROJECT}/zones/${ZONE}/instances/same' already exists`,
      );
      engine.destroy();
      const zones = await up(engine, () => {
        new gcp.compute.Disk("a", diskArgs("same"));
        new gcp.compute.Disk("b", { ...diskArgs("same"), zone: "europe-west1-c" });
      });
      expect(zones.error).toBeUndefined();
    });
  });
});

describe("machineType (resourceComputeInstanceUpdate)", () => {
  test("with allowStoppingForUpdate: stop, set the machine type, start; the VM is updated in place", async () => {
    await withEngine(async (engine) => {
      expect(
        (await up(engine, () => new gcp.compute.Instance("vm", vmArgs("vm")))).error,
      ).toBeUndefined();
      const log = await up(
        engine,
        () => new gcp.compute.Instance("vm", vmArgs("vm", { machineType: "e2-standard-16" })),
      );
      expect(log.ops).toEqual({ vm: "update" });
      expect(engine.cloud.instanceNamed("vm")).toMatchObject({
        status: "RUNNING",
        calls: ["stop", "setMachineType", "start"],
      });
    });
  });

  test("without it: the provider refuses to stop a running VM", async () => {
    await withEngine(async (engine) => {
      const vm = (machineType: string) => () =>
        new gcp.compute.Instance(
          "vm",
          vmArgs("vm", { machineType, allowStoppingForUpdate: false }),
        );
      expect((await up(engine, vm("e2-standard-8"))).error).toBeUndefined();
      const log = await up(engine, vm("e2-standard-16"));
      expect(log.error).toContain(
        "on a started instance requires stopping it. To acknowledge this, please set allow_stopping_for_update = true",
      );
      expect(engine.cloud.instanceNamed("vm")!.calls).toEqual([]);
    });
  });
});
