// The host key pin over several `pulumi up`s, against the engine stand-in's rules
// (tests/engine/lifecycle.ts: the pin and its check run for real as local commands; each VM has
// its own ssh-keygen host key and publishes it as a guest attribute at first boot), and
// connectVia iap evaluated the same way: resources, firewall, outputs, no address.
import { readFileSync } from "fs";
import { IAP_SSH_SCRIPT_PATH } from "../components/agent-fleet";
import { fingerprint } from "../components/host-key";
import { parseConfig } from "../config";
import { IAP_TCP_FORWARDING_RANGE } from "../shared-rules";
import { LifecycleEngine } from "./engine/lifecycle";
import {
  BASE_CONFIG,
  MOCK_HOST_KEY,
  one,
  runProgram,
  SECRET_SIG,
  SIG_KEY,
  unwrap,
  withProjectDefaults,
} from "./harness";

jest.setTimeout(120_000);

const VM = "agent-host-dev";
const PIN = "agent-host-hostkey";
const CHECK = "agent-host-hostkey-check";

describe("the pinned host key across ups", () => {
  const engine = new LifecycleEngine();
  const config: Record<string, string> = { ...BASE_CONFIG };
  afterAll(() => engine.dispose());

  const pinned = () => String(engine.entryNamed(PIN)?.outputs.stdout ?? "");

  test("create: the key the new VM published is pinned, and the reconcile used it", async () => {
    const log = await engine.up(config);
    expect(log.error).toBeUndefined();
    const vm = engine.cloud.instanceNamed(VM)!;
    expect(pinned()).toBe(vm.hostKey);
    expect(vm.reconciled?.agents).toBe(10);
  });

  test("an agent rewrites the guest attribute: the next up refuses, names both fingerprints, sends nothing", async () => {
    const vm = engine.cloud.instanceNamed(VM)!;
    const real = vm.hostKey;
    const forged = engine.keys.generate("forged").publicKey.split(" ").slice(0, 2).join(" ");
    // What any process on the VM can do: PUT guest-attributes/hostkeys/ssh-ed25519.
    vm.guestHostKeys.set("ssh-ed25519", forged.split(" ")[1]);
    // A change that would send a bundle.
    config["agent-host:agentCount"] = "11";
    const log = await engine.up(config);
    if (process.env.SHOW_REFUSALS) console.log(log.error);
    expect(log.error).toContain(`${CHECK}`);
    expect(log.error).toContain(`pinned ${fingerprint(real)} when the VM was created`);
    expect(log.error).toContain(`now published ${fingerprint(forged)}`);
    expect(log.error).toMatch(
      /pulumi up --replace 'urn:pulumi:dev::agent-host::.*agent-host-hostkey'/,
    );
    // The reconcile never ran: the VM still has 10 agents; the pin still holds the real key.
    expect(vm.reconciled?.agents).toBe(10);
    expect(pinned()).toBe(real);
    // And it stays refused on the next up.
    const again = await engine.up(config);
    expect(again.error).toContain(`now published ${fingerprint(forged)}`);
    expect(vm.reconciled?.agents).toBe(10);
  });

  test("accepting the new key (pulumi up --replace the pin) pins it; the VM's sshd then refuses it", async () => {
    // The operator accepts the forged key: the pin now holds it, and the probe finds that the
    // VM's sshd proves another key, so the deployment stops before the reconcile connects.
    const vm = engine.cloud.instanceNamed(VM)!;
    const forged = `ssh-ed25519 ${vm.guestHostKeys.get("ssh-ed25519")}`;
    engine.replaceNext.add(PIN);
    const log = await engine.up(config);
    expect(log.ops[PIN]).toBe("replace");
    expect(log.error).toContain("agent-host-hostkey-probe");
    expect(log.error).toContain(
      `presented the SSH host key ${fingerprint(vm.hostKey)}, not the pinned ${fingerprint(forged)}`,
    );
    expect(vm.reconciled?.agents).toBe(10);
  });

  test("the VM's own key published again and accepted: the deploy goes through", async () => {
    const vm = engine.cloud.instanceNamed(VM)!;
    const [type, blob] = vm.hostKey.split(" ");
    vm.guestHostKeys.set(type, blob);
    engine.replaceNext.add(PIN);
    const log = await engine.up(config);
    expect(log.error).toBeUndefined();
    expect(pinned()).toBe(vm.hostKey);
    expect(vm.reconciled?.agents).toBe(11);
  });

  test("a rebuilt VM (image change) gets a new key, pinned by the same up", async () => {
    const before = engine.cloud.instanceNamed(VM)!.hostKey;
    config["agent-host:image"] = "ubuntu-os-cloud/ubuntu-2504-amd64";
    const log = await engine.up(config);
    expect(log.error).toBeUndefined();
    const vm = engine.cloud.instanceNamed(VM)!;
    expect(vm.hostKey).not.toBe(before);
    expect(log.ops[PIN]).toBe("replace");
    expect(pinned()).toBe(vm.hostKey);
    expect(vm.reconciled?.agents).toBe(11);
  });

  test("a published value that is no key: the check step fails with the reason, nothing is sent", async () => {
    const vm = engine.cloud.instanceNamed(VM)!;
    const good = vm.guestHostKeys.get("ssh-ed25519")!;
    vm.guestHostKeys.set("ssh-ed25519", "@@not-a-key@@");
    config["agent-host:agentCount"] = "12";
    const log = await engine.up(config);
    expect(log.error).toContain(CHECK);
    expect(log.error).toContain(
      "Reading VM agent-host-dev's SSH host key from its guest attributes failed",
    );
    expect(log.error).toContain("host key ssh-ed25519 has no valid base64 blob");
    expect(vm.reconciled?.agents).toBe(11);
    vm.guestHostKeys.set("ssh-ed25519", good);
    expect((await engine.up(config)).error).toBeUndefined();
    expect(vm.reconciled?.agents).toBe(12);
  });
});

describe("connectVia iap under the engine's rules", () => {
  const engine = new LifecycleEngine();
  const config: Record<string, string> = { ...BASE_CONFIG };
  afterAll(() => engine.dispose());

  test("public-ip → iap on a running stack: the address goes, the VM and disk stay, the reconcile goes through IAP", async () => {
    expect((await engine.up(config)).error).toBeUndefined();
    const before = engine.cloud.instanceNamed(VM)!;
    const { instanceId, hostKey } = before;
    config["agent-host:sshSourceRanges"] = JSON.stringify([IAP_TCP_FORWARDING_RANGE]);
    config["agent-host:connectVia"] = "iap";
    config["agent-host:agentCount"] = "4";
    const log = await engine.up(config);
    expect(log.error).toBeUndefined();
    expect(log.ops).toMatchObject({
      "agent-host-ip": "delete",
      "agent-host-vm": "update",
      "agent-host-ssh": "update",
    });
    // The remote.Command goes, a local.Command of the same name comes (another type: another URN).
    expect(Object.values(log.byUrn)).toEqual(expect.arrayContaining(["create", "delete"]));
    const vm = engine.cloud.instanceNamed(VM)!;
    expect(vm.instanceId).toBe(instanceId);
    expect(vm.hostKey).toBe(hostKey);
    expect(vm.natIp).toBe("");
    expect(engine.cloud.addresses.size).toBe(0);
    expect(vm.inputs.networkInterfaces).toEqual([{ network: "default" }]);
    const firewall = engine.entryNamed("agent-host-ssh")!;
    expect(firewall.inputs.sourceRanges).toEqual([IAP_TCP_FORWARDING_RANGE]);
    // The IAP reconcile ran on the VM with the pinned key.
    expect(vm.reconciled?.agents).toBe(4);
    const reconcile = engine.entryNamed("agent-host-reconcile")!;
    expect(reconcile.type).toBe("command:local:Command");
    expect((reconcile.inputs.environment as Record<string, string>).AGENT_HOST_HOST_KEY).toBe(
      hostKey,
    );
  });

  test("iap: a forged host key stops the deploy the same way", async () => {
    const vm = engine.cloud.instanceNamed(VM)!;
    const forged = engine.keys.generate("forged-iap").publicKey.split(" ");
    vm.guestHostKeys.set("ssh-ed25519", forged[1]);
    config["agent-host:agentCount"] = "5";
    const log = await engine.up(config);
    expect(log.error).toContain(`now published ${fingerprint(forged.slice(0, 2).join(" "))}`);
    expect(vm.reconciled?.agents).toBe(4);
  });
});

describe("connectVia iap under the mocks: resources, firewall, outputs", () => {
  const IAP_CONFIG = {
    "gcp:project": BASE_CONFIG["gcp:project"],
    "gcp:zone": BASE_CONFIG["gcp:zone"],
    "agent-host:connectVia": "iap",
    "agent-host:sshSourceRanges": JSON.stringify(["35.235.240.0/20"]),
  };

  test("no address, no accessConfig, SSH from IAP only, reconcile through scripts/iap-ssh, gcloud outputs", async () => {
    // As the CLI runs it: Pulumi.yaml's defaults applied.
    const run = await runProgram(withProjectDefaults(IAP_CONFIG));
    const types = run.resources.map((r) => `${r.type}::${r.name}`);
    expect(types.filter((t) => t.startsWith("gcp:compute/address:"))).toEqual([]);
    expect(types.filter((t) => t.startsWith("command:remote:"))).toEqual([]);
    const vm = unwrap(one(run, "gcp:compute/instance:Instance").inputs) as Record<string, any>;
    expect(vm.networkInterfaces).toEqual([{ network: "default" }]);
    expect(vm.metadata["enable-guest-attributes"]).toBe("TRUE");
    const fw = unwrap(one(run, "gcp:compute/firewall:Firewall").inputs) as Record<string, any>;
    expect(fw).toMatchObject({
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: ["22"] }],
      sourceRanges: [IAP_TCP_FORWARDING_RANGE],
      targetServiceAccounts: ["ah-dev@acme-agents.iam.gserviceaccount.com"],
    });
    const reconcile = run.resources.find(
      (r) => r.type === "command:local:Command" && r.name === "agent-host-reconcile",
    )!;
    // The deploy key travels only on stdin, which is secret.
    expect(reconcile.inputs.stdin).toMatchObject({ [SIG_KEY]: SECRET_SIG });
    const inputs = unwrap(reconcile.inputs) as Record<string, any>;
    expect(inputs.interpreter.slice(0, 2)).toEqual(["/bin/bash", "-c"]);
    expect(inputs.interpreter[2]).toBe(readFileSync(IAP_SSH_SCRIPT_PATH, "utf8"));
    expect(inputs.environment).toEqual({
      AGENT_HOST_VM: VM,
      AGENT_HOST_ZONE: "europe-west1-b",
      AGENT_HOST_PROJECT: "acme-agents",
      AGENT_HOST_USER: "agent-admin",
      AGENT_HOST_HOST_KEY: MOCK_HOST_KEY,
    });
    expect(inputs.stdin).toMatch(
      /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]*\nagent-host-bundle 1\n/,
    );
    expect(inputs.create).toMatch(/^sudo \/usr\/local\/lib\/agent-host\/apply --agents 10 /);
    expect(inputs.create).not.toContain("PRIVATE KEY");
    const gcloud = `gcloud compute ssh agent-admin@${VM} --tunnel-through-iap --zone europe-west1-b --project acme-agents --ssh-key-file ~/.ssh/agent-host-dev`;
    const values = Object.fromEntries(Object.entries(run.outputs).map(([k, v]) => [k, v.value]));
    expect(values).toMatchObject({
      connectVia: "iap",
      sshCommand: gcloud,
      attachCommand: `${gcloud} --ssh-flag=-t --command='sudo agentctl attach'`,
      statusCommand: `${gcloud} --command='sudo agentctl status'`,
      // gcloud hands what follows `--` to ssh: the dashboard's port through the IAP tunnel.
      dashboardTunnel: `${gcloud} -- -N -L 7420:127.0.0.1:7420`,
      sshHostKey: MOCK_HOST_KEY,
    });
    expect((values.agentCommands as string[])[2]).toBe(
      `${gcloud} --ssh-flag=-t --command='sudo agentctl attach 3'`,
    );
    expect(values.publicIp).toBeUndefined();
    expect(run.warnings).toEqual([]);
  });

  test("bad values are refused by name, with the fix", () => {
    const refused = (raw: Record<string, string>) => {
      try {
        parseConfig(raw);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("accepted");
    };
    expect(refused({ ...BASE_CONFIG, "agent-host:connectVia": "vpn" })).toBe(
      'connectVia must be one of public-ip, iap; got "vpn". Run: pulumi config set connectVia public-ip',
    );
    expect(refused({ ...IAP_CONFIG, "agent-host:sshSourceRanges": '["203.0.113.7/32"]' })).toBe(
      `sshSourceRanges is ["203.0.113.7/32"] but connectVia is iap: the VM has no external address, and its firewall admits SSH from IAP's 35.235.240.0/20 only. Run: pulumi config rm sshSourceRanges && pulumi config set --path 'sshSourceRanges[0]' 35.235.240.0/20 (or pulumi config set connectVia public-ip to reach the VM at its address)`,
    );
    const { "agent-host:sshSourceRanges": _unset, ...withoutRanges } = IAP_CONFIG;
    expect(refused(withoutRanges)).toBe(
      "sshSourceRanges is required: with connectVia iap it is IAP's range. Run: pulumi config set --path 'sshSourceRanges[0]' 35.235.240.0/20",
    );
    expect(parseConfig(IAP_CONFIG).config.sshSourceRanges).toEqual([IAP_TCP_FORWARDING_RANGE]);
  });
});
