// The supervisor's arithmetic, on its own: agent-wrapper stays bash (it is paid once per agent, so
// it must stay small), and these are its pure parts. Each function is taken from the shipped
// script and run in bash with nothing else of it: no tmux, no root, no claude. The real runs
// (tests/agentctl.test.ts, spot-shutdown, real-claude) show the same numbers in wrapper.log.
import { spawnSync } from "child_process";
import * as fs from "fs";
import { WRAPPER } from "./host-files";

const SCRIPT = fs.readFileSync(WRAPPER, "utf8");

/** The one-line definition of `name` in agent-wrapper. */
function definition(name: string): string {
  const line = SCRIPT.split("\n").find((l) => l.startsWith(`${name}() {`));
  if (!line) throw new Error(`agent-wrapper has no one-line ${name}(); update this test`);
  return line;
}

/** Runs `call` in bash with only the named functions of agent-wrapper defined. */
function run(functions: string[], call: string): { out: string; code: number | null } {
  const r = spawnSync("bash", ["-c", `${functions.map(definition).join("\n")}\n${call}`], {
    encoding: "utf8",
  });
  return { out: r.stdout.trim(), code: r.status };
}

test("backoff: doubles after each quick crash, from the minimum, and stops at the cap", () => {
  const steps = run(
    ["next_backoff"],
    'b=2; for i in 1 2 3 4 5 6 7; do b="$(next_backoff "$b" 60)"; printf "%s " "$b"; done',
  );
  expect(steps.out.split(" ")).toEqual(["4", "8", "16", "32", "60", "60", "60"]);
  // Fractional settings (tests use them) keep their fraction.
  expect(run(["next_backoff"], "next_backoff 0.5 60").out).toBe("1");
  expect(run(["next_backoff"], "next_backoff 1.5 2").out).toBe("2");
});

test("stagger: agent-N waits (N-1) x START_STAGGER_SECONDS at boot, so twelve never start in one second", () => {
  const delays = run(
    ["first_delay"],
    'for n in 1 2 3 12; do printf "%s " "$(first_delay "$n" 2)"; done; first_delay 3 0.05',
  );
  expect(delays.out).toBe("0 2 4 22 0.1");
});

test.each([
  ["0", 0],
  ["2", 0],
  ["0.05", 0],
  ["10.", 1],
  ["-1", 1],
  ["5s", 1],
  ["", 1],
])("--delay %j is a number of seconds: exit %d", (value, code) => {
  expect(run(["is_seconds"], `is_seconds '${value}'`).code).toBe(code);
});
