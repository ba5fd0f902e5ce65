// Suites that drive real tools (tmux, sshd, loop devices, git servers) skip, saying why, on a
// machine that lacks them; in CI (CI=true) a missing requirement fails instead, so a green CI
// never hides a suite that did not run.
export function unavailableSuite(reason: string): jest.Describe {
  if (process.env.CI === "true") {
    test(`requirements (${reason})`, () => {
      throw new Error(`CI cannot skip this suite: ${reason}`);
    });
  } else {
    console.warn(reason);
  }
  return describe.skip;
}
