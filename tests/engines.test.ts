// package.json's `engines` and the README's Node.js version say what the dependencies really
// need: the strictest minimum any runtime dependency declares.
import * as fs from "fs";
import * as path from "path";
import { VM_NODE_TARGET } from "../cloud-init/host-bundle";

const repo = path.join(__dirname, "..");
const pkg = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
  engines: { node: string };
  dependencies: Record<string, string>;
};

/** The major version of a `>=N` range, the only form this project declares. */
function minimumMajor(range: string): number {
  const match = /^>=\s*(\d+)/.exec(range.trim());
  if (!match) throw new Error(`engines.node must be a ">=N" range; got ${JSON.stringify(range)}`);
  return Number(match[1]);
}

test("engines.node is the strictest minimum the runtime dependencies declare", () => {
  const declared = Object.keys(pkg.dependencies).flatMap((name) => {
    const dep = JSON.parse(
      fs.readFileSync(path.join(repo, "node_modules", name, "package.json"), "utf8"),
    ) as { engines?: { node?: string } };
    const range = dep.engines?.node;
    return range && /^>=/.test(range.trim()) ? [{ name, major: minimumMajor(range) }] : [];
  });
  expect(declared.length).toBeGreaterThan(0);
  const strictest = Math.max(...declared.map((d) => d.major));
  expect(minimumMajor(pkg.engines.node)).toBe(strictest);
});

test("the README's prerequisites name the same Node.js version", () => {
  const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8");
  expect(readme).toContain(`Node.js ${minimumMajor(pkg.engines.node)} or later`);
});

test("@types/node, the bundle's target and the VM's Node are one major (docs/node.md)", () => {
  const target = /^node(\d+)\.(\d+)$/.exec(VM_NODE_TARGET);
  expect(target).not.toBeNull();
  const types = (file: string) =>
    (
      JSON.parse(fs.readFileSync(path.join(repo, file), "utf8")) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies["@types/node"];
  for (const file of ["package.json", "policy/package.json"]) {
    expect(types(file)).toBe(`~${target?.[1]}.${target?.[2]}.130`);
  }
  const installed = JSON.parse(
    fs.readFileSync(path.join(repo, "node_modules/@types/node/package.json"), "utf8"),
  ) as { version: string };
  expect(installed.version.split(".").slice(0, 2)).toEqual([target?.[1], target?.[2]]);
  const doc = fs.readFileSync(path.join(repo, "docs/node.md"), "utf8");
  expect(doc).toContain(`\`${VM_NODE_TARGET}\``);
  expect(doc).toContain(`${minimumMajor(pkg.engines.node)} or later`);
});
