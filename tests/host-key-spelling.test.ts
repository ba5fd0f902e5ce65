// Each host.conf key is spelled in at most 3 shipped files (issue 22.5): its definition
// (host/conf/conf.ts), the stack's writer (cloud-init/host-config.ts or config-keys.ts' `host`
// attribute) and at most one more. Counted over what ships (cloud-init/, host/, components/ and
// the program's own files; not tests, docs, scripts or the policy pack), as a whole word. The bash
// scripts get their values under their own names (conf.ts SCRIPT_VARS, `agent-host.js conf
// --vars`) and host code reads the typed view (conf.runDir; KEY.runDir in messages), so renaming a
// key touches conf.ts and its writer. See docs/testing.md.
import { execFileSync } from "child_process";
import { readFileSync } from "fs";
import * as path from "path";
import { HOST_KEYS } from "../host/conf/conf";

const ROOT = path.join(__dirname, "..");
const BUDGET = 3;

/** What ships: the files the program reads or sends to the VM. */
function shippedFiles(): string[] {
  return execFileSync("git", ["ls-files", "-co", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter(
      (file) =>
        (/^(cloud-init|host|components)\//.test(file) ||
          /^[^/]+\.ts$/.test(file) ||
          file === "Pulumi.yaml") &&
        !file.endsWith(".md") &&
        file !== "cloud-init/host/agent-host.js",
    );
}

const files = shippedFiles().map((file) => ({
  file,
  text: readFileSync(path.join(ROOT, file), "utf8"),
}));

function spelledIn(key: string): string[] {
  const word = new RegExp(`(?<![A-Za-z0-9_])${key}(?![A-Za-z0-9_])`);
  return files.filter((f) => word.test(f.text)).map((f) => f.file);
}

test("the count sees what ships", () => {
  expect(files.map((f) => f.file)).toEqual(
    expect.arrayContaining(["host/conf/conf.ts", "cloud-init/host/agentctl", "config-keys.ts"]),
  );
  expect(spelledIn("DATA_DEVICE")).toEqual(
    expect.arrayContaining(["host/conf/conf.ts", "cloud-init/host/data-disk"]),
  );
});

test.each(Object.keys(HOST_KEYS))("%s is spelled in at most 3 shipped files", (key) => {
  const where = spelledIn(key);
  expect(where).toContain("host/conf/conf.ts");
  expect({ key, count: where.length, where }).toEqual({
    key,
    count: Math.min(where.length, BUDGET),
    where,
  });
});
