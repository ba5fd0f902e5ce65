// What `apply` checks before it changes anything: its arguments, and the bundle on stdin (format in
// cloud-init/bundle.ts). Pure: tests/apply-unit.test.ts runs it without root.
import { createHash } from "crypto";
import { BUNDLE_HEADER } from "../../cloud-init/bundle";
import { PACKAGE_NAME_RE } from "../../shared-rules";
import { parseArgs } from "util";
import { KEY, keysThatChange } from "../conf/conf";

/**
 * A refusal of apply's arguments, or of the host.conf being installed (as `agent-host.js conf`
 * refuses it): exit 2, `apply: <message>`.
 */
export class ApplyUsageError extends Error {}
/** A refusal or failure of apply: exit 1, `apply: error: <message>`. */
export class ApplyError extends Error {}

export interface ApplyArgs {
  agents: number;
  bundleSha256: string;
  /** "" when not given: logged as "unknown". */
  instanceId: string;
}

const USAGE = "usage: apply --agents N --bundle-sha256 SHA --instance-id ID < bundle";

/** `--agents N --bundle-sha256 SHA --instance-id ID`, in any order; the last of a repeated one wins. */
export function parseApplyArgs(argv: readonly string[]): ApplyArgs {
  const options = {
    agents: { type: "string" },
    "bundle-sha256": { type: "string" },
    "instance-id": { type: "string" },
  } as const;
  const { values, tokens } = parseArgs({
    args: [...argv],
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const token of tokens) {
    const unknown =
      token.kind === "positional"
        ? token.value
        : token.kind === "option" && !(token.name in options)
          ? token.rawName
          : undefined;
    if (unknown !== undefined) throw new ApplyUsageError(`unknown argument '${unknown}'; ${USAGE}`);
  }
  const text = (value: string | boolean | undefined): string =>
    typeof value === "string" ? value : "";
  const agents = text(values.agents);
  const sha = text(values["bundle-sha256"]);
  if (!/^[1-9][0-9]*$/.test(agents))
    throw new ApplyUsageError(`--agents must be a positive whole number; got '${agents}'`);
  if (!/^[0-9a-f]{64}$/.test(sha))
    throw new ApplyUsageError(`--bundle-sha256 must be 64 hex digits; got '${sha}'`);
  return { agents: Number(agents), bundleSha256: sha, instanceId: text(values["instance-id"]) };
}

export interface BundleFile {
  path: string;
  /** e.g. 0o755 */
  mode: number;
  content: Buffer;
}

/** A secret line: absent (an older stack did not send it), "-" (remove it) or its value. */
export type SecretValue = undefined | "remove" | Buffer;

export interface Bundle {
  files: BundleFile[];
  /** host.conf as the stack rendered it (host.conf.local not yet appended). */
  conf: string;
  /** The admin user's authorized_keys. */
  adminKeys: Buffer;
  apiKey: Exclude<SecretValue, undefined>;
  gitCredentials: Exclude<SecretValue, undefined>;
  notifyWebhookUrl: SecretValue;
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** base64 -d, strictly: a corrupt line is refused rather than decoded into something else. */
function decode(data: string, what: string): Buffer {
  if (!BASE64_RE.test(data)) throw new ApplyError(`the bundle's ${what} is not valid base64`);
  return Buffer.from(data, "base64");
}

/** Every value after `<prefix>` on the bundle's lines, joined as sed -n 's/^prefix //p' joins them. */
function itemOf(lines: readonly string[], prefix: string): string {
  return lines
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length))
    .join("");
}

function fileOf(line: string): BundleFile {
  const [, path = "", mode = "", data = ""] = line.split(" ");
  // `@`: systemd template units (agent-docker@.socket).
  if (!/^\/[A-Za-z0-9._/@-]+$/.test(path) || path.includes(".."))
    throw new ApplyError(`refusing file path '${path}'`);
  if (!/^0[0-7]{3}$/.test(mode)) throw new ApplyError(`refusing mode '${mode}' for ${path}`);
  return { path, mode: parseInt(mode, 8), content: decode(data, path) };
}

function secretOf(lines: readonly string[], name: string): SecretValue {
  const data = itemOf(lines, `secret ${name} `);
  if (data === "") return undefined;
  return data === "-" ? "remove" : decode(data, name);
}

/** sha256 of the public lines (file, conf, keys) as cloud-init/bundle.ts's publicBundleSha256 hashes them. */
export function publicSha256(lines: readonly string[]): string {
  const pub = lines.filter((l) => /^(file|conf|keys) /.test(l)).join("\n");
  return createHash("sha256").update(pub, "utf8").digest("hex");
}

/**
 * The whole bundle, checked before anything is installed, so a cut-off transfer or a bundle from
 * another deploy changes nothing.
 */
export function parseBundle(text: string, expectedSha256: string): Bundle {
  const lines = text.replace(/\n$/, "").split("\n");
  if (lines[0] !== BUNDLE_HEADER)
    throw new ApplyError(`stdin is not an agent-host bundle (expected '${BUNDLE_HEADER}')`);
  if (lines[lines.length - 1] !== "end")
    throw new ApplyError("the bundle is truncated (no end line)");
  const actual = publicSha256(lines);
  if (actual !== expectedSha256)
    throw new ApplyError(`bundle checksum mismatch (got ${actual}, expected ${expectedSha256})`);
  const files = lines.filter((l) => l.startsWith("file ")).map(fileOf);
  const conf = itemOf(lines, "conf ");
  if (conf === "") throw new ApplyError("the bundle has no host.conf");
  const keys = itemOf(lines, "keys ");
  if (keys === "") throw new ApplyError("the bundle has no admin keys");
  const adminKeys = decode(keys, "admin keys");
  // An empty list would lock everyone out.
  if (!/^(ssh-|ecdsa-|sk-)/m.test(adminKeys.toString("utf8")))
    throw new ApplyError("refusing an authorized_keys without a key");
  const apiKey = secretOf(lines, "anthropic-api-key");
  if (apiKey === undefined) throw new ApplyError("the bundle has no api-key line");
  const gitCredentials = secretOf(lines, "git-credentials");
  if (gitCredentials === undefined) throw new ApplyError("the bundle has no git-credentials line");
  const notifyWebhookUrl = secretOf(lines, "notify-webhook-url");
  return {
    files,
    conf: decode(conf, "host.conf").toString("utf8"),
    adminKeys,
    apiKey,
    gitCredentials,
    notifyWebhookUrl,
  };
}

/**
 * host.conf keys agent-wrapper hands to claude when it starts it: a change to one needs every
 * agent restarted (conversations resume). Each key says so itself (host/conf/conf.ts `changes`).
 */
export const RESTART_KEYS = keysThatChange("agents");

/** Whether the host.conf being installed changes a key in RESTART_KEYS (values as written). */
export function confNeedsRestart(
  next: Readonly<Record<string, string>>,
  old: Readonly<Record<string, string>>,
): boolean {
  return RESTART_KEYS.some((k) => next[k] !== old[k]);
}

/**
 * Whether apply runs install-docker again: a key it installs from changed (the Docker source or
 * mode: conf.ts `changes`), or the host.conf being replaced predates the Docker mode (a host from
 * before per-agent Docker: its agents must move off the root daemon). No host.conf at all means
 * first boot, where first-boot ran install-docker.
 */
export function dockerNeedsInstall(
  oldText: string | undefined,
  next: Readonly<Record<string, string>>,
  old: Readonly<Record<string, string>>,
): boolean {
  if (oldText === undefined) return false;
  if (!new RegExp(`^${KEY.dockerMode}=`, "m").test(oldText)) return true;
  return keysThatChange("docker").some((k) => next[k] !== old[k]);
}

/**
 * Whether apply restarts every agent once it has reconciled: a host.conf key Claude Code reads at
 * start changed (confNeedsRestart), or the API key did. A running agent keeps the key it started
 * with, so a rotated key reaches the agents only through this restart (conversations resume).
 */
export function agentsNeedRestart(changed: { conf: boolean; apiKey: boolean }): boolean {
  return changed.conf || changed.apiKey;
}

/**
 * host.conf's extra packages as names for apt-get's argv, each checked again here (the stack checked them
 * too): a name that is not a Debian package name is refused, never passed on.
 */
export function extraPackageNames(list: string): string[] {
  const names = list.split(/\s+/).filter(Boolean);
  const bad = names.find((n) => !PACKAGE_NAME_RE.test(n));
  if (bad !== undefined)
    throw new ApplyError(
      `refusing '${bad}' in ${KEY.extraPackages}: not a Debian package name; fix extraPackages`,
    );
  return names;
}
