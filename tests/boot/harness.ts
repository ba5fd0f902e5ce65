// The boot test's machinery: a cached Debian 12 root filesystem, a loop-device data disk, and a
// "VM" that is that tree booted by systemd-nspawn with systemd as PID 1 and cloud-init seeded
// through NoCloud. Every command in the guest goes through nsenter into the container's
// namespaces (the host has no systemd, so machinectl and `systemd-run -M` are not available).
// Every wait polls a condition against a deadline; nothing sleeps and hopes.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";

export const REPO = path.resolve(__dirname, "../..");
const BUILD_ROOTFS = path.join(REPO, "scripts/boot/build-rootfs");
const PROCESSES_PY = path.join(__dirname, "guest/processes.py");

/**
 * What a cloud image has before cloud-init runs. `minbase` lacks most of it: without `locales`
 * cloud-init's locale module fails, and debootstrap does not resolve cloud-init's virtual
 * dependency on python3-cffi-backend.
 */
export const BASE_PACKAGES = [
  "ca-certificates",
  "cloud-init",
  "curl",
  "dbus",
  "e2fsprogs",
  "gnupg",
  "iproute2",
  "locales",
  "openssh-server",
  "procps",
  "python3-cffi-backend",
  "sudo",
  "systemd",
  "systemd-sysv",
  "util-linux",
];

/** Host tools the harness runs, with the Debian package that ships each. */
export const HOST_TOOLS: Record<string, string> = {
  debootstrap: "debootstrap",
  "systemd-nspawn": "systemd-container",
  nsenter: "util-linux",
  losetup: "mount",
  blkid: "util-linux",
  "ssh-keygen": "openssh-client",
  ssh: "openssh-client",
  // The rootless Docker step's image is busybox from the test machine (no registry here).
  busybox: "busybox-static",
};

export function missingHostTools(): string[] {
  return Object.entries(HOST_TOOLS)
    .filter(([tool]) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0)
    .map(([tool, pkg]) => `${tool} (apt package ${pkg})`);
}

export function log(message: string): void {
  process.stderr.write(`[boot] ${message}\n`);
}

/** Runs a host command; throws with its output when it fails. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): string {
  const result = spawnSync(cmd, args, {
    input: opts.input,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new Error(`${cmd} ${args.join(" ")}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${result.status}:\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result.stdout;
}

/** Polls `probe` until it returns a value other than undefined; throws at the deadline. */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined,
  intervalMs = 1000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : "";
      throw new Error(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${detail}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface Rootfs {
  dir: string;
  /** Seconds debootstrap and the preload took, or "cached". */
  built: number | "cached";
}

/**
 * The cached tree for this package list, built from scratch when absent. The key covers the
 * build script too, so changing how the tree is built rebuilds it. Trees for other keys are
 * removed (each is about 1 GB).
 */
export function ensureRootfs(cacheDir: string, preload: readonly string[]): Rootfs {
  const key = createHash("sha256")
    .update(fs.readFileSync(BUILD_ROOTFS))
    .update(`\0${BASE_PACKAGES.join(",")}\0${[...preload].sort().join(",")}`)
    .digest("hex")
    .slice(0, 16);
  const dir = path.join(cacheDir, `rootfs-${key}`);
  if (fs.existsSync(path.join(dir, "etc/os-release"))) return { dir, built: "cached" };
  fs.mkdirSync(cacheDir, { recursive: true });
  for (const entry of fs.readdirSync(cacheDir)) {
    if (entry.startsWith("rootfs-") && entry !== `rootfs-${key}`) {
      log(`removing stale cached tree ${entry}`);
      fs.rmSync(path.join(cacheDir, entry), { recursive: true, force: true });
    }
  }
  log(`building ${dir} (debootstrap + ${preload.join(" ")}); minutes on a cold cache`);
  const started = Date.now();
  const result = spawnSync(BUILD_ROOTFS, [dir, BASE_PACKAGES.join(","), preload.join(",")], {
    stdio: ["ignore", "inherit", "pipe"],
    encoding: "utf8",
    // Cold cache: ~10 min on an idle 2-core machine; one shared with other test runs took over 15.
    timeout: 40 * 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const tail = (result.stderr ?? "").split("\n").slice(-60).join("\n");
    throw new Error(`build-rootfs failed (exit ${result.status ?? result.signal}):\n${tail}`);
  }
  return { dir, built: Math.round((Date.now() - started) / 1000) };
}

/** A sparse image file on a loop device: the GCE persistent disk named `workspaces`. */
export class DataDisk {
  readonly device: string;

  constructor(
    readonly image: string,
    sizeMiB: number,
  ) {
    fs.closeSync(fs.openSync(image, "w"));
    fs.truncateSync(image, sizeMiB * 1024 * 1024);
    this.device = run("losetup", ["--find", "--show", image]).trim();
  }

  /** The file system UUID, or undefined while the disk is blank. */
  fsUuid(): string | undefined {
    const result = spawnSync("blkid", ["-p", "-s", "UUID", "-o", "value", this.device], {
      encoding: "utf8",
    });
    return result.status === 0 ? result.stdout.trim() || undefined : undefined;
  }

  detach(): void {
    spawnSync("losetup", ["-d", this.device]);
  }
}

export interface GuestProcess {
  pid: number;
  ppid: number;
  uid: number;
  comm: string;
  exe: string | null;
  cwd: string | null;
  argv: string[];
  cgroup: string[];
  rssKib: number;
  pssKib: number;
}

export interface MachineOptions {
  /** Cached tree to copy. */
  rootfs: string;
  /** Where the per-boot copy and logs go. */
  workDir: string;
  name: string;
  instanceId: string;
  userData: string;
  disk: DataDisk;
  /** Loopback port the guest's sshd listens on (the container shares the host's network). */
  sshPort: number;
}

/**
 * One "VM": a fresh copy of the cached tree with its own NoCloud seed. A reboot inside the
 * guest ends systemd-nspawn with exit status 133; like systemd-nspawn@.service
 * (RestartForceExitStatus=133) the harness then starts the same tree again. A power-off ends it
 * with 0, and the tree stays as it is until `start()` boots it again (a stopped VM started).
 */
export class Machine {
  readonly root: string;
  readonly consoleLog: string;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private bootCount = 0;
  startedAt = 0;

  constructor(readonly opts: MachineOptions) {
    this.root = path.join(opts.workDir, opts.name, "root");
    this.consoleLog = path.join(opts.workDir, opts.name, "console.log");
  }

  /** Copies the cached tree and writes the seed: what a new VM from the image gets. */
  provision(): void {
    fs.rmSync(path.dirname(this.root), { recursive: true, force: true });
    fs.mkdirSync(path.dirname(this.root), { recursive: true });
    run("cp", ["-a", "--reflink=auto", this.opts.rootfs, this.root], { timeoutMs: 10 * 60_000 });
    const seed = path.join(this.root, "var/lib/cloud/seed/nocloud");
    fs.mkdirSync(seed, { recursive: true });
    fs.writeFileSync(path.join(seed, "user-data"), this.opts.userData);
    fs.writeFileSync(
      path.join(seed, "meta-data"),
      `instance-id: ${this.opts.instanceId}\nlocal-hostname: ${this.opts.name}\n`,
    );
    // Harness only: the NoCloud seed stands in for GCE's metadata server, and the container
    // shares the host's network, which cloud-init must leave alone.
    fs.writeFileSync(
      path.join(this.root, "etc/cloud/cloud.cfg.d/90-boot-test.cfg"),
      "# agent-host boot test: NoCloud seed instead of GCE metadata; host network, not ours to configure.\n" +
        "datasource_list: [NoCloud, None]\nnetwork: {config: disabled}\n",
    );
    // Harness only: the guest's sshd would otherwise listen on the host's port 22.
    fs.mkdirSync(path.join(this.root, "etc/ssh/sshd_config.d"), { recursive: true });
    fs.writeFileSync(
      path.join(this.root, "etc/ssh/sshd_config.d/10-boot-test.conf"),
      `# agent-host boot test: the container shares the host's network.\nPort ${this.opts.sshPort}\nListenAddress 127.0.0.1\n`,
    );
  }

  /** Starts systemd-nspawn in the background; returns when the container's init is running. */
  async start(): Promise<void> {
    this.bootCount += 1;
    const out = fs.openSync(this.consoleLog, "a");
    fs.writeSync(out, `\n===== boot ${this.bootCount} ${new Date().toISOString()} =====\n`);
    this.startedAt = Date.now();
    const child = spawn(
      "systemd-nspawn",
      [
        "--register=no",
        "--keep-unit",
        "--quiet",
        `--machine=${this.opts.name}`,
        `--directory=${this.root}`,
        // GCE shows the data disk here (its udev rules make the link); a container has no udev.
        `--bind=${this.opts.disk.device}:/dev/disk/by-id/google-workspaces`,
        // nspawn's own system-call filter leaves out the keyring calls (nspawn-seccomp.c,
        // add_syscall_filters: "@keyring (NB: keyring is not namespaced!)"), which a VM's kernel
        // never filters; runc joins a new session keyring for every container and fails on EPERM
        // ("unable to join session keyring"). Allowed back, as on the VM.
        "--system-call-filter=@keyring",
        "--boot",
      ],
      { stdio: ["ignore", out, out], detached: true },
    );
    fs.closeSync(out);
    fs.writeFileSync(path.join(path.dirname(this.root), "nspawn.pid"), `${child.pid}\n`);
    this.child = child;
    this.exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    await waitFor(
      "the container's systemd to start",
      60_000,
      () => {
        if (child.exitCode !== null)
          throw new Error(`systemd-nspawn exited ${child.exitCode}; see ${this.consoleLog}`);
        const leader = this.leaderPid();
        return leader !== undefined &&
          fs.readFileSync(`/proc/${leader}/comm`, "utf8").trim() === "systemd"
          ? leader
          : undefined;
      },
      200,
    );
    // udev's 50-udev-default.rules makes /dev/net/tun 0666 on every VM (KERNEL=="tun",
    // MODE="0666"); nspawn copies the host's node into the container's own /dev with the host's
    // mode (nspawn.c, copy_devnodes), and a container runs no udev. The guest's node, not the
    // host's, gets the VM's mode: rootless Docker's slirp4netns opens it as the agent.
    const tun = this.exec(["chmod", "0666", "/dev/net/tun"]);
    if (tun.status !== 0) throw new Error(`chmod /dev/net/tun in the guest: ${tun.stderr}`);
  }

  /**
   * Takes away what nspawn mounts over the container's /proc (nspawn-mount.c, mount_all: the
   * read-only /proc/sys, PROC_INACCESSIBLE_REG and PROC_READ_ONLY), leaving the plain /proc a
   * VM has. The kernel refuses a new proc mount in a user namespace while locked mounts cover
   * anything in the visible proc but a permanently empty directory (fs/namespace.c,
   * mnt_already_visible), so under nspawn's /proc no rootless container could start (runc mounts
   * a proc for each); and the agent's dockerd does not even start: "Enabling IP forwarding
   * failed: open /proc/sys/net/ipv4/ip_forward: read-only file system" (its own network
   * namespace's sysctl, writable on a VM; seen in this guest).
   *
   * Not done at boot: the guest shares the host's kernel, and with /proc/sys writable the guest's
   * systemd-sysctl would set the build machine's sysctls (fs.protected_regular, kernel.pid_max).
   * Call it once the boot is done and before the first rootless daemon starts; the next boot
   * has nspawn's /proc again. Returns the mount points it removed.
   */
  revealProc(): string[] {
    const covered = (): string[] =>
      this.sh("awk '$5 ~ \"^/proc/\" { print $5 }' /proc/self/mountinfo")
        .split("\n")
        .filter(Boolean);
    const before = covered();
    // Deepest first (the boot id nspawn binds inside /proc/sys before the read-only /proc/sys);
    // a lazy unmount takes the mounts below it along, so "not mounted" afterwards is fine.
    for (const where of [...new Set(before)].sort((a, b) => b.length - a.length))
      this.exec(["umount", "-l", "--", where]);
    const left = covered();
    if (left.length > 0) throw new Error(`still mounted over the guest's /proc: ${left.join(" ")}`);
    return [...new Set(before)];
  }

  /** The container's PID 1 as the host sees it: systemd-nspawn's child. */
  leaderPid(): number | undefined {
    if (!this.child?.pid) return undefined;
    const taskDir = `/proc/${this.child.pid}/task`;
    if (!fs.existsSync(taskDir)) return undefined;
    for (const task of fs.readdirSync(taskDir)) {
      const children = fs.readFileSync(`${taskDir}/${task}/children`, "utf8").trim();
      if (children) return Number(children.split(/\s+/)[0]);
    }
    return undefined;
  }

  /** nsenter's argv for a command in the guest, as root with a clean environment. */
  private nsenterArgv(argv: string[]): string[] {
    const leader = this.leaderPid();
    if (leader === undefined) throw new Error(`${this.opts.name} is not running`);
    return [
      "--target",
      String(leader),
      "--all",
      "--",
      "env",
      "-i",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "HOME=/root",
      "LANG=C.UTF-8",
      ...argv,
    ];
  }

  /** Runs a command in the guest as root with a clean environment. */
  exec(
    argv: string[],
    opts: { input?: string; timeoutMs?: number } = {},
  ): SpawnSyncReturns<string> {
    return spawnSync("nsenter", this.nsenterArgv(argv), {
      input: opts.input,
      encoding: "utf8",
      timeout: opts.timeoutMs ?? 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  }

  /** exec without waiting: for commands that must run at the same time. Killed at the deadline. */
  execAsync(
    argv: string[],
    opts: { input?: string; timeoutMs?: number } = {},
  ): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const child = spawn("nsenter", this.nsenterArgv(argv), { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdin.end(opts.input ?? "");
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    return new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  }

  /** exec that throws with the output when the command fails. */
  sh(script: string, opts: { timeoutMs?: number } = {}): string {
    const result = this.exec(["bash", "-c", script], opts);
    if (result.status !== 0) {
      throw new Error(
        `in ${this.opts.name}: ${script}\nexit ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`,
      );
    }
    return result.stdout;
  }

  /** Every process in the guest (see guest/processes.py). */
  processes(): GuestProcess[] {
    const result = this.exec(["python3", "-"], { input: fs.readFileSync(PROCESSES_PY, "utf8") });
    if (result.status !== 0) throw new Error(`processes.py: ${result.stderr}`);
    return JSON.parse(result.stdout) as GuestProcess[];
  }

  /** `systemctl reboot` in the guest, then starts the same tree again once nspawn reports it. */
  async reboot(): Promise<void> {
    const exited = this.exited;
    this.exec(["systemctl", "reboot"]);
    const code = await withDeadline(exited!, 120_000, "the container to reboot");
    if (code !== 133)
      throw new Error(`systemd-nspawn exited ${code} on reboot, expected 133 (reboot requested)`);
    await this.start();
  }

  /**
   * Runs `argv` in the guest (a command that shuts it down, e.g. `systemctl poweroff`) and waits
   * for systemd-nspawn to exit; returns its exit status (0 for a power-off, 133 for a reboot).
   * Nothing starts again: `start()` boots the same tree, as starting a stopped VM does. Throws at
   * the deadline, leaving the container to `stop()`.
   */
  async shutDown(argv: string[], timeoutMs = 120_000): Promise<number | null> {
    const exited = this.exited;
    if (!exited || this.leaderPid() === undefined)
      throw new Error(`${this.opts.name} is not running`);
    // The command's own status means little: it may be killed as the system goes down.
    this.exec(argv);
    return withDeadline(exited, timeoutMs, `the container to shut down after ${argv.join(" ")}`);
  }

  /** Powers the guest off; kills it when it does not stop within the deadline. */
  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || !this.exited) return;
    this.exec(["systemctl", "poweroff"]);
    try {
      await withDeadline(this.exited, 90_000, "the container to power off");
    } catch (error) {
      log(`${(error as Error).message}; killing the container`);
      const leader = this.leaderPid();
      // SIGKILL to the container's init ends its whole PID namespace.
      if (leader !== undefined) process.kill(leader, "SIGKILL");
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  /** What to look at when a check fails: cloud-init's output and the journal's tail. */
  diagnostics(): string {
    if (this.leaderPid() === undefined) {
      return `${this.opts.name} is not running; console:\n${tail(this.consoleLog, 80)}`;
    }
    const parts = [
      ["cloud-init status --long", "cloud-init status --long"],
      ["cloud-init-output.log (tail)", "tail -n 120 /var/log/cloud-init-output.log"],
      [
        "cloud-init.log warnings",
        "grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -n 40",
      ],
      ["failed units", "systemctl --failed --no-pager"],
      ["journal (tail)", "journalctl --no-pager -n 150"],
    ];
    return parts
      .map(([title, script]) => {
        const result = this.exec(["bash", "-c", script]);
        return `----- ${this.opts.name}: ${title} -----\n${result.stdout}${result.stderr}`;
      })
      .join("\n");
  }

  destroy(): void {
    fs.rmSync(path.dirname(this.root), { recursive: true, force: true });
  }
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no console log)";
  }
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A TCP port nothing listens on now, as the host sees it (from /proc/net: no extra tool). */
export function freeLoopbackPort(): number {
  const used = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      // State 0A is LISTEN; the local address ends in :PORT in hex.
      if (state === "0A" && local) used.add(parseInt(local.split(":")[1], 16));
    }
  }
  for (let port = 2222; port < 2400; port++) if (!used.has(port)) return port;
  throw new Error("no free TCP port between 2222 and 2400");
}

/**
 * Cleans up after an earlier run that was killed before its afterAll: powers off (kills) the
 * systemd-nspawn it started, detaches its loop devices, removes its copies.
 */
export function removeStaleRuns(cacheDir: string): void {
  if (!fs.existsSync(cacheDir)) return;
  for (const entry of fs.readdirSync(cacheDir)) {
    const match = /^run-(\d+)$/.exec(entry);
    if (!match || fs.existsSync(`/proc/${match[1]}`)) continue;
    const runDir = path.join(cacheDir, entry);
    log(`removing stale run ${runDir}`);
    for (const machine of fs.readdirSync(runDir)) {
      const pidFile = path.join(runDir, machine, "nspawn.pid");
      if (!fs.existsSync(pidFile)) continue;
      const pid = Number(fs.readFileSync(pidFile, "utf8"));
      const cmdline = fs.existsSync(`/proc/${pid}/cmdline`)
        ? fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
        : "";
      if (!cmdline.startsWith("systemd-nspawn") || !cmdline.includes(runDir)) continue;
      // SIGKILL to the container's init ends its whole PID namespace; then nspawn itself.
      for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
        const children = fs
          .readFileSync(`/proc/${pid}/task/${task}/children`, "utf8")
          .trim()
          .split(/\s+/);
        for (const child of children.filter(Boolean)) process.kill(Number(child), "SIGKILL");
      }
      process.kill(pid, "SIGKILL");
    }
    for (const file of fs.readdirSync(runDir).filter((f) => f.endsWith(".img"))) {
      const loops = run("losetup", ["-j", path.join(runDir, file), "-O", "NAME", "-n"])
        .split("\n")
        .filter(Boolean);
      for (const loop of loops) spawnSync("losetup", ["-d", loop.trim()]);
    }
    fs.rmSync(runDir, { recursive: true, force: true });
  }
}
