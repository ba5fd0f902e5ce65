// Checks a refused configuration by what matters to the person who sees it: the message names
// the key, shows the bad value the way the product shows values (or hides it, for a secret) and
// gives a fix. Rewording a message keeps these tests green; dropping the key, the value or the
// fix turns them red. A few whole-message tests (tests/bad-input.test.ts) pin the wording where
// the wording is the point.
import { ConfigError } from "../config";
import { registeredSoFar, runProgram, type RunOptions } from "./harness";

export interface Refusal {
  /** The key as the message names it: `agentCount`, `gcp:zone`, `agent-host:agentCounts`. */
  key: string;
  /**
   * The bad value. A string must appear quoted as config.ts's `show()` quotes it
   * (JSON.stringify: quotes, and `\n` for a newline); a number must appear as a number of its own
   * (`got 21`, not `210`).
   */
  value?: string | number;
  /**
   * Words that stand for the value where the product describes it instead of quoting it: an unset
   * key (`is not set`), an empty list, a value normalised before it is compared (`both 09:00`),
   * or another key's value the refusal turns on (`claudeProvider is vertex`).
   */
  said?: string;
  /**
   * A secret, or text shaped like a credential: it must appear neither bare nor quoted. The product
   * never echoes secrets, so for a secret key this replaces `value`.
   */
  hidden?: string;
  /** A distinctive part of the suggested fix: the `pulumi config …` command or the allowed values. */
  fix: string;
}

/** The error `run` throws; fails the test when it returns instead. */
export function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error("expected a refusal, but it returned normally");
}

/** The error `pending` rejects with; fails the test when it resolves instead. */
export async function rejectionOf(pending: Promise<unknown>): Promise<unknown> {
  return pending.then(
    () => {
      throw new Error("expected a refusal, but it resolved");
    },
    (error: unknown) => error,
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Asserts that `error` is a ConfigError that names the key, shows the value and gives the fix. */
export function expectConfigError(error: unknown, refusal: Refusal): void {
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as ConfigError).message;
  // A failure prints the message, but never the text it had to hide.
  const printable =
    refusal.hidden === undefined ? message : message.split(refusal.hidden).join("‹hidden›");
  const fail = (what: string): never => {
    throw new Error(`the refusal of ${refusal.key} ${what}:\n  ${printable}`);
  };
  if (refusal.value === undefined && refusal.said === undefined && refusal.hidden === undefined) {
    throw new Error(`a refusal of ${refusal.key} must say how its value is checked`);
  }

  // The fix must be there; the key and the value must be named outside it (a fix alone,
  // `pulumi config set agentCount 10`, would name the key without saying what is wrong).
  if (!message.includes(refusal.fix)) fail(`does not give the fix ${JSON.stringify(refusal.fix)}`);
  const rest = message.split(refusal.fix).join(" … ");
  const keyWord = new RegExp(`(^|[^\\w:-])${escapeRegExp(refusal.key)}(?![\\w-])`);
  if (!keyWord.test(rest)) fail("does not name the key outside its fix");
  if (typeof refusal.value === "string") {
    // config.ts's show(): how the product quotes a value.
    const shown = JSON.stringify(refusal.value);
    if (!rest.includes(shown)) fail(`does not show the value as ${shown}`);
  } else if (typeof refusal.value === "number") {
    const number = new RegExp(`(^|[^\\d.-])${escapeRegExp(String(refusal.value))}(?!\\d|\\.\\d)`);
    if (!number.test(rest)) fail(`does not show the value ${refusal.value}`);
  }
  if (refusal.said !== undefined && !rest.includes(refusal.said)) {
    fail(`does not say ${JSON.stringify(refusal.said)}`);
  }
  if (refusal.hidden !== undefined) {
    for (const echo of [refusal.hidden, JSON.stringify(refusal.hidden)]) {
      if (message.includes(echo)) fail("echoes a value it must hide");
    }
  }
}

/**
 * Runs the program with `config` and asserts it refuses as `refusal` says before any resource is
 * registered. Returns the message, for the checks a case adds.
 */
export async function expectProgramRefuses(
  config: Record<string, string>,
  options: RunOptions,
  refusal: Refusal,
): Promise<string> {
  const error = await rejectionOf(runProgram(config, options));
  expectConfigError(error, refusal);
  expect(registeredSoFar()).toEqual([]);
  return (error as Error).message;
}
