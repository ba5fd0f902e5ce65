#!/usr/bin/env bash
# npm run destroy [-- --delete-data] [-- --stack NAME] [-- --yes]
#
# Without --delete-data: `pulumi destroy`, which keeps the data disk (workspaces, logins,
# conversations) and its snapshots; the next `pulumi up` adopts the disk again.
#
# With --delete-data: the data disk is deleted too, for good. Setting deleteDataDiskOnDestroy
# alone does not do it: `pulumi destroy` reads retainOnDelete from the STATE, not from the
# program (pulumi/pulumi pkg/resource/deploy/step.go, DeleteStep.Apply: `s.old.RetainOnDelete`).
# So this sets the key, runs a `pulumi up` targeted at the disk alone (it records
# retainOnDelete=false in the state and touches nothing else), checks the state says so, and
# only then destroys. Snapshots already taken are kept (GCE snapshots outlive their disk).
set -euo pipefail

readonly DISK_TYPE="gcp:compute/disk:Disk"
readonly DISK_RESOURCE="agent-host-data"

DELETE_DATA=false
YES=false
# --stack NAME for every pulumi call, when one was given.
STACK_ARGS=()

log() { printf 'destroy: %s\n' "$*" >&2; }
die() {
  printf 'destroy: error: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'destroy: %s\nusage: npm run destroy -- [--delete-data] [--stack NAME] [--yes]\n' "$*" >&2
  exit 2
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --delete-data) DELETE_DATA=true ;;
      --yes) YES=true ;;
      --stack)
        [[ -n "${2:-}" ]] || usage_error "--stack needs a stack name"
        STACK_ARGS=(--stack "$2")
        shift
        ;;
      -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 0
        ;;
      *) usage_error "unknown argument '$1'" ;;
    esac
    shift
  done
}

# The data disk's entry in the state: "URN<TAB>retain" (retain is true or false), or nothing.
# `pulumi stack export` writes retainOnDelete only when true (apitype.ResourceV3, omitempty).
disk_in_state() {
  local state
  state="$(pulumi stack export "${STACK_ARGS[@]}")"
  # shellcheck disable=SC2016 # the ${...} are a JavaScript template literal, for node.
  printf '%s' "${state}" | node -e '
    let text = "";
    process.stdin.on("data", (c) => (text += c)).on("end", () => {
      const resources = JSON.parse(text).deployment?.resources ?? [];
      const disk = resources.find(
        (r) => r.type === process.argv[1] && r.urn.endsWith(`::${process.argv[2]}`) && !r.delete,
      );
      if (disk) console.log(`${disk.urn}\t${disk.retainOnDelete === true}`);
    });
  ' "${DISK_TYPE}" "${DISK_RESOURCE}"
}

record_delete_on_destroy() {
  local entry urn retain
  entry="$(disk_in_state)"
  if [[ -z "${entry}" ]]; then
    die "the stack's state has no data disk (an earlier destroy kept it, or it was never created). A disk kept by an earlier destroy: run pulumi up (it adopts the disk), then npm run destroy -- --delete-data; or delete it yourself: gcloud compute disks delete <instanceName>-data --zone <zone>"
  fi
  urn="${entry%%$'\t'*}"
  log "recording retainOnDelete=false for ${urn}"
  pulumi config set "${STACK_ARGS[@]}" deleteDataDiskOnDestroy true
  # The program still runs in full; the VM may be stopped, and nothing is dialed here.
  AGENT_HOST_ALLOW_STOPPED_VM=1 pulumi up "${STACK_ARGS[@]}" --target "${urn}" --yes --skip-preview
  entry="$(disk_in_state)"
  retain="${entry##*$'\t'}"
  [[ "${retain}" == false ]] || die "the state still keeps the data disk on destroy (retainOnDelete is ${retain:-unknown}); nothing was destroyed"
}

main() {
  parse_args "$@"
  command -v pulumi >/dev/null 2>&1 || die "the Pulumi CLI is not installed: curl -fsSL https://get.pulumi.com | sh"
  local -a confirm=()
  [[ "${YES}" == false ]] || confirm=(--yes)
  if [[ "${DELETE_DATA}" == true ]]; then
    command -v node >/dev/null 2>&1 || die "node is needed to read the stack's state (see README, Prerequisites)"
    record_delete_on_destroy
    log "destroying the stack AND its data disk; snapshots already taken are kept"
  else
    log "destroying the stack; the data disk is kept (npm run destroy -- --delete-data deletes it)"
  fi
  pulumi destroy "${STACK_ARGS[@]}" "${confirm[@]}"
}

main "$@"
