// The day-2 bundle: what the fleet's reconcile command sends on stdin to host/apply. One line
// per item, every value base64 so no byte of it is ever parsed as shell:
//   agent-host-bundle 1
//   file <path> <mode> <base64 content>
//   conf <base64 host.conf>
//   keys <base64 authorized_keys of the admin user>
//   secret anthropic-api-key <base64 value | ->     ("-" removes the key: interactive /login)
//   secret git-credentials <base64 value | ->       ("-" removes the agents' git credentials)
//   secret notify-webhook-url <base64 value | ->    ("-" removes it: no notifications)
//   end
// Pure; the secrets are only ever handled by the caller inside a secret Output.
import { createHash } from "crypto";
import type { HostFileContent } from "./files";

export const BUNDLE_HEADER = "agent-host-bundle 1";

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");

/**
 * The part of the bundle that is not secret: host files, host.conf and the admin user's public
 * keys (so a change to sshAuthorizedKeys or the deploy key reaches a running VM too).
 */
export function renderPublicBundle(
  files: readonly HostFileContent[],
  hostConf: string,
  adminAuthorizedKeys: readonly string[],
): string {
  if (adminAuthorizedKeys.length === 0) {
    throw new Error("The admin user needs at least one authorized key (the deploy key).");
  }
  const lines = files.map((file) => `file ${file.path} ${file.mode} ${b64(file.content)}`);
  lines.push(`conf ${b64(hostConf)}`);
  lines.push(`keys ${b64(`${adminAuthorizedKeys.join("\n")}\n`)}`);
  return lines.join("\n");
}

/** sha256 of the public part; the command string carries it and apply checks it. */
export function publicBundleSha256(publicBundle: string): string {
  return createHash("sha256").update(publicBundle, "utf8").digest("hex");
}

/** The secrets the bundle carries; unset ones are sent as "-" (apply removes them). */
export interface BundleSecrets {
  apiKey?: string;
  gitCredentials?: string;
  notifyWebhookUrl?: string;
}

/** The whole stdin: header, public part, one line per secret, end marker. */
export function renderBundle(publicBundle: string, secrets: BundleSecrets = {}): string {
  const line = (name: string, value: string | undefined) =>
    `secret ${name} ${value ? b64(value) : "-"}`;
  const secretLines = [
    line("anthropic-api-key", secrets.apiKey),
    line("git-credentials", secrets.gitCredentials),
    line("notify-webhook-url", secrets.notifyWebhookUrl),
  ];
  return `${BUNDLE_HEADER}\n${publicBundle}\n${secretLines.join("\n")}\nend\n`;
}
