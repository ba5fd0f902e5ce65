// The GitHub workflows, checked as data (parsed with `yaml`), by actionlint (scripts/actionlint.sh)
// and, for their `run:` blocks, by shellcheck (which actionlint's WebAssembly build cannot start).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { testJobPlan } from "../scripts/check-workflows";
import { HOST_TOOLS } from "./boot/harness";

const ROOT = path.resolve(__dirname, "..");
const WORKFLOWS = path.join(ROOT, ".github", "workflows");
const ACTIONLINT = path.join(ROOT, "scripts", "actionlint.sh");

// The README's test command. `npm test` runs the pure jest project and `npm run test:system` the
// host and boot ones (scripts/test.js); the test job runs both, host and boot as root on the runner
// VM (docs/cicd.md), and so does .ci/run.
const README_TEST_COMMAND = "npm test";
const CI_COMMANDS = [
  "sudo bash .ci/install-packages",
  "npm ci",
  "npm run lint",
  "npm run typecheck",
  "bash scripts/actionlint.sh",
  'npm run test:pure -- --ci --json --outputFile="${RUNNER_TEMP}/jest-pure.json"',
  'sudo env "PATH=${PATH}" CI=true npm run test:system -- --ci --json --outputFile="${RUNNER_TEMP}/jest-system.json"',
  'npx ts-node --transpile-only scripts/ci-summary.ts "${RUNNER_TEMP}/jest-pure.json" "${RUNNER_TEMP}/jest-system.json"',
];

// What the runner sets for every step (docs.github.com, "Default environment variables") and
// the workflows read. scripts/check-workflows.ts sets the same names in its container.
const GITHUB_DEFAULT_ENV = ["CI", "GITHUB_ACTIONS", "GITHUB_WORKSPACE", "RUNNER_TEMP"];

const SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository";
const FORK = "github.event.pull_request.head.repo.full_name != github.repository";

// The only secret the workflows may read. It decrypts the stack's config secrets; it grants no
// access to any cloud. Cloud access is short-lived, through Workload Identity Federation.
const ALLOWED_SECRETS = ["PULUMI_CONFIG_PASSPHRASE"];

// A name that says it holds a long-lived credential: a key, a key file, a JSON credential, a
// token, a private key. GITHUB_TOKEN is the exception: GitHub mints it per job.
const LONG_LIVED_CREDENTIAL =
  /(^|[_-])(KEY|KEYS|KEYFILE|JSON|CREDENTIAL|CREDENTIALS|PRIVATE|PEM|P12|TOKEN|PAT)([_-]|$)/i;
function looksLikeLongLivedCredential(name: string): boolean {
  return name !== "GITHUB_TOKEN" && LONG_LIVED_CREDENTIAL.test(name);
}

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  name?: string;
  if?: string;
  needs?: string | string[];
  "runs-on"?: string;
  container?: unknown;
  environment?: string | { name: string };
  permissions?: Record<string, string>;
  concurrency?: { group: string; "cancel-in-progress": boolean };
  env?: Record<string, unknown>;
  steps: Step[];
}
interface Workflow {
  name: string;
  env?: Record<string, unknown>;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  concurrency?: { group: string; "cancel-in-progress": boolean };
  jobs: Record<string, Job>;
}

function readWorkflow(file: string): { text: string; workflow: Workflow } {
  const text = fs.readFileSync(path.join(WORKFLOWS, file), "utf8");
  return { text, workflow: parse(text) as Workflow };
}

const pr = readWorkflow("pull-request.yml");
const deploy = readWorkflow("deploy.yml");
const all = [
  { file: "pull-request.yml", serviceAccountVariable: "GCP_PREVIEW_SERVICE_ACCOUNT", ...pr },
  { file: "deploy.yml", serviceAccountVariable: "GCP_DEPLOY_SERVICE_ACCOUNT", ...deploy },
  // Its own checks: tests/real-cloud.test.ts.
  {
    file: "real-cloud.yml",
    serviceAccountVariable: "GCP_SANDBOX_SERVICE_ACCOUNT",
    ...readWorkflow("real-cloud.yml"),
  },
];

function stepUsing(job: Job, action: string): Step {
  const found = job.steps.filter((s) => s.uses?.split("@")[0] === action);
  expect(found).toHaveLength(1);
  return found[0];
}

function stepIndex(job: Job, action: string): number {
  return job.steps.findIndex((s) => s.uses?.split("@")[0] === action);
}

function runCommands(job: Job): string[] {
  return job.steps.flatMap((s) => (s.run === undefined ? [] : [s.run.trim()]));
}

function allSteps(workflow: Workflow): Step[] {
  return Object.values(workflow.jobs).flatMap((job) => job.steps);
}

function runActionlint(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("bash", [ACTIONLINT, ...args], { cwd: ROOT, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("pull-request.yml", () => {
  const { workflow } = pr;
  const { test: testJob, preview, "preview-skipped": skipped } = workflow.jobs;

  it("runs on pull requests to main, and never as pull_request_target", () => {
    expect(workflow.on).toEqual({ pull_request: { branches: ["main"] } });
    expect(pr.text).not.toContain("pull_request_target");
  });

  it("grants each job exactly the permissions it needs, and nothing by default", () => {
    expect(workflow.permissions).toEqual({});
    expect(Object.keys(workflow.jobs).sort()).toEqual(["preview", "preview-skipped", "test"]);
    // The test job runs the pull request's code, possibly from a fork: read-only, no OIDC token.
    expect(testJob.permissions).toEqual({ contents: "read" });
    expect(preview.permissions).toEqual({
      contents: "read",
      "id-token": "write",
      "pull-requests": "write",
    });
    expect(skipped.permissions).toEqual({});
  });

  it("keeps one run per pull request, cancelling the superseded one", () => {
    expect(workflow.concurrency).toEqual({
      group: "pull-request-${{ github.event.pull_request.number }}",
      "cancel-in-progress": true,
    });
  });

  it("runs every jest project (host and boot as root on the runner VM), lint, typecheck, actionlint", () => {
    expect(testJob["runs-on"]).toBe("ubuntu-24.04");
    // Not in a container: the boot test needs systemd-nspawn and the host suites loop devices.
    expect(testJob.container).toBeUndefined();
    expect(testJob.steps.slice(0, 2).map((s) => s.uses)).toEqual([
      "actions/checkout@v4",
      "actions/setup-node@v4",
    ]);
    expect(runCommands(testJob)).toEqual(CI_COMMANDS);
    // Between them, test:pure (= npm test) and test:system run every jest project.
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts.test).toBe("node scripts/test.js unit");
    expect(pkg.scripts["test:pure"]).toBe("node scripts/test.js unit");
    expect(pkg.scripts["test:system"]).toBe("node scripts/test.js system");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const jestConfig = require(path.join(ROOT, "jest.config.js"));
    expect(jestConfig.projects.map((p: { displayName: string }) => p.displayName)).toEqual([
      "pure",
      "host",
      "boot",
    ]);
    const readme = path.join(ROOT, "README.md");
    if (fs.existsSync(readme)) {
      expect(fs.readFileSync(readme, "utf8")).toContain(`\`${README_TEST_COMMAND}\``);
    }
  });

  it("installs the one package list that .ci/run installs", () => {
    const ciRun = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    expect(ciRun).toContain("bash .ci/install-packages\n");
    expect(ciRun).not.toMatch(/apt-get install/);
    const installer = fs.readFileSync(path.join(ROOT, ".ci", "install-packages"), "utf8");
    expect(installer).toContain('LIST="$(dirname "${BASH_SOURCE[0]}")/packages.txt"');
    // Every tool a suite asks for by name has its package on the list.
    const listed = fs
      .readFileSync(path.join(ROOT, ".ci", "packages.txt"), "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"));
    for (const pkg of Object.values(HOST_TOOLS)) {
      expect(listed).toContain(pkg);
    }
  });

  it("runs pulumi preview through pulumi/actions, commenting on the PR and the job summary", () => {
    const step = stepUsing(preview, "pulumi/actions");
    expect(step.uses).toBe("pulumi/actions@v6");
    expect(step.with).toMatchObject({
      command: "preview",
      "stack-name": "${{ vars.PULUMI_STACK }}",
      "comment-on-pr": true,
      "comment-on-summary": true,
    });
    expect(step.env).toEqual({
      PULUMI_BACKEND_URL: "${{ vars.PULUMI_BACKEND_URL }}",
      PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    });
    expect(stepIndex(preview, "google-github-actions/auth")).toBeLessThan(
      stepIndex(preview, "pulumi/actions"),
    );
  });

  it("previews only same-repository pull requests; a fork's gets a notice saying why", () => {
    expect(preview.if).toBe(SAME_REPO);
    expect(skipped.if).toBe(FORK);
    // Both report under one check name, so a required check is satisfied either way.
    expect(skipped.name).toBe(preview.name);
    const notice = runCommands(skipped).join("\n");
    expect(notice).toMatch(/^echo "::notice title=pulumi preview skipped::.*fork/);
    expect(notice).toContain("no secrets and no OIDC token");
    expect(JSON.stringify(skipped)).not.toMatch(/secrets\.|vars\./);
  });
});

describe("deploy.yml", () => {
  const { workflow } = deploy;
  const { test: testJob, deploy: deployJob } = workflow.jobs;

  it("runs on pushes to main and by hand, never on pull requests", () => {
    expect(workflow.on).toEqual({ push: { branches: ["main"] }, workflow_dispatch: null });
  });

  it("deploys only main, after the tests, behind the production environment", () => {
    expect(Object.keys(workflow.jobs).sort()).toEqual(["deploy", "test"]);
    expect(deployJob.needs).toBe("test");
    // workflow_dispatch can be started on any branch.
    expect(deployJob.if).toBe("github.ref == 'refs/heads/main'");
    expect(deployJob.environment).toBe("production");
    const step = stepUsing(deployJob, "pulumi/actions");
    expect(step.uses).toBe("pulumi/actions@v6");
    expect(step.with).toMatchObject({
      command: "up",
      "stack-name": "${{ vars.PULUMI_STACK }}",
    });
    expect(step.env).toEqual({
      PULUMI_BACKEND_URL: "${{ vars.PULUMI_BACKEND_URL }}",
      PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    });
    expect(stepIndex(deployJob, "google-github-actions/auth")).toBeLessThan(
      stepIndex(deployJob, "pulumi/actions"),
    );
  });

  it("never runs two deploys of a stack at once, and never cancels a running one", () => {
    expect(workflow.concurrency).toBeUndefined();
    expect(deployJob.concurrency).toEqual({
      group: "deploy-${{ vars.PULUMI_STACK }}",
      "cancel-in-progress": false,
    });
  });

  it("grants exactly the permissions each job needs", () => {
    expect(workflow.permissions).toEqual({});
    expect(testJob.permissions).toEqual({ contents: "read" });
    expect(deployJob.permissions).toEqual({ contents: "read", "id-token": "write" });
  });

  it("tests exactly as the pull request workflow does", () => {
    expect(testJob).toEqual(pr.workflow.jobs.test);
  });
});

describe("both workflows", () => {
  it.each(all)("$file authenticates to GCP with Workload Identity Federation only", (wf) => {
    const authSteps = allSteps(wf.workflow).filter((s) =>
      s.uses?.startsWith("google-github-actions/auth@"),
    );
    expect(authSteps).toHaveLength(1);
    expect(authSteps[0].uses).toBe("google-github-actions/auth@v2");
    // Previews run pull request code: they get a read-mostly service account; only the
    // production environment may impersonate the deployer (the README (CI/CD) binds each).
    expect(authSteps[0].with).toEqual({
      workload_identity_provider: "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
      service_account: `\${{ vars.${wf.serviceAccountVariable} }}`,
    });
    // No JSON key by any route: not as an input, not as an environment variable.
    expect(wf.text).not.toMatch(/credentials_json|GOOGLE_CREDENTIALS|GOOGLE_APPLICATION_CRED/);
    // Only a job allowed to mint an OIDC token authenticates.
    for (const job of Object.values(wf.workflow.jobs)) {
      const authenticates = job.steps.some((s) => s.uses?.startsWith("google-github-actions/"));
      expect(job.permissions?.["id-token"] === "write").toBe(authenticates);
    }
  });

  it.each(all)("$file reads no secret but the passphrase, and names no long-lived key", (wf) => {
    const secrets = [
      ...wf.text.matchAll(/secrets\s*(?:\.\s*([A-Za-z0-9_]+)|\[\s*'([^']+)'\s*\])/g),
    ];
    const secretNames = new Set(secrets.map((m) => m[1] ?? m[2]));
    expect([...secretNames]).toEqual(ALLOWED_SECRETS);
    const variableNames = [...wf.text.matchAll(/vars\.([A-Za-z0-9_]+)/g)].map((m) => m[1]);
    const envNames = [
      wf.workflow,
      ...Object.values(wf.workflow.jobs),
      ...allSteps(wf.workflow),
    ].flatMap((holder) => Object.keys((holder as { env?: object }).env ?? {}));
    const names = [...secretNames, ...variableNames, ...envNames];
    expect(names.filter(looksLikeLongLivedCredential)).toEqual([]);
    // The passphrase reaches steps only as PULUMI_CONFIG_PASSPHRASE, never as an action input.
    for (const step of allSteps(wf.workflow)) {
      expect(JSON.stringify(step.with ?? {})).not.toContain("secrets.");
      for (const [name, value] of Object.entries(step.env ?? {})) {
        if (String(value).includes("secrets.")) {
          expect([name, value]).toEqual([
            "PULUMI_CONFIG_PASSPHRASE",
            "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
          ]);
        }
      }
    }
    expect(wf.text).not.toMatch(/-----BEGIN|"private_key"|"type": *"service_account"/);
  });

  it("the long-lived-key rule catches key-shaped names and passes the ones used here", () => {
    for (const bad of [
      "GCP_SA_KEY",
      "GOOGLE_CREDENTIALS",
      "SERVICE_ACCOUNT_JSON",
      "credentials_json",
      "PULUMI_ACCESS_TOKEN",
      "DEPLOY_PRIVATE_KEY",
      "GH_PAT",
    ]) {
      expect([bad, looksLikeLongLivedCredential(bad)]).toEqual([bad, true]);
    }
    for (const good of [
      "PULUMI_CONFIG_PASSPHRASE",
      "GCP_WORKLOAD_IDENTITY_PROVIDER",
      "GCP_DEPLOY_SERVICE_ACCOUNT",
      "PULUMI_BACKEND_URL",
      "PULUMI_STACK",
      "GITHUB_TOKEN",
      "comment-on-pr",
      "KEYRING_NAME",
    ]) {
      expect([good, looksLikeLongLivedCredential(good)]).toEqual([good, false]);
    }
  });

  it.each(all)("$file pins every action to a major version or a commit", (wf) => {
    const uses = allSteps(wf.workflow).flatMap((s) => (s.uses ? [s.uses] : []));
    expect(uses.length).toBeGreaterThan(0);
    for (const use of uses) {
      expect(use).toMatch(/^[\w.-]+\/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/);
    }
  });

  it.each(all)("$file has run: blocks that pass shellcheck", (wf) => {
    // GitHub runs them with `bash --noprofile --norc -eo pipefail`; actionlint (natively) swaps
    // each ${{ }} expression for underscores before calling shellcheck, and so does this.
    expect(wf.workflow).toHaveProperty("defaults.run.shell", "bash");
    // The variables a block may read are the `env:` of its workflow, job and step: declared
    // first, so shellcheck still reports any other variable read but never assigned.
    const blocks = Object.values(wf.workflow.jobs).flatMap((job) =>
      job.steps.flatMap((step) => {
        if (step.run === undefined) return [];
        const scope = [
          ...GITHUB_DEFAULT_ENV,
          ...[wf.workflow, job, step].flatMap((h) => Object.keys(h.env ?? {})),
        ];
        return [
          { block: step.run, declared: scope.map((name) => `export ${name}=set\n`).join("") },
        ];
      }),
    );
    expect(blocks.length).toBeGreaterThan(0);
    for (const { block, declared } of blocks) {
      const script = block.replace(/\$\{\{[^}]*\}\}/g, (expr) => "_".repeat(expr.length));
      // Run from the repository root so its .shellcheckrc applies, as to every other script.
      const result = spawnSync("shellcheck", ["--shell=bash", "--severity=style", "-"], {
        cwd: ROOT,
        input: `set -eo pipefail\n${declared}${script}`,
        encoding: "utf8",
      });
      expect(result.error).toBeUndefined();
      expect({ block, findings: result.stdout }).toEqual({ block, findings: "" });
      expect(result.status).toBe(0);
    }
  });
});

describe("scripts/actionlint.sh", () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "actionlint-"));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("finds nothing in this repository's workflows", () => {
    const result = runActionlint([]);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("3 file(s) checked, 0 finding(s)");
    expect(result.status).toBe(0);
  });

  it("fails on a broken workflow and prints each finding with its place", () => {
    const broken = pr.text
      .replace("pull-requests: write", "pull-request: write")
      .replace("comment-on-pr: true", "comment-on-prr: true");
    expect(broken).not.toBe(pr.text);
    fs.writeFileSync(path.join(tmp, "broken.yml"), broken);
    fs.copyFileSync(path.join(WORKFLOWS, "deploy.yml"), path.join(tmp, "deploy.yml"));

    const result = runActionlint([tmp]);
    expect(result.status).toBe(1);
    const findings = result.stdout.trim().split("\n");
    expect(findings).toHaveLength(2);
    expect(findings[0]).toMatch(/broken\.yml:\d+:\d+: unknown permission scope "pull-request"/);
    expect(findings[1]).toMatch(
      /broken\.yml:\d+:\d+: input "comment-on-prr" is not defined in action "pulumi\/actions@v6"/,
    );
    expect(result.stderr).toContain("2 file(s) checked, 2 finding(s)");

    // A list of files works too, and a clean file alone passes.
    expect(runActionlint([path.join(tmp, "deploy.yml")]).status).toBe(0);
    expect(runActionlint([path.join(tmp, "deploy.yml"), path.join(tmp, "broken.yml")]).status).toBe(
      1,
    );
  });

  it("refuses a path that names no workflow instead of passing", () => {
    const missing = runActionlint([path.join(tmp, "nope.yml")]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("no such file or directory");
    const empty = runActionlint([tmp]);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain("no *.yml or *.yaml file in directory");
  });
});

// ---------------------------------------------------------------------------------------------
// The README's one-time setup (CI/CD) against the workflows and the stack.

/** docs/cicd.md's "## One-time setup" section. */
function setupSection(): string {
  const readme = fs.readFileSync(path.join(ROOT, "docs", "cicd.md"), "utf8");
  const start = readme.indexOf("\n## One-time setup\n");
  expect(start).toBeGreaterThan(-1);
  const rest = readme.slice(start + 1);
  const end = rest.indexOf("\n## ", 1);
  return end === -1 ? rest : rest.slice(0, end);
}

/** The commands of the setup's bash blocks, in order, with backslash continuations joined. */
function setupCommands(): string[] {
  const blocks = [...setupSection().matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((block) =>
    block
      .replace(/\\\n\s*/g, " ")
      .split("\n")
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line !== "" && !line.startsWith("#")),
  );
}

/**
 * Which backend a `pulumi` command uses: PULUMI_BACKEND_URL, else Pulumi.yaml's backend.url,
 * else what `pulumi login` stored. Ported from pulumi/pulumi pkg/workspace/creds.go,
 * `GetCurrentCloudURLWithSource`.
 */
function backendOf(
  env: Map<string, string>,
  projectBackendUrl: string | undefined,
  loggedIn: string | undefined,
): string | undefined {
  return env.get("PULUMI_BACKEND_URL") || projectBackendUrl || loggedIn;
}

/** Each `pulumi` command of the setup with the backend it runs against, shell state tracked. */
function pulumiCommandsWithBackend(): { command: string; backend: string | undefined }[] {
  const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
  const env = new Map<string, string>();
  let loggedIn: string | undefined;
  const found: { command: string; backend: string | undefined }[] = [];
  for (const line of setupCommands()) {
    const exported = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (exported) {
      env.set(exported[1], exported[2].replace(/^"(.*)"$/, "$1"));
      continue;
    }
    const unset = /^env -u ([A-Z_]+) (pulumi .*)$/.exec(line);
    const command = unset ? unset[2] : line;
    if (!command.startsWith("pulumi ")) continue;
    const commandEnv = new Map(env);
    if (unset) commandEnv.delete(unset[1]);
    const backend = backendOf(commandEnv, project.backend?.url, loggedIn);
    found.push({ command, backend });
    const login = /^pulumi login "?([^"\s]+)"?/.exec(command);
    if (login) loggedIn = login[1];
  }
  return found;
}

describe("README one-time setup agrees with the workflows", () => {
  const pulumiActionsSteps = all.flatMap(({ file, workflow }) =>
    allSteps(workflow)
      // Those that run a command (real-cloud.yml's only installs the CLI, for a sandbox stack).
      .filter((s) => s.uses?.split("@")[0] === "pulumi/actions" && s.with?.command !== undefined)
      .map((step) => ({ file, step })),
  );

  test("the workflows read the stack from vars.PULUMI_BACKEND_URL and vars.PULUMI_STACK", () => {
    expect(pulumiActionsSteps.map((s) => s.file).sort()).toEqual([
      "deploy.yml",
      "pull-request.yml",
    ]);
    for (const { step } of pulumiActionsSteps) {
      expect(step.env?.PULUMI_BACKEND_URL).toBe("${{ vars.PULUMI_BACKEND_URL }}");
      expect(step.with?.["stack-name"]).toBe("${{ vars.PULUMI_STACK }}");
    }
  });

  test("the setup sets those variables to its bucket and stack", () => {
    const commands = setupCommands();
    expect(commands).toContain(
      'gh variable set PULUMI_BACKEND_URL --repo "$GITHUB_REPO" --body "$BUCKET"',
    );
    expect(commands).toContain(
      'gh variable set PULUMI_STACK --repo "$GITHUB_REPO" --body "$STACK"',
    );
    expect(commands.find((c) => c.startsWith("BUCKET="))).toMatch(/^BUCKET="gs:\/\//);
  });

  test("Pulumi.yaml names a backend, so `pulumi login` alone would not reach the bucket", () => {
    const project = parse(fs.readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8"));
    expect(project.backend?.url).toBe("file://~");
    expect(backendOf(new Map(), project.backend.url, "$BUCKET")).toBe("file://~");
    expect(
      backendOf(new Map([["PULUMI_BACKEND_URL", "$BUCKET"]]), project.backend.url, undefined),
    ).toBe("$BUCKET");
  });

  test("every pulumi command of the setup that creates, configures or imports the stack runs against the bucket", () => {
    const commands = pulumiCommandsWithBackend();
    const writes = commands.filter(({ command }) =>
      /^pulumi (stack init|stack import|config set|stack ls)\b/.test(command),
    );
    expect(writes.map((c) => c.command)).toEqual(
      expect.arrayContaining([
        'pulumi stack init "$STACK" --secrets-provider passphrase',
        'pulumi stack import --stack "$STACK" --file state.json',
      ]),
    );
    for (const { command, backend } of writes) {
      expect({ command, backend }).toEqual({ command, backend: "$BUCKET" });
    }
    // The one command meant for the old local stack: exporting it before the move.
    const exports = commands.filter(({ command }) => command.startsWith("pulumi stack export"));
    expect(exports).toEqual([
      { command: 'pulumi stack export --stack "$STACK" --file state.json', backend: "file://~" },
    ]);
  });
});

describe("README one-time setup: the deployer's and previewer's roles cover the stack", () => {
  /**
   * What each resource type the stack registers, and each data source it reads, needs: the
   * role that grants it to the deployer (pulumi up) and, for reads, to the previewer. A type
   * that is not here fails the test: add the role to the README's step 5 and to this table.
   */
  const NEEDS: Record<string, { deployer?: string[]; previewer?: string[] }> = {
    "gcp:compute/address:Address": { deployer: ["roles/compute.admin"] },
    "gcp:compute/disk:Disk": { deployer: ["roles/compute.admin"] },
    "gcp:compute/diskResourcePolicyAttachment:DiskResourcePolicyAttachment": {
      deployer: ["roles/compute.admin"],
    },
    "gcp:compute/firewall:Firewall": { deployer: ["roles/compute.admin"] },
    // Creating a VM that runs as a service account needs actAs on it.
    "gcp:compute/instance:Instance": {
      deployer: ["roles/compute.admin", "roles/iam.serviceAccountUser"],
    },
    "gcp:compute/instanceIAMMember:InstanceIAMMember": { deployer: ["roles/compute.admin"] },
    "gcp:compute/resourcePolicy:ResourcePolicy": { deployer: ["roles/compute.admin"] },
    "gcp:serviceaccount/account:Account": { deployer: ["roles/iam.serviceAccountAdmin"] },
    "gcp:projects/iAMMember:IAMMember": { deployer: ["roles/resourcemanager.projectIamAdmin"] },
    "gcp:projects/iAMCustomRole:IAMCustomRole": { deployer: ["roles/iam.roleAdmin"] },
    // Reads, during preview and up alike.
    "gcp:compute/getDisk:getDisk": {
      deployer: ["roles/compute.admin"],
      previewer: ["roles/compute.viewer"],
    },
    "gcp:compute/getInstance:getInstance": {
      deployer: ["roles/compute.admin"],
      previewer: ["roles/compute.viewer"],
    },
    // compute.instances.getGuestAttributes: the VM's published SSH host key.
    "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes": {
      deployer: ["roles/compute.admin"],
      previewer: ["roles/compute.viewer"],
    },
    "gcp:organizations/getProject:getProject": {
      deployer: ["roles/browser"],
      previewer: ["roles/browser"],
    },
    // Nothing in GCP: a key pair in the state, and commands over SSH.
    "tls:index/privateKey:PrivateKey": {},
    "tls:index/getPublicKey:getPublicKey": {},
    "command:remote:Command": {},
    // The host key pin and its check run on the deploying machine; the iap reconcile also
    // needs roles/iap.tunnelResourceAccessor (docs/security.md), granted only with connectVia iap.
    "command:local:Command": {},
  };

  /** Every role the setup grants each account in the project, and the conditional ones. */
  function grants(): { roles: Map<string, Set<string>>; conditional: Map<string, string> } {
    const roles = new Map<string, Set<string>>([
      ["DEPLOYER", new Set()],
      ["PREVIEWER", new Set()],
    ]);
    const conditional = new Map<string, string>();
    let loop: string[] = [];
    for (const command of setupCommands()) {
      const forLoop = /^for role in (.*); do$/.exec(command);
      if (forLoop) loop = forLoop[1].split(/\s+/);
      if (command === "done") loop = [];
      if (!/gcloud projects add-iam-policy-binding "\$PROJECT_ID"/.test(command)) continue;
      const account = /--member "serviceAccount:\$\{(DEPLOYER|PREVIEWER)\}"/.exec(command)?.[1];
      const role = /--role "?([^"\s]+)"?/.exec(command)?.[1];
      expect(account && role).toBeTruthy();
      const granted = role === "$role" ? loop : [role as string];
      for (const r of granted) roles.get(account as string)?.add(r);
      const file = /--condition-from-file (\S+)/.exec(command)?.[1];
      if (file) conditional.set(`${account}:${role}`, file);
    }
    return { roles, conditional };
  }

  let run: Awaited<ReturnType<typeof import("./harness").runProgram>>;
  beforeAll(async () => {
    const { BASE_CONFIG, runProgram } = await import("./harness");
    // Every optional resource on: Vertex AI (the project grant) and work hours (custom role,
    // schedule, getProject).
    run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexRegion": "us-east5",
      "agent-host:workHoursStart": "08:00",
      "agent-host:workHoursStop": "19:00",
    });
  }, 60_000);

  test("every resource type and data source the stack uses is in the table", () => {
    const used = new Set([
      ...run.resources.map((r) => r.type).filter((t) => !t.startsWith("agent-host:")),
      ...run.invokes,
    ]);
    expect([...used].filter((t) => !(t in NEEDS)).sort()).toEqual([]);
    expect(used.has("gcp:projects/iAMMember:IAMMember")).toBe(true);
    expect(used.has("gcp:projects/iAMCustomRole:IAMCustomRole")).toBe(true);
  });

  test("the setup grants the deployer and the previewer what those types need", () => {
    const { roles } = grants();
    const used = new Set([...run.resources.map((r) => r.type), ...run.invokes]);
    for (const type of used) {
      for (const role of NEEDS[type]?.deployer ?? []) {
        expect({ type, role, deployer: roles.get("DEPLOYER")?.has(role) }).toEqual({
          type,
          role,
          deployer: true,
        });
      }
      for (const role of NEEDS[type]?.previewer ?? []) {
        expect({ type, role, previewer: roles.get("PREVIEWER")?.has(role) }).toEqual({
          type,
          role,
          previewer: true,
        });
      }
    }
    // Nothing that writes is granted to the previewer.
    expect([...(roles.get("PREVIEWER") ?? [])].sort()).toEqual([
      "roles/browser",
      "roles/compute.viewer",
      "roles/iam.serviceAccountViewer",
    ]);
  });

  test("the deployer's project IAM admin role is conditional: it may grant exactly the roles the stack grants", () => {
    const { conditional } = grants();
    expect([...conditional.keys()]).toEqual(["DEPLOYER:roles/resourcemanager.projectIamAdmin"]);
    const projectGrants = [
      ...new Set(
        run.resources
          .filter((r) => r.type === "gcp:projects/iAMMember:IAMMember")
          .map((r) => String(r.inputs.role)),
      ),
    ].sort();
    expect(projectGrants).toEqual(["roles/aiplatform.user"]);
    const expression = setupCommands()
      .join("\n")
      .match(
        /expression: (api\.getAttribute\('iam\.googleapis\.com\/modifiedGrantsByRole', \[\]\)\.hasOnly\(\[(.*?)\]\))/,
      );
    expect(expression).not.toBeNull();
    const allowed = [...(expression?.[2] ?? "").matchAll(/'([^']+)'/g)].map((m) => m[1]).sort();
    expect(allowed).toEqual(projectGrants);
  });
});

// ---------------------------------------------------------------------------------------------
// scripts/check-workflows.ts: the test job as the steps it runs in a fresh container.

describe("scripts/check-workflows.ts testJobPlan", () => {
  it("turns each workflow's test job into checkout, setup-node and the run: steps, in order", () => {
    for (const wf of [
      { file: "pull-request.yml", text: pr.text },
      { file: "deploy.yml", text: deploy.text },
    ]) {
      const plan = testJobPlan(wf.text, wf.file) ?? [];
      expect(plan.map((s) => s.kind)).toEqual([
        "checkout",
        "setup-node",
        ...CI_COMMANDS.map(() => "run"),
      ]);
      expect(plan.flatMap((s) => (s.kind === "run" ? [s.run.trim()] : []))).toEqual(CI_COMMANDS);
    }
  });

  it("refuses what it cannot run as written, instead of skipping it", () => {
    const job = (steps: string) =>
      `name: x\non: push\ndefaults:\n  run:\n    shell: bash\njobs:\n  test:\n    runs-on: ubuntu-24.04\n${steps}`;
    expect(() =>
      testJobPlan(job("    container: debian:12\n    steps:\n      - run: true\n"), "a.yml"),
    ).toThrow("a.yml: jobs.test runs in a container; the check emulates the runner VM");
    expect(() =>
      testJobPlan(job("    steps:\n      - uses: docker/setup-buildx-action@v3\n"), "b.yml"),
    ).toThrow("b.yml: jobs.test.steps[0]: docker/setup-buildx-action@v3 is not emulated");
    expect(() =>
      testJobPlan(job("    steps:\n      - run: echo ${{ github.sha }}\n"), "c.yml"),
    ).toThrow("c.yml: jobs.test.steps[0] uses a ${{ }} expression, which only GitHub can evaluate");
    expect(
      testJobPlan("name: x\non: push\njobs:\n  other:\n    runs-on: x\n    steps: []\n", "d.yml"),
    ).toBeUndefined();
  });
});
