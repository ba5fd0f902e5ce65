// The MITM test (issue 23, point 6), on loopback. The deploy's SSH leg, exactly as the mocked
// program registers it, against a real sshd holding the VM's host key, then against a second sshd
// with another host key that has taken the address. Both paths the stack has:
//
// - connectVia public-ip: the remote.Command's `connection` (hostKey from the pin, the deploy key,
//   user, timeouts), its command and its stdin go to tests/fixtures/pulumi-command-dial, which is
//   pulumi-command v1.2.1's own connection code (SSHConfig: ssh.FixedHostKey + HostKeyAlgorithms;
//   Dial; the session's Run with stdin) built against golang.org/x/crypto/ssh.
// - connectVia iap: the local.Command's interpreter (bash -c scripts/iap-ssh), command,
//   environment and stdin, run as the provider runs a local command, with OpenSSH's ssh and
//   tests/fixtures/gcloud-bin/gcloud as the tunnel (a stand-in enforcing start-iap-tunnel's
//   argument rules; IAP's own permission check is not modelled).
//
// "The address" is a TCP relay on 127.0.0.1 that forwards to whichever sshd currently answers for
// the VM and counts the bytes the client sent. Each sshd runs with LogLevel DEBUG3, and its
// ForceCommand stores what the login received on stdin: the impostor's log must show no login
// and no session, its received file must not exist, and the client must have sent it fewer bytes
// than the bundle holds. The same observation with the pin removed (last test) shows the
// impostor getting the whole bundle, so the check is what stops it.
//
// Before the reconcile, the program's host key probe (scripts/host-key-probe, the
// `agent-host-hostkey-probe` local.Command) runs as the provider runs it, on the same path: the
// relay's address for public-ip, the gcloud stand-in for iap. `deploy` runs the probe and the
// reconcile in the order the engine allows: a step starts once the steps it depends on (the
// dependencies the SDK sent with it) have succeeded, steps that do not depend on each other start
// together, and a failure stops the steps not yet started (pkg/resource/deploy/step_executor.go).
// With an impostor at the address the probe refuses, naming both fingerprints as `ssh-keygen -lf`
// prints them, and the reconcile never starts: the impostor's sshd logs one connection (the
// probe's key exchange), no user authentication request, and receives nothing.
//
// What differs from the VM: the login is root on this machine (the program's agent-admin does
// not exist here; whom the client logs in as does not enter the host key check), and the host
// and port are the relay's.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { fingerprint } from "../components/host-key";
import { BASE_CONFIG, MOCK_INSTANCE_ID, one, runProgram, unwrap, type ProgramRun } from "./harness";
import { unavailableSuite } from "./real-suite";
import { freePort, waitFor } from "./support";

const REPO = path.resolve(__dirname, "..");
const DIAL_SOURCE = path.join(REPO, "tests/fixtures/pulumi-command-dial");
const GCLOUD_BIN = path.join(REPO, "tests/fixtures/gcloud-bin");
const API_KEY_CANARY = `sk-ant-api03-PINCANARY${process.pid}x${Date.now()}abcdefghij`;
// Debian's golang-golang-x-crypto-dev installs x/crypto here for GOPATH builds.
const GOPATH = "/usr/share/gocode";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const TOOLS = ["/usr/sbin/sshd", "ssh", "ssh-keygen", "go", "shellcheck"];
const haveTools =
  TOOLS.every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0) &&
  fs.existsSync(path.join(GOPATH, "src/golang.org/x/crypto/ssh/client.go"));
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite(
        `host-key-pin tests skipped: they need root and ${TOOLS.join(", ")} with x/crypto (apt-get install openssh-server openssh-client golang-go golang-golang-x-crypto-dev)`,
      );

let BASE = "";
let DIAL = "";

interface Keypair {
  privateKey: string;
  publicKey: string;
}

function keygen(file: string): Keypair {
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
  if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
  return {
    privateKey: fs.readFileSync(file, "utf8"),
    publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim(),
  };
}

/** A real sshd on 127.0.0.1:port with `hostKeyFile`; its login stores stdin in `received`. */
class Sshd {
  process?: ChildProcess;
  port = 0;
  readonly log: string;
  readonly received: string;
  constructor(
    readonly name: string,
    readonly hostKeyFile: string,
  ) {
    this.log = path.join(BASE, `${name}.log`);
    this.received = path.join(BASE, `${name}.received`);
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const receive = path.join(BASE, `${this.name}-receive`);
    fs.writeFileSync(
      receive,
      `#!/bin/sh\n# What the login got on stdin, and the command it was asked to run.\ncat >'${this.received}'\nprintf '%s\\n' "$SSH_ORIGINAL_COMMAND" >'${this.received}.command'\necho '{"received":true}'\n`,
      { mode: 0o755 },
    );
    const config = path.join(BASE, `${this.name}.sshd_config`);
    fs.writeFileSync(
      config,
      [
        `Port ${this.port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${this.hostKeyFile}`,
        `AuthorizedKeysFile ${path.join(BASE, "authorized_keys")}`,
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        `ForceCommand ${receive}`,
        `PidFile ${path.join(BASE, `${this.name}.pid`)}`,
        "LogLevel DEBUG3",
        "",
      ].join("\n"),
    );
    const log = fs.openSync(this.log, "a");
    this.process = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], {
      stdio: ["ignore", log, log],
    });
    fs.closeSync(log);
    await waitFor(
      `${this.name} sshd listening`,
      () =>
        fs
          .readFileSync(this.log, "utf8")
          .includes(`Server listening on 127.0.0.1 port ${this.port}`),
      10_000,
    );
  }

  stop(): void {
    this.process?.kill("SIGTERM");
  }

  logText(): string {
    return fs.readFileSync(this.log, "utf8");
  }
}

/** The VM's address: forwards to whichever sshd answers for it now; counts the client's bytes. */
class Address {
  server?: net.Server;
  port = 0;
  backend = 0;
  clientBytes = 0;

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect({ host: "127.0.0.1", port: this.backend });
      client.on("data", (chunk: Buffer) => {
        this.clientBytes += chunk.length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end);
      upstream.on("error", end);
      client.on("close", end);
      upstream.on("close", end);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  answerWith(sshd: Sshd): void {
    this.backend = sshd.port;
    this.clientBytes = 0;
  }

  stop(): void {
    this.server?.close();
  }
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with stdin, asynchronously: the relay lives in this process's event loop. */
function runWith(
  cmd: string,
  args: string[],
  stdin: string,
  env?: NodeJS.ProcessEnv,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
    // A client that stops reading stdin (refused before sending) must not fail the test.
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

let vmKey: Keypair;
let impostorKey: Keypair;
let deployKey: Keypair;
let real: Sshd;
let impostor: Sshd;
const address = new Address();
let publicIpRun: ProgramRun;
let iapRun: ProgramRun;

/** The VM's guest attributes: what the guest environment publishes for the real host key. */
function guestAttributesOf(key: Keypair) {
  const [type, blob] = key.publicKey.split(" ");
  return [{ namespace: "hostkeys", key: type, value: blob }];
}

/** The remote.Command's inputs, as the program registered them, addressed to the relay. */
function remoteRequest(run: ProgramRun, hostKey: "pinned" | "none" = "pinned"): string {
  const inputs = unwrap(one(run, "command:remote:Command").inputs) as Record<string, any>;
  const connection = {
    ...inputs.connection,
    host: "127.0.0.1",
    port: address.port,
    user: "root",
    dialErrorLimit: 1,
  };
  if (hostKey === "none") delete connection.hostKey;
  return JSON.stringify({ connection, command: inputs.create, stdin: inputs.stdin });
}

/** The resource of this type and name the program registered. */
function resource(run: ProgramRun, type: string, name: string): Record<string, any> {
  const found = run.resources.filter((r) => r.type === type && r.name === name);
  if (found.length !== 1) throw new Error(`expected one ${type} ${name}, found ${found.length}`);
  return unwrap(found[0].inputs) as Record<string, any>;
}

/**
 * Runs the iap reconcile as pulumi-command's local provider does (local/commandOutputs.go, run):
 * interpreter + [command], the process environment plus `environment`, stdin. The tunnel is the
 * gcloud stand-in, first on PATH, forwarding the VM's name to the relay.
 */
function runIapReconcile(run: ProgramRun): Promise<Run> {
  const inputs = resource(run, "command:local:Command", "agent-host-reconcile");
  const [interpreter, ...args] = inputs.interpreter as string[];
  const env = {
    ...process.env,
    ...(inputs.environment as Record<string, string>),
    // Root logs in here (see the header); everything else is the program's.
    AGENT_HOST_USER: "root",
    AGENT_HOST_IAP_ATTEMPTS: "2",
    PATH: `${GCLOUD_BIN}:${process.env.PATH}`,
    GCLOUD_STANDIN_INSTANCES: JSON.stringify({ [inputs.environment.AGENT_HOST_VM]: address.port }),
  };
  return runWith(interpreter, [...args, inputs.create], inputs.stdin, env);
}

const PROBE = "agent-host-hostkey-probe";

/**
 * Runs the probe as pulumi-command's local provider does (interpreter + [command], the process
 * environment plus `environment`, stdin), addressed to the relay (public-ip: the address and port
 * are the only values replaced) or through the gcloud stand-in (iap).
 */
function runProbe(run: ProgramRun): Promise<Run> {
  const inputs = resource(run, "command:local:Command", PROBE);
  const [interpreter, ...args] = inputs.interpreter as string[];
  const environment = inputs.environment as Record<string, string>;
  const path =
    environment.AGENT_HOST_CONNECT_VIA === "iap"
      ? {
          PATH: `${GCLOUD_BIN}:${process.env.PATH}`,
          GCLOUD_STANDIN_INSTANCES: JSON.stringify({ [environment.AGENT_HOST_VM]: address.port }),
        }
      : { AGENT_HOST_ADDRESS: "127.0.0.1", AGENT_HOST_SSH_PORT: String(address.port) };
  const env = { ...process.env, ...environment, ...path, AGENT_HOST_PROBE_ATTEMPTS: "2" };
  return runWith(interpreter, [...args, inputs.create], inputs.stdin ?? "", env);
}

interface Deployment {
  probe: Run;
  /** undefined: the reconcile never started. */
  reconcile?: Run;
}

/**
 * The probe and the reconcile in the engine's order (see the header): sequential when the
 * reconcile's registration names the probe among its dependencies, side by side otherwise.
 */
async function deploy(
  run: ProgramRun,
  reconcile: () => Promise<Run>,
  dependencies?: string[],
): Promise<Deployment> {
  const probeUrn = run.resources.find((r) => r.name === PROBE)!.urn;
  const recorded = run.resources.find((r) => r.name === "agent-host-reconcile")!;
  if ((dependencies ?? recorded.options.dependencies).includes(probeUrn)) {
    const probe = await runProbe(run);
    return probe.code === 0 ? { probe, reconcile: await reconcile() } : { probe };
  }
  const [probe, rec] = await Promise.all([runProbe(run), reconcile()]);
  return { probe, reconcile: rec };
}

/** `ssh-keygen -lf <file>`'s fingerprint, the form the refusal must name. */
function keygenFingerprint(file: string): string {
  const r = spawnSync("ssh-keygen", ["-lf", file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ssh-keygen -lf ${file}: ${r.stderr}`);
  return r.stdout.split(" ")[1];
}

/** How many connections an sshd logged since `from` (a log offset), and its log since then. */
function connectionsSince(sshd: Sshd, from: number): { count: number; log: string } {
  const log = sshd.logText().slice(from);
  return { count: (log.match(/^Connection from 127\.0\.0\.1 port \d+/gm) ?? []).length, log };
}

/** The bundle the program sends (the remote.Command's stdin). */
function bundleOf(run: ProgramRun): string {
  return (unwrap(one(run, "command:remote:Command").inputs) as Record<string, any>).stdin;
}

/** Nothing reached the impostor: no login, no session, no stdin, fewer bytes than the bundle. */
function expectImpostorGotNothing(bundleBytes: number): void {
  const log = impostor.logText();
  expect(log).not.toMatch(/Accepted publickey/);
  expect(log).not.toMatch(/session_new|server_input_channel_open|Starting session/);
  expect(fs.existsSync(impostor.received)).toBe(false);
  // The key exchange alone (a few KB) against the bundle (the host files: hundreds of KB).
  expect(address.clientBytes).toBeGreaterThan(0);
  expect(address.clientBytes * 20).toBeLessThan(bundleBytes);
}

suite("the deploy connects only to the VM whose host key it pinned", () => {
  beforeAll(async () => {
    BASE = fs.mkdtempSync("/var/lib/agent-host-pin-test-");
    fs.chmodSync(BASE, 0o755);
    vmKey = keygen(path.join(BASE, "vm_host_ed25519_key"));
    impostorKey = keygen(path.join(BASE, "impostor_host_ed25519_key"));
    deployKey = keygen(path.join(BASE, "deploy_key"));
    fs.writeFileSync(path.join(BASE, "authorized_keys"), `${deployKey.publicKey}\n`, {
      mode: 0o600,
    });
    DIAL = path.join(BASE, "pulumi-command-dial");
    const build = spawnSync("go", ["build", "-o", DIAL, "."], {
      cwd: DIAL_SOURCE,
      encoding: "utf8",
      env: {
        ...process.env,
        GO111MODULE: "off",
        GOPATH,
        GOCACHE: path.join(BASE, "gocache"),
        GOFLAGS: "",
      },
      timeout: 120_000,
    });
    if (build.status !== 0) throw new Error(`go build: ${build.stderr}`);
    real = new Sshd("vm", path.join(BASE, "vm_host_ed25519_key"));
    impostor = new Sshd("impostor", path.join(BASE, "impostor_host_ed25519_key"));
    await real.start();
    await impostor.start();
    await address.start();
    const keys = {
      generatedPrivateKey: deployKey.privateKey,
      generatedPublicKey: deployKey.publicKey,
    };
    publicIpRun = await runProgram(
      { ...BASE_CONFIG, "agent-host:anthropicApiKey": API_KEY_CANARY },
      {
        secretKeys: ["agent-host:anthropicApiKey"],
        guestAttributes: guestAttributesOf(vmKey),
        ...keys,
      },
    );
    iapRun = await runProgram(
      {
        ...BASE_CONFIG,
        "agent-host:sshSourceRanges": JSON.stringify(["35.235.240.0/20"]),
        "agent-host:connectVia": "iap",
        "agent-host:anthropicApiKey": API_KEY_CANARY,
      },
      {
        secretKeys: ["agent-host:anthropicApiKey"],
        guestAttributes: guestAttributesOf(vmKey),
        ...keys,
      },
    );
  }, 180_000);

  afterAll(() => {
    real?.stop();
    impostor?.stop();
    address.stop();
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
  });

  test("the program pins the key the VM published, on both paths", () => {
    const remote = unwrap(one(publicIpRun, "command:remote:Command").inputs) as Record<string, any>;
    expect(remote.connection.hostKey).toBe(vmKey.publicKey);
    const iap = resource(iapRun, "command:local:Command", "agent-host-reconcile");
    expect(iap.environment.AGENT_HOST_HOST_KEY).toBe(vmKey.publicKey);
    expect(fingerprint(vmKey.publicKey)).not.toBe(fingerprint(impostorKey.publicKey));
  });

  test("public-ip: pulumi-command's connection delivers the bundle to the real VM", async () => {
    address.answerWith(real);
    const r = await runWith(DIAL, [], remoteRequest(publicIpRun));
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toBe('{"received":true}\n');
    expect(fs.readFileSync(real.received, "utf8")).toBe(bundleOf(publicIpRun));
    expect(fs.readFileSync(real.received, "utf8")).toContain(
      Buffer.from(API_KEY_CANARY).toString("base64"),
    );
    expect(fs.readFileSync(`${real.received}.command`, "utf8")).toMatch(
      new RegExp(
        `^sudo /usr/local/lib/agent-host/apply --agents 10 .* --instance-id ${MOCK_INSTANCE_ID}\n$`,
      ),
    );
    fs.rmSync(real.received);
  });

  test("public-ip: with an impostor at the address, the handshake fails and nothing is sent", async () => {
    address.answerWith(impostor);
    const bundle = bundleOf(publicIpRun);
    const r = await runWith(DIAL, [], remoteRequest(publicIpRun));
    expect(r.code).toBe(1);
    // x/crypto's FixedHostKey: the provider's error, retried dialErrorLimit times.
    expect(r.stderr).toContain("ssh: handshake failed: ssh: host key mismatch");
    if (process.env.SHOW_REFUSALS) console.log(r.stderr, address.clientBytes, bundle.length);
    expect(r.stdout).toBe("");
    expectImpostorGotNothing(bundle.length);
  });

  test("iap: the reconcile delivers the bundle (and not the deploy key) to the real VM", async () => {
    address.answerWith(real);
    const r = await runIapReconcile(iapRun);
    // The test's sshd runs at LogLevel DEBUG3 and tells the client some of it; nothing else.
    const stderr = r.stderr.replace(/^debug\d: [^\n]*\n/gm, "");
    expect({ code: r.code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toBe('{"received":true}\n');
    const received = fs.readFileSync(real.received, "utf8");
    expect(received.split("\n")[0]).toBe("agent-host-bundle 1");
    expect(received).not.toContain("PRIVATE KEY");
    const stdin = resource(iapRun, "command:local:Command", "agent-host-reconcile").stdin as string;
    expect(stdin.endsWith(received)).toBe(true);
    fs.rmSync(real.received);
  });

  test("iap: with an impostor at the address, the reconcile refuses and names both fingerprints", async () => {
    address.answerWith(impostor);
    const stdin = resource(iapRun, "command:local:Command", "agent-host-reconcile").stdin as string;
    const r = await runIapReconcile(iapRun);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe("");
    // ssh names the key the impostor sent; the script names the pinned one.
    expect(r.stderr).toContain(fingerprint(impostorKey.publicKey));
    expect(r.stderr).toContain(
      `did not prove the pinned host key ${fingerprint(vmKey.publicKey)}: nothing was sent`,
    );
    expectImpostorGotNothing(stdin.length);
    if (process.env.SHOW_REFUSALS) console.log(r.stderr);
  });

  test.each(["public-ip", "iap"] as const)(
    "%s: the probe proves the real VM's key, then the reconcile delivers",
    async (via) => {
      address.answerWith(real);
      const mark = real.logText().length;
      const run = via === "iap" ? iapRun : publicIpRun;
      const reconcile = () =>
        via === "iap" ? runIapReconcile(iapRun) : runWith(DIAL, [], remoteRequest(publicIpRun));
      const d = await deploy(run, reconcile);
      expect({ code: d.probe.code, stderr: d.probe.stderr }).toEqual({ code: 0, stderr: "" });
      const where =
        via === "iap" ? "VM agent-host-dev through IAP" : "VM agent-host-dev at 127.0.0.1";
      expect(d.probe.stdout).toContain(
        `ssh-ed25519 ${keygenFingerprint(path.join(BASE, "vm_host_ed25519_key.pub"))} proven by ${where}`,
      );
      expect(d.reconcile?.code).toBe(0);
      expect(d.reconcile?.stdout).toBe('{"received":true}\n');
      // The probe's connection (no credential offered: it logs in to nothing), then the
      // reconcile's logins (iap-ssh first waits with a `true` login, then runs the command).
      const logins = via === "iap" ? 2 : 1;
      const seen = connectionsSince(real, mark);
      expect(seen.count).toBe(1 + logins);
      expect(seen.log.match(/Accepted publickey/g) ?? []).toHaveLength(logins);
      fs.rmSync(real.received);
    },
  );

  test.each(["public-ip", "iap"] as const)(
    "%s: an impostor at the address: the probe refuses, naming both fingerprints; the reconcile never starts",
    async (via) => {
      address.answerWith(impostor);
      const mark = impostor.logText().length;
      const run = via === "iap" ? iapRun : publicIpRun;
      let reconcileStarted = false;
      const reconcile = () => {
        reconcileStarted = true;
        return via === "iap"
          ? runIapReconcile(iapRun)
          : runWith(DIAL, [], remoteRequest(publicIpRun));
      };
      const d = await deploy(run, reconcile);
      if (process.env.SHOW_REFUSALS) console.log(d.probe.stderr);
      expect(d.probe.code).toBe(1);
      expect(d.probe.stdout).toBe("");
      const pinned = keygenFingerprint(path.join(BASE, "vm_host_ed25519_key.pub"));
      const presented = keygenFingerprint(path.join(BASE, "impostor_host_ed25519_key.pub"));
      expect([pinned, presented]).toEqual([
        fingerprint(vmKey.publicKey),
        fingerprint(impostorKey.publicKey),
      ]);
      const first = d.probe.stderr.split("\n").find((l) => l.startsWith("host-key-probe: refused"));
      expect(first).toContain(
        `presented the SSH host key ${presented} (ssh-ed25519), not the pinned ${pinned} (ssh-ed25519); nothing was sent, the reconcile did not start.`,
      );
      const pinUrn = run.resources.find((r) => r.name === "agent-host-hostkey")!.urn;
      expect(d.probe.stderr).toContain(`pulumi up --replace '${pinUrn}'`);
      expect(d.probe.stderr).toContain(
        "gcloud compute instances get-serial-port-output agent-host-dev --zone europe-west1-b --project acme-agents",
      );
      expect(reconcileStarted).toBe(false);
      expect(d.reconcile).toBeUndefined();
      // The impostor saw one key exchange (the probe's), no user authentication request.
      const seen = connectionsSince(impostor, mark);
      expect(seen.count).toBe(1);
      expect(seen.log).not.toMatch(/userauth-request|Accepted|Invalid user|session_new/);
      // (pulumi-command's x/crypto client announces itself as "SSH-2.0-Go".)
      expect(seen.log).not.toContain("remote software version Go");
      expectImpostorGotNothing(bundleOf(publicIpRun).length);
    },
  );

  test("with the probe out of the reconcile's dependencies, the reconcile dials the impostor alongside it", async () => {
    // The break a refactor could make: the same program without the reconcile's dependsOn.
    address.answerWith(impostor);
    const mark = impostor.logText().length;
    const recorded = publicIpRun.resources.find((r) => r.name === "agent-host-reconcile")!;
    const probeUrn = publicIpRun.resources.find((r) => r.name === PROBE)!.urn;
    const without = recorded.options.dependencies.filter((u) => u !== probeUrn);
    const d = await deploy(
      publicIpRun,
      () => runWith(DIAL, [], remoteRequest(publicIpRun)),
      without,
    );
    expect(d.probe.code).toBe(1);
    // The reconcile started: only the provider's FixedHostKey stood between the impostor and the
    // bundle, with its generic message.
    expect(d.reconcile?.stderr).toContain("ssh: handshake failed: ssh: host key mismatch");
    const seen = connectionsSince(impostor, mark);
    expect(seen.log).toContain("remote software version Go");
    expect(seen.count).toBeGreaterThanOrEqual(2);
  });

  test("a host that sends its banner and then stalls the key exchange: each dial is cut at 30 s, and the probe says why", async () => {
    // A tarpit at the address: TCP and the SSH banner, then silence (ssh's ConnectTimeout covers
    // the connect and the banner only; the probe's watchdog covers the rest).
    const tarpit = net.createServer((socket) => {
      socket.on("error", () => undefined);
      socket.write("SSH-2.0-OpenSSH_9.2p1 tarpit\r\n");
    });
    await new Promise<void>((resolve) => tarpit.listen(0, "127.0.0.1", resolve));
    try {
      const inputs = resource(publicIpRun, "command:local:Command", PROBE);
      const [interpreter, ...args] = inputs.interpreter as string[];
      const started = Date.now();
      const r = await runWith(interpreter, [...args, inputs.create], "", {
        ...process.env,
        ...(inputs.environment as Record<string, string>),
        AGENT_HOST_ADDRESS: "127.0.0.1",
        AGENT_HOST_SSH_PORT: String((tarpit.address() as net.AddressInfo).port),
        AGENT_HOST_PROBE_ATTEMPTS: "1",
      });
      const seconds = (Date.now() - started) / 1000;
      console.log(`host-key-probe against a tarpit, 1 attempt: ${seconds.toFixed(1)} s`);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("host-key-probe: the dial took over 30 s: stopped");
      expect(r.stderr).toContain("did not complete an SSH key exchange after 1 attempts");
      expect(seconds).toBeGreaterThanOrEqual(29);
      expect(seconds).toBeLessThan(45);
    } finally {
      tarpit.close();
    }
  }, 60_000);

  test("scripts/host-key-probe passes shellcheck (.shellcheckrc: enable=all)", () => {
    const r = spawnSync("shellcheck", ["scripts/host-key-probe"], { cwd: REPO, encoding: "utf8" });
    expect(r.stdout).toBe("");
    expect(r.status).toBe(0);
  });

  test("without the pin (the stack before issue 23) the impostor gets the whole bundle", async () => {
    address.answerWith(impostor);
    const bundle = bundleOf(publicIpRun);
    const r = await runWith(DIAL, [], remoteRequest(publicIpRun, "none"));
    expect(r.code).toBe(0);
    expect(fs.readFileSync(impostor.received, "utf8")).toBe(bundle);
    expect(address.clientBytes).toBeGreaterThan(bundle.length);
    fs.rmSync(impostor.received);
  });
});
