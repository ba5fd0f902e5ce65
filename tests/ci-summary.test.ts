// .ci/run's summary (scripts/ci-summary.ts): any pending or todo test fails the run, named.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { summarize, type JestReport } from "../scripts/ci-summary";

function report(statuses: Record<string, string>, counts: Partial<JestReport> = {}): JestReport {
  const results = Object.entries(statuses).map(([fullName, status]) => ({ fullName, status }));
  const n = (s: string): number => results.filter((r) => r.status === s).length;
  return {
    numPassedTests: n("passed"),
    numFailedTests: n("failed"),
    numPendingTests: n("pending"),
    numTodoTests: n("todo"),
    testResults: [{ name: "/repo/tests/x.test.ts", assertionResults: results }],
    ...counts,
  };
}

describe("ci-summary", () => {
  it("passes with nothing pending and says pending 0", () => {
    const s = summarize([report({ a: "passed", b: "failed" }), report({ c: "passed" })]);
    expect(s).toEqual({ line: "jest: 2 passed, 1 failed, 0 pending", pending: [], ok: true });
  });

  it("fails on a pending or a todo test, naming it", () => {
    const s = summarize([report({ a: "passed", "boot step": "pending", later: "todo" })]);
    expect(s.ok).toBe(false);
    expect(s.line).toBe("jest: 1 passed, 0 failed, 2 pending");
    expect(s.pending).toEqual(["/repo/tests/x.test.ts: boot step", "/repo/tests/x.test.ts: later"]);
  });

  it("exits 1 from the command line when a report has a pending test", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ci-summary-"));
    try {
      const ok = path.join(dir, "ok.json");
      const skipped = path.join(dir, "skipped.json");
      fs.writeFileSync(ok, JSON.stringify(report({ a: "passed" })));
      fs.writeFileSync(skipped, JSON.stringify(report({ b: "pending" })));
      const run = (files: string[]) =>
        spawnSync(
          "npx",
          [
            "ts-node",
            "--transpile-only",
            path.join(__dirname, "..", "scripts", "ci-summary.ts"),
            ...files,
          ],
          { encoding: "utf8" },
        );
      const good = run([ok]);
      expect([good.status, good.stdout]).toEqual([0, "jest: 1 passed, 0 failed, 0 pending\n"]);
      const bad = run([ok, skipped]);
      expect(bad.status).toBe(1);
      expect(bad.stdout).toBe("jest: 1 passed, 0 failed, 1 pending\n");
      expect(bad.stderr).toContain("pending: /repo/tests/x.test.ts: b");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
