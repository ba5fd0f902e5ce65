// Day-2 path: one remote.Command that, on create and on every relevant change, ships the host
// files and host.conf on stdin, waits for cloud-init, and reconciles the agents over SSH. The VM
// is never touched, so a count change takes seconds and leaves the running agents alone.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { publicBundleSha256, renderBundle, renderPublicBundle } from "../cloud-init/bundle";
import type { HostFileContent } from "../cloud-init/files";
import { ADMIN_USER } from "../cloud-init/host-config";

export const APPLY_PATH = "/usr/local/lib/agent-host/apply";

export interface AgentFleetArgs {
  /** The VM's static address. */
  host: pulumi.Input<string>;
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
}

/** The command string: fixed words, plain values; what changes here is what re-runs the step. */
export function applyCommand(agentCount: number, bundleSha256: string, instanceId: string): string {
  return `sudo ${APPLY_PATH} --agents ${agentCount} --bundle-sha256 ${bundleSha256} --instance-id ${instanceId}`;
}

export class AgentFleet extends pulumi.ComponentResource {
  public readonly reconcile: command.remote.Command;
  /** What agentctl reported: {"desired":N,"added":[…],"removed":[…],"restarted":[…],"running":N}. */
  public readonly summary: pulumi.Output<string>;

  constructor(name: string, args: AgentFleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("agent-host:fleet:AgentFleet", name, {}, opts);

    const publicBundle = pulumi
      .output(args.adminAuthorizedKeys)
      .apply((keys) => renderPublicBundle(args.files, args.hostConf, keys));
    const apply = pulumi
      .all([args.instanceId, publicBundle])
      .apply(([id, bundle]) => applyCommand(args.agentCount, publicBundleSha256(bundle), id));
    // Secret whenever a secret is configured; the public part alone otherwise.
    const stdin =
      args.apiKey === undefined &&
      args.gitCredentials === undefined &&
      args.notifyWebhookUrl === undefined
        ? publicBundle.apply((bundle) => renderBundle(bundle))
        : pulumi.secret(
            pulumi
              .all([publicBundle, args.apiKey, args.gitCredentials, args.notifyWebhookUrl])
              .apply(([bundle, apiKey, gitCredentials, notifyWebhookUrl]) =>
                renderBundle(bundle, { apiKey, gitCredentials, notifyWebhookUrl }),
              ),
          );

    this.reconcile = new command.remote.Command(
      `${name}-reconcile`,
      {
        connection: {
          host: args.host,
          user: ADMIN_USER,
          privateKey: pulumi.secret(args.privateKey),
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
      { parent: this },
    );

    // apply prints only agentctl's JSON summary on stdout, never the bundle or the key.
    this.summary = pulumi.unsecret(this.reconcile.stdout).apply((out) => (out ?? "").trim());
    this.registerOutputs({ summary: this.summary });
  }
}
