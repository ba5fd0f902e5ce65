// The agent-host policy pack: `pulumi preview --policy-pack policy`. Every rule lives in
// rules.ts as a pure function; this file only hands them the resource and the settings.
import * as pulumi from "@pulumi/pulumi";
import {
  PolicyPack,
  type ResourceValidationPolicy,
  type StackValidationPolicy,
} from "@pulumi/policy";
import {
  CLOUD_PLATFORM_NARROW_ROLES,
  DATA_DISK_SNAPSHOTS,
  RESOURCE_RULES,
  WORK_HOURS_CAN_RUN,
  cloudPlatformNarrowRoles,
  dataDiskSnapshots,
  settingsFrom,
  workHoursCanRun,
  type RuleSettings,
} from "./rules";

// Pulumi hands a policy pack the stack's configuration (PULUMI_CONFIG): the pack sees
// `agent-host:snapshotRetentionDays` exactly as the program does.
function settings(sshPolicyConfig: { allowWorldSsh?: unknown } = {}): RuleSettings {
  return settingsFrom(pulumi.runtime.allConfig(), sshPolicyConfig);
}

const resourcePolicies: ResourceValidationPolicy[] = RESOURCE_RULES.map((rule) => ({
  name: rule.name,
  description: rule.description,
  ...(rule.name === "ssh-not-open-to-world"
    ? {
        configSchema: {
          properties: {
            allowWorldSsh: {
              type: "boolean",
              default: false,
              description: "SSH from 0.0.0.0/0 is intended for this stack.",
            },
          },
        },
      }
    : {}),
  validateResource: (args, reportViolation) => {
    const config = args.getConfig<{ allowWorldSsh?: unknown }>();
    for (const message of rule.check(args.type, args.props, settings(config))) {
      reportViolation(message);
    }
  },
}));

const snapshotPolicy: StackValidationPolicy = {
  ...DATA_DISK_SNAPSHOTS,
  validateStack: (args, reportViolation) => {
    const resources = args.resources.map((r) => ({ type: r.type, props: r.props, urn: r.urn }));
    for (const { urn, message } of dataDiskSnapshots(resources, settings())) {
      reportViolation(message, urn);
    }
  },
};

const workHoursPolicy: StackValidationPolicy = {
  ...WORK_HOURS_CAN_RUN,
  validateStack: (args, reportViolation) => {
    const resources = args.resources.map((r) => ({ type: r.type, props: r.props, urn: r.urn }));
    for (const { urn, message } of workHoursCanRun(resources)) reportViolation(message, urn);
  },
};

const cloudPlatformPolicy: StackValidationPolicy = {
  ...CLOUD_PLATFORM_NARROW_ROLES,
  validateStack: (args, reportViolation) => {
    const resources = args.resources.map((r) => ({ type: r.type, props: r.props, urn: r.urn }));
    for (const { urn, message } of cloudPlatformNarrowRoles(resources)) {
      reportViolation(message, urn);
    }
  },
};

new PolicyPack("agent-host", {
  description:
    "Guardrails of the agent-host stack: SSH only from named ranges, Shielded VM, a dedicated service account with narrow scopes (cloud-platform only for Claude on Vertex AI, with narrow roles), no project SSH keys, no serial port, no startup script, no IP forwarding, no secrets in metadata, snapshots of the data disk, work hours that can run with a grant on the VM only.",
  enforcementLevel: "mandatory",
  policies: [...resourcePolicies, snapshotPolicy, workHoursPolicy, cloudPlatformPolicy],
});
