// Pulumi.yaml and every Pulumi.<stack>.yaml in the repository, put through the Pulumi CLI's own
// configuration rules (tests/engine/config-rules.ts, ported from pulumi/pulumi with each source
// cited there): what `pulumi up` and `pulumi preview` would refuse before running the program.
// The SDK's mocks apply none of these rules, so the stack's other suites cannot see such a refusal.
import { readdirSync, readFileSync } from "fs";
import * as path from "path";
import { parse } from "yaml";
import { parseConfig } from "../config";
import { expectConfigError, thrownBy } from "./errors";
import {
  asRawConfig,
  CliError,
  configForUp,
  loadProject,
  loadProjectStack,
  mergeConfig,
  undeclaredProjectKeys,
  validateConfigValue,
  type Project,
} from "./engine/config-rules";

const ROOT = path.join(__dirname, "..");
const read = (file: string): unknown => parse(readFileSync(file, "utf8"));

/** Every stack file the repository holds: Pulumi.<stack>.yaml beside Pulumi.yaml. */
const STACK_FILES = readdirSync(ROOT)
  .filter((file) => /^Pulumi\.[^.]+\.ya?ml$/.test(file))
  .sort();
const stackName = (file: string): string => file.replace(/^Pulumi\.|\.ya?ml$/g, "");

/** Pulumi.yaml as committed before issue 12: three optional keys without a default. */
const PRE_FIX_PROJECT = path.join(ROOT, "tests/fixtures/engine/Pulumi.pre-issue-12.yaml");

/** The keys this stack requires on purpose (README: "required"); every other key needs a default. */
const REQUIRED_KEYS = ["sshSourceRanges"];

const project = loadProject(read(path.join(ROOT, "Pulumi.yaml")));

function stackFrom(text: string, proj: Project = project) {
  return loadProjectStack(proj, parse(text)).config;
}

/** The error `pulumi up` stops with for this project and stack text, or undefined. */
function upError(proj: Project, stackText: string, name = "dev"): string | undefined {
  try {
    configForUp(name, proj, stackFrom(stackText, proj));
    return undefined;
  } catch (error) {
    if (error instanceof CliError) return error.message;
    throw error;
  }
}

function projectError(yamlText: string): string | undefined {
  try {
    loadProject(parse(yamlText));
    return undefined;
  } catch (error) {
    if (error instanceof CliError) return error.message;
    throw error;
  }
}

describe("Pulumi.yaml as the CLI loads it", () => {
  test("passes the project schema and (*Project).Validate", () => {
    expect(project.name).toBe("agent-host");
    expect(Object.keys(project.config).length).toBeGreaterThan(20);
  });

  test.each(Object.keys(project.config))(
    "%s: typed, described, and a default unless required",
    (key) => {
      const declaration = project.config[key];
      expect(declaration.type).toBeDefined();
      expect(declaration.description?.length).toBeGreaterThan(20);
      if (REQUIRED_KEYS.includes(key)) {
        expect(declaration.default).toBeUndefined();
        expect(declaration.description).toMatch(/Required/);
      } else {
        // mergeConfig: a project key with no default and no stack value is "missing".
        expect(declaration.default).toBeDefined();
      }
    },
  );

  test("no key is `secret: true` with a default (the CLI applies the default in plain text, then refuses it)", () => {
    const secretWithDefault = Object.entries(project.config).filter(
      ([, declaration]) => declaration.secret === true && declaration.default !== undefined,
    );
    expect(secretWithDefault).toEqual([]);
  });

  test("a stack that sets only the required keys is accepted, and the program reads the defaults it is handed", () => {
    const stack = stackFrom(
      "config:\n  gcp:project: my-agent-host-project\n  gcp:zone: europe-west1-b\n  agent-host:sshSourceRanges: [203.0.113.7/32]\n",
    );
    const merged = configForUp("dev", project, stack);
    const raw = asRawConfig(merged);
    // createConfigValue: "" for the optional strings, JSON for lists, text for the rest.
    expect(raw["agent-host:gitUserName"]).toBe("");
    expect(raw["agent-host:repository"]).toBe("");
    expect(raw["agent-host:extraPackages"]).toBe("[]");
    expect(raw["agent-host:agentCount"]).toBe("10");
    const { config, warnings } = parseConfig(raw);
    expect(config.gitUserName).toBeUndefined();
    expect(config.gitUserEmail).toBeUndefined();
    expect(config.repository).toBeUndefined();
    expect(config.hasApiKey).toBe(false);
    expect(warnings).toEqual([]);
  });
});

describe('config.ts reads the "" default of an optional key as unset', () => {
  const base = {
    "gcp:project": "my-agent-host-project",
    "gcp:zone": "europe-west1-b",
    "agent-host:sshSourceRanges": '["203.0.113.7/32"]',
  };

  test.each(["", "  "])("gitUserName and gitUserEmail %j: no identity, no error", (blank) => {
    const { config } = parseConfig({
      ...base,
      "agent-host:gitUserName": blank,
      "agent-host:gitUserEmail": blank,
    });
    expect(config.gitUserName).toBeUndefined();
    expect(config.gitUserEmail).toBeUndefined();
  });

  test('repository "": no repository; a real one is still parsed', () => {
    expect(parseConfig({ ...base, "agent-host:repository": "" }).config.repository).toBeUndefined();
    expect(
      parseConfig({ ...base, "agent-host:repository": "https://github.com/acme/app.git" }).config
        .repository,
    ).toBe("https://github.com/acme/app.git");
  });

  test('gitUserName set with gitUserEmail left at its "" default is refused, naming the missing key', () => {
    expectConfigError(
      thrownBy(() =>
        parseConfig({
          ...base,
          "agent-host:gitUserName": "Acme Agents",
          "agent-host:gitUserEmail": "",
        }),
      ),
      {
        key: "gitUserEmail",
        said: "is not set",
        fix: "pulumi config set gitUserEmail agents@acme.example",
      },
    );
  });
});

describe.each(STACK_FILES)("%s under the CLI's rules", (file) => {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const name = stackName(file);
  const loaded = loadProjectStack(project, parse(text));

  test("loads with no warning (every key parses, none is empty)", () => {
    expect(loaded.warnings).toEqual([]);
  });

  test("`pulumi up` accepts it: no missing required key, every value of its declared type", () => {
    expect(upError(project, text, name)).toBeUndefined();
  });

  test("sets every key Pulumi.yaml declares without a default", () => {
    for (const [key, declaration] of Object.entries(project.config)) {
      if (declaration.default === undefined)
        expect(loaded.config.has(`agent-host:${key}`)).toBe(true);
    }
  });

  test("sets no project key Pulumi.yaml does not declare (the CLI passes such keys on; the program refuses them)", () => {
    expect(undeclaredProjectKeys(project, loaded.config)).toEqual([]);
  });

  test("the merged config the CLI hands the program passes config.ts", () => {
    const merged = configForUp(name, project, loaded.config);
    expect(() => parseConfig(asRawConfig(merged))).not.toThrow();
  });
});

describe("the rules catch what the CLI refuses", () => {
  test("there is at least one stack file to check", () => {
    expect(STACK_FILES).toContain("Pulumi.dev.yaml");
  });

  test("Pulumi.yaml before issue 12 + Pulumi.dev.yaml: `pulumi up` stops, naming the three keys", () => {
    const before = loadProject(read(PRE_FIX_PROJECT));
    const dev = readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
    // config.go `missingStackConfigurationKeysError` / `formatMissingKeys`, wrapped by up.go.
    expect(upError(before, dev)).toBe(
      "validating stack config: Stack 'dev' is missing configuration values 'gitUserEmail', 'gitUserName' and 'repository'",
    );
    // `config get` applies defaults without validating: it does not see the problem.
    expect(() => mergeConfig("dev", before, stackFrom(dev, before), false)).not.toThrow();
  });

  const tiny = (declarations: string): Project =>
    loadProject(parse(`name: agent-host\nruntime: nodejs\nconfig:\n${declarations}`));

  test("a project key without a default, unset by the stack, is missing (one key: singular)", () => {
    const proj = tiny("  region:\n    type: string\n");
    expect(upError(proj, "config: {}\n")).toBe(
      "validating stack config: Stack 'dev' is missing configuration value 'region'",
    );
    expect(upError(proj, "config:\n  region: west\n")).toBeUndefined();
  });

  test("a bare key in the stack file is the project's; another namespace's key is left alone", () => {
    const proj = tiny("  region:\n    type: string\n");
    const stack = stackFrom("config:\n  region: west\n  gcp:project: p-123456\n", proj);
    expect([...stack.keys()].sort()).toEqual(["agent-host:region", "gcp:project"]);
    // gcp:project is declared nowhere in the project: neither required nor type-checked.
    expect(upError(proj, "config:\n  region: west\n  gcp:project: [1, 2]\n")).toBeUndefined();
    expect(undeclaredProjectKeys(proj, stack)).toEqual([]);
    expect(
      undeclaredProjectKeys(proj, stackFrom("config:\n  regoin: west\n  region: w\n", proj)),
    ).toEqual(["agent-host:regoin"]);
  });

  test("another namespace's key declared in Pulumi.yaml takes a value, never a type or a default", () => {
    expect(projectError("name: agent-host\nconfig:\n  gcp:zone: europe-west1-b\n")).toBeUndefined();
    expect(
      projectError("name: agent-host\nconfig:\n  gcp:zone:\n    type: string\n    value: x\n"),
    ).toBe(
      "could not unmarshal 'Pulumi.yaml': Configuration key 'gcp:zone' is not namespaced by the project and should not define a type",
    );
    expect(projectError("name: agent-host\nconfig:\n  gcp:zone:\n    default: x\n")).toMatch(
      /Configuration key 'gcp:zone' is not namespaced by the project and should not define a default value/,
    );
  });

  test.each([
    [
      "agentCount: ten",
      "  agentCount:\n    type: integer\n    default: 10\n",
      "agentCount",
      "integer",
    ],
    [
      "agentCount: 1.5",
      "  agentCount:\n    type: integer\n    default: 10\n",
      "agentCount",
      "integer",
    ],
    ["spot: yes", "  spot:\n    type: boolean\n    default: false\n", "spot", "boolean"],
    [
      "ranges: 1.2.3.4/32",
      "  ranges:\n    type: array\n    items:\n      type: string\n",
      "ranges",
      "array<string>",
    ],
    [
      "ranges: [[a]]",
      "  ranges:\n    type: array\n    items:\n      type: string\n",
      "ranges",
      "array<string>",
    ],
    ["name: [a, b]", "  name:\n    type: string\n    default: ''\n", "name", "string"],
  ])("stack value %s against its declared type is refused", (value, declaration, key, typeName) => {
    expect(upError(tiny(declaration), `config:\n  ${value}\n`)).toBe(
      `validating stack config: Stack 'dev' with configuration key '${key}' must be of type '${typeName}'`,
    );
  });

  test.each([
    ["agentCount: 12", "  agentCount:\n    type: integer\n    default: 10\n"],
    ["agentCount: '12'", "  agentCount:\n    type: integer\n    default: 10\n"],
    ["spot: true", "  spot:\n    type: boolean\n    default: false\n"],
    ["ranges: [1.2.3.4/32]", "  ranges:\n    type: array\n    items:\n      type: string\n"],
    ["name: 12", "  name:\n    type: string\n    default: ''\n"],
  ])("stack value %s of its declared type is accepted", (value, declaration) => {
    expect(upError(tiny(declaration), `config:\n  ${value}\n`)).toBeUndefined();
  });

  test("`secret: true` with a default: the default is applied in plain text, then refused", () => {
    const proj = tiny("  apiKey:\n    type: string\n    secret: true\n    default: ''\n");
    expect(upError(proj, "config: {}\n")).toBe(
      "validating stack config: Stack 'dev' with configuration key 'apiKey' must be encrypted as it's secret",
    );
    // Only an encrypted stack value passes.
    expect(upError(proj, "config:\n  apiKey: sk-plain\n")).toMatch(
      /must be encrypted as it's secret$/,
    );
    expect(upError(proj, "config:\n  apiKey:\n    secure: v1:abc:def\n")).toBeUndefined();
  });

  test("Pulumi.yaml: an array without items, a default of the wrong type, an unknown attribute", () => {
    expect(projectError("name: agent-host\nconfig:\n  ranges:\n    type: array\n")).toBe(
      "could not unmarshal 'Pulumi.yaml': The configuration key 'ranges' declares an array but does not specify the underlying type via the 'items' attribute",
    );
    expect(
      projectError("name: agent-host\nconfig:\n  n:\n    type: integer\n    default: ten\n"),
    ).toBe(
      "could not unmarshal 'Pulumi.yaml': The default value specified for configuration key 'n' is not of the expected type 'integer'",
    );
    expect(
      projectError("name: agent-host\nconfig:\n  n:\n    type: integer\n    required: true\n"),
    ).toMatch(/#\/config\/n: additionalProperties 'required' not allowed/);
    expect(projectError("name: agent-host\nconfig:\n  n:\n    type: number\n")).toMatch(
      /#\/config\/n\/type/,
    );
  });

  test("a stack key with two colons other than <ns>:config:<name> does not parse", () => {
    expect(() => stackFrom("config:\n  a:b:c: 1\n")).toThrow(
      "could not parse a:b:c as a configuration key (configuration keys should be of the form `<namespace>:<name>`)",
    );
    expect([...stackFrom("config:\n  gcp:config:zone: z\n").keys()]).toEqual(["gcp:zone"]);
  });

  test("ValidateConfigValue's integer accepts what strconv.Atoi accepts", () => {
    expect(validateConfigValue("integer", undefined, "-3")).toBe(true);
    expect(validateConfigValue("integer", undefined, "3.0")).toBe(false);
    expect(validateConfigValue("integer", undefined, " 3")).toBe(false);
  });
});
