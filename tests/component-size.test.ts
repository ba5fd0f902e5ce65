// Components stay readable (issue 22.5): no function, method or constructor in components/ runs
// over 80 lines; the AgentHost constructor reads as its named parts (identity, network, disks,
// work hours, VM, schedule grant) in the order they register their resources.
import { readdirSync, readFileSync } from "fs";
import * as path from "path";
import * as ts from "typescript";

const DIR = path.join(__dirname, "..", "components");
const MAX_LINES = 80;

/** Every function-like node of a file with its name and its length in lines. */
function functionLengths(file: string): { name: string; lines: number }[] {
  const text = readFileSync(file, "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = ts.isConstructorDeclaration(node)
        ? "constructor"
        : (node.name?.getText(source) ?? "(anonymous)");
      found.push({ name, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

test.each(readdirSync(DIR).filter((f) => f.endsWith(".ts")))(
  `components/%s: no function over ${MAX_LINES} lines`,
  (file) => {
    const long = functionLengths(path.join(DIR, file)).filter((f) => f.lines > MAX_LINES);
    expect(long).toEqual([]);
  },
);

test("AgentHost's constructor is its named parts", () => {
  const lengths = functionLengths(path.join(DIR, "agent-host.ts"));
  expect(lengths.map((f) => f.name)).toEqual(
    expect.arrayContaining(["identity", "network", "disks", "workHours", "vm", "scheduleGrant"]),
  );
  const constructor = lengths.find((f) => f.name === "constructor");
  expect(constructor?.lines).toBeLessThanOrEqual(40);
});
