// The VM and everything it needs: a dedicated service account, a static address, an SSH
// firewall rule that reaches this VM only, a data disk that outlives the VM, its snapshot
// schedule, and the Shielded VM itself booting the rendered cloud-init.
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";

import { DATA_DEVICE_NAME } from "../cloud-init/host-config";
import { USER_DATA_ENCODING } from "../cloud-init/render";
import type { ConnectVia } from "../config";
import { scheduleCrons, type WorkSchedule } from "../schedule";
import { CLOUD_PLATFORM_SCOPE, VERTEX_ROLE, computeServiceAgent } from "../shared-rules";

/**
 * What GCE's instance schedule needs from the Compute Engine Service Agent, and nothing more
 * ("Scheduling a VM instance to start and stop", Before you begin: compute.instances.start and
 * compute.instances.stop). Granted through a custom role on this one VM, not a project role.
 */
export const SCHEDULE_PERMISSIONS = ["compute.instances.start", "compute.instances.stop"];

/**
 * OAuth scopes of the VM's service account when it calls no Google API: none. Nothing the stack
 * puts on the VM writes to Cloud Logging or Monitoring (no Ops Agent is installed; the host
 * scripts and agents log to the journal and files), so a token from the metadata server is of
 * no use to an agent. An empty list still attaches the account, which the SSH firewall rule
 * targets (the GCP provider keeps the account without scopes since magic-modules PR 10358).
 */
export const VM_SCOPES: readonly string[] = [];
/**
 * Project roles every VM's service account gets: none, for the same reason (the logWriter and
 * metricWriter grants had no user on the VM). The one conditional grant is VERTEX_ROLE.
 */
export const VM_ROLES: readonly string[] = [];

export interface AgentHostArgs {
  project: string;
  zone: string;
  region: string;
  /** GCE name of the VM; also the prefix of the other GCE names. Lowercase, at most 50 chars. */
  instanceName: string;
  /** Service account ID (6-30 chars). */
  serviceAccountId: string;
  machineType: string;
  /** Image family as `project/family`; a family keeps the VM across image releases. */
  image: string;
  bootDiskSizeGb: number;
  dataDiskSizeGb: number;
  dataDiskType: string;
  /** CIDRs allowed to reach tcp:22 (with connectVia iap: IAP's range, as config.ts gives it). */
  sshSourceRanges: string[];
  /**
   * public-ip: a static external address (compute.Address) on the VM. iap: no external address
   * at all (no Address, no accessConfig); SSH arrives through IAP's TCP forwarding.
   * @default "public-ip"
   */
  connectVia?: ConnectVia;
  /** The #cloud-config text. Read by cloud-init at first boot only. */
  /** The #cloud-config text as encodeUserData makes it (gzip, then base64). */
  userData: pulumi.Input<string>;
  /**
   * Spot VM: cheaper, stopped (not deleted) on preemption; the disks stay.
   * @default false — a standard VM that live-migrates on host maintenance.
   */
  spot?: boolean;
  /**
   * Daily snapshots of the data disk kept this many days; 0 creates no schedule.
   * @default 7
   */
  snapshotRetentionDays?: number;
  /**
   * Delete the data disk on `pulumi destroy`. The engine reads this (retainOnDelete) from the
   * state at destroy, so it takes a `pulumi up` first: scripts/destroy.sh --delete-data.
   * @default false — destroy leaves the disk (workspaces, logins, conversations) in the project.
   */
  deleteDataDiskOnDestroy?: boolean;
  /** VPC network. @default "default" */
  network?: string;
  /**
   * The data disk exists in GCP (getDisk found it): adopt it with the `import` option. The engine
   * imports only when the disk is not in the state under this ID; otherwise it is a normal step.
   * @default false — the stack creates the disk.
   */
  adoptDataDisk?: boolean;
  /**
   * The agents call Claude on Vertex AI as the VM's service account: it gets VERTEX_ROLE in the
   * project and the VM gets the cloud-platform scope (a change stops and starts the VM).
   * @default false — no Vertex AI access; the VM keeps VM_SCOPES.
   */
  vertex?: boolean;
  /**
   * Work hours: GCE starts and stops the VM on this schedule (an instance schedule resource
   * policy attached to the VM) and the Compute Engine Service Agent may start and stop this VM.
   * @default undefined — no schedule; the VM runs until stopped (or auto-stopped on the host).
   */
  workSchedule?: WorkSchedule;
  /** The project's number (gcp.organizations.getProject); required with workSchedule. */
  projectNumber?: pulumi.Input<string>;
}

/**
 * The ID the GCP provider gives a disk (resourceComputeDiskCreate: projects/{{project}}/zones/
 * {{zone}}/disks/{{name}}). An `import` with exactly this ID is no import at all once the disk
 * is in the state (step_generator.go: isImport needs old == nil or old's ID != the goal's ID).
 */
export function dataDiskId(project: string, zone: string, name: string): string {
  return `projects/${project}/zones/${zone}/disks/${name}`;
}

type Labels = Record<string, string>;

/** Where each part registers its resources: child names derive from `name`, parent is the host. */
interface Part {
  name: string;
  args: AgentHostArgs;
  parent: pulumi.Resource;
  labels: Labels;
}

/** Identity: the VM's own service account, and the project roles it gets (none, or Vertex AI). */
function identity({ name, args, parent }: Part): gcp.serviceaccount.Account {
  const account = new gcp.serviceaccount.Account(
    `${name}-sa`,
    {
      project: args.project,
      accountId: args.serviceAccountId,
      displayName: `agent-host VM ${args.instanceName}`,
      description:
        "Identity of the agent-host VM, targeted by its SSH firewall rule. No project roles unless the agents use Vertex AI.",
    },
    { parent },
  );
  const member = pulumi.interpolate`serviceAccount:${account.email}`;
  for (const role of VM_ROLES) {
    new gcp.projects.IAMMember(
      `${name}-${role
        .replace(/^roles\//, "")
        .replace(/\./g, "-")
        .toLowerCase()}`,
      { project: args.project, role, member },
      { parent },
    );
  }
  if (args.vertex) {
    new gcp.projects.IAMMember(
      `${name}-aiplatform-user`,
      { project: args.project, role: VERTEX_ROLE, member },
      { parent },
    );
  }
  return account;
}

/**
 * Network: the static external address (none with connectVia iap), and SSH from the configured
 * ranges to this VM only.
 */
function network(
  { name, args, parent, labels }: Part,
  account: gcp.serviceaccount.Account,
): { address?: gcp.compute.Address; firewall: gcp.compute.Firewall } {
  const iap = args.connectVia === "iap";
  const address = iap
    ? undefined
    : new gcp.compute.Address(
        `${name}-ip`,
        {
          project: args.project,
          region: args.region,
          name: `${args.instanceName}-ip`,
          addressType: "EXTERNAL",
          labels,
        },
        { parent },
      );
  // Targets the VM's service account, not a network tag: anyone who may edit instances can
  // add a tag, while the service account is fixed by this stack.
  const firewall = new gcp.compute.Firewall(
    `${name}-ssh`,
    {
      project: args.project,
      name: `${args.instanceName}-ssh`,
      network: args.network ?? "default",
      description: iap
        ? "SSH to the agent-host VM through IAP TCP forwarding only (35.235.240.0/20)."
        : "SSH to the agent-host VM from the configured ranges only.",
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: ["22"] }],
      sourceRanges: args.sshSourceRanges,
      targetServiceAccounts: [account.email],
    },
    { parent },
  );
  return { address, firewall };
}

/** Disks: the data disk that outlives the VM, and its daily snapshots. */
function disks({ name, args, parent, labels }: Part): {
  dataDisk: gcp.compute.Disk;
  snapshotPolicy?: gcp.compute.ResourcePolicy;
} {
  // Holds /workspaces and the agent user's home. Lives apart from the VM so a replaced VM
  // finds it again; retainOnDelete keeps it through `pulumi destroy` unless asked otherwise.
  // A kept disk is no longer in the state, so the next `up` adopts it (import) instead of
  // failing to create a disk of the same name.
  const diskName = `${args.instanceName}-data`;
  const dataDisk = new gcp.compute.Disk(
    `${name}-data`,
    {
      project: args.project,
      zone: args.zone,
      name: diskName,
      size: args.dataDiskSizeGb,
      type: args.dataDiskType,
      labels,
    },
    {
      parent,
      retainOnDelete: !(args.deleteDataDiskOnDestroy ?? false),
      import: args.adoptDataDisk ? dataDiskId(args.project, args.zone, diskName) : undefined,
    },
  );
  const retention = args.snapshotRetentionDays ?? 7;
  if (retention <= 0) return { dataDisk };
  const snapshotPolicy = new gcp.compute.ResourcePolicy(
    `${name}-snapshots`,
    {
      project: args.project,
      region: args.region,
      name: `${args.instanceName}-snapshots`,
      description: "Daily snapshots of the agent-host data disk.",
      snapshotSchedulePolicy: {
        schedule: { dailySchedule: { daysInCycle: 1, startTime: "03:00" } },
        retentionPolicy: { maxRetentionDays: retention, onSourceDiskDelete: "KEEP_AUTO_SNAPSHOTS" },
        snapshotProperties: { labels, guestFlush: false },
      },
    },
    { parent },
  );
  new gcp.compute.DiskResourcePolicyAttachment(
    `${name}-data-snapshots`,
    { project: args.project, zone: args.zone, disk: dataDisk.name, name: snapshotPolicy.name },
    { parent },
  );
  return { dataDisk, snapshotPolicy };
}

/**
 * Work hours: an instance schedule in the VM's region. The instance takes at most one (the
 * provider's resource_policies has MaxItems 1), and updates it in place (no ForceNew:
 * resourceComputeInstanceUpdate removes and adds resource policies on a running VM).
 */
function workHours({ name, args, parent }: Part): gcp.compute.ResourcePolicy | undefined {
  if (!args.workSchedule) return undefined;
  const crons = scheduleCrons(args.workSchedule);
  return new gcp.compute.ResourcePolicy(
    `${name}-work-hours`,
    {
      project: args.project,
      region: args.region,
      name: `${args.instanceName}-work-hours`,
      description: "Work hours of the agent-host VM: GCE starts and stops it on this schedule.",
      instanceSchedulePolicy: {
        timeZone: args.workSchedule.timeZone,
        ...(crons.vmStartSchedule ? { vmStartSchedule: { schedule: crons.vmStartSchedule } } : {}),
        ...(crons.vmStopSchedule ? { vmStopSchedule: { schedule: crons.vmStopSchedule } } : {}),
      },
    },
    { parent },
  );
}

/** Standard VMs live-migrate; Spot VMs are stopped, never deleted, on preemption. */
function scheduling(spot: boolean): gcp.types.input.compute.InstanceScheduling {
  return spot
    ? {
        provisioningModel: "SPOT",
        preemptible: true,
        automaticRestart: false,
        onHostMaintenance: "TERMINATE",
        instanceTerminationAction: "STOP",
      }
    : {
        provisioningModel: "STANDARD",
        preemptible: false,
        automaticRestart: true,
        onHostMaintenance: "MIGRATE",
      };
}

/** The VM: Shielded, booting the rendered cloud-init, the data disk attached, keys only. */
function vm(
  { name, args, parent, labels }: Part,
  wiring: {
    account: gcp.serviceaccount.Account;
    address?: gcp.compute.Address;
    firewall: gcp.compute.Firewall;
    dataDisk: gcp.compute.Disk;
    workHoursPolicy?: gcp.compute.ResourcePolicy;
  },
): gcp.compute.Instance {
  return new gcp.compute.Instance(
    `${name}-vm`,
    {
      project: args.project,
      zone: args.zone,
      name: args.instanceName,
      machineType: args.machineType,
      description: "agent-host: Claude Code agents in tmux (see the stack outputs).",
      bootDisk: {
        autoDelete: true,
        initializeParams: {
          image: args.image,
          size: args.bootDiskSizeGb,
          type: "pd-balanced",
          labels,
        },
      },
      attachedDisks: [
        { source: wiring.dataDisk.selfLink, deviceName: DATA_DEVICE_NAME, mode: "READ_WRITE" },
      ],
      // No accessConfig with connectVia iap: no external address at all (IAP reaches the
      // internal one).
      networkInterfaces: [
        {
          network: args.network ?? "default",
          ...(wiring.address
            ? { accessConfigs: [{ natIp: wiring.address.address, networkTier: "PREMIUM" }] }
            : {}),
        },
      ],
      serviceAccount: {
        email: wiring.account.email,
        scopes: args.vertex ? [CLOUD_PLATFORM_SCOPE] : [...VM_SCOPES],
      },
      shieldedInstanceConfig: {
        enableSecureBoot: true,
        enableVtpm: true,
        enableIntegrityMonitoring: true,
      },
      canIpForward: false,
      metadata: {
        // gzip + base64 (cloud-init/render.ts, encodeUserData): a third of the bytes.
        "user-data": args.userData,
        [USER_DATA_ENCODING.key]: USER_DATA_ENCODING.value,
        "block-project-ssh-keys": "TRUE",
        "serial-port-enable": "FALSE",
        // Keys come from cloud-init's users; OS Login would bypass them.
        "enable-oslogin": "FALSE",
        // The guest environment publishes the SSH host keys as guest attributes (hostkeys/),
        // which the deploy pins once, at creation (components/host-key.ts).
        "enable-guest-attributes": "TRUE",
      },
      scheduling: scheduling(args.spot ?? false),
      ...(wiring.workHoursPolicy ? { resourcePolicies: wiring.workHoursPolicy.selfLink } : {}),
      allowStoppingForUpdate: true,
      labels,
    },
    // No ignoreChanges on user-data: the engine builds a replacement from the goal state, and an
    // ignored input keeps its OLD value there (step_generator.go, processIgnoreChanges), so a
    // replaced VM would boot the first VM's keys and scripts. user-data holds nothing that
    // follows agentCount, so a count change leaves the VM alone; a key or host-file change
    // updates the metadata in place (the provider's setMetadata, no stop) and only a future
    // replacement boots it.
    { parent, dependsOn: [wiring.firewall] },
  );
}

/**
 * The work-hour schedule's grant: a custom role with exactly the two permissions, bound on this
 * VM only, so the Compute Engine Service Agent may start and stop this VM and nothing else. The
 * provider undeletes a role of the same id that a destroy soft-deleted
 * (resourceGoogleProjectIamCustomRoleCreate), so destroy then up works within IAM's 37-day window.
 */
function scheduleGrant({ name, args, parent }: Part, instance: gcp.compute.Instance): void {
  if (args.projectNumber === undefined) {
    throw new Error("AgentHost: workSchedule needs projectNumber (the service agent's name).");
  }
  const role = new gcp.projects.IAMCustomRole(
    `${name}-start-stop`,
    {
      project: args.project,
      roleId: `agentHostStartStop_${args.instanceName.replace(/-/g, "_")}`.slice(0, 64),
      title: `agent-host start/stop ${args.instanceName}`,
      description: "Lets the Compute Engine Service Agent run the VM's work-hour schedule.",
      permissions: SCHEDULE_PERMISSIONS,
      stage: "GA",
    },
    { parent },
  );
  new gcp.compute.InstanceIAMMember(
    `${name}-schedule-agent`,
    {
      project: args.project,
      zone: args.zone,
      instanceName: instance.name,
      role: role.name,
      member: pulumi
        .output(args.projectNumber)
        .apply((n) => `serviceAccount:${computeServiceAgent(n)}`),
    },
    { parent },
  );
}

export class AgentHost extends pulumi.ComponentResource {
  public readonly instance: gcp.compute.Instance;
  public readonly dataDisk: gcp.compute.Disk;
  /** The static external address; undefined with connectVia iap. */
  public readonly address?: gcp.compute.Address;
  public readonly serviceAccount: gcp.serviceaccount.Account;
  public readonly firewall: gcp.compute.Firewall;
  public readonly snapshotPolicy?: gcp.compute.ResourcePolicy;
  public readonly workHoursPolicy?: gcp.compute.ResourcePolicy;
  /** The static external IP; undefined with connectVia iap. */
  public readonly publicIp?: pulumi.Output<string>;
  public readonly instanceName: pulumi.Output<string>;
  /** Changes when the VM is replaced (new boot disk, new cloud-init run). */
  public readonly instanceId: pulumi.Output<string>;

  constructor(name: string, args: AgentHostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-host:host:AgentHost", name, {}, opts);
    // Every child is registered by one of the parts above, in this order, with this component
    // as its parent: names and URNs are a contract (tests/stack.test.ts, lifecycle.test.ts).
    const labels = { "managed-by": "pulumi", app: "agent-host", "agent-host": args.instanceName };
    const part: Part = { name, args, parent: this, labels };
    this.serviceAccount = identity(part);
    ({ address: this.address, firewall: this.firewall } = network(part, this.serviceAccount));
    ({ dataDisk: this.dataDisk, snapshotPolicy: this.snapshotPolicy } = disks(part));
    this.workHoursPolicy = workHours(part);
    this.instance = vm(part, {
      account: this.serviceAccount,
      address: this.address,
      firewall: this.firewall,
      dataDisk: this.dataDisk,
      workHoursPolicy: this.workHoursPolicy,
    });
    if (this.workHoursPolicy) scheduleGrant(part, this.instance);

    this.publicIp = this.address?.address;
    this.instanceName = this.instance.name;
    this.instanceId = this.instance.instanceId;
    this.registerOutputs({
      publicIp: this.publicIp,
      instanceName: this.instanceName,
      instanceId: this.instanceId,
      dataDisk: this.dataDisk.name,
    });
  }
}
