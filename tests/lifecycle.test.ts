// The stack over its whole life, against the engine's own rules (tests/engine/lifecycle.ts):
// create → agentCount 10→12 → deploy-key rotation (both README steps) → image change → spot on
// → data disk grown → machineType changed (stop, resize, start) → destroy → up. At every step:
// which resources the engine creates, updates, replaces, deletes or imports; that the VM accepts
// the configured deploy key; that the data disk is the same disk (same contents).
import { VM_ROLES } from "../components/agent-host";
import {
  changedPaths,
  dependentReplacements,
  LifecycleEngine,
  processIgnoreChanges,
  replaces,
  type Op,
  type StepLog,
} from "./engine/lifecycle";
import { BASE_CONFIG } from "./harness";

jest.setTimeout(120_000);

const VM = "agent-host-dev";
/** The data disk: its GCE name, and its Pulumi resource name. */
const DISK = "agent-host-dev-data";
const DISK_RESOURCE = "agent-host-data";
const SECRET_DEPLOY_KEY = "agent-host:deployPrivateKey";

/** The IAM members' resource names, as components/agent-host.ts derives them. */
const IAM_MEMBERS = VM_ROLES.map(
  (role) =>
    `agent-host-${role
      .replace(/^roles\//, "")
      .replace(/\./g, "-")
      .toLowerCase()}`,
);

/** Every custom resource of the default configuration, by name (generated deploy key). */
const ALL = [
  "deploy-key",
  "agent-host-sa",
  ...IAM_MEMBERS,
  "agent-host-ip",
  "agent-host-ssh",
  "agent-host-data",
  "agent-host-snapshots",
  "agent-host-data-snapshots",
  "agent-host-vm",
  "agent-host-hostkey",
  "agent-host-hostkey-check",
  "agent-host-hostkey-probe",
  "agent-host-reconcile",
];

const every = (names: string[], op: Op) => Object.fromEntries(names.map((n) => [n, op]));

function report(step: string, log: StepLog): void {
  const ops = Object.entries(log.ops)
    .map(([name, op]) => `${name}:${op}`)
    .sort()
    .join(" ");
  console.log(
    `lifecycle ${step}: ${ops || "(no changes)"}${log.error ? ` ERROR ${log.error}` : ""}`,
  );
}

describe("the whole life of a stack", () => {
  const engine = new LifecycleEngine();
  const config: Record<string, string> = { ...BASE_CONFIG, "agent-host:agentCount": "10" };
  const secretKeys: string[] = [];
  let deployKey = "";
  let diskContents = "";
  let failed = false;

  afterAll(() => engine.dispose());

  /** Runs one `up` and checks what every step must hold. */
  async function up(step: string): Promise<StepLog> {
    if (failed) throw new Error(`an earlier step failed; ${step} not run`);
    const log = await engine.up(config, secretKeys);
    report(step, log);
    if (log.error) failed = true;
    expect(log.error).toBeUndefined();
    return log;
  }

  function expectHealthy(): void {
    const vm = engine.cloud.instanceNamed(VM)!;
    expect(vm.status).toBe("RUNNING");
    // The configured deploy key opens the VM: the next `up` can reach it.
    expect(engine.cloud.accepts(VM, deployKey)).toBe(true);
    // The reconcile checked this VM's own host key (a mismatch fails it).
    const reconcile = engine.entryNamed("agent-host-reconcile")!;
    expect((reconcile.inputs.connection as { hostKey: string }).hostKey).toBe(vm.hostKey);
    expect(vm.reconciled?.agents).toBe(Number(config["agent-host:agentCount"]));
    const disk = engine.cloud.diskNamed(DISK)!;
    expect(disk.contents).toBe(diskContents);
    expect(disk.attachedTo).toBe(`projects/acme-agents/zones/europe-west1-b/instances/${VM}`);
  }

  const deployKeyOfState = (): string => {
    const entry = engine.entryNamed("deploy-key");
    return String(entry?.outputs.privateKeyOpenssh ?? "");
  };

  test("create: every resource is created, and the agents run", async () => {
    const log = await up("create");
    expect(log.ops).toEqual(every(ALL, "create"));
    deployKey = deployKeyOfState();
    diskContents = engine.cloud.diskNamed(DISK)!.contents;
    expectHealthy();
  });

  test("agentCount 10 → 12: only the reconcile command runs", async () => {
    config["agent-host:agentCount"] = "12";
    const log = await up("agentCount 10→12");
    expect(log.ops).toEqual({
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    expectHealthy();
  });

  const next = { privateKey: "", publicKey: "" };

  test("deploy-key rotation, step 1: the new key's .pub joins sshAuthorizedKeys", async () => {
    Object.assign(next, engine.keys.generate("next-deploy-key"));
    config["agent-host:sshAuthorizedKeys"] = JSON.stringify([next.publicKey]);
    const log = await up("rotation step 1");
    // The VM's user-data follows in place (setMetadata); the command writes the new keys.
    expect(log.ops).toEqual({
      "agent-host-vm": "update",
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    expectHealthy();
    expect(engine.cloud.accepts(VM, next.privateKey)).toBe(true);
  });

  test("deploy-key rotation, step 2: deployPrivateKey is the new key, its .pub leaves the list", async () => {
    const old = deployKey;
    config[SECRET_DEPLOY_KEY] = next.privateKey;
    secretKeys.push(SECRET_DEPLOY_KEY);
    config["agent-host:sshAuthorizedKeys"] = "[]";
    deployKey = next.privateKey;
    const log = await up("rotation step 2");
    expect(log.ops).toEqual({
      "deploy-key": "delete",
      "agent-host-vm": "update",
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    expectHealthy();
    expect(engine.cloud.accepts(VM, old)).toBe(false);
  });

  test("image change: the VM is replaced and boots the current user-data", async () => {
    const before = engine.cloud.instanceNamed(VM)!.instanceId;
    config["agent-host:image"] = "ubuntu-os-cloud/ubuntu-2504-amd64";
    const log = await up("image change");
    // The new VM's new host key is pinned in the same up (the pin follows the instance ID).
    expect(log.ops).toEqual({
      "agent-host-vm": "replace",
      "agent-host-hostkey": "replace",
      "agent-host-hostkey-check": "update",
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    const vm = engine.cloud.instanceNamed(VM)!;
    expect(vm.instanceId).not.toBe(before);
    // What cloud-init read on the new VM is what the program renders now.
    expect(vm.bootUserData).toBe(vm.metadataUserData);
    expectHealthy();
  });

  test("spot on: the VM is replaced again, same disk, same key", async () => {
    config["agent-host:spot"] = "true";
    const log = await up("spot on");
    expect(log.ops).toEqual({
      "agent-host-vm": "replace",
      "agent-host-hostkey": "replace",
      "agent-host-hostkey-check": "update",
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    expectHealthy();
  });

  test("data disk grown 200 → 300 GB: in place", async () => {
    config["agent-host:dataDiskSizeGb"] = "300";
    const log = await up("disk 200→300");
    expect(log.ops).toEqual({ "agent-host-data": "update" });
    expect(engine.cloud.diskNamed(DISK)!.sizeGb).toBe(300);
    expectHealthy();
  });

  test("machineType e2-standard-8 → e2-standard-16: the VM is stopped, resized and started, in place", async () => {
    const before = engine.cloud.instanceNamed(VM)!;
    const id = before.instanceId;
    const calls = before.calls.length;
    config["agent-host:machineType"] = "e2-standard-16";
    const log = await up("machineType 8→16");
    // host.conf sizes the agents by the machine, so the reconcile command runs after the restart.
    expect(log.ops).toEqual({
      "agent-host-vm": "update",
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    const vm = engine.cloud.instanceNamed(VM)!;
    // The user-data follows the machine (setMetadata on the running VM); then, with
    // allowStoppingForUpdate, the provider stops the VM for setMachineType and starts it again
    // (without it, GCP's provider refuses the change on a running VM).
    expect(vm.calls.slice(calls)).toEqual(["setMetadata", "stop", "setMachineType", "start"]);
    expect(vm.instanceId).toBe(id);
    expectHealthy();
  });

  test("destroy: everything goes but the data disk, which stays in the project", () => {
    const log = engine.destroy();
    report("destroy", log);
    // No generated deploy key any more: deployPrivateKey is configured.
    const names = ALL.filter((n) => n !== "deploy-key" && n !== DISK_RESOURCE);
    expect(log.ops).toEqual({ ...every(names, "delete"), [DISK_RESOURCE]: "retain" });
    expect(engine.state.size).toBe(0);
    expect(engine.cloud.instances.size).toBe(0);
    expect(engine.cloud.diskNamed(DISK)?.contents).toBe(diskContents);
  });

  test("up again: the kept disk is imported with its data, the rest created", async () => {
    const log = await up("up after destroy");
    const names = ALL.filter((n) => n !== "deploy-key" && n !== DISK_RESOURCE);
    expect(log.ops).toEqual({ ...every(names, "create"), [DISK_RESOURCE]: "import" });
    expectHealthy();
    expect(engine.cloud.diskNamed(DISK)!.sizeGb).toBe(300);
  });

  test("and the next up is a normal one: the import ID matches the state, nothing changes", async () => {
    const log = await up("up after import");
    expect(log.ops).toEqual({});
    expectHealthy();
  });

  test("a stopped VM: up fails at once, saying how to start it, and touches nothing", async () => {
    engine.cloud.instanceNamed(VM)!.status = "TERMINATED";
    config["agent-host:agentCount"] = "11";
    const log = await engine.up(config, secretKeys);
    report("stopped VM", log);
    expect(log.ops).toEqual({});
    expect(log.error).toContain(
      "Start it with: gcloud compute instances start agent-host-dev --zone europe-west1-b --project acme-agents",
    );
    engine.cloud.instanceNamed(VM)!.status = "RUNNING";
    const after = await up("started again");
    expect(after.ops).toEqual({
      "agent-host-hostkey-probe": "update",
      "agent-host-reconcile": "update",
    });
    expectHealthy();
  });
});

describe("a VM replaced before its replacement takes its dependents along (calculateDependentReplacements)", () => {
  test("work hours on, image changed: the host-key pin and the schedule's IAM grant on the VM are replaced with it", async () => {
    const engine = new LifecycleEngine();
    try {
      const config = {
        ...BASE_CONFIG,
        "agent-host:workHoursStart": "08:00",
        "agent-host:workHoursStop": "19:00",
      };
      expect((await engine.up(config)).error).toBeUndefined();
      const vm = engine.entryNamed("agent-host-vm")!;
      // What `pulumi up` deletes ahead of the VM: the resources whose replacing inputs come from
      // it (the grant's instanceName is ForceNew; the pin's inputs change by its triggers).
      expect(
        dependentReplacements([...engine.state.values()], vm, new Set()).map((e) => e.name),
      ).toEqual(["agent-host-schedule-agent", "agent-host-hostkey"]);
      const log = await engine.up({
        ...config,
        "agent-host:image": "ubuntu-os-cloud/ubuntu-2504-amd64",
      });
      report("image change with work hours", log);
      expect(log.error).toBeUndefined();
      // The grant names the VM by name only, and the name is the same: its own diff is empty. The
      // engine replaces it anyway (its instanceName is unknown while the VM is replaced), which is
      // what GCE needs: an instance's IAM policy goes with the deleted instance.
      expect(log.ops).toEqual({
        "agent-host-vm": "replace",
        "agent-host-schedule-agent": "replace",
        "agent-host-hostkey": "replace",
        "agent-host-hostkey-check": "update",
        "agent-host-hostkey-probe": "update",
        "agent-host-reconcile": "update",
      });
    } finally {
      engine.dispose();
    }
  });
});

describe("a disk kept by destroy and grown in config before the next up", () => {
  test("the modern engine (#19339, 3.174+) imports it, then grows it in the same up", async () => {
    const engine = new LifecycleEngine();
    try {
      const config = { ...BASE_CONFIG };
      expect((await engine.up(config)).error).toBeUndefined();
      const contents = engine.cloud.diskNamed(DISK)!.contents;
      engine.destroy();
      const log = await engine.up({ ...config, "agent-host:dataDiskSizeGb": "400" });
      report("import + grow", log);
      expect(log.error).toBeUndefined();
      expect(log.ops[DISK_RESOURCE]).toBe("import");
      expect(engine.cloud.diskNamed(DISK)).toMatchObject({ sizeGb: 400, contents });
    } finally {
      engine.dispose();
    }
  });

  test("an engine before 3.174 refuses that import: the limit the README states", async () => {
    const engine = new LifecycleEngine({ strictImport: true });
    try {
      const config = { ...BASE_CONFIG };
      expect((await engine.up(config)).error).toBeUndefined();
      engine.destroy();
      const same = await engine.up(config);
      expect(same.error).toBeUndefined();
      expect(same.ops[DISK_RESOURCE]).toBe("import");
      engine.destroy();
      const grown = await engine.up({ ...config, "agent-host:dataDiskSizeGb": "400" });
      expect(grown.error).toContain("inputs to import do not match the existing resource: [size]");
    } finally {
      engine.dispose();
    }
  });
});

describe("retainOnDelete is read from the state at destroy", () => {
  test("setting deleteDataDiskOnDestroy without an up keeps the disk; after an up, destroy deletes it", async () => {
    const engine = new LifecycleEngine();
    try {
      const config = { ...BASE_CONFIG };
      expect((await engine.up(config)).error).toBeUndefined();
      // `pulumi config set deleteDataDiskOnDestroy true && pulumi destroy`: the state still says
      // retain, so the disk stays.
      expect(engine.destroy().ops[DISK_RESOURCE]).toBe("retain");
      expect(engine.cloud.diskNamed(DISK)).toBeDefined();

      const deleting = { ...config, "agent-host:deleteDataDiskOnDestroy": "true" };
      const up = await engine.up(deleting);
      expect(up.error).toBeUndefined();
      expect(up.ops[DISK_RESOURCE]).toBe("import");
      expect(engine.destroy().ops[DISK_RESOURCE]).toBe("delete");
      expect(engine.cloud.diskNamed(DISK)).toBeUndefined();
    } finally {
      engine.dispose();
    }
  });
});

describe("the stand-in engine's rules on their own", () => {
  const INSTANCE = "gcp:compute/instance:Instance";
  const old = {
    name: "vm",
    metadata: { "user-data": "first boot's", "block-project-ssh-keys": "TRUE" },
    bootDisk: { initializeParams: { image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64" } },
  };

  test("ignoreChanges: the goal takes the old value, and a replacement is built from that goal", () => {
    const goal = {
      ...old,
      metadata: { ...old.metadata, "user-data": "current" },
      bootDisk: { initializeParams: { image: "ubuntu-os-cloud/ubuntu-2504-amd64" } },
    };
    const processed = processIgnoreChanges(goal, old, ['metadata["user-data"]']);
    expect(processed.metadata).toEqual(old.metadata);
    const paths = changedPaths(old, processed);
    expect(paths).toEqual([["bootDisk", "initializeParams", "image"]]);
    expect(replaces(INSTANCE, paths, old, processed)).toBe(true);
  });

  test("ForceNew: user-data, machine type and labels update in place; image, zone, spot replace", () => {
    const inPlace = [["metadata", "user-data"], ["machineType"], ["labels", "app"]];
    for (const path of inPlace) expect(replaces(INSTANCE, [path], old, old)).toBe(false);
    const replacing = [
      ["bootDisk", "initializeParams", "image"],
      ["zone"],
      ["scheduling", "provisioningModel"],
      ["scheduling", "preemptible"],
    ];
    for (const path of replacing) expect(replaces(INSTANCE, [path], old, old)).toBe(true);
    // A command's triggers replace it; any other input runs its update.
    expect(replaces("command:remote:Command", [["triggers", "0"]], {}, {})).toBe(true);
    expect(replaces("command:remote:Command", [["create"], ["stdin"]], {}, {})).toBe(false);
  });

  test("a disk grows in place and is replaced when it would shrink (IsDiskShrinkage)", () => {
    const DISK_TYPE = "gcp:compute/disk:Disk";
    expect(replaces(DISK_TYPE, [["size"]], { size: 200 }, { size: 300 })).toBe(false);
    expect(replaces(DISK_TYPE, [["size"]], { size: 300 }, { size: 200 })).toBe(true);
  });
});
