// The last line of .ci/run: jest's counts from one or more `--json` reports, and a failure when
// any test is pending or todo. A suite that cannot run fails in CI (tests/real-suite.ts); a test
// that is pending anyway (an `it.skip` left behind, a describe.skip) would otherwise pass silently.
//
// usage: ts-node scripts/ci-summary.ts REPORT.json [REPORT.json ...]
import * as fs from "fs";

/** The part of jest's `--json` report this reads (@jest/test-result AggregatedResult). */
export interface JestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: {
    name: string;
    assertionResults: { fullName: string; status: string }[];
  }[];
}

export interface Summary {
  line: string;
  /** "file: full test name" of every pending or todo test. */
  pending: string[];
  ok: boolean;
}

export function summarize(reports: JestReport[]): Summary {
  const sum = (f: (r: JestReport) => number): number => reports.reduce((n, r) => n + f(r), 0);
  const passed = sum((r) => r.numPassedTests);
  const failed = sum((r) => r.numFailedTests);
  const pendingCount = sum((r) => r.numPendingTests + r.numTodoTests);
  const pending = reports.flatMap((r) =>
    r.testResults.flatMap((file) =>
      file.assertionResults
        .filter((a) => a.status === "pending" || a.status === "todo" || a.status === "skipped")
        .map((a) => `${file.name}: ${a.fullName}`),
    ),
  );
  return {
    line: `jest: ${passed} passed, ${failed} failed, ${pendingCount} pending`,
    pending,
    ok: pendingCount === 0,
  };
}

function main(files: string[]): number {
  if (files.length === 0) {
    process.stderr.write("usage: ci-summary REPORT.json [REPORT.json ...]\n");
    return 2;
  }
  const summary = summarize(files.map((f) => JSON.parse(fs.readFileSync(f, "utf8")) as JestReport));
  for (const p of summary.pending) process.stderr.write(`pending: ${p}\n`);
  if (!summary.ok) {
    process.stderr.write(
      "ci-summary: tests were skipped. In CI every test runs: a suite that cannot run must fail " +
        "with its reason (tests/real-suite.ts unavailableSuite), and no it.skip/describe.skip/todo " +
        "may be committed.\n",
    );
  }
  process.stdout.write(`${summary.line}\n`);
  return summary.ok ? 0 : 1;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
