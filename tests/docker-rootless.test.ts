// dockerMode rootless, for real on this machine: two agent users (agent-3, agent-4, uids 2003 and
// 2004 as the per-agent users have them), each with its own rootless Docker daemon started by the
// product's own files, attacked as the agent's own uid.
//
// What is the product's: the Docker step agentctl reconcile runs as root (setUpAgentDocker: the
// docker group, /etc/subuid and /etc/subgid), the daemon's launcher (cloud-init/host/agent-dockerd),
// the environment the wrapper hands claude (`agent-host.js docker-env N`), and the unit files,
// whose ExecStart, socket path and socket mode this test reads and follows.
//
// What stands in, because this build machine has no systemd as PID 1 (say so, do not pretend):
// - logind's runtime directory: /run/user/<uid>, 0700, owned by the user, as systemd's
//   user-runtime-dir@.service makes it (src/login/user-runtime-dir.c, user_mkdir_runtime_path);
// - the user manager running agent-dockerd.service: the launcher is started as the agent with
//   setpriv and the environment a user manager gives (HOME, USER, XDG_RUNTIME_DIR, PATH);
// - agent-docker@<uid>.socket: systemd's own systemd-socket-activate listens on the unit's
//   ListenStream= path and starts the unit's ExecStart (the relay) on the first connection; the
//   socket then gets the unit's SocketUser= and SocketMode= (systemd.socket(5)), as PID 1 does.
// - /dev/net/tun 0666: udev's rule on every real VM (50-udev-default.rules); this machine has no udev.
// Docker's cgroup handling differs too: here there is no systemd, so the daemon reports the
// "none" cgroup driver; on the VM it uses the agent's user manager (systemd driver).
//
// Figures (idle and active memory of a daemon stack, start time) are printed, not asserted.
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { setUpAgentDocker } from "../host/docker/docker-main";
import { agentDockerSocket, agentSubIds, agentUid, agentUserName } from "../host/docker/rootless";
import { parseHostConf } from "../host/conf/conf";
import { unavailableSuite } from "./real-suite";
import { BUNDLE, productHostConf, REPO } from "./host-files";
import { SAME_COMPOSE_FILE, descendants } from "./support";

const AGENTS = [3, 4];
const LAUNCHER = path.join(REPO, "cloud-init/host/agent-dockerd");
const SYSTEMD = path.join(REPO, "cloud-init/systemd");
const SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const TOOLS = [
  "docker",
  "docker-compose",
  "rootlesskit",
  "slirp4netns",
  "newuidmap",
  "setpriv",
  "busybox",
  "useradd",
  "systemd-socket-activate",
];
const missing = TOOLS.filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
const suite =
  isRoot && missing.length === 0 && fs.existsSync("/dev/net/tun")
    ? describe
    : unavailableSuite(
        `rootless Docker tests skipped: they need root, /dev/net/tun and ${missing.join(", ") || "nothing else"}`,
      );

interface Agent {
  n: number;
  name: string;
  uid: number;
  home: string;
  workspace: string;
  runtime: string;
  env: string[];
  daemon?: ChildProcess;
  relay?: ChildProcess;
  created: boolean;
}

let tmp = "";
/** The launcher copied where the agents can run it (beforeAll). */
let launcher = "";
const agents = new Map<number, Agent>();
const saved: { subuid?: string; subgid?: string; tunMode?: number } = {};
const setupLog: string[] = [];
const previousHome = new Map<string, string>();

const run = (file: string, args: string[], input?: string) =>
  spawnSync(file, args, { encoding: "utf8", input, timeout: 240_000 });

/** A command as the agent: its uid, gid and groups, nothing of root's environment, in its workspace. */
function asAgent(a: Agent, script: string, extraEnv: string[] = [], input?: string) {
  const env = [`HOME=${a.home}`, `USER=${a.name}`, `LOGNAME=${a.name}`, `PATH=${SYSTEM_PATH}`];
  const r = spawnSync(
    "setpriv",
    [
      `--reuid=${a.uid}`,
      `--regid=${a.uid}`,
      "--init-groups",
      "--",
      "env",
      "-i",
      ...env,
      ...a.env,
      ...extraEnv,
      "sh",
      "-c",
      script,
    ],
    { cwd: a.workspace, encoding: "utf8", input, timeout: 240_000 },
  );
  return { code: r.status, out: (r.stdout ?? "").trim(), err: (r.stderr ?? "").trim() };
}

async function until<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const unitLine = (file: string, key: string): string => {
  const m = new RegExp(`^${key}=(.*)$`, "m").exec(
    fs.readFileSync(path.join(SYSTEMD, file), "utf8"),
  );
  if (!m) throw new Error(`${file} has no ${key}=`);
  return m[1];
};

function createUser(n: number): Agent {
  const name = agentUserName(n);
  const uid = agentUid(n);
  const home = path.join(tmp, "data", "home", name);
  const workspace = path.join(tmp, "data", "workspaces", name);
  let created = false;
  if (spawnSync("getent", ["passwd", name]).status !== 0) {
    if (spawnSync("getent", ["group", String(uid)]).status !== 0)
      expect(run("groupadd", ["--gid", String(uid), name]).status).toBe(0);
    const r = run("useradd", [
      "--uid",
      String(uid),
      "--gid",
      String(uid),
      "-M",
      "-d",
      home,
      "-s",
      "/bin/bash",
      name,
    ]);
    expect(r.stderr).toBe("");
    created = true;
  } else {
    // A user left by another suite: its home is put back afterwards.
    previousHome.set(name, run("getent", ["passwd", name]).stdout.split(":")[5]);
    expect(run("usermod", ["-d", home, name]).status).toBe(0);
  }
  for (const dir of [home, workspace]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    fs.chownSync(dir, uid, uid);
  }
  return { n, name, uid, home, workspace, runtime: `/run/user/${uid}`, env: [], created };
}

/** All processes whose parent chain reaches `root` (the daemon stack), with their PSS in KiB. */
function stackPss(rootPid: number): { pids: number[]; pssKib: number } {
  const pids = descendants(rootPid);
  let pssKib = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      pssKib += m ? Number(m[1]) : 0;
    } catch {
      // gone
    }
  }
  return { pids, pssKib };
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body.trim()));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

const figures: string[] = [];

suite(
  "dockerMode rootless: each agent its own Docker (real daemons, attacked as the agent)",
  () => {
    jest.setTimeout(300_000);

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join("/var/tmp", "agent-host-docker-"));
      fs.chmodSync(tmp, 0o755);
      // The agent runs the launcher: a copy in our 0755 tree, since CI's clone may be in a 0700 dir.
      launcher = path.join(tmp, "agent-dockerd");
      fs.copyFileSync(LAUNCHER, launcher);
      fs.chmodSync(launcher, 0o755);
      for (const dir of ["data", "data/home", "data/workspaces"])
        fs.mkdirSync(path.join(tmp, dir), { mode: 0o755 });
      saved.subuid = fs.existsSync("/etc/subuid")
        ? fs.readFileSync("/etc/subuid", "utf8")
        : undefined;
      saved.subgid = fs.existsSync("/etc/subgid")
        ? fs.readFileSync("/etc/subgid", "utf8")
        : undefined;
      saved.tunMode = fs.statSync("/dev/net/tun").mode & 0o7777;
      for (const n of AGENTS) agents.set(n, createUser(n));
      // Today's host: its agents are in the docker group. The product takes them out.
      expect(run("usermod", ["--append", "--groups", "docker", "agent-3"]).status).toBe(0);

      // The product's own Docker step (what agentctl reconcile runs as root), for agents 1..4.
      // host.conf as the stack renders it for dockerMode rootless (the agents are the product's
      // own agent-N users, so no site override).
      const text = productHostConf({ "agent-host:dockerMode": "rootless" }, {});
      fs.writeFileSync(path.join(tmp, "host.conf"), text);
      const conf = parseHostConf(text, path.join(tmp, "host.conf"));
      setUpAgentDocker(conf, 4, (line) => setupLog.push(line));

      fs.chmodSync("/dev/net/tun", 0o666);
      const relayExec = unitLine("agent-docker@.service", "ExecStart").split(" ");
      const listen = unitLine("agent-docker@.socket", "ListenStream");
      const socketMode = parseInt(unitLine("agent-docker@.socket", "SocketMode"), 8);
      fs.mkdirSync("/run/agent-docker", { recursive: true, mode: 0o755 });

      for (const a of agents.values()) {
        // The environment the wrapper hands this agent's claude.
        const envRun = spawnSync("node", [BUNDLE, "docker-env", String(a.n)], {
          encoding: "utf8",
          env: { ...process.env, AGENTCTL_CONFIG: path.join(tmp, "host.conf") },
        });
        expect(envRun.status).toBe(0);
        expect(envRun.stderr).toBe("");
        a.env = envRun.stdout.trim().split("\n");

        // logind's /run/user/<uid>.
        fs.mkdirSync(a.runtime, { recursive: true, mode: 0o700 });
        fs.chmodSync(a.runtime, 0o700);
        fs.chownSync(a.runtime, a.uid, a.uid);
        const log = fs.openSync(path.join(tmp, `${a.name}-dockerd.log`), "w");
        const started = Date.now();
        a.daemon = spawn(
          "setpriv",
          [
            ...[`--reuid=${a.uid}`, `--regid=${a.uid}`, "--init-groups", "--", "env", "-i"],
            ...[
              `HOME=${a.home}`,
              `USER=${a.name}`,
              `PATH=${SYSTEM_PATH}`,
              `XDG_RUNTIME_DIR=${a.runtime}`,
            ],
            launcher,
          ],
          { stdio: ["ignore", log, log], detached: true },
        );
        const logFile = path.join(tmp, `${a.name}-dockerd.log`);
        await until(`${a.name}'s daemon`, 90_000, () =>
          asAgent(a, "docker info --format '{{.ServerVersion}}'", [
            `DOCKER_HOST=unix://${a.runtime}/docker.sock`,
          ]).code === 0
            ? true
            : undefined,
        ).catch((error: Error) => {
          const probe = asAgent(a, "docker info", [`DOCKER_HOST=unix://${a.runtime}/docker.sock`]);
          const tail = fs.readFileSync(logFile, "utf8").slice(-3000);
          throw new Error(`${error.message}\n${probe.err}\n${tail}`);
        });
        figures.push(`${a.name}: daemon answering ${Date.now() - started} ms after start`);
        const idle = stackPss(a.daemon.pid!);
        figures.push(
          `${a.name} idle daemon stack: ${idle.pids.length} processes, ${(idle.pssKib / 1024).toFixed(1)} MiB PSS`,
        );

        // agent-docker@<uid>.socket: systemd's socket activation tool, the unit's path and relay.
        const sock = listen.replace("%i", String(a.uid));
        expect(sock).toBe(agentDockerSocket(a.n));
        const exec = relayExec.map((w) => w.replace(/%i/g, String(a.uid)));
        a.relay = spawn(
          "systemd-socket-activate",
          [
            "-l",
            sock,
            "setpriv",
            `--reuid=${a.uid}`,
            `--regid=${a.uid}`,
            "--init-groups",
            "--",
            ...exec,
          ],
          { stdio: ["ignore", "ignore", "ignore"], detached: true },
        );
        await until(`${sock}`, 10_000, () => (fs.existsSync(sock) ? true : undefined));
        fs.chownSync(sock, a.uid, a.uid);
        fs.chmodSync(sock, socketMode);
      }
    });

    afterAll(async () => {
      for (const a of agents.values()) {
        if (a.daemon?.pid) {
          asAgent(a, "docker-compose down -t 1 >/dev/null 2>&1; true");
          try {
            process.kill(-a.daemon.pid, "SIGTERM");
          } catch {
            // gone
          }
        }
        if (a.relay?.pid)
          try {
            process.kill(-a.relay.pid, "SIGTERM");
          } catch {
            // gone
          }
      }
      // Each daemon's process group, given 3 s to end on SIGTERM before SIGKILL.
      const groupGone = (pgid: number) => {
        try {
          process.kill(-pgid, 0);
          return false;
        } catch {
          return true;
        }
      };
      await until("the agents' Docker daemons to exit", 3000, () =>
        [...agents.values()].every((a) => !a.daemon?.pid || groupGone(a.daemon.pid))
          ? true
          : undefined,
      ).catch(() => undefined);
      for (const a of agents.values()) {
        if (a.daemon?.pid)
          try {
            process.kill(-a.daemon.pid, "SIGKILL");
          } catch {
            // gone
          }
        fs.rmSync(a.runtime, { recursive: true, force: true });
        fs.rmSync(agentDockerSocket(a.n), { force: true });
        if (a.created) spawnSync("userdel", [a.name]);
        const home = previousHome.get(a.name);
        if (home) spawnSync("usermod", ["-d", home, a.name]);
        spawnSync("gpasswd", ["--delete", a.name, "docker"]);
      }
      if (saved.subuid !== undefined) fs.writeFileSync("/etc/subuid", saved.subuid);
      if (saved.subgid !== undefined) fs.writeFileSync("/etc/subgid", saved.subgid);
      if (saved.tunMode !== undefined) fs.chmodSync("/dev/net/tun", saved.tunMode);
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      if (figures.length > 0)
        process.stderr.write(`\nrootless Docker figures:\n  ${figures.join("\n  ")}\n`);
    });

    test("the product took the agent out of the docker group and pinned its subordinate ids", () => {
      for (const a of agents.values()) {
        expect(run("id", ["-nG", a.name]).stdout.split(/\s+/)).not.toContain("docker");
        const { start, count } = agentSubIds(a.n);
        expect(fs.readFileSync("/etc/subuid", "utf8")).toContain(
          `\n${a.name}:${start}:${count}\n`.slice(1),
        );
        expect(fs.readFileSync("/etc/subgid", "utf8")).toContain(`${a.name}:${start}:${count}\n`);
      }
      expect(setupLog).toContain(
        "docker: removed agent-3 from the docker group (root-equivalent; dockerMode rootless)",
      );
    });

    test("the daemon runs as the agent, in a user namespace of the agent's uid and its pinned ids", () => {
      for (const a of agents.values()) {
        const dockerd = spawnSync("pgrep", ["-u", String(a.uid), "-x", "dockerd"], {
          encoding: "utf8",
        });
        const pid = dockerd.stdout.trim().split("\n")[0];
        expect(pid).toMatch(/^\d+$/);
        expect(fs.readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(
          new RegExp(`^Uid:\\s+${a.uid}\\s`, "m"),
        );
        const map = fs
          .readFileSync(`/proc/${pid}/uid_map`, "utf8")
          .trim()
          .split("\n")
          .map((l) => l.trim().split(/\s+/));
        expect(map).toEqual([
          ["0", String(a.uid), "1"],
          ["1", String(agentSubIds(a.n).start), "65536"],
        ]);
        const info = asAgent(a, "docker info --format '{{.DockerRootDir}} {{.SecurityOptions}}'");
        expect(info.out).toContain(`${a.home}/.local/share/docker`);
        expect(info.out).toContain("rootless");
        expect(a.env).toContain(`DOCKER_HOST=unix://${agentDockerSocket(a.n)}`);
      }
    });

    test("docker build, docker run and docker-compose up work in agent-3's workspace", () => {
      for (const a of agents.values()) {
        // No registry here: an image from Debian's busybox-static, imported by the agent. Its links
        // point where busybox resolves itself (/usr/bin/busybox on Debian 12's merged /usr).
        const imp = asAgent(
          a,
          "set -e; mkdir -p rootfs/bin rootfs/usr/bin rootfs/www; cp /bin/busybox rootfs/usr/bin/busybox; /bin/busybox --install -s rootfs/bin; tar -C rootfs -c . | docker import - busybox:local >/dev/null; docker image ls --format '{{.Repository}}:{{.Tag}}'",
        );
        expect(imp).toMatchObject({ code: 0, out: expect.stringContaining("busybox:local") });
      }
      const a = agents.get(3)!;
      fs.writeFileSync(
        path.join(a.workspace, "Dockerfile"),
        'FROM busybox:local\nRUN echo "built by $(id -u) in the image" > /built\nCMD ["cat", "/built"]\n',
      );
      fs.chownSync(path.join(a.workspace, "Dockerfile"), a.uid, a.uid);
      // The container's answer comes through a bind mount of the workspace, not its stdout: Docker
      // 20.10 can lose the output of a container that exits at once (attach races the exit).
      const build = asAgent(
        a,
        'docker build -q -t app . && docker run --rm -v "$PWD:/w" app sh -c "cat /built > /w/result" && cat result',
      );
      expect([build.code, build.err.includes("failed")]).toEqual([0, false]);
      expect(build.out.split("\n").pop()).toBe("built by 0 in the image");
      // Root inside the container is the agent outside: the file it wrote is the agent's.
      expect(fs.statSync(path.join(a.workspace, "result")).uid).toBe(a.uid);
    });

    test("the same compose file runs for both agents at once, each on its own port block", async () => {
      for (const a of agents.values()) {
        fs.writeFileSync(path.join(a.workspace, "docker-compose.yml"), SAME_COMPOSE_FILE);
        fs.chownSync(path.join(a.workspace, "docker-compose.yml"), a.uid, a.uid);
      }
      const ups = [...agents.values()].map((a) => asAgent(a, "docker-compose up -d 2>&1"));
      for (const up of ups) expect(up.code).toBe(0);
      for (const a of agents.values()) {
        const port = 20000 + (a.n - 1) * 100;
        expect(a.env).toContain(`AGENT_PORT_BASE=${port}`);
        expect(await getWithin(port, 30_000)).toBe(a.name);
      }
      const three = agents.get(3)!;
      const four = agents.get(4)!;
      const id4 = asAgent(four, "docker ps -q --no-trunc").out;
      expect(id4).toMatch(/^[0-9a-f]{64}$/);
      figures.push(
        ...[three, four].map((a) => {
          const { pids, pssKib } = stackPss(a.daemon!.pid!);
          const relay = stackPss(a.relay!.pid!);
          return `${a.name} with one container: daemon stack ${pids.length} processes, ${(pssKib / 1024).toFixed(1)} MiB PSS; socket relay ${(relay.pssKib / 1024).toFixed(1)} MiB PSS`;
        }),
      );
    });

    test("agent-3 cannot list, inspect, stop or reach agent-4's containers, socket, data or daemon", () => {
      const three = agents.get(3)!;
      const four = agents.get(4)!;
      const id4 = asAgent(four, "docker ps -q --no-trunc").out;
      expect(id4).toMatch(/^[0-9a-f]{64}$/);
      // Its own daemon knows nothing of agent-4's containers.
      const ps = asAgent(three, "docker ps -a -q --no-trunc");
      expect(ps.code).toBe(0);
      expect(ps.out).not.toContain(id4);
      expect(asAgent(three, `docker inspect ${id4}`)).toMatchObject({
        code: 1,
        err: expect.stringMatching(/No such object/),
      });
      expect(asAgent(three, `docker stop ${id4}`)).toMatchObject({
        code: 1,
        err: expect.stringMatching(/No such container/),
      });
      expect(asAgent(three, `docker exec ${id4} true`)).toMatchObject({
        code: 1,
        err: expect.stringMatching(/No such container/),
      });
      // agent-4's sockets: the activation socket (0600 agent-4) and the daemon's own (in its 0700 runtime dir).
      for (const sock of [agentDockerSocket(4), `${four.runtime}/docker.sock`]) {
        const r = asAgent(three, "docker ps", [`DOCKER_HOST=unix://${sock}`]);
        expect(r.code).not.toBe(0);
        expect(r.err).toMatch(/permission denied/);
      }
      // agent-4's images, volumes and container files, and its daemon's process.
      expect(asAgent(three, `ls ${four.home}/.local/share/docker`)).toMatchObject({
        code: 2,
        err: expect.stringMatching(/Permission denied/),
      });
      expect(asAgent(three, `ls ${four.runtime}`)).toMatchObject({
        code: 2,
        err: expect.stringMatching(/Permission denied/),
      });
      const dockerd4 = spawnSync("pgrep", ["-u", String(four.uid), "-x", "dockerd"], {
        encoding: "utf8",
      })
        .stdout.trim()
        .split("\n")[0];
      const kill = asAgent(three, `kill -0 ${dockerd4}`);
      expect(kill.code).not.toBe(0);
      expect(kill.err).toMatch(/Operation not permitted/);
      expect(asAgent(three, `cat /proc/${dockerd4}/environ`).code).not.toBe(0);
      // From agent-3's container, the host's loopback (agent-4's published port) is not reachable:
      // rootlesskit's --disable-host-loopback. From agent-3's own shell it is (docs/security.md).
      const viaLoopback = asAgent(
        three,
        "docker run --rm busybox:local wget -q -O- -T 3 http://10.0.2.2:20300/",
      );
      expect(viaLoopback.code).not.toBe(0);
      expect(asAgent(three, "wget -q -O- -T 3 http://127.0.0.1:20300/").out).toBe("agent-4");
      // agent-4's service is still up and still agent-4's.
      expect(asAgent(four, "docker ps -q --no-trunc").out).toBe(id4);
    });

    test("neither agent is in the docker group or can reach a root Docker socket; docker run -v /:/host is not root", () => {
      // Not under /etc or /run: dockerd-rootless.sh starts rootlesskit with --copy-up=/etc and
      // --copy-up=/run, so inside its namespace those are copies taken when the daemon started.
      const canary = "/var/lib/agent-host-docker-canary";
      fs.writeFileSync(canary, "root's\n", { mode: 0o600 });
      try {
        for (const a of agents.values()) {
          expect(run("id", ["-nG", a.name]).stdout.split(/\s+/)).not.toContain("docker");
          const root = asAgent(a, "docker ps", ["DOCKER_HOST=unix:///var/run/docker.sock"]);
          expect(root.code).not.toBe(0);
          // The whole host mounted into the agent's own container: root in there is the agent.
          // Each attempt's error and exit code land in the agent's workspace (see the build test).
          const attempts: Record<string, string> = {
            read: `cat /host${canary}`,
            write: `echo x > /host${canary}`,
            shadow: "cat /host/etc/shadow",
            plant: "touch /host/var/lib/owned",
          };
          const script = Object.entries(attempts)
            .map(([name, cmd]) => `(${cmd}) > /w/${name} 2>&1; echo rc=$? >> /w/${name}`)
            .join("; ");
          const probe = fs.mkdtempSync(path.join(a.workspace, "probe-"));
          fs.chownSync(probe, a.uid, a.uid);
          const r = asAgent(
            a,
            `docker run --rm -v /:/host -v ${probe}:/w busybox:local sh -c '${script}'`,
          );
          expect(r.code).toBe(0);
          for (const name of Object.keys(attempts)) {
            const said = fs.readFileSync(path.join(probe, name), "utf8");
            expect([name, /Permission denied/.test(said), /rc=0/.test(said)]).toEqual([
              name,
              true,
              false,
            ]);
          }
          expect(fs.existsSync("/var/lib/owned")).toBe(false);
        }
        expect(fs.readFileSync(canary, "utf8")).toBe("root's\n");
        expect(fs.statSync(canary).mode & 0o7777).toBe(0o600);
      } finally {
        fs.rmSync(canary, { force: true });
      }
    });
  },
);

async function getWithin(port: number, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await httpGet(port);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}
