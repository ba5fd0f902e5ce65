// Each host.conf key is spelled in as few shipped files as possible (issue 22.5): its definition
// (host/conf/conf.ts), the stack's writer (cloud-init/host-config.ts or config-keys.ts' `host`
// attribute) and the one place that reads it. Counted over what ships (cloud-init/, host/,
// components/ and the program's own files; not tests, docs, scripts or the policy pack), as a
// whole word. The goal is at most 3 files per key. The keys still above it are listed in
// OVER_BUDGET with the count they have today: the count may only go down (a new spelling fails
// here), and a key that reaches 3 must leave the list. See docs/testing.md.
import { execFileSync } from "child_process";
import { readFileSync } from "fs";
import * as path from "path";
import { HOST_KEYS } from "../host/conf/conf";

const ROOT = path.join(__dirname, "..");
const BUDGET = 3;

/**
 * (RUN_DIR, AGENT_USER, WORKSPACES_DIR, STATE_DIR and ADMIN_USER went up by one each with the
 * health and fault-recovery work merged from main: a new reader each, host/attention/health.ts.
 * DOCKER_MODE (new) and DOCKER_SOURCE arrived over budget with rootless Docker, merged from main;
 * DASHBOARD_PORT and DASHBOARD_TOKEN_FILE (new) with the dashboard, whose server and unit also
 * read STATE_DIR and TMUX_SOCKET; AGENT_COUNT with the fleet's per-host counts. AGENT_UID_BASE and
 * AGENT_HOMES_DIR (new) and ADMIN_USER with one user per agent (issue 20): agentctl checks them for
 * the wrappers it starts (its bash CONF_KEYS and AGENTCTL_KEYS), the scheme reads them
 * (agent-user.ts), health watches the homes' filesystem; WORKSPACES_DIR and STATE_DIR went down by
 * one (the dashboard watches each agent's own state folder).)
 * Keys read by bash scripts (each script reads its own keys through `agent-host.js conf`, so the
 * name appears in the script) or by several host modules. Today's counts; lower them, never raise.
 */
const OVER_BUDGET: Record<string, number> = {
  RUN_DIR: 13,
  AGENT_USER: 11,
  CLAUDE_ENV: 8,
  ANTHROPIC_BASE_URL: 7,
  WORKSPACES_DIR: 6,
  PERMISSION_MODE: 6,
  CLAUDE_PROVIDER: 6,
  AUTO_STOP_SECONDS: 6,
  AGENT_COUNT: 7,
  STOP_TIMEOUT_SECONDS: 5,
  STATE_DIR: 6,
  GIT_REPOSITORY: 5,
  CLAUDE_BIN: 5,
  API_KEY_FILE: 5,
  AGENT_MEMORY_MAX_MB: 5,
  AGENT_MAX: 5,
  AGENT_CPU_QUOTA_PERCENT: 5,
  ADMIN_USER: 7,
  AGENT_UID_BASE: 5,
  AGENT_HOMES_DIR: 5,
  VERTEX_REGION: 4,
  VERTEX_PROJECT_ID: 4,
  VERTEX_BASE_URL: 4,
  TMUX_SOCKET: 5,
  START_STAGGER_SECONDS: 4,
  LOGIN_TOKEN_FILE: 4,
  CLAUDE_MODEL: 4,
  CLAUDE_CODE_VERSION: 4,
  AGENTS_MEMORY_MAX_MB: 4,
  DOCKER_MODE: 8,
  DOCKER_SOURCE: 4,
  DASHBOARD_PORT: 5,
  DASHBOARD_TOKEN_FILE: 4,
};

/** What ships: the files the program reads or sends to the VM. */
function shippedFiles(): string[] {
  return execFileSync("git", ["ls-files", "-co", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter(
      (file) =>
        (/^(cloud-init|host|components)\//.test(file) ||
          /^[^/]+\.ts$/.test(file) ||
          file === "Pulumi.yaml") &&
        !file.endsWith(".md") &&
        file !== "cloud-init/host/agent-host.js",
    );
}

const files = shippedFiles().map((file) => ({
  file,
  text: readFileSync(path.join(ROOT, file), "utf8"),
}));

function spelledIn(key: string): string[] {
  const word = new RegExp(`(?<![A-Za-z0-9_])${key}(?![A-Za-z0-9_])`);
  return files.filter((f) => word.test(f.text)).map((f) => f.file);
}

test("the count sees what ships", () => {
  expect(files.map((f) => f.file)).toEqual(
    expect.arrayContaining(["host/conf/conf.ts", "cloud-init/host/agentctl", "config-keys.ts"]),
  );
  expect(spelledIn("DATA_DEVICE")).toEqual(
    expect.arrayContaining(["host/conf/conf.ts", "cloud-init/host/data-disk"]),
  );
});

test.each(Object.keys(HOST_KEYS))("%s is spelled in no more shipped files than allowed", (key) => {
  const where = spelledIn(key);
  expect(where).toContain("host/conf/conf.ts");
  const allowed = OVER_BUDGET[key] ?? BUDGET;
  expect({ key, count: where.length, where }).toEqual({
    key,
    count: Math.min(where.length, allowed),
    where,
  });
});

test("a key listed over budget still is (else it leaves the list)", () => {
  const done = Object.keys(OVER_BUDGET).filter((key) => spelledIn(key).length <= BUDGET);
  expect(done).toEqual([]);
});
