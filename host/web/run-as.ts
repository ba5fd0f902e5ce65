// The dashboard's one child that runs as an agent: the recorder, under setpriv, fed a hook event
// on stdin (host/web/server.ts records a deny through it). Apart from server.ts so that it can be
// tested without the page the bundle inlines.
import { spawn } from "child_process";

const RECORDER_TIMEOUT_MS = 10_000;

/** setpriv ARGS with `input` on stdin; rejects on a non-zero exit or after RECORDER_TIMEOUT_MS. */
export function runAs(args: string[], cwd: string, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("setpriv", args, {
      cwd,
      env: {},
      stdio: ["pipe", "ignore", "pipe"],
      timeout: RECORDER_TIMEOUT_MS,
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`the recorder exited ${code ?? signal}: ${err.trim()}`)),
    );
    // A child that ends without reading its input (setpriv refused) makes the write fail with
    // EPIPE: its exit status above says why, and the error must not end the server.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input);
  });
}
