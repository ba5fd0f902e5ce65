// docs/security.md's "Service account" table is what the program grants the VM's service
// account: for each claudeProvider, exactly the project roles bound to it and the OAuth scopes the
// VM gets (under the mocks). Every agent can read that account's token from the metadata server,
// so a grant the docs do not list is a privilege nobody reviewed.
import { readFileSync } from "fs";
import * as path from "path";
import { BASE_CONFIG, byType, one, runProgram, unwrap } from "./harness";
import { tableRows } from "./readme-tables";

const SA = "serviceAccount:ah-dev@acme-agents.iam.gserviceaccount.com";
const docs = readFileSync(path.join(__dirname, "..", "docs", "security.md"), "utf8");
const table = tableRows(docs, "Service account");

/** A cell's backticked names, or [] for "none". */
const names = (cell: string): string[] =>
  cell === "none" ? [] : [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

test.each(["anthropic", "vertex"])(
  "claudeProvider %s: the roles and scopes the docs list",
  async (provider) => {
    const row = table.get(provider);
    expect(row).toBeDefined();
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:claudeProvider": provider });
    const roles = byType(run, "gcp:projects/iAMMember:IAMMember")
      .map((r) => unwrap(r.inputs) as { role: string; member: string })
      .filter((m) => m.member === SA)
      .map((m) => m.role)
      .sort();
    const vm = unwrap(one(run, "gcp:compute/instance:Instance").inputs) as {
      serviceAccount: { email: string; scopes: string[] };
    };
    expect(vm.serviceAccount.email).toBe(SA.replace("serviceAccount:", ""));
    const scopes = vm.serviceAccount.scopes.map((s) =>
      s.replace("https://www.googleapis.com/auth/", ""),
    );
    expect({ roles, scopes }).toEqual({
      roles: names(row![1]).sort(),
      scopes: names(row![2]).sort(),
    });
  },
);

test("the table has exactly one row per provider", () => {
  expect([...table.keys()].sort()).toEqual(["anthropic", "vertex"]);
});
