// Reads the JSON document `pulumi preview --json` prints (pulumi/pulumi pkg/display/json.go,
// PreviewDigest: `steps[]` of {op, urn, diffReasons, …}, one per resource, `same` included) and
// checks which resources a change touches.
//
// Usage: preview-changes.ts FILE [--only QUALIFIED_TYPE::NAME=OP ...]
//   Prints every step that is not `same` (op, URN, diff reasons) to stdout.
//   With --only: exits 1 unless the steps that are not `same` are exactly the ones listed, each
//   with its op (URNs are matched on their qualified type and name, whatever the stack).
// Exit: 0 as expected, 1 another change, 2 usage or an unreadable document.
import * as fs from "fs";

export interface PreviewStep {
  op: string;
  urn: string;
  diffReasons?: string[];
}

export interface PreviewDigest {
  steps?: PreviewStep[];
}

/** `qualified$type::name` of a URN: what stays the same across stacks and projects. */
export function urnTail(urn: string): string {
  return urn.split("::").slice(2).join("::");
}

/** The steps that change something. */
export function changes(digest: PreviewDigest): PreviewStep[] {
  return (digest.steps ?? []).filter((s) => s.op !== "same");
}

/**
 * What is wrong with the preview when only `expected` (URN tail → op) may change: one line per
 * unexpected, missing or different step; empty when the preview is as expected.
 */
export function unexpectedChanges(
  digest: PreviewDigest,
  expected: Record<string, string>,
): string[] {
  if (!Array.isArray(digest.steps) || digest.steps.length === 0) {
    return ["the preview lists no steps: not the output of `pulumi preview --json`?"];
  }
  const problems: string[] = [];
  const changed = changes(digest);
  for (const step of changed) {
    const want = expected[urnTail(step.urn)];
    if (want === undefined) {
      problems.push(
        `unexpected ${step.op} of ${step.urn} (${(step.diffReasons ?? []).join(", ")})`,
      );
    } else if (want !== step.op) {
      problems.push(`${step.urn}: ${step.op}, expected ${want}`);
    }
  }
  for (const [tail, op] of Object.entries(expected)) {
    if (!changed.some((s) => urnTail(s.urn) === tail)) problems.push(`no ${op} of ${tail}`);
  }
  return problems;
}

function main(argv: string[]): number {
  const [file, ...rest] = argv;
  const expected: Record<string, string> = {};
  for (let i = 0; i < rest.length; i++) {
    const match = rest[i] === "--only" ? /^(.+)=([a-z-]+)$/.exec(rest[i + 1] ?? "") : null;
    if (!match) {
      process.stderr.write("usage: preview-changes.ts FILE [--only QUALIFIED_TYPE::NAME=OP ...]\n");
      return 2;
    }
    expected[match[1]] = match[2];
    i++;
  }
  if (!file) {
    process.stderr.write("usage: preview-changes.ts FILE [--only QUALIFIED_TYPE::NAME=OP ...]\n");
    return 2;
  }
  let digest: PreviewDigest;
  try {
    digest = JSON.parse(fs.readFileSync(file, "utf8")) as PreviewDigest;
  } catch (error) {
    process.stderr.write(`preview-changes: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  for (const step of changes(digest)) {
    console.log(`${step.op}\t${step.urn}\t${(step.diffReasons ?? []).join(",")}`);
  }
  if (Object.keys(expected).length === 0) return 0;
  const problems = unexpectedChanges(digest, expected);
  for (const problem of problems) process.stderr.write(`preview-changes: ${problem}\n`);
  return problems.length === 0 ? 0 : 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
