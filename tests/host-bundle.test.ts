// The host logic ships as one generated file (cloud-init/host/agent-host.js, bundled by esbuild
// from host/*.ts). It is committed so a deploy needs no build: this suite fails when it drifts
// from its sources, and checks that what calls it (Claude Code's managed hooks, agentctl) names
// the path it is shipped to.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { HOST_FILES } from "../cloud-init/files";
import { buildHostBundle, BUNDLE_PATH } from "../scripts/build-host";

jest.setTimeout(60_000);
const REPO = path.resolve(__dirname, "..");

test("cloud-init/host/agent-host.js is exactly what npm run build:host makes of host/*.ts", async () => {
  const built = await buildHostBundle();
  const committed = fs.readFileSync(BUNDLE_PATH, "utf8");
  if (committed !== built) {
    throw new Error(
      "cloud-init/host/agent-host.js is out of date: run npm run build:host and commit it",
    );
  }
  expect(fs.statSync(BUNDLE_PATH).mode & 0o111).toBeTruthy();
  // Two builds give the same bytes.
  expect(await buildHostBundle()).toBe(built);
});

test("the bundle is shipped where the managed hooks and agentctl look for it", () => {
  const shipped = HOST_FILES.find((f) => f.source === "host/agent-host.js");
  expect(shipped).toEqual({
    source: "host/agent-host.js",
    path: "/usr/local/lib/agent-host/agent-host.js",
    mode: "0755",
  });
  const settings = JSON.parse(
    fs.readFileSync(path.join(REPO, "cloud-init/claude/managed-settings.json"), "utf8"),
  ) as {
    hooks: Record<
      string,
      { matcher?: string; hooks: { type: string; command: string; timeout: number }[] }[]
    >;
  };
  const events = Object.keys(settings.hooks).sort();
  expect(events).toEqual(
    [
      "Notification",
      "PermissionDenied",
      "PermissionRequest",
      "PostToolUse",
      "PostToolUseFailure",
      "PreToolUse",
      "SessionStart",
      "Stop",
      "StopFailure",
      "UserPromptSubmit",
    ].sort(),
  );
  const hook = { type: "command", command: `${shipped?.path} hook`, timeout: 10 };
  for (const event of events) {
    // PreToolUse only for the question tool: PostToolUse counts the others (one process less
    // per tool call, and the hooks are synchronous so their order is the events' order).
    const matcher = event === "PreToolUse" ? { matcher: "AskUserQuestion" } : {};
    expect(settings.hooks[event]).toEqual([{ ...matcher, hooks: [hook] }]);
  }
  const agentctl = fs.readFileSync(path.join(REPO, "cloud-init/host/agentctl"), "utf8");
  expect(agentctl).toContain(
    `readonly LIB="\${AGENT_HOST_ROOT:-}${path.dirname(shipped?.path ?? "")}"`,
  );
  expect(agentctl).toContain(
    `readonly DEFAULT_AGENT_HOST_JS="\${LIB}/${path.basename(shipped?.path ?? "")}"`,
  );
});

test("a reader that closes the pipe early (`agentctl logs 3 | head`) ends the command quietly, exit 0", async () => {
  const child = spawn("node", [BUNDLE_PATH, "conf", "--file", "/nonexistent", "--quiet"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  // The read end is gone before Node has started, so its first write fails with EPIPE.
  child.stdout.destroy();
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
});
