// components/host-key.ts without mocks: which published key is pinned, its fingerprint (checked
// against ssh-keygen's), the known_hosts line (checked by OpenSSH itself), and the decision.
import { spawnSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import {
  checkPin,
  fingerprint,
  HostKeyChangedError,
  HostKeyError,
  hostKeyFromGuestAttributes,
  knownHostsLine,
  parseHostKey,
} from "../components/host-key";

let dir = "";
const keys: Record<string, string> = {};

function keygen(type: string, name: string): string {
  const file = path.join(dir, name);
  const r = spawnSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "a comment", "-f", file]);
  if (r.status !== 0) throw new Error(String(r.stderr));
  return readFileSync(`${file}.pub`, "utf8").trim();
}

/** ssh-keygen -lf's fingerprint of a public key line. */
function sshKeygenFingerprint(line: string): string {
  const r = spawnSync("ssh-keygen", ["-lf", "-"], { input: `${line}\n`, encoding: "utf8" });
  return r.stdout.split(" ")[1];
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "host-key-"));
  keys.ed25519 = keygen("ed25519", "a");
  keys.ed25519b = keygen("ed25519", "b");
  keys.ecdsa = keygen("ecdsa", "c");
  keys.rsa = keygen("rsa", "d");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const attr = (line: string) => {
  const [type, blob] = line.split(" ");
  return { namespace: "hostkeys", key: type, value: blob };
};

test("fingerprints are ssh-keygen's", () => {
  for (const name of ["ed25519", "ed25519b", "ecdsa"]) {
    expect(fingerprint(keys[name])).toBe(sshKeygenFingerprint(keys[name]));
  }
});

test("the pinned key: ed25519 first, then ecdsa; never rsa; comments dropped", () => {
  const [, ed25519Blob] = keys.ed25519.split(" ");
  expect(hostKeyFromGuestAttributes([attr(keys.rsa), attr(keys.ecdsa), attr(keys.ed25519)])).toBe(
    `ssh-ed25519 ${ed25519Blob}`,
  );
  expect(hostKeyFromGuestAttributes([attr(keys.rsa), attr(keys.ecdsa)])).toBe(
    keys.ecdsa.split(" ").slice(0, 2).join(" "),
  );
  // ssh-rsa alone: pulumi-command would offer only the SHA-1 ssh-rsa algorithm, which Ubuntu
  // 24.04's sshd refuses; nothing is pinned (the deploy waits, then says so).
  expect(hostKeyFromGuestAttributes([attr(keys.rsa)])).toBeUndefined();
  // Nothing published yet (the data source answers an empty list), or another namespace.
  expect(hostKeyFromGuestAttributes(undefined)).toBeUndefined();
  expect(hostKeyFromGuestAttributes([])).toBeUndefined();
  expect(
    hostKeyFromGuestAttributes([{ ...attr(keys.ed25519), namespace: "other" }]),
  ).toBeUndefined();
});

test("a damaged or mislabelled key is refused, naming the problem", () => {
  const [, blob] = keys.ed25519.split(" ");
  expect(() => parseHostKey(`ecdsa-sha2-nistp256 ${blob}`)).toThrow(
    'host key blob says "ssh-ed25519", not ecdsa-sha2-nistp256',
  );
  expect(() => parseHostKey("ssh-ed25519 not*base64")).toThrow(HostKeyError);
  expect(() => parseHostKey("ssh-dss AAAA")).toThrow('host key type "ssh-dss" is not one');
  // A forged attribute that is not even a key stops the deploy as clearly.
  expect(() =>
    hostKeyFromGuestAttributes([{ namespace: "hostkeys", key: "ssh-ed25519", value: "@@" }]),
  ).toThrow("host key ssh-ed25519 has no valid base64 blob");
});

test("checkPin: the same key passes; another is refused with both fingerprints and the way to accept", () => {
  const urn =
    "urn:pulumi:dev::agent-host::agent-host:fleet:AgentFleet$command:local:Command::agent-host-hostkey";
  expect(checkPin("vm-1", keys.ed25519, `${keys.ed25519} other comment`, urn)).toBe(
    keys.ed25519.split(" ").slice(0, 2).join(" "),
  );
  let error: unknown;
  try {
    checkPin("vm-1", keys.ed25519, keys.ed25519b, urn);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(HostKeyChangedError);
  const message = (error as Error).message;
  expect(message).toContain(`pinned ${sshKeygenFingerprint(keys.ed25519)} when the VM was created`);
  expect(message).toContain(`now published ${sshKeygenFingerprint(keys.ed25519b)}`);
  expect(message).toContain("Nothing was sent to the VM.");
  expect(message).toContain(`accept it with: pulumi up --replace '${urn}'`);
});

test("the known_hosts line is one OpenSSH accepts for the alias and rejects for another key", () => {
  const file = path.join(dir, "known_hosts");
  writeFileSync(file, knownHostsLine("agent-host-vm-1", keys.ed25519));
  const found = (line: string) =>
    spawnSync("ssh-keygen", ["-F", "agent-host-vm-1", "-f", file], {
      encoding: "utf8",
    }).stdout.includes(line.split(" ")[1]);
  expect(found(keys.ed25519)).toBe(true);
  expect(found(keys.ed25519b)).toBe(false);
  expect(() => knownHostsLine("a b", keys.ed25519)).toThrow("is not a plain host name");
});
