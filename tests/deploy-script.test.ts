// scripts/deploy.sh (`npm run deploy`) against a stand-in `pulumi` on PATH that enforces the real
// CLI's rules and prints its messages (tests/fixtures/pulumi-cli.ts, sources cited there). Whatever
// pulumi call fails, the user must see the CLI's own message and then what to do.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ts from "typescript";

const ROOT = path.join(__dirname, "..");
const PRE_FIX_PROJECT = path.join(ROOT, "tests/fixtures/engine/Pulumi.pre-issue-12.yaml");
const DEV_STACK = fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8");
// A test passphrase for the stand-in's passphrase check; it encrypts nothing.
const PASSPHRASE = "deploy-script-test";
// What the engine would have returned after `pulumi up`; the stand-in has no engine.
const OUTPUTS = {
  deployPrivateKey: {
    secret: "-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n-----END OPENSSH PRIVATE KEY-----",
  },
  sshCommand: "ssh -i ~/.ssh/agent-host-dev agent-admin@203.0.113.10",
};

let tmp: string;
let bin: string;

/** The stand-in, transpiled next to the config rules it imports, with a `pulumi` launcher. */
function buildStandIn(): void {
  bin = path.join(tmp, "bin");
  const sources = {
    "lib/engine/config-rules.js": path.join(ROOT, "tests/engine/config-rules.ts"),
    "lib/fixtures/pulumi-cli.js": path.join(ROOT, "tests/fixtures/pulumi-cli.ts"),
  };
  for (const [target, source] of Object.entries(sources)) {
    const { outputText } = ts.transpileModule(fs.readFileSync(source, "utf8"), {
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2020,
        esModuleInterop: true,
      },
    });
    fs.mkdirSync(path.dirname(path.join(bin, target)), { recursive: true });
    fs.writeFileSync(path.join(bin, target), outputText);
  }
  fs.writeFileSync(
    path.join(bin, "pulumi"),
    `#!${process.execPath}\nrequire(${JSON.stringify(path.join(bin, "lib/fixtures/pulumi-cli.js"))});\n`,
    { mode: 0o755 },
  );
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deploy-script-"));
  buildStandIn();
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** The pulumi calls the script made, in order. */
  calls: string[][];
  home: string;
}

let runCount = 0;

/** Runs deploy.sh from a copy of the project holding the given Pulumi.yaml and stack file. */
function deploy(
  projectYaml: string,
  stackYaml: string | undefined,
  env: Record<string, string> = { PULUMI_SKIP_CONFIRMATIONS: "true" },
): Run {
  const dir = path.join(tmp, `run-${++runCount}`);
  const project = path.join(dir, "project");
  const home = path.join(dir, "home");
  fs.mkdirSync(path.join(project, "scripts"), { recursive: true });
  fs.mkdirSync(home);
  fs.copyFileSync(path.join(ROOT, "scripts/deploy.sh"), path.join(project, "scripts/deploy.sh"));
  fs.writeFileSync(path.join(project, "Pulumi.yaml"), projectYaml);
  if (stackYaml !== undefined) fs.writeFileSync(path.join(project, "Pulumi.dev.yaml"), stackYaml);
  // deploy.sh runs `npm ci` when node_modules is missing.
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
  const outputs = path.join(dir, "outputs.json");
  fs.writeFileSync(outputs, JSON.stringify(OUTPUTS));
  const log = path.join(dir, "calls.log");
  const result = spawnSync("bash", [path.join(project, "scripts/deploy.sh")], {
    encoding: "utf8",
    timeout: 60_000,
    env: {
      PATH: [bin, path.dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(":"),
      HOME: home,
      NODE_PATH: path.join(ROOT, "node_modules"),
      PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
      PULUMI_STANDIN_OUTPUTS: outputs,
      PULUMI_STANDIN_LOG: log,
      ...env,
    },
  });
  const calls = fs.existsSync(log)
    ? fs
        .readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as string[])
    : [];
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, calls, home };
}

const current = fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8");

describe("npm run deploy shows the Pulumi CLI's message when a call fails", () => {
  test("Pulumi.yaml before issue 12: `pulumi up` refuses the stack, and the user reads why and what to do", () => {
    const run = deploy(fs.readFileSync(PRE_FIX_PROJECT, "utf8"), DEV_STACK);
    expect(run.status).toBe(1);
    // pkg/workspace/config.go `missingStackConfigurationKeysError`, wrapped by operations/up.go.
    expect(run.stderr).toContain(
      "error: validating stack config: Stack 'dev' is missing configuration values 'gitUserEmail', 'gitUserName' and 'repository'",
    );
    expect(run.stderr).toContain(
      'deploy: error: "pulumi up --stack dev" failed. The Pulumi CLI said:',
    );
    expect(run.stderr).toContain(
      "deploy: error: what to do: set each key it names: pulumi config set --stack dev <key> <value>.",
    );
    expect(run.stderr).not.toContain("is not set");
    expect(run.calls.at(-1)?.slice(0, 1)).toEqual(["up"]);
    expect(fs.existsSync(path.join(run.home, ".ssh/agent-host-dev"))).toBe(false);
  });

  test('a Pulumi.yaml the CLI cannot load: the load error, not "gcp:project is not set"', () => {
    const broken = current.replace(
      /( {2}sshSourceRanges:\n {4}type: array\n) {4}items:\n {6}type: string\n/,
      "$1",
    );
    expect(broken).not.toBe(current);
    const run = deploy(broken, DEV_STACK);
    expect(run.status).toBe(1);
    // sdk/go/common/workspace/project.go `(*Project).Validate`, wrapped by loaders.go.
    expect(run.stderr).toContain(
      "The configuration key 'sshSourceRanges' declares an array but does not specify the underlying type via the 'items' attribute",
    );
    expect(run.stderr).toContain(
      "deploy: error: what to do: fix Pulumi.yaml where the message points",
    );
    expect(run.stderr).not.toContain("gcp:project is not set");
  });

  test("gcp:project unset: the script names the key, quotes the CLI and gives the command; up never runs", () => {
    const run = deploy(current, DEV_STACK.replace(/^ {2}gcp:project: .*\n/m, ""));
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      "deploy: error: gcp:project is not set for stack dev (the Pulumi CLI said: error: configuration key 'gcp:project' not found for stack 'dev'). Run: pulumi config set --stack dev gcp:project my-project-id",
    );
    expect(run.calls.map((call) => call[0])).not.toContain("up");
  });

  test("a value of the wrong type: the CLI's type error and how to set it", () => {
    const run = deploy(
      current,
      DEV_STACK.replace(/agent-host:agentCount: 10/, "agent-host:agentCount: ten"),
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      "error: validating stack config: Stack 'dev' with configuration key 'agentCount' must be of type 'integer'",
    );
    expect(run.stderr).toContain(
      "what to do: give that key a value of the type Pulumi.yaml declares",
    );
  });

  test("not in a terminal and no confirmation: the CLI's --yes message reaches the user", () => {
    const run = deploy(current, DEV_STACK, {});
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      "error: --yes or --skip-preview or --preview-only must be passed in to proceed when running in non-interactive mode",
    );
    expect(run.stderr).toContain("what to do: run npm run deploy in a terminal");
  });

  test("no passphrase: the script stops before calling pulumi", () => {
    const run = deploy(current, DEV_STACK, { PULUMI_CONFIG_PASSPHRASE: "" });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("set PULUMI_CONFIG_PASSPHRASE");
    expect(run.calls).toEqual([]);
  });
});

describe("npm run deploy with today's Pulumi.yaml and Pulumi.dev.yaml", () => {
  test("selects the stack, checks the keys, runs up, saves the deploy key 0600 and prints how to connect", () => {
    const run = deploy(current, DEV_STACK);
    expect(run.stderr).toBe(
      "deploy: deploy key saved to " +
        path.join(run.home, ".ssh/agent-host-dev") +
        `; connect with: ${OUTPUTS.sshCommand}\n`,
    );
    expect(run.status).toBe(0);
    expect(run.calls.map((call) => call.slice(0, 2).join(" "))).toEqual([
      "stack select",
      "config get",
      "config get",
      "config get",
      "up --stack",
      "stack output",
      "stack output",
    ]);
    const key = path.join(run.home, ".ssh/agent-host-dev");
    expect(fs.readFileSync(key, "utf8")).toBe(`${OUTPUTS.deployPrivateKey.secret}\n`);
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    expect(run.stdout).toContain("Update succeeded");
  });

  test("an output missing after up: the CLI's message, and no half-written key file", () => {
    const run = deploy(current, DEV_STACK, {
      PULUMI_SKIP_CONFIRMATIONS: "true",
      PULUMI_STANDIN_OUTPUTS: path.join(ROOT, "tests/fixtures/engine/no-outputs.json"),
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      "error: current stack does not have output property 'deployPrivateKey'",
    );
    expect(fs.existsSync(path.join(run.home, ".ssh/agent-host-dev"))).toBe(false);
  });
});
