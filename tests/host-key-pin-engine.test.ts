// The host key probe's place in the deployment (issue 23, point 6): what orders it before the
// reconcile, what it holds, and when it runs, over the program's own registrations and under the
// engine stand-in (tests/engine/lifecycle.ts) with `concurrentSteps`: the engine runs steps that
// do not depend on each other side by side, so only a dependency keeps the reconcile from
// connecting while the probe is still deciding. The probe's real runs, against a real sshd and an
// impostor, are tests/host-key-pin.test.ts; here the stand-in models it and counts who started a
// key exchange with whatever answers for the VM.
import { HOST_KEY_PROBE_COMMAND } from "../components/agent-fleet";
import { fingerprint } from "../components/host-key";
import { LifecycleEngine } from "./engine/lifecycle";
import {
  BASE_CONFIG,
  MOCK_HOST_KEY,
  MOCK_IP,
  plainStrings,
  runProgram,
  unwrap,
  type ProgramRun,
  type RecordedResource,
} from "./harness";

jest.setTimeout(120_000);

const VM = "agent-host-dev";
const PIN = "agent-host-hostkey";
const CHECK = "agent-host-hostkey-check";
const PROBE = "agent-host-hostkey-probe";
const RECONCILE = "agent-host-reconcile";
const IAP_CONFIG = {
  ...BASE_CONFIG,
  "agent-host:sshSourceRanges": JSON.stringify(["35.235.240.0/20"]),
  "agent-host:connectVia": "iap",
};
const API_KEY = `sk-ant-api03-PROBECANARY${process.pid}abcdefghijklmnop`;
const GIT_TOKEN = `ghp_PROBECANARY${process.pid}abcdefghijklmnopqrstu`;
const WEBHOOK = `https://hooks.slack.com/services/T000/B000/PROBECANARY${process.pid}`;
const DEPLOY_KEY_CANARY = `-----BEGIN OPENSSH PRIVATE KEY-----\nPROBECANARYDEPLOYKEY${process.pid}\n-----END OPENSSH PRIVATE KEY-----\n`;
const SECRETS = {
  "agent-host:anthropicApiKey": API_KEY,
  "agent-host:gitCredentials": GIT_TOKEN,
  "agent-host:notifyWebhookUrl": WEBHOOK,
};

function named(run: ProgramRun, name: string): RecordedResource {
  const found = run.resources.filter((r) => r.name === name && r.custom);
  if (found.length !== 1) throw new Error(`expected one resource ${name}, found ${found.length}`);
  return found[0];
}

/** Every URN `urn` waits for: its dependencies (dependsOn and inputs), transitively. */
function waitsFor(run: ProgramRun, urn: string): Set<string> {
  const byUrn = new Map(run.resources.map((r) => [r.urn, r]));
  const seen = new Set<string>();
  const visit = (u: string) => {
    for (const dep of byUrn.get(u)?.options.dependencies ?? []) {
      if (seen.has(dep)) continue;
      seen.add(dep);
      visit(dep);
    }
  };
  visit(urn);
  return seen;
}

describe.each([
  ["public-ip", BASE_CONFIG],
  ["iap", IAP_CONFIG],
])("connectVia %s: the probe in the program", (via, config) => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram(
      { ...config, ...SECRETS },
      { secretKeys: Object.keys(SECRETS), generatedPrivateKey: DEPLOY_KEY_CANARY },
    );
  });

  test("the reconcile waits for the probe, and the probe for the pinned key", () => {
    const probe = named(run, PROBE);
    const reconcile = named(run, RECONCILE);
    // dependsOn: the probe's URN is among the dependencies the SDK sent with the reconcile.
    expect(reconcile.options.dependencies).toContain(probe.urn);
    // The probe takes the key the check passed (its stdout) and the pin's URN (for the re-pin
    // command): check → probe → reconcile.
    expect([...waitsFor(run, probe.urn)]).toEqual(
      expect.arrayContaining([named(run, CHECK).urn, named(run, PIN).urn]),
    );
    expect(waitsFor(run, probe.urn).has(reconcile.urn)).toBe(false);
    expect([...waitsFor(run, reconcile.urn)]).toEqual(
      expect.arrayContaining([probe.urn, named(run, CHECK).urn, named(run, PIN).urn]),
    );
  });

  test("it runs scripts/host-key-probe on the reconcile's path, with public values only", () => {
    const probe = named(run, PROBE);
    const inputs = unwrap(probe.inputs) as Record<string, any>;
    expect(inputs.create).toBe(HOST_KEY_PROBE_COMMAND);
    expect(inputs.update).toBe(HOST_KEY_PROBE_COMMAND);
    expect(inputs.interpreter.slice(0, 2)).toEqual(["/bin/bash", "-c"]);
    expect(inputs.interpreter[2]).toMatch(/^#!\/usr\/bin\/env bash\n# The host key probe/);
    const env = inputs.environment as Record<string, string>;
    expect(env).toMatchObject({
      AGENT_HOST_CONNECT_VIA: via,
      AGENT_HOST_HOST_KEY: MOCK_HOST_KEY,
      AGENT_HOST_VM: VM,
      AGENT_HOST_ZONE: "europe-west1-b",
      AGENT_HOST_PROJECT: "acme-agents",
      AGENT_HOST_USER: "agent-admin",
      AGENT_HOST_PIN_URN: named(run, PIN).urn,
      AGENT_HOST_PROBE_ATTEMPTS: "60",
    });
    if (via === "public-ip") {
      // The address and port the remote.Command's connection dials.
      const connection = unwrap(named(run, RECONCILE).inputs.connection) as Record<string, any>;
      expect(env.AGENT_HOST_ADDRESS).toBe(MOCK_IP);
      expect(env.AGENT_HOST_ADDRESS).toBe(connection.host);
      expect(env.AGENT_HOST_SSH_PORT).toBe(String(connection.port));
    } else {
      expect(env.AGENT_HOST_ADDRESS).toBeUndefined();
    }
  });

  test("no secret in it: the only secret-marked value is a keyed hash, and no secret's text anywhere", () => {
    const probe = named(run, PROBE);
    const text = JSON.stringify(unwrap(probe.inputs));
    for (const secret of [API_KEY, GIT_TOKEN, WEBHOOK, DEPLOY_KEY_CANARY]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(Buffer.from(secret).toString("base64"));
    }
    // stdin (never read by the script) is what makes it run whenever the reconcile does.
    expect(unwrap(probe.inputs.stdin)).toMatch(/^[0-9a-f]{64}$/);
    // Every other value is public, in the state and in `pulumi preview --diff`: plainStrings
    // skips only what is inside a secret wrapper.
    const plain = plainStrings(probe.inputs).map((p) => p.path);
    expect(plain).not.toContain("$.stdin");
    expect(plain).toEqual(
      expect.arrayContaining([
        "$.environment.AGENT_HOST_HOST_KEY",
        "$.environment.AGENT_HOST_VM",
        "$.environment.AGENT_HOST_PIN_URN",
        "$.create",
        "$.interpreter[2]",
      ]),
    );
  });
});

describe.each([
  ["public-ip", BASE_CONFIG],
  ["iap", IAP_CONFIG],
])(
  "connectVia %s: an impostor answers for the VM (engine stand-in, worst-case step order)",
  (_via, base) => {
    const engine = new LifecycleEngine({ concurrentSteps: true });
    const config: Record<string, string> = { ...base };
    const secretKeys: string[] = [];
    afterAll(() => engine.dispose());
    const vm = () => engine.cloud.instanceNamed(VM)!;

    test("create: the probe proves the VM's key, then the reconcile runs", async () => {
      const log = await engine.up(config);
      expect(log.error).toBeUndefined();
      expect(log.ops[PROBE]).toBe("create");
      expect(vm().handshakes).toEqual(["probe", "reconcile"]);
      expect(vm().reconciled?.agents).toBe(10);
      expect(String(engine.entryNamed(PROBE)!.outputs.stdout)).toContain(fingerprint(vm().hostKey));
    });

    test("the next up, with another host at the address: the probe refuses, naming both fingerprints; the reconcile never connects", async () => {
      const real = vm().hostKey;
      const impostor = engine.keys.generate("impostor").publicKey.split(" ").slice(0, 2).join(" ");
      vm().impostorHostKey = impostor;
      vm().handshakes = [];
      config["agent-host:agentCount"] = "11";
      const log = await engine.up(config, secretKeys);
      if (process.env.SHOW_REFUSALS) console.log(log.error);
      expect(log.error).toContain(`command:local:Command ${PROBE}: exit status 1`);
      expect(log.error).toContain(
        `presented the SSH host key ${fingerprint(impostor)}, not the pinned ${fingerprint(real)}`,
      );
      expect(log.error).toMatch(
        /pulumi up --replace 'urn:pulumi:dev::agent-host::agent-host:fleet:AgentFleet\$command:local:Command::agent-host-hostkey'/,
      );
      // Only the probe's key exchange reached the impostor; the reconcile did not start.
      expect(vm().handshakes).toEqual(["probe"]);
      expect(log.ops[RECONCILE]).toBeUndefined();
      expect(vm().reconciled?.agents).toBe(10);
    });

    test("refused again on the next up while it is there", async () => {
      vm().handshakes = [];
      const log = await engine.up(config, secretKeys);
      expect(log.error).toContain(`command:local:Command ${PROBE}`);
      expect(vm().handshakes).toEqual(["probe"]);
      expect(vm().reconciled?.agents).toBe(10);
    });

    test("the impostor gone: the same up goes through", async () => {
      vm().impostorHostKey = undefined;
      vm().handshakes = [];
      const log = await engine.up(config, secretKeys);
      expect(log.error).toBeUndefined();
      expect(log.ops).toEqual({ [PROBE]: "update", [RECONCILE]: "update" });
      expect(vm().handshakes).toEqual(["probe", "reconcile"]);
      expect(vm().reconciled?.agents).toBe(11);
    });

    test("a secret alone changes (the API key): the probe runs again before the reconcile sends it", async () => {
      config["agent-host:anthropicApiKey"] = API_KEY;
      secretKeys.push("agent-host:anthropicApiKey");
      vm().handshakes = [];
      const log = await engine.up(config, secretKeys);
      expect(log.error).toBeUndefined();
      expect(log.ops).toEqual({ [PROBE]: "update", [RECONCILE]: "update" });
      expect(vm().handshakes).toEqual(["probe", "reconcile"]);
    });

    test("nothing changed: neither runs", async () => {
      vm().handshakes = [];
      const log = await engine.up(config, secretKeys);
      expect(log.error).toBeUndefined();
      expect(log.steps).toEqual([]);
      expect(vm().handshakes).toEqual([]);
    });
  },
);
