#!/usr/bin/env bash
# Mutants: breaks the product once per mutant in a temporary copy of the repository and runs the
# suite that must catch it; fails when a suite still passes. The mutants and the runner are in
# scripts/mutants.ts (this is its entry point, as npm run test:mutants and .ci/run call it).
#
# Usage: scripts/mutants.sh [--list] [ID ...]
# Table on stdout, progress on stderr. Exit: 0 all caught, 1 one survived, 2 a patch or a
# baseline failed.
set -euo pipefail

main() {
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  exec node "${repo}/node_modules/ts-node/dist/bin.js" --transpile-only "${repo}/scripts/mutants.ts" "$@"
}

main "$@"
