// The real-cloud check (.github/workflows/real-cloud.yml → scripts/real-cloud.sh): it cannot
// reach GCP from here, so this checks what can be checked without it. The preview check
// (scripts/preview-changes.ts) against `pulumi preview --json` documents of the shape pulumi/pulumi
// prints (pkg/display/json.go, PreviewDigest); the script's order of pulumi commands, run against
// a recording stand-in for the CLI; and the workflow's shape: it skips with a notice when
// unconfigured, cleans up whatever happened. The shared workflow rules (Workload Identity
// Federation only, the one secret, pinned actions, shellcheck) are in tests/workflows.test.ts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { unexpectedChanges, urnTail, type PreviewDigest } from "../scripts/preview-changes";

const ROOT = path.resolve(__dirname, "..");
const SCRIPT = path.join(ROOT, "scripts", "real-cloud.sh");
const STACK = "real-cloud-1-1";
const P = `urn:pulumi:${STACK}::agent-host::`;
const RECONCILE = "agent-host:fleet:AgentFleet$command:remote:Command::agent-host-reconcile";
const VM = "agent-host:host:AgentHost$gcp:compute/instance:Instance::agent-host-vm";

/** A preview digest: every resource `same` but the ones given. */
function digest(changed: Record<string, string> = {}): PreviewDigest {
  const tails = ["pulumi:pulumi:Stack::agent-host-" + STACK, VM, RECONCILE];
  return {
    steps: tails.map((tail) => ({
      op: changed[tail] ?? "same",
      urn: P + tail,
      ...(changed[tail] ? { diffReasons: ["create", "update", "stdin"] } : {}),
    })),
  };
}

describe("scripts/preview-changes.ts", () => {
  test("a URN's tail is its qualified type and name, whatever the stack", () => {
    expect(urnTail(P + RECONCILE)).toBe(RECONCILE);
  });

  test("the reconcile command updated and nothing else: as expected", () => {
    expect(unexpectedChanges(digest({ [RECONCILE]: "update" }), { [RECONCILE]: "update" })).toEqual(
      [],
    );
  });

  test("the VM touched too, the command replaced, or no change at all: each named", () => {
    expect(
      unexpectedChanges(digest({ [RECONCILE]: "update", [VM]: "update" }), {
        [RECONCILE]: "update",
      }),
    ).toEqual([`unexpected update of ${P}${VM} (create, update, stdin)`]);
    expect(
      unexpectedChanges(digest({ [RECONCILE]: "replace" }), { [RECONCILE]: "update" }),
    ).toEqual([`${P}${RECONCILE}: replace, expected update`]);
    expect(unexpectedChanges(digest(), { [RECONCILE]: "update" })).toEqual([
      `no update of ${RECONCILE}`,
    ]);
    expect(unexpectedChanges({}, { [RECONCILE]: "update" })[0]).toContain("lists no steps");
  });
});

describe("scripts/real-cloud.sh, against a recording stand-in for the pulumi CLI", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "real-cloud-"));
    // pulumi: records its argv; `preview --json` prints $FAKE_PREVIEW; `stack export` an empty
    // state; everything else succeeds silently. gcloud: records, finds no disk.
    fs.writeFileSync(
      path.join(dir, "pulumi"),
      [
        "#!/usr/bin/env bash",
        'printf "pulumi %s\\n" "$*" >>"${FAKE_LOG}"',
        'if [[ " $* " == *" preview "* && " $* " == *" --json "* ]]; then cat "${FAKE_PREVIEW}"; fi',
        'if [[ " $* " == *" stack export "* ]]; then echo "{}"; fi',
        "exit 0",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(dir, "gcloud"),
      '#!/usr/bin/env bash\nprintf "gcloud %s\\n" "$*" >>"${FAKE_LOG}"\nexit 1\n',
      { mode: 0o755 },
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function run(preview: PreviewDigest, args: string[] = []) {
    const previewFile = path.join(dir, "preview.json");
    fs.writeFileSync(previewFile, JSON.stringify(preview));
    const log = path.join(dir, "log");
    const result = spawnSync("bash", [SCRIPT, ...args], {
      encoding: "utf8",
      env: {
        PATH: `${dir}:${process.env.PATH}`,
        HOME: dir,
        FAKE_LOG: log,
        FAKE_PREVIEW: previewFile,
        REAL_CLOUD_STACK: STACK,
        REAL_CLOUD_PROJECT: "sandbox-project",
        REAL_CLOUD_ZONE: "europe-west1-b",
        REAL_CLOUD_SSH_CIDR: "203.0.113.9/32",
        PULUMI_BACKEND_URL: "gs://sandbox-state",
        PULUMI_CONFIG_PASSPHRASE: "test",
      },
    });
    const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
    return { ...result, calls };
  }

  const S = `--stack ${STACK}`;

  test("up, preview, refresh, the count change, destroy, up again, then the cleanup", () => {
    const r = run(digest({ [RECONCILE]: "update" }));
    expect(r.status).toBe(0);
    const run_ = r.calls.filter((c) => c.startsWith("pulumi"));
    expect(run_.slice(0, 17)).toEqual([
      `pulumi --non-interactive stack init ${STACK} --secrets-provider passphrase`,
      `pulumi --non-interactive config set gcp:project sandbox-project ${S}`,
      `pulumi --non-interactive config set gcp:zone europe-west1-b ${S}`,
      `pulumi --non-interactive config set agent-host:sshSourceRanges ["203.0.113.9/32"] ${S}`,
      `pulumi --non-interactive config set agent-host:agentCount 2 ${S}`,
      `pulumi --non-interactive up --yes --skip-preview ${S}`,
      `pulumi --non-interactive preview --expect-no-changes --diff ${S}`,
      `pulumi --non-interactive refresh --yes --expect-no-changes ${S}`,
      `pulumi --non-interactive config set agent-host:agentCount 3 ${S}`,
      `pulumi --non-interactive preview --json ${S}`,
      `pulumi --non-interactive up --yes --skip-preview ${S}`,
      `pulumi --non-interactive preview --expect-no-changes --diff ${S}`,
      `pulumi --non-interactive destroy --yes --skip-preview ${S}`,
      `pulumi --non-interactive up --yes --skip-preview ${S}`,
      `pulumi --non-interactive preview --expect-no-changes --diff ${S}`,
      `pulumi --non-interactive stack select ${STACK}`,
      // scripts/destroy.sh --delete-data reads the state first.
      `pulumi stack export ${S}`,
    ]);
    // The stand-in's state has no data disk, so destroy.sh refuses and the fallback runs: destroy
    // what the state holds, look for a kept disk by its name, remove the stack.
    expect(r.stderr).toContain("destroy: error: the stack's state has no data disk");
    expect(r.stderr).toContain("real-cloud: destroying what the state holds");
    expect(r.calls.slice(-3)).toEqual([
      `pulumi --non-interactive destroy --yes --skip-preview ${S}`,
      `gcloud compute disks describe agent-host-${STACK}-data --zone europe-west1-b --project sandbox-project`,
      `pulumi --non-interactive stack rm ${STACK} --yes`,
    ]);
  });

  test("a count change that also touches the VM stops the run before the up", () => {
    const r = run(digest({ [RECONCILE]: "update", [VM]: "update" }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`preview-changes: unexpected update of ${P}${VM}`);
    expect(r.calls.at(-1)).toBe(`pulumi --non-interactive preview --json ${S}`);
  });

  test("unconfigured: it names what is missing and runs nothing", () => {
    const r = spawnSync("bash", [SCRIPT], {
      encoding: "utf8",
      env: { PATH: `${dir}:${process.env.PATH}`, FAKE_LOG: path.join(dir, "log") },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "set REAL_CLOUD_STACK REAL_CLOUD_PROJECT REAL_CLOUD_ZONE PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE",
    );
    expect(fs.existsSync(path.join(dir, "log"))).toBe(false);
  });
});

describe(".github/workflows/real-cloud.yml", () => {
  interface Step {
    id?: string;
    if?: string;
    run?: string;
    uses?: string;
    env?: Record<string, string>;
  }
  const workflow = parse(
    fs.readFileSync(path.join(ROOT, ".github/workflows/real-cloud.yml"), "utf8"),
  ) as {
    on: Record<string, unknown>;
    jobs: Record<
      string,
      { if?: string; needs?: string; env?: Record<string, string>; steps: Step[] }
    >;
  };
  const check = workflow.jobs.configured.steps[0];
  const job = workflow.jobs["real-cloud"];

  test("runs by hand or nightly, never on a push or a pull request", () => {
    expect(Object.keys(workflow.on).sort()).toEqual(["schedule", "workflow_dispatch"]);
  });

  test("unconfigured, it says so with a notice and the deploying job is skipped", () => {
    expect(check.run).toContain("::notice title=Real-cloud check skipped::");
    expect(job.needs).toBe("configured");
    expect(job.if).toBe("needs.configured.outputs.ready == 'true'");
    // Every variable and secret the job reads is one the check requires (but the optional
    // REAL_CLOUD_SSH_CIDR, which the script looks up when unset).
    const checked = Object.keys(check.env ?? {});
    for (const name of checked) expect(check.run).toContain(name);
    const text = JSON.stringify(job);
    const read = [...text.matchAll(/(?:vars|secrets)\.([A-Z_]+)/g)].map((m) => m[1]);
    expect(read.filter((n) => n !== "REAL_CLOUD_SSH_CIDR" && !checked.includes(n))).toEqual([]);
  });

  test("runs scripts/real-cloud.sh, then its cleanup whatever happened", () => {
    const runs = job.steps.filter((s) => s.run);
    expect(runs.map((s) => [s.run, s.if])).toEqual([
      ["npm ci", undefined],
      ["bash scripts/real-cloud.sh run", undefined],
      ["bash scripts/real-cloud.sh cleanup", "always()"],
    ]);
    expect(job.env?.REAL_CLOUD_STACK).toBe(
      "real-cloud-${{ github.run_id }}-${{ github.run_attempt }}",
    );
  });
});
