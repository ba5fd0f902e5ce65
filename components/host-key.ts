// The VM's SSH host key, pinned: which published key the deploy trusts, its fingerprint, the
// known_hosts line OpenSSH checks it by, and the decision to connect or refuse. Pure: imports
// nothing from Pulumi, so the deploy (components/agent-fleet.ts) and the MITM test
// (tests/host-key-pin.test.ts) run the very same code.
//
// Where the key comes from: on a GCE VM with `enable-guest-attributes: TRUE`, the guest
// environment publishes each public host key as the guest attribute `hostkeys/<algorithm>` with
// the base64 blob as its value (cloud-init's cc_ssh → DataSourceGCE.publish_host_keys →
// _write_host_key_to_guest_attributes; the guest agent's generateSSHKeys →
// writeGuestAttributes("hostkeys/"+vals[0], vals[1]) does the same on images that let it make the
// keys). The GCP provider's getInstanceGuestAttributes answers `queryValues` of {namespace, key,
// value} (terraform-provider-google data_source_google_compute_instance_guest_attributes.go), and
// an empty list while nothing is published yet (that data source returns no error then).
//
// Any process on the VM may PUT a guest attribute, agents included, so the program reads the key
// once, when the VM is created, keeps it in the state, and refuses a later change (checkPin).
import { createHash } from "crypto";

/** The guest attribute namespace the guest environment publishes host keys in. */
export const HOSTKEY_NAMESPACE = "hostkeys";
/** getInstanceGuestAttributes' queryPath for that namespace (a trailing slash: the whole folder). */
export const HOSTKEY_QUERY_PATH = `${HOSTKEY_NAMESPACE}/`;

/**
 * Key algorithms the deploy pins, most preferred first. Not ssh-rsa: pulumi-command's connection
 * sets HostKeyAlgorithms to the pinned key's Type() (provider/pkg/provider/remote/connection.go,
 * SSHConfig), and for an RSA key that is "ssh-rsa", the SHA-1 signature OpenSSH 8.8 and later
 * (Ubuntu 24.04's sshd) refuse: the handshake could never succeed.
 */
export const PINNED_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256"] as const;
export type PinnedKeyType = (typeof PINNED_KEY_TYPES)[number];

/** One entry of getInstanceGuestAttributes' queryValues. */
export interface GuestAttribute {
  namespace?: string;
  key?: string;
  value?: string;
}

/** A host key as an authorized_keys / known_hosts key: its algorithm and its base64 blob. */
export interface HostKey {
  type: PinnedKeyType;
  blob: string;
}

/** Thrown for a key that is not one: names the problem. */
export class HostKeyError extends Error {}

/**
 * Reads an OpenSSH public key line ("ssh-ed25519 AAAA… [comment]") the way golang.org/x/crypto/ssh
 * ParseAuthorizedKey + ParsePublicKey do for these types: the blob is base64 of an SSH wire string
 * holding the algorithm name again, which must equal the first word.
 */
export function parseHostKey(line: string): HostKey {
  const [type, blob] = line.trim().split(/\s+/);
  if (!PINNED_KEY_TYPES.includes(type as PinnedKeyType)) {
    throw new HostKeyError(
      `host key type ${JSON.stringify(type ?? "")} is not one the deploy pins (${PINNED_KEY_TYPES.join(", ")})`,
    );
  }
  if (!blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
    throw new HostKeyError(`host key ${type} has no valid base64 blob`);
  }
  const raw = Buffer.from(blob, "base64");
  const nameLength = raw.length >= 4 ? raw.readUInt32BE(0) : -1;
  const inner = nameLength >= 0 ? raw.subarray(4, 4 + nameLength).toString("latin1") : "";
  if (inner !== type) {
    throw new HostKeyError(
      `host key blob says ${JSON.stringify(inner)}, not ${type}: the key is damaged or mislabelled`,
    );
  }
  return { type: type as PinnedKeyType, blob };
}

/** "type blob", the form connection.hostKey and known_hosts take (no comment). */
export const hostKeyLine = (key: HostKey): string => `${key.type} ${key.blob}`;

/**
 * The key the deploy pins from the published guest attributes: the most preferred type present,
 * or undefined while the guest environment has published none of them yet.
 */
export function hostKeyFromGuestAttributes(
  values: readonly GuestAttribute[] | undefined,
): string | undefined {
  const published = new Map(
    (values ?? [])
      .filter((v) => v.namespace === HOSTKEY_NAMESPACE && v.key && v.value)
      .map((v) => [v.key as string, (v.value as string).trim()]),
  );
  for (const type of PINNED_KEY_TYPES) {
    const blob = published.get(type);
    if (blob) return hostKeyLine(parseHostKey(`${type} ${blob}`));
  }
  return undefined;
}

/** OpenSSH's fingerprint (ssh-keygen -l, the "key sent by the remote host" line): SHA256:<b64>. */
export function fingerprint(line: string): string {
  const { blob } = parseHostKey(line);
  const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** A known_hosts line for OpenSSH's StrictHostKeyChecking=yes: `<alias> <type> <blob>`. */
export function knownHostsLine(hostAlias: string, line: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(hostAlias)) {
    throw new HostKeyError(`host alias ${JSON.stringify(hostAlias)} is not a plain host name`);
  }
  return `${hostAlias} ${hostKeyLine(parseHostKey(line))}\n`;
}

/** The VM's host key changed while the VM did not: the deploy refuses to send anything. */
export class HostKeyChangedError extends Error {
  constructor(
    readonly instance: string,
    readonly pinned: string,
    readonly published: string,
    readonly pinUrn: string,
  ) {
    super(hostKeyChangedMessage(instance, pinned, published, pinUrn));
  }
}

export function hostKeyChangedMessage(
  instance: string,
  pinned: string,
  published: string,
  pinUrn: string,
): string {
  return (
    `The SSH host key VM ${instance} publishes changed, but the VM was not replaced: pinned ` +
    `${fingerprint(pinned)} when the VM was created, now published ${fingerprint(published)}. ` +
    `Nothing was sent to the VM. Any process on the VM can rewrite its guest attributes, so ` +
    `treat this as an attack unless you changed the host keys yourself. If you did, check the ` +
    `new fingerprint on the VM (sudo ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and accept ` +
    `it with: pulumi up --replace '${pinUrn}'`
  );
}

/**
 * The key the deploy connects with. `pinned` is what the state kept from the VM's creation,
 * `published` what the guest attributes say now. Equal: the pinned key. Different: refused.
 */
export function checkPin(
  instance: string,
  pinned: string | undefined,
  published: string,
  pinUrn: string,
): string {
  if (!pinned) {
    throw new HostKeyError(
      `the state holds no pinned host key for VM ${instance}: replace the pin with: pulumi up --replace '${pinUrn}'`,
    );
  }
  const kept = hostKeyLine(parseHostKey(pinned));
  const seen = hostKeyLine(parseHostKey(published));
  if (kept !== seen) throw new HostKeyChangedError(instance, kept, seen, pinUrn);
  return kept;
}

/** What the deploy does with the pinned and the published key: connect with one, or refuse. */
export type PinDecision = { ok: true; hostKey: string } | { ok: false; refusal: string };

/** checkPin as a value: the refusal's message instead of a throw. */
export function pinDecision(
  instance: string,
  pinned: string | undefined,
  published: string,
  pinUrn: string,
): PinDecision {
  try {
    return { ok: true, hostKey: checkPin(instance, pinned, published, pinUrn) };
  } catch (error) {
    if (error instanceof HostKeyError || error instanceof HostKeyChangedError) {
      return { ok: false, refusal: error.message };
    }
    throw error;
  }
}
