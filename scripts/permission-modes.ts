// What the pinned Claude Code (2.1.331, the real binary: tests/fixtures/real-claude.ts) does with
// each --permission-mode agentPermissionMode accepts, for a command that only reads (`sleep 1`)
// and one that writes (`touch FILE`): does it ask ("Do you want to proceed?" in its pane), run the
// command without asking, or refuse it? Prints one line per mode and command; asserts nothing. The
// table in config-keys.ts (agentPermissionMode) and docs/operations.md say what it found.
//
// Each mode runs in its own tmux window, as an unprivileged user (claude refuses
// bypassPermissions as root, and agents are never root), with a config folder seeded as the
// wrapper seeds it (cloud-init/host/seed-claude-config), against the Messages API stand-in
// (tests/fixtures/messages-api.ts), which answers the prompt with a Bash tool use. A dialog is
// answered "1. Yes", as a person would, and the command's effect (the file) is checked.
//
// Run as root, under the shared lock (it uses a Unix user and a tmux server):
//   flock /tmp/agent-host-system.lock npx ts-node --transpile-only scripts/permission-modes.ts
import { execFile, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { lastToolUse } from "../host/attention/hook";
import { PERMISSION_MODES } from "../shared-rules";
import { startMessagesApi, type RecordedRequest } from "../tests/fixtures/messages-api";
import { realClaudeBin } from "../tests/fixtures/real-claude";

const run = promisify(execFile);
const USER = "permmodes";
const SEED = path.resolve(__dirname, "../cloud-init/host/seed-claude-config");
const API_KEY = `sk-ant-api03-PERMMODES${"k".repeat(70)}`;
const STEP_MS = 45_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The tool_result a request's last message carries (what the tool did), in one line. */
function lastToolResult(r: RecordedRequest): string | undefined {
  const msgs = r.body?.messages ?? [];
  const last = msgs[msgs.length - 1];
  if (!last || !Array.isArray(last.content)) return undefined;
  for (const b of last.content as { type?: string; content?: unknown; is_error?: boolean }[]) {
    if (b.type !== "tool_result") continue;
    const text = typeof b.content === "string" ? b.content : JSON.stringify(b.content);
    return `${b.is_error ? "error: " : ""}${text.replace(/\s+/g, " ").slice(0, 100) || "(empty)"}`;
  }
  return undefined;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (a Unix user, tmux as that user)");
  const bin = realClaudeBin();
  if (spawnSync("id", ["-u", USER]).status !== 0)
    spawnSync("useradd", ["--create-home", "--shell", "/bin/bash", USER], { stdio: "inherit" });
  const uid = Number(spawnSync("id", ["-u", USER], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", USER], { encoding: "utf8" }).stdout.trim());
  const api = await startMessagesApi({ defaultText: "done" });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "permission-modes-"));
  fs.chmodSync(dir, 0o755);
  // tmux (as the user) makes its socket there; it says so, and exits 0, when it cannot.
  const sockDir = path.join(dir, "tmux");
  fs.mkdirSync(sockDir, { mode: 0o700 });
  fs.chownSync(sockDir, uid, gid);
  const sock = path.join(sockDir, "tmux.sock");
  const as = (argv: string[]) => [
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--init-groups",
    ...argv,
  ];
  // From "/": the caller's folder may be closed to the user, and a pane that cannot start there
  // ends the server.
  const tmux = (args: string[]) =>
    run(as(["tmux", "-S", sock, ...args])[0], as(["tmux", "-S", sock, ...args]).slice(1), {
      cwd: "/",
      env: { PATH: process.env.PATH, LANG: "C.UTF-8", HOME: `/home/${USER}` },
    });
  const pane = async (w: string) =>
    (await tmux(["capture-pane", "-p", "-J", "-t", `=s:=${w}`])).stdout;
  const results: string[] = [];
  try {
    await tmux([
      "new-session",
      ...["-d", "-s", "s", "-n", "control", "-x", "200", "-y", "50", "-c", "/"],
      ...["sleep", "infinity"],
    ]);
    for (const mode of PERMISSION_MODES) {
      const cfg = path.join(dir, `cfg-${mode}`);
      const ws = path.join(dir, `ws-${mode}`);
      for (const d of [cfg, ws]) {
        fs.mkdirSync(d, { mode: 0o700 });
        fs.chownSync(d, uid, gid);
      }
      // Every hook event, logged: which ones fire in this mode, and what they carry.
      const hookLog = path.join(dir, `hooks-${mode}.jsonl`);
      fs.writeFileSync(hookLog, "");
      fs.chownSync(hookLog, uid, gid); // the hooks run as the user
      const hook = {
        hooks: [{ type: "command", command: `cat >> ${hookLog}; echo >> ${hookLog}` }],
      };
      const events = [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PermissionRequest",
        "PostToolUse",
        "Notification",
        "Stop",
      ];
      fs.writeFileSync(
        path.join(cfg, "settings.json"),
        JSON.stringify({ hooks: Object.fromEntries(events.map((e) => [e, [hook]])) }),
      );
      fs.chownSync(path.join(cfg, "settings.json"), uid, gid);
      const seedArgs = [
        SEED,
        cfg,
        ws,
        ...(mode === "bypassPermissions" ? ["--bypass-permissions"] : []),
      ];
      const seeded = spawnSync(as(seedArgs)[0], as(seedArgs).slice(1), {
        input: `${API_KEY.slice(-20)}\n`,
        encoding: "utf8",
      });
      if (seeded.status !== 0) throw new Error(`seed: ${seeded.stderr}`);
      const env = [
        `HOME=/home/${USER}`,
        `CLAUDE_CONFIG_DIR=${cfg}`,
        `ANTHROPIC_API_KEY=${API_KEY}`,
        `ANTHROPIC_BASE_URL=${api.url}`,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "DISABLE_AUTOUPDATER=1",
        "TERM=xterm-256color",
        "LANG=C.UTF-8",
      ];
      const cmd = ["env", "-i", ...env, bin, "--permission-mode", mode];
      await tmux(["new-window", "-d", "-t", "=s:", "-n", mode, "-c", ws, "--", ...cmd]);
      const w = mode;
      try {
        await until(
          `${mode}: its prompt`,
          async () => ((await pane(w)).includes("❯") ? true : undefined),
          STEP_MS,
        );
        await sleep(1500);
        for (const [label, command] of [
          ["read-only: sleep 1", "sleep 1"],
          ["writes: touch FILE", `touch ${ws}/touched`],
        ] as const) {
          const before = api.requests.length;
          api.reply({ toolUse: { name: "Bash", input: { command, description: label } } });
          api.reply({ text: "done" });
          await tmux(["send-keys", "-t", `=s:=${w}`, "-l", `run it: ${label}`]);
          await sleep(300);
          await tmux(["send-keys", "-t", `=s:=${w}`, "Enter"]);
          // The tool use is served once claude sends its next conversation request.
          await until(
            `${mode}: the request`,
            async () => (api.requests.length > before ? true : undefined),
            STEP_MS,
          );
          const outcome = await until(
            `${mode} ${label}: a dialog or a result`,
            async () => {
              const text = await pane(w);
              if (/Do you want to proceed\?/.test(text)) return "asks";
              const result = api.requests.slice(before).map(lastToolResult).find(Boolean);
              return result === undefined ? undefined : `ran without asking; result: ${result}`;
            },
            STEP_MS,
          );
          let line = `${mode.padEnd(18)} ${label.padEnd(20)} ${outcome}`;
          if (outcome === "asks") {
            // What the recorder would read from the transcript for a bare permission_prompt.
            const projects = path.join(cfg, "projects");
            const transcripts = fs.existsSync(projects)
              ? fs
                  .readdirSync(projects)
                  .flatMap((d) =>
                    fs.readdirSync(path.join(projects, d)).map((f) => path.join(projects, d, f)),
                  )
                  .filter((f) => f.endsWith(".jsonl"))
              : [];
            line += ` {transcript's last tool use: ${JSON.stringify(transcripts.map(lastToolUse))}}`;
            const dialog = (await pane(w))
              .split("\n")
              .filter((l) => l.trim())
              .slice(-12)
              .join(" | ");
            line += ` [${dialog.replace(/\s+/g, " ").slice(0, 160)}]`;
            await tmux(["send-keys", "-t", `=s:=${w}`, "1"]);
            await until(
              `${mode}: the dialog gone`,
              async () => (!/Do you want to proceed\?/.test(await pane(w)) ? true : undefined),
              STEP_MS,
            );
            line += " → answered 1. Yes";
          }
          await sleep(2500);
          if (command.startsWith("touch"))
            line += `; file ${fs.existsSync(path.join(ws, "touched")) ? "created" : "NOT created"}`;
          const fired = fs
            .readFileSync(hookLog, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>);
          fs.writeFileSync(hookLog, "");
          const shown = fired.map((e) => {
            const input = e.tool_input as { command?: string } | undefined;
            const what = input?.command
              ? `(${input.command})`
              : e.notification_type
                ? `(${String(e.notification_type)}: ${String(e.message)})`
                : "";
            return `${String(e.hook_event_name)}${what}`;
          });
          line += `\n${" ".repeat(19)}hooks: ${shown.join(", ")}`;
          results.push(line);
          console.log(line);
        }
      } catch (error) {
        const line = `${mode.padEnd(18)} ERROR ${(error as Error).message}\n${await pane(w).catch(() => "")}`;
        results.push(line);
        console.log(line);
      }
    }
  } finally {
    await tmux(["kill-server"]).catch(() => undefined);
    await api.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((error: Error) => {
  console.error(`permission-modes: ${error.message}`);
  process.exitCode = 1;
});
