// The bash on the VM cannot import shared-rules.ts or config.ts, so it keeps copies of a few rules:
// agentctl's setup-token pattern, the install sources the installers act on, how agent-wrapper
// tells a token from an API key. (host.conf's own rules, such as the permission modes, are
// host/conf/conf.ts's: the scripts read through it. apply is TypeScript, host/apply*.ts: it imports
// the package-name and GitHub-token patterns, and its own checks are tested below.) Each copy must
// say what the TypeScript definition says; a drifted one would refuse on the VM what the stack
// accepted, or accept what it refused.
import * as fs from "fs";
import * as path from "path";
import { CLAUDE_CODE_SOURCES, parseConfig, parseRepositoryUrl, type StackConfig } from "../config";
import { GIT_CREDENTIAL_HOST_RE, PRIVATE_KEY_LINE_RE } from "../host/apply/git";
import { settingsFrom } from "../policy/rules";
import {
  ANTHROPIC_KEY_PREFIX,
  ANTHROPIC_KEY_RE,
  ANTHROPIC_OAUTH_TOKEN_PREFIX,
  ANTHROPIC_SETUP_TOKEN_RE,
  GITHUB_TOKEN_PREFIXES,
  PACKAGE_NAME_RE,
  PRIVATE_KEY_BEGIN_RE,
} from "../shared-rules";
import { BASE_CONFIG } from "./harness";

const HOST = path.join(__dirname, "..", "cloud-init", "host");
const read = (file: string) => fs.readFileSync(path.join(HOST, file), "utf8");

/** One bash copy of a rule: where it is, how to find it in the text, what TypeScript says. */
interface Copy {
  file: string;
  rule: string;
  /** The copy's value in the bash text; undefined when the text no longer holds it. */
  find: (text: string) => string | undefined;
  /** The TypeScript definition, in the form the bash writes it. */
  ts: string;
  /** Lists whose order carries no meaning are compared as sets. */
  normalize?: (value: string) => string;
}

/** `readonly NAME='value'` or `readonly NAME="value"`. */
const readonlyValue = (name: string) => (text: string) =>
  new RegExp(`^readonly ${name}=(['"])(.*)\\1$`, "m").exec(text)?.[2];
const words = (value: string) => value.split(/\s+/).filter(Boolean).sort().join(" ");
/** The labels of the arms of `case "<subject>" in` (the first one), but `*`. */
const caseArms = (subject: string) => (text: string) => {
  const start = text.indexOf(`case "${subject}" in`);
  if (start < 0) return undefined;
  const block = text.slice(start, text.indexOf("esac", start));
  return [...block.matchAll(/^\s*([a-z][a-z0-9 |-]*)\)/gm)]
    .flatMap((m) => m[1].split("|").map((w) => w.trim()))
    .join(" ");
};
const COPIES: Copy[] = [
  {
    file: "agentctl",
    rule: "SETUP_TOKEN_RE (shared-rules.ts ANTHROPIC_SETUP_TOKEN_RE)",
    find: readonlyValue("SETUP_TOKEN_RE"),
    ts: ANTHROPIC_SETUP_TOKEN_RE.source,
  },
  {
    file: "install-claude-code",
    rule: "the CLAUDE_CODE_SOURCE values (config.ts CLAUDE_CODE_SOURCES)",
    find: caseArms("${CONF[claude_code_source]}"),
    ts: CLAUDE_CODE_SOURCES.join(" "),
    normalize: words,
  },
  {
    file: "agent-wrapper",
    rule: "the OAuth token prefix CRED_KIND tests (shared-rules.ts ANTHROPIC_OAUTH_TOKEN_PREFIX)",
    find: (text) => /\[\[ "\$\{CRED\}" == ([^\s*\]]+)\* \]\]/.exec(text)?.[1],
    ts: ANTHROPIC_OAUTH_TOKEN_PREFIX,
  },
  {
    file: "agent-wrapper",
    rule: "the key prefix the exit reason skips lines on (shared-rules.ts ANTHROPIC_KEY_PREFIX)",
    find: (text) => /\|\| \/([^/]*)\/ \{ next \}/.exec(text)?.[1],
    ts: ANTHROPIC_KEY_PREFIX,
  },
];

/** Why the copy in `text` is not the TypeScript definition; undefined when it is. */
function drift(copy: Copy, text: string): string | undefined {
  const found = copy.find(text);
  if (found === undefined) {
    return `cloud-init/host/${copy.file}: ${copy.rule} not found (renamed? update tests/shared-rules.test.ts)`;
  }
  const norm = copy.normalize ?? ((v: string) => v);
  if (norm(found) === norm(copy.ts)) return undefined;
  return `cloud-init/host/${copy.file}: ${copy.rule} is ${JSON.stringify(found)} in bash but ${JSON.stringify(copy.ts)} in TypeScript; make the bash say what TypeScript says`;
}

test.each(COPIES.map((c) => [`${c.file}: ${c.rule}`, c] as const))(
  "%s is the TypeScript definition",
  (_name, copy) => {
    expect(drift(copy, read(copy.file))).toBeUndefined();
  },
);

test("a drifted copy is reported with the file, the rule and both values", () => {
  const copy = COPIES.find((c) => c.rule.startsWith("SETUP_TOKEN_RE"))!;
  const loose = "^sk-ant-oat[0-9]{2}-[A-Za-z0-9_-]+$";
  // A function, not a string: "$'" in a replacement string means "the text after the match".
  const text = read(copy.file).replace(
    /^readonly SETUP_TOKEN_RE=.*$/m,
    () => `readonly SETUP_TOKEN_RE='${loose}'`,
  );
  expect(drift(copy, text)).toBe(
    `cloud-init/host/agentctl: SETUP_TOKEN_RE (shared-rules.ts ANTHROPIC_SETUP_TOKEN_RE) is ${JSON.stringify(loose)} in bash but ${JSON.stringify(ANTHROPIC_SETUP_TOKEN_RE.source)} in TypeScript; make the bash say what TypeScript says`,
  );
  expect(drift(copy, text.replace(/^readonly SETUP_TOKEN_RE=.*$/m, ""))).toMatch(/not found/);
  const installer = COPIES.find((c) => c.file === "install-claude-code")!;
  const snap = read("install-claude-code").replace(/^(\s*)npm\)/m, "$1npm | snap)");
  expect(drift(installer, snap)).toMatch(/CLAUDE_CODE_SOURCE .*"npm snap native" in bash/);
});

// apply, now TypeScript (host/apply*.ts), imports these two rules instead of keeping copies.
test("apply takes the package-name and GitHub-token rules from shared-rules.ts, with no copy", () => {
  const ts = (file: string) =>
    fs.readFileSync(path.join(__dirname, "..", "host", "apply", file), "utf8");
  const bundle = ts("bundle.ts");
  const git = ts("git.ts");
  expect(bundle).toMatch(
    /import \{[^}]*\bPACKAGE_NAME_RE\b[^}]*\} from "\.\.\/\.\.\/shared-rules"/,
  );
  expect(git).toMatch(/import \{[^}]*\bGITHUB_TOKEN_RE\b[^}]*\} from "\.\.\/\.\.\/shared-rules"/);
  const apply = ["apply.ts", "bundle.ts", "git.ts", "run.ts"].map(ts).join("\n");
  expect(apply).not.toContain(PACKAGE_NAME_RE.source);
  expect(GITHUB_TOKEN_PREFIXES.filter((prefix) => apply.includes(prefix))).toEqual([]);
});

test("a token agentctl login stores is one anthropicApiKey would take too", () => {
  const token = `${ANTHROPIC_OAUTH_TOKEN_PREFIX}01-${"a".repeat(20)}`;
  expect(ANTHROPIC_SETUP_TOKEN_RE.test(token)).toBe(true);
  expect(ANTHROPIC_KEY_RE.test(token)).toBe(true);
  expect(ANTHROPIC_SETUP_TOKEN_RE.test(`${ANTHROPIC_KEY_PREFIX}api03-${"a".repeat(20)}`)).toBe(
    false,
  );
});

// apply's test is looser than config's rule on purpose (any BEGIN … PRIVATE KEY line): it only
// ever sees values config took, where a token has no blanks and a key starts with a BEGIN line.
test("apply tells every private key type config takes from a token", () => {
  const apply = PRIVATE_KEY_LINE_RE;
  for (const type of ["", "OPENSSH ", "RSA ", "EC "]) {
    const key = `-----BEGIN ${type}PRIVATE KEY-----\nAAAA\n-----END ${type}PRIVATE KEY-----\n`;
    expect([type, PRIVATE_KEY_BEGIN_RE.test(key), apply.test(key)]).toEqual([type, true, true]);
  }
  for (const token of ["ghp_abcdefgh12345678", "user:glpat-abcdefgh12345678"]) {
    expect([token, apply.test(token)]).toEqual([token, false]);
  }
});

// config.ts derives GIT_CREDENTIAL_HOST from the repository URL (or github.com for a GitHub token);
// apply refuses to install the token for a host its own pattern does not take.
test("apply takes every git credential host config derives", () => {
  const apply = GIT_CREDENTIAL_HOST_RE;
  const hosts = [
    "https://github.com/acme/app.git",
    "https://git.example.test:8443/team/app",
    "https://a-b.example.com/x/y/z.git",
  ].map((url) => parseRepositoryUrl("repository", url).host);
  for (const host of [...hosts, "github.com"]) {
    expect([host, apply.test(host)]).toEqual([host, true]);
  }
});

// The policy pack reads three stack keys itself (it gets the raw config, not parseConfig's result):
// for every value config.ts takes (a value it refuses stops the program before any resource, so
// the pack never judges it), the pack must draw the same conclusion, or a preview fails a
// policy on a stack that is configured as intended.
type Setting = "snapshotsOff" | "claudeOnVertex" | "allowWorldSsh";
type Reading = [key: string, value: string, meaning: (c: StackConfig) => boolean, setting: Setting];

const retentionOff = (c: StackConfig) => c.snapshotRetentionDays === 0;
const onVertex = (c: StackConfig) => c.claude.provider === "vertex";
const worldSsh = (c: StackConfig) => c.sshSourceRanges.includes("0.0.0.0/0");
const READINGS: Reading[] = [
  ...["0", "00", "-0", " 0 ", "7"].map((v): Reading => [
    "snapshotRetentionDays",
    v,
    retentionOff,
    "snapshotsOff",
  ]),
  ...["vertex", " vertex ", "anthropic", ""].map((v): Reading => [
    "claudeProvider",
    v,
    onVertex,
    "claudeOnVertex",
  ]),
  ...[
    ["0.0.0.0/0"],
    ["203.0.113.7/32", "0.0.0.0/0"],
    ["0.0.0.0/1", "128.0.0.0/1"],
    ["10.0.0.0/8"],
  ].map((r): Reading => ["sshSourceRanges", JSON.stringify(r), worldSsh, "allowWorldSsh"]),
];

test.each(READINGS)(
  "%s %j: the policy pack concludes what config.ts does",
  (key, value, meaning, setting) => {
    const raw = { ...BASE_CONFIG, [`agent-host:${key}`]: value };
    const { config } = parseConfig(raw);
    expect([key, value, settingsFrom(raw)[setting]]).toEqual([key, value, meaning(config)]);
  },
);
