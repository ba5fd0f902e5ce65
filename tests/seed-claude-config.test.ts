// seed-claude-config (cloud-init/host/seed-claude-config), run for real with jq, the way
// agent-wrapper runs it: as an unprivileged user, the script read through an inherited
// descriptor, the key's last 20 characters on stdin. What the seeded fields do to the real
// Claude Code binary is proven in tests/real-claude.test.ts; here: that seeding only ever adds
// what is missing.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { unavailableSuite } from "./real-suite";
import { TestUsers } from "./support";

const SCRIPT = path.resolve(__dirname, "../cloud-init/host/seed-claude-config");
const USER = "seedtest";
const SUFFIX = "abcdefghij0123456789";
const WS = "/workspaces/agent-3";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const haveTools = ["jq", "setpriv", "shellcheck"].every(
  (t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0,
);
const suite =
  isRoot && haveTools
    ? describe
    : unavailableSuite("seed-claude-config tests need root, jq, setpriv, shellcheck");

let dir: string;
let uid: number;

function seed(args: string[], stdin = `${SUFFIX}\n`) {
  const fd = fs.openSync(SCRIPT, "r");
  try {
    return spawnSync(
      "setpriv",
      [
        "--reuid",
        String(uid),
        "--regid",
        String(uid),
        "--clear-groups",
        "--",
        "bash",
        "/dev/fd/3",
        ...args,
      ],
      {
        input: stdin,
        encoding: "utf8",
        stdio: ["pipe", "pipe", "pipe", fd],
        env: { PATH: "/usr/bin:/bin" },
      },
    );
  } finally {
    fs.closeSync(fd);
  }
}

const state = () =>
  JSON.parse(fs.readFileSync(path.join(dir, ".claude.json"), "utf8")) as Record<string, unknown>;
const write = (name: string, value: unknown) => {
  fs.writeFileSync(path.join(dir, name), typeof value === "string" ? value : JSON.stringify(value));
  fs.chownSync(path.join(dir, name), uid, uid);
};

suite("seed-claude-config", () => {
  const users = new TestUsers();
  afterAll(() => users.removeAll());
  beforeAll(() => {
    users.ensure(USER, { shell: "/usr/sbin/nologin", args: ["--user-group"] });
    uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "seed-"));
    fs.chownSync(dir, uid, uid);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("is shellcheck clean", () => {
    const r = spawnSync("shellcheck", [SCRIPT], { encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  test("a fresh config gets onboarding, trust and the key's approval; bypass gets its acceptance", () => {
    const r = seed([dir, WS, "--bypass-permissions"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(state()).toEqual({
      hasCompletedOnboarding: true,
      projects: { [WS]: { hasTrustDialogAccepted: true } },
      customApiKeyResponses: { approved: [SUFFIX], rejected: [] },
    });
    expect(JSON.parse(fs.readFileSync(path.join(dir, "settings.json"), "utf8"))).toEqual({
      skipDangerousModePermissionPrompt: true,
    });
    for (const f of [".claude.json", "settings.json"]) {
      const st = fs.statSync(path.join(dir, f));
      expect([st.uid, st.mode & 0o777]).toEqual([uid, 0o600]);
    }
  });

  test("no key on stdin: nothing approved; no bypass: settings.json untouched", () => {
    expect(seed([dir, WS], "\n").status).toBe(0);
    expect(state()).toEqual({
      hasCompletedOnboarding: true,
      projects: { [WS]: { hasTrustDialogAccepted: true } },
    });
    expect(fs.existsSync(path.join(dir, "settings.json"))).toBe(false);
  });

  test("never changes what is there: a rejected key, onboarding set back, a refused trust, other fields", () => {
    const before = {
      hasCompletedOnboarding: false,
      numStartups: 7,
      customApiKeyResponses: { approved: ["otherkey0123456789ab"], rejected: [SUFFIX] },
      projects: {
        [WS]: { hasTrustDialogAccepted: false, allowedTools: ["Bash"] },
        "/elsewhere": { hasTrustDialogAccepted: true },
      },
    };
    write(".claude.json", before);
    write("settings.json", { skipDangerousModePermissionPrompt: false, model: "opus" });
    expect(seed([dir, WS, "--bypass-permissions"]).status).toBe(0);
    expect(state()).toEqual(before);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "settings.json"), "utf8"))).toEqual({
      skipDangerousModePermissionPrompt: false,
      model: "opus",
    });
  });

  test("adds only the missing parts next to the existing ones, and a second run changes nothing", () => {
    write(".claude.json", {
      userID: "u1",
      customApiKeyResponses: { approved: ["otherkey0123456789ab"] },
      projects: { [WS]: { allowedTools: [] } },
    });
    expect(seed([dir, WS]).status).toBe(0);
    const once = state();
    expect(once).toEqual({
      userID: "u1",
      hasCompletedOnboarding: true,
      customApiKeyResponses: { approved: ["otherkey0123456789ab", SUFFIX], rejected: [] },
      projects: { [WS]: { allowedTools: [], hasTrustDialogAccepted: true } },
    });
    const mtime = fs.statSync(path.join(dir, ".claude.json")).mtimeMs;
    expect(seed([dir, WS]).status).toBe(0);
    expect(state()).toEqual(once);
    expect(fs.statSync(path.join(dir, ".claude.json")).mtimeMs).toBe(mtime);
  });

  test("a file that is not a JSON object, or a link, is left as it is (exit 1)", () => {
    write(".claude.json", "[1, 2]");
    let r = seed([dir, WS]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is not a JSON object; not seeding it/);
    expect(fs.readFileSync(path.join(dir, ".claude.json"), "utf8")).toBe("[1, 2]");
    fs.rmSync(path.join(dir, ".claude.json"));
    fs.symlinkSync("/etc/hostname", path.join(dir, ".claude.json"));
    r = seed([dir, WS]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/symbolic link/);
    expect(fs.readdirSync(dir).filter((f) => f.includes(".seed."))).toEqual([]);
  });

  test("refuses root, a relative workspace, and a malformed key suffix", () => {
    const asRoot = spawnSync("bash", [SCRIPT, dir, WS], { input: `${SUFFIX}\n`, encoding: "utf8" });
    expect(asRoot.status).toBe(1);
    expect(asRoot.stderr).toMatch(/refusing to run as root/);
    expect(seed([dir, "agent-3"]).stderr).toMatch(/absolute path/);
    const bad = seed([dir, WS], "sk-ant-api03-whole-key-here\n");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/not 20 key characters/);
    expect(fs.existsSync(path.join(dir, ".claude.json"))).toBe(false);
  });
});
