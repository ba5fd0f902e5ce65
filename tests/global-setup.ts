// Before any suite: build the host bundle from host/ into cloud-init/host/agent-host.js (it is
// not in git), so every suite that runs it, and the boot test, runs what the sources say now.
import { writeHostBundle } from "../scripts/build-host";

export default function globalSetup(): void {
  writeHostBundle();
}
