// The commands a person runs to reach the VM, for each connectVia (the stack's sshCommand,
// attachCommand, agentCommands and statusCommand outputs). Pure: no Pulumi import.
import type { ConnectVia } from "../config";

export interface SshTarget {
  connectVia: ConnectVia;
  user: string;
  /** Where the deploy key is saved on the person's machine (scripts/deploy.sh writes it). */
  keyFile: string;
  /** The VM's external address (public-ip only). */
  address?: string;
  instance: string;
  zone: string;
  project: string;
}

export interface SshCommands {
  ssh: string;
  /** Opens the tmux session, or agent `n`'s window. */
  attach(n?: number): string;
  status: string;
  /** Forwards the VM's 127.0.0.1:port (the dashboard) to the same port here; runs until stopped. */
  tunnel(port: number): string;
}

/**
 * public-ip: plain ssh to the address. iap: `gcloud compute ssh --tunnel-through-iap`, which
 * opens the tunnel and takes the VM's host key from its guest attributes. gcloud adds the key to
 * the instance's ssh-keys metadata first when it is not there (docs/security.md says what that
 * means here).
 */
export function sshCommands(target: SshTarget): SshCommands {
  const remote = (command: string, tty: boolean): string => {
    if (target.connectVia === "iap") {
      return `${base()}${tty ? " --ssh-flag=-t" : ""} --command='${command}'`;
    }
    return `${base()}${tty ? " -t" : ""} ${command}`;
  };
  const base = (): string => {
    if (target.connectVia === "iap") {
      return `gcloud compute ssh ${target.user}@${target.instance} --tunnel-through-iap --zone ${target.zone} --project ${target.project} --ssh-key-file ${target.keyFile}`;
    }
    if (!target.address) throw new Error("sshCommands: connectVia public-ip needs the address.");
    return `ssh -i ${target.keyFile} ${target.user}@${target.address}`;
  };
  return {
    ssh: base(),
    attach: (n) =>
      remote(n === undefined ? "sudo agentctl attach" : `sudo agentctl attach ${n}`, true),
    status: remote("sudo agentctl status", false),
    // gcloud compute ssh passes what follows `--` to ssh.
    tunnel: (port) =>
      target.connectVia === "iap"
        ? `${base()} -- -N -L ${port}:127.0.0.1:${port}`
        : `ssh -i ${target.keyFile} -N -L ${port}:127.0.0.1:${port} ${target.user}@${target.address}`,
  };
}
