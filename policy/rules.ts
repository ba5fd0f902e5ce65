// The rules of the agent-host policy pack as pure functions: a resource's type and inputs (plus
// the few settings a person states on purpose) in, violation messages out. No Pulumi import, so
// tests call them directly and policy/index.ts only adapts them to @pulumi/policy.
import { parse as parseYaml } from "yaml";
import { gunzipSync } from "zlib";
import { checkTimeZone } from "../schedule";
import {
  CLOUD_PLATFORM_SCOPE,
  COMPUTE_SERVICE_AGENT_RE,
  VERTEX_ROLE,
  WHOLE_NUMBER_RE,
  ipv4Network,
  parseIpv4,
  secretShapesIn,
} from "../shared-rules";

/** Resource inputs as the policy framework hands them over: plain JSON, secrets unwrapped. */
export type Inputs = Readonly<Record<string, unknown>>;

/** What a person stated on purpose; everything else is checked without exceptions. */
export interface RuleSettings {
  /**
   * SSH from 0.0.0.0/0 is intended: the stack config lists `0.0.0.0/0` itself in
   * sshSourceRanges (the only way the stack opens it), or the policy config says
   * `allowWorldSsh: true` on ssh-not-open-to-world.
   */
  allowWorldSsh: boolean;
  /** The stack config sets `snapshotRetentionDays` to 0: the data disk runs without snapshots. */
  snapshotsOff: boolean;
  /**
   * The stack config sets `claudeProvider` to `vertex`: the agents call Claude on Vertex AI, which
   * takes only the cloud-platform scope. no-broad-scopes then lets that one scope through, and
   * cloud-platform-narrow-roles holds the service account's grants to NARROW_ROLES instead.
   */
  claudeOnVertex: boolean;
}

export const STRICT: RuleSettings = {
  allowWorldSsh: false,
  snapshotsOff: false,
  claudeOnVertex: false,
};

export const FIREWALL = "gcp:compute/firewall:Firewall";
export const INSTANCE = "gcp:compute/instance:Instance";
export const INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate";
export const DISK = "gcp:compute/disk:Disk";
export const RESOURCE_POLICY = "gcp:compute/resourcePolicy:ResourcePolicy";
export const INSTANCE_IAM_MEMBER = "gcp:compute/instanceIAMMember:InstanceIAMMember";
/** Project-level IAM resources: a grant here reaches every VM in the project. */
export const PROJECT_IAM_TYPES = [
  "gcp:projects/iAMMember:IAMMember",
  "gcp:projects/iAMBinding:IAMBinding",
];
export const DISK_POLICY_ATTACHMENT =
  "gcp:compute/diskResourcePolicyAttachment:DiskResourcePolicyAttachment";

/** Types that carry a VM's settings (same input names on a VM and on a template). */
const VM_TYPES = [INSTANCE, INSTANCE_TEMPLATE];

/** The policy config file a person writes to allow SSH from the whole internet on purpose. */
export const ALLOW_WORLD_SSH_HINT =
  'list 0.0.0.0/0 itself in the stack config (pulumi config set --path \'sshSourceRanges[0]\' 0.0.0.0/0), or set allowWorldSsh: true for ssh-not-open-to-world in a policy config file passed with --policy-pack-config (e.g. {"ssh-not-open-to-world": {"allowWorldSsh": true}})';

/** Whether the stack config's sshSourceRanges (a JSON list) names 0.0.0.0/0 itself. */
function configListsWorld(raw: string | undefined): boolean {
  try {
    const ranges: unknown = JSON.parse(raw ?? "[]");
    return Array.isArray(ranges) && ranges.includes("0.0.0.0/0");
  } catch {
    return false;
  }
}

/**
 * Derives the settings from the stack's configuration (`agent-host:<key>` → raw string, as
 * `pulumi.runtime.allConfig()` gives it) and the ssh-not-open-to-world policy's config.
 */
export function settingsFrom(
  stackConfig: Readonly<Record<string, string | undefined>>,
  sshPolicyConfig: { allowWorldSsh?: unknown } = {},
): RuleSettings {
  const retention = stackConfig["agent-host:snapshotRetentionDays"]?.trim();
  return {
    allowWorldSsh:
      sshPolicyConfig.allowWorldSsh === true ||
      configListsWorld(stackConfig["agent-host:sshSourceRanges"]),
    // As config.ts reads it: -0 and 00 are 0 too.
    snapshotsOff:
      retention !== undefined && WHOLE_NUMBER_RE.test(retention) && Number(retention) === 0,
    claudeOnVertex: stackConfig["agent-host:claudeProvider"]?.trim() === "vertex",
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function metadataOf(inputs: Inputs): Record<string, unknown> {
  return isObject(inputs.metadata) ? inputs.metadata : {};
}

const show = (value: unknown) => JSON.stringify(value);

// ---------------------------------------------------------------------------------------------
// ssh-not-open-to-world

/** Parses an IPv4 CIDR (a bare address is /32) into its first address and size; undefined if not IPv4. */
function ipv4Range(cidr: string): { start: number; size: number } | undefined {
  const parsed = parseIpv4(cidr.trim());
  if (!parsed) return undefined;
  const prefix = parsed.prefix ?? 32;
  // GCE keeps only the network part: 1.2.3.4/0 is 0.0.0.0/0.
  return { start: ipv4Network(parsed.address, prefix), size: 2 ** (32 - prefix) };
}

/** True when the ranges together cover every IPv4 address, or one is an IPv6 /0. */
export function coversWholeInternet(ranges: readonly string[]): boolean {
  if (ranges.some((r) => /^[0-9a-f:]*:[0-9a-f:]*\/0+$/i.test(r.trim()))) return true;
  const intervals = ranges
    .map(ipv4Range)
    .filter((r): r is { start: number; size: number } => r !== undefined)
    .sort((a, b) => a.start - b.start);
  let covered = 0;
  for (const { start, size } of intervals) {
    if (start > covered) return false;
    covered = Math.max(covered, start + size);
  }
  return covered >= 2 ** 32;
}

/** Whether one `allows` entry opens tcp:22 (named, in a range, or as "all ports"). */
function allowsSsh(allow: unknown): boolean {
  if (!isObject(allow)) return false;
  const protocol = String(allow.protocol ?? "").toLowerCase();
  if (protocol !== "tcp" && protocol !== "all" && protocol !== "6") return false;
  const ports = stringList(allow.ports);
  if (ports.length === 0) return true;
  return ports.some((spec) => {
    const range = /^(\d+)(?:-(\d+))?$/.exec(spec.trim());
    if (!range) return false;
    const low = Number(range[1]);
    const high = range[2] === undefined ? low : Number(range[2]);
    return low <= 22 && 22 <= high;
  });
}

export function sshNotOpenToWorld(
  type: string,
  inputs: Inputs,
  settings: RuleSettings = STRICT,
): string[] {
  if (type !== FIREWALL || settings.allowWorldSsh) return [];
  if (String(inputs.direction ?? "INGRESS").toUpperCase() !== "INGRESS") return [];
  if (inputs.disabled === true) return [];
  const allows = Array.isArray(inputs.allows) ? inputs.allows : [];
  if (!allows.some(allowsSsh)) return [];
  const ranges = stringList(inputs.sourceRanges);
  const fix = `Restrict sourceRanges to named networks (your address as /32, or IAP's 35.235.240.0/20: pulumi config set --path 'sshSourceRanges[0]' 203.0.113.7/32), or, if the whole internet is intended, ${ALLOW_WORLD_SSH_HINT}.`;
  if (ranges.length === 0) {
    if (stringList(inputs.sourceTags).length > 0) return [];
    if (stringList(inputs.sourceServiceAccounts).length > 0) return [];
    return [
      `Firewall allows SSH (tcp:22) from the whole internet: it has no sourceRanges, sourceTags or sourceServiceAccounts, so GCE uses 0.0.0.0/0. ${fix}`,
    ];
  }
  if (!coversWholeInternet(ranges)) return [];
  return [
    `Firewall allows SSH (tcp:22) from the whole internet: sourceRanges ${show(ranges)}. ${fix}`,
  ];
}

// ---------------------------------------------------------------------------------------------
// shielded-vm

export function shieldedVm(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const config = isObject(inputs.shieldedInstanceConfig) ? inputs.shieldedInstanceConfig : {};
  const off = ["enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring"].filter(
    (key) => config[key] !== true,
  );
  if (off.length === 0) return [];
  return [
    `Shielded VM is not fully on: shieldedInstanceConfig.${off.join(", ")} must be true (got ${off
      .map((key) => `${key}=${show(config[key] ?? null)}`)
      .join(
        ", ",
      )}). Set shieldedInstanceConfig { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true } on a Shielded VM image (Ubuntu's GCE images are).`,
  ];
}

// ---------------------------------------------------------------------------------------------
// no-default-service-account, no-broad-scopes

const DEFAULT_COMPUTE_SA = /^\d+-compute@developer\.gserviceaccount\.com$/;

export function noDefaultServiceAccount(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const fix =
    "Create a dedicated service account (gcp.serviceaccount.Account) with only the roles the VM needs and set serviceAccount.email to it.";
  if (!isObject(inputs.serviceAccount)) {
    return [
      `The VM has no serviceAccount block, so nothing pins its identity (the console and gcloud attach the default compute service account). ${fix}`,
    ];
  }
  const email = inputs.serviceAccount.email;
  if (typeof email !== "string" || email.trim() === "") {
    return [
      `serviceAccount.email is not set, so GCE uses the project's default compute service account (Editor on the project by default). ${fix}`,
    ];
  }
  if (DEFAULT_COMPUTE_SA.test(email.trim())) {
    return [
      `serviceAccount.email is the default compute service account ${show(email)} (Editor on the project by default). ${fix}`,
    ];
  }
  return [];
}

/** Short name of a scope: the URL's last part, with gcloud's aliases resolved. */
function scopeName(scope: string): string {
  const short = scope.trim().replace(/^https:\/\/www\.googleapis\.com\/auth\//, "");
  const aliases: Record<string, string> = {
    "compute-rw": "compute",
    "storage-full": "devstorage.full_control",
    "storage-rw": "devstorage.read_write",
    "sql-admin": "sqlservice.admin",
  };
  return aliases[short] ?? short;
}

/** The scope the stack gives a VM whose agents use Vertex AI, by its short name. */
const CLOUD_PLATFORM_NAME = scopeName(CLOUD_PLATFORM_SCOPE);

/** Scopes that reach far beyond writing logs and metrics. */
const BROAD_SCOPES = new Set([
  "cloud-platform",
  "cloud-platform.read-only",
  "compute",
  "devstorage.full_control",
  "devstorage.read_write",
  "iam",
  "sqlservice.admin",
  "source.full_control",
  "source.read_write",
]);

export function noBroadScopes(
  type: string,
  inputs: Inputs,
  settings: RuleSettings = STRICT,
): string[] {
  if (!VM_TYPES.includes(type) || !isObject(inputs.serviceAccount)) return [];
  const broad = stringList(inputs.serviceAccount.scopes).filter((scope) => {
    const name = scopeName(scope);
    // Vertex AI accepts no narrower scope; cloud-platform-narrow-roles bounds it by IAM instead.
    if (name === CLOUD_PLATFORM_NAME && settings.claudeOnVertex) return false;
    return BROAD_SCOPES.has(name) || /full_control$|\.admin$/.test(name);
  });
  if (broad.length === 0) return [];
  const vertexHint = broad.some((scope) => scopeName(scope) === CLOUD_PLATFORM_NAME)
    ? " cloud-platform alone is accepted only when the stack config sets claudeProvider to vertex (pulumi config set claudeProvider vertex), and then cloud-platform-narrow-roles limits the account's roles."
    : "";
  return [
    `serviceAccount.scopes include broad scopes ${show(broad)}: any process on the VM (every agent) can use them through the metadata server. Keep only what the VM needs (the agent-host VM calls no Google API and needs no scope), and grant IAM roles to the dedicated service account.${vertexHint}`,
  ];
}

// ---------------------------------------------------------------------------------------------
// block-project-ssh-keys, serial-port-off, no-startup-script, no-ip-forwarding

export function blockProjectSshKeys(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const value = metadataOf(inputs)["block-project-ssh-keys"];
  if (String(value ?? "").toLowerCase() === "true") return [];
  return [
    `metadata["block-project-ssh-keys"] must be "TRUE" (got ${show(value ?? null)}): otherwise every project-wide SSH key logs in to this VM. Set metadata { "block-project-ssh-keys": "TRUE" }.`,
  ];
}

export function serialPortOff(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const metadata = metadataOf(inputs);
  if (!("serial-port-enable" in metadata)) return [];
  const value = metadata["serial-port-enable"];
  if (["false", "0"].includes(String(value ?? "").toLowerCase())) return [];
  return [
    `metadata["serial-port-enable"] is ${show(value ?? null)}: the interactive serial console bypasses the firewall and SSH keys. Remove the key or set it to "FALSE".`,
  ];
}

export function noStartupScript(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const found: string[] = [];
  if (typeof inputs.metadataStartupScript === "string" && inputs.metadataStartupScript !== "") {
    found.push("metadataStartupScript");
  }
  const metadata = metadataOf(inputs);
  for (const key of ["startup-script", "startup-script-url"]) {
    if (key in metadata) found.push(`metadata["${key}"]`);
  }
  if (found.length === 0) return [];
  return [
    `${found.join(" and ")} set: a startup script runs as root on every boot, and metadataStartupScript replaces the VM on any change. Provision through cloud-init (metadata["user-data"]) and make day-2 changes through the reconcile command.`,
  ];
}

export function noIpForwarding(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  if (inputs.canIpForward === undefined || inputs.canIpForward === false) return [];
  return [
    `canIpForward is ${show(inputs.canIpForward)}: the VM could route traffic for other addresses. Set canIpForward: false.`,
  ];
}

// ---------------------------------------------------------------------------------------------
// no-secrets-in-metadata

/** user-data as cloud-init reads it: decoded when `user-data-encoding: base64`, gunzipped if gzip. */
function decodedUserData(value: string): string | undefined {
  try {
    const bytes = Buffer.from(value, "base64");
    const plain = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
    return plain.toString("utf8");
  } catch {
    return undefined;
  }
}

/**
 * The write_files entries of a #cloud-config whose content is encoded, as cloud-init writes
 * them (cloudinit/config/cc_write_files.py, canonicalize_extraction and extract_contents:
 * b64/base64, gz+b64 and its spellings: base64-decode, then gunzip). A secret must not hide
 * from this rule by being compressed; the stack itself ships its host files gz+b64.
 */
function encodedWriteFiles(userData: string): [path: string, text: string][] {
  let document: unknown;
  try {
    document = parseYaml(userData);
  } catch {
    return [];
  }
  const files = (document as { write_files?: unknown } | null)?.write_files;
  if (!Array.isArray(files)) return [];
  return files.flatMap((file: unknown): [string, string][] => {
    const { path, content, encoding } = (file ?? {}) as Record<string, unknown>;
    const kind = String(encoding ?? "")
      .toLowerCase()
      .trim();
    const base64 = /^((gz|gzip)\+)?(b64|base64)$/.test(kind);
    const gzip = /^(gz|gzip)(\+(b64|base64))?$/.test(kind);
    if (!base64 && !gzip) return [];
    try {
      const bytes: Buffer | undefined =
        typeof content === "string"
          ? Buffer.from(content, base64 ? "base64" : "utf8")
          : content instanceof Uint8Array
            ? Buffer.from(content)
            : undefined;
      if (bytes === undefined) return [];
      const plain: Buffer = gzip ? gunzipSync(bytes) : bytes;
      return [[String(path), plain.toString("utf8")]];
    } catch {
      return [];
    }
  });
}

export function noSecretsInMetadata(type: string, inputs: Inputs): string[] {
  if (!VM_TYPES.includes(type)) return [];
  const metadata = metadataOf(inputs);
  const texts: [where: string, text: string][] = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") continue;
    texts.push([`metadata[${show(key)}]`, value]);
    if (key !== "user-data") continue;
    let plain: string | undefined = value;
    if (String(metadata["user-data-encoding"]).toLowerCase() === "base64") {
      plain = decodedUserData(value);
      if (plain !== undefined) texts.push([`metadata["user-data"] (decoded)`, plain]);
    }
    for (const [path, text] of plain === undefined ? [] : encodedWriteFiles(plain)) {
      texts.push([`metadata["user-data"] write_files ${show(path)} (decoded)`, text]);
    }
  }
  if (typeof inputs.metadataStartupScript === "string") {
    texts.push(["metadataStartupScript", inputs.metadataStartupScript]);
  }
  const messages: string[] = [];
  for (const [where, text] of texts) {
    for (const label of secretShapesIn(text)) {
      messages.push(
        `${where} holds text shaped like ${label}. Instance metadata is plain text to anyone who can view the VM and to every process on it (the metadata server); ship secrets on the reconcile command's stdin from secret config (pulumi config set --secret …) instead, and rotate this one.`,
      );
    }
  }
  return messages;
}

// ---------------------------------------------------------------------------------------------
// instance-schedule-valid and schedule-grant-on-instance-only (work hours)

/** A unix-cron line as GCE's instance schedules take it: five fields. */
const CRON_RE = /^(\S+\s+){4}\S+$/;
const CRON_FIELD_RE =
  /^(\*|\d{1,2}(-\d{1,2})?)(\/\d{1,2})?(,(\*|\d{1,2}(-\d{1,2})?)(\/\d{1,2})?)*$/;

/** GCE wants a tz database name; Node's ICU holds the same database. */
function isTimeZone(zone: unknown): boolean {
  return typeof zone === "string" && checkTimeZone(zone).valid;
}

export function instanceScheduleValid(type: string, inputs: Inputs): string[] {
  if (type !== RESOURCE_POLICY || !isObject(inputs.instanceSchedulePolicy)) return [];
  const policy = inputs.instanceSchedulePolicy;
  const messages: string[] = [];
  if (!isTimeZone(policy.timeZone)) {
    messages.push(
      `The instance schedule's timeZone ${show(policy.timeZone)} is not a tz database name (e.g. Europe/Berlin): GCE refuses it. Fix workTimeZone in the stack config.`,
    );
  }
  const crons = ["vmStartSchedule", "vmStopSchedule"]
    .filter((key) => policy[key] !== undefined)
    .map((key) => [key, isObject(policy[key]) ? policy[key].schedule : undefined] as const);
  if (crons.length === 0) {
    messages.push("The instance schedule has neither vmStartSchedule nor vmStopSchedule.");
  }
  for (const [key, cron] of crons) {
    if (
      typeof cron !== "string" ||
      !CRON_RE.test(cron.trim()) ||
      !cron
        .trim()
        .split(/\s+/)
        .every((field) => CRON_FIELD_RE.test(field))
    ) {
      messages.push(
        `The instance schedule's ${key} ${show(cron)} is not a five-field unix-cron line (minute hour day month weekday).`,
      );
    }
  }
  return messages;
}

/**
 * The service agent's start/stop grant belongs on the VM: a project-wide one lets every instance
 * schedule in the project start and stop every VM in it.
 */
export function scheduleGrantOnInstanceOnly(type: string, inputs: Inputs): string[] {
  if (!PROJECT_IAM_TYPES.includes(type)) return [];
  const members = [inputs.member, ...stringList(inputs.members)].filter(
    (m): m is string => typeof m === "string",
  );
  const agents = members.filter((m) => COMPUTE_SERVICE_AGENT_RE.test(m));
  return agents.map(
    (member) =>
      `The Compute Engine Service Agent (${member}) gets ${show(inputs.role)} on the whole project; grant the work-hour schedule's start/stop on the VM only (compute.InstanceIAMMember).`,
  );
}

// ---------------------------------------------------------------------------------------------
// The resource rules, named as the policy pack names them.

export interface ResourceRule {
  name: string;
  description: string;
  check(type: string, inputs: Inputs, settings: RuleSettings): string[];
}

export const RESOURCE_RULES: readonly ResourceRule[] = [
  {
    name: "ssh-not-open-to-world",
    description:
      "No firewall rule opens SSH (tcp:22, or all ports) to 0.0.0.0/0 unless the stack config lists 0.0.0.0/0 in sshSourceRanges or allowWorldSsh is set in the policy config.",
    check: sshNotOpenToWorld,
  },
  {
    name: "shielded-vm",
    description: "The VM is a Shielded VM: secure boot, vTPM and integrity monitoring on.",
    check: shieldedVm,
  },
  {
    name: "no-default-service-account",
    description: "The VM runs as a dedicated service account, not the default compute one.",
    check: noDefaultServiceAccount,
  },
  {
    name: "no-broad-scopes",
    description: "The VM's service account has no broad OAuth scopes (cloud-platform, compute, …).",
    check: noBroadScopes,
  },
  {
    name: "block-project-ssh-keys",
    description: "Project-wide SSH keys cannot log in to the VM.",
    check: blockProjectSshKeys,
  },
  {
    name: "serial-port-off",
    description: "The interactive serial console is off.",
    check: serialPortOff,
  },
  {
    name: "no-startup-script",
    description: "No metadataStartupScript and no startup-script metadata: cloud-init provisions.",
    check: noStartupScript,
  },
  {
    name: "no-ip-forwarding",
    description: "The VM does not forward IP traffic (canIpForward false).",
    check: noIpForwarding,
  },
  {
    name: "no-secrets-in-metadata",
    description:
      "No secret-looking text (API keys, private keys, cloud credentials) in instance metadata.",
    check: noSecretsInMetadata,
  },
  {
    name: "instance-schedule-valid",
    description:
      "A work-hour instance schedule has a tz database time zone and five-field cron lines.",
    check: instanceScheduleValid,
  },
  {
    name: "schedule-grant-on-instance-only",
    description:
      "The Compute Engine Service Agent gets no project-wide role; the schedule's start/stop is granted on the VM.",
    check: scheduleGrantOnInstanceOnly,
  },
];

/** Every resource rule's violations for one resource, tagged with the rule's name. */
export function checkResource(
  type: string,
  inputs: Inputs,
  settings: RuleSettings = STRICT,
): { policy: string; message: string }[] {
  return RESOURCE_RULES.flatMap((rule) =>
    rule.check(type, inputs, settings).map((message) => ({ policy: rule.name, message })),
  );
}

// ---------------------------------------------------------------------------------------------
// data-disk-snapshots (a stack rule: it relates disks, attachments and resource policies)

export interface StackResource {
  type: string;
  /** Inputs (or, in a stack validation, outputs): plain JSON. */
  props: Inputs;
  urn?: string;
}

export const DATA_DISK_SNAPSHOTS = {
  name: "data-disk-snapshots",
  description:
    "Every disk that is not a boot disk has a snapshot schedule attached, unless the stack config sets snapshotRetentionDays to 0.",
};

/** The last path segment: a disk or policy given as a name, a partial or a full self link. */
const lastSegment = (value: unknown) =>
  typeof value === "string" ? value.replace(/^.*\//, "") : "";

export function dataDiskSnapshots(
  resources: readonly StackResource[],
  settings: RuleSettings = STRICT,
): { urn?: string; message: string }[] {
  if (settings.snapshotsOff) return [];
  const bootDisks = new Set(
    resources
      .filter((r) => VM_TYPES.includes(r.type) && isObject(r.props.bootDisk))
      .map((r) => lastSegment((r.props.bootDisk as Record<string, unknown>).source))
      .filter((name) => name !== ""),
  );
  const attachments = resources.filter((r) => r.type === DISK_POLICY_ATTACHMENT);
  const policies = new Map(
    resources
      .filter((r) => r.type === RESOURCE_POLICY)
      .map((r) => [lastSegment(r.props.name), r.props] as const),
  );
  const violations: { urn?: string; message: string }[] = [];
  for (const disk of resources.filter((r) => r.type === DISK)) {
    const name = lastSegment(disk.props.name);
    // A disk made from an image, or booted from, is a boot disk: it holds no workspaces.
    if (typeof disk.props.image === "string" || bootDisks.has(name)) continue;
    const label = name ? `Disk ${show(name)}` : "A disk";
    const attached = attachments.filter(
      (a) =>
        lastSegment(a.props.disk) === name &&
        (a.props.zone === undefined ||
          disk.props.zone === undefined ||
          a.props.zone === disk.props.zone),
    );
    if (attached.length === 0) {
      violations.push({
        urn: disk.urn,
        message: `${label} (not a boot disk) has no snapshot schedule: no DiskResourcePolicyAttachment names it, so a deleted or corrupted disk loses every workspace. Attach a compute.ResourcePolicy with a snapshotSchedulePolicy (pulumi config set snapshotRetentionDays 7), or set snapshotRetentionDays to 0 in the stack config to run without snapshots on purpose.`,
      });
      continue;
    }
    const withoutSchedule = attached
      .map((a) => lastSegment(a.props.name))
      .filter(
        (policy) => policies.has(policy) && !isObject(policies.get(policy)?.snapshotSchedulePolicy),
      );
    if (withoutSchedule.length === attached.length) {
      violations.push({
        urn: disk.urn,
        message: `${label} is attached only to resource policies without a snapshotSchedulePolicy (${show(withoutSchedule)}). Give the policy a snapshotSchedulePolicy.`,
      });
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// work-hours-can-run (a stack rule: it relates the schedule, the VM and the IAM grant)

export const WORK_HOURS_CAN_RUN = {
  name: "work-hours-can-run",
  description:
    "A VM with an instance schedule attached lets the Compute Engine Service Agent start and stop it (an InstanceIAMMember on that VM); without it the schedule silently does nothing.",
};

export function workHoursCanRun(
  resources: readonly StackResource[],
): { urn?: string; message: string }[] {
  const schedules = new Set(
    resources
      .filter((r) => r.type === RESOURCE_POLICY && isObject(r.props.instanceSchedulePolicy))
      .map((r) => lastSegment(r.props.name)),
  );
  const grants = resources.filter(
    (r) =>
      r.type === INSTANCE_IAM_MEMBER &&
      typeof r.props.member === "string" &&
      COMPUTE_SERVICE_AGENT_RE.test(r.props.member),
  );
  const violations: { urn?: string; message: string }[] = [];
  for (const vm of resources.filter((r) => r.type === INSTANCE)) {
    const attached = [vm.props.resourcePolicies, ...stringList(vm.props.resourcePolicies)]
      .map(lastSegment)
      .filter((name) => schedules.has(name));
    if (attached.length === 0) continue;
    const name = lastSegment(vm.props.name);
    if (!grants.some((g) => lastSegment(g.props.instanceName) === name)) {
      violations.push({
        urn: vm.urn,
        message: `VM ${show(name)} follows the instance schedule ${show(attached[0])}, but no InstanceIAMMember lets the Compute Engine Service Agent start and stop it: GCE would skip every scheduled start and stop.`,
      });
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// cloud-platform-narrow-roles (a stack rule: it relates the VM, its service account and grants)

export const SERVICE_ACCOUNT = "gcp:serviceaccount/account:Account";

/**
 * The roles a VM with the cloud-platform scope may hold, each with why it is narrow. With
 * cloud-platform, scopes no longer limit anything: the account's IAM roles are exactly what
 * every process on the VM (every agent) can do through the metadata server.
 */
export const NARROW_ROLES: Readonly<Record<string, string>> = {
  [VERTEX_ROLE]:
    "call Vertex AI models (aiplatform.endpoints.predict, aiplatform.endpoints.computeTokens): Claude",
  "roles/logging.logWriter": "write log entries",
  "roles/monitoring.metricWriter": "write metrics",
};
export const CLOUD_PLATFORM_NARROW_ROLES = {
  name: "cloud-platform-narrow-roles",
  description: `A VM with the cloud-platform scope runs as a service account this stack creates, which this stack grants ${VERTEX_ROLE} and no role outside a short list of narrow ones (IAM alone then bounds what the VM can do).`,
};

/** Grants made by the resources of the stack to `member`: role, and where it came from. */
function grantsTo(
  resources: readonly StackResource[],
  member: string,
): { role: string; urn?: string; type: string }[] {
  const grants: { role: string; urn?: string; type: string }[] = [];
  for (const r of resources) {
    if (/\/iAM(Member|Binding):/.test(r.type)) {
      const members = [r.props.member, ...stringList(r.props.members)];
      if (members.includes(member)) {
        grants.push({ role: String(r.props.role ?? ""), urn: r.urn, type: r.type });
      }
    } else if (/\/iAMPolicy:/.test(r.type) && typeof r.props.policyData === "string") {
      // A whole policy document: read its bindings the way IAM does.
      let bindings: unknown = [];
      try {
        bindings = (JSON.parse(r.props.policyData) as { bindings?: unknown }).bindings ?? [];
      } catch {
        bindings = [];
      }
      for (const binding of Array.isArray(bindings) ? bindings : []) {
        if (isObject(binding) && stringList(binding.members).includes(member)) {
          grants.push({ role: String(binding.role ?? ""), urn: r.urn, type: r.type });
        }
      }
    }
  }
  return grants;
}

/**
 * A service account's email: its output, or (from its inputs, before it exists) what GCP makes of
 * a user-managed account's id and project, <accountId>@<project>.iam.gserviceaccount.com.
 */
function accountEmail(account: StackResource): string | undefined {
  const { email, accountId, project } = account.props;
  if (typeof email === "string") return email;
  if (typeof accountId === "string" && typeof project === "string") {
    return `${accountId}@${project}.iam.gserviceaccount.com`;
  }
  return undefined;
}

export function cloudPlatformNarrowRoles(
  resources: readonly StackResource[],
): { urn?: string; message: string }[] {
  const violations: { urn?: string; message: string }[] = [];
  for (const vm of resources.filter((r) => VM_TYPES.includes(r.type))) {
    const account = isObject(vm.props.serviceAccount) ? vm.props.serviceAccount : {};
    if (!stringList(account.scopes).some((scope) => scopeName(scope) === CLOUD_PLATFORM_NAME)) {
      continue;
    }
    const email = typeof account.email === "string" ? account.email.trim() : "";
    const label = `The VM ${show(lastSegment(vm.props.name))} has the cloud-platform scope`;
    const created = resources.some((r) => r.type === SERVICE_ACCOUNT && accountEmail(r) === email);
    if (!created) {
      violations.push({
        urn: vm.urn,
        message: `${label} and runs as ${show(email)}, which this stack does not create: roles granted to it elsewhere would all reach every process on the VM. Run it as a dedicated gcp.serviceaccount.Account of this stack.`,
      });
      continue;
    }
    const grants = grantsTo(resources, `serviceAccount:${email}`);
    const broad = grants.filter((g) => !(g.role in NARROW_ROLES));
    for (const grant of broad) {
      violations.push({
        urn: grant.urn ?? vm.urn,
        message: `${label}, so its service account ${email} can use all of ${show(grant.role)} (granted by ${grant.type}) from any process on the VM. With cloud-platform only these roles are allowed: ${Object.keys(NARROW_ROLES).join(", ")}. Remove the grant, or drop the scope.`,
      });
    }
    // The role that justifies cloud-platform: without it nothing on the VM needs the scope.
    if (!grants.some((g) => g.role === VERTEX_ROLE)) {
      violations.push({
        urn: vm.urn,
        message: `${label} but its service account ${email} is not granted ${VERTEX_ROLE}: nothing on the VM needs cloud-platform. Give the VM no scopes (nothing on it calls a Google API), or set claudeProvider to vertex.`,
      });
    }
  }
  return violations;
}
