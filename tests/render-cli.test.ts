// `npm run render` on the stack files people really have: encrypted secrets in them, and the
// output piped into a reader that stops early.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const repo = path.join(__dirname, "..");
const render = (args: string[], shell?: string) =>
  shell
    ? spawnSync("bash", ["-o", "pipefail", "-c", shell], { cwd: repo, encoding: "utf8" })
    : spawnSync("npx", ["ts-node", "--transpile-only", "scripts/render.ts", ...args], {
        cwd: repo,
        encoding: "utf8",
      });

describe("npm run render", () => {
  test("a stack file with encrypted secrets renders, naming what it left out", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "render-cli-"));
    const stackFile = path.join(dir, "Pulumi.team.yaml");
    // The shape `pulumi config set --secret` writes: the value under `secure:`.
    fs.writeFileSync(
      stackFile,
      [
        "encryptionsalt: v1:c2FsdA==:v1:aXY=:dGFn",
        "config:",
        "  gcp:project: team-project",
        "  gcp:zone: europe-west1-b",
        "  agent-host:agentCount: 4",
        "  agent-host:sshSourceRanges:",
        "    - 203.0.113.7/32",
        "  agent-host:anthropicApiKey:",
        "    secure: v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBB",
        "  agent-host:deployPrivateKey:",
        "    secure: v1:CCCCCCCCCCCCCCCC:DDDDDDDDDDDDDDDDDDDDDDDD",
        "",
      ].join("\n"),
    );
    const result = render(["--config", stackFile]);
    expect(result.stderr).not.toMatch(/error|must be/i);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^#cloud-config\n/);
    expect(result.stderr).toContain("agent-host:anthropicApiKey is encrypted");
    expect(result.stderr).toContain("agent-host:deployPrivateKey is encrypted");
    expect(result.stdout).not.toContain("secure:");
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test("piped into head, it stops quietly", () => {
    const result = render(
      [],
      "npx ts-node --transpile-only scripts/render.ts --set agentCount=3 | head -n 1",
    );
    expect(result.stdout).toBe("#cloud-config\n");
    expect(result.stderr).not.toMatch(/EPIPE|Error/);
    expect(result.status).toBe(0);
  }, 60_000);
});
