#!/usr/bin/env bash
# npm run deploy [-- STACK]  — the quick start's one deploy command.
# Selects (or creates) the stack with the passphrase secrets provider on the local file backend
# (Pulumi.yaml's default), checks the keys a first deploy needs, runs `pulumi up`, and saves the
# deploy key where the sshCommand output expects it (~/.ssh/agent-host-STACK, mode 0600).
set -euo pipefail

log() { printf 'deploy: %s\n' "$*" >&2; }
die() { printf 'deploy: error: %s\n' "$*" >&2; exit 1; }

check_prerequisites() {
  command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is not installed: curl -fsSL https://get.pulumi.com | sh"
  if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    die "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE): it encrypts the stack's secrets"
  fi
  [[ -d node_modules ]] || npm ci --no-audit --no-fund
}

require_config() {
  local stack="$1" key="$2" example="$3"
  if ! pulumi config get --stack "${stack}" "${key}" >/dev/null 2>&1; then
    die "${key} is not set for stack ${stack}. Run: pulumi config set --stack ${stack} ${example}"
  fi
}

save_deploy_key() {
  local stack="$1" file="${HOME}/.ssh/agent-host-$1" ssh_command
  (umask 077 && mkdir -p "${HOME}/.ssh" && pulumi stack output --stack "${stack}" --show-secrets deployPrivateKey >"${file}")
  ssh_command="$(pulumi stack output --stack "${stack}" sshCommand)"
  log "deploy key saved to ${file}; connect with: ${ssh_command}"
}

main() {
  local stack="${1:-dev}"
  cd "$(dirname "$0")/.."
  check_prerequisites
  pulumi stack select --create --secrets-provider passphrase "${stack}"
  require_config "${stack}" gcp:project "gcp:project my-project-id"
  require_config "${stack}" gcp:zone "gcp:zone europe-west1-b"
  require_config "${stack}" sshSourceRanges "--path 'sshSourceRanges[0]' 203.0.113.7/32"
  pulumi up --stack "${stack}"
  save_deploy_key "${stack}"
}

main "$@"
