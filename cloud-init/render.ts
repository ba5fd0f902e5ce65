// Pure renderer: typed host settings → the #cloud-config text the VM boots with. No Pulumi
// import; the Pulumi program, `npm run render` and the boot test all call renderUserData().
import { gunzipSync, gzipSync } from "zlib";
import { stringify } from "yaml";
import {
  ADMIN_USER_NAME,
  HOST_CONF_PATH,
  renderBootHostConf,
  type HostSettings,
} from "./host-config";
import { readHostFiles, type HostFileContent } from "./files";

/** GCE refuses a metadata value above 256 KiB. */
export const METADATA_VALUE_LIMIT_BYTES = 256 * 1024;

/** RFC 1952's "unknown" operating system: zlib writes its own (3 on Linux, 19 on macOS). */
const GZIP_OS_UNKNOWN = 255;

/**
 * The user-data as the metadata value carries it: gzip, then base64, with the instance's
 * `user-data-encoding: base64` (cloud-init's DataSourceGCE.read_md base64-decodes it, then
 * user_data.convert_string gunzips it). Compressing the whole document, plain host files inside,
 * shares one dictionary across all of them: a third smaller than compressing each file alone.
 * Deterministic, so the same text gives the same value on any operator's machine: level 9,
 * mtime 0 (Node never sets one) and the OS byte fixed. Throws above GCE's limit.
 */
export function encodeUserData(text: string): string {
  const gz = gzipSync(Buffer.from(text, "utf8"), { level: 9 });
  gz[9] = GZIP_OS_UNKNOWN;
  const value = gz.toString("base64");
  if (value.length > METADATA_VALUE_LIMIT_BYTES) {
    throw new Error(
      `The rendered user-data is ${value.length} bytes encoded, above GCE's ${METADATA_VALUE_LIMIT_BYTES}-byte metadata limit. Shrink the host files under cloud-init/.`,
    );
  }
  return value;
}

/** The metadata key that tells cloud-init's GCE datasource how user-data is encoded. */
export const USER_DATA_ENCODING = { key: "user-data-encoding", value: "base64" } as const;

/** encodeUserData's inverse: the #cloud-config text cloud-init reads. */
export function decodeUserData(value: string): string {
  return gunzipSync(Buffer.from(value, "base64")).toString("utf8");
}

const LIB = "/usr/local/lib/agent-host";

/**
 * Packages every host gets; the sources add theirs (see packagesFor). acl: setfacl, which gives
 * the admin user read access to every agent's private workspace. gh: the GitHub CLI. nodejs
 * runs the host logic (agent-host.js: the hooks' recorder, the control window, send), whatever
 * the Claude Code source.
 */
const BASE_PACKAGES = [
  "acl",
  "ca-certificates",
  "curl",
  "gh",
  "git",
  "gnupg",
  "jq",
  "nodejs",
  "tmux",
];

/** What rootless Docker needs from the distro besides docker.io (install-docker's DISTRO_ROOTLESS). */
export const DISTRO_ROOTLESS_PACKAGES = [
  "dbus-user-session",
  "rootlesskit",
  "slirp4netns",
  "uidmap",
];

export function packagesFor(settings: HostSettings): string[] {
  const packages = [...BASE_PACKAGES];
  // Docker's apt repository needs its key checked first: install-docker does that in first-boot.
  if (settings.dockerSource === "distro") packages.push("docker.io");
  // Rootless mode from the distro: install-docker adds these too; listed here so cloud-init's
  // own package step brings them with docker.io (and the boot test's image caches them).
  if (settings.dockerSource === "distro" && settings.dockerMode === "rootless")
    packages.push(...DISTRO_ROOTLESS_PACKAGES);
  // The npm package's `claude` is a native binary; distro Node only runs its postinstall.
  if (settings.claudeCodeSource === "npm") packages.push("npm");
  // The team's toolchain; apply installs the ones missing on every deploy as well.
  packages.push(...settings.extraPackages);
  return [...new Set(packages)].sort();
}

/**
 * Renders the user-data. Deterministic: the same settings and host files give the same bytes,
 * whatever agentCount is (the VM updates its user-data in place, and a count change must not
 * touch the VM). The reconcile command installs the full host.conf right after the first boot.
 * Throws when the result, encoded (encodeUserData), would not fit in one metadata value.
 */
export function renderUserData(
  settings: HostSettings,
  files: readonly HostFileContent[] = readHostFiles(),
): string {
  const document = {
    users: [
      {
        name: ADMIN_USER_NAME,
        gecos: "agent-host admin (deploys and operates the agents)",
        shell: "/bin/bash",
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        lock_passwd: true,
        ssh_authorized_keys: settings.adminAuthorizedKeys,
      },
    ],
    disable_root: true,
    ssh_pwauth: false,
    package_update: true,
    packages: packagesFor(settings),
    write_files: [
      // Plain: the whole document is compressed as one (encodeUserData).
      ...files.map((file) => ({
        path: file.path,
        owner: "root:root",
        permissions: file.mode,
        content: file.content,
      })),
      {
        path: HOST_CONF_PATH,
        owner: "root:root",
        permissions: "0644",
        // Without the count-derived keys: the VM's user-data must not change with agentCount.
        content: renderBootHostConf(settings),
      },
    ],
    // One script, so a failed step fails cloud-init (runcmd entries run without `set -e`).
    runcmd: [[`${LIB}/first-boot`]],
  };
  const text = `#cloud-config\n# Rendered by agent-host. Day-2 changes go through the fleet's reconcile command, not here:\n# cloud-init runs once per VM.\n${stringify(document, { lineWidth: 0 })}`;
  // Refuses now what GCE would refuse at `pulumi up`.
  encodeUserData(text);
  return text;
}
