// A stateful stand-in for the Pulumi engine and for GCP, over the SDK's mocks: the program runs
// for real (index.ts, or any program, under tests/harness.ts), and every registration goes
// through the engine's step rules here, against a state carried from one `up` to the next and a
// small fake cloud. The state is keyed by URN, as the engine's is.
//
// The SDK's mocks apply none of these rules; each one below is ported from pulumi/pulumi (read in
// its source, github.com/pulumi/pulumi, master of 2026-12) unless another repository is named:
//
// - URNs, parents and aliases: tests/engine/urn.ts (urn.New, Deployment.generateURN, alias.go
//   CreateURN, stepGenerator.generateAliases / collapseAliasToUrn / inheritedChildAlias /
//   getOldResource). The old state is found under the new URN, else under an alias; a resource
//   whose URN changed with no alias is a create of the new URN and a delete of the old one, and
//   for a named GCE object that create fails: "already exists". Two registrations of one URN:
//   "Duplicate resource URN" (stepGenerator.generateURN).
// - ignoreChanges (pkg/resource/deploy/step_generator.go, processIgnoreChanges, called from
//   continueStepsFromImport before the diff): the goal takes the OLD value of every ignored path;
//   a replacement is created from that goal, so it gets the old value too.
// - Update or replace: the provider's diff. For GCP, a changed ForceNew field replaces
//   (terraform-provider-google schemas, listed in FORCE_NEW with their files); for pulumi-command,
//   `triggers` is replaceOnChanges (provider/pkg/provider/common/inputs.go) and any other change
//   runs Update (provider/pkg/provider/remote/commandController.go, Command.Update). Then the
//   engine's replaceOnChanges (step_generator.go, applyReplaceOnChanges): a change under a listed
//   path replaces.
// - Delete before replace: pulumi-terraform-bridge pkg/tfbridge/provider.go Diff sets
//   DeleteBeforeReplace when nameRequiresDeleteBeforeReplace (pkg/tfbridge/schema.go): the name
//   was given by the program, not auto-named. Every GCE name here is given. The program's
//   deleteBeforeReplace option overrides the provider either way (continueStepsFromDiff:
//   goal.DeleteBeforeReplace != nil). Otherwise create the replacement first and delete the old
//   one with the other deletes, at the end.
// - Dependents of a delete-before-replace (step_generator.go, calculateDependentReplacements,
//   over pkg/resource/graph's DependencyGraph.DependingOn): before the old resource is deleted,
//   every transitive dependent whose replacing input comes from a replaced resource (that input
//   made unknown, then the provider's diff) or that is deletedWith one is deleted first, in
//   reverse dependency order, and replaced when the program registers it again (generateSteps,
//   `recreating`). dependentReplacements below.
// - protect: a protected resource is neither replaced ("unable to replace resource … as it is
//   currently marked for protection", continueStepsFromDiff: new.Protect && old.Protect) nor
//   deleted ("cannot be deleted because it is protected", step.go DeleteStep.Apply, unless the
//   delete is part of a replacement).
// - retainOnDelete (step.go, DeleteStep.Apply: `else if s.old.RetainOnDelete` → no delete):
//   read from the STATE at delete time; a retained resource leaves the state, stays in the cloud.
// - deletedWith (step.go, DeleteStep.Apply, isDeletedWith): no provider delete when the resource
//   it is deleted with is deleted in the same operation.
// - Delete order (step_generator.go, ScheduleDeletes, over pkg/resource/graph's
//   DependencyGraph.DependenciesOf: dependencies, property dependencies, deletedWith and the
//   parent): antichains of condemned resources whose condemned dependencies are gone, reversed,
//   so nothing is deleted while a resource that depends on it is still there.
// - import (step_generator.go, continueStepsFromRefresh, isImport): an import happens when the
//   goal has an ID and the resource is not in the state, or is there under another ID
//   (old.ImportID, else old.ID). With an old resource it is an ImportReplacementStep: the new ID
//   is read into the state and the old object is deleted with the other deletes. The import step
//   reads the object (missing: the deployment fails), then the normal diff runs against what was
//   read (pulumi/pulumi #19339, v3.174.0). Before 3.174 the import step itself failed on any
//   difference: "inputs to import do not match the existing resource" (step.go ImportStep.Apply,
//   removed by #19339): `strictImport` applies that older rule. A replacement of a resource whose
//   goal still has an ID fails: "previously-imported resources that still specify an ID may not be
//   replaced" (continueStepsFromDiff).
// - After a failed step the engine starts no new ones; what it did so far is in the state, and
//   nothing is deleted. The engine runs steps that do not depend on each other concurrently
//   (pkg/resource/deploy/step_executor.go: each chain on its own worker; a failure cancels only
//   the steps not yet started), so which of them ran before a failure is a matter of timing.
//   By default the stand-in takes the kindest order (registration order). `concurrentSteps`
//   takes the worst one: a step that does not depend, directly or through a skipped step, on the
//   failed one runs as if it had started first. Only a dependency (dependsOn or an input) orders
//   two steps.
//
// The fake cloud (GCE's rules, read in terraform-provider-google and the Compute API):
// instances, disks and addresses by project, zone/region and name, and the other named objects
// ("already exists" on a duplicate name, GCE's 409 alreadyExists); a disk's contents as an opaque
// id; a READ_WRITE disk attached to one instance at a time, and a disk or an address in use by an
// instance cannot be deleted (resourceInUseByAnotherResource); machineType, the service account
// and the Shielded VM config change only on a stopped VM: the provider stops, updates and starts
// it when allow_stopping_for_update is set, and refuses otherwise (google/services/compute/
// resource_compute_instance.go, resourceComputeInstanceUpdate, needToStopInstanceBeforeUpdating);
// and the SSH keys a VM accepts: those of the user-data it BOOTED with (cloud-init runs once per
// instance, so an in-place metadata update changes nothing on the VM), replaced by what the last
// successful reconcile command wrote (host/apply rewrites agent-admin's authorized_keys). The
// reconcile command succeeds only on a RUNNING VM that accepts the configured deploy key.
//
// One `up` returns its steps in order, per URN (StepLog.steps), so a program with several hosts
// can be driven and checked host by host.
import { execFileSync, spawnSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { HOST_KEY_PROBE_COMMAND } from "../../components/agent-fleet";
import { fingerprint } from "../../components/host-key";
import { runProgram, unwrap, type MockEngine, type RecordedResource } from "../harness";
import { AliasResolver, type Urn } from "./urn";
import { cloudInitUserData } from "../user-data";

type Inputs = Record<string, unknown>;

/** What the engine did to one resource in one operation. */
export type Op =
  | "create"
  | "update"
  | "replace"
  | "delete"
  | "retain"
  | "import"
  /** Imported under a new ID over a resource in the state: the old object is deleted. */
  | "import-replace"
  /** Left the state without a provider delete: deleted with another resource (deletedWith). */
  | "deleted-with";

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
  // google/services/compute/iam_compute_instance.go, ComputeInstanceIamSchema: the instance it is
  // on (project, zone, instance_name) is ForceNew, as are role and member
  // (google/tpgiamresource/resource_iam_member.go, IamMemberBaseSchema).
  "gcp:compute/instanceIAMMember:InstanceIAMMember": [
    "project",
    "zone",
    "instanceName",
    "role",
    "member",
  ],
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
  "command:local:Command": ["triggers"],
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

/** One resource in the engine's state (a subset of pkg/resource/state.go's State). */
export interface StateEntry {
  urn: Urn;
  type: string;
  name: string;
  /** The parent's URN, or "". */
  parent: Urn;
  custom: boolean;
  id: string;
  inputs: Inputs;
  outputs: Inputs;
  retainOnDelete: boolean;
  importId: string;
  protect: boolean;
  deletedWith: Urn;
  /** URNs this resource depends on (dependsOn and inputs). */
  dependencies: Urn[];
  /** Input property → the URNs its value came from (State.PropertyDependencies). */
  propertyDependencies: Record<string, Urn[]>;
  /** The options the engine diffs it with again when a dependency is replaced (State fields). */
  ignoreChanges: string[];
  replaceOnChanges: string[];
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
  /** projects/P/zones/Z/instances/N: GCE's key. */
  id: string;
  name: string;
  zone: string;
  project: string;
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
  /** The provider's calls on this VM after its creation, in order (stop, setMachineType, start, …). */
  calls: string[];
  /** The public host key its sshd presents ("ssh-ed25519 <blob>"), made at its first boot. */
  hostKey: string;
  /**
   * Its guest attributes under hostkeys/ (type → blob): the guest environment writes the host
   * key there at first boot when the metadata has enable-guest-attributes TRUE (cloud-init
   * cc_ssh → DataSourceGCE.publish_host_keys); any process on the VM may overwrite them later.
   */
  guestHostKeys: Map<string, string>;
  /**
   * The host key of another machine that has taken the VM's address and its IAP route (a MITM),
   * set by a test; undefined: the VM's own sshd answers.
   */
  impostorHostKey?: string;
  /** Who started an SSH key exchange with whatever answers for the VM: "probe" or "reconcile". */
  handshakes: string[];
}

export interface CloudAddress {
  id: string;
  name: string;
  address: string;
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

/** The host key whatever answers for the VM proves: an impostor's, else the VM's own. */
const answering = (vm: CloudInstance): string => vm.impostorHostKey ?? vm.hostKey;

export class FakeCloud {
  /** By GCE path: projects/P/zones/Z/disks/N. */
  readonly disks = new Map<string, CloudDisk>();
  /** By GCE path: projects/P/zones/Z/instances/N. */
  readonly instances = new Map<string, CloudInstance>();
  /** By GCE path: projects/P/regions/R/addresses/N. */
  readonly addresses = new Map<string, CloudAddress>();
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

  /** The one instance of this name (tests use one project and zone). */
  instanceNamed(name: string): CloudInstance | undefined {
    return unique(
      [...this.instances.values()].filter((i) => i.name === name),
      name,
    );
  }

  diskNamed(name: string): CloudDisk | undefined {
    return unique(
      [...this.disks.values()].filter((d) => d.name === name),
      name,
    );
  }

  /** Does the VM let `privateKey` in as agent-admin? */
  accepts(instanceName: string, privateKey: string): boolean {
    const vm = this.instanceNamed(instanceName);
    if (!vm) return false;
    const wanted = keyBody(this.keys.publicKey(privateKey));
    return vm.acceptedKeys.some((key) => keyBody(key) === wanted);
  }
}

function unique<T>(found: T[], name: string): T | undefined {
  if (found.length > 1) throw new Error(`${found.length} cloud objects are named ${name}`);
  return found[0];
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

/**
 * applyReplaceOnChanges: a changed path under one of the resource's replaceOnChanges paths
 * replaces it (resource.PropertyPath.Contains: a prefix, `*` matching any one element).
 */
export function replaceOnChangesHit(paths: string[][], replaceOnChanges: string[]): boolean {
  const rules = replaceOnChanges.map(parsePath);
  return paths.some((p) =>
    rules.some(
      (rule) => rule.length <= p.length && rule.every((part, i) => part === "*" || p[i] === part),
    ),
  );
}

/**
 * ScheduleDeletes over DependencyGraph.DependenciesOf: the condemned resources in antichains, each
 * deleted only once nothing still standing depends on it. `order` is the snapshot's order (a
 * resource's dependencies come before it); returns the deletes in the order they run.
 */
export function scheduleDeletes(order: StateEntry[], condemned: StateEntry[]): StateEntry[][] {
  const index = new Map(order.map((entry, i) => [entry, i]));
  const dependenciesOf = (res: StateEntry): StateEntry[] => {
    const urns = new Set([...res.dependencies, ...(res.deletedWith ? [res.deletedWith] : [])]);
    const at = index.get(res) ?? order.length;
    return order.slice(0, at).filter((c) => urns.has(c.urn) || c.urn === res.parent);
  };
  const left = new Set(condemned);
  const antichains: StateEntry[][] = [];
  while (left.size > 0) {
    const chain = [...left].filter((res) => !dependenciesOf(res).some((dep) => left.has(dep)));
    if (chain.length === 0) throw new Error("a dependency cycle among the resources to delete");
    for (const res of chain) left.delete(res);
    antichains.push(chain);
  }
  return antichains.reverse();
}

/** The SDK's and the engine's unknown value (sdk/nodejs/runtime/rpc.ts unknownValue). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * DependencyGraph.DependingOn (pkg/resource/graph/dependency_graph.go), includeChildren false:
 * a linear scan of the snapshot after `root`, taking every resource that depends on the root or
 * on one already taken, through its dependencies, property dependencies or deletedWith (not its
 * parent), skipping the URNs in `ignore`. Providers are the default ones here, not in the state,
 * so the provider edge is not scanned.
 */
export function dependingOn(order: StateEntry[], root: StateEntry, ignore: Set<Urn>): StateEntry[] {
  const at = order.indexOf(root);
  if (at < 0) throw new Error(`could not determine index for resource ${root.urn}`);
  const dependentSet = new Set<Urn>([root.urn]);
  const dependents: StateEntry[] = [];
  for (const candidate of order.slice(at + 1)) {
    if (ignore.has(candidate.urn)) continue;
    const deps = [
      ...candidate.dependencies,
      ...Object.values(candidate.propertyDependencies).flat(),
      ...(candidate.deletedWith ? [candidate.deletedWith] : []),
    ];
    if (deps.some((dep) => dependentSet.has(dep))) {
      dependents.push(candidate);
      dependentSet.add(candidate.urn);
    }
  }
  return dependents;
}

/**
 * calculateDependentReplacements (pkg/resource/deploy/step_generator.go): the resources a
 * delete-before-replace of `root` replaces too, in dependency order. For each transitive
 * dependent (dependingOn, ignoring the URNs this deployment already stepped: its
 * impossibleDependents), requiresReplacement: a component never; one deletedWith a replaced
 * resource always; otherwise, when an input's property dependencies reach the replace set, that
 * input becomes unknown and the provider's diff (ignoreChanges applied, then
 * applyReplaceOnChanges) decides. The diff is the stand-in's: FORCE_NEW (an unknown at a ForceNew
 * path replaces; an unknown above a nested ForceNew path is taken as an update) and
 * replaceOnChanges.
 */
export function dependentReplacements(
  order: StateEntry[],
  root: StateEntry,
  ignore: Set<Urn>,
): StateEntry[] {
  const replaceSet = new Set<Urn>([root.urn]);
  const requiresReplacement = (r: StateEntry): boolean => {
    if (!r.custom) return false;
    if (r.deletedWith && replaceSet.has(r.deletedWith)) return true;
    let hasDependencyInReplaceSet = false;
    const inputsForDiff: Inputs = {};
    for (const [key, value] of Object.entries(r.inputs)) {
      const reaches = (r.propertyDependencies[key] ?? []).some((dep) => replaceSet.has(dep));
      if (reaches) hasDependencyInReplaceSet = true;
      inputsForDiff[key] = reaches ? UNKNOWN : value;
    }
    if (!hasDependencyInReplaceSet) return false;
    const goal = processIgnoreChanges(inputsForDiff, r.inputs, r.ignoreChanges);
    const paths = changedPaths(r.inputs, goal);
    return (
      replaces(r.type, paths, r.inputs, goal) || replaceOnChangesHit(paths, r.replaceOnChanges)
    );
  };
  const toReplace: StateEntry[] = [];
  for (const d of dependingOn(order, root, ignore)) {
    if (requiresReplacement(d)) {
      toReplace.push(d);
      replaceSet.add(d.urn);
    }
  }
  return toReplace;
}

/** What the engine did to one resource. */
export interface Step {
  urn: Urn;
  type: string;
  name: string;
  custom: boolean;
  op: Op;
}

export interface StepLog {
  /** Every step, in the order it ran. */
  steps: Step[];
  /** URN → what happened to it (unchanged resources are absent). */
  byUrn: Record<Urn, Op>;
  /**
   * Custom resource name → what happened to it: shorthand for a stack whose custom resources
   * have distinct names (a second resource of the same name is listed under its URN).
   */
  ops: Record<string, Op>;
  error?: string;
}

export interface LifecycleOptions {
  /** The engine before pulumi/pulumi #19339 (v3.174.0): an import must match exactly. */
  strictImport?: boolean;
  /** The stack name (URNs). @default "dev" */
  stack?: string;
  /** After a failed step, run the steps that do not depend on it (see the header). */
  concurrentSteps?: boolean;
}

/** A program other than index.ts (the stand-in's own tests, several hosts). */
export type Program = () => Promise<Record<string, unknown>>;

/** Runs `pulumi up` and `pulumi destroy` against one state and one fake cloud. */
export class LifecycleEngine implements MockEngine {
  /** The snapshot: URN → state, in the order the engine wrote it. */
  state = new Map<Urn, StateEntry>();
  readonly cloud: FakeCloud;
  readonly keys = new Keys();
  private steps: Step[] = [];
  private failure?: string;
  /** Olds to delete once every registration is done: replaced (create before delete) ones. */
  private replacedOlds: StateEntry[] = [];
  /**
   * Replaced olds a failed operation did not delete: the snapshot keeps them marked for deletion
   * (State.Delete) and the next operation deletes them (GenerateDeletes: `res.Delete`).
   */
  pendingDelete: StateEntry[] = [];
  /** URNs of the old state that a registration claimed, under its URN or an alias. */
  private claimed = new Set<Urn>();
  /** URNs registered in this run (stepGenerator.urns). */
  private seen = new Set<Urn>();
  /** Old URN → the new URN that claimed it through an alias (stepGenerator.aliased). */
  private aliased = new Map<Urn, Urn>();
  /**
   * Old URNs deleted in this deployment ahead of a delete-before-replace (sg.deletes): a
   * dependent registered again is recreated; one the program dropped is already gone.
   */
  private deletes = new Set<Urn>();
  /** The failed step and the steps skipped after it (concurrentSteps: what depends on them waits). */
  private blocked = new Set<Urn>();
  private resolver = new AliasResolver("dev", "agent-host");
  private olds = new Map<Urn, StateEntry>();
  private next = new Map<Urn, StateEntry>();
  private readonly stack: string;
  /**
   * `pulumi up --replace <urn>` for the next up, by resource name: a replace step whatever the
   * diff (step_generator.go: isTargetedReplace → a replacement).
   */
  replaceNext = new Set<string>();

  constructor(private readonly options: LifecycleOptions = {}) {
    this.cloud = new FakeCloud(this.keys);
    this.stack = options.stack ?? "dev";
  }

  dispose(): void {
    this.keys.dispose();
  }

  /** The state entry of the one custom resource of this name. */
  entryNamed(name: string): StateEntry | undefined {
    const found = [...this.state.values()].filter((e) => e.custom && e.name === name);
    if (found.length > 1)
      throw new Error(`${found.length} resources in the state are named ${name}`);
    return found[0];
  }

  async up(
    config: Record<string, string>,
    secretKeys: string[] = [],
    program?: Program,
  ): Promise<StepLog> {
    this.steps = [];
    this.failure = undefined;
    this.replacedOlds = [];
    this.claimed = new Set();
    this.seen = new Set();
    this.aliased = new Map();
    this.blocked = new Set();
    this.deletes = new Set();
    this.resolver = new AliasResolver(this.stack, "agent-host");
    this.olds = new Map(this.state);
    this.next = new Map();
    try {
      await runProgram(config, { engine: this, secretKeys, stack: this.stack, program });
    } catch (error) {
      this.failure ??= (error as Error).message;
    } finally {
      this.replaceNext = new Set();
    }
    const unclaimed = [...this.olds.values()].filter((old) => !this.claimed.has(old.urn));
    if (this.failure) {
      // What ran is in the state; the olds nobody claimed stay, and nothing is deleted.
      this.state = new Map([...this.next, ...unclaimed.map((o) => [o.urn, o] as const)]);
      this.pendingDelete.push(...this.replacedOlds);
      return this.log();
    }
    this.state = new Map(this.next);
    // A dependent deleted ahead of a delete-before-replace that the program no longer
    // registers: already gone (GenerateDeletes skips sg.pendingDeletes).
    const gone = unclaimed.filter((old) => this.deletes.has(old.urn));
    for (const old of gone) this.record(old, "delete");
    // The replaced olds and what the program no longer registers, in dependency order.
    const replaced = [...this.pendingDelete, ...this.replacedOlds];
    this.pendingDelete = [];
    this.runDeletes(
      [...replaced, ...this.olds.values()],
      [...replaced, ...unclaimed.filter((old) => !this.deletes.has(old.urn))],
      new Set(replaced),
    );
    return this.log();
  }

  destroy(): StepLog {
    this.steps = [];
    this.failure = undefined;
    const replaced = this.pendingDelete;
    this.pendingDelete = [];
    const all = [...this.state.values()];
    this.runDeletes([...replaced, ...all], [...replaced, ...all], new Set(replaced));
    return this.log();
  }

  private log(): StepLog {
    const byUrn: Record<Urn, Op> = {};
    const ops: Record<string, Op> = {};
    const owner = new Map<string, Urn>();
    for (const step of this.steps) {
      byUrn[step.urn] = step.op;
      if (!step.custom) continue;
      const first = owner.get(step.name) ?? step.urn;
      owner.set(step.name, first);
      ops[first === step.urn ? step.name : step.urn] = step.op;
    }
    return { steps: [...this.steps], byUrn, ops, ...(this.failure ? { error: this.failure } : {}) };
  }

  private record(entry: { urn: Urn; type: string; name: string; custom: boolean }, op: Op): void {
    const { urn, type, name, custom } = entry;
    this.steps.push({ urn, type, name, custom, op });
  }

  /** Deletes `condemned` in ScheduleDeletes' order; `replacing` ones were replaced, not dropped. */
  private runDeletes(
    order: StateEntry[],
    condemned: StateEntry[],
    replacing: Set<StateEntry>,
  ): void {
    const deleting = new Set(condemned.map((c) => c.urn));
    for (const chain of scheduleDeletes(order, condemned)) {
      for (const old of chain) {
        if (this.failure) return;
        try {
          // DeleteStep.Apply
          if (!replacing.has(old) && old.protect) {
            throw new Error(
              `resource "${old.urn}" cannot be deleted\nbecause it is protected. To unprotect the resource, either remove the \`protect\` flag from the resource in your Pulumi program and run \`pulumi up\`, or use the command:\n\`pulumi state unprotect '${old.urn}'\``,
            );
          }
          let op: Op = "delete";
          if (old.retainOnDelete) op = "retain";
          else if (old.deletedWith && deleting.has(old.deletedWith)) op = "deleted-with";
          else if (old.custom) this.deleteFromCloud(old);
          if (this.state.get(old.urn) === old) this.state.delete(old.urn);
          if (!replacing.has(old)) this.record(old, op);
        } catch (error) {
          this.failure = `${old.type} ${old.name}: ${(error as Error).message}`;
          if (replacing.has(old)) this.pendingDelete.push(old);
          else if (!this.state.has(old.urn)) this.state.set(old.urn, old);
        }
      }
    }
  }

  call(token: string, inputs: Inputs): Inputs | undefined {
    switch (token) {
      case "gcp:compute/getDisk:getDisk": {
        const disk = this.cloud.disks.get(
          `projects/${inputs.project}/zones/${inputs.zone}/disks/${inputs.name}`,
        );
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
        const vm = this.cloud.instances.get(
          `projects/${inputs.project}/zones/${inputs.zone}/instances/${inputs.name}`,
        );
        return vm ? { name: vm.name, currentStatus: vm.status } : {};
      }
      case "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes": {
        const vm = this.cloud.instances.get(
          `projects/${inputs.project}/zones/${inputs.zone}/instances/${inputs.name}`,
        );
        // The data source reads the instance first; a missing one is an error
        // (data_source_google_compute_instance_guest_attributes.go: HandleDataSourceNotFoundError).
        if (!vm) {
          throw new Error(
            `Instance ${inputs.name} not found: googleapi: Error 404: The resource 'projects/${inputs.project}/zones/${inputs.zone}/instances/${inputs.name}' was not found, notFound`,
          );
        }
        const namespace = String(inputs.queryPath ?? "").replace(/\/$/, "");
        // The data source returns no error when the API has nothing (a 404): an empty answer.
        const values =
          namespace === "hostkeys"
            ? [...vm.guestHostKeys].map(([key, value]) => ({ namespace, key, value }))
            : [];
        return { queryValues: values };
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
    const { urn, options } = registration;
    let old: StateEntry | undefined;
    try {
      // stepGenerator.generateURN
      if (this.seen.has(urn)) {
        throw new Error(`Duplicate resource URN '${urn}'; try giving it a unique name`);
      }
      this.seen.add(urn);
      const found = this.resolver.getOldResource(
        this.olds,
        this.seen,
        this.aliased,
        urn,
        args.name,
        args.type,
        registration.parent,
        options.aliases,
      );
      old = found.old;
      if (old) this.claimed.add(old.urn);
      // After a failed step the engine starts no new ones: the rest keep their old state.
      // (concurrentSteps: unless the step did not depend on it, and so may have started first.)
      const unordered =
        this.options.concurrentSteps &&
        !options.dependencies.some((dep) => this.blocked.has(dep)) &&
        !this.blocked.has(registration.parent);
      if (this.failure && !unordered) {
        this.blocked.add(urn);
        if (old) this.next.set(urn, { ...old, urn });
        return { id: old?.id ?? "", state: old?.outputs ?? {} };
      }
      const entry = this.step(args, registration, old);
      this.next.set(urn, entry);
      return { id: entry.id, state: entry.outputs };
    } catch (error) {
      this.failure ??= `${args.type} ${args.name}: ${(error as Error).message}`;
      this.blocked.add(urn);
      if (old) this.next.set(urn, { ...old, urn });
      return { id: old?.id ?? "", state: old?.outputs ?? {} };
    }
  }

  /** The steps for one registration; returns its new state. */
  private step(
    args: pulumi.runtime.MockResourceArgs,
    registration: RecordedResource,
    found: StateEntry | undefined,
  ): StateEntry {
    const { urn, options } = registration;
    const base = {
      urn,
      type: args.type,
      name: args.name,
      parent: registration.parent,
      custom: registration.custom,
      retainOnDelete: options.retainOnDelete,
      protect: options.protect,
      deletedWith: options.deletedWith,
      dependencies: options.dependencies,
      propertyDependencies: options.propertyDependencies,
      ignoreChanges: options.ignoreChanges,
      replaceOnChanges: options.replaceOnChanges,
    };
    if (!registration.custom) {
      // A component: no provider, a create when new, otherwise the same.
      if (!found) this.record(base, "create");
      return { ...base, id: "", inputs: {}, outputs: {}, importId: "" };
    }
    let old = found ? { ...found, urn } : undefined;
    const goalInputs = unwrap(args.inputs) as Inputs;
    if (old && this.deletes.has(urn)) {
      // generateSteps, `recreating` (sg.deletes[urn]): deleted earlier in this deployment as a
      // dependent of a delete-before-replace, so a replacement whatever the diff
      // (ReplaceStep + CreateReplacementStep), built from the goal after processIgnoreChanges
      // (continueStepsFromImport).
      this.deletes.delete(urn);
      const goal = processIgnoreChanges(goalInputs, old.inputs, options.ignoreChanges);
      const { id, outputs } = this.createInCloud(old.type, goal);
      this.record(base, "replace");
      return { ...old, ...base, id, inputs: goal, outputs, importId: options.importId };
    }
    const importId = options.importId;
    const oldImportId = old ? old.importId || old.id : "";
    let imported = false;
    if (importId && (!old || oldImportId !== importId)) {
      const read = this.importStep(args.type, importId, goalInputs, options);
      if (found) {
        // ImportReplacementStep: the object under the old ID goes with the other deletes.
        this.replacedOlds.push(found);
        this.record(base, "import-replace");
      } else {
        this.record(base, "import");
      }
      old = {
        ...base,
        id: importId,
        inputs: read,
        outputs: { ...read, selfLink: importId },
        importId,
      };
      imported = true;
    }
    if (!old) {
      const { id, outputs } = this.createInCloud(args.type, goalInputs);
      this.record(base, "create");
      return { ...base, id, inputs: goalInputs, outputs, importId };
    }
    const goal = processIgnoreChanges(goalInputs, old.inputs, options.ignoreChanges);
    const next: StateEntry = { ...old, ...base, importId: importId || old.importId };
    const paths = changedPaths(old.inputs, goal);
    const targeted = this.replaceNext.has(args.name);
    if (paths.length === 0 && !targeted) return next;
    const replace =
      targeted ||
      replaces(old.type, paths, old.inputs, goal) ||
      replaceOnChangesHit(paths, options.replaceOnChanges);
    if (!replace) {
      const outputs = this.updateInCloud(old, goal);
      if (!imported) this.record(base, "update");
      return { ...next, inputs: goal, outputs };
    }
    if (options.protect && old.protect) {
      throw new Error(
        `unable to replace resource "${urn}"\nas it is currently marked for protection. To unprotect the resource, remove the \`protect\` flag from the resource in your Pulumi program and run \`pulumi up\``,
      );
    }
    if (importId) {
      throw new Error(
        `previously-imported resources that still specify an ID may not be replaced; please remove the \`import\` declaration from your program;\n${paths.map((p) => p.join(".")).join(", ")}`,
      );
    }
    const deleteFirst = options.deleteBeforeReplace ?? NAME_FIELD[old.type] !== undefined;
    if (deleteFirst) {
      // First the dependents that the replacement replaces too (calculateDependentReplacements),
      // deleted in reverse dependency order, then the old one (DeleteReplacementStep), then
      // CreateReplacementStep. A retained old one stays in the cloud.
      this.deleteDependents(found ?? old, urn);
      if (!old.retainOnDelete) this.deleteFromCloud(old);
    }
    const { id, outputs } = this.createInCloud(old.type, goal);
    if (!deleteFirst && found) this.replacedOlds.push(found);
    this.record(base, "replace");
    return { ...next, id, inputs: goal, outputs };
  }

  /**
   * continueStepsFromDiff's delete-before-replace of `root` (its old state; `urn`: its new URN):
   * the dependents it replaces too are deleted first, in reverse dependency order, each once
   * (sg.pendingDeletes); a protected one stops the deployment. Then the old root is marked
   * deleted, so a dependent deletedWith it makes no provider delete (DeleteStep.Apply,
   * isDeletedWith), and a retained one stays in the cloud.
   */
  private deleteDependents(root: StateEntry, urn: Urn): void {
    const impossibleDependents = new Set<Urn>([...this.seen, ...this.deletes]);
    const toReplace = dependentReplacements([...this.olds.values()], root, impossibleDependents);
    const condemned: StateEntry[] = [];
    for (const dependent of [...toReplace].reverse()) {
      if (this.deletes.has(dependent.urn)) continue;
      if (dependent.protect) {
        throw new Error(
          `unable to replace resource "${dependent.urn}" as part of replacing "${urn}" as it is currently marked for protection. To unprotect the resource, remove the \`protect\` flag from the resource in your Pulumi program and run \`pulumi up\`, or use the command:\n\`pulumi state unprotect '${dependent.urn}'\``,
        );
      }
      condemned.push(dependent);
      this.deletes.add(dependent.urn);
    }
    this.deletes.add(root.urn);
    for (const dependent of condemned) {
      if (dependent.retainOnDelete) continue;
      if (dependent.deletedWith && this.deletes.has(dependent.deletedWith)) continue;
      this.deleteFromCloud(dependent);
    }
  }

  /** ImportStep: read the object by ID; its inputs are what was read. */
  private importStep(
    type: string,
    id: string,
    goal: Inputs,
    options: RecordedResource["options"],
  ): Inputs {
    if (type !== "gcp:compute/disk:Disk") throw new Error(`no import for ${type} in this model`);
    const disk = this.cloud.disks.get(id);
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
    return inputs;
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
        const id = `projects/${project}/zones/${zone}/disks/${diskName}`;
        if (cloud.disks.has(id))
          throw cloud.alreadyExists("disks", project, `zones/${zone}`, diskName);
        cloud.disks.set(id, {
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
        const id = `projects/${project}/regions/${inputs.region}/addresses/${addressName}`;
        if (cloud.addresses.has(id)) {
          throw cloud.alreadyExists("addresses", project, `regions/${inputs.region}`, addressName);
        }
        const address = `198.51.100.${cloud.next()}`;
        cloud.addresses.set(id, { id, name: addressName, address });
        return { id, outputs: { ...inputs, address } };
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
      case "command:local:Command":
        return {
          id: `command-${cloud.next()}`,
          outputs: this.runLocalCommand(inputs, String(inputs.create), {}),
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
    const key = `${project}/${name}`;
    const names = this.cloud.objects.get(type) ?? new Set<string>();
    if (names.has(key)) throw this.cloud.alreadyExists(kind, project, "global", name);
    names.add(key);
    this.cloud.objects.set(type, names);
  }

  private createInstance(inputs: Inputs): { id: string; outputs: Inputs } {
    const cloud = this.cloud;
    const name = String(inputs.name);
    const project = String(inputs.project);
    const zone = String(inputs.zone);
    const id = `projects/${project}/zones/${zone}/instances/${name}`;
    if (cloud.instances.has(id))
      throw cloud.alreadyExists("instances", project, `zones/${zone}`, name);
    const attached = (inputs.attachedDisks as Inputs[] | undefined) ?? [];
    let diskName: string | undefined;
    for (const attachment of attached) {
      const source = String(attachment.source);
      const disk = cloud.disks.get(source);
      if (!disk)
        throw new Error(`googleapi: Error 404: The resource '${source}' was not found, notFound`);
      if (disk.attachedTo && attachment.mode !== "READ_ONLY") {
        throw new Error(
          `googleapi: Error 400: The disk resource '${source}' is already being used by '${disk.attachedTo}', resourceInUseByAnotherResource`,
        );
      }
      disk.attachedTo = id;
      diskName = disk.name;
    }
    const natIp = String(
      getPath(inputs, ["networkInterfaces", "0", "accessConfigs", "0", "natIp"]) ?? "",
    );
    // What cloud-init on the new VM reads (tests/user-data.ts ports its decoding).
    const userData = cloudInitUserData(
      (getPath(inputs, ["metadata"]) ?? {}) as Record<string, unknown>,
    );
    const users =
      (parse(userData) as { users?: { ssh_authorized_keys?: string[] }[] })?.users ?? [];
    const instanceId = String(4_000_000_000_000_000 + cloud.next());
    const hostKey = keyBody(this.keys.generate(`host-key-${instanceId}`).publicKey);
    const [hostKeyType, hostKeyBlob] = hostKey.split(" ");
    const publishes = getPath(inputs, ["metadata", "enable-guest-attributes"]) === "TRUE";
    cloud.instances.set(id, {
      id,
      name,
      zone,
      project,
      instanceId,
      status: "RUNNING",
      inputs,
      bootUserData: userData,
      metadataUserData: userData,
      acceptedKeys: users[0]?.ssh_authorized_keys ?? [],
      natIp,
      diskName,
      calls: [],
      handshakes: [],
      hostKey,
      guestHostKeys: new Map(publishes ? [[hostKeyType, hostKeyBlob]] : []),
    });
    return { id, outputs: { ...inputs, instanceId } };
  }

  private updateInCloud(old: StateEntry, goal: Inputs): Inputs {
    const cloud = this.cloud;
    switch (old.type) {
      case "gcp:compute/disk:Disk": {
        const disk = cloud.disks.get(old.id);
        if (!disk) throw new Error(`googleapi: Error 404: disk ${goal.name} was not found`);
        // resourceComputeDiskUpdate: resize (grow only) and setLabels, in place.
        disk.sizeGb = Number(goal.size);
        disk.labels = (goal.labels as Inputs) ?? {};
        return { ...old.outputs, ...goal };
      }
      case "gcp:compute/instance:Instance":
        return this.updateInstance(old, goal);
      case "command:remote:Command":
        // Command.Update runs `update` (or `create` when there is none).
        return this.runCommand(goal, String(goal.update ?? goal.create));
      case "command:local:Command":
        return this.runLocalCommand(goal, String(goal.update ?? goal.create), old.outputs);
      default:
        return { ...old.outputs, ...goal };
    }
  }

  /**
   * resourceComputeInstanceUpdate: metadata and labels on the running VM; machine_type, the
   * service account (email or scopes) and shielded_instance_config only on a stopped one
   * (needToStopInstanceBeforeUpdating). A RUNNING VM without allow_stopping_for_update: refused.
   * With it: stop, the updates, start again (the VM keeps its disks, IP and booted user-data).
   */
  private updateInstance(old: StateEntry, goal: Inputs): Inputs {
    const vm = this.cloud.instances.get(old.id);
    if (!vm) throw new Error(`googleapi: Error 404: instance ${goal.name} was not found`);
    const changed = (path: string) =>
      changedPaths(getPath(old.inputs, [path]), getPath(goal, [path])).length > 0;
    const whileStopped = [
      changed("machineType") ? "setMachineType" : "",
      changed("serviceAccount") ? "setServiceAccount" : "",
      changed("shieldedInstanceConfig") ? "updateShieldedInstanceConfig" : "",
    ].filter(Boolean);
    if (changed("metadata")) vm.calls.push("setMetadata");
    if (changed("labels")) vm.calls.push("setLabels");
    if (whileStopped.length > 0) {
      const statusBeforeUpdate = vm.status;
      if (statusBeforeUpdate === "RUNNING" && goal.allowStoppingForUpdate !== true) {
        throw new Error(
          "Changing the machine_type, min_cpu_platform, service_account, enable_display, shielded_instance_config, scheduling.node_affinities " +
            "or network_interface.[#d].(network/subnetwork/subnetwork_project) or advanced_machine_features on a started instance requires stopping it. " +
            "To acknowledge this, please set allow_stopping_for_update = true in your config. " +
            'You can also stop it by setting desired_status = "TERMINATED", but the instance will not be restarted after the update.',
        );
      }
      if (statusBeforeUpdate !== "TERMINATED") {
        vm.calls.push("stop");
        vm.status = "TERMINATED";
      }
      vm.calls.push(...whileStopped);
      if (statusBeforeUpdate === "RUNNING") {
        vm.calls.push("start");
        vm.status = "RUNNING";
      }
    }
    // resourceComputeInstanceUpdate: a network interface's access_config is removed
    // (deleteAccessConfig) or added (addAccessConfig) in place, on the running VM.
    const natIp = String(
      getPath(goal, ["networkInterfaces", "0", "accessConfigs", "0", "natIp"]) ?? "",
    );
    if (natIp !== vm.natIp) {
      if (vm.natIp) vm.calls.push("deleteAccessConfig");
      if (natIp) vm.calls.push("addAccessConfig");
      vm.natIp = natIp;
    }
    vm.inputs = goal;
    // setMetadata and friends: the VM keeps running its booted user-data.
    vm.metadataUserData = cloudInitUserData(
      (getPath(goal, ["metadata"]) ?? {}) as Record<string, unknown>,
    );
    return { ...old.outputs, ...goal };
  }

  private deleteFromCloud(old: StateEntry): void {
    const cloud = this.cloud;
    switch (old.type) {
      case "gcp:compute/disk:Disk": {
        const disk = cloud.disks.get(old.id);
        if (disk?.attachedTo) {
          throw new Error(
            `googleapi: Error 400: The disk resource '${disk.id}' is already being used by '${disk.attachedTo}', resourceInUseByAnotherResource`,
          );
        }
        cloud.disks.delete(old.id);
        return;
      }
      case "gcp:compute/instance:Instance": {
        const vm = cloud.instances.get(old.id);
        for (const disk of cloud.disks.values()) {
          if (disk.attachedTo === old.id) disk.attachedTo = undefined;
        }
        if (vm) cloud.instances.delete(old.id);
        return;
      }
      case "gcp:compute/address:Address": {
        const address = cloud.addresses.get(old.id);
        const user = [...cloud.instances.values()].find(
          (i) => address && i.natIp === address.address,
        );
        if (user) {
          throw new Error(
            `googleapi: Error 400: The address resource '${old.id}' is already being used by '${user.id}', resourceInUseByAnotherResource`,
          );
        }
        cloud.addresses.delete(old.id);
        return;
      }
      case "gcp:serviceaccount/account:Account":
        cloud.objects.get(old.type)?.delete(`${old.inputs.project}/${old.inputs.accountId}`);
        return;
      default: {
        const field = NAME_FIELD[old.type];
        if (field)
          cloud.objects.get(old.type)?.delete(`${old.inputs.project}/${old.inputs[field]}`);
      }
    }
  }

  /** The reconcile command over SSH: dial, authenticate, then what host/apply does. */
  private runCommand(inputs: Inputs, command: string): Inputs {
    const connection = inputs.connection as {
      host: string;
      user: string;
      privateKey: string;
      hostKey?: string;
    };
    const vm = [...this.cloud.instances.values()].find((i) => i.natIp === connection.host);
    if (!vm || vm.status !== "RUNNING") {
      throw new Error(`Dial failed: dial tcp ${connection.host}:22: i/o timeout`);
    }
    vm.handshakes.push("reconcile");
    // connection.go SSHConfig: hostKey → ssh.FixedHostKey (no hostKey: any key is accepted).
    if (connection.hostKey !== undefined && keyBody(connection.hostKey) !== answering(vm)) {
      throw new Error(
        `after ${Number(inputs.connection && (inputs.connection as Inputs).dialErrorLimit) || 10} failed attempts: ssh: handshake failed: ssh: host key mismatch`,
      );
    }
    return this.reconcileOn(vm, inputs, command, connection.privateKey);
  }

  /**
   * A local.Command. The host key pin runs for real, as the provider runs it (local/
   * commandOutputs.go, run): /bin/sh -c, stdin, the process environment plus `environment`, and
   * the previous stdout as PULUMI_COMMAND_STDOUT when addPreviousOutputInEnv is not false and it
   * is not empty; stdout with one trailing newline trimmed; a failure as "<err>: running <cmd>".
   * The iap reconcile (scripts/iap-ssh, run through `interpreter`) is modelled like the remote
   * one: IAP reaches the VM by name, OpenSSH checks the pinned key, the deploy key logs in.
   */
  private runLocalCommand(inputs: Inputs, command: string, previous: Inputs): Inputs {
    const env = (inputs.environment as Record<string, string> | undefined) ?? {};
    if (command === HOST_KEY_PROBE_COMMAND) return this.runHostKeyProbe(inputs, command, env);
    if (inputs.interpreter !== undefined) return this.runIapReconcile(inputs, command, env);
    const withPrevious =
      inputs.addPreviousOutputInEnv !== false && previous.stdout
        ? { PULUMI_COMMAND_STDOUT: String(previous.stdout) }
        : {};
    const r = spawnSync("/bin/sh", ["-c", command], {
      input: String(inputs.stdin ?? ""),
      encoding: "utf8",
      env: { ...process.env, ...env, ...withPrevious },
      timeout: 30_000,
    });
    if (r.status !== 0) {
      throw new Error(
        `exit status ${r.status}: running ${JSON.stringify(command)}:\n${r.stdout}${r.stderr}`,
      );
    }
    return { ...inputs, stdout: r.stdout.replace(/\n$/, ""), stderr: r.stderr.replace(/\n$/, "") };
  }

  private runIapReconcile(inputs: Inputs, command: string, env: Record<string, string>): Inputs {
    const vm = [...this.cloud.instances.values()].find(
      (i) =>
        i.name === env.AGENT_HOST_VM &&
        i.zone === env.AGENT_HOST_ZONE &&
        i.project === env.AGENT_HOST_PROJECT,
    );
    if (!vm || vm.status !== "RUNNING") {
      throw new Error(
        `exit status 1: running ${JSON.stringify(command)}:\niap-ssh: error: VM ${env.AGENT_HOST_VM} did not answer SSH through IAP`,
      );
    }
    vm.handshakes.push("reconcile");
    if (keyBody(env.AGENT_HOST_HOST_KEY ?? "") !== answering(vm)) {
      throw new Error(
        `exit status 1: running ${JSON.stringify(command)}:\niap-ssh: error: the host that answered for VM ${vm.name} did not prove the pinned host key: nothing was sent.`,
      );
    }
    const stdin = String(inputs.stdin ?? "");
    const end = /^-----END [A-Z ]*PRIVATE KEY-----$/m.exec(stdin);
    if (!end)
      throw new Error("exit status 1: iap-ssh: error: stdin does not start with the deploy key");
    const privateKey = `${stdin.slice(0, end.index + end[0].length)}\n`;
    const bundle = stdin.slice(end.index + end[0].length + 1);
    return this.reconcileOn(vm, { ...inputs, stdin: bundle }, command, privateKey, inputs);
  }

  /**
   * scripts/host-key-probe, modelled (its real runs, against a real sshd and an impostor, are
   * tests/host-key-pin.test.ts): it reaches what answers for the VM on the reconcile's path (the
   * address, or the VM's name through IAP), passes when that host proves the pinned key, and
   * otherwise fails naming both fingerprints; it logs in to nothing.
   */
  private runHostKeyProbe(inputs: Inputs, command: string, env: Record<string, string>): Inputs {
    const iap = env.AGENT_HOST_CONNECT_VIA === "iap";
    const vm = [...this.cloud.instances.values()].find((i) =>
      iap
        ? i.name === env.AGENT_HOST_VM &&
          i.zone === env.AGENT_HOST_ZONE &&
          i.project === env.AGENT_HOST_PROJECT
        : i.natIp !== "" && i.natIp === env.AGENT_HOST_ADDRESS,
    );
    const failed = (why: string) =>
      new Error(`exit status 1: running ${JSON.stringify(command)}:\nhost-key-probe: ${why}`);
    if (!vm || vm.status !== "RUNNING") {
      throw failed(`error: VM ${env.AGENT_HOST_VM} did not complete an SSH key exchange`);
    }
    vm.handshakes.push("probe");
    const pinned = keyBody(env.AGENT_HOST_HOST_KEY ?? "");
    const presented = answering(vm);
    if (presented !== pinned) {
      throw failed(
        `refused: VM ${vm.name} presented the SSH host key ${fingerprint(presented)}, not the pinned ${fingerprint(pinned)}; nothing was sent, the reconcile did not start. … re-pin it: pulumi up --replace '${env.AGENT_HOST_PIN_URN}'`,
      );
    }
    return {
      ...inputs,
      stdout: `${pinned.split(" ")[0]} ${fingerprint(pinned)} proven`,
      stderr: "",
    };
  }

  /** On the VM: log in with the deploy key, then what host/apply does. */
  private reconcileOn(
    vm: CloudInstance,
    inputs: Inputs,
    command: string,
    privateKey: string,
    outputsBase: Inputs = inputs,
  ): Inputs {
    if (!this.cloud.accepts(vm.name, privateKey)) {
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
    return { ...outputsBase, stdout: `${JSON.stringify(summary)}\n`, stderr: "" };
  }
}
