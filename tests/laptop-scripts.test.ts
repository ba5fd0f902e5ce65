// The scripts that run on the deploying machine, not the VM, must run under macOS's /bin/bash,
// which is 3.2 (Apple ships no newer bash). There is no bash 3.2 on this Debian machine, so this
// reads each script for what bash 3.2 lacks (bash's CHANGES file, the 4.0–5.2 "new features"
// entries): namerefs, mapfile/readarray, associative arrays, case-changing expansions, `|&`,
// `&>>`, `coproc`, `${x@Q}`-style transformations, `wait -n`, negative array subscripts.
import { readFileSync } from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..");

/** What runs on the lead's laptop: npm run deploy/destroy and the stack's local Commands. */
const LAPTOP_SCRIPTS = [
  "scripts/deploy.sh",
  "scripts/destroy.sh",
  "scripts/iap-ssh",
  "scripts/host-key-probe",
];

const BASH4: { name: string; pattern: RegExp }[] = [
  { name: "nameref (local/declare -n)", pattern: /\b(?:local|declare|typeset)\s+-[a-zA-Z]*n\b/ },
  { name: "mapfile/readarray", pattern: /\b(?:mapfile|readarray)\b/ },
  { name: "associative array", pattern: /\b(?:local|declare|typeset)\s+-[a-zA-Z]*A\b/ },
  {
    name: "case-changing expansion",
    pattern: /\$\{[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?(?:\^|,)/,
  },
  { name: "transformation ${x@Q}", pattern: /\$\{[^}]*@[QEPAaKkUuL]\}/ },
  { name: "|& (pipe stderr)", pattern: /\|&/ },
  { name: "&>> (append both)", pattern: /&>>/ },
  { name: "coproc", pattern: /\bcoproc\b/ },
  { name: "wait -n", pattern: /\bwait\s+-n\b/ },
  { name: "negative array subscript", pattern: /\$\{[A-Za-z_][A-Za-z0-9_]*\[-\d+\]\}/ },
];

/** A script's code lines: comments are words, not bash. */
function codeLines(file: string): { line: number; text: string }[] {
  return readFileSync(path.join(ROOT, file), "utf8")
    .split("\n")
    .map((text, i) => ({ line: i + 1, text }))
    .filter(({ text }) => !/^\s*#/.test(text));
}

function bash4Uses(file: string): string[] {
  return codeLines(file).flatMap(({ line, text }) =>
    BASH4.filter(({ pattern }) => pattern.test(text)).map(
      ({ name }) => `${file}:${line}: ${name}: ${text.trim()}`,
    ),
  );
}

test.each(LAPTOP_SCRIPTS)("%s uses nothing macOS's bash 3.2 lacks", (file) => {
  expect(bash4Uses(file)).toEqual([]);
});

test("the check sees each construct it names", () => {
  const samples = [
    'local -n into="$1"',
    'mapfile -t into <<<"${list}"',
    "declare -A seen",
    'echo "${name,,}"',
    'echo "${name^^}"',
    'printf "%s" "${arg@Q}"',
    "make |& tee log",
    "cmd &>> log",
    "coproc ssh",
    "wait -n",
    'echo "${list[-1]}"',
  ];
  const missed = samples.filter((s) => !BASH4.some(({ pattern }) => pattern.test(s)));
  expect(missed).toEqual([]);
  // Bash 3.2's own: these are fine.
  const fine = [
    'echo "${HOST_KEY%% *}"',
    'SSH_ARGS+=("${arg}")',
    "local -a args",
    'x="${a:-b}"',
    'y="${1:?usage: a, b}"',
  ];
  expect(fine.filter((s) => BASH4.some(({ pattern }) => pattern.test(s)))).toEqual([]);
});
