// The renderer's output, checked by cloud-init's own validator (Debian's `cloud-init schema`) and
// by ajv against the JSON schema the cloud-init package ships; the shipped scripts by shellcheck.
import Ajv from "ajv-draft-04";
import addFormats from "ajv-formats";
import { parseHostConf } from "../host/conf/conf";
import { execFileSync, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "fs";
import { tmpdir } from "os";

import * as path from "path";
import { parse } from "yaml";
import { parseConfig } from "../config";
import { readHostFiles } from "../cloud-init/files";
import {
  COUNT_DERIVED_KEYS,
  hostSettingsFor,
  renderBootHostConf,
  renderHostConf,
} from "../cloud-init/host-config";
import {
  encodeUserData,
  METADATA_VALUE_LIMIT_BYTES,
  renderUserData,
  USER_DATA_ENCODING,
} from "../cloud-init/render";
import { renderFromArgs } from "../scripts/render";
import { BASE_CONFIG } from "./harness";

const SCHEMA =
  "/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json";
const DEPLOY_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployDeployDeployDeployDeployDeployDeplo deploy";

function render(overrides: Record<string, string> = {}): string {
  const { config } = parseConfig({ ...BASE_CONFIG, ...overrides });
  return renderUserData(hostSettingsFor(config, [DEPLOY_KEY, ...config.sshAuthorizedKeys]));
}

const COUNTS = [1, 10, 20];
const work = mkdtempSync(path.join(tmpdir(), "render-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(COUNTS)("user-data for %i agents", (count) => {
  const text = render({ "agent-host:agentCount": String(count) });

  test("passes `cloud-init schema -c` (Debian's cloud-init)", () => {
    const file = path.join(work, `user-data-${count}.yaml`);
    writeFileSync(file, text);
    const result = spawnSync("cloud-init", ["schema", "-c", file], { encoding: "utf8" });
    expect(result.stderr).not.toMatch(/Error|Invalid/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/Valid cloud-config/);
  });

  test("passes ajv against the JSON schema the cloud-init package ships", () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    // The schema uses the formats uri, hostname and date, which ajv leaves to ajv-formats.
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")));
    const ok = validate(parse(text));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test("fits in one metadata value and carries nothing that follows the count", () => {
    expect(Buffer.byteLength(text)).toBeLessThan(METADATA_VALUE_LIMIT_BYTES);
    const doc = parse(text);
    const conf = doc.write_files.find(
      (f: { path: string }) => f.path === "/etc/agent-host/host.conf",
    );
    for (const key of COUNT_DERIVED_KEYS) expect(conf.content).not.toContain(`\n${key}=`);
    // Everything else of host.conf is there, as the reconcile command writes it.
    const { config } = parseConfig({ ...BASE_CONFIG, "agent-host:agentCount": String(count) });
    const full = renderHostConf(hostSettingsFor(config, []));
    const withoutCount = full
      .split("\n")
      .filter((line) => !COUNT_DERIVED_KEYS.some((key) => line.startsWith(`${key}=`)))
      .join("\n");
    expect(conf.content).toBe(withoutCount);
    expect(full).toContain(`\nAGENT_COUNT=${count}\n`);
  });
});

test("the user-data is the same bytes whatever agentCount is (a count change leaves the VM alone)", () => {
  const texts = COUNTS.map((count) => render({ "agent-host:agentCount": String(count) }));
  expect(new Set(texts).size).toBe(1);
  // A value that does reach the VM at boot does change it.
  expect(render({ "agent-host:claudeCodeVersion": "2.1.300" })).not.toBe(texts[0]);
});

describe("what the user-data sets up", () => {
  const text = render();
  const doc = parse(text);

  test("is deterministic", () => {
    expect(render()).toBe(text);
  });

  test("starts with #cloud-config", () => {
    expect(text.startsWith("#cloud-config\n")).toBe(true);
  });

  test("an admin user with sudo and keys only; no agent user (reconcile makes agent-N, issue 20)", () => {
    expect(doc.users).toEqual([
      {
        name: "agent-admin",
        gecos: "agent-host admin (deploys and operates the agents)",
        shell: "/bin/bash",
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        lock_passwd: true,
        ssh_authorized_keys: [DEPLOY_KEY],
      },
    ]);
    // Agent users depend on the count, which user-data must not: agentctl reconcile makes them.
    expect(doc.bootcmd).toBeUndefined();
    expect(doc.ssh_pwauth).toBe(false);
    expect(doc.disable_root).toBe(true);
  });

  test("every host file plain, root-owned, with its mode; host.conf from the settings", () => {
    const files = readHostFiles();
    for (const file of files) {
      const written = doc.write_files.find((f: { path: string }) => f.path === file.path);
      // The whole document is compressed (encodeUserData); each file inside it is plain.
      expect(written).toEqual({
        path: file.path,
        owner: "root:root",
        permissions: file.mode,
        content: file.content,
      });
    }
    const { config } = parseConfig({ ...BASE_CONFIG });
    expect(
      doc.write_files.find((f: { path: string }) => f.path === "/etc/agent-host/host.conf").content,
    ).toBe(renderBootHostConf(hostSettingsFor(config, [])));
    expect(doc.write_files).toHaveLength(files.length + 1);
  });

  test("runcmd: one script, so a failed step fails cloud-init (tests/first-boot.test.ts)", () => {
    expect(doc.runcmd).toEqual([["/usr/local/lib/agent-host/first-boot"]]);
  });

  test("packages follow the sources", () => {
    expect(doc.packages).toEqual([
      "acl",
      "ca-certificates",
      "curl",
      "gh",
      "git",
      "gnupg",
      "jq",
      "nodejs",
      "npm",
      "tmux",
    ]);
    // dockerMode rootless (the default) from the distro: what rootless Docker needs comes too.
    expect(
      parse(
        render({ "agent-host:dockerSource": "distro", "agent-host:claudeCodeSource": "native" }),
      ).packages,
    ).toEqual([
      "acl",
      "ca-certificates",
      "curl",
      "dbus-user-session",
      "docker.io",
      "gh",
      "git",
      "gnupg",
      "jq",
      "nodejs",
      "rootlesskit",
      "slirp4netns",
      "tmux",
      "uidmap",
    ]);
    expect(
      parse(
        render({
          "agent-host:dockerSource": "distro",
          "agent-host:dockerMode": "shared",
          "agent-host:claudeCodeSource": "native",
        }),
      ).packages,
    ).toEqual([
      "acl",
      "ca-certificates",
      "curl",
      "docker.io",
      "gh",
      "git",
      "gnupg",
      "jq",
      "nodejs",
      "tmux",
    ]);
  });

  test("extraPackages join the packages, once each", () => {
    expect(
      parse(
        render({
          "agent-host:claudeCodeSource": "native",
          "agent-host:dockerSource": "distro",
          "agent-host:dockerMode": "shared",
          "agent-host:extraPackages": JSON.stringify([
            "ripgrep",
            "build-essential",
            "jq",
            "ripgrep",
          ]),
        }),
      ).packages,
    ).toEqual([
      "acl",
      "build-essential",
      "ca-certificates",
      "curl",
      "docker.io",
      "gh",
      "git",
      "gnupg",
      "jq",
      "nodejs",
      "ripgrep",
      "tmux",
    ]);
  });

  test("host.conf carries the git identity, repository, token host and packages, never the secret", () => {
    const canary = "ghp_CANARYrender0123456789abcdef";
    const { config } = parseConfig({
      ...BASE_CONFIG,
      "agent-host:gitUserName": "Acme Agents",
      "agent-host:gitUserEmail": "agents@acme.example",
      "agent-host:repository": "https://git.acme.example:8443/team/app.git",
      "agent-host:gitCredentials": canary,
      "agent-host:extraPackages": JSON.stringify(["ripgrep", "build-essential"]),
    });
    const conf = renderHostConf(hostSettingsFor(config, []));
    expect(conf.split("\n").filter((line) => /^(GIT_|EXTRA_PACKAGES=)/.test(line))).toEqual([
      "GIT_CREDENTIAL_HOST=git.acme.example:8443",
      "GIT_USER_NAME=Acme Agents",
      "GIT_USER_EMAIL=agents@acme.example",
      "GIT_REPOSITORY=https://git.acme.example:8443/team/app.git",
      "EXTRA_PACKAGES=build-essential ripgrep",
    ]);
    expect(JSON.stringify(config)).not.toContain(canary);
    expect(renderUserData(hostSettingsFor(config, [DEPLOY_KEY]))).not.toContain(canary);
  });

  test("claudeEnv reaches host.conf as CLAUDE_ENV, space-separated, and the host's parser takes it", () => {
    const pairs = [
      "HTTPS_PROXY=http://proxy.internal:3128",
      "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    ];
    const { config } = parseConfig({
      ...BASE_CONFIG,
      "agent-host:claudeEnv": JSON.stringify(pairs),
    });
    const conf = renderHostConf(hostSettingsFor(config, []));
    expect(conf).toContain(`\nCLAUDE_ENV=${pairs.join(" ")}\n`);
    expect(parseHostConf(conf).claudeEnv).toBe(pairs.join(" "));
    expect(parseHostConf(conf).errors).toEqual({});
    // Unset: no line, and the host's default (none) applies.
    expect(renderHostConf(hostSettingsFor(parseConfig({ ...BASE_CONFIG }).config, []))).not.toMatch(
      /^CLAUDE_ENV=/m,
    );
  });

  test("host.conf sizes the agents from the machine", () => {
    expect(renderHostConf(hostSettingsFor(parseConfig({ ...BASE_CONFIG }).config, []))).toBe(
      [
        "# Written by agent-host (pulumi up). Parsed by the host scripts, never sourced.",
        "AGENT_COUNT=10",
        "AGENT_MAX=20",
        "AGENT_USER=agent",
        "ADMIN_USER=agent-admin",
        "AGENT_MEMORY_MAX_MB=3072",
        "AGENT_CPU_QUOTA_PERCENT=160",
        "AGENTS_MEMORY_MAX_MB=30720",
        "DATA_DEVICE=/dev/disk/by-id/google-workspaces",
        "API_KEY_FILE=/etc/agent-host/secrets/anthropic-api-key",
        "AUTO_STOP_SECONDS=3600",
        "CLAUDE_PROVIDER=anthropic",
        // The keys config-keys.ts sends as they are (`host`), in the table's order.
        "CLAUDE_CODE_VERSION=2.1.331",
        "CLAUDE_CODE_SOURCE=npm",
        "DOCKER_SOURCE=docker-apt",
        "DOCKER_MODE=rootless",
        "PERMISSION_MODE=default",
        "NOTIFY_ON_IDLE=true",
        "DASHBOARD_PORT=7420",
        "",
      ].join("\n"),
    );
  });

  test("never carries the API key", () => {
    const canary = "sk-ant-api03-CANARY-render-0123456789";
    const withKey = render({ "agent-host:anthropicApiKey": canary });
    expect(withKey).not.toContain(canary);
    expect(withKey).toBe(text);
  });

  test("refuses a user-data above GCE's metadata limit", () => {
    const { config } = parseConfig({ ...BASE_CONFIG });
    const huge = readHostFiles().map((f) =>
      f.source === "host/agentctl"
        ? // Incompressible, like a host file full of embedded data would be.
          { ...f, content: randomBytes(METADATA_VALUE_LIMIT_BYTES).toString("base64") }
        : f,
    );
    expect(() => renderUserData(hostSettingsFor(config, []), huge)).toThrow(
      /^The rendered user-data is \d+ bytes encoded, above GCE's 262144-byte metadata limit/,
    );
  });
});

describe("cloud-init's own write_files module (this machine's cloud-init)", () => {
  // tests/fixtures/cloud-init-write-files: cc_write_files.write_files on the rendered user-data,
  // as root in a private mount namespace whose /etc and /usr/local are overlays, so the files
  // cloud-init writes are read back here from the overlays' upper directories.
  const isRoot = process.getuid?.() === 0;
  (isRoot ? test : test.skip)(
    "reads the encoded metadata value as the GCE datasource does and writes every host file with the source's exact bytes, mode and root owner",
    () => {
      // The instance's metadata as the stack sets it: the encoded value and its encoding.
      const userData = path.join(work, "instance-attributes.json");
      writeFileSync(
        userData,
        JSON.stringify({
          "user-data": encodeUserData(render({ "agent-host:dockerSource": "distro" })),
          [USER_DATA_ENCODING.key]: USER_DATA_ENCODING.value,
        }),
      );
      const upper = mkdtempSync(path.join(tmpdir(), "render-write-files-"));
      try {
        const result = spawnSync(
          path.join(__dirname, "fixtures", "cloud-init-write-files"),
          [userData, upper],
          { encoding: "utf8" },
        );
        expect(result.stderr).toBe("");
        expect(result.status).toBe(0);
        const files = readHostFiles();
        const { config } = parseConfig({ ...BASE_CONFIG, "agent-host:dockerSource": "distro" });
        const expected = [
          ...files,
          {
            path: "/etc/agent-host/host.conf",
            mode: "0644",
            content: renderBootHostConf(hostSettingsFor(config, [])),
          },
        ];
        for (const file of expected) {
          const written = path.join(
            upper,
            file.path.replace(/^\/usr\/local\//, "usr/local/").replace(/^\/etc\//, "etc/"),
          );
          const stat = statSync(written);
          expect({
            path: file.path,
            mode: (stat.mode & 0o7777).toString(8),
            uid: stat.uid,
          }).toEqual({
            path: file.path,
            mode: file.mode.replace(/^0/, ""),
            uid: 0,
          });
          expect(readFileSync(written).equals(Buffer.from(file.content, "utf8"))).toBe(true);
        }
      } finally {
        rmSync(upper, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

describe("npm run render", () => {
  test("prints what the stack renders for that config", () => {
    const out = execFileSync(
      "npx",
      [
        "ts-node",
        "--transpile-only",
        "scripts/render.ts",
        "--set",
        "agentCount=3",
        "--set",
        "dockerSource=distro",
      ],
      {
        cwd: path.join(__dirname, ".."),
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    expect(out).toBe(renderFromArgs(["--set", "agentCount=3", "--set", "dockerSource=distro"]));
    // The count is not in user-data (README, Architecture); the source setting is.
    expect(out).toMatch(/\n\s+DOCKER_SOURCE=distro\n/);
    const conf = (
      parse(out) as { write_files: { path: string; content: string }[] }
    ).write_files.find((f) => f.path === "/etc/agent-host/host.conf");
    expect(conf?.content).not.toMatch(/^AGENT_COUNT=/m);
  }, 60_000);

  test("reads a stack file", () => {
    const out = renderFromArgs(["--config", path.join(__dirname, "..", "Pulumi.dev.yaml")]);
    expect(out).toContain("PERMISSION_MODE=acceptEdits\n");
  });

  test("a bad value exits 2 with the config message", () => {
    const result = spawnSync(
      "npx",
      ["ts-node", "--transpile-only", "scripts/render.ts", "--set", "agentCount=0"],
      {
        cwd: path.join(__dirname, ".."),
        encoding: "utf8",
      },
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      "agentCount must be at least 1; got 0. Run: pulumi config set agentCount 10",
    );
  }, 60_000);
});

describe("shipped shell files", () => {
  // Shell scripts only: agent-host.js (#!/usr/bin/env node) is checked by tsc and ESLint.
  const scripts = readHostFiles().filter((f) => /^#!.*\b(ba)?sh\b/.test(f.content));

  test("there are shell scripts to check", () => {
    expect(scripts.map((s) => s.source)).toEqual(
      expect.arrayContaining([
        "host/agentctl",
        "host/agent-wrapper",
        "host/apply",
        "host/data-disk",
      ]),
    );
  });

  test.each(scripts.map((s) => s.source))(
    "%s passes shellcheck (.shellcheckrc: enable=all)",
    (source) => {
      const result = spawnSync("shellcheck", [path.join("cloud-init", source)], {
        cwd: path.join(__dirname, ".."),
        encoding: "utf8",
      });
      expect(result.stdout).toBe("");
      expect(result.status).toBe(0);
    },
  );
});
