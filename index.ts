// agent-host: one GCP VM running a team's Claude Code agents, one tmux window and workspace each.
// Configuration is read and validated here, once, before any resource is registered; the
// components get typed arguments. See README.md for the keys and the outputs.
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { AgentFleet } from "./components/agent-fleet";
import { AgentHost } from "./components/agent-host";
import { fingerprint } from "./components/host-key";
import { sshCommands } from "./components/ssh-commands";
import { startCommand, stoppedVmMessage, type VmLocation } from "./components/vm-status";
import { readHostFiles } from "./cloud-init/files";
import { ADMIN_USER_NAME, hostSettingsFor, renderHostConf } from "./cloud-init/host-config";
import { encodeUserData, renderUserData } from "./cloud-init/render";
import {
  agentCountOf,
  checkDataDisk,
  ConfigError,
  hostNamesFor,
  parseConfig,
  resourceNames,
  type HostNames,
  type RawConfig,
  type StackConfig,
} from "./config";
import { CONFIG_KEY_TABLE, type ConfigKeySpec } from "./config-keys";
import { OPENSSH_PRIVATE_KEY_RE } from "./shared-rules";

/** Keys whose values must be stored encrypted (`pulumi config set --secret`): config-keys.ts's. */
const SECRET_KEYS = Object.entries(CONFIG_KEY_TABLE)
  .filter(([, spec]: [string, ConfigKeySpec]) => spec.secret)
  .map(([key]) => key);

// The SDK marks isConfigSecret @internal (absent from its typings) but exports it at run time;
// it is how `config.getSecret` knows. Without it the plain-text check is skipped.
const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean })
  .isConfigSecret;

function readRawConfig(): RawConfig {
  const raw = pulumi.runtime.allConfig();
  for (const key of SECRET_KEYS) {
    const full = `agent-host:${key}`;
    // The CLI applies Pulumi.yaml's "" default to an unset key: only a value needs encrypting.
    if (raw[full] && isConfigSecret && !isConfigSecret(full)) {
      throw new ConfigError(
        `${key} is stored in plain text in the stack's config file. Remove it with: pulumi config rm ${key}, then set it with: pulumi config set --secret ${key} <value>`,
      );
    }
  }
  return raw;
}

/** Size and type of the data disk this stack already has, if any (it cannot shrink). */
async function existingDataDisk(config: StackConfig, diskName: string) {
  try {
    const disk = await gcp.compute.getDisk({
      project: config.project,
      zone: config.zone,
      name: diskName,
    });
    // GCP answers a missing disk with a 404; the SDK's mocks answer with an empty result.
    if (!disk.size) return undefined;
    return { sizeGb: disk.size, type: disk.type.replace(/^.*\//, "") };
  } catch (error) {
    if (/not ?found|404|notFound/i.test(String(error))) return undefined;
    throw error;
  }
}

/** The VM's live state (RUNNING, TERMINATED, …), or undefined when there is no VM yet. */
async function liveInstanceStatus(vm: VmLocation): Promise<string | undefined> {
  try {
    const instance = await gcp.compute.getInstance({
      project: vm.project,
      zone: vm.zone,
      name: vm.name,
    });
    return instance.currentStatus || undefined;
  } catch (error) {
    if (/not ?found|404|notFound/i.test(String(error))) return undefined;
    throw error;
  }
}

/** Set by scripts/destroy.sh: its targeted `up` records an option in the state and dials nothing. */
const ALLOW_STOPPED_VM_ENV = "AGENT_HOST_ALLOW_STOPPED_VM";

/**
 * A stopped VM: fail now, with the way out, instead of dialing SSH for minutes. A preview dials
 * nothing, so it only warns (as does scripts/destroy.sh's targeted up).
 */
async function refuseStoppedVm(vm: VmLocation): Promise<void> {
  const stopped = stoppedVmMessage(vm, await liveInstanceStatus(vm));
  if (!stopped) return;
  if (pulumi.runtime.isDryRun() || process.env[ALLOW_STOPPED_VM_ENV] === "1") {
    pulumi.log.warn(stopped);
  } else {
    // RunError: the CLI prints the message alone, without a stack trace.
    throw new pulumi.RunError(stopped);
  }
}

/** The stack's own deploy key, used by the reconcile command: the one given, else a generated one. */
function deployKeyFor(givenKey: string | undefined): {
  privateKey: pulumi.Output<string>;
  publicKey: pulumi.Output<string>;
} {
  if (givenKey) {
    // The tls provider reads OpenSSH-format keys and PEM (PKCS#1/#8) keys by different args.
    const args = OPENSSH_PRIVATE_KEY_RE.test(givenKey.trim())
      ? { privateKeyOpenssh: pulumi.secret(givenKey) }
      : { privateKeyPem: pulumi.secret(givenKey) };
    return {
      privateKey: pulumi.secret(givenKey),
      publicKey: tls.getPublicKeyOutput(args).publicKeyOpenssh.apply((key) => key.trim()),
    };
  }
  const key = new tls.PrivateKey("deploy-key", { algorithm: "ED25519" });
  return {
    privateKey: key.privateKeyOpenssh,
    publicKey: key.publicKeyOpenssh.apply((k) => k.trim()),
  };
}

/** A secret config value as a secret Output, or undefined when unset. */
const secretInput = (value: string | undefined) => (value ? pulumi.secret(value) : undefined);

/** One host as the program builds it: its names, its VM and its reconcile. */
interface DeployedHost {
  names: HostNames;
  vm: VmLocation;
  agentCount: number;
  host: AgentHost;
  fleet: AgentFleet;
}

/** What every host shares: the config, the deploy key and the rendered user-data. */
interface Shared {
  config: StackConfig;
  raw: RawConfig;
  deployKey: { privateKey: pulumi.Output<string> };
  adminKeys: pulumi.Output<string[]>;
  userData: pulumi.Output<string>;
  /** The host files, read once for every host. */
  files: ReturnType<typeof readHostFiles>;
  projectNumber?: pulumi.Output<string>;
}

/**
 * One host: its VM, data disk, snapshots, address, firewall and identity (AgentHost), and its own
 * reconcile command (AgentFleet). Nothing here refers to another host, so the engine creates,
 * updates and deletes each host's resources independently and in parallel.
 */
function deployHost(shared: Shared, names: HostNames, diskExists: boolean): DeployedHost {
  const { config, raw, deployKey, adminKeys } = shared;
  const vm = { project: config.project, zone: config.zone, name: names.instance };
  const agentCount = agentCountOf(config, names.index);
  const host = new AgentHost(names.resource, {
    project: config.project,
    zone: config.zone,
    region: config.region,
    instanceName: names.instance,
    serviceAccountId: names.serviceAccountId,
    machineType: config.machineType,
    image: config.image,
    bootDiskSizeGb: config.bootDiskSizeGb,
    dataDiskSizeGb: config.dataDiskSizeGb,
    dataDiskType: config.dataDiskType,
    sshSourceRanges: config.sshSourceRanges,
    connectVia: config.connectVia,
    userData: shared.userData,
    spot: config.spot,
    snapshotRetentionDays: config.snapshotRetentionDays,
    deleteDataDiskOnDestroy: config.deleteDataDiskOnDestroy,
    // A disk that outlived a `pulumi destroy` (or a lower hostCount) is adopted, with its data;
    // once it is in the state under the same ID, the engine treats the import as a normal step.
    adoptDataDisk: diskExists,
    vertex: config.claude.provider === "vertex",
    workSchedule: config.workSchedule,
    projectNumber: shared.projectNumber,
  });

  const fleet = new AgentFleet(
    names.resource,
    {
      vm,
      connectVia: config.connectVia,
      host: host.publicIp,
      privateKey: deployKey.privateKey,
      instanceId: host.instanceId,
      agentCount,
      files: shared.files,
      // host.conf follows the host's own agent count (the count and the limits sized from it).
      hostConf: renderHostConf(hostSettingsFor({ ...config, agentCount }, [])),
      adminAuthorizedKeys: adminKeys,
      apiKey: secretInput(raw["agent-host:anthropicApiKey"]),
      gitCredentials: secretInput(raw["agent-host:gitCredentials"]),
      notifyWebhookUrl: secretInput(raw["agent-host:notifyWebhookUrl"]?.trim()),
    },
    { dependsOn: [host] },
  );
  return { names, vm, agentCount, host, fleet };
}

/** The commands a person runs to reach one host (public-ip: ssh; iap: gcloud compute ssh). */
function hostCommands(config: StackConfig, deployed: DeployedHost) {
  const keyFile = `~/.ssh/agent-host-${pulumi.getStack()}`;
  const commands = pulumi.output(deployed.host.publicIp).apply((address) =>
    sshCommands({
      connectVia: config.connectVia,
      user: ADMIN_USER_NAME,
      keyFile,
      address,
      instance: deployed.vm.name,
      zone: deployed.vm.zone,
      project: deployed.vm.project,
    }),
  );
  return {
    keyFile,
    ssh: commands.ssh,
    attach: commands.apply((c) => c.attach()),
    status: commands.status,
    // The dashboard listens on the VM's 127.0.0.1 only: this forwards the same port on the lead's
    // machine to it; `sudo agentctl web --url` prints the link with the token (docs/dashboard.md).
    dashboardTunnel: commands.apply((c) => c.tunnel(config.dashboardPort)),
    agent: (n: number) => commands.apply((c) => c.attach(n)),
  };
}

/** One entry of the `hosts` output: what a person or `npm run agents` needs to reach a host. */
function hostOutput(config: StackConfig, deployed: DeployedHost) {
  const commands = hostCommands(config, deployed);
  // One Output of a plain object: the engine and `pulumi stack output --json` see plain values.
  return pulumi.output({
    name: deployed.names.label,
    instanceName: deployed.host.instanceName,
    // No external address with connectVia iap.
    address: deployed.host.publicIp ?? null,
    zone: deployed.vm.zone,
    project: deployed.vm.project,
    user: ADMIN_USER_NAME,
    identityFile: commands.keyFile,
    sshCommand: commands.ssh,
    attachCommand: commands.attach,
    statusCommand: commands.status,
    dashboardTunnel: commands.dashboardTunnel,
    startCommand: startCommand(deployed.vm),
    agentCount: deployed.agentCount,
    /** The host key the deploy pinned: `npm run agents` trusts this key and no other. */
    sshHostKey: deployed.fleet.hostKey,
  });
}

/**
 * The commands and facts `pulumi stack output` gives (README, Outputs): host 1's under the
 * one-host names they always had, and every host in `hosts`.
 */
function stackOutputs(
  config: StackConfig,
  hosts: DeployedHost[],
  deployKey: { privateKey: pulumi.Output<string> },
) {
  const first = hosts[0];
  const commands = hostCommands(config, first);
  const agentNumbers = Array.from({ length: first.agentCount }, (_, i) => i + 1);
  return {
    instanceName: first.host.instanceName,
    zone: config.zone,
    // No external address with connectVia iap: no publicIp output then.
    ...(first.host.publicIp ? { publicIp: first.host.publicIp } : {}),
    connectVia: config.connectVia,
    sshCommand: commands.ssh,
    attachCommand: commands.attach,
    agentCommands: agentNumbers.map(commands.agent),
    statusCommand: commands.status,
    /** The SSH host key the deploy pinned (OpenSSH form), and its fingerprint to compare. */
    sshHostKey: first.fleet.hostKey,
    sshHostKeyFingerprint: first.fleet.hostKey.apply((key) => (key ? fingerprint(key) : "")),
    dashboardTunnel: commands.dashboardTunnel,
    startCommand: startCommand(first.vm),
    agentCount: first.agentCount,
    reconcileSummary: first.fleet.summary,
    hosts: hosts.map((deployed) => hostOutput(config, deployed)),
    deployPrivateKey: pulumi.secret(deployKey.privateKey),
  };
}

export = async () => {
  const raw = readRawConfig();
  const { config, warnings } = parseConfig(raw);
  for (const warning of warnings) pulumi.log.warn(warning);
  const names = hostNamesFor(
    resourceNames(pulumi.getProject(), pulumi.getStack()),
    config.hostCount,
  );
  // Every host's facts, read side by side before anything is registered.
  const existingDisks = await Promise.all(names.map((n) => existingDataDisk(config, n.dataDisk)));
  for (const existing of existingDisks) checkDataDisk(config, existing);
  await Promise.all(
    names.map((n) =>
      refuseStoppedVm({ project: config.project, zone: config.zone, name: n.instance }),
    ),
  );

  const deployKey = deployKeyFor(raw["agent-host:deployPrivateKey"]);
  const adminKeys = deployKey.publicKey.apply((key) => [key, ...config.sshAuthorizedKeys]);
  // user-data holds nothing that follows the agent count: one text for every host.
  const userData = adminKeys.apply((keys) =>
    encodeUserData(renderUserData(hostSettingsFor(config, keys))),
  );
  const shared: Shared = {
    config,
    raw,
    deployKey,
    adminKeys,
    userData,
    files: readHostFiles(),
    // Names the Compute Engine Service Agent that runs the schedule; asked only when one is set.
    projectNumber: config.workSchedule
      ? gcp.organizations.getProjectOutput({ projectId: config.project }).number
      : undefined,
  };
  const hosts = names.map((n, i) => deployHost(shared, n, existingDisks[i] !== undefined));
  return stackOutputs(config, hosts, deployKey);
};
