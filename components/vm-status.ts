// What `pulumi up` does when the VM it deploys to is not running. Pure: index.ts reads the
// instance's status (gcp.compute.getInstance, currentStatus) and asks here.
//
// The reconcile command dials the VM over SSH with a retry budget meant for a VM that is still
// booting (dialErrorLimit × perDialTimeout: minutes). A stopped VM never answers, so `up` would
// spend all of it and end with a dial error that does not say why. Failing before any resource
// is registered, with the command that starts the VM, takes seconds.

/** GCE instance states in which nothing answers on port 22 until someone starts the VM. */
export const NOT_RUNNING_STATES = [
  "STOPPING",
  "STOPPED",
  "TERMINATED",
  "SUSPENDING",
  "SUSPENDED",
] as const;

export interface VmLocation {
  project: string;
  zone: string;
  name: string;
}

/** The command that starts the (stopped) VM; also a stack output. */
export function startCommand(vm: VmLocation): string {
  return `gcloud compute instances start ${vm.name} --zone ${vm.zone} --project ${vm.project}`;
}

function resumeCommand(vm: VmLocation): string {
  return `gcloud compute instances resume ${vm.name} --zone ${vm.zone} --project ${vm.project}`;
}

/**
 * undefined when `pulumi up` may go on (running, being created, or no VM yet); otherwise the
 * message that stops it, naming the state and the command that starts the VM.
 */
export function stoppedVmMessage(vm: VmLocation, status: string | undefined): string | undefined {
  if (!status || !(NOT_RUNNING_STATES as readonly string[]).includes(status)) return undefined;
  const suspended = status === "SUSPENDING" || status === "SUSPENDED";
  const start = suspended ? resumeCommand(vm) : startCommand(vm);
  return (
    `The VM ${vm.name} is ${status}: pulumi up would spend minutes dialing SSH to it and fail. ` +
    `Start it with: ${start}` +
    (status.endsWith("ING") ? " (once it has finished " + status.toLowerCase() + ")" : "") +
    `, then run pulumi up again.`
  );
}
