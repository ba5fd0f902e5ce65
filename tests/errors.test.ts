// The refusal checker (tests/errors.ts) must fail when a message loses its key, its value or its
// fix, or echoes a secret; otherwise tests/bad-input.test.ts could pass on any message at all.
import { ConfigError } from "../config";
import { expectConfigError, rejectionOf, thrownBy, type Refusal } from "./errors";

const FIX = "Run: pulumi config set agentCount 10";
const GOOD = new ConfigError(`agentCount must be a whole number; got "ten". ${FIX}`);
const REFUSAL: Refusal = {
  key: "agentCount",
  value: "ten",
  fix: "pulumi config set agentCount 10",
};

test("passes a message with the key, the value and the fix", () => {
  expect(() => expectConfigError(GOOD, REFUSAL)).not.toThrow();
});

test.each<[string, unknown, RegExp]>([
  ["an Error that is not a ConfigError", new Error(GOOD.message), /ConfigError/],
  [
    "no fix",
    new ConfigError('agentCount must be a whole number; got "ten".'),
    /does not give the fix/,
  ],
  [
    "the key only inside the fix",
    new ConfigError(`Must be a whole number; got "ten". ${FIX}`),
    /does not name the key/,
  ],
  [
    "another key that starts the same",
    new ConfigError(`agentCounts must be a whole number; got "ten". ${FIX}`),
    /does not name the key/,
  ],
  [
    "the value unquoted",
    new ConfigError(`agentCount must be a whole number; got ten. ${FIX}`),
    /does not show the value as "ten"/,
  ],
  [
    "no value",
    new ConfigError(`agentCount must be a whole number. ${FIX}`),
    /does not show the value/,
  ],
])("fails on %s", (_label, error, reason) => {
  expect(() => expectConfigError(error, REFUSAL)).toThrow(reason);
});

test("a number must stand on its own", () => {
  const refusal: Refusal = { key: "agentCount", value: 21, fix: "Lower agentCount" };
  const saying = (got: string) =>
    new ConfigError(`agentCount must be at most 20; got ${got}. Lower agentCount.`);
  expect(() => expectConfigError(saying("21"), refusal)).not.toThrow();
  expect(() => expectConfigError(saying("210"), refusal)).toThrow(/does not show the value 21/);
  expect(() => expectConfigError(saying("2.21"), refusal)).toThrow(/does not show the value 21/);
});

test("said: the words must be there", () => {
  const refusal: Refusal = {
    key: "gcp:zone",
    said: "is not set",
    fix: "pulumi config set gcp:zone",
  };
  const fix = "Run: pulumi config set gcp:zone europe-west1-b";
  expect(() =>
    expectConfigError(new ConfigError(`gcp:zone is not set. ${fix}`), refusal),
  ).not.toThrow();
  expect(() => expectConfigError(new ConfigError(`gcp:zone is bad. ${fix}`), refusal)).toThrow(
    /does not say "is not set"/,
  );
});

test("fails when a secret is echoed, bare or quoted, and does not print it", () => {
  const refusal: Refusal = {
    key: "anthropicApiKey",
    hidden: "sk-proj-abcdef",
    fix: "pulumi config set --secret anthropicApiKey <key>",
  };
  const fix = "Set it again with: pulumi config set --secret anthropicApiKey <key>";
  const saying = (text: string) => new ConfigError(`anthropicApiKey is not a key${text}. ${fix}`);
  expect(() => expectConfigError(saying(""), refusal)).not.toThrow();
  for (const echo of [": sk-proj-abcdef", '; got "sk-proj-abcdef"']) {
    const failure = String(thrownBy(() => expectConfigError(saying(echo), refusal)));
    expect(failure).toMatch(/echoes a value it must hide/);
    expect(failure).toContain("‹hidden›");
    expect(failure).not.toContain("abcdef");
  }
});

test("a refusal that says nothing about the value is itself refused", () => {
  expect(() =>
    expectConfigError(GOOD, { key: "agentCount", fix: "pulumi config set agentCount 10" }),
  ).toThrow(/must say how its value is checked/);
});

test("thrownBy and rejectionOf fail when nothing is thrown", async () => {
  expect(() => thrownBy(() => 1)).toThrow(/returned normally/);
  await expect(rejectionOf(Promise.resolve(1))).rejects.toThrow(/resolved/);
  expect(
    thrownBy(() => {
      throw GOOD;
    }),
  ).toBe(GOOD);
  await expect(rejectionOf(Promise.reject(GOOD))).resolves.toBe(GOOD);
});
