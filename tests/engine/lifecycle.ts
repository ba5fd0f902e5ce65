// A stateful stand-in for the Pulumi engine and for GCP, over the SDK's mocks: the program runs
// for real (index.ts under tests/harness.ts), and every registration goes through the engine's
// step rules here, against a state carried from one `up` to the next and a small fake cloud.
//
// The SDK's mocks apply none of these rules; each one below is ported from its source:
//
// - ignoreChanges (pulumi/pulumi pkg/resource/deploy/step_generator.go, processIgnoreChanges,
//   called from continueStepsFromImport before the diff): the goal takes the OLD value of every
//   ignored path; a replacement is created from that goal, so it gets the old value too.
// - Update or replace: the provider's diff. For GCP, a changed ForceNew field replaces
//   (terraform-provider-google schemas, listed in FORCE_NEW with their files); for pulumi-command,
//   `triggers` is replaceOnChanges (provider/pkg/provider/common/inputs.go) and any other change
//   runs Update (provider/pkg/provider/remote/commandController.go, Command.Update).
// - Delete before replace: pulumi-terraform-bridge pkg/tfbridge/provider.go Diff sets
//   DeleteBeforeReplace when nameRequiresDeleteBeforeReplace (pkg/tfbridge/schema.go): the name
//   was given by the program, not auto-named. Every GCE name here is given.
// - retainOnDelete (step.go, DeleteStep.Apply: `else if s.old.RetainOnDelete` → no delete):
//   read from the STATE at delete time; a retained resource leaves the state, stays in the cloud.
// - import (step_generator.go, isImport): an import happens when the goal has an ID and the
//   resource is not in the state, or is there under another ID; otherwise the step is a normal
//   one. The import step reads the object (missing: the deployment fails), then the normal diff
//   runs against what was read (pulumi/pulumi #19339, v3.174.0). Before 3.174 the import step
//   itself failed on any difference: "inputs to import do not match the existing resource"
//   (step.go ImportStep.Apply, removed by #19339): `strictImport` applies that older rule. A
//   replacement of a resource whose goal still has an ID fails: "previously-imported resources
//   that still specify an ID may not be replaced" (step_generator.go).
//
// The fake cloud: disks, instances, addresses and the other named objects by name ("already
// exists" on a duplicate create, GCE's 409), a disk's contents as an opaque id, a READ_WRITE disk
// attached to one instance at a time (GCE's resourceInUseByAnotherResource), and the SSH keys a
// VM accepts: those of the user-data it BOOTED with (cloud-init runs once per instance, so an
// in-place metadata update changes nothing on the VM), replaced by what the last successful
// reconcile command wrote (host/apply rewrites agent-admin's authorized_keys). The reconcile
// command succeeds only on a RUNNING VM that accepts the configured deploy key.
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { runProgram, unwrap, type MockEngine, type RecordedResource } from "../harness";

type Inputs = Record<string, unknown>;

/** What the engine did to one resource in one operation. */
export type Op = "create" | "update" | "replace" | "delete" | "retain" | "import";

/**
 * Input paths that replace the resource when they change, for the properties this stack sets.
 * A path covers everything below it.
 */
export const FORCE_NEW: Record<string, string[]> = {
  // google/services/compute/resource_compute_instance.go: name, zone, project, boot_disk
  // (initialize_params.image, .type), scheduling.preemptible, scheduling.provisioning_model.
  // metadata, machine_type, labels, service_account, shielded_instance_config, attached_disk,
  // description and scheduling's other fields update in place.
  "gcp:compute/instance:Instance": [
    "name",
    "zone",
    "project",
    "bootDisk.initializeParams.image",
    "bootDisk.initializeParams.type",
    "scheduling.preemptible",
    "scheduling.provisioningModel",
  ],
  // resource_compute_disk.go: name, zone, project, type; size only when it shrinks
  // (CustomizeDiff ForceNewIfChange("size", IsDiskShrinkage)), see diskShrinks below.
  "gcp:compute/disk:Disk": ["name", "zone", "project", "type"],
  // resource_compute_address.go
  "gcp:compute/address:Address": [
    "name",
    "region",
    "project",
    "addressType",
    "address",
    "networkTier",
    "description",
  ],
  // resource_compute_firewall.go
  "gcp:compute/firewall:Firewall": ["name", "project", "direction"],
  // google/services/resourcemanager/resource_google_service_account.go
  "gcp:serviceaccount/account:Account": ["accountId", "project"],
  // google/tpgiamresource/resource_iam_member.go (role, member), iam_project.go (project)
  "gcp:projects/iAMMember:IAMMember": ["project", "role", "member"],
  // resource_compute_resource_policy.go (snapshot_schedule_policy updates in place)
  "gcp:compute/resourcePolicy:ResourcePolicy": ["project", "region"],
  // resource_compute_disk_resource_policy_attachment.go
  "gcp:compute/diskResourcePolicyAttachment:DiskResourcePolicyAttachment": [
    "disk",
    "name",
    "project",
    "zone",
  ],
  // pulumi-command provider/pkg/provider/common/inputs.go: Triggers is replaceOnChanges.
  "command:remote:Command": ["triggers"],
  // terraform-provider-tls resource_private_key.go: every argument RequiresReplace.
  "tls:index/privateKey:PrivateKey": ["algorithm", "ecdsaCurve", "rsaBits"],
};

/** Bridged resources whose name the program gives: delete before replace (see above). */
const NAME_FIELD: Record<string, string> = {
  "gcp:compute/instance:Instance": "name",
  "gcp:compute/disk:Disk": "name",
  "gcp:compute/address:Address": "name",
  "gcp:compute/firewall:Firewall": "name",
  "gcp:serviceaccount/account:Account": "accountId",
  "gcp:compute/resourcePolicy:ResourcePolicy": "name",
};

interface StateEntry {
  type: string;
  name: string;
  id: string;
  inputs: Inputs;
  outputs: Inputs;
  retainOnDelete: boolean;
  importId: string;
}

export interface CloudDisk {
  id: string;
  name: string;
  zone: string;
  project: string;
  sizeGb: number;
  type: string;
  labels: Inputs;
  /** Stands for the bytes on the disk: the same id is the same data. */
  contents: string;
  attachedTo?: string;
}

export interface CloudInstance {
  name: string;
  instanceId: string;
  status: string;
  inputs: Inputs;
  /** The user-data the VM booted with (cloud-init read it once, at creation). */
  bootUserData: string;
  /** The user-data in its metadata now (an in-place update changes only this). */
  metadataUserData: string;
  /** Keys agent-admin accepts: the booted user-data's, then the last reconcile's. */
  acceptedKeys: string[];
  natIp: string;
  diskName?: string;
  /** What the last successful reconcile command installed. */
  reconciled?: { agents: number; bundleSha256: string };
}

/** Key pairs from ssh-keygen: a real public half for every private key the program sees. */
export class Keys {
  private readonly dir = mkdtempSync(path.join(tmpdir(), "lifecycle-keys-"));
  private readonly publicOf = new Map<string, string>();
  private n = 0;

  generate(comment: string): { privateKey: string; publicKey: string } {
    const file = path.join(this.dir, `key-${++this.n}`);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
    const privateKey = readFileSync(file, "utf8");
    const publicKey = readFileSync(`${file}.pub`, "utf8").trim();
    this.publicOf.set(privateKey.trim(), publicKey);
    return { privateKey, publicKey };
  }

  /** `ssh-keygen -y`: the public half, as sshd compares it (type and base64, no comment). */
  publicKey(privateKey: string): string {
    const known = this.publicOf.get(privateKey.trim());
    if (known) return known;
    const file = path.join(this.dir, `given-${++this.n}`);
    writeFileSync(file, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`, {
      mode: 0o600,
    });
    const publicKey = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim();
    this.publicOf.set(privateKey.trim(), publicKey);
    return publicKey;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const keyBody = (key: string) => key.trim().split(/\s+/).slice(0, 2).join(" ");

export class FakeCloud {
  readonly disks = new Map<string, CloudDisk>();
  readonly instances = new Map<string, CloudInstance>();
  readonly addresses = new Map<string, string>();
  /** Other named objects, by type then name. */
  readonly objects = new Map<string, Set<string>>();
  private serial = 0;

  constructor(readonly keys: Keys) {}

  next(): number {
    return ++this.serial;
  }

  alreadyExists(kind: string, project: string, where: string, name: string): Error {
    return new Error(
      `googleapi: Error 409: The resource 'projects/${project}/${where}/${kind}/${name}' already exists, alreadyExists`,
    );
  }

  /** Does the VM let `privateKey` in as agent-admin? */
  accepts(instanceName: string, privateKey: string): boolean {
    const vm = this.instances.get(instanceName);
    if (!vm) return false;
    const wanted = keyBody(this.keys.publicKey(privateKey));
    return vm.acceptedKeys.some((key) => keyBody(key) === wanted);
  }
}

function getPath(value: unknown, parts: string[]): unknown {
  let current = value;
  for (const part of parts) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** 'metadata["user-data"]' or 'a.b' → ["metadata", "user-data"] / ["a", "b"]. */
export function parsePath(text: string): string[] {
  return [...text.matchAll(/([^.[\]"]+)|\["([^"]+)"\]/g)].map((m) => m[2] ?? m[1]);
}

/** processIgnoreChanges: the goal takes the old value at every ignored path. */
export function processIgnoreChanges(goal: Inputs, old: Inputs, ignoreChanges: string[]): Inputs {
  const result = structuredClone(goal);
  for (const ignored of ignoreChanges) {
    const parts = parsePath(ignored);
    const oldValue = getPath(old, parts);
    let target = result as Record<string, unknown>;
    for (const part of parts.slice(0, -1)) {
      if (target[part] === null || typeof target[part] !== "object") target[part] = {};
      target = target[part] as Record<string, unknown>;
    }
    target[parts[parts.length - 1]] = structuredClone(oldValue);
  }
  return result;
}

/** Leaf paths where two input trees differ. */
export function changedPaths(a: unknown, b: unknown, prefix: string[] = []): string[][] {
  const isObject = (v: unknown) => v !== null && typeof v === "object";
  if (isObject(a) && isObject(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    return [...keys].flatMap((k) =>
      changedPaths(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        Array.isArray(a) ? prefix : [...prefix, k],
      ),
    );
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

/** Does the provider replace the resource for these changed paths? */
export function replaces(type: string, paths: string[][], old: Inputs, goal: Inputs): boolean {
  const rules = (FORCE_NEW[type] ?? []).map(parsePath);
  const hit = paths.some((p) => rules.some((rule) => rule.every((part, i) => p[i] === part)));
  // IsDiskShrinkage: a smaller size recreates the disk.
  const diskShrinks =
    type === "gcp:compute/disk:Disk" && Number(goal.size) < Number(old.size ?? goal.size);
  return hit || diskShrinks;
}

export interface StepLog {
  /** resource name → what happened to it (unchanged resources are absent). */
  ops: Record<string, Op>;
  error?: string;
}

export interface LifecycleOptions {
  /** The engine before pulumi/pulumi #19339 (v3.174.0): an import must match exactly. */
  strictImport?: boolean;
}

/** Runs `pulumi up` and `pulumi destroy` against one state and one fake cloud. */
export class LifecycleEngine implements MockEngine {
  state = new Map<string, StateEntry>();
  readonly cloud: FakeCloud;
  readonly keys = new Keys();
  private ops: Record<string, Op> = {};
  private failure?: string;
  private pendingDeletes: StateEntry[] = [];
  private registered = new Set<string>();

  constructor(private readonly options: LifecycleOptions = {}) {
    this.cloud = new FakeCloud(this.keys);
  }

  dispose(): void {
    this.keys.dispose();
  }

  async up(config: Record<string, string>, secretKeys: string[] = []): Promise<StepLog> {
    this.ops = {};
    this.failure = undefined;
    this.pendingDeletes = [];
    this.registered = new Set();
    const before = [...this.state.keys()];
    try {
      await runProgram(config, { engine: this, secretKeys });
    } catch (error) {
      this.failure ??= (error as Error).message;
    }
    if (this.failure) return { ops: this.ops, error: this.failure };
    // Replaced resources (create before delete), then what the program no longer registers,
    // newest first.
    for (const old of this.pendingDeletes) this.deleteFromCloud(old);
    for (const key of before.reverse()) {
      if (this.registered.has(key)) continue;
      const old = this.state.get(key)!;
      this.state.delete(key);
      this.ops[old.name] = this.remove(old);
    }
    return { ops: this.ops, error: this.failure };
  }

  destroy(): StepLog {
    this.ops = {};
    for (const key of [...this.state.keys()].reverse()) {
      const old = this.state.get(key)!;
      this.state.delete(key);
      this.ops[old.name] = this.remove(old);
    }
    return { ops: this.ops };
  }

  /** retainOnDelete comes from the state entry, never from the program. */
  private remove(old: StateEntry): Op {
    if (old.retainOnDelete) return "retain";
    this.deleteFromCloud(old);
    return "delete";
  }

  call(token: string, inputs: Inputs): Inputs | undefined {
    switch (token) {
      case "gcp:compute/getDisk:getDisk": {
        const disk = this.cloud.disks.get(String(inputs.name));
        // A 404 in GCP; the mocks' empty answer (tests/harness.ts) takes the same branch.
        if (!disk) return {};
        return {
          id: disk.id,
          name: disk.name,
          size: disk.sizeGb,
          type: `projects/${disk.project}/zones/${disk.zone}/diskTypes/${disk.type}`,
        };
      }
      case "gcp:compute/getInstance:getInstance": {
        const vm = this.cloud.instances.get(String(inputs.name));
        return vm ? { name: vm.name, currentStatus: vm.status } : {};
      }
      case "tls:index/getPublicKey:getPublicKey": {
        const key = String(inputs.privateKeyOpenssh ?? inputs.privateKeyPem);
        return { publicKeyOpenssh: `${this.keys.publicKey(key)}\n` };
      }
      default:
        return undefined;
    }
  }

  newResource(
    args: pulumi.runtime.MockResourceArgs,
    registration: RecordedResource,
  ): { id: string; state: Inputs } {
    const options = registration.options;
    if (args.custom === false) return { id: "", state: {} };
    const key = `${args.type}::${args.name}`;
    this.registered.add(key);
    let old = this.state.get(key);
    // After a failed step the engine starts no new ones: the rest keep their old state.
    if (this.failure) return { id: old?.id ?? "", state: old?.outputs ?? {} };
    try {
      const goalInputs = unwrap(args.inputs) as Inputs;
      const importId = options.importId;
      const oldImportId = old ? old.importId || old.id : "";
      if (importId && (!old || oldImportId !== importId)) {
        old = this.importStep(args.type, args.name, importId, goalInputs, options);
        this.ops[args.name] = "import";
      }
      const goal = old
        ? processIgnoreChanges(goalInputs, old.inputs, options.ignoreChanges)
        : goalInputs;
      const entry = old
        ? this.diffStep(old, goal, options, importId)
        : this.createStep(args.type, args.name, goal, options, importId);
      this.state.set(key, entry);
      return { id: entry.id, state: entry.outputs };
    } catch (error) {
      this.failure = `${args.type} ${args.name}: ${(error as Error).message}`;
      return { id: old?.id ?? "", state: old?.outputs ?? {} };
    }
  }

  private importStep(
    type: string,
    name: string,
    id: string,
    goal: Inputs,
    options: RecordedResource["options"],
  ): StateEntry {
    if (type !== "gcp:compute/disk:Disk") throw new Error(`no import for ${type} in this model`);
    const disk = [...this.cloud.disks.values()].find((d) => d.id === id);
    if (!disk) throw new Error(`resource '${id}' does not exist`);
    const inputs: Inputs = {
      project: disk.project,
      zone: disk.zone,
      name: disk.name,
      size: disk.sizeGb,
      type: disk.type,
      labels: disk.labels,
    };
    if (this.options.strictImport) {
      const differ = changedPaths(
        inputs,
        processIgnoreChanges(goal, inputs, options.ignoreChanges),
      );
      if (differ.length > 0) {
        throw new Error(
          `inputs to import do not match the existing resource: [${differ.map((p) => p.join(".")).join(" ")}]`,
        );
      }
    }
    return {
      type,
      name,
      id,
      inputs,
      outputs: { ...inputs, selfLink: id },
      retainOnDelete: options.retainOnDelete,
      importId: id,
    };
  }

  private createStep(
    type: string,
    name: string,
    goal: Inputs,
    options: RecordedResource["options"],
    importId: string,
  ): StateEntry {
    const { id, outputs } = this.createInCloud(type, goal);
    this.ops[name] = "create";
    return {
      type,
      name,
      id,
      inputs: goal,
      outputs,
      retainOnDelete: options.retainOnDelete,
      importId,
    };
  }

  private diffStep(
    old: StateEntry,
    goal: Inputs,
    options: RecordedResource["options"],
    importId: string,
  ): StateEntry {
    const paths = changedPaths(old.inputs, goal);
    const next = {
      ...old,
      retainOnDelete: options.retainOnDelete,
      importId: importId || old.importId,
    };
    if (paths.length === 0) return next;
    if (replaces(old.type, paths, old.inputs, goal)) {
      if (importId) {
        throw new Error(
          `previously-imported resources that still specify an ID may not be replaced; please remove the \`import\` declaration from your program; ${paths.map((p) => p.join(".")).join(", ")}`,
        );
      }
      const deleteFirst = NAME_FIELD[old.type] !== undefined;
      if (deleteFirst && !old.retainOnDelete) this.deleteFromCloud(old);
      const { id, outputs } = this.createInCloud(old.type, goal);
      if (!deleteFirst && !old.retainOnDelete) this.pendingDeletes.push(old);
      this.ops[old.name] = "replace";
      return { ...next, id, inputs: goal, outputs };
    }
    const outputs = this.updateInCloud(old, goal);
    if (this.ops[old.name] !== "import") this.ops[old.name] = "update";
    return { ...next, inputs: goal, outputs };
  }

  // ------------------------------------------------------------------------------------------
  // The fake cloud's provider operations.

  private createInCloud(type: string, inputs: Inputs): { id: string; outputs: Inputs } {
    const cloud = this.cloud;
    const project = String(inputs.project ?? "");
    switch (type) {
      case "gcp:compute/disk:Disk": {
        const diskName = String(inputs.name);
        const zone = String(inputs.zone);
        if (cloud.disks.has(diskName))
          throw cloud.alreadyExists("disks", project, `zones/${zone}`, diskName);
        const id = `projects/${project}/zones/${zone}/disks/${diskName}`;
        cloud.disks.set(diskName, {
          id,
          name: diskName,
          zone,
          project,
          sizeGb: Number(inputs.size),
          type: String(inputs.type),
          labels: (inputs.labels as Inputs) ?? {},
          contents: `contents-${cloud.next()}`,
        });
        return { id, outputs: { ...inputs, selfLink: id } };
      }
      case "gcp:compute/address:Address": {
        const addressName = String(inputs.name);
        if (cloud.addresses.has(addressName)) {
          throw cloud.alreadyExists("addresses", project, `regions/${inputs.region}`, addressName);
        }
        const address = `198.51.100.${cloud.next()}`;
        cloud.addresses.set(addressName, address);
        return {
          id: `projects/${project}/regions/${inputs.region}/addresses/${addressName}`,
          outputs: { ...inputs, address },
        };
      }
      case "gcp:compute/instance:Instance":
        return this.createInstance(inputs);
      case "tls:index/privateKey:PrivateKey": {
        const pair = this.keys.generate(`deploy-key-${cloud.next()}`);
        return {
          id: `key-${cloud.next()}`,
          outputs: {
            ...inputs,
            privateKeyOpenssh: pair.privateKey,
            publicKeyOpenssh: `${pair.publicKey}\n`,
          },
        };
      }
      case "command:remote:Command":
        return {
          id: `command-${cloud.next()}`,
          outputs: this.runCommand(inputs, String(inputs.create)),
        };
      case "gcp:serviceaccount/account:Account": {
        this.claimName(type, String(inputs.accountId), project, "serviceAccounts");
        return {
          id: `projects/${project}/serviceAccounts/${inputs.accountId}`,
          outputs: { ...inputs, email: `${inputs.accountId}@${project}.iam.gserviceaccount.com` },
        };
      }
      default: {
        const field = NAME_FIELD[type];
        if (field) this.claimName(type, String(inputs[field]), project, type);
        const id = `${type}/${field ? inputs[field] : cloud.next()}`;
        const selfLink =
          type === "gcp:compute/resourcePolicy:ResourcePolicy"
            ? `https://www.googleapis.com/compute/v1/projects/${project}/regions/${inputs.region}/resourcePolicies/${inputs.name}`
            : undefined;
        return { id, outputs: { ...inputs, ...(selfLink ? { selfLink } : {}) } };
      }
    }
  }

  private claimName(type: string, name: string, project: string, kind: string): void {
    const names = this.cloud.objects.get(type) ?? new Set<string>();
    if (names.has(name)) throw this.cloud.alreadyExists(kind, project, "global", name);
    names.add(name);
    this.cloud.objects.set(type, names);
  }

  private createInstance(inputs: Inputs): { id: string; outputs: Inputs } {
    const cloud = this.cloud;
    const name = String(inputs.name);
    const project = String(inputs.project);
    if (cloud.instances.has(name))
      throw cloud.alreadyExists("instances", project, `zones/${inputs.zone}`, name);
    const attached = (inputs.attachedDisks as Inputs[] | undefined) ?? [];
    let diskName: string | undefined;
    for (const attachment of attached) {
      const source = String(attachment.source);
      const disk = [...cloud.disks.values()].find((d) => d.id === source);
      if (!disk)
        throw new Error(`googleapi: Error 404: The resource '${source}' was not found, notFound`);
      if (disk.attachedTo && attachment.mode !== "READ_ONLY") {
        throw new Error(
          `googleapi: Error 400: The disk resource '${source}' is already being used by '${disk.attachedTo}', resourceInUseByAnotherResource`,
        );
      }
      disk.attachedTo = `projects/${project}/zones/${inputs.zone}/instances/${name}`;
      diskName = disk.name;
    }
    const natIp = String(
      getPath(inputs, ["networkInterfaces", "0", "accessConfigs", "0", "natIp"]) ?? "",
    );
    const userData = String(getPath(inputs, ["metadata", "user-data"]) ?? "");
    const users =
      (parse(userData) as { users?: { ssh_authorized_keys?: string[] }[] })?.users ?? [];
    const instanceId = String(4_000_000_000_000_000 + cloud.next());
    cloud.instances.set(name, {
      name,
      instanceId,
      status: "RUNNING",
      inputs,
      bootUserData: userData,
      metadataUserData: userData,
      acceptedKeys: users[0]?.ssh_authorized_keys ?? [],
      natIp,
      diskName,
    });
    return {
      id: `projects/${project}/zones/${inputs.zone}/instances/${name}`,
      outputs: { ...inputs, instanceId },
    };
  }

  private updateInCloud(old: StateEntry, goal: Inputs): Inputs {
    const cloud = this.cloud;
    switch (old.type) {
      case "gcp:compute/disk:Disk": {
        const disk = cloud.disks.get(String(goal.name));
        if (!disk) throw new Error(`googleapi: Error 404: disk ${goal.name} was not found`);
        // resourceComputeDiskUpdate: resize (grow only) and setLabels, in place.
        disk.sizeGb = Number(goal.size);
        disk.labels = (goal.labels as Inputs) ?? {};
        return { ...old.outputs, ...goal };
      }
      case "gcp:compute/instance:Instance": {
        const vm = cloud.instances.get(String(goal.name));
        if (!vm) throw new Error(`googleapi: Error 404: instance ${goal.name} was not found`);
        // setMetadata and friends: the VM keeps running its booted user-data.
        vm.inputs = goal;
        vm.metadataUserData = String(getPath(goal, ["metadata", "user-data"]) ?? "");
        return { ...old.outputs, ...goal };
      }
      case "command:remote:Command":
        // Command.Update runs `update` (or `create` when there is none).
        return this.runCommand(goal, String(goal.update ?? goal.create));
      default:
        return { ...old.outputs, ...goal };
    }
  }

  private deleteFromCloud(old: StateEntry): void {
    const cloud = this.cloud;
    switch (old.type) {
      case "gcp:compute/disk:Disk": {
        const disk = cloud.disks.get(String(old.inputs.name));
        if (disk?.attachedTo) {
          throw new Error(
            `googleapi: Error 400: The disk resource '${disk.id}' is already being used by '${disk.attachedTo}', resourceInUseByAnotherResource`,
          );
        }
        cloud.disks.delete(String(old.inputs.name));
        return;
      }
      case "gcp:compute/instance:Instance": {
        const vm = cloud.instances.get(String(old.inputs.name));
        if (vm?.diskName) {
          const disk = cloud.disks.get(vm.diskName);
          if (disk) disk.attachedTo = undefined;
        }
        cloud.instances.delete(String(old.inputs.name));
        return;
      }
      case "gcp:compute/address:Address":
        cloud.addresses.delete(String(old.inputs.name));
        return;
      default: {
        const field = NAME_FIELD[old.type];
        if (field) cloud.objects.get(old.type)?.delete(String(old.inputs[field]));
      }
    }
  }

  /** The reconcile command over SSH: dial, authenticate, then what host/apply does. */
  private runCommand(inputs: Inputs, command: string): Inputs {
    const connection = inputs.connection as { host: string; user: string; privateKey: string };
    const vm = [...this.cloud.instances.values()].find((i) => i.natIp === connection.host);
    if (!vm || vm.status !== "RUNNING") {
      throw new Error(`Dial failed: dial tcp ${connection.host}:22: i/o timeout`);
    }
    if (!this.cloud.accepts(vm.name, connection.privateKey)) {
      throw new Error(
        `Dial failed: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], no supported methods remain`,
      );
    }
    const stdin = String(inputs.stdin ?? "");
    const keysLine = /^keys (\S+)$/m.exec(stdin);
    if (!keysLine)
      throw new Error("Process exited with status 1: apply: the bundle has no admin keys");
    vm.acceptedKeys = Buffer.from(keysLine[1], "base64")
      .toString("utf8")
      .split("\n")
      .filter(Boolean);
    const agents = Number(/--agents (\d+)/.exec(command)?.[1]);
    const bundleSha256 = /--bundle-sha256 ([0-9a-f]{64})/.exec(command)?.[1] ?? "";
    vm.reconciled = { agents, bundleSha256 };
    const summary = { desired: agents, added: [], removed: [], restarted: [], running: agents };
    return { ...inputs, stdout: `${JSON.stringify(summary)}\n`, stderr: "" };
  }
}
