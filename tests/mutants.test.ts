// scripts/mutants.ts patches by exact text: every anchor must be in the code once, so a refactor
// that moves one fails here, in the pure suite, before CI's mutant run would stop on it.
import { readFileSync } from "fs";
import * as path from "path";
import { MUTANTS, applyPatch } from "../scripts/mutants";

const ROOT = path.join(__dirname, "..");

test.each(MUTANTS.flatMap((m) => m.patches.map((p) => [m.id, p.file, p] as const)))(
  "%s: its anchor in %s occurs exactly once, and the patch changes the file",
  (_id, file, patch) => {
    const text = readFileSync(path.join(ROOT, file), "utf8");
    expect(applyPatch(text, patch)).not.toBe(text);
  },
);

test("a missing or repeated anchor stops the run instead of leaving the code unbroken", () => {
  const patch = { file: "f.ts", find: "a()", replace: "b()" };
  expect(() => applyPatch("x()", patch)).toThrow("the anchor occurs 0 times (one of them");
  expect(() => applyPatch("a(); a()", patch)).toThrow("the anchor occurs 2 times (one of them");
  expect(applyPatch("a(); x", patch)).toBe("b(); x");
  // The anchor as a refactor reshaped it: either form, but not both.
  const either = { ...patch, or: [{ find: "c()", replace: "d()" }] };
  expect(applyPatch("c(); x", either)).toBe("d(); x");
  expect(() => applyPatch("a(); c()", either)).toThrow("the anchor occurs 1 / 1 times");
});

test("each mutant names a suite that exists", () => {
  for (const m of MUTANTS) expect(() => readFileSync(path.join(ROOT, m.suite))).not.toThrow();
});
