// scripts/destroy.sh (`npm run destroy`) against a stand-in `pulumi` on PATH that keeps a state
// and a tiny cloud and applies the engine's rule that matters here: `destroy` reads
// retainOnDelete from the state (tests/fixtures/pulumi-state-cli.ts, sources cited there).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as ts from "typescript";
import type { StandInState } from "./fixtures/pulumi-state-cli";

const ROOT = path.join(__dirname, "..");
const SCRIPT = path.join(ROOT, "scripts/destroy.sh");
const DISK_URN =
  "urn:pulumi:dev::agent-host::agent-host:host:AgentHost$gcp:compute/disk:Disk::agent-host-data";
const VM_URN =
  "urn:pulumi:dev::agent-host::agent-host:host:AgentHost$gcp:compute/instance:Instance::agent-host-vm";
const DISK = "agent-host-dev-data";

let tmp: string;
let bin: string;

/** The stand-in and what it imports, transpiled, with a `pulumi` launcher. */
function buildStandIn(): void {
  bin = path.join(tmp, "bin");
  const sources = {
    "lib/tests/fixtures/pulumi-state-cli.js": "tests/fixtures/pulumi-state-cli.ts",
    "lib/components/vm-status.js": "components/vm-status.ts",
  };
  for (const [target, source] of Object.entries(sources)) {
    const { outputText } = ts.transpileModule(fs.readFileSync(path.join(ROOT, source), "utf8"), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020 },
    });
    fs.mkdirSync(path.dirname(path.join(bin, target)), { recursive: true });
    fs.writeFileSync(path.join(bin, target), outputText);
  }
  fs.writeFileSync(
    path.join(bin, "pulumi"),
    `#!${process.execPath}\nrequire(${JSON.stringify(path.join(bin, "lib/tests/fixtures/pulumi-state-cli.js"))});\n`,
    { mode: 0o755 },
  );
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "destroy-script-"));
  buildStandIn();
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A deployed stack: the disk kept on destroy (the default), the VM in the given state. */
function deployed(vmStatus = "RUNNING"): StandInState {
  return {
    config: {},
    resources: [
      { urn: DISK_URN, type: "gcp:compute/disk:Disk", retainOnDelete: true, cloudName: DISK },
      { urn: VM_URN, type: "gcp:compute/instance:Instance", retainOnDelete: false },
    ],
    cloud: {
      disks: [DISK],
      vm: {
        project: "acme-agents",
        zone: "europe-west1-b",
        name: "agent-host-dev",
        status: vmStatus,
      },
    },
  };
}

interface Run {
  status: number | null;
  stderr: string;
  calls: { args: string[]; allowStoppedVm: string }[];
  state: StandInState;
}

let runs = 0;

function run(command: string[], initial: StandInState): Run {
  const dir = path.join(tmp, `run-${++runs}`);
  fs.mkdirSync(dir);
  const stateFile = path.join(dir, "state.json");
  const log = path.join(dir, "calls.jsonl");
  fs.writeFileSync(stateFile, JSON.stringify(initial));
  const result = spawnSync(command[0], command.slice(1), {
    cwd: dir,
    encoding: "utf8",
    env: {
      PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`,
      PULUMI_STANDIN_STATE: stateFile,
      PULUMI_STANDIN_LOG: log,
    },
    timeout: 30_000,
  });
  const calls = fs.existsSync(log)
    ? fs
        .readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Run["calls"][number])
    : [];
  return {
    status: result.status,
    stderr: result.stderr,
    calls,
    state: JSON.parse(fs.readFileSync(stateFile, "utf8")) as StandInState,
  };
}

const destroy = (args: string[], initial: StandInState) => run(["bash", SCRIPT, ...args], initial);

describe("the stand-in enforces the engine's rule", () => {
  test("deleteDataDiskOnDestroy set, then pulumi destroy: the disk survives (the state said retain)", () => {
    const configSet = run(
      ["pulumi", "config", "set", "deleteDataDiskOnDestroy", "true"],
      deployed(),
    );
    expect(configSet.status).toBe(0);
    const after = run(["pulumi", "destroy", "--yes"], configSet.state);
    expect(after.status).toBe(0);
    expect(after.state.resources).toEqual([]);
    expect(after.state.cloud.disks).toEqual([DISK]);
  });

  test("destroy without --yes is refused, as the CLI does when not interactive", () => {
    const r = run(["pulumi", "destroy"], deployed());
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "error: --yes or --skip-preview or --preview-only must be passed in to proceed when running in non-interactive mode\n",
    );
  });
});

describe("npm run destroy", () => {
  test("without --delete-data: pulumi destroy, and the data disk stays", () => {
    const r = destroy(["--yes"], deployed());
    expect(r.status).toBe(0);
    expect(r.calls.map((c) => c.args)).toEqual([["destroy", "--yes"]]);
    expect(r.state.cloud.disks).toEqual([DISK]);
    expect(r.stderr).toContain(
      "the data disk is kept (npm run destroy -- --delete-data deletes it)",
    );
  });

  test("--delete-data: records retainOnDelete=false with a targeted up, checks it, then destroys the disk too", () => {
    const r = destroy(["--delete-data", "--yes"], deployed());
    expect(r.stderr).not.toContain("error");
    expect(r.status).toBe(0);
    expect(r.calls.map((c) => c.args)).toEqual([
      ["stack", "export"],
      ["config", "set", "deleteDataDiskOnDestroy", "true"],
      ["up", "--target", DISK_URN, "--yes", "--skip-preview"],
      ["stack", "export"],
      ["destroy", "--yes"],
    ]);
    expect(r.state.resources).toEqual([]);
    expect(r.state.cloud.disks).toEqual([]);
    expect(r.state.config["agent-host:deleteDataDiskOnDestroy"]).toBe("true");
  });

  test("--delete-data --stack NAME passes the stack to every call", () => {
    const r = destroy(["--delete-data", "--stack", "dev", "--yes"], deployed());
    expect(r.status).toBe(0);
    expect(r.calls).toHaveLength(5);
    for (const { args } of r.calls) expect(args[args.indexOf("--stack") + 1]).toBe("dev");
    expect(r.state.cloud.disks).toEqual([]);
  });

  test("--delete-data on a stopped VM: the targeted up does not stop at the VM check", () => {
    const stoppedUp = run(["pulumi", "up", "--target", DISK_URN, "--yes"], deployed("TERMINATED"));
    // The program refuses a stopped VM on a plain up, with the way to start it...
    expect(stoppedUp.status).toBe(1);
    expect(stoppedUp.stderr).toContain("gcloud compute instances start agent-host-dev");
    // ...so destroy.sh's targeted up tells it that nothing is dialed.
    const r = destroy(["--delete-data", "--yes"], deployed("TERMINATED"));
    expect(r.status).toBe(0);
    expect(r.calls.find((c) => c.args[0] === "up")?.allowStoppedVm).toBe("1");
    expect(r.state.cloud.disks).toEqual([]);
  });

  test("--delete-data with no disk in the state: stops before destroying anything, says what to do", () => {
    const initial = deployed();
    initial.resources = initial.resources.filter((res) => res.urn !== DISK_URN);
    const r = destroy(["--delete-data", "--yes"], initial);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("the stack's state has no data disk");
    expect(r.stderr).toContain("gcloud compute disks delete");
    expect(r.calls.map((c) => c.args[0])).toEqual(["stack"]);
    expect(r.state.resources).toHaveLength(1);
  });

  test("an unknown argument: exit 2 with the usage", () => {
    const r = destroy(["--delete-everything"], deployed());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown argument '--delete-everything'");
    expect(r.calls).toEqual([]);
  });
});
