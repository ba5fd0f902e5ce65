// The whole program under mocks: every resource with its exact type, name and the inputs that
// matter; the outputs' exact text; what a count change or a host-script change touches.
import * as files from "../cloud-init/files";
import { readHostFiles } from "../cloud-init/files";
import { parse } from "yaml";
import { DEFAULTS, VERTEX_CLAUDE_REGIONS, parseConfig } from "../config";
import {
  BASE_CONFIG,
  MOCK_DEPLOY_PUBLIC_KEY,
  MOCK_HOST_KEY,
  MOCK_INSTANCE_ID,
  MOCK_IP,
  MOCK_SUMMARY,
  SECRET_SIG,
  SIG_KEY,
  byType,
  one,
  registeredSoFar,
  runProgram,
  unwrap,
  withProjectDefaults,
  type ProgramRun,
} from "./harness";
import { cloudInitUserData } from "./user-data";

jest.setTimeout(60_000);

const GCP = "gcp:compute";
const input = (r: { inputs: Record<string, unknown> }, key: string) => unwrap(r.inputs[key]);

describe("default configuration", () => {
  let run: ProgramRun;
  beforeAll(async () => {
    run = await runProgram({ ...BASE_CONFIG });
  });

  test("registers exactly these resources", () => {
    expect(run.resources.map((r) => `${r.type}::${r.name}`).sort()).toEqual(
      [
        "agent-host:fleet:AgentFleet::agent-host",
        "agent-host:host:AgentHost::agent-host",
        "command:remote:Command::agent-host-reconcile",
        "command:local:Command::agent-host-hostkey",
        "command:local:Command::agent-host-hostkey-check",
        "command:local:Command::agent-host-hostkey-probe",
        `${GCP}/address:Address::agent-host-ip`,
        `${GCP}/disk:Disk::agent-host-data`,
        `${GCP}/diskResourcePolicyAttachment:DiskResourcePolicyAttachment::agent-host-data-snapshots`,
        `${GCP}/firewall:Firewall::agent-host-ssh`,
        `${GCP}/instance:Instance::agent-host-vm`,
        `${GCP}/resourcePolicy:ResourcePolicy::agent-host-snapshots`,
        "gcp:serviceaccount/account:Account::agent-host-sa",
        "tls:index/privateKey:PrivateKey::deploy-key",
      ].sort(),
    );
  });

  test("a dedicated service account with no project role (nothing on the VM calls a Google API)", () => {
    const sa = one(run, "gcp:serviceaccount/account:Account");
    expect(input(sa, "accountId")).toBe("ah-dev");
    expect(input(sa, "project")).toBe("acme-agents");
    // No Ops Agent or other writer of logs or metrics runs on the VM: no logWriter/metricWriter.
    expect(byType(run, "gcp:projects/iAMMember:IAMMember")).toEqual([]);
  });

  test("the firewall allows tcp:22 from the configured ranges to this VM's service account only", () => {
    const fw = one(run, `${GCP}/firewall:Firewall`);
    expect(unwrap(fw.inputs)).toMatchObject({
      name: "agent-host-dev-ssh",
      network: "default",
      direction: "INGRESS",
      allows: [{ protocol: "tcp", ports: ["22"] }],
      sourceRanges: ["203.0.113.7/32", "35.235.240.0/20"],
      targetServiceAccounts: ["ah-dev@acme-agents.iam.gserviceaccount.com"],
    });
    expect(fw.inputs.targetTags).toBeUndefined();
  });

  test("a static external address in the zone's region", () => {
    expect(unwrap(one(run, `${GCP}/address:Address`).inputs)).toMatchObject({
      name: "agent-host-dev-ip",
      region: "europe-west1",
      addressType: "EXTERNAL",
    });
  });

  test("the data disk is separate, sized and typed from config, and kept on destroy", () => {
    const disk = one(run, `${GCP}/disk:Disk`);
    expect(unwrap(disk.inputs)).toMatchObject({
      name: "agent-host-dev-data",
      zone: "europe-west1-b",
      size: 200,
      type: "pd-balanced",
    });
    expect(disk.options.retainOnDelete).toBe(true);
    // No disk in the project yet: created, not imported.
    expect(disk.options.importId).toBe("");
  });

  test("daily snapshots kept 7 days, attached to the data disk", () => {
    const policy = one(run, `${GCP}/resourcePolicy:ResourcePolicy`);
    expect(unwrap(policy.inputs)).toMatchObject({
      name: "agent-host-dev-snapshots",
      region: "europe-west1",
      snapshotSchedulePolicy: {
        schedule: { dailySchedule: { daysInCycle: 1, startTime: "03:00" } },
        retentionPolicy: { maxRetentionDays: 7, onSourceDiskDelete: "KEEP_AUTO_SNAPSHOTS" },
      },
    });
    expect(
      unwrap(one(run, `${GCP}/diskResourcePolicyAttachment:DiskResourcePolicyAttachment`).inputs),
    ).toMatchObject({
      disk: "agent-host-dev-data",
      name: "agent-host-dev-snapshots",
      zone: "europe-west1-b",
    });
  });

  test("the VM: Shielded, hardened metadata, cloud-init in user-data, data disk by device name", () => {
    const vm = one(run, `${GCP}/instance:Instance`);
    const inputs = unwrap(vm.inputs) as Record<string, any>;
    expect(inputs).toMatchObject({
      name: "agent-host-dev",
      zone: "europe-west1-b",
      machineType: "e2-standard-8",
      allowStoppingForUpdate: true,
      canIpForward: false,
      bootDisk: {
        autoDelete: true,
        initializeParams: { image: "ubuntu-os-cloud/ubuntu-2404-lts-amd64", size: 50 },
      },
      attachedDisks: [
        {
          source: "projects/acme-agents/zones/europe-west1-b/disks/agent-host-dev-data",
          deviceName: "workspaces",
          mode: "READ_WRITE",
        },
      ],
      networkInterfaces: [{ network: "default", accessConfigs: [{ natIp: MOCK_IP }] }],
      serviceAccount: {
        email: "ah-dev@acme-agents.iam.gserviceaccount.com",
        // Attached (the firewall targets it) but with no scope: its tokens reach no API.
        scopes: [],
      },
      shieldedInstanceConfig: {
        enableSecureBoot: true,
        enableVtpm: true,
        enableIntegrityMonitoring: true,
      },
      scheduling: {
        provisioningModel: "STANDARD",
        preemptible: false,
        automaticRestart: true,
        onHostMaintenance: "MIGRATE",
      },
    });
    expect(inputs.metadataStartupScript).toBeUndefined();
    expect(Object.keys(inputs.metadata).sort()).toEqual([
      "block-project-ssh-keys",
      "enable-guest-attributes",
      "enable-oslogin",
      "serial-port-enable",
      "user-data",
      "user-data-encoding",
    ]);
    expect(inputs.metadata["block-project-ssh-keys"]).toBe("TRUE");
    expect(inputs.metadata["serial-port-enable"]).toBe("FALSE");
    // The guest environment publishes the host keys there; the deploy pins one of them.
    expect(inputs.metadata["enable-guest-attributes"]).toBe("TRUE");
    // gzip + base64, as cloud-init's GCE datasource decodes it; the text is renderUserData's.
    expect(inputs.metadata["user-data-encoding"]).toBe("base64");
    expect(cloudInitUserData(inputs.metadata)).toMatch(/^#cloud-config\n/);
    const userData = parse(cloudInitUserData(inputs.metadata));
    expect(userData.users[0].ssh_authorized_keys).toEqual([MOCK_DEPLOY_PUBLIC_KEY]);
    const bootConf = userData.write_files.find(
      (f: { path: string }) => f.path === "/etc/agent-host/host.conf",
    ).content;
    // The count reaches the VM through the reconcile command only (README, Architecture).
    expect(bootConf).not.toMatch(/^(AGENT_COUNT|AGENT_MEMORY_MAX_MB|AGENT_CPU_QUOTA_PERCENT)=/m);
    expect(bootConf).toContain("AGENT_MAX=20\n");
    // A replacement boots from the goal state: an ignored user-data would be the first VM's.
    expect(vm.options.ignoreChanges).toEqual([]);
  });

  test("the reconcile command: admin user, deploy key (secret), dial retries, no Setenv, no delete", () => {
    const cmd = one(run, "command:remote:Command");
    // The private key makes the whole connection secret.
    expect(cmd.inputs.connection).toMatchObject({ [SIG_KEY]: SECRET_SIG });
    expect(unwrap(cmd.inputs.connection)).toEqual({
      host: MOCK_IP,
      port: 22,
      user: "agent-admin",
      privateKey: expect.stringContaining("OPENSSH PRIVATE KEY"),
      // The key the VM published in its guest attributes, as the pin kept it.
      hostKey: MOCK_HOST_KEY,
      dialErrorLimit: 60,
      perDialTimeout: 15,
    });
    expect(cmd.inputs.addPreviousOutputInEnv).toBe(false);
    expect(cmd.inputs.environment).toBeUndefined();
    expect(cmd.inputs.triggers).toBeUndefined();
    expect(cmd.inputs.delete).toBeUndefined();
    expect(cmd.inputs.create).toMatch(
      new RegExp(
        `^sudo /usr/local/lib/agent-host/apply --agents 10 --bundle-sha256 [0-9a-f]{64} --instance-id ${MOCK_INSTANCE_ID}$`,
      ),
    );
    expect(cmd.inputs.update).toBe(cmd.inputs.create);
    const stdin = unwrap(cmd.inputs.stdin) as string;
    expect(stdin.split("\n")[0]).toBe("agent-host-bundle 1");
    expect(stdin).toContain(
      "secret anthropic-api-key -\nsecret git-credentials -\nsecret notify-webhook-url -\nend\n",
    );
    expect(stdin.match(/^file /gm)).toHaveLength(readHostFiles().length);
  });

  test("outputs: exact commands, the count, the host's summary, the deploy key as a secret", () => {
    const ssh = `ssh -i ~/.ssh/agent-host-dev agent-admin@${MOCK_IP}`;
    const values = Object.fromEntries(Object.entries(run.outputs).map(([k, v]) => [k, v.value]));
    expect(values).toEqual({
      instanceName: "agent-host-dev",
      zone: "europe-west1-b",
      publicIp: MOCK_IP,
      sshCommand: ssh,
      attachCommand: `${ssh} -t sudo agentctl attach`,
      agentCommands: Array.from(
        { length: 10 },
        (_, i) => `${ssh} -t sudo agentctl attach ${i + 1}`,
      ),
      statusCommand: `${ssh} sudo agentctl status`,
      dashboardTunnel: `ssh -i ~/.ssh/agent-host-dev -N -L 7420:127.0.0.1:7420 agent-admin@${MOCK_IP}`,
      connectVia: "public-ip",
      sshHostKey: MOCK_HOST_KEY,
      // ssh-keygen -lf of that key prints this (tests/host-key.test.ts checks the function).
      sshHostKeyFingerprint: "SHA256:YqXL+k6tC3aDsPugabbN940oMVi1OZywWsuYn886nX8",
      startCommand:
        "gcloud compute instances start agent-host-dev --zone europe-west1-b --project acme-agents",
      agentCount: 10,
      reconcileSummary: MOCK_SUMMARY,
      // One host: one entry, with the same commands as the one-host outputs above.
      hosts: [
        {
          name: "host-1",
          instanceName: "agent-host-dev",
          address: MOCK_IP,
          zone: "europe-west1-b",
          project: "acme-agents",
          user: "agent-admin",
          identityFile: "~/.ssh/agent-host-dev",
          sshCommand: ssh,
          attachCommand: `${ssh} -t sudo agentctl attach`,
          statusCommand: `${ssh} sudo agentctl status`,
          dashboardTunnel: `ssh -i ~/.ssh/agent-host-dev -N -L 7420:127.0.0.1:7420 agent-admin@${MOCK_IP}`,
          startCommand:
            "gcloud compute instances start agent-host-dev --zone europe-west1-b --project acme-agents",
          agentCount: 10,
          sshHostKey: MOCK_HOST_KEY,
        },
      ],
      deployPrivateKey: expect.stringContaining("OPENSSH PRIVATE KEY"),
    });
    const secretOutputs = Object.entries(run.outputs)
      .filter(([, v]) => v.secret)
      .map(([k]) => k);
    expect(secretOutputs).toEqual(["deployPrivateKey"]);
  });

  test("no warnings for a sound configuration", () => {
    expect(run.warnings).toEqual([]);
    expect(run.invokes).toEqual([
      "gcp:compute/getDisk:getDisk",
      "gcp:compute/getInstance:getInstance",
      "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes",
    ]);
    expect(run.invokeArgs[2].inputs).toEqual({
      project: "acme-agents",
      zone: "europe-west1-b",
      name: "agent-host-dev",
      queryPath: "hostkeys/",
    });
    expect(run.invokeArgs[1].inputs).toEqual({
      project: "acme-agents",
      zone: "europe-west1-b",
      name: "agent-host-dev",
    });
  });
});

describe("variants", () => {
  test("spot: stopped on preemption, not deleted", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:spot": "true" });
    expect(unwrap(one(run, `${GCP}/instance:Instance`).inputs.scheduling)).toEqual({
      provisioningModel: "SPOT",
      preemptible: true,
      automaticRestart: false,
      onHostMaintenance: "TERMINATE",
      instanceTerminationAction: "STOP",
    });
  });

  test("snapshotRetentionDays 0 creates no schedule", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:snapshotRetentionDays": "0" });
    expect(byType(run, `${GCP}/resourcePolicy:ResourcePolicy`)).toHaveLength(0);
    expect(
      byType(run, `${GCP}/diskResourcePolicyAttachment:DiskResourcePolicyAttachment`),
    ).toHaveLength(0);
  });

  test("deleteDataDiskOnDestroy lets destroy delete the disk", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:deleteDataDiskOnDestroy": "true" });
    expect(one(run, `${GCP}/disk:Disk`).options.retainOnDelete).toBe(false);
  });

  test("a given deploy key is used instead of a generated one", async () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\ngiven\n-----END OPENSSH PRIVATE KEY-----";
    const run = await runProgram(
      { ...BASE_CONFIG, "agent-host:deployPrivateKey": key },
      { secretKeys: ["agent-host:deployPrivateKey"] },
    );
    expect(byType(run, "tls:index/privateKey:PrivateKey")).toHaveLength(0);
    expect(
      run.invokeArgs.find((i) => i.token === "tls:index/getPublicKey:getPublicKey")?.inputs,
    ).toEqual({
      privateKeyOpenssh: key,
    });
    expect(
      (unwrap(one(run, "command:remote:Command").inputs.connection) as Record<string, unknown>)
        .privateKey,
    ).toBe(key);
  });

  test("sshAuthorizedKeys join the deploy key on the admin user", async () => {
    const person =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersonPersonPersonPersonPersonPersonPerso alice@laptop";
    const run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:sshAuthorizedKeys": JSON.stringify([person]),
    });
    const metadata = unwrap(one(run, `${GCP}/instance:Instance`).inputs.metadata) as Record<
      string,
      string
    >;
    const userData = parse(cloudInitUserData(metadata));
    expect(userData.users[0].ssh_authorized_keys).toEqual([MOCK_DEPLOY_PUBLIC_KEY, person]);
  });

  test("a known-bad machine type warns but deploys", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:machineType": "m3-ultramem-32" });
    expect(run.warnings).toEqual([
      "machineType m3-ultramem-32 is not one the stack knows; agentCount is not checked against its memory (1.5 GiB per agent plus 2 GiB for the host is the budget).",
    ]);
    expect(byType(run, `${GCP}/instance:Instance`)).toHaveLength(1);
  });

  test("0.0.0.0/0 written explicitly deploys, with a warning", async () => {
    const run = await runProgram({ ...BASE_CONFIG, "agent-host:sshSourceRanges": '["0.0.0.0/0"]' });
    expect(run.warnings).toEqual([
      "sshSourceRanges includes 0.0.0.0/0: SSH on the VM is open to the whole internet (key-only logins still apply). Prefer your own range or IAP's 35.235.240.0/20.",
    ]);
    expect(unwrap(one(run, `${GCP}/firewall:Firewall`).inputs.sourceRanges)).toEqual(["0.0.0.0/0"]);
  });
});

/** Inputs of every resource, keyed by type::name, secrets unwrapped. */
function inputsByResource(run: ProgramRun): Map<string, unknown> {
  return new Map(run.resources.map((r) => [`${r.type}::${r.name}`, unwrap(r.inputs)]));
}

function changedResources(a: ProgramRun, b: ProgramRun): string[] {
  const left = inputsByResource(a);
  const right = inputsByResource(b);
  expect([...right.keys()].sort()).toEqual([...left.keys()].sort());
  return [...left.keys()]
    .filter((key) => JSON.stringify(left.get(key)) !== JSON.stringify(right.get(key)))
    .sort();
}

/** The VM's inputs without user-data (updated in place: the provider's setMetadata). */
function vmWithoutUserData(run: ProgramRun): unknown {
  const inputs = unwrap(one(run, `${GCP}/instance:Instance`).inputs) as Record<string, any>;
  const { "user-data": _userData, ...metadata } = inputs.metadata;
  return { ...inputs, metadata };
}

describe("day-2 changes touch only the reconcile command (and its host key probe)", () => {
  test("agentCount 10 → 12", async () => {
    const ten = await runProgram({ ...BASE_CONFIG, "agent-host:agentCount": "10" });
    const twelve = await runProgram({ ...BASE_CONFIG, "agent-host:agentCount": "12" });
    const changed = changedResources(ten, twelve);
    // Nothing of the VM follows the count, user-data included: only the command changes, and
    // the probe that runs before it whenever it runs (scripts/host-key-probe).
    expect(changed).toEqual([
      "command:local:Command::agent-host-hostkey-probe",
      "command:remote:Command::agent-host-reconcile",
    ]);
    const cmd = one(twelve, "command:remote:Command");
    expect(cmd.inputs.create).toContain("--agents 12 ");
    expect(unwrap(cmd.inputs.stdin)).not.toEqual(
      unwrap(one(ten, "command:remote:Command").inputs.stdin),
    );
  });

  test("a changed host script", async () => {
    const before = await runProgram({ ...BASE_CONFIG });
    const original = files.readHostFiles;
    const spy = jest
      .spyOn(files, "readHostFiles")
      .mockImplementation((root?: string) =>
        original(root).map((f) =>
          f.source === "host/agentctl" ? { ...f, content: `${f.content}\n# changed\n` } : f,
        ),
      );
    try {
      const after = await runProgram({ ...BASE_CONFIG });
      // The command ships it now; the VM's user-data follows in place (no ForceNew on
      // metadata), so a later replacement boots the current file too.
      expect(changedResources(before, after)).toEqual([
        "command:local:Command::agent-host-hostkey-probe",
        "command:remote:Command::agent-host-reconcile",
        `${GCP}/instance:Instance::agent-host-vm`,
      ]);
      expect(vmWithoutUserData(after)).toEqual(vmWithoutUserData(before));
      const userData = (r: ProgramRun) =>
        cloudInitUserData(
          unwrap(one(r, `${GCP}/instance:Instance`).inputs.metadata) as Record<string, string>,
        );
      const agentctl = (r: ProgramRun) => {
        const written = (
          parse(userData(r)) as { write_files: { path: string; content: string }[] }
        ).write_files.find((f) => f.path === "/usr/local/bin/agentctl");
        return written?.content ?? "";
      };
      expect(agentctl(after)).toContain("# changed");
      expect(agentctl(before)).not.toContain("# changed");
      expect(one(after, "command:remote:Command").inputs.create).not.toEqual(
        one(before, "command:remote:Command").inputs.create,
      );
    } finally {
      spy.mockRestore();
    }
  });

  test("nothing changes between two runs of the same config (deterministic)", async () => {
    const a = await runProgram({ ...BASE_CONFIG });
    const b = await runProgram({ ...BASE_CONFIG });
    expect(changedResources(a, b)).toEqual([]);
  });
});

describe("a data disk that outlived the stack (pulumi destroy keeps it)", () => {
  test("is adopted with the import option, by the ID the provider gives a disk", async () => {
    const run = await runProgram(
      { ...BASE_CONFIG },
      { existingDisk: { size: 200, type: "pd-balanced" } },
    );
    const disk = one(run, `${GCP}/disk:Disk`);
    expect(disk.options.importId).toBe(
      "projects/acme-agents/zones/europe-west1-b/disks/agent-host-dev-data",
    );
    // The inputs are the ones the stack would create it with: an import then diffs as usual.
    expect(unwrap(disk.inputs)).toMatchObject({ name: "agent-host-dev-data", size: 200 });
    expect(disk.options.retainOnDelete).toBe(true);
  });

  test("a larger configured size is kept in the inputs (the engine grows it after the import)", async () => {
    const run = await runProgram(
      { ...BASE_CONFIG, "agent-host:dataDiskSizeGb": "300" },
      { existingDisk: { size: 200, type: "pd-balanced" } },
    );
    expect(unwrap(one(run, `${GCP}/disk:Disk`).inputs.size)).toBe(300);
  });
});

describe("a VM that is not running", () => {
  const start =
    "gcloud compute instances start agent-host-dev --zone europe-west1-b --project acme-agents";

  test.each(["TERMINATED", "STOPPED", "STOPPING"])(
    "%s: up stops before registering anything, saying how to start it",
    async (status) => {
      const error = await runProgram({ ...BASE_CONFIG }, { instanceStatus: status }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toContain(`The VM agent-host-dev is ${status}`);
      expect(error?.message).toContain(`Start it with: ${start}`);
      expect(registeredSoFar()).toEqual([]);
    },
  );

  test("SUSPENDED: the message says resume", async () => {
    await expect(runProgram({ ...BASE_CONFIG }, { instanceStatus: "SUSPENDED" })).rejects.toThrow(
      "Start it with: gcloud compute instances resume agent-host-dev --zone europe-west1-b --project acme-agents, then run pulumi up again.",
    );
  });

  test.each(["RUNNING", "PROVISIONING", "STAGING"])("%s: up goes on", async (status) => {
    const run = await runProgram({ ...BASE_CONFIG }, { instanceStatus: status });
    expect(byType(run, "command:remote:Command")).toHaveLength(1);
    expect(run.warnings).toEqual([]);
  });

  test("scripts/destroy.sh's targeted up (AGENT_HOST_ALLOW_STOPPED_VM=1) warns instead", async () => {
    process.env.AGENT_HOST_ALLOW_STOPPED_VM = "1";
    try {
      const run = await runProgram({ ...BASE_CONFIG }, { instanceStatus: "TERMINATED" });
      expect(run.warnings).toEqual([expect.stringContaining(`Start it with: ${start}`)]);
    } finally {
      delete process.env.AGENT_HOST_ALLOW_STOPPED_VM;
    }
  });
});

describe("accepted shapes worth a second look", () => {
  test("a PKCS#8 deploy key is accepted", async () => {
    const key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----";
    const run = await runProgram(
      { ...BASE_CONFIG, "agent-host:deployPrivateKey": key },
      { secretKeys: ["agent-host:deployPrivateKey"] },
    );
    expect(byType(run, "tls:index/privateKey:PrivateKey")).toHaveLength(0);
    expect(
      run.invokeArgs.find((i) => i.token === "tls:index/getPublicKey:getPublicKey")?.inputs,
    ).toEqual({
      privateKeyPem: key,
    });
  });

  test("a range wider than /8 deploys, with a warning", async () => {
    const run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:sshSourceRanges": '["0.0.0.0/1","128.0.0.0/1"]',
    });
    expect(run.warnings).toEqual([
      "sshSourceRanges includes 0.0.0.0/1, more than 16 million addresses: SSH is open to a large part of the internet. Prefer your own range or IAP's 35.235.240.0/20.",
      "sshSourceRanges includes 128.0.0.0/1, more than 16 million addresses: SSH is open to a large part of the internet. Prefer your own range or IAP's 35.235.240.0/20.",
    ]);
  });
});

describe("as the Pulumi CLI runs it (Pulumi.yaml defaults applied)", () => {
  test("every default is accepted and changes nothing the program registers", async () => {
    const bare = await runProgram({ ...BASE_CONFIG });
    const cli = await runProgram(withProjectDefaults({ ...BASE_CONFIG }));
    expect(cli.warnings).toEqual([]);
    expect(changedResources(bare, cli)).toEqual([]);
  });

  test('an unset optional secret is its "" default, not a plain-text secret', async () => {
    const config = withProjectDefaults({ ...BASE_CONFIG });
    expect(config["agent-host:anthropicApiKey"]).toBe("");
    const run = await runProgram(config, { secretKeys: [] });
    expect(unwrap(one(run, "command:remote:Command").inputs.stdin)).toContain(
      "secret anthropic-api-key -\n",
    );
  });
});

describe("sign-in providers (issue 14)", () => {
  const IAM = "gcp:projects/iAMMember:IAMMember";
  const SA_MEMBER = "serviceAccount:ah-dev@acme-agents.iam.gserviceaccount.com";
  /** The host.conf the reconcile command ships (the bundle's conf line). */
  const shippedHostConf = (run: ProgramRun): string => {
    const stdin = unwrap(one(run, "command:remote:Command").inputs.stdin) as string;
    const line = stdin.split("\n").find((l) => l.startsWith("conf "));
    return Buffer.from((line ?? "").slice("conf ".length), "base64").toString("utf8");
  };
  const confKeys = (conf: string, keys: string[]) =>
    conf
      .split("\n")
      .filter((l) => keys.some((k) => l.startsWith(`${k}=`)))
      .sort();
  const CLAUDE_KEYS = [
    "CLAUDE_PROVIDER",
    "VERTEX_PROJECT_ID",
    "VERTEX_REGION",
    "CLAUDE_MODEL",
    "ANTHROPIC_BASE_URL",
    "VERTEX_BASE_URL",
  ];

  test("anthropic (the default): no Vertex role, no cloud-platform scope, CLAUDE_PROVIDER=anthropic only", async () => {
    const run = await runProgram({ ...BASE_CONFIG });
    const vertexGrants = byType(run, IAM).filter(
      (r) => input(r, "role") === "roles/aiplatform.user",
    );
    expect(vertexGrants).toEqual([]);
    const scopes = (
      input(one(run, `${GCP}/instance:Instance`), "serviceAccount") as {
        scopes: string[];
      }
    ).scopes;
    expect(scopes).not.toContain("https://www.googleapis.com/auth/cloud-platform");
    expect(confKeys(shippedHostConf(run), CLAUDE_KEYS)).toEqual(["CLAUDE_PROVIDER=anthropic"]);
  });

  test("vertex: roles/aiplatform.user for the VM's own service account, the cloud-platform scope alone, the project and region in host.conf", async () => {
    const run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexRegion": "us-east5",
      "agent-host:claudeModel": "claude-sonnet-4-5@20250929",
    });
    const grant = byType(run, IAM).find((r) => r.name === "agent-host-aiplatform-user");
    expect(grant && unwrap(grant.inputs)).toEqual({
      project: "acme-agents",
      role: "roles/aiplatform.user",
      member: SA_MEMBER,
    });
    expect(
      byType(run, IAM).filter((r) => input(r, "role") === "roles/aiplatform.user"),
    ).toHaveLength(1);
    expect(input(one(run, `${GCP}/instance:Instance`), "serviceAccount")).toEqual({
      email: "ah-dev@acme-agents.iam.gserviceaccount.com",
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    expect(confKeys(shippedHostConf(run), CLAUDE_KEYS)).toEqual([
      "CLAUDE_MODEL=claude-sonnet-4-5@20250929",
      "CLAUDE_PROVIDER=vertex",
      "VERTEX_PROJECT_ID=acme-agents",
      "VERTEX_REGION=us-east5",
    ]);
    // Nothing secret travels: the API key line of the bundle is empty.
    expect(unwrap(one(run, "command:remote:Command").inputs.stdin)).toContain(
      "secret anthropic-api-key -\n",
    );
  });

  test("vertex with a Private Service Connect endpoint, anthropic with a gateway", async () => {
    const vertex = await runProgram({
      ...BASE_CONFIG,
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexBaseUrl": "https://us-east5-aiplatform-psc.p.googleapis.com/v1/",
    });
    expect(confKeys(shippedHostConf(vertex), CLAUDE_KEYS)).toEqual([
      "CLAUDE_PROVIDER=vertex",
      "VERTEX_BASE_URL=https://us-east5-aiplatform-psc.p.googleapis.com/v1",
      "VERTEX_PROJECT_ID=acme-agents",
      "VERTEX_REGION=global",
    ]);
    const gateway = await runProgram({
      ...BASE_CONFIG,
      "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic",
      "agent-host:claudeModel": "sonnet",
    });
    expect(confKeys(shippedHostConf(gateway), CLAUDE_KEYS)).toEqual([
      "ANTHROPIC_BASE_URL=https://llm.acme.example/anthropic",
      "CLAUDE_MODEL=sonnet",
      "CLAUDE_PROVIDER=anthropic",
    ]);
    expect(gateway.warnings).toEqual([]);
  });

  test("a vertexBaseUrl without /v1 is accepted with a warning", async () => {
    const run = await runProgram({
      ...BASE_CONFIG,
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexBaseUrl": "https://vertex-psc.example.internal",
    });
    expect(run.warnings).toEqual([
      "vertexBaseUrl https://vertex-psc.example.internal does not end in /v1: Claude Code appends /projects/<project>/locations/<region>/publishers/anthropic/models/<model>:streamRawPredict to it, and Vertex's paths start with /v1.",
    ]);
  });

  test("accepted shapes: a gateway on the VM itself, model aliases, every Vertex location", () => {
    const claude = (extra: Record<string, string>) =>
      parseConfig({ ...BASE_CONFIG, ...extra }).config.claude;
    expect(claude({})).toEqual({ provider: "anthropic" });
    expect(claude({ "agent-host:anthropicBaseUrl": "http://127.0.0.1:4000/" })).toEqual({
      provider: "anthropic",
      anthropicBaseUrl: "http://127.0.0.1:4000",
    });
    expect(claude({ "agent-host:claudeModel": "sonnet[1m]" }).model).toBe("sonnet[1m]");
    // Behind a gateway the model name is the gateway's business.
    expect(
      claude({
        "agent-host:anthropicBaseUrl": "https://llm.acme.example",
        "agent-host:claudeModel": "claude-sonnet-4-5@20250929",
      }).model,
    ).toBe("claude-sonnet-4-5@20250929");
    for (const region of VERTEX_CLAUDE_REGIONS) {
      expect(
        claude({ "agent-host:claudeProvider": "vertex", "agent-host:vertexRegion": region }),
      ).toEqual({ provider: "vertex", vertexProjectId: "acme-agents", vertexRegion: region });
    }
  });

  test("every Vertex location is one Claude Code 2.1.331 takes (it silently uses us-east5 otherwise)", () => {
    // The pinned binary reads CLOUD_ML_REGION only if it matches /^[a-z]{2,}(?:-[a-z0-9]+){0,4}$/i
    // and falls back to us-east5 (strings of @anthropic-ai/claude-code-linux-x64 2.1.331).
    for (const region of VERTEX_CLAUDE_REGIONS) {
      expect(region).toMatch(/^[a-z]{2,}(?:-[a-z0-9]+){0,4}$/i);
    }
    expect(DEFAULTS.vertexRegion).toBe("global");
  });

  test("auto and manual permission modes reach host.conf", async () => {
    for (const mode of ["auto", "manual"]) {
      const run = await runProgram({ ...BASE_CONFIG, "agent-host:agentPermissionMode": mode });
      expect(shippedHostConf(run)).toContain(`\nPERMISSION_MODE=${mode}\n`);
    }
  });
});
