// The policy pack's rules, called directly: for each, one compliant and one violating resource with
// the exact message; then the stack's own resources (evaluated under mocks) against every rule.
import {
  ALLOW_WORLD_SSH_HINT,
  DISK,
  DISK_POLICY_ATTACHMENT,
  FIREWALL,
  INSTANCE,
  RESOURCE_POLICY,
  RESOURCE_RULES,
  STRICT,
  blockProjectSshKeys,
  SERVICE_ACCOUNT,
  checkResource,
  cloudPlatformNarrowRoles,
  coversWholeInternet,
  dataDiskSnapshots,
  instanceScheduleValid,
  noBroadScopes,
  noDefaultServiceAccount,
  noIpForwarding,
  noSecretsInMetadata,
  noStartupScript,
  scheduleGrantOnInstanceOnly,
  serialPortOff,
  settingsFrom,
  shieldedVm,
  sshNotOpenToWorld,
  workHoursCanRun,
  type RuleSettings,
  type StackResource,
} from "../policy/rules";
import { CLOUD_PLATFORM_SCOPE as CLOUD_PLATFORM } from "../shared-rules";
import { spawn, type ChildProcess } from "child_process";
import * as path from "path";
import { gzipSync } from "zlib";
import { BASE_CONFIG, runProgram, unwrap, type ProgramRun } from "./harness";

jest.setTimeout(60_000);

const SA = "ah-dev@acme-agents.iam.gserviceaccount.com";
const SCOPES = [
  "https://www.googleapis.com/auth/logging.write",
  "https://www.googleapis.com/auth/monitoring.write",
];
/** A compliant VM, as the stack builds it; each test changes one thing. */
const VM = {
  name: "agent-host-dev",
  bootDisk: { initializeParams: { image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64" } },
  serviceAccount: { email: SA, scopes: SCOPES },
  shieldedInstanceConfig: {
    enableSecureBoot: true,
    enableVtpm: true,
    enableIntegrityMonitoring: true,
  },
  canIpForward: false,
  metadata: {
    "user-data": "#cloud-config\npackages: [tmux]\n",
    "block-project-ssh-keys": "TRUE",
    "serial-port-enable": "FALSE",
  },
};
const FW = {
  direction: "INGRESS",
  allows: [{ protocol: "tcp", ports: ["22"] }],
  sourceRanges: ["203.0.113.7/32", "35.235.240.0/20"],
  targetServiceAccounts: [SA],
};
const withMetadata = (extra: Record<string, unknown>) => ({
  ...VM,
  metadata: { ...VM.metadata, ...extra },
});

const SSH_FIX = `Restrict sourceRanges to named networks (your address as /32, or IAP's 35.235.240.0/20: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32), or, if the whole internet is intended, ${ALLOW_WORLD_SSH_HINT}.`;
const ALLOW: RuleSettings = { ...STRICT, allowWorldSsh: true };

describe("ssh-not-open-to-world", () => {
  test("compliant: tcp:22 from named ranges", () => {
    expect(sshNotOpenToWorld(FIREWALL, FW)).toEqual([]);
  });

  test("violating: tcp:22 from 0.0.0.0/0", () => {
    expect(sshNotOpenToWorld(FIREWALL, { ...FW, sourceRanges: ["0.0.0.0/0"] })).toEqual([
      `Firewall allows SSH (tcp:22) from the whole internet: sourceRanges ["0.0.0.0/0"]. ${SSH_FIX}`,
    ]);
  });

  test("the explicit allowance lets 0.0.0.0/0 through", () => {
    expect(sshNotOpenToWorld(FIREWALL, { ...FW, sourceRanges: ["0.0.0.0/0"] }, ALLOW)).toEqual([]);
  });

  test.each([
    ["all protocols, no ports", [{ protocol: "all" }]],
    ["tcp with no ports (every port)", [{ protocol: "tcp" }]],
    ["a port range containing 22", [{ protocol: "tcp", ports: ["1-1024"] }]],
    ["protocol number 6", [{ protocol: "6", ports: ["22"] }]],
  ])("violating: %s from ::/0", (_label, allows) => {
    expect(sshNotOpenToWorld(FIREWALL, { ...FW, allows, sourceRanges: ["::/0"] })).toHaveLength(1);
  });

  test("violating: ranges that together cover the internet", () => {
    const ranges = ["0.0.0.0/1", "128.0.0.0/1"];
    expect(sshNotOpenToWorld(FIREWALL, { ...FW, sourceRanges: ranges })).toEqual([
      `Firewall allows SSH (tcp:22) from the whole internet: sourceRanges ["0.0.0.0/1","128.0.0.0/1"]. ${SSH_FIX}`,
    ]);
  });

  test("violating: no source at all (GCE then uses 0.0.0.0/0)", () => {
    const { sourceRanges: _ranges, ...noSource } = FW;
    expect(sshNotOpenToWorld(FIREWALL, noSource)).toEqual([
      `Firewall allows SSH (tcp:22) from the whole internet: it has no sourceRanges, sourceTags or sourceServiceAccounts, so GCE uses 0.0.0.0/0. ${SSH_FIX}`,
    ]);
  });

  test("not SSH, egress, or disabled: compliant even from 0.0.0.0/0", () => {
    const world = { ...FW, sourceRanges: ["0.0.0.0/0"] };
    expect(
      sshNotOpenToWorld(FIREWALL, { ...world, allows: [{ protocol: "tcp", ports: ["443"] }] }),
    ).toEqual([]);
    expect(sshNotOpenToWorld(FIREWALL, { ...world, allows: [{ protocol: "udp" }] })).toEqual([]);
    expect(sshNotOpenToWorld(FIREWALL, { ...world, direction: "EGRESS" })).toEqual([]);
    expect(sshNotOpenToWorld(FIREWALL, { ...world, disabled: true })).toEqual([]);
    expect(sshNotOpenToWorld(INSTANCE, world)).toEqual([]);
  });

  test("coverage: gaps and host bits", () => {
    expect(coversWholeInternet(["0.0.0.0/1", "128.0.0.0/2"])).toBe(false);
    expect(coversWholeInternet(["10.1.2.3/0"])).toBe(true);
    expect(coversWholeInternet(["35.235.240.0/20"])).toBe(false);
  });
});

describe("shielded-vm", () => {
  test("compliant: all three on", () => {
    expect(shieldedVm(INSTANCE, VM)).toEqual([]);
  });

  test("violating: secure boot off, vTPM unset", () => {
    expect(
      shieldedVm(INSTANCE, {
        ...VM,
        shieldedInstanceConfig: { enableSecureBoot: false, enableIntegrityMonitoring: true },
      }),
    ).toEqual([
      "Shielded VM is not fully on: shieldedInstanceConfig.enableSecureBoot, enableVtpm must be true (got enableSecureBoot=false, enableVtpm=null). Set shieldedInstanceConfig { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true } on a Shielded VM image (Ubuntu's GCE images are).",
    ]);
  });

  test("violating: no shieldedInstanceConfig at all", () => {
    const { shieldedInstanceConfig: _s, ...bare } = VM;
    expect(shieldedVm(INSTANCE, bare)).toHaveLength(1);
  });
});

describe("no-default-service-account", () => {
  const FIX =
    "Create a dedicated service account (gcp.serviceaccount.Account) with only the roles the VM needs and set serviceAccount.email to it.";

  test("compliant: a dedicated account", () => {
    expect(noDefaultServiceAccount(INSTANCE, VM)).toEqual([]);
  });

  test("violating: the default compute service account", () => {
    expect(
      noDefaultServiceAccount(INSTANCE, {
        ...VM,
        serviceAccount: {
          email: "123456789012-compute@developer.gserviceaccount.com",
          scopes: SCOPES,
        },
      }),
    ).toEqual([
      `serviceAccount.email is the default compute service account "123456789012-compute@developer.gserviceaccount.com" (Editor on the project by default). ${FIX}`,
    ]);
  });

  test("violating: no email (GCE picks the default one)", () => {
    expect(
      noDefaultServiceAccount(INSTANCE, { ...VM, serviceAccount: { scopes: SCOPES } }),
    ).toEqual([
      `serviceAccount.email is not set, so GCE uses the project's default compute service account (Editor on the project by default). ${FIX}`,
    ]);
  });

  test("violating: no serviceAccount block", () => {
    const { serviceAccount: _sa, ...bare } = VM;
    expect(noDefaultServiceAccount(INSTANCE, bare)).toEqual([
      `The VM has no serviceAccount block, so nothing pins its identity (the console and gcloud attach the default compute service account). ${FIX}`,
    ]);
  });
});

describe("no-broad-scopes", () => {
  test("compliant: logging and monitoring writers", () => {
    expect(noBroadScopes(INSTANCE, VM)).toEqual([]);
  });

  test("compliant: no scope at all (this stack's VM unless it uses Vertex AI)", () => {
    const noScopes = { ...VM, serviceAccount: { email: SA, scopes: [] } };
    expect(noBroadScopes(INSTANCE, noScopes)).toEqual([]);
    expect(noDefaultServiceAccount(INSTANCE, noScopes)).toEqual([]);
  });

  test("violating: cloud-platform, compute-rw, storage-full", () => {
    expect(
      noBroadScopes(INSTANCE, {
        ...VM,
        serviceAccount: {
          email: SA,
          scopes: [
            ...SCOPES,
            "https://www.googleapis.com/auth/cloud-platform",
            "compute-rw",
            "storage-full",
          ],
        },
      }),
    ).toEqual([
      'serviceAccount.scopes include broad scopes ["https://www.googleapis.com/auth/cloud-platform","compute-rw","storage-full"]: any process on the VM (every agent) can use them through the metadata server. Keep only what the VM needs (the agent-host VM calls no Google API and needs no scope), and grant IAM roles to the dedicated service account. cloud-platform alone is accepted only when the stack config sets claudeProvider to vertex (pulumi config set claudeProvider vertex), and then cloud-platform-narrow-roles limits the account\'s roles.',
    ]);
  });

  const VERTEX: RuleSettings = { ...STRICT, claudeOnVertex: true };
  const withScopes = (scopes: string[]) => ({ ...VM, serviceAccount: { email: SA, scopes } });

  test("claudeProvider vertex lets cloud-platform through, and nothing else", () => {
    expect(noBroadScopes(INSTANCE, withScopes([CLOUD_PLATFORM]), VERTEX)).toEqual([]);
    expect(noBroadScopes(INSTANCE, withScopes([CLOUD_PLATFORM, "compute-rw"]), VERTEX)).toEqual([
      'serviceAccount.scopes include broad scopes ["compute-rw"]: any process on the VM (every agent) can use them through the metadata server. Keep only what the VM needs (the agent-host VM calls no Google API and needs no scope), and grant IAM roles to the dedicated service account.',
    ]);
    // cloud-platform.read-only is another scope: not what Vertex needs.
    expect(
      noBroadScopes(
        INSTANCE,
        withScopes(["https://www.googleapis.com/auth/cloud-platform.read-only"]),
        VERTEX,
      ),
    ).toHaveLength(1);
    expect(settingsFrom({ "agent-host:claudeProvider": "vertex" })).toEqual(VERTEX);
    expect(settingsFrom({ "agent-host:claudeProvider": "anthropic" })).toEqual(STRICT);
  });
});

describe("cloud-platform-narrow-roles", () => {
  const MEMBER = `serviceAccount:${SA}`;
  const account: StackResource = {
    type: SERVICE_ACCOUNT,
    props: { accountId: "ah-dev", email: SA },
  };
  const vm = (scopes: string[], email = SA): StackResource => ({
    type: INSTANCE,
    urn: "urn:vm",
    props: { ...VM, serviceAccount: { email, scopes } },
  });
  const grant = (role: string, extra: Record<string, unknown> = {}): StackResource => ({
    type: "gcp:projects/iAMMember:IAMMember",
    urn: `urn:${role}`,
    props: { project: "acme-agents", role, member: MEMBER, ...extra },
  });
  const HEAD = 'The VM "agent-host-dev" has the cloud-platform scope';
  const ALLOWED = "roles/aiplatform.user, roles/logging.logWriter, roles/monitoring.metricWriter";

  test("compliant: the stack's own account, granted roles/aiplatform.user (and log/metric writers)", () => {
    expect(
      cloudPlatformNarrowRoles([
        account,
        vm([CLOUD_PLATFORM]),
        grant("roles/aiplatform.user"),
        grant("roles/logging.logWriter"),
      ]),
    ).toEqual([]);
  });

  test("compliant: a VM without cloud-platform is not this rule's business", () => {
    expect(cloudPlatformNarrowRoles([account, vm(SCOPES), grant("roles/editor")])).toEqual([]);
  });

  test("violating: a broad role next to the Vertex one, by IAMMember, IAMBinding or IAMPolicy", () => {
    const binding: StackResource = {
      type: "gcp:projects/iAMBinding:IAMBinding",
      urn: "urn:binding",
      props: { role: "roles/storage.admin", members: ["user:a@acme.example", MEMBER] },
    };
    const policy: StackResource = {
      type: "gcp:projects/iAMPolicy:IAMPolicy",
      urn: "urn:policy",
      props: {
        policyData: JSON.stringify({ bindings: [{ role: "roles/owner", members: [MEMBER] }] }),
      },
    };
    expect(
      cloudPlatformNarrowRoles([
        account,
        vm([CLOUD_PLATFORM]),
        grant("roles/aiplatform.user"),
        grant("roles/editor"),
        binding,
        policy,
      ]),
    ).toEqual([
      {
        urn: "urn:roles/editor",
        message: `${HEAD}, so its service account ${SA} can use all of "roles/editor" (granted by gcp:projects/iAMMember:IAMMember) from any process on the VM. With cloud-platform only these roles are allowed: ${ALLOWED}. Remove the grant, or drop the scope.`,
      },
      {
        urn: "urn:binding",
        message: `${HEAD}, so its service account ${SA} can use all of "roles/storage.admin" (granted by gcp:projects/iAMBinding:IAMBinding) from any process on the VM. With cloud-platform only these roles are allowed: ${ALLOWED}. Remove the grant, or drop the scope.`,
      },
      {
        urn: "urn:policy",
        message: `${HEAD}, so its service account ${SA} can use all of "roles/owner" (granted by gcp:projects/iAMPolicy:IAMPolicy) from any process on the VM. With cloud-platform only these roles are allowed: ${ALLOWED}. Remove the grant, or drop the scope.`,
      },
    ]);
  });

  test("violating: cloud-platform without the Vertex role (nothing needs it)", () => {
    expect(
      cloudPlatformNarrowRoles([account, vm([CLOUD_PLATFORM]), grant("roles/logging.logWriter")]),
    ).toEqual([
      {
        urn: "urn:vm",
        message: `${HEAD} but its service account ${SA} is not granted roles/aiplatform.user: nothing on the VM needs cloud-platform. Give the VM no scopes (nothing on it calls a Google API), or set claudeProvider to vertex.`,
      },
    ]);
  });

  test("violating: an account this stack does not create (its grants are out of sight)", () => {
    const other = "shared-ci@acme-agents.iam.gserviceaccount.com";
    expect(
      cloudPlatformNarrowRoles([
        account,
        vm([CLOUD_PLATFORM], other),
        grant("roles/aiplatform.user"),
      ]),
    ).toEqual([
      {
        urn: "urn:vm",
        message: `${HEAD} and runs as "${other}", which this stack does not create: roles granted to it elsewhere would all reach every process on the VM. Run it as a dedicated gcp.serviceaccount.Account of this stack.`,
      },
    ]);
  });

  test("a grant to someone else, or a grant on the account itself to a person, is not counted", () => {
    expect(
      cloudPlatformNarrowRoles([
        account,
        vm([CLOUD_PLATFORM]),
        grant("roles/aiplatform.user"),
        grant("roles/owner", { member: "user:admin@acme.example" }),
      ]),
    ).toEqual([]);
  });
});

describe("block-project-ssh-keys", () => {
  test.each(["TRUE", "true"])("compliant: %s", (value) => {
    expect(
      blockProjectSshKeys(INSTANCE, withMetadata({ "block-project-ssh-keys": value })),
    ).toEqual([]);
  });

  test("violating: FALSE", () => {
    expect(
      blockProjectSshKeys(INSTANCE, withMetadata({ "block-project-ssh-keys": "FALSE" })),
    ).toEqual([
      'metadata["block-project-ssh-keys"] must be "TRUE" (got "FALSE"): otherwise every project-wide SSH key logs in to this VM. Set metadata { "block-project-ssh-keys": "TRUE" }.',
    ]);
  });

  test("violating: absent", () => {
    expect(blockProjectSshKeys(INSTANCE, { ...VM, metadata: {} })).toEqual([
      'metadata["block-project-ssh-keys"] must be "TRUE" (got null): otherwise every project-wide SSH key logs in to this VM. Set metadata { "block-project-ssh-keys": "TRUE" }.',
    ]);
  });
});

describe("serial-port-off", () => {
  test.each(["FALSE", "false", "0"])("compliant: %s", (value) => {
    expect(serialPortOff(INSTANCE, withMetadata({ "serial-port-enable": value }))).toEqual([]);
  });

  test("compliant: absent", () => {
    expect(serialPortOff(INSTANCE, { ...VM, metadata: {} })).toEqual([]);
  });

  test("violating: TRUE", () => {
    expect(serialPortOff(INSTANCE, withMetadata({ "serial-port-enable": "TRUE" }))).toEqual([
      'metadata["serial-port-enable"] is "TRUE": the interactive serial console bypasses the firewall and SSH keys. Remove the key or set it to "FALSE".',
    ]);
  });
});

describe("no-startup-script", () => {
  const WHY =
    'set: a startup script runs as root on every boot, and metadataStartupScript replaces the VM on any change. Provision through cloud-init (metadata["user-data"]) and make day-2 changes through the reconcile command.';

  test("compliant: cloud-init user-data only", () => {
    expect(noStartupScript(INSTANCE, VM)).toEqual([]);
  });

  test("violating: metadataStartupScript", () => {
    expect(
      noStartupScript(INSTANCE, { ...VM, metadataStartupScript: "#!/bin/bash\necho hi" }),
    ).toEqual([`metadataStartupScript ${WHY}`]);
  });

  test("violating: startup-script metadata key", () => {
    expect(noStartupScript(INSTANCE, withMetadata({ "startup-script": "echo hi" }))).toEqual([
      `metadata["startup-script"] ${WHY}`,
    ]);
  });
});

describe("no-ip-forwarding", () => {
  test("compliant: false, or unset (GCE's default)", () => {
    expect(noIpForwarding(INSTANCE, VM)).toEqual([]);
    const { canIpForward: _c, ...unset } = VM;
    expect(noIpForwarding(INSTANCE, unset)).toEqual([]);
  });

  test("violating: true", () => {
    expect(noIpForwarding(INSTANCE, { ...VM, canIpForward: true })).toEqual([
      "canIpForward is true: the VM could route traffic for other addresses. Set canIpForward: false.",
    ]);
  });
});

describe("no-secrets-in-metadata", () => {
  const AFTER =
    "Instance metadata is plain text to anyone who can view the VM and to every process on it (the metadata server); ship secrets on the reconcile command's stdin from secret config (pulumi config set --secret …) instead, and rotate this one.";
  const API_KEY = `sk-ant-api03-${"A".repeat(40)}`;
  const PEM =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----";

  test("compliant: cloud-config that mentions the key prefix but holds no key", () => {
    const userData = '#cloud-config\nruncmd:\n  - [sh, -c, "case $KEY in sk-ant-oat*) ;; esac"]\n';
    expect(noSecretsInMetadata(INSTANCE, withMetadata({ "user-data": userData }))).toEqual([]);
  });

  test("violating: an API key in user-data", () => {
    const userData = `#cloud-config\nwrite_files:\n  - path: /etc/key\n    content: ${API_KEY}\n`;
    const messages = noSecretsInMetadata(INSTANCE, withMetadata({ "user-data": userData }));
    expect(messages).toEqual([
      `metadata["user-data"] holds text shaped like an Anthropic API key or OAuth token (sk-ant-…). ${AFTER}`,
    ]);
    // The message never repeats what it found.
    expect(messages.join("")).not.toContain(API_KEY);
  });

  test("violating: a private key in another metadata key", () => {
    expect(noSecretsInMetadata(INSTANCE, withMetadata({ "deploy-key": PEM }))).toEqual([
      `metadata["deploy-key"] holds text shaped like a private key (-----BEGIN … PRIVATE KEY-----). ${AFTER}`,
    ]);
  });

  test("violating: a key hidden in gzip+base64 user-data", () => {
    const encoded = gzipSync(Buffer.from(`#cloud-config\n# ${API_KEY}\n`)).toString("base64");
    expect(
      noSecretsInMetadata(
        INSTANCE,
        withMetadata({ "user-data": encoded, "user-data-encoding": "base64" }),
      ),
    ).toEqual([
      `metadata["user-data"] (decoded) holds text shaped like an Anthropic API key or OAuth token (sk-ant-…). ${AFTER}`,
    ]);
  });

  test("violating: a key hidden in a gz+b64 write_files entry (how the stack ships host files)", () => {
    const content = gzipSync(Buffer.from(`KEY=${API_KEY}\n`)).toString("base64");
    const userData = `#cloud-config\nwrite_files:\n  - path: /etc/key\n    encoding: gz+b64\n    content: ${content}\n`;
    expect(userData).not.toContain("sk-ant-");
    expect(noSecretsInMetadata(INSTANCE, withMetadata({ "user-data": userData }))).toEqual([
      `metadata["user-data"] write_files "/etc/key" (decoded) holds text shaped like an Anthropic API key or OAuth token (sk-ant-…). ${AFTER}`,
    ]);
    // And inside user-data that is itself base64 (user-data-encoding).
    const wrapped = Buffer.from(userData).toString("base64");
    expect(
      noSecretsInMetadata(
        INSTANCE,
        withMetadata({ "user-data": wrapped, "user-data-encoding": "base64" }),
      ),
    ).toEqual([
      `metadata["user-data"] write_files "/etc/key" (decoded) holds text shaped like an Anthropic API key or OAuth token (sk-ant-…). ${AFTER}`,
    ]);
  });

  test("violating: cloud credentials (AWS, Google API key, GitHub token)", () => {
    const messages = noSecretsInMetadata(
      INSTANCE,
      withMetadata({
        aws: "AKIAIOSFODNN7EXAMPLE",
        google: `AIza${"b".repeat(35)}`,
        github: `ghp_${"c".repeat(36)}`,
      }),
    );
    expect(messages.map((m) => m.slice(0, m.indexOf(". Instance")))).toEqual([
      'metadata["aws"] holds text shaped like an AWS access key ID (AKIA…)',
      'metadata["google"] holds text shaped like a Google API key (AIza…)',
      'metadata["github"] holds text shaped like a GitHub token (ghp_…, github_pat_…)',
    ]);
  });
});

describe("data-disk-snapshots", () => {
  const disk: StackResource = {
    type: DISK,
    urn: "urn:disk",
    props: { name: "agent-host-dev-data", zone: "europe-west1-b", size: 200 },
  };
  const policy: StackResource = {
    type: RESOURCE_POLICY,
    props: {
      name: "agent-host-dev-snapshots",
      snapshotSchedulePolicy: {
        schedule: { dailySchedule: { daysInCycle: 1, startTime: "03:00" } },
      },
    },
  };
  const attachment: StackResource = {
    type: DISK_POLICY_ATTACHMENT,
    props: {
      disk: "agent-host-dev-data",
      zone: "europe-west1-b",
      name: "agent-host-dev-snapshots",
    },
  };
  const NO_SCHEDULE =
    'Disk "agent-host-dev-data" (not a boot disk) has no snapshot schedule: no DiskResourcePolicyAttachment names it, so a deleted or corrupted disk loses every workspace. Attach a compute.ResourcePolicy with a snapshotSchedulePolicy (pulumi config set snapshotRetentionDays 7), or set snapshotRetentionDays to 0 in the stack config to run without snapshots on purpose.';

  test("compliant: the data disk has an attached snapshot schedule", () => {
    expect(dataDiskSnapshots([disk, policy, attachment])).toEqual([]);
  });

  test("violating: no attachment names the data disk", () => {
    const other = { ...attachment, props: { ...attachment.props, disk: "some-other-disk" } };
    expect(dataDiskSnapshots([disk, policy, other])).toEqual([
      { urn: "urn:disk", message: NO_SCHEDULE },
    ]);
  });

  test("violating: attached only to a policy without a snapshot schedule", () => {
    const noSchedule = { ...policy, props: { name: "agent-host-dev-snapshots" } };
    expect(dataDiskSnapshots([disk, noSchedule, attachment])).toEqual([
      {
        urn: "urn:disk",
        message:
          'Disk "agent-host-dev-data" is attached only to resource policies without a snapshotSchedulePolicy (["agent-host-dev-snapshots"]). Give the policy a snapshotSchedulePolicy.',
      },
    ]);
  });

  test("compliant: snapshotRetentionDays 0 in the stack config", () => {
    const settings = settingsFrom({ "agent-host:snapshotRetentionDays": "0" });
    expect(settings).toEqual({ allowWorldSsh: false, snapshotsOff: true, claudeOnVertex: false });
    expect(dataDiskSnapshots([disk], settings)).toEqual([]);
  });

  test("compliant: boot disks need no schedule (made from an image, or booted from)", () => {
    const fromImage = {
      ...disk,
      props: { ...disk.props, image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64" },
    };
    const bootedFrom: StackResource = {
      type: INSTANCE,
      props: { bootDisk: { source: "projects/p/zones/europe-west1-b/disks/agent-host-dev-data" } },
    };
    expect(dataDiskSnapshots([fromImage])).toEqual([]);
    expect(dataDiskSnapshots([disk, bootedFrom])).toEqual([]);
  });
});

describe("instance-schedule-valid", () => {
  const SCHEDULE = {
    name: "agent-host-dev-work-hours",
    instanceSchedulePolicy: {
      timeZone: "Europe/Berlin",
      vmStartSchedule: { schedule: "0 8 * * 1-5" },
      vmStopSchedule: { schedule: "0 19 * * 1-5" },
    },
  };
  const withPolicy = (policy: Record<string, unknown>) => ({
    ...SCHEDULE,
    instanceSchedulePolicy: { ...SCHEDULE.instanceSchedulePolicy, ...policy },
  });

  test("the stack's schedule passes; a snapshot policy is not its business", () => {
    expect(instanceScheduleValid(RESOURCE_POLICY, SCHEDULE)).toEqual([]);
    expect(
      instanceScheduleValid(RESOURCE_POLICY, { snapshotSchedulePolicy: { schedule: {} } }),
    ).toEqual([]);
  });

  test.each(["Mars/Olympus_Mons", "europe/berlin", "CET; rm -rf /", 3])(
    "time zone %j is refused",
    (timeZone) => {
      expect(instanceScheduleValid(RESOURCE_POLICY, withPolicy({ timeZone }))).toEqual([
        `The instance schedule's timeZone ${JSON.stringify(timeZone)} is not a tz database name (e.g. Europe/Berlin): GCE refuses it. Fix workTimeZone in the stack config.`,
      ]);
    },
  );

  test.each(["0 8 * *", "at 8", "0 8 * * MON-FRI;", ""])("cron %j is refused", (schedule) => {
    expect(
      instanceScheduleValid(RESOURCE_POLICY, withPolicy({ vmStartSchedule: { schedule } })),
    ).toEqual([
      `The instance schedule's vmStartSchedule ${JSON.stringify(schedule)} is not a five-field unix-cron line (minute hour day month weekday).`,
    ]);
  });

  test("a schedule that neither starts nor stops is refused", () => {
    expect(
      instanceScheduleValid(RESOURCE_POLICY, {
        instanceSchedulePolicy: { timeZone: "UTC" },
      }),
    ).toEqual(["The instance schedule has neither vmStartSchedule nor vmStopSchedule."]);
  });
});

describe("schedule-grant-on-instance-only", () => {
  const AGENT = "serviceAccount:service-123456789012@compute-system.iam.gserviceaccount.com";
  test("the service agent on the VM passes (not a project IAM type)", () => {
    expect(
      scheduleGrantOnInstanceOnly("gcp:compute/instanceIAMMember:InstanceIAMMember", {
        member: AGENT,
        role: "projects/p/roles/agentHostStartStop_x",
      }),
    ).toEqual([]);
  });
  test("the VM's own account on the project passes", () => {
    expect(
      scheduleGrantOnInstanceOnly("gcp:projects/iAMMember:IAMMember", {
        member: "serviceAccount:ah-dev@acme-agents.iam.gserviceaccount.com",
        role: "roles/logging.logWriter",
      }),
    ).toEqual([]);
  });
  test.each([
    ["gcp:projects/iAMMember:IAMMember", { member: AGENT, role: "roles/compute.instanceAdmin.v1" }],
    [
      "gcp:projects/iAMBinding:IAMBinding",
      { members: ["user:a@b.example", AGENT], role: "roles/compute.instanceAdmin.v1" },
    ],
  ])("%s granting the service agent a project role is refused", (type, inputs) => {
    expect(scheduleGrantOnInstanceOnly(type, inputs)).toEqual([
      `The Compute Engine Service Agent (${AGENT}) gets "roles/compute.instanceAdmin.v1" on the whole project; grant the work-hour schedule's start/stop on the VM only (compute.InstanceIAMMember).`,
    ]);
  });
});

describe("work-hours-can-run", () => {
  const resources = [
    {
      type: RESOURCE_POLICY,
      props: { name: "vm-work-hours", instanceSchedulePolicy: { timeZone: "UTC" } },
    },
    {
      type: INSTANCE,
      props: {
        name: "vm",
        resourcePolicies:
          "https://www.googleapis.com/compute/v1/projects/p/regions/r/resourcePolicies/vm-work-hours",
      },
    },
  ];
  const grant = (instanceName: string) => ({
    type: "gcp:compute/instanceIAMMember:InstanceIAMMember",
    props: {
      instanceName,
      member: "serviceAccount:service-1@compute-system.iam.gserviceaccount.com",
    },
  });

  test("a scheduled VM with the service agent's grant on it passes", () => {
    expect(workHoursCanRun([...resources, grant("vm")])).toEqual([]);
  });
  test("a VM without a schedule needs no grant", () => {
    expect(workHoursCanRun([{ type: INSTANCE, props: { name: "vm" } }])).toEqual([]);
  });
  test.each([
    ["no grant", []],
    ["a grant on another VM", [grant("other")]],
  ])("a scheduled VM with %s is refused", (_label, extra) => {
    expect(workHoursCanRun([...resources, ...extra])).toEqual([
      {
        urn: undefined,
        message:
          'VM "vm" follows the instance schedule "vm-work-hours", but no InstanceIAMMember lets the Compute Engine Service Agent start and stop it: GCE would skip every scheduled start and stop.',
      },
    ]);
  });
});

describe("settings", () => {
  test("only explicit statements relax a rule", () => {
    expect(settingsFrom({})).toEqual(STRICT);
    expect(settingsFrom({ "agent-host:snapshotRetentionDays": "7" })).toEqual(STRICT);
    expect(settingsFrom({}, { allowWorldSsh: "true" })).toEqual(STRICT);
    expect(settingsFrom({}, { allowWorldSsh: true })).toEqual(ALLOW);
    // Written explicitly in the stack config: the allowance. Covering the world some other
    // way (two /1 ranges) is not an explicit statement.
    expect(settingsFrom({ "agent-host:sshSourceRanges": '["0.0.0.0/0"]' })).toEqual(ALLOW);
    expect(settingsFrom({ "agent-host:sshSourceRanges": '["0.0.0.0/1","128.0.0.0/1"]' })).toEqual(
      STRICT,
    );
    expect(settingsFrom({ "agent-host:sshSourceRanges": "not json" })).toEqual(STRICT);
  });
});

/** Every violation of every rule for the resources a run registered (secrets unwrapped, as the engine shows them to a policy pack). */
function violations(run: ProgramRun, settings: RuleSettings): string[] {
  const resources = run.resources.map((r) => ({
    type: r.type,
    props: unwrap(r.inputs) as Record<string, unknown>,
  }));
  return [
    ...resources.flatMap((r) =>
      checkResource(r.type, r.props, settings).map((v) => `${v.policy}: ${v.message}`),
    ),
    ...dataDiskSnapshots(resources, settings).map((v) => `data-disk-snapshots: ${v.message}`),
    ...workHoursCanRun(resources).map((v) => `work-hours-can-run: ${v.message}`),
    ...cloudPlatformNarrowRoles(resources).map((v) => `cloud-platform-narrow-roles: ${v.message}`),
  ];
}

describe("the stack's own resources pass every rule", () => {
  const WORLD = { ...BASE_CONFIG, "agent-host:sshSourceRanges": '["0.0.0.0/0"]' };
  const cases: [string, Record<string, string>, { allowWorldSsh?: boolean }][] = [
    ["defaults", { ...BASE_CONFIG }, {}],
    ["spot", { ...BASE_CONFIG, "agent-host:spot": "true" }, {}],
    ["snapshotRetentionDays 0", { ...BASE_CONFIG, "agent-host:snapshotRetentionDays": "0" }, {}],
    [
      "work hours",
      {
        ...BASE_CONFIG,
        "agent-host:workHoursStart": "08:00",
        "agent-host:workHoursStop": "19:00",
        "agent-host:workTimeZone": "Europe/Berlin",
      },
      {},
    ],
    ["0.0.0.0/0 written in the stack config", WORLD, {}],
    ["Claude on Vertex AI", { ...BASE_CONFIG, "agent-host:claudeProvider": "vertex" }, {}],
    ["0.0.0.0/0 with allowWorldSsh in the policy config too", WORLD, { allowWorldSsh: true }],
    [
      "an API key and bypassPermissions",
      {
        ...BASE_CONFIG,
        "agent-host:anthropicApiKey": `sk-ant-api03-${"K".repeat(60)}`,
        "agent-host:agentPermissionMode": "bypassPermissions",
      },
      {},
    ],
  ];

  test.each(cases)("%s", async (_label, config, policyConfig) => {
    const run = await runProgram(config, {
      secretKeys: config["agent-host:anthropicApiKey"] ? ["agent-host:anthropicApiKey"] : [],
    });
    // The rules saw the resources they are about.
    const types = run.resources.map((r) => r.type);
    expect(types).toEqual(expect.arrayContaining([FIREWALL, INSTANCE, DISK]));
    expect(violations(run, settingsFrom(config, policyConfig))).toEqual([]);
  });

  test("a firewall open to the world that the stack config does not list violates ssh-not-open-to-world, and only it", async () => {
    // As if code (not config) had opened the firewall: the resources of a 0.0.0.0/0 run,
    // judged with a stack config that never said so.
    const run = await runProgram(WORLD);
    expect(violations(run, settingsFrom(BASE_CONFIG, {}))).toEqual([
      `ssh-not-open-to-world: Firewall allows SSH (tcp:22) from the whole internet: sourceRanges ["0.0.0.0/0"]. ${SSH_FIX}`,
    ]);
  });

  test("the Vertex VM judged with a stack config that does not say vertex violates no-broad-scopes, and only it", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:claudeProvider": "vertex" });
    expect(violations(run, settingsFrom(BASE_CONFIG, {}))).toEqual([
      expect.stringMatching(
        /^no-broad-scopes: serviceAccount.scopes include broad scopes \["https:\/\/www.googleapis.com\/auth\/cloud-platform"\]/,
      ),
    ]);
  });

  test("snapshotRetentionDays 0 without it in the stack config violates data-disk-snapshots", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:snapshotRetentionDays": "0" });
    expect(violations(run, STRICT)).toEqual([
      expect.stringMatching(
        /^data-disk-snapshots: Disk "agent-host-dev-data" \(not a boot disk\) has no snapshot schedule/,
      ),
    ]);
  });

  test("the pack has one policy per rule, names unique", () => {
    const names = [
      ...RESOURCE_RULES.map((r) => r.name),
      "data-disk-snapshots",
      "work-hours-can-run",
      "cloud-platform-narrow-roles",
    ];
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual([
      "ssh-not-open-to-world",
      "shielded-vm",
      "no-default-service-account",
      "no-broad-scopes",
      "block-project-ssh-keys",
      "serial-port-off",
      "no-startup-script",
      "no-ip-forwarding",
      "no-secrets-in-metadata",
      "instance-schedule-valid",
      "schedule-grant-on-instance-only",
      "data-disk-snapshots",
      "work-hours-can-run",
      "cloud-platform-narrow-roles",
    ]);
  });
});

/**
 * The pack as `pulumi preview --policy-pack policy` starts it: Pulumi's own runner
 * (@pulumi/pulumi/cmd/run-policy-pack, ts-node with type checking, cwd policy/), spoken to over
 * the analyzer gRPC protocol the engine uses. No Pulumi CLI here, so the engine is played by hand.
 */
describe("the pack under Pulumi's policy runner", () => {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const grpc = require("@grpc/grpc-js");
  const services = require("@pulumi/pulumi/proto/analyzer_grpc_pb");
  const analyzer = require("@pulumi/pulumi/proto/analyzer_pb");
  const { Struct } = require("google-protobuf/google/protobuf/struct_pb");
  const { Empty } = require("google-protobuf/google/protobuf/empty_pb");
  /* eslint-enable @typescript-eslint/no-require-imports */
  const started: { child: ChildProcess; client: any }[] = [];

  /** Starts the pack with this stack config (as Pulumi passes it, in PULUMI_CONFIG). */
  async function startPack(stackConfig: Record<string, string>): Promise<any> {
    const child = spawn(
      process.execPath,
      [require.resolve("@pulumi/pulumi/cmd/run-policy-pack"), "127.0.0.1:0", "."],
      {
        cwd: path.join(__dirname, "..", "policy"),
        env: { ...process.env, PULUMI_CONFIG: JSON.stringify(stackConfig) },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk) => (stderr += chunk));
    // The runner prints the port it serves on once the pack has loaded (and type-checked).
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no port within 90 s; stderr: ${stderr}`)),
        90_000,
      );
      child.stdout?.on("data", (chunk: Buffer) => {
        const match = /^(\d+)\s*$/m.exec(chunk.toString());
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.on("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr}`)));
    });
    const client = new services.AnalyzerClient(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    );
    started.push({ child, client });
    return client;
  }

  let client: any;
  beforeAll(async () => {
    client = await startPack({ "agent-host:snapshotRetentionDays": "0" });
  }, 120_000);

  afterAll(() => {
    for (const { child, client } of started) {
      client.close();
      if (child.exitCode === null) child.kill();
    }
  });

  const call = <T>(method: string, request: unknown, to = client): Promise<T> =>
    new Promise((resolve, reject) =>
      to[method](request, (err: Error | null, response: T) =>
        err ? reject(err) : resolve(response),
      ),
    );
  const resource = (type: string, name: string, props: Record<string, unknown>, message: any) => {
    message.setType(type);
    message.setName(name);
    message.setUrn(`urn:pulumi:dev::agent-host::${type}::${name}`);
    message.setProperties(Struct.fromJavaScript(props));
    message.setOptions(new analyzer.AnalyzerResourceOptions());
    return message;
  };

  const diagnostics = (response: any) =>
    response.getDiagnosticsList().map((d: any) => ({
      policy: d.getPolicyname(),
      mandatory: d.getEnforcementlevel() === analyzer.EnforcementLevel.MANDATORY,
      message: d.getMessage(),
    }));

  test("serves every policy, mandatory", async () => {
    const info: any = await call("getAnalyzerInfo", new Empty());
    expect(info.getName()).toBe("agent-host");
    expect(info.getPoliciesList().map((p: any) => [p.getName(), p.getEnforcementlevel()])).toEqual(
      [
        ...RESOURCE_RULES.map((r) => r.name),
        "data-disk-snapshots",
        "work-hours-can-run",
        "cloud-platform-narrow-roles",
      ].map((name) => [name, analyzer.EnforcementLevel.MANDATORY]),
    );
  });

  test("a world-open SSH firewall and a hardened-wrong VM are refused", async () => {
    const fw = await call(
      "analyze",
      resource(
        FIREWALL,
        "fw",
        { ...FW, sourceRanges: ["0.0.0.0/0"] },
        new analyzer.AnalyzeRequest(),
      ),
    );
    expect(diagnostics(fw)).toEqual([
      {
        policy: "ssh-not-open-to-world",
        mandatory: true,
        message: expect.stringContaining('sourceRanges ["0.0.0.0/0"]'),
      },
    ]);
    const vm = await call(
      "analyze",
      resource(INSTANCE, "vm", { ...VM, canIpForward: true }, new analyzer.AnalyzeRequest()),
    );
    expect(diagnostics(vm).map((d: any) => d.policy)).toEqual(["no-ip-forwarding"]);
  });

  test("the stack config's snapshotRetentionDays reaches the stack rule", async () => {
    const request = new analyzer.AnalyzeStackRequest();
    request.setResourcesList([
      resource(
        DISK,
        "data",
        { name: "agent-host-dev-data", zone: "europe-west1-b" },
        new analyzer.AnalyzerResource(),
      ),
    ]);
    // Started with snapshotRetentionDays 0: a disk without a schedule is intended.
    expect(diagnostics(await call("analyzeStack", request))).toEqual([]);
    // Started with 7: the same disk is refused.
    const strict = await startPack({ "agent-host:snapshotRetentionDays": "7" });
    expect(diagnostics(await call("analyzeStack", request, strict))).toEqual([
      {
        policy: "data-disk-snapshots",
        mandatory: true,
        message: expect.stringContaining(
          'Disk "agent-host-dev-data" (not a boot disk) has no snapshot schedule',
        ),
      },
    ]);
  }, 120_000);

  test("claudeProvider vertex in the stack config: cloud-platform passes no-broad-scopes, and the stack rule holds its roles", async () => {
    const vertexVm = {
      ...VM,
      serviceAccount: { email: SA, scopes: ["https://www.googleapis.com/auth/cloud-platform"] },
    };
    // Started without claudeProvider: the scope is refused.
    const refused = await call(
      "analyze",
      resource(INSTANCE, "vm", vertexVm, new analyzer.AnalyzeRequest()),
    );
    expect(diagnostics(refused).map((d: any) => d.policy)).toEqual(["no-broad-scopes"]);
    const vertex = await startPack({ "agent-host:claudeProvider": "vertex" });
    const vm = await call(
      "analyze",
      resource(INSTANCE, "vm", vertexVm, new analyzer.AnalyzeRequest()),
      vertex,
    );
    expect(diagnostics(vm)).toEqual([]);
    const stackResources = (roles: string[]) => {
      const request = new analyzer.AnalyzeStackRequest();
      request.setResourcesList([
        resource(
          "gcp:serviceaccount/account:Account",
          "sa",
          { accountId: "ah-dev", email: SA },
          new analyzer.AnalyzerResource(),
        ),
        resource(INSTANCE, "vm", vertexVm, new analyzer.AnalyzerResource()),
        ...roles.map((role) =>
          resource(
            "gcp:projects/iAMMember:IAMMember",
            role.replace(/\W/g, "-"),
            { role, member: `serviceAccount:${SA}`, project: "acme-agents" },
            new analyzer.AnalyzerResource(),
          ),
        ),
      ]);
      return request;
    };
    expect(
      diagnostics(await call("analyzeStack", stackResources(["roles/aiplatform.user"]), vertex)),
    ).toEqual([]);
    expect(
      diagnostics(
        await call(
          "analyzeStack",
          stackResources(["roles/aiplatform.user", "roles/compute.admin"]),
          vertex,
        ),
      ),
    ).toEqual([
      {
        policy: "cloud-platform-narrow-roles",
        mandatory: true,
        message: expect.stringContaining('can use all of "roles/compute.admin"'),
      },
    ]);
  }, 120_000);

  test("the policy config's allowWorldSsh lets 0.0.0.0/0 through", async () => {
    const config = new analyzer.PolicyConfig();
    config.setEnforcementlevel(analyzer.EnforcementLevel.MANDATORY);
    config.setProperties(Struct.fromJavaScript({ allowWorldSsh: true }));
    const request = new analyzer.ConfigureAnalyzerRequest();
    request.getPolicyconfigMap().set("ssh-not-open-to-world", config);
    await call("configure", request);
    const fw = await call(
      "analyze",
      resource(
        FIREWALL,
        "fw",
        { ...FW, sourceRanges: ["0.0.0.0/0"] },
        new analyzer.AnalyzeRequest(),
      ),
    );
    expect(diagnostics(fw)).toEqual([]);
  });
});
