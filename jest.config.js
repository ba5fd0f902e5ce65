// Two projects: "unit" (mocks, plus real tmux, sshd and cloud-init's validators on this machine)
// and "boot" (boots the rendered user-data under systemd-nspawn; minutes). `npm test` runs both.
const common = {
  testEnvironment: "node",
  testEnvironmentOptions: { globalsCleanup: "off" },
  // Type errors are caught by `npm run typecheck` over the same files; transpiling only keeps
  // the suite fast.
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
};
module.exports = {
  projects: [
    {
      ...common,
      displayName: "unit",
      testMatch: ["<rootDir>/tests/**/*.test.ts"],
      testPathIgnorePatterns: ["<rootDir>/tests/boot/"],
    },
    { ...common, displayName: "boot", testMatch: ["<rootDir>/tests/boot/**/*.test.ts"] },
  ],
};
