// What host/docker/rootless.ts decides, done: each agent's subordinate ids and docker-group
// membership and its Docker socket (agentctl reconcile, as root), the environment the wrapper
// hands its claude (`agent-host.js docker-env N`), and the idle stop (`agent-host.js docker-idle`,
// agent-docker-idle.timer). Root only writes root-owned files here (/etc/subuid, /etc/subgid,
// through a temporary file in /etc and a rename) and only reads kernel files (cgroupfs, /proc):
// it never opens a path an agent can write, and never talks to an agent's daemon.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lookupUsers, type AgentUser } from "../agents/agent-user";
import { firstErrorOf, loadHostConf, type HostConf } from "../conf/conf";
import type { DockerMode } from "../../shared-rules";
import {
  agentDockerEnv,
  agentSubIds,
  agentUid,
  agentUserName,
  dockerGroupChanges,
  idleDaemons,
  isContainerShim,
  pinSubIds,
  type DaemonFacts,
  type SubIdPin,
} from "./rootless";

type Log = (line: string) => void;

/** A daemon stops after this long without a client (the relay's --exit-idle-time) and no container. */
export const DOCKER_IDLE_MINUTES = 10;

const hasSystemd = (): boolean => fs.existsSync("/run/systemd/system");

function run(file: string, args: readonly string[], log: Log): boolean {
  const r = spawnSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status === 0) return true;
  log(`warning: ${file} ${args.join(" ")} failed: ${(r.stderr || r.error?.message || "").trim()}`);
  return false;
}

function capture(file: string, args: readonly string[]): string {
  const r = spawnSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  return r.status === 0 ? r.stdout : "";
}

/** The members of a group as getent lists them ([] when the group does not exist). */
function groupMembers(group: string): string[] {
  const line = capture("getent", ["group", group]).split("\n")[0] ?? "";
  const f = line.split(":");
  return f.length >= 4 && f[3] ? f[3].split(",").filter(Boolean) : [];
}

/**
 * Replaces a root-owned file in a root-owned directory: a new file beside it (O_EXCL: never an
 * existing path), then a rename. Nothing an agent can write is opened.
 */
function replaceRootFile(file: string, text: string): void {
  const tmp = `${file}.agent-host.${process.pid}`;
  const fd = fs.openSync(
    tmp,
    fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL,
    0o644,
  );
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** /etc/subuid and /etc/subgid hold each agent's pinned range (AGENT_HOST_ROOT prefixes them in tests). */
function pinAgentSubIds(pins: readonly SubIdPin[], root: string, log: Log): void {
  for (const name of ["subuid", "subgid"]) {
    const file = path.join(root || "/", "etc", name);
    let text = "";
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      text = "";
    }
    const next = pinSubIds(text, pins);
    if (!next.changed) continue;
    replaceRootFile(file, next.text);
    log(`pinned ${pins.map((p) => `${p.name}:${p.start}`).join(" ")} in ${file}`);
  }
}

/** The uids of the agent-docker@<uid>.socket units systemd knows (loaded or active). */
function agentSocketUids(): number[] {
  const out = capture("systemctl", [
    "list-units",
    "--all",
    "--plain",
    "--no-legend",
    "agent-docker@*.socket",
  ]);
  return [...out.matchAll(/agent-docker@(\d+)\.socket/g)].map((m) => Number(m[1]));
}

function stopAgentDocker(uid: number, log: Log): void {
  run(
    "systemctl",
    ["disable", "--now", "--quiet", `agent-docker@${uid}.socket`, `agent-docker@${uid}.service`],
    log,
  );
  run("systemctl", ["stop", `user@${uid}.service`], log);
}

/** The users the Docker step looks up for agents 1..count. */
export const dockerUserNames = (count: number): string[] =>
  Array.from({ length: count }, (_, i) => agentUserName(i + 1));

/**
 * agentctl reconcile's Docker step, as root, for agents 1..count: in rootless mode no agent stays
 * in the docker group, each has its pinned subordinate ids and its socket; in shared mode each is
 * in the docker group and no per-agent socket runs. Agents above count lose their socket (and
 * daemon); their images and volumes stay in their home.
 */
export function setUpAgentDocker(
  conf: HostConf,
  count: number,
  log: Log,
  env = process.env,
  users: (names: readonly string[]) => Map<string, AgentUser> = lookupUsers,
): void {
  const mode = conf.dockerMode as DockerMode;
  // One getent for every agent's user (reconcile's time is mostly the processes it starts), or
  // none: reconcile passes the users its own getent found (dockerUserNames) and it made since.
  const names = dockerUserNames(count);
  const found = users(names);
  const agents = names.flatMap((name, i) => {
    const user = found.get(name);
    if (user) return [{ n: i + 1, user }];
    log(`docker: no user ${name} yet; its Docker is set up on the next reconcile`);
    return [];
  });
  const changes = dockerGroupChanges(
    mode,
    groupMembers("docker"),
    agents.map((a) => a.user.name),
    conf.agentUser,
  );
  for (const u of changes.remove)
    if (run("gpasswd", ["--delete", u, "docker"], log))
      log(`docker: removed ${u} from the docker group (root-equivalent; dockerMode rootless)`);
  for (const u of changes.add)
    if (run("usermod", ["--append", "--groups", "docker", u], log))
      log(`docker: added ${u} to the docker group (dockerMode shared: root-equivalent)`);
  if (mode === "rootless") {
    const pins = agents.map(({ n, user }) => ({
      name: user.name,
      uid: user.uid,
      ...agentSubIds(n),
    }));
    if (pins.length > 0) pinAgentSubIds(pins, env.AGENT_HOST_ROOT ?? "", log);
  }
  if (!hasSystemd()) return;
  const wanted = new Set(mode === "rootless" ? agents.map((a) => a.user.uid) : []);
  for (const uid of agentSocketUids()) if (!wanted.has(uid)) stopAgentDocker(uid, log);
  if (wanted.size > 0)
    run(
      "systemctl",
      ["enable", "--now", "--quiet", ...[...wanted].map((uid) => `agent-docker@${uid}.socket`)],
      log,
    );
}

/** `agent-host.js docker-env N`: the NAME=value lines agent-N's claude gets (agent-wrapper). */
export function dockerEnvMain(argv: readonly string[], env = process.env): number {
  const n = Number(argv[0]);
  if (argv.length !== 1 || !/^[1-9][0-9]*$/.test(argv[0] ?? "")) {
    process.stderr.write("agent-host.js: usage: docker-env N (the agent's number)\n");
    return 2;
  }
  const conf = loadHostConf(env);
  const error = firstErrorOf(conf, ["dockerMode"]);
  if (error) {
    process.stderr.write(`agent-host.js docker-env: ${error}\n`);
    return 2;
  }
  try {
    process.stdout.write(`${agentDockerEnv(n, conf.dockerMode as DockerMode).join("\n")}\n`);
  } catch (e) {
    process.stderr.write(`agent-host.js docker-env: ${(e as Error).message}\n`);
    return 2;
  }
  return 0;
}

/** At most this many cgroups and processes are looked at per daemon (an agent makes its own cgroups). */
const MAX_CGROUPS = 4096;

/** Containers running in a cgroup tree: containerd shims among its processes (kernel files only). */
export function countShims(cgroupDir: string, procRoot = "/proc"): number {
  let shims = 0;
  let seen = 0;
  const walk = (dir: string): void => {
    if (++seen > MAX_CGROUPS) return;
    let procs = "";
    try {
      procs = fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8");
    } catch {
      return;
    }
    for (const pid of procs.split("\n").filter(Boolean)) {
      try {
        if (isContainerShim(fs.readFileSync(path.join(procRoot, pid, "comm"), "utf8"))) shims++;
      } catch {
        // gone meanwhile
      }
    }
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }))
      if (entry.isDirectory()) walk(path.join(dir, entry.name));
  };
  walk(cgroupDir);
  return shims;
}

const show = (unit: string, property: string): string =>
  capture("systemctl", ["show", "--value", "-p", property, unit]).trim();

/** `agent-host.js docker-idle` (agent-docker-idle.timer): stops the agents' idle daemons. */
export function dockerIdleMain(env = process.env): number {
  const log: Log = (line) => process.stderr.write(`docker-idle: ${line}\n`);
  const conf = loadHostConf(env);
  if (conf.dockerMode !== "rootless" || !hasSystemd()) return 0;
  const uptimeMs = Number(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000;
  const facts: DaemonFacts[] = agentSocketUids().map((uid) => {
    const manager = `user@${uid}.service`;
    const cgroup = show(manager, "ControlGroup");
    return {
      agent: uid,
      daemonActive: show(manager, "ActiveState") === "active",
      proxyActive: show(`agent-docker@${uid}.service`, "ActiveState") === "active",
      containers: cgroup ? countShims(path.join("/sys/fs/cgroup", cgroup)) : 0,
      activeSinceMs: Number(show(manager, "ActiveEnterTimestampMonotonic") || 0) / 1000,
    };
  });
  for (const uid of idleDaemons(facts, uptimeMs, DOCKER_IDLE_MINUTES * 60_000)) {
    log(
      `uid ${uid}: no Docker client for ${DOCKER_IDLE_MINUTES} min and no container; stopping its daemon`,
    );
    run("systemctl", ["stop", `user@${uid}.service`], log);
  }
  return 0;
}

/** For tests and docs: the uid whose socket is agent-N's. */
export const agentSocketUnit = (n: number): string => `agent-docker@${agentUid(n)}.socket`;
