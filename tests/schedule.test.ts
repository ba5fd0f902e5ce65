// Work hours: the config → cron rules (pure), and under the mocks the instance schedule, its
// attachment to the VM, and the service agent's start/stop grant on this VM only.
import { parseConfig } from "../config";
import { checkTimeZone, parseWorkDays, scheduleCrons, type WorkSchedule } from "../schedule";
import { SCHEDULE_PERMISSIONS } from "../components/agent-host";
import {
  BASE_CONFIG,
  MOCK_PROJECT_NUMBER,
  byType,
  one,
  runProgram,
  unwrap,
  withProjectDefaults,
  type ProgramRun,
} from "./harness";

jest.setTimeout(60_000);

describe("workDays", () => {
  test.each([
    ["Mon-Fri", [1, 2, 3, 4, 5]],
    ["mon-fri", [1, 2, 3, 4, 5]],
    ["Mon,Wed,Fri", [1, 3, 5]],
    ["Sun-Thu", [0, 1, 2, 3, 4]],
    ["Fri-Mon", [0, 1, 5, 6]],
    ["Mon-Wed, Fri", [1, 2, 3, 5]],
    ["Sat", [6]],
    ["Mon-Sun", [0, 1, 2, 3, 4, 5, 6]],
    ["Tue,Tue", [2]],
  ])("%s → %j", (text, days) => {
    expect(parseWorkDays(text)).toEqual(days);
  });
});

describe("scheduleCrons", () => {
  const base: WorkSchedule = { days: [1, 2, 3, 4, 5], timeZone: "Europe/Berlin" };
  test.each<[string, Partial<WorkSchedule>, ReturnType<typeof scheduleCrons>]>([
    [
      "office hours",
      { start: "08:00", stop: "19:00" },
      { vmStartSchedule: "0 8 * * 1-5", vmStopSchedule: "0 19 * * 1-5" },
    ],
    [
      "minutes kept",
      { start: "07:45", stop: "18:30" },
      { vmStartSchedule: "45 7 * * 1-5", vmStopSchedule: "30 18 * * 1-5" },
    ],
    ["stop only (start by hand)", { stop: "20:00" }, { vmStopSchedule: "0 20 * * 1-5" }],
    ["start only", { start: "06:00" }, { vmStartSchedule: "0 6 * * 1-5" }],
    [
      "a night shift stops the morning after each work day",
      { start: "22:00", stop: "06:00" },
      { vmStartSchedule: "0 22 * * 1-5", vmStopSchedule: "0 6 * * 2-6" },
    ],
    [
      "a night shift ending Saturday wraps to Sunday",
      { start: "22:00", stop: "06:00", days: [5, 6] },
      { vmStartSchedule: "0 22 * * 5,6", vmStopSchedule: "0 6 * * 0,6" },
    ],
    [
      "every day",
      { start: "08:00", stop: "20:00", days: [0, 1, 2, 3, 4, 5, 6] },
      { vmStartSchedule: "0 8 * * *", vmStopSchedule: "0 20 * * *" },
    ],
    [
      "scattered days",
      { start: "09:00", stop: "17:00", days: [1, 3, 5] },
      { vmStartSchedule: "0 9 * * 1,3,5", vmStopSchedule: "0 17 * * 1,3,5" },
    ],
  ])("%s", (_label, overrides, crons) => {
    expect(scheduleCrons({ ...base, ...overrides })).toEqual(crons);
  });
});

describe("checkTimeZone", () => {
  test.each([
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "America/Argentina/Buenos_Aires",
  ])("%s is a tz database name", (zone) => expect(checkTimeZone(zone)).toEqual({ valid: true }));
  test.each(["", "Berlin", "GMT+25", "Europe/Berlin; rm -rf /", "Mars/Olympus_Mons"])(
    "%j is not",
    (zone) => expect(checkTimeZone(zone).valid).toBe(false),
  );
  test("a wrong case gets the canonical spelling", () => {
    expect(checkTimeZone("america/new_york")).toEqual({
      valid: false,
      suggestion: "America/New_York",
    });
  });
});

describe("parseConfig", () => {
  test("no times: no schedule, whatever the other keys say", () => {
    const { config } = parseConfig({ ...BASE_CONFIG, "agent-host:workDays": "Sat" });
    expect(config.workSchedule).toBeUndefined();
  });

  test('Pulumi.yaml\'s defaults ("" times) mean no schedule, and auto-stop after 60 minutes', () => {
    const { config } = parseConfig(withProjectDefaults(BASE_CONFIG));
    expect(config.workSchedule).toBeUndefined();
    expect(config.autoStopMinutes).toBe(60);
  });

  test("times normalised to HH:MM, days and zone as given", () => {
    const { config } = parseConfig({
      ...BASE_CONFIG,
      "agent-host:workHoursStart": " 8:05",
      "agent-host:workHoursStop": "19:00",
      "agent-host:workDays": "Mon-Thu",
      "agent-host:workTimeZone": "Europe/Berlin",
    });
    expect(config.workSchedule).toEqual({
      start: "08:05",
      stop: "19:00",
      days: [1, 2, 3, 4],
      timeZone: "Europe/Berlin",
    });
  });

  test("autoStopMinutes 0 turns auto-stop off", () => {
    expect(
      parseConfig({ ...BASE_CONFIG, "agent-host:autoStopMinutes": "0" }).config.autoStopMinutes,
    ).toBe(0);
  });
});

const SCHEDULE_TYPES = [
  "gcp:compute/resourcePolicy:ResourcePolicy::agent-host-work-hours",
  "gcp:projects/iAMCustomRole:IAMCustomRole::agent-host-start-stop",
  "gcp:compute/instanceIAMMember:InstanceIAMMember::agent-host-schedule-agent",
];
const names = (run: ProgramRun) => run.resources.map((r) => `${r.type}::${r.name}`);

describe("no work hours (the default)", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram(withProjectDefaults(BASE_CONFIG));
  });

  test("no schedule, no role, no grant, no project lookup, nothing attached to the VM", () => {
    for (const name of SCHEDULE_TYPES) expect(names(run)).not.toContain(name);
    expect(run.invokes).not.toContain("gcp:organizations/getProject:getProject");
    expect(one(run, "gcp:compute/instance:Instance").inputs.resourcePolicies).toBeUndefined();
  });
});

describe("work hours Mon-Fri 08:00-19:00 in Europe/Berlin", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:workHoursStart": "08:00",
      "agent-host:workHoursStop": "19:00",
      "agent-host:workTimeZone": "Europe/Berlin",
    });
  });

  test("an instance schedule in the VM's region with the exact crons and zone", () => {
    const policies = byType(run, "gcp:compute/resourcePolicy:ResourcePolicy").filter(
      (r) => r.name === "agent-host-work-hours",
    );
    expect(policies).toHaveLength(1);
    expect(unwrap(policies[0].inputs)).toEqual({
      project: "acme-agents",
      region: "europe-west1",
      name: "agent-host-dev-work-hours",
      description: "Work hours of the agent-host VM: GCE starts and stops it on this schedule.",
      instanceSchedulePolicy: {
        timeZone: "Europe/Berlin",
        vmStartSchedule: { schedule: "0 8 * * 1-5" },
        vmStopSchedule: { schedule: "0 19 * * 1-5" },
      },
    });
  });

  test("attached through the VM's resourcePolicies (updated in place, no replacement)", () => {
    const vm = one(run, "gcp:compute/instance:Instance");
    expect(vm.inputs.resourcePolicies).toBe(
      "https://www.googleapis.com/compute/v1/projects/acme-agents/regions/europe-west1/resourcePolicies/agent-host-dev-work-hours",
    );
  });

  test("a custom role with exactly compute.instances.start and .stop", () => {
    const role = one(run, "gcp:projects/iAMCustomRole:IAMCustomRole");
    expect(unwrap(role.inputs)).toEqual({
      project: "acme-agents",
      roleId: "agentHostStartStop_agent_host_dev",
      title: "agent-host start/stop agent-host-dev",
      description: "Lets the Compute Engine Service Agent run the VM's work-hour schedule.",
      permissions: ["compute.instances.start", "compute.instances.stop"],
      stage: "GA",
    });
    expect(SCHEDULE_PERMISSIONS).toEqual(["compute.instances.start", "compute.instances.stop"]);
  });

  test("granted to the project's Compute Engine Service Agent on this VM only", () => {
    const grant = one(run, "gcp:compute/instanceIAMMember:InstanceIAMMember");
    expect(unwrap(grant.inputs)).toEqual({
      project: "acme-agents",
      zone: "europe-west1-b",
      instanceName: "agent-host-dev",
      role: "projects/acme-agents/roles/agentHostStartStop_agent_host_dev",
      member: `serviceAccount:service-${MOCK_PROJECT_NUMBER}@compute-system.iam.gserviceaccount.com`,
    });
    expect(run.invokeArgs).toContainEqual({
      token: "gcp:organizations/getProject:getProject",
      inputs: { projectId: "acme-agents" },
    });
    // No project-wide grant: the schedule's role is bound on the VM only, and the VM's own
    // account has no project role unless the agents use Vertex AI.
    expect(byType(run, "gcp:projects/iAMMember:IAMMember")).toEqual([]);
  });

  test("the snapshot schedule stays on the data disk (a VM takes one resource policy)", () => {
    expect(names(run)).toContain("gcp:compute/resourcePolicy:ResourcePolicy::agent-host-snapshots");
  });
});

test("a stop time alone gives a stop-only schedule", async () => {
  const run = await runProgram({ ...BASE_CONFIG, "agent-host:workHoursStop": "20:30" });
  const policy = byType(run, "gcp:compute/resourcePolicy:ResourcePolicy").find(
    (r) => r.name === "agent-host-work-hours",
  );
  expect(unwrap(policy?.inputs.instanceSchedulePolicy)).toEqual({
    timeZone: "UTC",
    vmStopSchedule: { schedule: "30 20 * * 1-5" },
  });
});

describe("turning work hours on and off, through the lifecycle engine (tests/engine/lifecycle.ts)", () => {
  // The engine replaces a resource only when a FORCE_NEW path changes (ported from the provider's
  // schemas); resource_policies is not ForceNew (resource_compute_instance.go: Optional, updated
  // by resourceComputeInstanceUpdate through removeResourcePolicies/addResourcePolicies).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { LifecycleEngine } = require("./engine/lifecycle") as typeof import("./engine/lifecycle");
  const engine = new LifecycleEngine();
  afterAll(() => engine.dispose());
  const VM = "agent-host-vm";
  // The engine logs each operation by resource name.
  const ADDED = ["agent-host-work-hours", "agent-host-start-stop", "agent-host-schedule-agent"];
  const hours = {
    "agent-host:workHoursStart": "08:00",
    "agent-host:workHoursStop": "19:00",
    "agent-host:workTimeZone": "Europe/Berlin",
  };

  test("on: the schedule, the role and the grant are created, and the VM is updated, not replaced", async () => {
    expect((await engine.up({ ...BASE_CONFIG })).error).toBeUndefined();
    const log = await engine.up({ ...BASE_CONFIG, ...hours });
    expect(log.error).toBeUndefined();
    expect(log.ops[VM]).toBe("update");
    for (const name of ADDED) expect(log.ops[name]).toBe("create");
  });

  test("new hours update the schedule in place; the VM is untouched", async () => {
    const log = await engine.up({ ...BASE_CONFIG, ...hours, "agent-host:workHoursStop": "20:00" });
    expect(log.error).toBeUndefined();
    expect(log.ops[VM]).toBeUndefined();
    expect(log.ops["agent-host-work-hours"]).toBe("update");
  });

  test("off: the VM is updated (policy detached), the schedule, role and grant are deleted", async () => {
    const log = await engine.up({ ...BASE_CONFIG });
    expect(log.error).toBeUndefined();
    expect(log.ops[VM]).toBe("update");
    for (const name of ADDED) expect(log.ops[name]).toBe("delete");
  });
});
