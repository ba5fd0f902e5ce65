// host.conf has one definition (host/conf/conf.ts HOST_KEYS: default, rule) and one parser, which every
// host script reads through (`agent-host.js conf`). Checked here: the stack writes only keys the
// host knows, with values the host's rules take; HOST.md documents exactly those keys with their
// defaults; and no script parses host.conf, or keeps a default, of its own again (seven parsers had
// drifted on whitespace and on defaults: AGENT_MEMORY_MAX_MB was 2048 in bash, 3072 in TypeScript).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BUNDLE_PATH } from "../cloud-init/host-bundle";
import {
  ADMIN_USER_NAME,
  AGENT_USER_PREFIX,
  API_KEY_PATH,
  DATA_DEVICE_NAME,
  hostSettingsFor,
  renderBootHostConf,
  renderHostConf,
  type HostSettings,
} from "../cloud-init/host-config";
import { parseConfig } from "../config";
import {
  HOST_KEYS,
  HOST_KEY_NAMES,
  SCRIPT_VARS,
  parseHostConf,
  type HostKey,
  type Script,
} from "../host/conf/conf";
import { BASE_CONFIG } from "./harness";

const HOST = path.join(__dirname, "..", "cloud-init");
const read = (file: string) => fs.readFileSync(path.join(HOST, file), "utf8");

/** The stack's settings with every optional one filled in, so every key it can write is written. */
function fullSettings(): HostSettings {
  const base = hostSettingsFor(
    parseConfig({
      ...BASE_CONFIG,
      "agent-host:gitUserName": "n",
      "agent-host:gitUserEmail": "e@example.test",
      "agent-host:repository": "https://example.test/r.git",
      "agent-host:extraPackages": '["ripgrep"]',
    }).config,
    [],
  );
  return {
    ...base,
    gitCredentialHost: "example.test",
    claude: {
      ...base.claude,
      provider: "vertex",
      vertexProjectId: "p",
      vertexRegion: "global",
      model: "m",
      anthropicBaseUrl: "https://gateway.example.test",
      vertexBaseUrl: "https://vertex.example.test/v1",
    },
  };
}

const writtenKeys = (text: string) => [...text.matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]);

/** HOST.md's host.conf table: [key, default as written ("" for "(none)")], in order. */
function hostMdRows(): [string, string][] {
  const text = read("HOST.md");
  const table = text.slice(text.indexOf("## `/etc/agent-host/host.conf`"));
  return [...table.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+) \|/gm)].map((m) => {
    const def = m[2].trim();
    return [m[1], def === "(none)" ? "" : def.replace(/^`|`$/g, "")];
  });
}

/** The scripts that read host.conf; conf.ts SCRIPT_VARS names the variables each gets. */
const SCRIPTS = Object.keys(SCRIPT_VARS) as Script[];
/** Every variable name some script gets from host.conf. */
const ALL_VARS = new Set(SCRIPTS.flatMap((s) => Object.keys(SCRIPT_VARS[s])));
/** The host.conf variables a script expands (`${name}`, `${name%...}`, `${CONF[name]}`). */
function varsUsed(text: string): string[] {
  const code = text
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n");
  const used = [...code.matchAll(/\$\{(?:CONF\[)?([a-z_][a-z0-9_]*)/g)].map((m) => m[1]);
  return [...new Set(used.filter((v) => ALL_VARS.has(v)))].sort();
}

test.each([
  ["the stack's host.conf", () => renderHostConf(fullSettings())],
  ["the boot host.conf (user-data)", () => renderBootHostConf(fullSettings())],
  [
    "the base config's host.conf",
    () => renderHostConf(hostSettingsFor(parseConfig(BASE_CONFIG).config, [])),
  ],
])("%s: every key is the host's, and the host's rules take every value", (_, render) => {
  const text = render();
  const conf = parseHostConf(text, "host.conf");
  expect(conf.warnings).toEqual([]);
  expect(conf.errors).toEqual({});
  expect(writtenKeys(text).length).toBeGreaterThan(10);
});

test("HOST.md's table documents exactly the host's keys, in order, with the host's defaults", () => {
  expect(hostMdRows()).toEqual(HOST_KEY_NAMES.map((k) => [k, HOST_KEYS[k].default]));
});

test("the fixed values the stack writes are the host's defaults", () => {
  const conf = parseHostConf(renderHostConf(fullSettings())).raw;
  expect([conf.AGENT_USER, conf.ADMIN_USER, conf.API_KEY_FILE, conf.DATA_DEVICE]).toEqual([
    HOST_KEYS.AGENT_USER.default,
    HOST_KEYS.ADMIN_USER.default,
    HOST_KEYS.API_KEY_FILE.default,
    HOST_KEYS.DATA_DEVICE.default,
  ]);
  expect([AGENT_USER_PREFIX, ADMIN_USER_NAME, API_KEY_PATH]).toEqual([
    conf.AGENT_USER,
    conf.ADMIN_USER,
    conf.API_KEY_FILE,
  ]);
  expect(conf.DATA_DEVICE).toBe(`/dev/disk/by-id/google-${DATA_DEVICE_NAME}`);
});

test.each(SCRIPTS)(
  "%s reads host.conf only through agent-host.js conf, with no parser or defaults of its own",
  (file) => {
    const text = read(`host/${file}`);
    const vars = SCRIPT_VARS[file] as Record<string, HostKey>;
    expect(text).toMatch(new RegExp(`node "\\$\\{AGENT_HOST_JS\\}" conf .*--vars ${file}\\b`));
    // The old shapes: a KEY=value read loop, a sed of one key, a table of defaults.
    expect(text).not.toMatch(/\[\[ "\$\{line\}" =~ \^/);
    expect(text).not.toMatch(/sed -n "s\/\^\$1=/);
    expect(text).not.toMatch(/set_defaults|KNOWN_KEYS|CONF_KEYS/);
    for (const [name, k] of Object.entries(vars)) {
      const def = HOST_KEYS[k].default;
      if (def.length > 2) expect([name, text.includes(`${name}=${def}`)]).toEqual([name, false]);
    }
    // It uses only variables load_config gets for it, and (agentctl, which checks the wrappers'
    // keys too, aside) every one it gets.
    const used = varsUsed(text);
    expect(used.filter((v) => !(v in vars))).toEqual([]);
    if (file !== "agentctl") expect(used).toEqual(Object.keys(vars).sort());
  },
);

// first-boot has no key of its own (the docker group moved to agentctl reconcile, per agent): the
// installers and agentctl it runs read host.conf through agent-host.js conf.
test("first-boot reads no host.conf of its own", () => {
  const text = read("host/first-boot");
  expect(text).not.toMatch(/host\.conf|agent-host\.js" conf/);
  expect(text).not.toMatch(/sed -n ["']s\/\^(\$1|[A-Z_]+)=/);
});

// apply is TypeScript now (host/apply/apply.ts): it takes the one parser itself, and its bash entry
// point (cloud-init/host/apply) reads no host.conf at all.
test("apply reads host.conf through host/conf/conf.ts only", () => {
  const ts = fs.readFileSync(path.join(__dirname, "..", "host", "apply", "apply.ts"), "utf8");
  expect(ts).toMatch(/import \{[^}]*\bparseHostConf\b[^}]*\} from "\.\.\/conf\/conf"/);
  expect(ts).not.toMatch(/split\("\\n"\)|\.split\("="\)|indexOf\("="\)/);
  const entry = read("host/apply")
    .split("\n")
    .filter((line) => !/^\s*#/.test(line))
    .join("\n");
  expect(entry).not.toMatch(/host\.conf\b|\bCONF\b|agent-host\.js" conf/);
});

test("the parser: last value wins, trailing blanks go, bad lines and unknown keys warn with their line", () => {
  const conf = parseHostConf(
    "# c\nRUN_DIR=/run/a\n  RUN_DIR=/run/b  \r\nbogus\nTYPO_KEY=1\nAGENT_MAX=x\n",
    "/f",
  );
  expect(conf.runDir).toBe("/run/b");
  expect(conf.warnings).toEqual([
    "/f:4: not KEY=value, ignored",
    "/f:5: unknown key TYPO_KEY, ignored",
  ]);
  expect(conf.errors).toEqual({
    AGENT_MAX: "AGENT_MAX=x in /f is not a whole number from 1 to 999999; fix the config",
  });
  expect(conf.agentMax).toBe(24);
});

test.each([
  [
    "PERMISSION_MODE=yolo",
    "PERMISSION_MODE",
    /is not a Claude Code permission mode; use one of: default auto/,
  ],
  [
    "CLAUDE_PROVIDER=vertex\nVERTEX_REGION=global",
    "CLAUDE_PROVIDER",
    /needs VERTEX_PROJECT_ID and VERTEX_REGION \(got '', 'global'\); set both/,
  ],
  [
    "CLAUDE_ENV=HTTPS_PROXY=http://p ANTHROPIC_API_KEY=x",
    "CLAUDE_ENV",
    /'ANTHROPIC_API_KEY=x', which sets ANTHROPIC_API_KEY, which comes from its own setting/,
  ],
  ["CLAUDE_ENV=lower=1", "CLAUDE_ENV", /'lower=1', which is not NAME=value/],
  ["STOP_TIMEOUT_SECONDS=5s", "STOP_TIMEOUT_SECONDS", /is not a number of seconds/],
  ["AUTO_STOP_POLL_SECONDS=0", "AUTO_STOP_POLL_SECONDS", /above 0/],
  ["DATA_MOUNT=/", "DATA_MOUNT", /must not be \//],
  ["WORKSPACES_DIR=workspaces", "WORKSPACES_DIR", /is not an absolute path/],
  ["AGENT_USER=Agent Smith", "AGENT_USER", /is not a plain user name/],
  ["CLAUDE_CODE_VERSION=2.1.331-beta", "CLAUDE_CODE_VERSION", /is not an exact release/],
  ["DOCKER_KEY_FINGERPRINT=ABC", "DOCKER_KEY_FINGERPRINT", /40-hex-digit/],
])("%j: %s is refused, naming key, value and fix", (text, key, message) => {
  const conf = parseHostConf(text, "/etc/agent-host/host.conf");
  expect(Object.keys(conf.errors)).toEqual([key]);
  expect(conf.errors[key as HostKey]).toMatch(
    new RegExp(`^${key}=.* in /etc/agent-host/host.conf `),
  );
  expect(conf.errors[key as HostKey]).toMatch(message);
});

describe("agent-host.js conf --vars: a script's own names", () => {
  const run = (args: string[], text: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "conf-vars-"));
    try {
      fs.writeFileSync(path.join(dir, "host.conf"), text);
      const r = spawnSync(
        "node",
        [BUNDLE_PATH, "conf", "--file", path.join(dir, "host.conf"), ...args],
        {
          encoding: "utf8",
        },
      );
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  test("prints each of the script's variables, in its table's order, defaults filled in", () => {
    const r = run(["--as", "data-disk", "--vars", "data-disk"], "RUN_DIR=/run/x\nAGENT_MAX=3\n");
    expect(r).toEqual({
      status: 0,
      stderr: "",
      stdout: Object.entries(SCRIPT_VARS["data-disk"])
        .map(([name, key]) => `${name}=${key === "RUN_DIR" ? "/run/x" : HOST_KEYS[key].default}\n`)
        .join(""),
    });
  });

  test("names pick among the script's; a key's own name, or another script's, is refused", () => {
    expect(run(["--vars", "agentctl", "admin_user"], "ADMIN_USER=boss\n").stdout).toBe(
      "admin_user=boss\n",
    );
    const key = run(["--as", "agentctl", "--vars", "agentctl", "ADMIN_USER"], "");
    expect([key.status, key.stdout, key.stderr]).toEqual([
      2,
      "",
      "agentctl: conf: 'ADMIN_USER' is not one of agentctl's\n",
    ]);
    const other = run(["--vars", "agentctl", "data_mount"], "");
    expect([other.status, other.stdout]).toEqual([2, ""]);
    const unknown = run(["--vars", "nobody"], "");
    expect([unknown.status, unknown.stdout]).toEqual([2, ""]);
    expect(unknown.stderr).toMatch(/--vars 'nobody' is not a script that reads host.conf/);
  });

  test("a bad value of one of its keys: exit 2, nothing on stdout, the key, value and fix named", () => {
    const r = run(["--as", "data-disk", "--vars", "data-disk"], "DATA_MOUNT=/\n");
    expect([r.status, r.stdout]).toEqual([2, ""]);
    expect(r.stderr).toMatch(
      /^data-disk: DATA_MOUNT=\/ in .*host\.conf must not be \/; fix the config\n$/,
    );
    // Another script's key being bad does not stop this one.
    expect(run(["--vars", "install-claude-code"], "DATA_MOUNT=/\n").status).toBe(0);
  });
});
