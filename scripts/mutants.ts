// Mutants: each breaks the product once, the way a real regression would, in a temporary copy of
// the repository (never the working tree), and runs the suite that must catch it. A mutant the
// suite lets pass "survived": the check it stands for cannot fail, and this script exits 1.
//
// Every patch is an exact text replacement whose anchor must occur exactly once in the file (a
// patch may list the anchor as it reads before and after a known refactor: exactly one of them
// must be there, once); a
// refactor that moves the anchor stops the script (exit 2) instead of silently running an
// unbroken product. Each named suite is first run on the unmutated copy and must pass, so a
// "caught" means the mutant broke it.
//
// Usage: scripts/mutants.sh [--list] [ID ...]
//   --list  prints the mutants and their suites, runs nothing.
//   ID      runs only these mutants (default: all).
// The table goes to stdout; progress to stderr. Exit: 0 all caught, 1 one survived, 2 a patch or
// a baseline failed.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

interface Patch {
  file: string;
  find: string;
  replace: string;
  /** The same edit on the code as another branch shapes it; exactly one anchor must match. */
  or?: { find: string; replace: string }[];
}

export interface Mutant {
  id: string;
  /** The regression it stands for. */
  what: string;
  /** The suite that must fail (a path under tests/). */
  suite: string;
  patches: Patch[];
}

export const MUTANTS: Mutant[] = [
  {
    id: "resource-before-refusal",
    what: "a resource registered before a config refusal",
    suite: "tests/bad-input.test.ts",
    patches: [
      {
        file: "index.ts",
        find: "export = async () => {\n  const raw = readRawConfig();\n",
        replace:
          'export = async () => {\n  new tls.PrivateKey("early-key", { algorithm: "ED25519" });\n  const raw = readRawConfig();\n',
      },
    ],
  },
  {
    id: "vm-out-of-component",
    what: "the VM moved out of its component, no alias",
    suite: "tests/urns.test.ts",
    patches: [
      {
        file: "components/agent-host.ts",
        find: "      {\n        parent: this,\n        dependsOn: [this.firewall],\n",
        replace: "      {\n        dependsOn: [this.firewall],\n",
        // AgentHost split into named parts (the VM built by a function given its parent).
        or: [
          {
            find: "    { parent, dependsOn: [wiring.firewall] },\n",
            replace: "    { dependsOn: [wiring.firewall] },\n",
          },
        ],
      },
    ],
  },
  {
    id: "component-renamed",
    what: "the AgentHost component renamed, no alias",
    suite: "tests/urns.test.ts",
    patches: [
      {
        file: "config.ts",
        find: 'hosts.push({ ...names, index, label: "host-1", resource: "agent-host" });',
        replace: 'hosts.push({ ...names, index, label: "host-1", resource: "vm-host" });',
      },
    ],
  },
  {
    id: "secret-in-command",
    what: "the API key put into the reconcile command string",
    suite: "tests/secret-leak.test.ts",
    patches: [
      {
        file: "components/agent-fleet.ts",
        find: "    .all([args.instanceId, publicBundle])\n    .apply(([id, bundle]) => applyCommand(args.agentCount, publicBundleSha256(bundle), id));\n",
        replace:
          '    .all([args.instanceId, publicBundle, args.apiKey])\n    .apply(([id, bundle, key]) => `${applyCommand(args.agentCount, publicBundleSha256(bundle), id)} --api-key ${key ?? ""}`);\n',
      },
    ],
  },
  {
    id: "no-restart-on-key-rotation",
    what: "a rotated API key no longer restarts the agents",
    suite: "tests/apply-unit.test.ts",
    patches: [
      {
        file: "host/apply/bundle.ts",
        find: "  return changed.conf || changed.apiKey;\n",
        replace: "  return changed.conf;\n",
      },
    ],
  },
  {
    id: "cut-off-apply-forgets-restart",
    what: "an apply killed after installing a new key or mode forgets the restart it owed",
    suite: "tests/health-unit.test.ts",
    patches: [
      {
        file: "host/apply/journal.ts",
        find: "    restart_owed: prev.boot_id === bootId ? prev.restart_owed : null,\n",
        replace: "    restart_owed: null,\n",
      },
    ],
  },
  {
    id: "lost-hook-starting-forever",
    what: "an agent whose SessionStart hook was lost stays 'starting' although its pane is at the prompt",
    suite: "tests/health-unit.test.ts",
    patches: [
      {
        file: "host/attention/effective.ts",
        find: 'if (facts.pane === "prompt") return make("idle"',
        replace: 'if (facts.pane === "never") return make("idle"',
      },
    ],
  },
  {
    id: "idle-while-waiting-for-permission",
    what: "the cost line says 'every agent idle' while agents wait for permission",
    suite: "tests/autostop-unit.test.ts",
    patches: [
      {
        file: "host/cost/autostop.ts",
        find: "  if (others.length === 0) return `every agent idle for ${shortDuration(quietMs)}`;\n",
        replace: "  return `every agent idle for ${shortDuration(quietMs)}`;\n",
      },
    ],
  },
  {
    id: "agents-stay-in-docker-group",
    what: "dockerMode rootless leaves the agents in the docker group (root-equivalent)",
    suite: "tests/docker-unit.test.ts",
    patches: [
      {
        file: "host/docker/rootless.ts",
        find: '  if (mode === "rootless") return { remove: members.filter(isAgent), add: [] };\n',
        replace: '  if (mode === "rootless") return { remove: [], add: [] };\n',
      },
    ],
  },
  {
    id: "one-docker-socket-for-all",
    what: "every agent's DOCKER_HOST names one shared socket",
    suite: "tests/docker-unit.test.ts",
    patches: [
      {
        file: "host/docker/rootless.ts",
        find: "`${DOCKER_SOCKET_DIR}/${agentUid(n)}.sock`;\n",
        replace: "`${DOCKER_SOCKET_DIR}/docker.sock`;\n",
      },
    ],
  },
  {
    id: "ignore-user-data",
    what: "ignoreChanges on the VM's user-data (a replaced VM boots the first one's)",
    suite: "tests/lifecycle.test.ts",
    patches: [
      {
        file: "components/agent-host.ts",
        find: "      {\n        parent: this,\n        dependsOn: [this.firewall],\n",
        replace:
          "      {\n        parent: this,\n        dependsOn: [this.firewall],\n        ignoreChanges: ['metadata[\"user-data\"]'],\n",
        or: [
          {
            find: "    { parent, dependsOn: [wiring.firewall] },\n",
            replace:
              "    { parent, dependsOn: [wiring.firewall], ignoreChanges: ['metadata[\"user-data\"]'] },\n",
          },
        ],
      },
    ],
  },
  {
    id: "root-writes-session-id",
    what: "the wrapper writes the session id as root again (a link the agent planted is followed)",
    suite: "tests/hostile-agent.test.ts",
    patches: [
      {
        file: "cloud-init/host/agent-wrapper",
        find: '    { printf \'%s\\n\' "${id}" | as_agent tee -- "${f}.tmp" >/dev/null &&\n      as_agent mv -f -- "${f}.tmp" "${f}"; } || die "could not write ${f} as ${AGENT_NAME}"\n',
        replace: '    printf \'%s\\n\' "${id}" >"${f}.tmp"\n    mv -f "${f}.tmp" "${f}"\n',
      },
    ],
  },
];

const log = (line: string) => process.stderr.write(`mutants: ${line}\n`);

class PatchError extends Error {}

/**
 * The text with `patch` applied. Exactly one of its anchors (`find`, or one of `or`) must occur,
 * and exactly once: none, several, or one twice stops the run.
 */
export function applyPatch(text: string, patch: Patch): string {
  const edits = [{ find: patch.find, replace: patch.replace }, ...(patch.or ?? [])];
  const counts = edits.map((e) => text.split(e.find).length - 1);
  const present = edits.filter((_, i) => counts[i] > 0);
  if (present.length !== 1 || text.split(present[0].find).length - 1 !== 1) {
    throw new PatchError(
      `${patch.file}: the anchor occurs ${counts.join(" / ")} times (one of them must occur once); update the mutant to the code:\n${edits.map((e) => e.find).join("\n-- or --\n")}`,
    );
  }
  return text.replace(present[0].find, () => present[0].replace);
}

/** A copy of the repository's files (tracked and new, not ignored), sharing node_modules. */
function copyRepo(repo: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "agent-host-mutant-"));
  const listed = spawnSync(
    "git",
    ["-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    { encoding: "utf8" },
  );
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    const from = path.join(repo, file);
    if (!fs.existsSync(from) || fs.lstatSync(from).isSymbolicLink()) continue;
    fs.mkdirSync(path.join(dir, path.dirname(file)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, file));
  }
  fs.symlinkSync(fs.realpathSync(path.join(repo, "node_modules")), path.join(dir, "node_modules"));
  return dir;
}

interface SuiteRun {
  passed: boolean;
  seconds: number;
  /** The full names of the tests that failed (what the mutant broke). */
  failed: string[];
  output: string;
}

/** Runs one suite in `dir`: did it pass, which tests failed, in how many seconds. */
function runSuite(dir: string, suite: string): SuiteRun {
  const report = path.join(dir, ".mutant-report.json");
  const started = process.hrtime.bigint();
  const run = spawnSync(
    process.execPath,
    [
      path.join(dir, "node_modules/jest/bin/jest.js"),
      suite,
      "--ci",
      "--silent",
      "--json",
      `--outputFile=${report}`,
    ],
    { cwd: dir, encoding: "utf8", env: { ...process.env, CI: "true" } },
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let failed: string[] = [];
  if (fs.existsSync(report)) {
    const json = JSON.parse(fs.readFileSync(report, "utf8")) as {
      testResults: { message: string; assertionResults: { status: string; fullName: string }[] }[];
    };
    failed = json.testResults.flatMap((file) => [
      ...file.assertionResults.filter((a) => a.status === "failed").map((a) => a.fullName),
      // A suite that fails to load has no assertion results, only its message.
      ...(file.assertionResults.length === 0 && file.message ? [file.message.split("\n")[0]] : []),
    ]);
    fs.rmSync(report);
  }
  return { passed: run.status === 0, seconds, failed, output: `${run.stdout}${run.stderr}` };
}

interface Row {
  mutant: string;
  suite: string;
  result: "caught" | "survived";
  seconds: number;
}

function table(rows: Row[]): string {
  const header = { mutant: "mutant", suite: "suite", result: "result", seconds: "seconds" };
  const cells = [header, ...rows.map((r) => ({ ...r, seconds: r.seconds.toFixed(1) }))];
  const width = (key: keyof typeof header) => Math.max(...cells.map((c) => String(c[key]).length));
  const line = (c: (typeof cells)[number]) =>
    (["mutant", "suite", "result", "seconds"] as const)
      .map((k) =>
        k === "seconds" ? String(c[k]).padStart(width(k)) : String(c[k]).padEnd(width(k)),
      )
      .join("  ");
  return cells.map(line).join("\n");
}

function main(argv: string[]): number {
  if (argv.includes("--list")) {
    for (const m of MUTANTS) console.log(`${m.id}\t${m.suite}\t${m.what}`);
    return 0;
  }
  const wanted = argv.filter((a) => !a.startsWith("-"));
  const unknown = wanted.filter((id) => !MUTANTS.some((m) => m.id === id));
  if (unknown.length > 0) {
    log(`no mutant ${unknown.join(", ")}; run with --list to see them`);
    return 2;
  }
  const mutants = wanted.length ? MUTANTS.filter((m) => wanted.includes(m.id)) : MUTANTS;
  const repo = path.resolve(__dirname, "..");
  const copies: string[] = [];
  try {
    // Every patch is checked against the current code before anything runs.
    const patched = mutants.map((m) => {
      const texts = new Map<string, string>();
      for (const patch of m.patches) {
        const text = texts.get(patch.file) ?? fs.readFileSync(path.join(repo, patch.file), "utf8");
        texts.set(patch.file, applyPatch(text, patch));
      }
      return { mutant: m, texts };
    });

    const baseline = copyRepo(repo);
    copies.push(baseline);
    for (const suite of [...new Set(mutants.map((m) => m.suite))]) {
      const run = runSuite(baseline, suite);
      log(`baseline ${suite}: ${run.passed ? "passes" : "FAILS"} (${run.seconds.toFixed(1)} s)`);
      if (!run.passed) {
        process.stderr.write(run.output);
        log(`${suite} fails on the unmutated code: fix it first`);
        return 2;
      }
    }

    const rows: Row[] = [];
    for (const { mutant, texts } of patched) {
      const dir = copyRepo(repo);
      copies.push(dir);
      for (const [file, text] of texts) fs.writeFileSync(path.join(dir, file), text);
      const run = runSuite(dir, mutant.suite);
      const result = run.passed ? "survived" : "caught";
      log(
        `${mutant.id} (${mutant.what}): ${result} by ${mutant.suite} in ${run.seconds.toFixed(1)} s`,
      );
      for (const name of run.failed.slice(0, 3)) log(`  failed: ${name}`);
      if (run.failed.length > 3) log(`  … and ${run.failed.length - 3} more`);
      rows.push({ mutant: mutant.id, suite: mutant.suite, result, seconds: run.seconds });
    }
    console.log(table(rows));
    const survived = rows.filter((r) => r.result === "survived");
    if (survived.length > 0) {
      log(`${survived.length} mutant(s) survived: ${survived.map((r) => r.mutant).join(", ")}`);
      return 1;
    }
    return 0;
  } catch (error) {
    if (error instanceof PatchError) {
      log(error.message);
      return 2;
    }
    throw error;
  } finally {
    for (const dir of copies) fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
