// Headroom (issue 22): GCE refuses a metadata value above 256 KiB, and the user-data carries
// every host file. The largest config a team may write (many agents, 30 people's RSA-4096 keys,
// 150 extra packages, every option set) must stay under half of it, so the next feature and
// the next hire do not break `pulumi up`. Printed, and failed above 60%.
import { createHash } from "crypto";
import { parseConfig } from "../config";
import { hostSettingsFor } from "../cloud-init/host-config";
import {
  decodeUserData,
  encodeUserData,
  METADATA_VALUE_LIMIT_BYTES,
  renderUserData,
} from "../cloud-init/render";
import { BASE_CONFIG } from "./harness";

/** Deterministic bytes standing in for key material: sha256 chained from a seed. */
function bytes(seed: string, length: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; Buffer.concat(out).length < length; i++) {
    out.push(createHash("sha256").update(`${seed}/${i}`).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

/** An OpenSSH ssh-rsa public key of RSA-4096's size: e = 65537, a 512-byte modulus. */
function rsa4096PublicKey(owner: string): string {
  const field = (data: Buffer): Buffer => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    return Buffer.concat([length, data]);
  };
  const modulus = Buffer.concat([Buffer.from([0]), bytes(owner, 512)]);
  modulus[1] |= 0x80;
  const blob = Buffer.concat([
    field(Buffer.from("ssh-rsa")),
    field(Buffer.from([0x01, 0x00, 0x01])),
    field(modulus),
  ]);
  return `ssh-rsa ${blob.toString("base64")} ${owner}@workstation-${owner.length}.corp.example.com`;
}

const KEYS = Array.from({ length: 30 }, (_, i) => rsa4096PublicKey(`engineer${i}.lastname`));
const PACKAGES = Array.from({ length: 150 }, (_, i) => `team-toolchain-package-${i}-dev`);

/** The largest valid config: every key that reaches the user-data set, lists at a team's size. */
const LARGEST: Record<string, string> = {
  ...BASE_CONFIG,
  "agent-host:agentCount": "24",
  "agent-host:machineType": "e2-standard-16",
  "agent-host:sshAuthorizedKeys": JSON.stringify(KEYS),
  "agent-host:extraPackages": JSON.stringify(PACKAGES),
  "agent-host:claudeCodeSource": "npm",
  "agent-host:dockerSource": "distro",
  "agent-host:agentPermissionMode": "acceptEdits",
  "agent-host:repository":
    "https://github.example.com/a-rather-long-organization-name/the-main-monorepo-of-the-team.git",
  "agent-host:gitUserName": "The Agent Fleet of the Platform Engineering Team",
  "agent-host:gitUserEmail":
    "platform-engineering-agent-fleet@a-rather-long-company-name.example.com",
  "agent-host:claudeEnv": JSON.stringify(
    Array.from({ length: 20 }, (_, i) => `TEAM_SETTING_NUMBER_${i}=some-fairly-long-value-${i}`),
  ),
  "agent-host:claudeModel": "claude-opus-4-1-20250805",
  "agent-host:anthropicBaseUrl":
    "https://llm-gateway.internal.a-rather-long-company-name.example.com/anthropic",
  "agent-host:workHoursStart": "07:30",
  "agent-host:workHoursStop": "20:00",
  "agent-host:workDays": "Mon-Fri",
  "agent-host:workTimeZone": "America/Argentina/ComodRivadavia",
  "agent-host:autoStopMinutes": "1440",
  "agent-host:notifyOnIdle": "true",
  "agent-host:spot": "true",
};

const DEPLOY_KEY = rsa4096PublicKey("pulumi-deploy");

test("the largest valid config's user-data is under 60% of GCE's metadata limit (target: 50%)", () => {
  const { config } = parseConfig(LARGEST);
  expect(config.sshAuthorizedKeys).toHaveLength(30);
  expect(config.extraPackages).toHaveLength(150);
  const text = renderUserData(hostSettingsFor(config, [DEPLOY_KEY, ...config.sshAuthorizedKeys]));
  // What the metadata value holds: the text gzipped, then base64 (cloud-init/render.ts).
  const value = encodeUserData(text);
  expect(decodeUserData(value)).toBe(text);
  const bytes = Buffer.byteLength(value, "utf8");
  const percent = (100 * bytes) / METADATA_VALUE_LIMIT_BYTES;
  console.log(
    `user-data, largest config: ${bytes} bytes = ${percent.toFixed(1)}% of GCE's ${METADATA_VALUE_LIMIT_BYTES}-byte metadata limit`,
  );
  expect(percent).toBeLessThanOrEqual(60);
});

test("the same settings render the same bytes (gzip with no timestamp, fixed level and OS byte)", () => {
  const { config } = parseConfig(LARGEST);
  const settings = hostSettingsFor(config, [DEPLOY_KEY]);
  const first = encodeUserData(renderUserData(settings));
  expect(encodeUserData(renderUserData(settings))).toBe(first);
  const gz = Buffer.from(first, "base64");
  // RFC 1952: ID1 ID2 CM FLG MTIME(4) XFL OS.
  expect([...gz.subarray(0, 3)]).toEqual([0x1f, 0x8b, 8]);
  expect(gz.readUInt32LE(4)).toBe(0);
  expect(gz[9]).toBe(255);
});
