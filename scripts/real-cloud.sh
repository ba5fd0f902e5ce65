#!/usr/bin/env bash
# The real-cloud check: deploys this stack to a sandbox GCP project with the real Pulumi engine
# and provider, and checks what the tests here can only model (docs/cicd.md, "Real-cloud check").
# Run by .github/workflows/real-cloud.yml; it can run from a workstation too, with gcloud
# credentials for the sandbox project (Application Default Credentials).
#
#   1. up                        a new stack, agentCount 2
#   2. preview                   no changes (--expect-no-changes)
#   3. refresh                   no diff (--expect-no-changes)
#   4. agentCount 2 → 3          `pulumi preview --json` updates the reconcile command and nothing
#                                else (scripts/preview-changes.ts); up; then preview: no changes
#   5. destroy                   the data disk is kept (the product's default)
#   6. up again                  the kept disk is adopted (import); then preview: no changes
#   7. destroy, data included    scripts/destroy.sh --delete-data, then the stack is removed
#
# Usage: scripts/real-cloud.sh [run|cleanup]
#   run (default)  the steps above.
#   cleanup        destroys whatever the stack still holds, data disk included, and removes the
#                  stack: the workflow runs it whatever happened, so a failed run leaves nothing
#                  billing in the sandbox (but snapshots, which GCE keeps past their disk; none
#                  is taken unless a run spans 03:00, the schedule's time).
# Environment:
#   REAL_CLOUD_STACK          the stack to create (a fresh name per run)
#   REAL_CLOUD_PROJECT        the sandbox GCP project
#   REAL_CLOUD_ZONE           its zone, e.g. europe-west1-b
#   REAL_CLOUD_SSH_CIDR       the range the reconcile command dials from (this machine's public
#                             address as a /32); unset: looked up at checkip.amazonaws.com
#   PULUMI_BACKEND_URL        where the state goes (e.g. gs://bucket/real-cloud)
#   PULUMI_CONFIG_PASSPHRASE  encrypts the stack's secrets
# Logs to stderr; the preview's changed steps to stdout.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
# The one resource an agentCount change may touch (components/agent-fleet.ts).
readonly RECONCILE="agent-host:fleet:AgentFleet\$command:remote:Command::agent-host-reconcile"

STACK="${REAL_CLOUD_STACK:-}"
PROJECT="${REAL_CLOUD_PROJECT:-}"
ZONE="${REAL_CLOUD_ZONE:-}"

log() { printf 'real-cloud: %s\n' "$*" >&2; }
die() {
  printf 'real-cloud: error: %s\n' "$*" >&2
  exit 1
}

require_env() {
  local name missing=()
  for name in REAL_CLOUD_STACK REAL_CLOUD_PROJECT REAL_CLOUD_ZONE PULUMI_BACKEND_URL PULUMI_CONFIG_PASSPHRASE; do
    if [[ -z "${!name:-}" ]]; then
      missing+=("${name}")
    fi
  done
  if ((${#missing[@]} > 0)); then
    die "set ${missing[*]} (docs/cicd.md, Real-cloud check)"
  fi
  command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is not installed"
}

stack() { pulumi --non-interactive "$@" --stack "${STACK}"; }

ssh_cidr() {
  if [[ -n "${REAL_CLOUD_SSH_CIDR:-}" ]]; then
    printf '%s\n' "${REAL_CLOUD_SSH_CIDR}"
    return
  fi
  local ip
  ip="$(curl -fsS --max-time 10 https://checkip.amazonaws.com)" || die "cannot find this machine's public address: set REAL_CLOUD_SSH_CIDR"
  ip="${ip//[[:space:]]/}"
  [[ "${ip}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "checkip.amazonaws.com answered '${ip}', not an IPv4 address: set REAL_CLOUD_SSH_CIDR"
  printf '%s/32\n' "${ip}"
}

create_stack() {
  local cidr
  cidr="$(ssh_cidr)"
  log "stack ${STACK} in ${PROJECT}/${ZONE}, SSH from ${cidr}"
  pulumi --non-interactive stack init "${STACK}" --secrets-provider passphrase
  stack config set gcp:project "${PROJECT}"
  stack config set gcp:zone "${ZONE}"
  stack config set agent-host:sshSourceRanges "[\"${cidr}\"]"
  stack config set agent-host:agentCount 2
}

expect_no_changes() {
  log "$1: preview shows no changes"
  stack preview --expect-no-changes --diff
}

count_change() {
  local preview
  preview="$(mktemp)"
  log "agentCount 2 → 3: the preview updates ${RECONCILE} and nothing else"
  stack config set agent-host:agentCount 3
  stack preview --json >"${preview}"
  node "${REPO_ROOT}/node_modules/ts-node/dist/bin.js" --transpile-only \
    "${REPO_ROOT}/scripts/preview-changes.ts" "${preview}" --only "${RECONCILE}=update"
  rm -f "${preview}"
  log "agentCount 2 → 3: up"
  stack up --yes --skip-preview
  expect_no_changes "after the count change"
}

run() {
  create_stack
  log "1. up"
  stack up --yes --skip-preview
  expect_no_changes "2. second run"
  log "3. refresh: no diff"
  stack refresh --yes --expect-no-changes
  count_change
  log "5. destroy (the data disk is kept)"
  stack destroy --yes --skip-preview
  log "6. up again (the kept disk is adopted)"
  stack up --yes --skip-preview
  expect_no_changes "6. after the adoption"
  log "7. destroy, data disk included"
  cleanup
}

# The data disk's GCE name, as the program derives it (config.ts, resourceNames).
data_disk_name() {
  STACK="${STACK}" node "${REPO_ROOT}/node_modules/ts-node/dist/bin.js" --transpile-only \
    -e 'console.log(require("./config").resourceNames("agent-host", process.env.STACK).dataDisk)'
}

cleanup() {
  if ! pulumi --non-interactive stack select "${STACK}" >/dev/null 2>&1; then
    log "no stack ${STACK}: nothing to clean up"
    return
  fi
  # The product's own way out. It refuses when the state holds no data disk (a run that failed
  # before creating it, or between step 5's destroy and step 6's adoption): then destroy what the
  # state holds and delete a kept disk by name.
  if ! bash "${REPO_ROOT}/scripts/destroy.sh" --delete-data --stack "${STACK}" --yes; then
    log "destroying what the state holds, then any data disk a destroy kept"
    stack destroy --yes --skip-preview
    local disk
    disk="$(data_disk_name)"
    if gcloud compute disks describe "${disk}" --zone "${ZONE}" --project "${PROJECT}" >/dev/null 2>&1; then
      gcloud compute disks delete "${disk}" --zone "${ZONE}" --project "${PROJECT}" --quiet
    fi
  fi
  pulumi --non-interactive stack rm "${STACK}" --yes
}

main() {
  local command="${1:-run}"
  case "${command}" in
    run | cleanup) ;;
    *)
      printf 'usage: scripts/real-cloud.sh [run|cleanup]\n' >&2
      exit 2
      ;;
  esac
  require_env
  cd "${REPO_ROOT}"
  "${command}"
}

main "$@"
