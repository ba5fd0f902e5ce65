// Two projects: "unit" (fast; mocks, real tmux/sshd/cloud-init validators on this machine) and
// "boot" (boots the rendered user-data under systemd-nspawn; minutes). `npm test` runs both.
const common = {
  preset: "ts-jest",
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { isolatedModules: true, diagnostics: false }] },
};
module.exports = {
  projects: [
    { ...common, displayName: "unit", testMatch: ["<rootDir>/tests/**/*.test.ts"], testPathIgnorePatterns: ["<rootDir>/tests/boot/"] },
    { ...common, displayName: "boot", testMatch: ["<rootDir>/tests/boot/**/*.test.ts"] },
  ],
};
