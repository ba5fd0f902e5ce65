// `agentctl send N "text"` (also `--file F`, stdin, `send all`): types a prompt into an agent as a
// person would. The text goes into a tmux buffer through load-buffer's stdin (never argv, never a
// shell), is pasted into the exact window as a bracketed paste (so its newlines stay newlines in
// claude's input box instead of submitting it line by line), then Enter submits it.
import * as fs from "fs";
import type { HostConf } from "../conf/conf";
import type { Effective } from "../attention/effective";
import { snapshot } from "./facts";
import { tmux, windowTarget } from "./tmux";
import { parseArgs } from "util";

export const SEND_MAX_BYTES = 64 * 1024;
/** How long to wait for claude to show the pasted text before pressing Enter. */
const PASTE_SHOWN_MS = 3000;

export class UsageError extends Error {}

export interface SendArgs {
  targets: "all" | number;
  force: boolean;
  text: string;
}

const USAGE =
  "usage: agentctl send [--force] [--file FILE] N|all [TEXT...]  (no TEXT and no --file: the text is read from stdin)";

/** Options come before N; everything after N is the text, verbatim (a leading "-" included). */
export function parseSendArgs(
  argv: readonly string[],
  readStdin: () => string,
  readFile: (f: string) => string,
): SendArgs {
  let force = false;
  let file: string | undefined;
  // util.parseArgs' tokens, read up to the first positional (N): what follows N is the text,
  // verbatim, even where it looks like an option.
  const { tokens } = parseArgs({
    args: [...argv],
    options: { force: { type: "boolean" }, file: { type: "string" } },
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  let i = argv.length;
  for (const token of tokens) {
    if (token.kind === "positional") {
      i = token.index;
      break;
    }
    if (token.kind === "option-terminator") continue;
    if (token.name === "force" && token.value === undefined) force = true;
    else if (token.name === "file") {
      if (token.value === undefined)
        throw new UsageError(`send: --file needs a file name. ${USAGE}`);
      file = token.value;
    } else throw new UsageError(`send: unknown option '${token.rawName}'. ${USAGE}`);
  }
  const target = argv[i];
  if (target === undefined) throw new UsageError(`send: which agent? ${USAGE}`);
  if (target !== "all" && !/^[1-9][0-9]*$/.test(target)) {
    throw new UsageError(
      `send: '${target}' is not an agent number or all; e.g. 'agentctl send 3 "run the tests"'`,
    );
  }
  const words = argv.slice(i + 1);
  if (file !== undefined && words.length > 0)
    throw new UsageError(`send: give the text or --file, not both. ${USAGE}`);
  let text: string;
  if (file !== undefined) {
    try {
      text = readFile(file);
    } catch (error) {
      throw new UsageError(`send: cannot read --file ${file}: ${(error as Error).message}`);
    }
  } else if (words.length > 0) text = words.join(" ");
  else text = readStdin();
  return { targets: target === "all" ? "all" : Number(target), force, text: sendText(text) };
}

/**
 * The text as it is typed: CRLF as LF, trailing newlines dropped (Enter submits it); refused when
 * empty or over SEND_MAX_BYTES. The one rule for `agentctl send` and the dashboard's send.
 */
export function sendText(raw: string): string {
  const text = raw.replace(/\r\n/g, "\n").replace(/\n+$/, "");
  if (text.trim() === "") throw new UsageError(`send: the text is empty. ${USAGE}`);
  if (Buffer.byteLength(text) > SEND_MAX_BYTES) {
    throw new UsageError(
      `send: the text is ${Buffer.byteLength(text)} bytes; at most ${SEND_MAX_BYTES}. Put long instructions in a file in the workspace and send its path.`,
    );
  }
  return text;
}

/** Why an agent cannot take a prompt now; undefined when it can. */
export function refusal(row: Effective, force: boolean): string | undefined {
  switch (row.state) {
    case "missing":
    case "exited":
    case "crashed":
    case "starting":
      return `${row.name} is ${row.state} (${row.reason}); nothing to type into`;
    default:
      break;
  }
  if (force) return undefined;
  if (row.state === "working")
    return `${row.name} is working (${row.reason}); wait for it, or use --force to type into it anyway`;
  if (row.state === "needs-permission" || row.state === "needs-answer") {
    return `${row.name} waits for your answer (${row.reason}); typed text would answer its dialog. Attach to answer it (agentctl attach ${row.n}), or use --force`;
  }
  if (row.state === "signed-out")
    return `${row.name} is signed out (${row.reason}); sign it in first, or use --force`;
  return undefined;
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function capture(conf: HostConf, n: number): string {
  return tmux(conf.tmuxSocket, ["capture-pane", "-p", "-t", windowTarget(n)]).stdout;
}

/** Pastes the text into agent n's window and presses Enter; throws with tmux's words on failure. */
export function typeInto(conf: HostConf, n: number, text: string): void {
  const buffer = `agent-host-send-${process.pid}-${n}`;
  const target = windowTarget(n);
  const before = capture(conf, n);
  const load = tmux(conf.tmuxSocket, ["load-buffer", "-b", buffer, "-"], text);
  if (load.code !== 0) throw new Error(`tmux load-buffer: ${load.stderr.trim()}`);
  // -p: bracketed paste when the application asked for it (claude does); -r: keep LF as LF.
  const paste = tmux(conf.tmuxSocket, [
    "paste-buffer",
    "-d",
    "-p",
    "-r",
    "-b",
    buffer,
    "-t",
    target,
  ]);
  if (paste.code !== 0) {
    tmux(conf.tmuxSocket, ["delete-buffer", "-b", buffer]);
    throw new Error(`tmux paste-buffer: ${paste.stderr.trim()}`);
  }
  // Enter before claude has taken the paste in would be read as part of it: wait (bounded) until
  // the pane shows a change.
  const deadline = Date.now() + PASTE_SHOWN_MS;
  while (Date.now() < deadline && capture(conf, n) === before) sleep(20);
  const enter = tmux(conf.tmuxSocket, ["send-keys", "-t", target, "Enter"]);
  if (enter.code !== 0) throw new Error(`tmux send-keys: ${enter.stderr.trim()}`);
}

export interface SendResult {
  sent: string[];
  refused: string[];
}

export function send(conf: HostConf, args: SendArgs, log: (line: string) => void): SendResult {
  const { rows } = snapshot(conf);
  const chosen =
    args.targets === "all"
      ? rows.filter((r) => r.state !== "missing")
      : rows.filter((r) => r.n === args.targets);
  if (args.targets !== "all" && chosen.length === 0) {
    throw new UsageError(
      `send: there is no agent-${args.targets}; run 'agentctl status' to see the agents`,
    );
  }
  if (chosen.length === 0)
    throw new UsageError("send all: no agents on this host; run 'agentctl reconcile' first");
  const result: SendResult = { sent: [], refused: [] };
  for (const row of chosen) {
    const why = refusal(row, args.force);
    if (why) {
      log(`send: refused: ${why}`);
      result.refused.push(row.name);
      continue;
    }
    typeInto(conf, row.n, args.text);
    log(`send: typed ${Buffer.byteLength(args.text)} bytes into ${row.name}`);
    result.sent.push(row.name);
  }
  return result;
}

export const readStdinText = (): string => {
  if (process.stdin.isTTY)
    throw new UsageError(`send: no text given and stdin is a terminal. ${USAGE}`);
  return fs.readFileSync(0, "utf8");
};
