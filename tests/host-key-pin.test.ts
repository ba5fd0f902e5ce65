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
const TOOLS = ["/usr/sbin/sshd", "ssh", "ssh-keygen", "go"];
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
