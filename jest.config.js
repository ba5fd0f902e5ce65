// Three projects; `npm test` runs them all.
// - pure: mocks and pure logic; no root, no real tools beyond node and bash; seconds.
// - host: what runs on the VM, run for real here: tmux, sshd, git servers, cloud-init's
//   validator, shellcheck, the real Claude Code; needs root (users, setpriv, namespaces).
// - boot: boots the rendered user-data under systemd-nspawn; minutes.
const common = {
  testEnvironment: "node",
  testEnvironmentOptions: { globalsCleanup: "off" },
  // Type errors are caught by `npm run typecheck` over the same files; transpiling only keeps
  // the suite fast.
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
  // Builds cloud-init/host/agent-host.js from host/ first: it is built, not tracked.
  globalSetup: "<rootDir>/tests/global-setup.ts",
};

/** The suites that drive real host tools (the rest of tests/*.test.ts is pure). */
const HOST_SUITES = [
  "agent-state",
  "agentctl",
  "autostop-real",
  "dashboard",
  "docker-rootless",
  "faults",
  "first-boot",
  "fleet-cli",
  "fleet-ssh",
  "git-checkouts",
  "host-key-pin",
  "host-scripts",
  "hostile-agent",
  "node-version",
  "real-claude",
  "render",
  "seed-claude-config",
  "spot-shutdown",
  "upgrade-users",
  "workflows",
].map((name) => `<rootDir>/tests/${name}.test.ts`);

module.exports = {
  projects: [
    {
      ...common,
      displayName: "pure",
      testMatch: ["<rootDir>/tests/*.test.ts"],
      testPathIgnorePatterns: HOST_SUITES.map((suite) => `${suite}$`),
    },
    { ...common, displayName: "host", testMatch: HOST_SUITES },
    { ...common, displayName: "boot", testMatch: ["<rootDir>/tests/boot/**/*.test.ts"] },
  ],
};
