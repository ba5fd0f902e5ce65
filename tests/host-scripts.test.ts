// The host scripts that prepare the VM (data-disk, install-docker, install-claude-code), run for
// real on this machine: a real loop device as the data disk, real mkfs/blkid/mount/resize2fs,
// real gpg on generated keys, a real npm install of the pinned Claude Code. Only apt-get,
// dpkg-query and systemctl are stand-ins (recording ones), for install-docker's last step.
// Needs root (loop devices, mounts); as another user the suite is skipped and says why.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { unavailableSuite } from "./real-suite";

const HOST = path.join(__dirname, "..", "cloud-init", "host");
const DATA_DISK = path.join(HOST, "data-disk");
const INSTALL_DOCKER = path.join(HOST, "install-docker");
const INSTALL_CLAUDE = path.join(HOST, "install-claude-code");
const CLAUDE_VERSION = "2.1.331";
const DOCKER_FPR = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88";

const isRoot = process.getuid?.() === 0;
const describeRoot = isRoot
  ? describe
  : unavailableSuite("host-scripts: skipped: loop devices and mounts need root");

interface Result {
  status: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command with a deadline; a command still running at the deadline fails the test. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Result {
  const started = Date.now();
  const r = spawnSync(cmd, args, {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status === null)
    throw new Error(`${cmd} ${args.join(" ")}: killed by ${r.signal} (deadline ${timeoutMs} ms)`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

/** Runs a setup command that must succeed; returns its trimmed stdout. */
function sh(script: string, timeoutMs = 60_000): string {
  const r = run("bash", ["-euo", "pipefail", "-c", script], {}, timeoutMs);
  if (r.status !== 0) throw new Error(`setup failed (${r.status}): ${script}\n${r.stderr}`);
  return r.stdout.trim();
}

function writeConf(file: string, entries: Record<string, string>): void {
  const lines = Object.entries(entries).map(([k, v]) => `${k}=${v}`);
  fs.writeFileSync(file, `# test host.conf\n${lines.join("\n")}\n`);
}

describeRoot("data-disk on a real loop device", () => {
  let tmp: string;
  const loops: string[] = [];
  let conf: string;
  let env: NodeJS.ProcessEnv;
  let loop: string;
  let img: string;
  let dataDir: string;
  let workspaces: string;
  let home: string;

  /** A fresh sparse image attached to a loop device. */
  function newLoop(name: string, sizeMb: number): { img: string; dev: string } {
    const file = path.join(tmp, name);
    sh(`truncate -s ${sizeMb}M '${file}'`);
    const dev = sh(`losetup -f --show '${file}'`);
    loops.push(dev);
    return { img: file, dev };
  }

  function blkid(dev: string): { status: number; out: string } {
    const r = run("blkid", ["-p", "-o", "export", dev]);
    return { status: r.status, out: r.stdout };
  }

  /** "MAJ:MIN FSROOT" of the topmost mount on a path, "" when none. */
  function mountAt(target: string): string {
    const r = run("findmnt", ["-n", "-r", "-o", "MAJ:MIN,FSROOT", "--mountpoint", target]);
    return r.stdout.trim().split("\n").pop() ?? "";
  }

  function mountsUnderTmp(): string {
    return run("findmnt", ["-r", "-n", "-o", "TARGET,MAJ:MIN,FSROOT"])
      .stdout.split("\n")
      .filter((l) => l.startsWith(tmp))
      .sort()
      .join("\n");
  }

  function fsBytes(dev: string): number {
    const h = sh(`dumpe2fs -h '${dev}' 2>/dev/null`);
    const size = Number(/^Block size:\s+(\d+)/m.exec(h)?.[1]);
    const count = Number(/^Block count:\s+(\d+)/m.exec(h)?.[1]);
    return size * count;
  }

  function unmountAll(): void {
    const targets = run("findmnt", ["-r", "-n", "-o", "TARGET"])
      .stdout.split("\n")
      .filter((t) => t.startsWith(`${tmp}/`))
      .reverse();
    for (const t of targets) sh(`umount '${t}'`);
  }

  function dataDisk(args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Result {
    return run(DATA_DISK, args, { ...env, ...extraEnv }, 120_000);
  }

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "data-disk-"));
    if (run("sh", ["-c", "command -v mkfs.vfat"]).status !== 0) {
      sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q dosfstools >/dev/null", 300_000);
    }
    ({ img, dev: loop } = newLoop("disk.img", 64));
    dataDir = path.join(tmp, "data");
    workspaces = path.join(tmp, "workspaces");
    const homeBase = path.join(tmp, "home");
    home = path.join(homeBase, "nobody");
    const skel = path.join(tmp, "skel");
    fs.mkdirSync(skel);
    fs.writeFileSync(path.join(skel, ".profile"), "# skel marker\n");
    conf = path.join(tmp, "host.conf");
    writeConf(conf, {
      AGENT_USER: "nobody",
      AGENT_COUNT: "3",
      WORKSPACES_DIR: workspaces,
      RUN_DIR: path.join(tmp, "run"),
      DATA_DEVICE: loop,
      DATA_MOUNT: dataDir,
    });
    env = { AGENTCTL_CONFIG: conf, DATA_DISK_HOME_BASE: homeBase, DATA_DISK_SKEL: skel };
  }, 320_000);

  afterAll(() => {
    if (!tmp) return;
    try {
      unmountAll();
    } finally {
      for (const dev of loops) run("losetup", ["-d", dev]);
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }, 60_000);

  test("--dry-run on a blank disk reports the format and changes nothing", () => {
    const r = dataDisk(["--dry-run"]);
    expect(r.stderr).toContain(`dry-run: would run: mkfs.ext4 -q -m 0 -L agent-data ${loop}`);
    expect(r.status).toBe(0);
    expect(blkid(loop).status).toBe(2); // still no signature at all
    expect(mountAt(dataDir)).toBe("");
  }, 60_000);

  test("blank disk: formatted ext4 agent-data, mounted, workspaces and home bound", () => {
    const r = dataDisk();
    expect(r.stderr).toContain("carries no signature at all: formatting it ext4");
    expect(r.status).toBe(0);
    const probe = blkid(loop).out;
    expect(probe).toMatch(/^TYPE=ext4$/m);
    expect(probe).toMatch(/^LABEL=agent-data$/m);
    const majmin = sh(`lsblk -dn -o MAJ:MIN '${loop}'`).trim();
    expect(mountAt(dataDir)).toBe(`${majmin} /`);
    expect(mountAt(workspaces)).toBe(`${majmin} /workspaces`);
    expect(mountAt(home)).toBe(`${majmin} /home/nobody`);
    const st = fs.statSync(home);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([65534, 65534, 0o750]);
    expect(fs.readFileSync(path.join(home, ".profile"), "utf8")).toBe("# skel marker\n");

    // Files written through the binds land on the data disk.
    fs.mkdirSync(path.join(workspaces, "agent-1"));
    fs.writeFileSync(path.join(workspaces, "agent-1", "notes.txt"), "work in progress\n");
    fs.mkdirSync(path.join(home, ".claude"));
    fs.writeFileSync(path.join(home, ".claude", "session"), "conversation-1\n");
    expect(fs.readFileSync(path.join(dataDir, "workspaces", "agent-1", "notes.txt"), "utf8")).toBe(
      "work in progress\n",
    );
    expect(fs.existsSync(path.join(dataDir, "home", "nobody", ".claude", "session"))).toBe(true);
  }, 120_000);

  test("second run on the mounted disk is a no-op: same mounts, same filesystem, files intact", () => {
    const uuid = sh(`blkid -p -s UUID -o value '${loop}'`);
    const before = mountsUnderTmp();
    const r = dataDisk();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("data disk already mounted");
    expect(r.stderr).not.toMatch(/formatting|mounting|binding|creating/);
    expect(mountsUnderTmp()).toBe(before);
    expect(sh(`blkid -p -s UUID -o value '${loop}'`)).toBe(uuid);
    expect(fs.readFileSync(path.join(workspaces, "agent-1", "notes.txt"), "utf8")).toBe(
      "work in progress\n",
    );
  }, 120_000);

  test("VM replaced (everything unmounted, run again): not reformatted, files intact", () => {
    const uuid = sh(`blkid -p -s UUID -o value '${loop}'`);
    unmountAll();
    expect(mountAt(dataDir)).toBe("");
    expect(fs.existsSync(path.join(workspaces, "agent-1"))).toBe(false); // really unmounted
    const r = dataDisk();
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain("formatting");
    expect(r.stderr).not.toContain("creating");
    expect(sh(`blkid -p -s UUID -o value '${loop}'`)).toBe(uuid);
    expect(fs.readFileSync(path.join(workspaces, "agent-1", "notes.txt"), "utf8")).toBe(
      "work in progress\n",
    );
    expect(fs.readFileSync(path.join(home, ".claude", "session"), "utf8")).toBe("conversation-1\n");
  }, 120_000);

  test("disk grown while the VM was stopped: the next boot grows the filesystem", () => {
    unmountAll();
    const before = fsBytes(loop);
    sh(`truncate -s 128M '${img}' && losetup -c '${loop}'`);
    const r = dataDisk();
    expect(r.stderr).toContain("growing the filesystem offline");
    expect(r.status).toBe(0);
    expect(before).toBe(64 * 1024 * 1024);
    expect(fsBytes(loop)).toBe(128 * 1024 * 1024);
    expect(fs.readFileSync(path.join(workspaces, "agent-1", "notes.txt"), "utf8")).toBe(
      "work in progress\n",
    );
  }, 120_000);

  test("disk grown under a running VM: grown online (or, without CAP_SYS_RESOURCE, warned and grown at the next boot)", () => {
    sh(`truncate -s 192M '${img}' && losetup -c '${loop}'`);
    const capEff = BigInt(
      `0x${/^CapEff:\s+([0-9a-f]+)/m.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]}`,
    );
    const canResizeOnline = (capEff >> 24n) & 1n; // CAP_SYS_RESOURCE: the ext4 online-resize ioctl
    const r = dataDisk();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("growing the filesystem online");
    if (canResizeOnline) {
      expect(fsBytes(loop)).toBe(192 * 1024 * 1024);
    } else {
      expect(r.stderr).toContain("online resize2fs");
      expect(fsBytes(loop)).toBe(128 * 1024 * 1024);
      unmountAll();
      expect(dataDisk().status).toBe(0);
      expect(fsBytes(loop)).toBe(192 * 1024 * 1024);
    }
    expect(fs.readFileSync(path.join(home, ".claude", "session"), "utf8")).toBe("conversation-1\n");
  }, 120_000);

  // Each foreign disk gets its own mount points, so a wrong mount could not hide behind ours.
  test.each([
    ["a vfat filesystem", "mkfs.vfat -n FOREIGN DEV >/dev/null", /^TYPE=vfat$/m],
    ["an ext4 filesystem with another label", "mkfs.ext4 -q -L other DEV", /^LABEL=other$/m],
    [
      "a GPT partition table",
      "printf 'label: gpt\\n,,L\\n' | sfdisk -q DEV >/dev/null",
      /^PTTYPE=gpt$/m,
    ],
  ])(
    "a disk carrying %s is refused: not formatted, not mounted",
    (_what, mk, signature) => {
      const { dev } = newLoop(`foreign-${loops.length}.img`, 64);
      sh(mk.replace("DEV", `'${dev}'`));
      const probeBefore = blkid(dev);
      expect(probeBefore.out).toMatch(signature);
      const foreignConf = path.join(tmp, `foreign-${loops.length}.conf`);
      const mnt = path.join(tmp, `foreign-${loops.length}`);
      writeConf(foreignConf, {
        AGENT_USER: "nobody",
        WORKSPACES_DIR: `${mnt}/workspaces`,
        RUN_DIR: path.join(tmp, "run"),
        DATA_DEVICE: dev,
        DATA_MOUNT: `${mnt}/data`,
      });
      const r = dataDisk([], { AGENTCTL_CONFIG: foreignConf, DATA_DISK_HOME_BASE: `${mnt}/home` });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("is not blank and not this stack's data disk");
      expect(r.stderr).toContain("refusing to format or mount it");
      expect(blkid(dev)).toEqual(probeBefore);
      expect(mountAt(`${mnt}/data`)).toBe("");
      expect(mountAt(`${mnt}/workspaces`)).toBe("");
    },
    120_000,
  );

  test("a device that never appears fails loudly after the wait; nothing is mounted", () => {
    const missingConf = path.join(tmp, "missing.conf");
    const mnt = path.join(tmp, "missing");
    writeConf(missingConf, {
      AGENT_USER: "nobody",
      WORKSPACES_DIR: `${mnt}/workspaces`,
      RUN_DIR: path.join(tmp, "run"),
      DATA_DEVICE: "/dev/disk/by-id/google-no-such-disk",
      DATA_MOUNT: `${mnt}/data`,
    });
    const r = dataDisk([], { AGENTCTL_CONFIG: missingConf, DATA_DISK_WAIT_SECONDS: "2" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("did not appear within 2s");
    expect(r.stderr).toContain("never land on the root disk");
    expect(r.ms).toBeGreaterThanOrEqual(2000);
    expect(r.ms).toBeLessThan(10_000);
    expect(fs.existsSync(`${mnt}/data`)).toBe(false);
  }, 30_000);
});

describeRoot("install-docker", () => {
  let tmp: string;
  let key: string; // one generated key
  let fpr: string;
  let twoKeys: string;
  let fakeBin: string;

  function stateFiles(dir: string): { keyring: string; sources: string } {
    return {
      keyring: path.join(dir, "keyrings", "docker.asc"),
      sources: path.join(dir, "sources", "docker.sources"),
    };
  }

  function installDocker(dir: string, conf: Record<string, string>, args: string[] = []): Result {
    fs.mkdirSync(dir, { recursive: true });
    const confFile = path.join(dir, "host.conf");
    writeConf(confFile, conf);
    const { keyring, sources } = stateFiles(dir);
    return run(
      INSTALL_DOCKER,
      args,
      {
        AGENTCTL_CONFIG: confFile,
        DOCKER_KEYRING: keyring,
        DOCKER_SOURCES_FILE: sources,
        OS_RELEASE_FILE: path.join(tmp, "os-release"),
        PATH: `${fakeBin}:${process.env.PATH}`,
        FAKE_STATE: dir,
      },
      60_000,
    );
  }

  function callsIn(dir: string): string[] {
    const f = path.join(dir, "calls.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim().split("\n") : [];
  }

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "install-docker-"));
    const gnupg = path.join(tmp, "gnupg");
    fs.mkdirSync(gnupg, { mode: 0o700 });
    const gen = (uid: string): void => {
      sh(
        `GNUPGHOME='${gnupg}' gpg --batch --quiet --passphrase '' --quick-gen-key '${uid}' ed25519 default never 2>/dev/null`,
      );
    };
    gen("Not Docker <not-docker@example.invalid>");
    key = path.join(tmp, "not-docker.asc");
    sh(`GNUPGHOME='${gnupg}' gpg --batch --armor --export > '${key}'`);
    fpr = sh(
      `GNUPGHOME='${gnupg}' gpg --batch --with-colons --show-keys '${key}' | awk -F: '$1=="fpr"{print $10; exit}'`,
    );
    expect(fpr).toMatch(/^[0-9A-F]{40}$/);
    gen("Second <second@example.invalid>");
    twoKeys = path.join(tmp, "two-keys.asc");
    sh(`GNUPGHOME='${gnupg}' gpg --batch --armor --export > '${twoKeys}'`);
    fs.writeFileSync(
      path.join(tmp, "os-release"),
      'ID=ubuntu\nVERSION_CODENAME=noble\nUBUNTU_CODENAME="noble"\n',
    );

    // Recording stand-ins for the steps that would change this machine's packages and services.
    // dpkg-query reports packages installed once the fake apt-get has "installed" them.
    fakeBin = path.join(tmp, "bin");
    fs.mkdirSync(fakeBin);
    const fake = (name: string, body: string): void =>
      fs.writeFileSync(path.join(fakeBin, name), `#!/usr/bin/env bash\nset -eu\n${body}\n`, {
        mode: 0o755,
      });
    fake(
      "apt-get",
      `echo "apt-get $*" >> "$FAKE_STATE/calls.log"\n[[ " $* " == *" install "* ]] && touch "$FAKE_STATE/installed"\nexit 0`,
    );
    fake("systemctl", `echo "systemctl $*" >> "$FAKE_STATE/calls.log"`);
    fake(
      "dpkg-query",
      `pkg="\${@: -1}"\nif [[ "$pkg" == ca-certificates || -e "$FAKE_STATE/installed" ]]; then printf 'install ok installed'; else exit 1; fi`,
    );
  }, 120_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test("verify-key: a key that is not Docker's is refused; the same key passes when its fingerprint is expected", () => {
    const refused = run(INSTALL_DOCKER, ["verify-key", key, DOCKER_FPR]);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain(
      `REFUSED key ${key}: its fingerprint is ${fpr}, expected ${DOCKER_FPR}`,
    );
    expect(refused.stdout).toBe("");

    const passed = run(INSTALL_DOCKER, [
      "verify-key",
      key,
      fpr.toLowerCase().replace(/(.{4})/g, "$1 "),
    ]);
    expect(passed.stderr).toBe(
      `install-docker: key ${key}: one primary key, fingerprint ${fpr}: verified\n`,
    );
    expect(passed.status).toBe(0);
    expect(passed.stdout).toBe(`${fpr}\n`);
  }, 30_000);

  test("verify-key: two primary keys, or a file that is no key at all, are refused", () => {
    const two = run(INSTALL_DOCKER, ["verify-key", twoKeys, fpr]);
    expect(two.status).not.toBe(0);
    expect(two.stderr).toContain("expected exactly one primary key, found 2");
    const junk = path.join(tmp, "junk.asc");
    fs.writeFileSync(junk, "<html>not a key</html>\n");
    const notKey = run(INSTALL_DOCKER, ["verify-key", junk, fpr]);
    expect(notKey.status).not.toBe(0);
    expect(notKey.stderr).toContain("REFUSED key");
  }, 30_000);

  test("docker-apt with a key that does not match: refused, nothing written to the keyring path, apt never runs", () => {
    const dir = path.join(tmp, "mismatch");
    const r = installDocker(dir, { DOCKER_SOURCE: "docker-apt", DOCKER_KEY_URL: `file://${key}` });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`its fingerprint is ${fpr}, expected ${DOCKER_FPR}`);
    const { keyring, sources } = stateFiles(dir);
    expect(fs.existsSync(keyring)).toBe(false);
    expect(fs.existsSync(path.dirname(keyring))).toBe(false);
    expect(fs.existsSync(sources)).toBe(false);
    expect(callsIn(dir)).toEqual([]);
  }, 60_000);

  test("docker-apt --dry-run with the expected fingerprint: verified, nothing written", () => {
    const dir = path.join(tmp, "dry");
    const r = installDocker(dir, { DOCKER_KEY_URL: `file://${key}`, DOCKER_KEY_FINGERPRINT: fpr }, [
      "--dry-run",
    ]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`fingerprint ${fpr}: verified`);
    expect(r.stderr).toContain("dry-run: would write");
    const { keyring, sources } = stateFiles(dir);
    expect(fs.existsSync(keyring)).toBe(false);
    expect(fs.existsSync(sources)).toBe(false);
    expect(callsIn(dir)).toEqual([]);
  }, 60_000);

  test("docker-apt with the expected fingerprint: key and deb822 source written, packages installed, docker enabled; a second run changes nothing", () => {
    const dir = path.join(tmp, "ok");
    const conf = {
      DOCKER_KEY_URL: `file://${key}`,
      DOCKER_KEY_FINGERPRINT: fpr,
      DOCKER_APT_URL: "https://download.docker.com/linux/ubuntu",
    };
    const r = installDocker(dir, conf);
    expect(r.stderr).toContain(`fingerprint ${fpr}: verified`);
    expect(r.status).toBe(0);
    const { keyring, sources } = stateFiles(dir);
    expect(fs.readFileSync(keyring, "utf8")).toBe(fs.readFileSync(key, "utf8"));
    expect(fs.statSync(keyring).mode & 0o777).toBe(0o644);
    const arch = sh("dpkg --print-architecture");
    expect(fs.readFileSync(sources, "utf8")).toBe(
      [
        "# Docker's official apt repository; written by /usr/local/lib/agent-host/install-docker.",
        "Types: deb",
        "URIs: https://download.docker.com/linux/ubuntu",
        "Suites: noble",
        "Components: stable",
        `Architectures: ${arch}`,
        `Signed-By: ${keyring}`,
        "",
      ].join("\n"),
    );
    // DOCKER_MODE unset: rootless, the default (no root daemon; each agent its own).
    expect(callsIn(dir)).toEqual([
      "apt-get -q -o DPkg::Lock::Timeout=300 update",
      "apt-get -q -o DPkg::Lock::Timeout=300 install -y docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin docker-ce-rootless-extras uidmap slirp4netns dbus-user-session",
      ...(fs.existsSync("/run/systemd/system")
        ? [
            "systemctl disable --now docker.service docker.socket",
            "systemctl mask docker.service docker.socket",
            "systemctl reset-failed docker.service docker.socket",
            "systemctl daemon-reload",
            "systemctl enable --now agent-docker-idle.timer",
          ]
        : [
            "systemctl disable docker.service docker.socket",
            "systemctl mask docker.service docker.socket",
            "systemctl enable agent-docker-idle.timer",
          ]),
    ]);

    const again = installDocker(dir, conf);
    expect(again.status).toBe(0);
    expect(again.stderr).toContain("already installed from an unchanged source");
    expect(callsIn(dir).filter((c) => c.startsWith("apt-get"))).toHaveLength(2); // none added
  }, 60_000);

  test("distro: installs docker.io, fetches no key", () => {
    const dir = path.join(tmp, "distro");
    const r = installDocker(dir, {
      DOCKER_SOURCE: "distro",
      DOCKER_KEY_URL: "file:///nonexistent",
    });
    expect(r.status).toBe(0);
    expect(callsIn(dir).slice(0, 2)).toEqual([
      "apt-get -q -o DPkg::Lock::Timeout=300 update",
      // Rootless (the default) adds what Docker's rootless mode needs and compose.
      "apt-get -q -o DPkg::Lock::Timeout=300 install -y docker.io rootlesskit uidmap slirp4netns dbus-user-session docker-compose",
    ]);
    expect(fs.existsSync(stateFiles(dir).keyring)).toBe(false);
  }, 60_000);
});

describeRoot("install-claude-code", () => {
  let tmp: string;
  let fakeBin: string;
  let npmMarker: string;

  function installClaude(
    conf: Record<string, string>,
    args: string[] = [],
    extraEnv: NodeJS.ProcessEnv = {},
    timeoutMs = 60_000,
  ): Result {
    const confFile = path.join(tmp, `host-${Math.random().toString(36).slice(2)}.conf`);
    writeConf(confFile, conf);
    return run(INSTALL_CLAUDE, args, { AGENTCTL_CONFIG: confFile, ...extraEnv }, timeoutMs);
  }

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "install-claude-"));
    // An npm that records being called, for the runs that must not reach npm at all.
    fakeBin = path.join(tmp, "fake-bin");
    fs.mkdirSync(fakeBin);
    npmMarker = path.join(tmp, "npm-was-called");
    fs.writeFileSync(
      path.join(fakeBin, "npm"),
      `#!/usr/bin/env bash\ntouch '${npmMarker}'\nexit 1\n`,
      { mode: 0o755 },
    );
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test.each([
    ["2.1", "is not an exact release such as 2.1.331"],
    ["v2.1.331", "is not an exact release such as 2.1.331"],
    ["02.1.331", "is not an exact release such as 2.1.331"],
    ["2.1.331; touch /tmp/pwned", "is not an exact release such as 2.1.331"],
    ["latest", "is not an exact release such as 2.1.331"],
    ["", "CLAUDE_CODE_VERSION is not set"],
  ])(
    "version %j is refused before anything runs",
    (version, message) => {
      const r = installClaude(
        { CLAUDE_CODE_VERSION: version, CLAUDE_BIN: path.join(tmp, "never", "claude") },
        ["--prefix", path.join(tmp, "never")],
        { PATH: `${fakeBin}:${process.env.PATH}` },
      );
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(message);
      expect(fs.existsSync(npmMarker)).toBe(false);
      expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);
    },
    30_000,
  );

  test("--dry-run installs nothing", () => {
    const bin = path.join(tmp, "dry", "claude");
    const r = installClaude(
      { CLAUDE_CODE_VERSION: CLAUDE_VERSION, CLAUDE_BIN: bin },
      ["--dry-run"],
      {
        PATH: `${fakeBin}:${process.env.PATH}`,
      },
    );
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`dry-run: would install Claude Code ${CLAUDE_VERSION} from npm`);
    expect(fs.existsSync(npmMarker)).toBe(false);
    expect(fs.existsSync(bin)).toBe(false);
  }, 30_000);

  describe("a real npm install into a temp prefix", () => {
    let bin: string;
    let prefix: string;
    let first: Result;

    beforeAll(() => {
      bin = path.join(tmp, "usr-local-bin", "claude");
      prefix = path.join(tmp, "prefix");
      first = installClaude(
        { CLAUDE_CODE_VERSION: CLAUDE_VERSION, CLAUDE_CODE_SOURCE: "npm", CLAUDE_BIN: bin },
        ["--prefix", prefix],
        {},
        300_000,
      );
      console.log(`install-claude-code: first install took ${first.ms} ms`);
    }, 320_000);

    test("installs the pinned version: CLAUDE_BIN --version prints exactly 'VERSION (Claude Code)'", () => {
      expect(first.stderr).toContain(
        `installing @anthropic-ai/claude-code@${CLAUDE_VERSION} with npm into ${prefix}`,
      );
      expect(first.status).toBe(0);
      expect(first.stdout).toBe(`${CLAUDE_VERSION} (Claude Code)\n`);
      expect(fs.readlinkSync(bin)).toBe(path.join(prefix, "bin", "claude"));
      const v = run(bin, ["--version"], { DISABLE_AUTOUPDATER: "1" }, 30_000);
      expect(v.status).toBe(0);
      expect(v.stdout).toBe(`${CLAUDE_VERSION} (Claude Code)\n`);
    }, 60_000);

    test("a second run is a no-op: npm is not called, and it is fast", () => {
      const again = installClaude(
        { CLAUDE_CODE_VERSION: CLAUDE_VERSION, CLAUDE_BIN: bin },
        ["--prefix", prefix],
        {
          PATH: `${fakeBin}:${process.env.PATH}`,
        },
      );
      console.log(`install-claude-code: second run took ${again.ms} ms`);
      expect(again.status).toBe(0);
      expect(again.stderr).toContain(`is already Claude Code ${CLAUDE_VERSION}; nothing to do`);
      expect(again.stdout).toBe(`${CLAUDE_VERSION} (Claude Code)\n`);
      expect(fs.existsSync(npmMarker)).toBe(false);
    }, 30_000);

    test("another pinned version is not mistaken for the installed one", () => {
      const r = installClaude({ CLAUDE_CODE_VERSION: "2.1.330", CLAUDE_BIN: bin }, ["--dry-run"]);
      expect(r.status).toBe(0);
      expect(r.stderr).toContain(
        `${bin}: ${CLAUDE_VERSION} (Claude Code); want 2.1.330 (Claude Code)`,
      );
    }, 30_000);
  });
});
