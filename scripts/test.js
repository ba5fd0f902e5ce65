#!/usr/bin/env node
// `npm test` and `npm run test:system` (docs/testing.md). Plain Node with no dependency, so it
// runs on a fresh clone: it installs the locked dependencies first when they are missing (npm
// ci), then runs jest, whose global setup builds the host bundle (tests/global-setup.ts).
//   npm test                  the suites that need no root, no users, no loop devices, no nspawn
//   npm run test:system       the host and boot suites: they create Unix users, run tmux, sshd,
//                             cloud-init, nspawn; only as root in CI or in a throwaway container
// Extra arguments go to jest: npm test -- tests/render-cli.test.ts
"use strict";
const { spawnSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");

/** The jest projects (jest.config.js) of each suite set; all but `unit` are system suites. */
const SUITES = {
  unit: ["pure"],
  system: ["host", "boot"],
  host: ["host"],
  boot: ["boot"],
  // What the pull-request workflow runs (the boot test needs more than a hosted runner has).
  "unit+host": ["pure", "host"],
};

function log(message) {
  process.stderr.write(`test: ${message}\n`);
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: ROOT, stdio: "inherit" });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

/** npm ci when jest is not installed: a fresh clone's first command must work as written. */
function ensureDependencies() {
  if (fs.existsSync(path.join(ROOT, "node_modules", ".bin", "jest"))) return;
  log("dependencies are not installed: running npm ci (once)");
  const status = run("npm", ["ci", "--no-audit", "--no-fund"]);
  if (status !== 0) {
    log("npm ci failed (above); fix that, then run the tests again");
    process.exit(status);
  }
}

/** True when this looks like a container someone can throw away (Docker, Podman, nspawn, LXC). */
function inContainer() {
  if (fs.existsSync("/.dockerenv") || fs.existsSync("/run/.containerenv")) return true;
  try {
    // systemd and nspawn/LXC set `container=` in PID 1's environment.
    return /(^|\0)container=/.test(fs.readFileSync("/proc/1/environ", "latin1"));
  } catch {
    return false;
  }
}

/**
 * The system suites change the machine they run on: they create Unix users (agent, agent-admin,
 * the test agents), write /etc/claude-code, /usr/local/lib/agent-host and /var/cache, start tmux
 * and sshd on loopback, and boot a Debian system under systemd-nspawn. That is for a machine
 * nobody keeps: CI (CI=true, as GitHub Actions and .ci/run set it) or a throwaway container.
 */
function refuseSystemSuitesHere() {
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  const where = process.env.CI === "true" ? "CI" : inContainer() ? "a container" : undefined;
  if (uid === 0 && where) {
    log(`system suites as root in ${where}`);
    return undefined;
  }
  const why =
    uid !== 0
      ? "they need root (they create Unix users, mount loop devices and boot systemd-nspawn)"
      : "this machine looks like one you keep: they would create Unix users and leave caches in /var/cache";
  return [
    `npm run test:system refuses to run here: ${why}.`,
    "Run them where nothing is kept, as root:",
    "  in CI:                 .ci/run (sets CI=true; installs the packages they need)",
    "  in a throwaway Debian 12 container (see docs/testing.md):",
    '    docker run --rm --privileged -v "$PWD":/src -w /src debian:12 .ci/run',
    "Everything that needs no root runs with: npm test",
  ].join("\n");
}

function main(argv) {
  const [mode = "unit", ...jestArgs] = argv;
  const projects = SUITES[mode];
  if (!projects) {
    log(`unknown suite set '${mode}' (${Object.keys(SUITES).join(", ")})`);
    return 2;
  }
  if (mode !== "unit") {
    const refusal = refuseSystemSuitesHere();
    if (refusal) {
      process.stderr.write(`${refusal}\n`);
      return 1;
    }
  }
  ensureDependencies();
  const jest = path.join(ROOT, "node_modules", ".bin", "jest");
  return run(jest, ["--selectProjects", ...projects, ...jestArgs]);
}

process.exitCode = main(process.argv.slice(2));
