// config-keys.ts is the one declaration of every `agent-host:` key. The README's configuration
// table is generated from it (npm run docs:config) and checked here word for word; Pulumi.yaml's
// `config:` block and docs/configuration.md's per-key detail are written by hand beside it, so
// this suite fails, naming the key and the difference, as soon as either drifts; and it checks that parseConfig reads and
// validates every key the table declares.
import { readFileSync } from "fs";
import * as path from "path";
import { parse } from "yaml";
import { CONFIG_KEYS, ConfigError, parseConfig, type RawConfig } from "../config";
import { CONFIG_KEY_TABLE, type ConfigKeySpec } from "../config-keys";
import { WORK_HOURS_DEFAULTS } from "../schedule";
import { BASE_CONFIG } from "./harness";
import { readmeDefault, tableRows } from "./readme-tables";
import { readmeTable, renderConfigTable } from "../scripts/config-table";

const ROOT = path.join(__dirname, "..");
const TABLE: Readonly<Record<string, ConfigKeySpec>> = CONFIG_KEY_TABLE;
const KEYS = Object.keys(TABLE);
const declared: Record<string, Record<string, unknown>> = parse(
  readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"),
).config;
const README = readFileSync(path.join(ROOT, "README.md"), "utf8");
const readmeRows = tableRows(README, "Configuration");
/** docs/configuration.md's per-key table: hand-written detail, held to the same key set. */
const detailRows = tableRows(
  readFileSync(path.join(ROOT, "docs", "configuration.md"), "utf8"),
  "Every key in detail",
);

const show = (value: unknown): string => (value === undefined ? "none" : JSON.stringify(value));
const same = (a: unknown, b: unknown): boolean => show(a) === show(b);

/** How Pulumi.yaml's entry for `key` differs from the table's; [] when it agrees. */
function pulumiYamlDrift(key: string): string[] {
  const spec = TABLE[key];
  const entry = declared[key];
  if (entry === undefined) return [`${key}: missing from Pulumi.yaml's config block`];
  const drift: string[] = [];
  const differs = (what: string, yamlValue: unknown, tableValue: unknown) => {
    if (!same(yamlValue, tableValue)) {
      drift.push(
        `${key}: Pulumi.yaml's ${what} is ${show(yamlValue)}, config-keys.ts says ${show(tableValue)}`,
      );
    }
  };
  differs("type", entry.type, spec.type);
  differs("items", entry.items, spec.type === "array" ? { type: "string" } : undefined);
  differs("default", entry.default, spec.default);
  if ("default" in entry !== "default" in spec) {
    drift.push(
      `${key}: Pulumi.yaml ${"default" in entry ? "has" : "has no"} default but config-keys.ts ${"default" in spec ? "has" : "has none"} (a key with no default is required by the CLI)`,
    );
  }
  differs("description", entry.description, spec.description);
  // The optional secrets carry "" defaults, which the CLI refuses under `secret: true` (see the
  // comment in Pulumi.yaml); their description says what they are instead.
  differs("secret flag", entry.secret, undefined);
  if ((spec.secret ?? false) !== String(entry.description).startsWith("Optional secret.")) {
    drift.push(
      `${key}: config-keys.ts says ${spec.secret ? "secret" : "not secret"}, but Pulumi.yaml's description ${spec.secret ? "does not start" : "starts"} with "Optional secret."`,
    );
  }
  const extra = Object.keys(entry).filter(
    (field) => !["type", "items", "default", "description"].includes(field),
  );
  if (extra.length > 0) drift.push(`${key}: Pulumi.yaml has fields the table lacks: ${extra}`);
  return drift;
}

/** How a docs table's row for `key` differs from the table's default and secret flag; [] when it agrees. */
function readmeDrift(key: string, rows = detailRows, where = "docs/configuration.md"): string[] {
  const spec = TABLE[key];
  const cells = rows.get(key);
  if (cells === undefined) return [`${key}: missing from ${where}'s configuration table`];
  const drift: string[] = [];
  // The README writes "required" for a key with no default and "unset" for an optional "".
  const expected = spec.default === undefined ? "required" : spec.default === "" ? "unset" : null;
  if (expected !== null ? cells[1] !== expected : !same(readmeDefault(cells[1]), spec.default)) {
    drift.push(
      `${key}: ${where}'s default is ${cells[1]}, config-keys.ts says ${expected ?? show(spec.default)}`,
    );
  }
  if ((spec.secret ?? false) !== cells[2].startsWith("Secret.")) {
    drift.push(
      `${key}: config-keys.ts says ${spec.secret ? "secret" : "not secret"}, but ${where}'s description ${spec.secret ? "does not start" : "starts"} with "Secret."`,
    );
  }
  return drift;
}

describe("Pulumi.yaml's config block is the table", () => {
  test("declares exactly the table's keys", () => {
    const yamlKeys = Object.keys(declared);
    expect({
      missingFromPulumiYaml: KEYS.filter((key) => !yamlKeys.includes(key)),
      notInTable: yamlKeys.filter((key) => !KEYS.includes(key)),
    }).toEqual({ missingFromPulumiYaml: [], notInTable: [] });
  });

  test.each(KEYS)("%s: type, default, description and secret flag agree", (key) => {
    expect(pulumiYamlDrift(key)).toEqual([]);
  });
});

describe("the README's configuration table is generated from the table", () => {
  test("its text is exactly what `npm run docs:config` renders from config-keys.ts", () => {
    const table = readmeTable(README);
    if (table !== renderConfigTable()) {
      throw new Error(
        "README.md's configuration table is not what config-keys.ts says: run npm run docs:config",
      );
    }
    expect([...readmeRows.keys()]).toEqual(KEYS);
    expect(readmeRows.get("sshSourceRanges")?.[1]).toBe("required");
  });
});

describe("docs/configuration.md's per-key detail covers the table", () => {
  test("lists exactly the table's keys", () => {
    const docKeys = [...detailRows.keys()];
    expect({
      missingFromDocs: KEYS.filter((key) => !docKeys.includes(key)),
      notInTable: docKeys.filter((key) => !KEYS.includes(key)),
    }).toEqual({ missingFromDocs: [], notInTable: [] });
  });

  test.each(KEYS)("%s: default and secret flag agree", (key) => {
    expect(readmeDrift(key)).toEqual([]);
  });
});

describe("config.ts reads the table", () => {
  test("its key list is the table's keys, in the table's order", () => {
    expect([...CONFIG_KEYS]).toEqual(KEYS);
    expect(() => parseConfig({ ...BASE_CONFIG, "agent-host:notAKey": "x" })).toThrow(
      `Known keys: ${KEYS.join(", ")}.`,
    );
  });

  // The CLI hands the program every declared default as a config value (lists as JSON text), so
  // each default must pass its key's rule and mean what leaving the key unset means.
  test.each(KEYS.filter((key) => TABLE[key].default !== undefined))(
    "%s: the declared default is accepted and means the same as unset",
    (key) => {
      const value = TABLE[key].default;
      const text = Array.isArray(value) ? JSON.stringify(value) : String(value);
      expect(parseConfig({ ...BASE_CONFIG, [`agent-host:${key}`]: text })).toEqual(
        parseConfig(BASE_CONFIG),
      );
    },
  );

  test("schedule.ts's work-hour defaults are the table's", () => {
    const drift = Object.entries(WORK_HOURS_DEFAULTS)
      .filter(([key, value]) => !same(value, TABLE[key]?.default))
      .map(
        ([key, value]) =>
          `${key}: schedule.ts has ${show(value)}, config-keys.ts says ${show(TABLE[key]?.default)}`,
      );
    expect(drift).toEqual([]);
  });

  test("parseConfig reads every key of the table", () => {
    const read = new Set<string>();
    const raw = new Proxy(BASE_CONFIG, {
      get(target, property, receiver) {
        if (typeof property === "string") read.add(property);
        return Reflect.get(target, property, receiver);
      },
    });
    parseConfig(raw as RawConfig);
    expect(KEYS.filter((key) => !read.has(`agent-host:${key}`))).toEqual([]);
  });

  /**
   * A value each key's own rule refuses. Adding a key adds a line here: the test below fails for
   * a key the table declares without one.
   */
  const BAD: Record<string, string> = {
    agentCount: "0",
    hostCount: "0",
    hostAgentCounts: "12,x",
    machineType: "E2 Standard 8",
    image: "projects/x/global/images/y",
    bootDiskSizeGb: "10",
    dataDiskSizeGb: "ten",
    dataDiskType: "hyperdisk-fast",
    sshSourceRanges: '["203.0.113.7"]',
    claudeCodeVersion: "latest",
    claudeCodeSource: "brew",
    dockerSource: "snap",
    dockerMode: "root",
    anthropicApiKey: "sk-ant-short",
    sshAuthorizedKeys: '["not a key"]',
    agentPermissionMode: "yolo",
    snapshotRetentionDays: "-1",
    spot: "maybe",
    deployPrivateKey: "not a private key",
    deleteDataDiskOnDestroy: "maybe",
    gitUserName: "<agents>",
    gitUserEmail: "not-an-email",
    gitCredentials: "token with spaces",
    repository: "ftp://example.test/r.git",
    extraPackages: '["Not A Package"]',
    claudeEnv: '["ANTHROPIC_API_KEY=x"]',
    claudeProvider: "openai",
    connectVia: "vpn",
    vertexRegion: "mars-north1",
    claudeModel: "not a model!",
    anthropicBaseUrl: "ftp://gateway.example.test",
    vertexBaseUrl: "not a url",
    workHoursStart: "25:00",
    workHoursStop: "9am",
    workDays: "Funday",
    workTimeZone: "Mars/Olympus",
    autoStopMinutes: "5",
    notifyWebhookUrl: "http://hooks.example.test/x",
    notifyOnIdle: "maybe",
    dashboardPort: "80",
    dashboardUrl: "http://127.0.0.1:7420/#token=abc",
  };

  test("every key of the table has a bad value below, and no other key does", () => {
    expect({
      keysWithoutBadValue: KEYS.filter((key) => !(key in BAD)),
      badValuesForNoKey: Object.keys(BAD).filter((key) => !KEYS.includes(key)),
    }).toEqual({ keysWithoutBadValue: [], badValuesForNoKey: [] });
  });

  test.each(KEYS.filter((key) => key in BAD))(
    "%s: a bad value is refused by its own rule, naming the key",
    (key) => {
      const value = BAD[key];
      let error: unknown;
      try {
        parseConfig({ ...BASE_CONFIG, [`agent-host:${key}`]: value });
      } catch (thrown) {
        error = thrown;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).not.toContain("is not a configuration key");
      expect(message.startsWith(`${key} `)).toBe(true);
      // A secret's value is never shown, not even a refused one.
      if (TABLE[key].secret) expect(message).not.toContain(value);
    },
  );
});
