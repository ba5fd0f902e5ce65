// Each agent's own Docker, its pure parts (host/docker/rootless.ts): port blocks, subordinate ids,
// the environment the wrapper hands claude, the idle rule, the docker group, and the unit files
// that must agree with those numbers. No root, no Docker: tests/docker-rootless.test.ts runs the
// daemons for real.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { countShims, DOCKER_IDLE_MINUTES } from "../host/docker/docker-main";
import {
  agentDockerEnv,
  agentDockerSocket,
  agentPortBase,
  agentSubIds,
  agentUid,
  dockerGroupChanges,
  idleDaemons,
  MAX_PORT_BLOCK_AGENT,
  pinSubIds,
  PORT_BLOCK_SIZE,
  SUBID_COUNT,
  type DaemonFacts,
} from "../host/docker/rootless";
import { MAX_AGENTS_ANY_MACHINE } from "../config";
import { DISTRO_ROOTLESS_PACKAGES } from "../cloud-init/render";
import { claudeEnvProblem } from "../shared-rules";

const SYSTEMD = path.join(__dirname, "..", "cloud-init", "systemd");
const unit = (name: string) => fs.readFileSync(path.join(SYSTEMD, name), "utf8");

describe("port blocks", () => {
  test("agent-N owns 100 ports from 20000 + (N-1)*100; blocks never overlap", () => {
    expect([1, 2, 3, 12].map(agentPortBase)).toEqual([20000, 20100, 20200, 21100]);
    const ranges = Array.from({ length: MAX_AGENTS_ANY_MACHINE }, (_, i) => agentPortBase(i + 1));
    ranges.forEach((base, i) => {
      if (i > 0) expect(base - ranges[i - 1]).toBe(PORT_BLOCK_SIZE);
    });
  });

  test("every agent the stack allows has a block below Linux's ephemeral ports (32768)", () => {
    expect(MAX_PORT_BLOCK_AGENT).toBeGreaterThanOrEqual(MAX_AGENTS_ANY_MACHINE);
    expect(agentPortBase(MAX_PORT_BLOCK_AGENT) + PORT_BLOCK_SIZE - 1).toBeLessThan(32768);
    expect(() => agentPortBase(MAX_PORT_BLOCK_AGENT + 1)).toThrow(/no port block.*fewer agents/);
    expect(() => agentPortBase(0)).toThrow(/no port block/);
  });
});

describe("subordinate ids", () => {
  test("65,536 per agent, deterministic, disjoint, above useradd's SUB_UID_MAX (600100000)", () => {
    const all = Array.from({ length: MAX_PORT_BLOCK_AGENT }, (_, i) => agentSubIds(i + 1));
    expect(all[2]).toEqual(agentSubIds(3));
    for (const [i, r] of all.entries()) {
      expect(r.count).toBe(SUBID_COUNT);
      expect(r.start).toBeGreaterThan(600_100_000);
      if (i > 0) expect(r.start).toBeGreaterThanOrEqual(all[i - 1].start + all[i - 1].count);
    }
    // The last id fits in a uid_t below (uid_t)-1.
    const last = all[all.length - 1];
    expect(last.start + last.count).toBeLessThan(2 ** 32 - 1);
  });

  const pin = (n: number) => ({ name: `agent-${n}`, uid: agentUid(n), ...agentSubIds(n) });

  test("the agent's lines (by name or uid) are replaced, every other line kept", () => {
    const before = [
      "agent-admin:100000:65536",
      "agent-3:165536:65536", // what useradd handed out
      "2004:231072:65536", // by uid
      "ubuntu:296608:65536",
    ].join("\n");
    const { text, changed } = pinSubIds(`${before}\n`, [pin(3), pin(4)]);
    expect(changed).toBe(true);
    expect(text).toBe(
      [
        "agent-admin:100000:65536",
        "ubuntu:296608:65536",
        `agent-3:${agentSubIds(3).start}:65536`,
        `agent-4:${agentSubIds(4).start}:65536`,
        "",
      ].join("\n"),
    );
    expect(pinSubIds(text, [pin(3), pin(4)])).toEqual({ text, changed: false });
  });

  test("another user's range overlapping an agent's is refused, naming the line and the fix", () => {
    const s = agentSubIds(3).start;
    expect(() => pinSubIds(`someone:${s + 10}:65536\n`, [pin(3)])).toThrow(
      new RegExp(`'someone:${s + 10}:65536' overlaps agent-3's subordinate ids.*usermod`),
    );
  });
});

describe("the agent's environment", () => {
  test("rootless: its own socket, port block and compose project", () => {
    expect(agentDockerEnv(3, "rootless")).toEqual([
      "DOCKER_HOST=unix:///run/agent-docker/2003.sock",
      "AGENT_PORT_BASE=20200",
      "AGENT_PORT_COUNT=100",
      "COMPOSE_PROJECT_NAME=agent-3",
    ]);
  });

  test("shared: the root daemon's default socket; the port block and project stay", () => {
    expect(agentDockerEnv(4, "shared")).toEqual([
      "AGENT_PORT_BASE=20300",
      "AGENT_PORT_COUNT=100",
      "COMPOSE_PROJECT_NAME=agent-4",
    ]);
  });

  test("claudeEnv cannot override them (one value per agent)", () => {
    for (const pair of agentDockerEnv(1, "rootless"))
      expect(claudeEnvProblem([pair])?.problem).toMatch(/comes from its own setting/);
  });
});

describe("idle daemons", () => {
  const MIN = 60_000;
  const base: DaemonFacts = {
    agent: 2003,
    daemonActive: true,
    proxyActive: false,
    containers: 0,
    activeSinceMs: 0,
  };
  test.each([
    ["no client, no container, up long enough: stopped", {}, [2003]],
    ["a client connected lately (the relay still runs): kept", { proxyActive: true }, []],
    ["a container runs: kept", { containers: 1 }, []],
    ["just started: kept", { activeSinceMs: 95 * MIN }, []],
    ["already stopped: nothing to do", { daemonActive: false }, []],
  ])("%s", (_, change, expected) => {
    expect(idleDaemons([{ ...base, ...change }], 100 * MIN, 10 * MIN)).toEqual(expected);
  });

  test("the relay's --exit-idle-time is the idle time the check uses", () => {
    expect(unit("agent-docker@.service")).toContain(`--exit-idle-time=${DOCKER_IDLE_MINUTES}min`);
  });

  test("containers are counted from the daemon's cgroup tree: containerd shims only", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shims-"));
    const proc = path.join(tmp, "proc");
    const cg = path.join(tmp, "cg");
    const procs: Record<string, string> = {
      "10": "dockerd",
      "11": "containerd",
      "12": "containerd-shim-runc-v2",
      "13": "sh",
      "14": "containerd-shim",
    };
    for (const [pid, comm] of Object.entries(procs)) {
      fs.mkdirSync(path.join(proc, pid), { recursive: true });
      fs.writeFileSync(path.join(proc, pid, "comm"), `${comm}\n`);
    }
    fs.mkdirSync(path.join(cg, "app.slice", "docker.service"), { recursive: true });
    fs.writeFileSync(path.join(cg, "cgroup.procs"), "");
    fs.writeFileSync(path.join(cg, "app.slice", "cgroup.procs"), "13\n");
    fs.writeFileSync(
      path.join(cg, "app.slice", "docker.service", "cgroup.procs"),
      "10\n11\n12\n14\n99\n",
    );
    expect(countShims(cg, proc)).toBe(2);
    fs.writeFileSync(path.join(cg, "app.slice", "docker.service", "cgroup.procs"), "10\n11\n");
    expect(countShims(cg, proc)).toBe(0);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});

describe("the docker group", () => {
  test("rootless: every agent user leaves it, the legacy shared user too; nobody else", () => {
    expect(
      dockerGroupChanges(
        "rootless",
        ["agent", "agent-3", "agent-admin", "alice"],
        ["agent-3"],
        "agent",
      ),
    ).toEqual({ remove: ["agent", "agent-3"], add: [] });
  });
  test("shared: the agents join it", () => {
    expect(dockerGroupChanges("shared", ["agent-1"], ["agent-1", "agent-2"], "agent")).toEqual({
      remove: [],
      add: ["agent-2"],
    });
  });
});

describe("the units", () => {
  test("the socket: root's directory, the agent's socket 0600, at the path DOCKER_HOST names", () => {
    const socket = unit("agent-docker@.socket");
    expect(socket).toMatch(/^ListenStream=\/run\/agent-docker\/%i\.sock$/m);
    expect(agentDockerSocket(3)).toBe(`/run/agent-docker/${agentUid(3)}.sock`);
    expect(socket).toMatch(/^SocketUser=%i$/m);
    expect(socket).toMatch(/^SocketMode=0600$/m);
    expect(socket).toMatch(/^DirectoryMode=0755$/m);
  });

  test("the relay and the daemon run as the agent, never as root", () => {
    const relay = unit("agent-docker@.service");
    expect(relay).toMatch(/^User=%i$/m);
    expect(relay).toMatch(/^Requires=user@%i\.service$/m);
    expect(relay).toMatch(
      /^ExecStart=\/usr\/lib\/systemd\/systemd-socket-proxyd .* \/run\/user\/%i\/docker\.sock$/m,
    );
    // A user unit: it runs in the agent's own manager.
    expect(unit("user/agent-dockerd.service")).toMatch(
      /^ExecStart=\/usr\/local\/lib\/agent-host\/agent-dockerd$/m,
    );
  });
});

describe("one list of packages", () => {
  test("the renderer's rootless distro packages are install-docker's", () => {
    const script = fs.readFileSync(
      path.join(__dirname, "..", "cloud-init", "host", "install-docker"),
      "utf8",
    );
    const m = /^readonly -a DISTRO_ROOTLESS=\(([^)]*)\)$/m.exec(script);
    expect(m?.[1].split(/\s+/).filter(Boolean).sort()).toEqual(
      [...DISTRO_ROOTLESS_PACKAGES].sort(),
    );
  });
});

describe("systemd reads the units as written", () => {
  const analyze = spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0;
  (analyze ? test : test.skip)("systemd-analyze verify: no unknown key, no bad setting", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "units-"));
    const runtime = fs.mkdtempSync(path.join(os.tmpdir(), "xdg-"));
    for (const f of fs.readdirSync(SYSTEMD)) {
      if (fs.statSync(path.join(SYSTEMD, f)).isFile())
        fs.copyFileSync(path.join(SYSTEMD, f), path.join(dir, f));
    }
    // A template is verified through an instance: agent-3's.
    for (const t of ["agent-docker@.socket", "agent-docker@.service"])
      fs.symlinkSync(t, path.join(dir, t.replace("@", `@${agentUid(3)}`)));
    const verify = (args: string[], unitPath = `${dir}:`) =>
      spawnSync("systemd-analyze", ["verify", "--man=no", ...args], {
        encoding: "utf8",
        env: { ...process.env, SYSTEMD_UNIT_PATH: unitPath, XDG_RUNTIME_DIR: runtime },
      });
    // A unit with a key systemd does not know: proof that verify reads units on this machine.
    fs.writeFileSync(
      path.join(dir, "verify-canary.service"),
      "[Service]\nExecStart=/bin/true\nNoSuchKey=1\n",
    );
    const units = [
      `agent-docker@${agentUid(3)}.socket`,
      `agent-docker@${agentUid(3)}.service`,
      "agent-docker-idle.timer",
      "agent-docker-idle.service",
      "verify-canary.service",
    ];
    // As a user where no manager runs (a container: no /run/systemd, sd_booted(3)), systemd 252's
    // system-mode verify stops before reading a unit (it cannot make /run/systemd); the units
    // then go through user mode, the same unit-file parser, with the distro's system units on the
    // path for what they name (user@.service). The canary shows which mode read them.
    const readsUnits = (r: { stderr: string }) => r.stderr.includes("verify-canary.service");
    const files = units.map((u) => path.join(dir, u));
    let system = verify(files);
    if (!readsUnits(system))
      system = verify(["--user", ...files], `${dir}:/usr/lib/systemd/system:`);
    const user = verify(["--user", path.join(SYSTEMD, "user", "agent-dockerd.service")]);
    // What systemd says about the units names them. Other lines are about this machine: with no
    // manager running, 252 says it cannot create /run/systemd, and 255 finds no system bus.
    const named = [...units, "agent-dockerd.service"];
    const said = `${system.stderr}${user.stderr}`
      .split("\n")
      .filter((l) => named.some((u) => l.includes(u)));
    expect(said.filter((l) => l.includes("verify-canary.service"))).toEqual([
      expect.stringMatching(/Unknown key.*'NoSuchKey'/),
    ]);
    // Programs that exist only on the VM are the one thing this machine cannot check: the
    // product's own, and the VM's Node (Ubuntu's nodejs; a CI runner's Node is elsewhere).
    const problems = said
      .filter((l) => !l.includes("verify-canary.service"))
      .filter(
        (l) =>
          !/Command (\/usr\/local\/lib\/agent-host\/\S+|\/usr\/bin\/node) is not executable/.test(
            l,
          ),
      );
    expect(problems).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(runtime, { recursive: true, force: true });
  });
});

describe("install-docker, rootless: rootlesskit's AppArmor profile (dry run)", () => {
  const SCRIPT = path.join(__dirname, "..", "cloud-init", "host", "install-docker");
  function dryRun(restrict: string | undefined, profile: string | undefined) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "aa-"));
    const conf = path.join(tmp, "host.conf");
    fs.writeFileSync(conf, "DOCKER_SOURCE=distro\nDOCKER_MODE=rootless\n");
    const dir = path.join(tmp, "apparmor.d");
    fs.mkdirSync(dir);
    if (profile !== undefined) fs.writeFileSync(path.join(dir, "rootlesskit"), profile);
    const userns = path.join(tmp, "userns");
    if (restrict !== undefined) fs.writeFileSync(userns, `${restrict}\n`);
    const r = spawnSync("bash", [SCRIPT, "--dry-run", "--config", conf], {
      encoding: "utf8",
      env: { ...process.env, APPARMOR_DIR: dir, USERNS_RESTRICT_FILE: userns },
    });
    fs.rmSync(tmp, { recursive: true, force: true });
    return { code: r.status, err: r.stderr };
  }
  test("no restriction (Debian, or Ubuntu with it off): no profile needed", () => {
    expect(dryRun(undefined, undefined).err).toContain(
      "no AppArmor user-namespace restriction here; rootlesskit needs no profile",
    );
    expect(dryRun("0", undefined).err).toContain("rootlesskit needs no profile");
  });
  test("restricted, no profile on the system: ours is installed and loaded", () => {
    const r = dryRun("1", undefined);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/dry-run: would write \S+\/apparmor\.d\/rootlesskit/);
    expect(r.err).toMatch(/dry-run: would run: apparmor_parser -r \S+\/rootlesskit/);
  });
  test("restricted, Ubuntu's profile (it allows userns): used as it is", () => {
    const ubuntu =
      "abi <abi/4.0>,\nprofile rootlesskit /usr/bin/rootlesskit flags=(unconfined) {\n  userns,\n}\n";
    const r = dryRun("1", ubuntu);
    expect(r.code).toBe(0);
    expect(r.err).toContain("it allows userns");
    expect(r.err).not.toContain("would write");
  });
  test("restricted, a profile that does not allow userns: refused, naming the fix", () => {
    const r = dryRun("1", "profile rootlesskit /usr/bin/rootlesskit {\n}\n");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /does not allow userns; rootless Docker cannot start\. Restore Ubuntu's profile/,
    );
  });
  test("the profile shipped allows userns for /usr/bin/rootlesskit", () => {
    const shipped = fs.readFileSync(
      path.join(__dirname, "..", "cloud-init", "apparmor", "rootlesskit"),
      "utf8",
    );
    expect(shipped).toMatch(
      /^profile rootlesskit \/usr\/bin\/rootlesskit flags=\(unconfined\) \{$/m,
    );
    expect(shipped).toMatch(/^\s+userns,$/m);
  });
});
