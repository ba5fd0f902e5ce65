// Issue 20, point 5: upgrade in place. A host running TODAY's product (the shared agent user,
// every agent's state in its home, worktrees of one shared repository) is made for real by that
// product itself: agentctl, agent-wrapper and agent-host.js as they were at LEGACY_COMMIT (from
// git), on a real tmux server, with the stand-in claude. Then the current agentctl reconcile moves
// it onto one user per agent: files, ownership, conversations (session ids, --resume) and git
// checkouts kept; the shared user retired. A crash in the middle of a migration is simulated by
// the partial states each step leaves, and a re-run finishes them.
//
// Users: upgr (the shared user, uid 61400, made here as cloud-init made `agent`) and upgr-1..5
// (uid 61400+N, made by the product); all removed afterwards, with everything under the sandbox.
import { execFileSync, spawnSync } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pidsOfUid } from "../host/agents/migrate";
import { unavailableSuite } from "./real-suite";
import { removeTestAgents, standinRecords, waitFor } from "./support";
import { REPO, AGENTCTL, WRAPPER, TMUX_CONF, BUNDLE } from "./host-files";

/** The last commit before per-agent users: the product hosts run today. */
const LEGACY_COMMIT = "285b86cd8d98b3880e55359180cb5a68923a035f";
const PREFIX = "upgr";
const UID_BASE = 61400;
const LEGACY_UID = UID_BASE;
const NONCE = randomBytes(4).toString("hex");
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const isRoot = process.getuid?.() === 0;
const haveTools = ["tmux", "setpriv", "flock", "git", "setfacl", "useradd"].every(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
);
const haveHistory =
  spawnSync("git", ["-C", REPO, "cat-file", "-e", `${LEGACY_COMMIT}^{commit}`]).status === 0;
const suite =
  isRoot && haveTools && haveHistory
    ? describe
    : unavailableSuite(
        `upgrade-users needs root, tmux, setpriv, flock, git, setfacl, useradd and the repository's history (${LEGACY_COMMIT})`,
      );

let BASE = "";
const d = {
  old: () => path.join(BASE, "old"),
  conf: () => path.join(BASE, "host.conf"),
  homes: () => path.join(BASE, "data/home"),
  legacyState: () => path.join(BASE, "data/home", PREFIX, ".agent-host"),
  ws: (n?: number) => path.join(BASE, "workspaces", n ? `agent-${n}` : ""),
  run: () => path.join(BASE, "run"),
  sock: () => path.join(BASE, "run/tmux.sock"),
  canary: () => path.join(BASE, "canary"),
  repo: () => path.join(BASE, "team.git"),
};
const name = (n: number) => `${PREFIX}-${n}`;
const uid = (n: number) => UID_BASE + n;
const state = (n: number) => path.join(d.homes(), name(n), ".agent-host");

function sh(cmd: string, args: string[], opts: { input?: string; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

function asUser(u: number, home: string, argv: string[], cwd = "/") {
  return spawnSync(
    "setpriv",
    [
      `--reuid=${u}`,
      `--regid=${u}`,
      "--clear-groups",
      "--",
      "env",
      "-i",
      `HOME=${home}`,
      `PATH=${SYSTEM_PATH}`,
      ...argv,
    ],
    { encoding: "utf8", cwd, timeout: 30_000 },
  );
}

/** agentctl: the legacy one (from git) or the current one, on the same host.conf. */
function ctl(which: "old" | "new", args: string[]) {
  const dir = which === "old" ? d.old() : path.dirname(WRAPPER);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AGENTCTL_CONFIG: d.conf(),
    AGENT_WRAPPER: path.join(dir, "agent-wrapper"),
    // The current bundle as a copy in a 0755 folder: the migration runs it as each agent
    // (own-checkout), and CI's clone may sit in a folder agents cannot enter.
    AGENT_HOST_JS: path.join(which === "old" ? dir : path.join(BASE, "new"), "agent-host.js"),
    AGENTCTL_TMUX_CONF: TMUX_CONF,
  };
  delete env.TMUX;
  return spawnSync(which === "old" ? path.join(dir, "agentctl") : AGENTCTL, args, {
    env,
    encoding: "utf8",
    timeout: 120_000,
  });
}

interface Record {
  pid: number;
  uid: number;
  cwd: string;
  argv: string[];
}

interface Row {
  name: string;
  state: string;
  pid: number | null;
}
function status(): Row[] {
  const r = ctl("new", ["status", "--json"]);
  if (r.status !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { agents: Row[] }).agents;
}

suite("upgrade in place: the shared agent user of today's hosts → one user per agent", () => {
  jest.setTimeout(180_000);
  const sessions = new Map<number, string>();
  let gitStatusBefore = "";
  let legacyPid = 0;

  beforeAll(async () => {
    removeTestAgents(PREFIX, UID_BASE);
    spawnSync("userdel", [PREFIX]);
    spawnSync("groupdel", [PREFIX]);
    BASE = fs.mkdtempSync(path.join(os.tmpdir(), "upgrade-users-"));
    fs.chmodSync(BASE, 0o755);
    for (const dir of [d.old(), path.join(BASE, "new"), d.homes(), d.canary()])
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.copyFileSync(BUNDLE, path.join(BASE, "new", "agent-host.js"));
    fs.chmodSync(path.join(BASE, "new", "agent-host.js"), 0o755);
    fs.writeFileSync(path.join(d.canary(), "secret"), `root ${NONCE}\n`, { mode: 0o600 });
    for (const f of ["agentctl", "agent-wrapper", "agent-host.js", "seed-claude-config"]) {
      const text = execFileSync("git", [
        "-C",
        REPO,
        "show",
        `${LEGACY_COMMIT}:cloud-init/host/${f}`,
      ]);
      fs.writeFileSync(path.join(d.old(), f), text, { mode: 0o755 });
    }
    const standin = path.join(BASE, "claude");
    fs.copyFileSync(path.join(REPO, "tests/fixtures/claude"), standin);
    fs.chmodSync(standin, 0o755);
    // The shared user as cloud-init made it (pinned uid, home on the data disk), in docker's group.
    sh("groupadd", ["--gid", String(LEGACY_UID), PREFIX]);
    sh("useradd", [
      "--uid",
      String(LEGACY_UID),
      "--gid",
      String(LEGACY_UID),
      "--home-dir",
      path.join(d.homes(), PREFIX),
      "--create-home",
      "--shell",
      "/bin/bash",
      PREFIX,
    ]);
    if (spawnSync("getent", ["group", "docker"]).status === 0)
      sh("usermod", ["--append", "--groups", "docker", PREFIX]);
    // The repository below is root's, on a local path: git lets the shared user read it.
    const legacyGitconfig = path.join(d.homes(), PREFIX, ".gitconfig");
    fs.writeFileSync(legacyGitconfig, `[safe]\n\tdirectory = ${path.join(BASE, "team.git")}\n`);
    fs.chownSync(legacyGitconfig, LEGACY_UID, LEGACY_UID);
    // The team's repository: one commit on main.
    sh("git", ["init", "--quiet", "--bare", "--initial-branch=main", d.repo()]);
    const seed = path.join(BASE, "seed");
    sh("git", ["clone", "--quiet", d.repo(), seed]);
    fs.writeFileSync(path.join(seed, "README.md"), "team\n");
    sh("git", ["-C", seed, "add", "README.md"]);
    sh("git", [
      "-C",
      seed,
      "-c",
      "user.name=t",
      "-c",
      "user.email=t@x",
      "commit",
      "--quiet",
      "-m",
      "init",
    ]);
    sh("git", ["-C", seed, "push", "--quiet", "origin", "main"]);
    sh("chmod", ["-R", "a+rX", d.repo()]);
    fs.writeFileSync(
      d.conf(),
      [
        `AGENT_USER=${PREFIX}`,
        `AGENT_UID_BASE=${UID_BASE}`,
        `AGENT_HOMES_DIR=${d.homes()}`,
        `STATE_DIR=${d.legacyState()}`,
        `WORKSPACES_DIR=${d.ws()}`,
        `RUN_DIR=${d.run()}`,
        `TMUX_SOCKET=${d.sock()}`,
        `CLAUDE_BIN=${standin}`,
        `GIT_REPOSITORY=${d.repo()}`,
        `API_KEY_FILE=${path.join(BASE, "no-key")}`,
        "AGENT_MAX=12",
        "START_STAGGER_SECONDS=0.05",
        "RESTART_BACKOFF_MIN_SECONDS=1",
        "STOP_TIMEOUT_SECONDS=5",
        "",
      ].join("\n"),
    );

    // Today's product runs 5 agents, then scales down to 3: agents 4 and 5 keep their files.
    const five = ctl("old", ["reconcile", "5"]);
    if (five.status !== 0) throw new Error(`legacy reconcile 5: ${five.stderr}`);
    await waitFor(
      "the legacy agents 1..5 running as the shared user",
      () =>
        [1, 2, 3, 4, 5].every((n) =>
          standinRecords<Record>(path.join(d.legacyState(), `agent-${n}`)).some(
            (x) => x.uid === LEGACY_UID,
          ),
        ),
      30_000,
    );
    for (let n = 1; n <= 5; n++) {
      sessions.set(
        n,
        fs.readFileSync(path.join(d.legacyState(), `agent-${n}`, "session-id"), "utf8").trim(),
      );
      expect(fs.statSync(d.ws(n)).uid).toBe(LEGACY_UID);
    }
    // The agents' work, as the shared user: notes, a commit in agent 1's worktree, a link to
    // root's secret planted by a hostile agent, and a process left running in the background.
    const legacyHome = path.join(d.homes(), PREFIX);
    for (let n = 1; n <= 5; n++)
      expect(
        asUser(LEGACY_UID, legacyHome, ["sh", "-c", `echo 'notes ${n}' >notes.txt`], d.ws(n))
          .status,
      ).toBe(0);
    const commit = asUser(
      LEGACY_UID,
      legacyHome,
      [
        "git",
        "-c",
        "user.name=a",
        "-c",
        "user.email=a@x",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        `agent 1 work ${NONCE}`,
      ],
      d.ws(1),
    );
    expect(commit.stderr).toBe("");
    expect(
      asUser(LEGACY_UID, legacyHome, ["ln", "-s", path.join(d.canary(), "secret"), "evil"], d.ws(2))
        .status,
    ).toBe(0);
    gitStatusBefore = asUser(
      LEGACY_UID,
      legacyHome,
      ["git", "status", "--porcelain=v1", "--branch"],
      d.ws(1),
    ).stdout;
    const bg = spawnSync(
      "setpriv",
      [
        `--reuid=${LEGACY_UID}`,
        `--regid=${LEGACY_UID}`,
        "--clear-groups",
        "--",
        "sh",
        "-c",
        "setsid sleep 600 >/dev/null 2>&1 & echo $!",
      ],
      { encoding: "utf8" },
    );
    legacyPid = Number(bg.stdout.trim());
    expect(legacyPid).toBeGreaterThan(0);

    // A migration that crashed half-way through, as each step would leave it: agent 4's state
    // renamed to its scratch folder in a home made, not yet handed over; agent 5's workspace
    // handed over in part (its folder last, so still the shared user's).
    fs.mkdirSync(path.join(d.homes(), name(4)), { mode: 0o700 });
    fs.renameSync(path.join(d.legacyState(), "agent-4"), path.join(state(4) + ".migrating"));
    fs.lchownSync(path.join(d.ws(5), "notes.txt"), uid(5), uid(5));
  });

  afterAll(() => {
    if (BASE) spawnSync("tmux", ["-S", d.sock(), "kill-server"]);
    for (const p of pidsOfUid(LEGACY_UID)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    removeTestAgents(PREFIX, UID_BASE);
    spawnSync("userdel", [PREFIX]);
    spawnSync("groupdel", [PREFIX]);
    if (BASE) fs.rmSync(BASE, { recursive: true, force: true });
  });

  test("the next reconcile: each agent its own user, its files and conversation kept, resumed", async () => {
    const r = ctl("new", ["reconcile", "3", "--json"]);
    expect(r.stderr).toContain(
      `moving agent-1 agent-2 agent-3 agent-4 agent-5 from the shared user ${PREFIX}`,
    );
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ desired: 3, running: 3 });
    await waitFor(
      "agents 1..3 running as their own users",
      () =>
        status().filter((x) => x.state === "running" && x.pid).length === 3 &&
        [1, 2, 3].every((n) => standinRecords<Record>(state(n)).some((x) => x.uid === uid(n))),
      30_000,
    );
    for (let n = 1; n <= 5; n++) {
      // The state moved into the agent's own home, the session id kept, owned by the agent.
      expect(fs.readFileSync(path.join(state(n), "session-id"), "utf8").trim()).toBe(
        sessions.get(n),
      );
      expect(fs.existsSync(path.join(d.legacyState(), `agent-${n}`))).toBe(false);
      expect(fs.existsSync(`${state(n)}.migrating`)).toBe(false);
      const transcript = path.join(
        state(n),
        "claude/projects",
        d.ws(n).replace(/\//g, "-"),
        `${sessions.get(n)}.jsonl`,
      );
      expect(fs.statSync(transcript).uid).toBe(uid(n));
      // The workspace: its files, now the agent's; 0700; the admin may read (ACL).
      expect(fs.readFileSync(path.join(d.ws(n), "notes.txt"), "utf8")).toBe(`notes ${n}\n`);
      for (const f of [
        d.ws(n),
        path.join(d.ws(n), "notes.txt"),
        state(n),
        path.join(state(n), "claude"),
      ])
        expect([f, fs.lstatSync(f).uid]).toEqual([f, uid(n)]);
      expect(fs.statSync(d.ws(n)).mode & 0o007).toBe(0);
    }
    // The running agents resumed their conversations, as their own users, in the same workspace.
    for (const n of [1, 2, 3]) {
      const last = standinRecords<Record>(state(n))
        .filter((x) => x.uid === uid(n))
        .pop() as Record;
      expect(last.argv).toEqual(["--permission-mode", "default", "--resume", sessions.get(n)]);
      expect(last.cwd).toBe(d.ws(n));
    }
  });

  test("the shared repository's worktrees are repositories of their own; the checkout reads the same", () => {
    const as1 = (args: string[]) =>
      asUser(uid(1), path.join(d.homes(), name(1)), ["git", ...args], d.ws(1));
    expect(fs.lstatSync(path.join(d.ws(1), ".git")).isDirectory()).toBe(true);
    expect(as1(["rev-parse", "--git-common-dir"]).stdout.trim()).toBe(".git");
    expect(as1(["log", "-1", "--format=%s"]).stdout.trim()).toBe(`agent 1 work ${NONCE}`);
    expect(as1(["symbolic-ref", "--short", "HEAD"]).stdout.trim()).toBe("agent-1");
    expect(as1(["status", "--porcelain=v1", "--branch"]).stdout).toBe(gitStatusBefore);
    // Agent 2 cannot reach agent 1's repository (nor write the shared one, the retired user's).
    const other = asUser(uid(2), path.join(d.homes(), name(2)), [
      "git",
      "-C",
      d.ws(1),
      "log",
      "-1",
    ]);
    expect(other.status).not.toBe(0);
    expect(asUser(uid(2), "/", ["touch", path.join(d.ws(), ".repo.git", "x")]).status).not.toBe(0);
  });

  test("the shared user is retired: its processes ended, locked, out of the docker group; root's files untouched", () => {
    expect(pidsOfUid(LEGACY_UID)).toEqual([]);
    expect(sh("passwd", ["-S", PREFIX]).split(" ")[1]).toBe("L");
    expect(sh("getent", ["passwd", PREFIX]).trim().split(":")[6]).toMatch(/nologin|false/);
    expect(sh("id", ["-nG", PREFIX])).not.toMatch(/\bdocker\b/);
    // The link a hostile agent planted was handed over itself; its target, root's, was not.
    const secret = fs.statSync(path.join(d.canary(), "secret"));
    expect([secret.uid, secret.mode & 0o777]).toEqual([0, 0o600]);
    expect(fs.readFileSync(path.join(d.canary(), "secret"), "utf8")).toBe(`root ${NONCE}\n`);
    expect(fs.lstatSync(path.join(d.ws(2), "evil")).uid).toBe(uid(2));
  });

  test("a re-run changes nothing; scaling up gives agents 4 and 5 back their own files and conversations", async () => {
    const again = ctl("new", ["reconcile", "3", "--json"]);
    expect(again.stderr).not.toContain("moving");
    expect(JSON.parse(again.stdout)).toMatchObject({ added: [], removed: [], restarted: [] });
    const up = ctl("new", ["reconcile", "5", "--json"]);
    expect(JSON.parse(up.stdout)).toMatchObject({ added: ["agent-4", "agent-5"], running: 5 });
    for (const n of [4, 5]) {
      const rec = await waitFor(`agent-${n} running as ${name(n)}`, () =>
        standinRecords<Record>(state(n)).find((x) => x.uid === uid(n)),
      );
      expect(rec.argv).toEqual(["--permission-mode", "default", "--resume", sessions.get(n)]);
      expect(fs.readFileSync(path.join(d.ws(n), "notes.txt"), "utf8")).toBe(`notes ${n}\n`);
    }
  });
});
