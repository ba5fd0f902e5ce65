// One Node.js story (docs/node.md): the VM runs its distribution's nodejs (Ubuntu 24.04: 18.19),
// so the host bundle targets Node 18.19 and the code is typed against @types/node 18.19; the
// operator's machine runs the Pulumi program on what @pulumi/pulumi requires (engines.node).
// Here the bundle runs under Debian 12's own Node 18 (tests/fixtures/debian-node.ts), beside
// this machine's newer Node, and must behave the same: the host.conf reader and every hook event
// Claude Code 2.1.331 sent, recorded.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseConfig } from "../config";
import { hostSettingsFor, renderHostConf } from "../cloud-init/host-config";
import { BUNDLE_PATH, VM_NODE_TARGET } from "../cloud-init/host-bundle";
import { debianNode } from "./fixtures/debian-node";
import { BASE_CONFIG } from "./harness";

jest.setTimeout(120_000);

const node18 = debianNode();
const PAYLOADS = fs
  .readFileSync(path.join(__dirname, "fixtures", "hook-payloads-2.1.331.jsonl"), "utf8")
  .trim()
  .split("\n");

function run(argv: string[], env: NodeJS.ProcessEnv, input = "") {
  const [bin, ...args] = argv;
  const result = spawnSync(bin, args, { env, input, encoding: "utf8", timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("Debian's Node is the VM's major version, and the bundle's target", () => {
  const version = run(node18.argv(["--version"]), node18.env).stdout.trim();
  expect(version).toMatch(/^v18\.\d+\.\d+$/);
  expect(VM_NODE_TARGET).toMatch(/^node18\./);
  // The newer Node the tests otherwise use is not the one under test here.
  expect(process.versions.node.split(".")[0]).not.toBe("18");
});

test("agent-host.js conf reads the stack's host.conf the same under Node 18", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "node18-conf-"));
  try {
    const { config } = parseConfig({ ...BASE_CONFIG, "agent-host:claudeEnv": '["A=1","B=2"]' });
    const file = path.join(dir, "host.conf");
    fs.writeFileSync(file, renderHostConf(hostSettingsFor(config, [])));
    const args = [BUNDLE_PATH, "conf", "--file", file];
    const old = run(node18.argv(args), node18.env);
    const current = run([process.execPath, ...args], { PATH: process.env.PATH });
    expect(old).toEqual({
      status: 0,
      stdout: expect.stringContaining("AGENT_COUNT=10\n"),
      stderr: "",
    });
    expect(old).toEqual(current);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("agent-host.js hook records every event of a real session the same under Node 18", () => {
  const states = (argv: (args: string[]) => string[], env: NodeJS.ProcessEnv) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "node18-hook-"));
    try {
      const results = PAYLOADS.map((payload) =>
        run(argv([BUNDLE_PATH, "hook"]), { ...env, AGENT_HOST_STATE_DIR: dir }, payload),
      );
      const events = fs
        .readFileSync(path.join(dir, "events.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((line) => {
          const { at: _at, ...rest } = JSON.parse(line) as Record<string, unknown>;
          return rest;
        });
      return { results, events };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const old = states(node18.argv, node18.env);
  expect(old.results.every((r) => r.status === 0 && r.stderr === "")).toBe(true);
  expect(old.events.map((e) => e.state)).toEqual([
    "idle",
    "working",
    "needs-permission",
    "working",
    "needs-answer",
    "working",
    "idle",
  ]);
  expect(old).toEqual(states((args) => [process.execPath, ...args], { PATH: process.env.PATH }));
});
