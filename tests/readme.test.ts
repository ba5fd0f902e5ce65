// The README's tables are the user interface's documentation: they must match Pulumi.yaml, the
// config parser's defaults and the program's outputs.
import { readFileSync } from "fs";
import * as path from "path";
import { parse } from "yaml";
import { CONFIG_KEYS, DEFAULTS } from "../config";
import { BASE_CONFIG, runProgram } from "./harness";
import { readmeDefault, tableAfter as readmeTable } from "./readme-tables";

const ROOT = path.join(__dirname, "..");
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
const project = parse(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));

const tableAfter = (heading: string) => readmeTable(readme, heading);

describe("configuration table", () => {
  const table = tableAfter("Configuration");
  const declared: Record<string, { default?: unknown; description: string }> = project.config;

  test("lists exactly the keys Pulumi.yaml declares, which are the keys config.ts knows", () => {
    expect([...table.keys()].sort()).toEqual(Object.keys(declared).sort());
    expect(Object.keys(declared).sort()).toEqual([...CONFIG_KEYS].sort());
  });

  test.each(Object.keys(project.config))("%s: the README's default is Pulumi.yaml's", (key) => {
    const yamlDefault = declared[key].default;
    // An optional key's "" default reads "unset" in the README: "" is how Pulumi.yaml declares an
    // optional string (a key with no default is required by the CLI), and config.ts reads "" as unset.
    const optional = declared[key].description.startsWith("Optional");
    const expected = optional && yamlDefault === "" ? undefined : yamlDefault;
    expect(readmeDefault(table.get(key) ?? "")).toEqual(expected);
  });

  test.each(Object.keys(DEFAULTS))("%s: Pulumi.yaml's default is the code's default", (key) => {
    expect(declared[key].default).toEqual((DEFAULTS as Record<string, unknown>)[key]);
  });

  test("sshSourceRanges has no default: it is required", () => {
    expect(declared.sshSourceRanges.default).toBeUndefined();
    expect(table.get("sshSourceRanges")).toBe("required");
  });
});

describe("outputs table", () => {
  test("lists exactly the stack's outputs", async () => {
    const run = await runProgram({ ...BASE_CONFIG });
    expect([...tableAfter("Outputs").keys()].sort()).toEqual(Object.keys(run.outputs).sort());
  }, 60_000);
});

describe("commands the README gives", () => {
  const scripts = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts;

  test("the quick start's two commands exist", () => {
    expect(readme).toContain("npm run deploy");
    expect(readme).toContain("npm test");
    expect(scripts.deploy).toBe("bash scripts/deploy.sh");
    expect(scripts.test).toBe("node scripts/test.js unit");
  });

  test(".ci/run runs the README's test command", () => {
    const ci = readFileSync(path.join(ROOT, ".ci/run"), "utf8");
    expect(ci).toMatch(/^\s*npm test -- /m);
  });
});
