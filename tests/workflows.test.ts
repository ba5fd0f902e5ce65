// The GitHub workflows, checked as data (parsed with `yaml`), by actionlint (scripts/actionlint.sh)
// and, for their `run:` blocks, by shellcheck (which actionlint's WebAssembly build cannot start).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";

const ROOT = path.resolve(__dirname, "..");
const WORKFLOWS = path.join(ROOT, ".github", "workflows");
const ACTIONLINT = path.join(ROOT, "scripts", "actionlint.sh");

// The README's test command. `npm test` runs both jest projects; CI runs the "unit" project on
// every pull request and the "boot" project in .ci/run (the README (CI/CD) says why).
const README_TEST_COMMAND = "npm test";
const CI_COMMANDS = [
  "npm ci",
  "npm run lint",
  "npm run typecheck",
  "npm run test:unit",
  "bash scripts/actionlint.sh",
];

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

  it("runs the README's tests (the unit half of `npm test`), lint, typecheck and actionlint", () => {
    expect(runCommands(testJob).slice(1)).toEqual(CI_COMMANDS);
    // `npm test` = the unit project + the boot project; CI runs the unit one here.
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts.test).toBe("jest");
    expect(pkg.scripts["test:unit"]).toBe("jest --selectProjects unit");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const jestConfig = require(path.join(ROOT, "jest.config.js"));
    expect(jestConfig.projects.map((p: { displayName: string }) => p.displayName)).toEqual([
      "unit",
      "boot",
    ]);
    const readme = path.join(ROOT, "README.md");
    if (fs.existsSync(readme)) {
      expect(fs.readFileSync(readme, "utf8")).toContain(`\`${README_TEST_COMMAND}\``);
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
        const scope = [wf.workflow, job, step].flatMap((h) => Object.keys(h.env ?? {}));
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
    expect(result.stderr).toContain("2 file(s) checked, 0 finding(s)");
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
