// package.json's `engines` and the README's Node.js version say what the dependencies really
// need: the strictest minimum any runtime dependency declares.
import * as fs from "fs";
import * as path from "path";

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
