// Day-2 path: one command that, on create and on every relevant change, ships the host files and
// host.conf on stdin, waits for cloud-init, and reconciles the agents over SSH. The VM is never
// touched, so a count change takes seconds and leaves the running agents alone.
//
// It talks only to the VM this stack created: the VM's SSH host key is read from its guest
// attributes once, when the VM is created, and kept in the state (the `-hostkey` command); every
// connection checks it, and a key that changes on the same VM is refused (components/host-key.ts).
// Before the reconcile connects, the `-hostkey-probe` command asks whatever answers for the VM
// which key it holds and stops the deployment, naming both fingerprints, when it is not the
// pinned one (scripts/host-key-probe): the reconcile dependsOn it.
import { createHmac } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as command from "@pulumi/command";
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { publicBundleSha256, renderBundle, renderPublicBundle } from "../cloud-init/bundle";
import type { HostFileContent } from "../cloud-init/files";
import { ADMIN_USER_NAME } from "../cloud-init/host-config";
import type { ConnectVia } from "../config";
import { HOSTKEY_QUERY_PATH, hostKeyFromGuestAttributes, pinDecision } from "./host-key";

export const APPLY_PATH = "/usr/local/lib/agent-host/apply";

/**
 * The pin's create: keep the published key it gets on stdin (its stdout lands in the state), or,
 * when none could be read, fail the step saying why (a failed create leaves no state: the next
 * `up` reads again).
 */
export const PIN_CREATE =
  'if [ -n "${AGENT_HOST_HOST_KEY_PROBLEM:-}" ]; then printf \'%s\\n\' "$AGENT_HOST_HOST_KEY_PROBLEM" >&2; exit 1; fi; cat';
/**
 * The pin's update (any input changed on the same VM): print the key the state kept, never the
 * new one. local.Command hands the previous stdout over as PULUMI_COMMAND_STDOUT (pulumi-command
 * provider/pkg/provider/local/commandOutputs.go, run: addPreviousOutputInEnv, default true).
 */
export const PIN_KEEP =
  "printf '%s\\n' \"${PULUMI_COMMAND_STDOUT:?the state holds no pinned host key: run pulumi up --replace on this command}\"";

/**
 * The check's command when the published key is the pinned one: print it (its stdout is the key
 * every connection then takes).
 */
export const PIN_CHECK_PASS = "printf '%s\\n' \"$AGENT_HOST_HOST_KEY\"";
/**
 * The check's command when they differ: fail the step with the refusal (both fingerprints, how to
 * accept). A failed step stops the deployment there: the reconcile, which depends on it, never
 * runs, so nothing is sent.
 */
export const PIN_CHECK_REFUSE = "printf '%s\\n' \"$AGENT_HOST_HOST_KEY_REFUSAL\" >&2; exit 1";

/** scripts/host-key-probe: the host key check before the reconcile connects (both paths). */
export const HOST_KEY_PROBE_SCRIPT_PATH = path.join(__dirname, "..", "scripts", "host-key-probe");
/** The probe's create and update: a label (the script is the interpreter's); no value in it. */
export const HOST_KEY_PROBE_COMMAND = "host-key-probe";

/** scripts/iap-ssh: the reconcile's SSH leg through an IAP tunnel (connectVia iap). */
export const IAP_SSH_SCRIPT_PATH = path.join(__dirname, "..", "scripts", "iap-ssh");

/** The published host key, or why none could be read. */
export type HostKeyRead =
  { key: string; problem?: undefined } | { key?: undefined; problem: string };

export interface VmRef {
  project: string;
  zone: string;
  name: string;
}

export interface AgentFleetArgs {
  /** Where the VM is: its guest attributes are read by name, and IAP tunnels to it by name. */
  vm: VmRef;
  /**
   * How the reconcile reaches sshd: public-ip dials `host` (@pulumi/command remote.Command);
   * iap runs scripts/iap-ssh (OpenSSH through `gcloud compute start-iap-tunnel`).
   * @default "public-ip"
   */
  connectVia?: ConnectVia;
  /** The VM's static address; required with public-ip, unused with iap. */
  host?: pulumi.Input<string>;
  /** The deploy key's private half (OpenSSH or PEM); kept secret. */
  privateKey: pulumi.Input<string>;
  /** Changes when the VM is replaced; the reconcile runs again on the new VM. */
  instanceId: pulumi.Input<string>;
  agentCount: number;
  /** The host files shipped on every run. */
  files: readonly HostFileContent[];
  /** The text of /etc/agent-host/host.conf. */
  hostConf: string;
  /** Public keys of the admin user (the deploy key first); rewritten on every run. */
  adminAuthorizedKeys: pulumi.Input<string[]>;
  /**
   * Anthropic API key or OAuth token; travels only on stdin, lands root-only on the VM.
   * @default undefined — no key on the host; a person logs in once with /login.
   */
  apiKey?: pulumi.Input<string>;
  /**
   * HTTPS token or SSH private key for the agents' git; travels only on stdin, lands readable by
   * the agent user only (through git).
   * @default undefined — the agents have no git credentials (public repositories only).
   */
  gitCredentials?: pulumi.Input<string>;
  /**
   * The notification webhook (Slack, ntfy or any HTTPS URL); travels only on stdin, lands
   * root-only on the VM, read by the control window's monitor.
   * @default undefined — no notifications (agentctl status and tmux still show who needs you).
   */
  notifyWebhookUrl?: pulumi.Input<string>;
  /**
   * Dial attempts while the VM boots (sshd not up yet), each up to perDialTimeout seconds.
   * @default 60 (with 15 s each: up to 15 minutes for a first boot)
   */
  dialErrorLimit?: number;
  /**
   * How long to wait for a new VM to publish its host key (the guest environment does it early in
   * the first boot), polling every hostKeyPollSeconds.
   * @default 600
   */
  hostKeyWaitSeconds?: number;
  /** @default 5 */
  hostKeyPollSeconds?: number;
}

/** The command string: fixed words, plain values; what changes here is what re-runs the step. */
export function applyCommand(agentCount: number, bundleSha256: string, instanceId: string): string {
  return `sudo ${APPLY_PATH} --agents ${agentCount} --bundle-sha256 ${bundleSha256} --instance-id ${instanceId}`;
}

/**
 * The host key the VM's guest environment published, polled until it is there (a new VM
 * publishes it during its first boot) or the deadline passes.
 */
export async function publishedHostKey(
  vm: VmRef,
  waitSeconds: number,
  pollSeconds: number,
): Promise<HostKeyRead> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    try {
      const attributes = await gcp.compute.getInstanceGuestAttributes({
        project: vm.project,
        zone: vm.zone,
        name: vm.name,
        queryPath: HOSTKEY_QUERY_PATH,
      });
      const key = hostKeyFromGuestAttributes(attributes.queryValues);
      if (key) return { key };
    } catch (error) {
      // A failed read (no permission, no VM, a published value that is no key) is reported by the
      // pin or check step, which stops the deployment before anything is sent.
      return {
        problem: `Reading VM ${vm.name}'s SSH host key from its guest attributes failed, so nothing was sent to it: ${(error as Error).message}`,
      };
    }
    if (Date.now() >= deadline) {
      return {
        problem: `VM ${vm.name} published no SSH host key (guest attributes ${HOSTKEY_QUERY_PATH}) within ${waitSeconds} s, so the deploy cannot tell it from an impostor and sent nothing. A VM created before agent-host pinned host keys never publishes them: see docs/security.md, "SSH host key pinning and IAP". Otherwise check that it booted: gcloud compute instances get-serial-port-output ${vm.name} --zone ${vm.zone} --project ${vm.project}`,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, pollSeconds * 1000));
  }
}

export class AgentFleet extends pulumi.ComponentResource {
  /** The reconcile step: a remote.Command (public-ip) or a local.Command through IAP (iap). */
  public readonly reconcile: command.remote.Command | command.local.Command;
  /** Keeps the VM's host key from its creation in the state. */
  public readonly hostKeyPin: command.local.Command;
  /** Compares it with what the VM publishes now; fails the deployment when they differ. */
  public readonly hostKeyCheck: command.local.Command;
  /** Asks whatever answers for the VM for its key before the reconcile connects. */
  public readonly hostKeyProbe: command.local.Command;
  /** The host key every connection checks ("type base64"). */
  public readonly hostKey: pulumi.Output<string>;
  /** What agentctl reported: {"desired":N,"added":[…],"removed":[…],"restarted":[…],"running":N}. */
  public readonly summary: pulumi.Output<string>;

  constructor(name: string, args: AgentFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-host:fleet:AgentFleet", name, {}, opts);
    const via = args.connectVia ?? "public-ip";
    const { pin, check } = this.pinHostKey(name, args);
    this.hostKeyPin = pin;
    this.hostKeyCheck = check;
    this.hostKey = check.stdout;
    const { apply, bundle } = fleetBundle(args);
    this.hostKeyProbe = this.probeHostKey(name, args, via, pin, apply, bundle);

    // dependsOn: the reconcile starts only once the probe passed (the engine runs steps that do
    // not depend on each other concurrently; a failed step stops only those not yet started).
    const after: pulumi.CustomResourceOptions = { parent: this, dependsOn: [this.hostKeyProbe] };
    this.reconcile =
      via === "iap"
        ? this.reconcileThroughIap(name, args, apply, bundle, after)
        : this.reconcileOverPublicIp(name, args, apply, bundle, after);

    // apply prints only agentctl's JSON summary on stdout, never the bundle or the key.
    this.summary = pulumi.unsecret(this.reconcile.stdout).apply((out) => (out ?? "").trim());
    this.registerOutputs({ summary: this.summary, hostKey: this.hostKey });
  }

  /**
   * Pins the VM's SSH host key: read from the guest attributes once per VM (the `-hostkey` step
   * keeps it), then checked against what is published now (the `-hostkey-check` step refuses a
   * change, so the reconcile never connects to an impostor).
   */
  private pinHostKey(
    name: string,
    args: AgentFleetArgs,
  ): { pin: command.local.Command; check: command.local.Command } {
    // Read after the instance step, so a replaced VM's new key is read in the same `up`; during a
    // preview of a new VM the ID is unknown and nothing is read. (No ID at all: no instance.)
    const published = pulumi
      .output(args.instanceId)
      .apply(async (id): Promise<HostKeyRead> =>
        id
          ? publishedHostKey(args.vm, args.hostKeyWaitSeconds ?? 600, args.hostKeyPollSeconds ?? 5)
          : { problem: `VM ${args.vm.name} has no instance ID: nothing to read` },
      );
    const pin = new command.local.Command(
      `${name}-hostkey`,
      {
        create: PIN_CREATE,
        update: PIN_KEEP,
        stdin: published.apply((read) => read.key ?? ""),
        environment: published.apply((read): Record<string, string> =>
          read.problem === undefined ? {} : { AGENT_HOST_HOST_KEY_PROBLEM: read.problem },
        ),
        // A new VM (new ID) replaces the pin: create runs and keeps the new VM's key.
        triggers: [args.instanceId],
        logging: "none",
      },
      { parent: this },
    );
    // The decision is components/host-key.ts's; the step only carries it out, so a refusal stops
    // the deployment the way a failed resource does.
    const decision = pulumi
      .all([pin.stdout, published, pin.urn])
      .apply(([pinned, read, urn]) =>
        read.problem !== undefined
          ? { ok: false as const, refusal: read.problem }
          : pinDecision(args.vm.name, pinned, read.key, urn),
      );
    decision.apply((d) => {
      // A preview runs no command: say it now.
      if (!d.ok && pulumi.runtime.isDryRun()) void pulumi.log.error(d.refusal, this);
    });
    const check = decision.apply((d): { command: string; environment: Record<string, string> } =>
      d.ok
        ? { command: PIN_CHECK_PASS, environment: { AGENT_HOST_HOST_KEY: d.hostKey } }
        : { command: PIN_CHECK_REFUSE, environment: { AGENT_HOST_HOST_KEY_REFUSAL: d.refusal } },
    );
    const checkStep = new command.local.Command(
      `${name}-hostkey-check`,
      {
        create: check.command,
        update: check.command,
        environment: check.environment,
        logging: "stderr",
      },
      { parent: this },
    );
    return { pin, check: checkStep };
  }

  /**
   * The probe (scripts/host-key-probe) over the reconcile's own path: the address (public-ip) or
   * the IAP tunnel. It holds no secret. It runs whenever the reconcile does: its stdin, which it
   * never reads, is a keyed hash of what re-runs the reconcile (the command, the bundle, the
   * deploy key), secret in the state, so any change there is a change of the probe too. (In the
   * environment it would make the whole map secret, the public key and address included.)
   */
  private probeHostKey(
    name: string,
    args: AgentFleetArgs,
    via: ConnectVia,
    pin: command.local.Command,
    apply: pulumi.Output<string>,
    bundle: pulumi.Output<string>,
  ): command.local.Command {
    if (via === "public-ip" && args.host === undefined) {
      throw new Error("AgentFleet: connectVia public-ip needs host.");
    }
    const script = fs.readFileSync(HOST_KEY_PROBE_SCRIPT_PATH, "utf8");
    const reconcileRun = pulumi.secret(
      pulumi
        .all([args.privateKey, apply, bundle])
        .apply(([key, cmd, b]) =>
          createHmac("sha256", key).update(cmd).update("\0").update(b).digest("hex"),
        ),
    );
    const address: Record<string, pulumi.Input<string>> = via === "public-ip"
      ? // The remote.Command's connection: host, and port 22 (its default).
        { AGENT_HOST_ADDRESS: args.host as pulumi.Input<string>, AGENT_HOST_SSH_PORT: "22" }
      : {};
    return new command.local.Command(
      `${name}-hostkey-probe`,
      {
        // bash -c SCRIPT host-key-probe "host-key-probe": the script runs as a file would.
        interpreter: ["/bin/bash", "-c", script, HOST_KEY_PROBE_COMMAND],
        create: HOST_KEY_PROBE_COMMAND,
        update: HOST_KEY_PROBE_COMMAND,
        environment: {
          AGENT_HOST_CONNECT_VIA: via,
          AGENT_HOST_HOST_KEY: this.hostKey,
          ...address,
          AGENT_HOST_VM: args.vm.name,
          AGENT_HOST_ZONE: args.vm.zone,
          AGENT_HOST_PROJECT: args.vm.project,
          AGENT_HOST_USER: ADMIN_USER_NAME,
          AGENT_HOST_PIN_URN: pin.urn,
          AGENT_HOST_PROBE_ATTEMPTS: String(args.dialErrorLimit ?? 60),
        },
        stdin: reconcileRun,
        addPreviousOutputInEnv: false,
        logging: "stderr",
      },
      { parent: this },
    );
  }

  private reconcileOverPublicIp(
    name: string,
    args: AgentFleetArgs,
    apply: pulumi.Output<string>,
    stdin: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
  ): command.remote.Command {
    if (args.host === undefined) throw new Error("AgentFleet: connectVia public-ip needs host.");
    return new command.remote.Command(
      `${name}-reconcile`,
      {
        connection: {
          host: args.host,
          user: ADMIN_USER_NAME,
          privateKey: pulumi.secret(args.privateKey),
          // ssh.FixedHostKey with HostKeyAlgorithms [its type] (pulumi-command
          // provider/pkg/provider/remote/connection.go, SSHConfig): any other key fails the
          // handshake before authentication, so nothing reaches an impostor.
          hostKey: this.hostKey,
          dialErrorLimit: args.dialErrorLimit ?? 60,
          perDialTimeout: 15,
        },
        create: apply,
        update: apply,
        // No delete: removing the stack must never delete workspaces or conversations.
        stdin,
        // The provider's default sends PULUMI_COMMAND_STDOUT with SSH Setenv, which a stock
        // sshd refuses: the update would fail.
        addPreviousOutputInEnv: false,
        logging: "stdoutAndStderr",
      },
      opts,
    );
  }

  /**
   * @pulumi/command's remote connection has no ProxyCommand (its only indirection is `proxy`, an
   * SSH bastion: connection.go Dial), so with iap the SSH leg is OpenSSH run by a local.Command.
   */
  private reconcileThroughIap(
    name: string,
    args: AgentFleetArgs,
    apply: pulumi.Output<string>,
    bundle: pulumi.Output<string>,
    opts: pulumi.CustomResourceOptions,
  ): command.local.Command {
    const script = fs.readFileSync(IAP_SSH_SCRIPT_PATH, "utf8");
    return new command.local.Command(
      `${name}-reconcile`,
      {
        // bash -c SCRIPT iap-ssh "<command>": the script runs as a file would, $1 the command.
        interpreter: ["/bin/bash", "-c", script, "iap-ssh"],
        create: apply,
        update: apply,
        // The key first, then the bundle: neither ever in argv, the environment or a log.
        stdin: pulumi.secret(
          pulumi.all([args.privateKey, bundle]).apply(([key, b]) => `${key.trim()}\n${b}`),
        ),
        environment: {
          AGENT_HOST_VM: args.vm.name,
          AGENT_HOST_ZONE: args.vm.zone,
          AGENT_HOST_PROJECT: args.vm.project,
          AGENT_HOST_USER: ADMIN_USER_NAME,
          AGENT_HOST_HOST_KEY: this.hostKey,
        },
        addPreviousOutputInEnv: false,
        logging: "stdoutAndStderr",
      },
      opts,
    );
  }
}

/** The bundle apply reads on stdin: secret whenever a secret is configured. */
function fleetBundle(args: AgentFleetArgs): {
  apply: pulumi.Output<string>;
  bundle: pulumi.Output<string>;
} {
  const publicBundle = pulumi
    .output(args.adminAuthorizedKeys)
    .apply((keys) => renderPublicBundle(args.files, args.hostConf, keys));
  const apply = pulumi
    .all([args.instanceId, publicBundle])
    .apply(([id, bundle]) => applyCommand(args.agentCount, publicBundleSha256(bundle), id));
  const hasSecrets =
    args.apiKey !== undefined ||
    args.gitCredentials !== undefined ||
    args.notifyWebhookUrl !== undefined;
  // Secret whenever a secret is configured; the public part alone otherwise.
  const bundle = hasSecrets
    ? pulumi.secret(
        pulumi
          .all([publicBundle, args.apiKey, args.gitCredentials, args.notifyWebhookUrl])
          .apply(([bundle, apiKey, gitCredentials, notifyWebhookUrl]) =>
            renderBundle(bundle, { apiKey, gitCredentials, notifyWebhookUrl }),
          ),
      )
    : publicBundle.apply((b) => renderBundle(b));
  return { apply, bundle };
}
