// first-boot runs the first boot's steps in order and stops at the first failure, so cloud-init
// reports an error instead of "done" (runcmd entries alone run without `set -e`). Driven for real
// with recording stand-ins for the installers, systemctl and usermod.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { bootHostConf } from "./host-files";

const SCRIPT = path.join(__dirname, "..", "cloud-init", "host", "first-boot");
// Installed beside first-boot on the VM: the host's one host.conf parser.
const AGENT_HOST_JS = path.join(__dirname, "..", "cloud-init", "host", "agent-host.js");

function setup(failing?: string) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "first-boot-"));
  const lib = path.join(root, "usr/local/lib/agent-host");
  const bin = path.join(root, "bin");
  const calls = path.join(root, "calls");
  fs.mkdirSync(lib, { recursive: true });
  fs.mkdirSync(bin);
  fs.mkdirSync(path.join(root, "etc/agent-host"), { recursive: true });
  // What user-data writes before first-boot runs: the boot host.conf the stack renders.
  fs.writeFileSync(path.join(root, "etc/agent-host/host.conf"), bootHostConf({}, {}));
  const stub = (file: string, name: string) =>
    fs.writeFileSync(
      file,
      `#!/bin/sh\necho "${name} $*" >> "${calls}"\n${failing === name ? "exit 1\n" : ""}`,
      { mode: 0o755 },
    );
  fs.copyFileSync(AGENT_HOST_JS, path.join(lib, "agent-host.js"));
  stub(path.join(lib, "install-docker"), "install-docker");
  stub(path.join(lib, "install-claude-code"), "install-claude-code");
  stub(path.join(bin, "systemctl"), "systemctl");
  stub(path.join(bin, "usermod"), "usermod");
  const result = spawnSync("bash", [SCRIPT], {
    encoding: "utf8",
    env: { PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`, AGENT_HOST_ROOT: root },
  });
  const recorded = fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : [];
  const defs = path.join(root, "etc/login.defs");
  const loginDefs = fs.existsSync(defs) ? fs.readFileSync(defs, "utf8") : undefined;
  fs.rmSync(root, { recursive: true, force: true });
  return { status: result.status, stderr: result.stderr, calls: recorded, loginDefs };
}

test("runs every step in order", () => {
  const r = setup();
  expect(r.status).toBe(0);
  expect(r.calls).toEqual([
    "install-docker ",
    "install-claude-code ",
    "systemctl daemon-reload",
    "systemctl enable --now agent-host-data.service",
    "systemctl enable --now agent-host.service",
    "systemctl enable --now agent-host-autostop.service",
    "systemctl enable --now agent-host-web.service",
  ]);
  // Before any agent user exists: useradd's automatic ids kept below the agents' (id-range.ts),
  // in the prefixed root's login.defs, never the build machine's.
  expect(r.loginDefs).toMatch(/^UID_MAX\s+1999$/m);
  expect(r.loginDefs).toMatch(/^GID_MAX\s+1999$/m);
});

test.each([
  ["install-claude-code", 2],
  ["install-docker", 1],
])("a failed %s stops the boot there and exits non-zero", (failing, calls) => {
  const r = setup(failing);
  expect(r.status).not.toBe(0);
  expect(r.calls).toHaveLength(calls);
  expect(r.calls.join("\n")).not.toContain("agent-host.service");
});

test("a failing systemctl stops the boot before the agents start", () => {
  const r = setup("systemctl");
  expect(r.status).not.toBe(0);
  expect(r.calls).toEqual(["install-docker ", "install-claude-code ", "systemctl daemon-reload"]);
});
