#!/usr/bin/env bash
# npm run deploy [-- STACK]  — the quick start's one deploy command.
# Selects (or creates) the stack with the passphrase secrets provider on the local file backend
# (Pulumi.yaml's default), checks the keys a first deploy needs, runs `pulumi up`, and saves the
# deploy key where the sshCommand output expects it (~/.ssh/agent-host-STACK, mode 0600).
# Whenever a pulumi call fails, the Pulumi CLI's own message is shown, then what to do about it.
set -euo pipefail

# Holds the last pulumi call's stderr (a file, so calls inside $(...) keep it too).
WORK=""

log() { printf 'deploy: %s\n' "$*" >&2; }
die() {
  printf 'deploy: error: %s\n' "$*" >&2
  exit 1
}

cleanup() { [[ -z "${WORK}" ]] || rm -rf "${WORK}"; }

check_prerequisites() {
  command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is not installed: curl -fsSL https://get.pulumi.com | sh"
  if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" && -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]]; then
    die "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE): it encrypts the stack's secrets"
  fi
  [[ -d node_modules ]] || npm ci --no-audit --no-fund
}

# What to do about a failed pulumi call, from the CLI's message (texts from pulumi/pulumi:
# pkg/workspace/config.go, sdk/go/common/workspace/project.go, pkg/backend/backenderr).
advice_for() {
  local stack="$1" message="$2"
  case "${message}" in
    *"is missing configuration value"*)
      echo "set each key it names: pulumi config set --stack ${stack} <key> <value>. A key declared in Pulumi.yaml without a default is required by the CLI; an optional key needs a default there." ;;
    *"must be encrypted as it's secret"*)
      echo "set that key again as a secret: pulumi config set --secret --stack ${stack} <key> <value>" ;;
    *"must be of type"*)
      echo "give that key a value of the type Pulumi.yaml declares: pulumi config set --stack ${stack} <key> <value> (a list: --path '<key>[0]' <value>), or edit Pulumi.${stack}.yaml" ;;
    *"as a configuration key"*)
      echo "fix that key's name in Pulumi.${stack}.yaml: <key> or <namespace>:<key>" ;;
    *"Pulumi.yaml"*)
      echo "fix Pulumi.yaml where the message points" ;;
    *passphrase*)
      echo "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to the passphrase this stack was created with" ;;
    *"non-interactive mode"*)
      echo "run npm run deploy in a terminal, where pulumi up shows the preview and asks before it changes anything" ;;
    *)
      echo "fix what the Pulumi CLI reports above, then run npm run deploy again" ;;
  esac
}

# Stops with the CLI's message (kept by pulumi_call/pulumi_quiet) and what to do about it.
explain_failure() {
  local stack="$1" what="$2" message advice
  message="$(cat "${WORK}/stderr" 2>/dev/null || true)"
  printf 'deploy: error: "pulumi %s" failed. The Pulumi CLI said:\n' "${what}" >&2
  if [[ -n "${message}" ]]; then
    printf '%s\n' "${message}" | sed 's/^/  /' >&2
  else
    printf '  (nothing on stderr)\n' >&2
  fi
  advice="$(advice_for "${stack}" "${message}")"
  die "what to do: ${advice}"
}

# Runs pulumi with its stderr shown as it comes and kept. stdout stays the caller's, so
# `pulumi up` stays interactive: the CLI looks for a terminal on stdin and stdout only
# (sdk/go/common/util/cmdutil/console.go, InteractiveTerminal).
pulumi_call() {
  { pulumi "$@" 2>&1 1>&3 3>&- | tee "${WORK}/stderr" >&2; } 3>&1
}

# Runs pulumi with its stderr kept, not shown: for calls whose failure the script explains.
pulumi_quiet() {
  pulumi "$@" 2>"${WORK}/stderr"
}

require_config() {
  local stack="$1" key="$2" example="$3"
  if pulumi_quiet config get --stack "${stack}" "${key}" >/dev/null; then
    return 0
  fi
  # pkg/cmd/pulumi/config/config.go: "configuration key '<key>' not found for stack '<stack>'".
  if grep -q "configuration key '.*' not found for stack" "${WORK}/stderr"; then
    local said
    said="$(cat "${WORK}/stderr")"
    die "${key} is not set for stack ${stack} (the Pulumi CLI said: ${said}). Run: pulumi config set --stack ${stack} ${example}"
  fi
  explain_failure "${stack}" "config get --stack ${stack} ${key}"
}

save_deploy_key() {
  local stack="$1" file="${HOME}/.ssh/agent-host-$1" ssh_command
  (umask 077 && mkdir -p "${HOME}/.ssh")
  if ! (umask 077 && pulumi_quiet stack output --stack "${stack}" --show-secrets deployPrivateKey >"${file}"); then
    rm -f "${file}"
    explain_failure "${stack}" "stack output --stack ${stack} --show-secrets deployPrivateKey"
  fi
  if ! ssh_command="$(pulumi_quiet stack output --stack "${stack}" sshCommand)"; then
    explain_failure "${stack}" "stack output --stack ${stack} sshCommand"
  fi
  log "deploy key saved to ${file}; connect with: ${ssh_command}"
}

main() {
  local stack="${1:-dev}"
  cd "$(dirname "$0")/.."
  check_prerequisites
  WORK="$(mktemp -d)"
  trap cleanup EXIT
  pulumi_call stack select --create --secrets-provider passphrase "${stack}" ||
    explain_failure "${stack}" "stack select --create --secrets-provider passphrase ${stack}"
  require_config "${stack}" gcp:project "gcp:project my-project-id"
  require_config "${stack}" gcp:zone "gcp:zone europe-west1-b"
  require_config "${stack}" sshSourceRanges "--path 'sshSourceRanges[0]' 203.0.113.7/32"
  pulumi_call up --stack "${stack}" || explain_failure "${stack}" "up --stack ${stack}"
  save_deploy_key "${stack}"
}

main "$@"
