// The dashboard's HTTP server (agent-host-web.service, `agentctl web`): root, on 127.0.0.1 only,
// reached through `ssh -L`. It serves the page (host/web/page.html, no secret in it) and an API
// behind a Bearer token (host/web/token.ts):
//
//   GET  /api/agents              `agentctl status --json`'s rows (host/attention/status.ts)
//   GET  /api/events              the same rows as server-sent events, pushed on every change
//   GET  /api/agents/NAME/pane    the pane's screen as text, and the dialog it shows (prompt.ts)
//   POST /api/agents/NAME/send    {"text": "..."}: `agentctl send`'s rules and code (send.ts)
//   POST /api/agents/NAME/answer  {"action": "approve"|"deny"|"option"|"next"|"chat", "option": N}
//
// A deny is recorded by the dashboard itself: Claude Code fires no hook after a refused permission
// (host/attention/state.ts onDashboardDeny), so once the dialog has left the pane the recorder runs
// as the agent, as a hook would, with a DashboardDeny event: idle, "you denied: <command>".
//
// Every request passes Host, then Origin, then the token (guard.ts). Bodies are bounded and parsed
// strictly; request text reaches tmux only through send.ts (load-buffer's stdin) and answers only
// as one digit chosen from what the pane shows; tmux targets are exact (`=agents:=agent-N`).
//
// Changes are pushed within a second of the hook: the recorder's files are watched (inotify, each
// agent's state folder in its own home) and, while a page is connected, the process facts (a window gone,
// claude exited) are looked at every POLL_MS. With no page connected nothing is polled.
import * as fs from "fs";
import * as http from "http";
import type { AddressInfo } from "net";
import type { HostConf } from "../conf/conf";
import { snapshot } from "../agents/facts";
import { agentCwd, agentIds, asAgentArgv, lookupUser } from "../agents/agent-user";
import { send, sendText, UsageError } from "../agents/send";
import { agentWindows, tmux, windowTarget } from "../agents/tmux";
import { statusRows, toJson, type StatusRow } from "../attention/status";
import { sortForStatus } from "../attention/effective";
import { hostHealth, type Problem } from "../attention/health";
import { patchRows } from "./rows";
import {
  agentParam,
  BadRequest,
  bearerToken,
  FailureLimiter,
  hostAllowed,
  originAllowed,
  parseAnswer,
  parseSendBody,
  tokenMatches,
} from "./guard";
import { answerKey, keyArgs, parsePrompt } from "./prompt";
import { tokenReader } from "./token";
import { PAGE_HTML, pageCsp } from "./page";
import { runAs } from "./run-as";

/** Process facts (not hook-driven) are looked at this often while a page is connected. */
export const POLL_MS = 1000;
/** A burst of file events becomes one look, this long after the first. */
const SETTLE_MS = 25;
const MAX_STREAMS = 16;
const SEND_BODY_MAX = 512 * 1024;
const ANSWER_BODY_MAX = 1024;
const HEARTBEAT_MS = 25_000;
const GATHER_EVERY_MS = 2000;
const RESCAN_MS = 5000;
/** After a deny, the pane is looked at this often for the dialog to go, for at most DENY_WAIT_MS. */
const DENY_LOOK_MS = 50;
const DENY_WAIT_MS = 5000;
/** "Chat about this": at most this many keys (moves and Enter), each once the pane redrew. */
const CHAT_MOVES_MAX = 12;
const REDRAW_LOOK_MS = 30;
const REDRAW_WAIT_MS = 1000;

export interface DashboardOptions {
  conf: HostConf;
  port: number;
  tokenFile: string;
  log: (line: string) => void;
  /**
   * The argv that runs the recorder (`node /usr/local/lib/agent-host/agent-host.js hook`, what the
   * managed hooks run), readable and runnable by the agent user: a deny is recorded through it.
   */
  recorder: readonly string[];
  limiter?: FailureLimiter;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const API_HEADERS = {
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

export class Dashboard {
  private readonly server: http.Server;
  private readonly token: () => string | undefined;
  private readonly limiter: FailureLimiter;
  private readonly streams = new Set<http.ServerResponse>();
  private readonly watchers = new Map<string, { watcher: fs.FSWatcher; ino: number }>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private rows: StatusRow[] | undefined;
  private problems: Problem[] = [];
  private gatheredAt = 0;
  private gatherTimer: NodeJS.Timeout | undefined;
  private rowsJson: string | undefined;
  private stateKey = "";
  private looking = false;
  private lookAgain = false;
  private settle: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DashboardOptions) {
    this.token = tokenReader(opts.tokenFile);
    this.limiter = opts.limiter ?? new FailureLimiter();
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // Slow clients cannot hold sockets open for ever (the event stream is exempt: see stream()).
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 10_000;
    this.server.maxHeadersCount = 50;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.opts.port, "127.0.0.1", () => resolve());
    });
    this.watchStates();
    void this.look(true);
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    for (const s of this.streams) s.end();
    for (const w of this.watchers.values()) w.watcher.close();
    clearInterval(this.rescanTimer);
    clearTimeout(this.settle);
    clearTimeout(this.gatherTimer);
    clearInterval(this.poll);
    clearInterval(this.heartbeat);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  // -------------------------------------------------------------------------------------------
  // changes

  /**
   * inotify on the homes folder and each agent's state folder (HOME/.agent-host, where its recorder
   * replaces status.json), re-armed on every look and every few seconds: the folders appear when
   * the agents first start (maybe after this server), and a folder removed and made again is a new
   * inode to watch.
   */
  private watchStates(): void {
    this.rescan();
    this.rescanTimer = setInterval(() => this.rescan(), RESCAN_MS);
    this.rescanTimer.unref();
  }

  /**
   * The folders to watch: the homes folder (root's) and each agent's state folder while it is that
   * agent's own directory. The state folder is in the agent's home, so the agent can swap it for a
   * link between the check and the watch: the watch then only tells this server that something
   * changed somewhere (a look, as the poll does), and the next rescan drops it (lstat: the inode
   * differs).
   */
  private stateDirs(): string[] {
    const { conf } = this.opts;
    const prefix = `${conf.agentUser}-`;
    let names: string[] = [];
    try {
      names = fs.readdirSync(conf.agentHomesDir);
    } catch {
      // no homes yet
    }
    const dirs = [conf.agentHomesDir];
    for (const name of names) {
      // Bounded: a folder full of names cannot make the server hold thousands of watches.
      if (dirs.length > 256) break;
      const n = name.startsWith(prefix) ? name.slice(prefix.length) : "";
      if (!/^[1-9][0-9]{0,3}$/.test(n)) continue;
      const ids = agentIds(conf, Number(n));
      try {
        const st = fs.lstatSync(ids.state);
        if (st.isDirectory() && st.uid === ids.uid) dirs.push(ids.state);
      } catch {
        // not started yet
      }
    }
    return dirs;
  }

  private rescan(): void {
    const wanted = this.stateDirs();
    for (const [d, w] of this.watchers) {
      let ino: number | undefined;
      try {
        ino = fs.lstatSync(d).ino;
      } catch {
        ino = undefined;
      }
      if (ino !== w.ino || !wanted.includes(d)) {
        w.watcher.close();
        this.watchers.delete(d);
      }
    }
    for (const d of wanted) {
      if (this.watchers.has(d)) continue;
      try {
        const ino = fs.lstatSync(d).ino;
        const watcher = fs.watch(d, { persistent: false }, () => this.changed());
        watcher.on("error", () => {
          watcher.close();
          this.watchers.delete(d);
        });
        this.watchers.set(d, { watcher, ino });
      } catch {
        // not there yet: the next rescan arms it
      }
    }
  }

  private changed(): void {
    if (this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.rescan();
      void this.look();
    }, SETTLE_MS);
  }

  /**
   * One look at every agent's state. On a change the state columns are pushed at once (the rest of
   * each row as last gathered), and the whole rows, gathered again, follow (status.ts statusRows
   * runs git and du per agent: a few hundred ms for twelve).
   */
  private async look(force = false): Promise<void> {
    if (this.looking) {
      this.lookAgain = true;
      return;
    }
    this.looking = true;
    try {
      this.rescan();
      const effective = sortForStatus(snapshot(this.opts.conf).rows);
      const key = effective.map((r) => `${r.n}|${r.state}|${r.since ?? ""}|${r.reason}`).join("\n");
      if (force || key !== this.stateKey) {
        this.stateKey = key;
        const patched = this.rows && patchRows(this.rows, effective);
        if (patched) {
          this.rows = patched;
          this.rowsJson = toJson(patched, this.problems);
          this.push();
          this.gatherSoon();
        } else {
          await this.gather();
          this.push();
        }
      }
    } catch (error) {
      this.opts.log(`web: ${(error as Error).message}`);
    } finally {
      this.looking = false;
      if (this.lookAgain) {
        this.lookAgain = false;
        void this.look();
      }
    }
  }

  /**
   * The whole rows again, at most every GATHER_EVERY_MS: twelve busy agents fire hooks many times
   * a second, and each gather runs git and du per agent. The state columns never wait for it.
   */
  private gatherSoon(): void {
    if (this.gatherTimer) return;
    const wait = Math.max(0, this.gatheredAt + GATHER_EVERY_MS - Date.now());
    this.gatherTimer = setTimeout(() => {
      this.gatherTimer = undefined;
      this.gather()
        .then(() => this.push())
        .catch((error: Error) => this.opts.log(`web: ${error.message}`));
    }, wait);
  }

  /** What `agentctl status --json` prints: the host's health and every agent's row. */
  private async gather(): Promise<string> {
    this.gatheredAt = Date.now();
    const { rows, effective } = await statusRows(this.opts.conf, () => undefined);
    this.problems = hostHealth(
      this.opts.conf,
      effective.map((e) => e.n),
    );
    this.rows = rows;
    this.rowsJson = toJson(rows, this.problems);
    return this.rowsJson;
  }

  private push(): void {
    if (this.rowsJson === undefined) return;
    const frame = `event: agents\ndata: ${this.rowsJson.trim()}\n\n`;
    for (const s of this.streams) s.write(frame);
  }

  private stream(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS)
      throw new HttpError(503, `at most ${MAX_STREAMS} pages at once`);
    req.socket.setTimeout(0);
    res.writeHead(200, {
      ...API_HEADERS,
      "Content-Type": "text/event-stream; charset=utf-8",
      Connection: "keep-alive",
    });
    this.streams.add(res);
    if (this.rowsJson !== undefined) res.write(`event: agents\ndata: ${this.rowsJson.trim()}\n\n`);
    const gone = () => {
      this.streams.delete(res);
      if (this.streams.size === 0) {
        clearInterval(this.poll);
        clearInterval(this.heartbeat);
        this.poll = this.heartbeat = undefined;
      }
    };
    req.on("close", gone);
    res.on("error", gone);
    if (!this.poll) {
      this.poll = setInterval(() => void this.look(), POLL_MS);
      this.heartbeat = setInterval(() => {
        for (const s of this.streams) s.write(": keep-alive\n\n");
      }, HEARTBEAT_MS);
    }
    // The rows it got may be a while old: look now (pushes again only if something changed).
    void this.look(true);
  }

  // -------------------------------------------------------------------------------------------
  // requests

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      await this.route(req, res);
    } catch (error) {
      const e =
        error instanceof HttpError
          ? error
          : error instanceof BadRequest || error instanceof UsageError
            ? new HttpError(400, error.message)
            : new HttpError(500, "internal error (see journalctl -u agent-host-web)");
      if (!(
        error instanceof HttpError ||
        error instanceof BadRequest ||
        error instanceof UsageError
      ))
        this.opts.log(`web: ${req.method} ${req.url?.slice(0, 80)}: ${(error as Error).message}`);
      if (res.headersSent) {
        res.end();
        return;
      }
      res.writeHead(e.status, {
        ...API_HEADERS,
        ...e.headers,
        "Content-Type": "application/json; charset=utf-8",
      });
      res.end(`${JSON.stringify({ error: e.message })}\n`);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const port = this.opts.port;
    if (!hostAllowed(req.headers.host, port))
      throw new HttpError(403, `Host must be 127.0.0.1:${port} or localhost:${port}`);
    const origin = req.headers.origin;
    if (!originAllowed(origin, port)) throw new HttpError(403, "foreign Origin");
    const url = req.url ?? "";
    if (!url.startsWith("/") || url.includes("?") || url.length > 200)
      throw new HttpError(400, "bad path");
    if (url === "/" || url === "/index.html") {
      if (req.method !== "GET") throw new HttpError(405, "GET only", { Allow: "GET" });
      res.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": pageCsp(),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
      });
      res.end(PAGE_HTML);
      return;
    }
    if (!url.startsWith("/api/")) throw new HttpError(404, "not found");
    this.authenticate(req);
    const parts = url.split("/").slice(2);
    const method = req.method ?? "";
    if (parts.length === 1 && parts[0] === "agents") {
      need(method, "GET");
      return json(res, 200, await this.gather());
    }
    if (parts.length === 1 && parts[0] === "events") {
      need(method, "GET");
      return this.stream(req, res);
    }
    if (parts.length === 3 && parts[0] === "agents") {
      const n = agentParam(decodeURIComponent(parts[1]));
      if (parts[2] === "pane") {
        need(method, "GET");
        return json(res, 200, JSON.stringify(this.pane(n)));
      }
      if (parts[2] === "send") {
        need(method, "POST");
        const text = sendText(parseSendBody(await body(req, SEND_BODY_MAX)));
        return json(res, 200, JSON.stringify(this.send(n, text)));
      }
      if (parts[2] === "answer") {
        need(method, "POST");
        const answer = parseAnswer(await body(req, ANSWER_BODY_MAX));
        return json(res, 200, JSON.stringify(await this.answer(n, answer)));
      }
    }
    throw new HttpError(404, "not found");
  }

  private authenticate(req: http.IncomingMessage): void {
    if (tokenMatches(bearerToken(req.headers.authorization), this.token())) return;
    const wait = this.limiter.fail();
    if (wait !== undefined) {
      this.opts.log(`web: too many failed attempts; refusing for ${wait}s`);
      throw new HttpError(429, `too many failed attempts; try again in ${wait}s`, {
        "Retry-After": String(wait),
      });
    }
    throw new HttpError(401, "a valid token is needed (sudo agentctl web --url)", {
      "WWW-Authenticate": 'Bearer realm="agent-host"',
    });
  }

  private liveWindow(n: number): void {
    const w = agentWindows(this.opts.conf.tmuxSocket).get(n);
    if (!w) throw new HttpError(404, `there is no agent-${n}`);
    if (w.dead) throw new HttpError(409, `agent-${n} has stopped (agentctl restart ${n})`);
  }

  private capture(n: number): string {
    const r = tmux(this.opts.conf.tmuxSocket, ["capture-pane", "-p", "-t", windowTarget(n)]);
    if (r.code !== 0) throw new HttpError(404, `there is no agent-${n}`);
    return r.stdout.replace(/\s+$/, "");
  }

  private pane(n: number) {
    this.liveWindow(n);
    const text = this.capture(n);
    return { name: `agent-${n}`, text, prompt: parsePrompt(text) ?? null };
  }

  private send(n: number, text: string) {
    const lines: string[] = [];
    const r = send(this.opts.conf, { targets: n, force: false, text }, (l) => lines.push(l));
    if (r.refused.length > 0)
      throw new HttpError(409, lines.join("; ").replace(/^send: refused: /, ""));
    this.opts.log(`web: typed ${Buffer.byteLength(text)} bytes into agent-${n}`);
    void this.look();
    return { sent: `agent-${n}` };
  }

  /** The agents an answer is being typed into (Chat about this takes several keys, a redraw apart). */
  private readonly answering = new Set<number>();

  private async answer(n: number, answer: ReturnType<typeof parseAnswer>) {
    // One answer at a time per agent: no key of a second one lands between a first one's keys.
    if (this.answering.has(n))
      throw new HttpError(409, `agent-${n}: an answer is still being typed; nothing was typed`);
    this.answering.add(n);
    try {
      return await this.answerNow(n, answer);
    } finally {
      this.answering.delete(n);
    }
  }

  private async answerNow(n: number, answer: ReturnType<typeof parseAnswer>) {
    this.liveWindow(n);
    const snap = snapshot(this.opts.conf);
    const row = snap.rows.find((r) => r.n === n);
    const permission = answer.action === "approve" || answer.action === "deny";
    const waiting = permission ? "needs-permission" : "needs-answer";
    if (row?.state !== waiting)
      throw new HttpError(
        409,
        `agent-${n} is ${row?.state ?? "missing"}, not ${waiting}; nothing was typed`,
      );
    const option = answer.action === "option" ? answer.option : undefined;
    let pane = this.capture(n);
    let key = answerKey(parsePrompt(pane), answer.action, option);
    if ("refused" in key) throw new HttpError(409, `agent-${n}: ${key.refused}; nothing was typed`);
    // "Chat about this" takes no digit: the cursor moves a line per key, and the pane is read
    // again after each, until it is on that option and Enter picks it (host/web/prompt.ts).
    const sent: string[] = [];
    for (;;) {
      this.sendKey(n, key.key);
      sent.push(key.key);
      if (answer.action !== "chat" || key.key === "Enter") break;
      if (sent.length >= CHAT_MOVES_MAX)
        throw new HttpError(409, `agent-${n}: its cursor did not reach 'Chat about this'`);
      pane = await this.redrawn(n, pane);
      key = answerKey(parsePrompt(pane), "chat");
      if ("refused" in key)
        throw new HttpError(409, `agent-${n}: ${key.refused} any more (its dialog changed)`);
    }
    this.opts.log(`web: ${answer.action} ${sent.join(" ")} for agent-${n}`);
    const seq = snap.recorded.get(n)?.seq;
    if (answer.action === "deny" && seq !== undefined)
      void this.recordDeny(n, seq).catch((error: Error) =>
        this.opts.log(`web: agent-${n}'s deny was not recorded: ${error.message}`),
      );
    void this.look();
    return { agent: `agent-${n}`, action: answer.action, key: sent.join(" ") };
  }

  /** One key answerKey chose into agent-N's pane: a digit as a literal key, never a key name. */
  private sendKey(n: number, key: string): void {
    const r = tmux(this.opts.conf.tmuxSocket, [
      "send-keys",
      "-t",
      windowTarget(n),
      ...keyArgs(key),
    ]);
    if (r.code !== 0) throw new Error(`tmux send-keys: ${r.stderr.trim()}`);
  }

  /** agent-N's pane once it differs from `before` (Claude Code redrew it), within a second. */
  private async redrawn(n: number, before: string): Promise<string> {
    const deadline = Date.now() + REDRAW_WAIT_MS;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, REDRAW_LOOK_MS));
      const now = this.capture(n);
      if (now !== before || Date.now() > deadline) return now;
    }
  }

  /**
   * Records the deny once the permission dialog has left agent-N's pane (Claude Code took the key):
   * the recorder, as the agent user, with a DashboardDeny event naming the record it answers.
   */
  private async recordDeny(n: number, seq: number): Promise<void> {
    const deadline = Date.now() + DENY_WAIT_MS;
    for (;;) {
      const r = tmux(this.opts.conf.tmuxSocket, ["capture-pane", "-p", "-t", windowTarget(n)]);
      if (r.code !== 0) return;
      if (parsePrompt(r.stdout)?.kind !== "permission") break;
      if (Date.now() > deadline) {
        this.opts.log(
          `web: agent-${n} still shows its permission dialog ${DENY_WAIT_MS / 1000}s after the deny; its state stays as recorded`,
        );
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, DENY_LOOK_MS));
    }
    // As agent n itself, into its own state folder (one user per agent): the record stays its own.
    const ids = agentIds(this.opts.conf, n);
    if (lookupUser(ids.name)?.uid !== ids.uid)
      throw new Error(`there is no user ${ids.name} with uid ${ids.uid}`);
    await runAs(
      asAgentArgv(ids, this.opts.recorder, [`AGENT_HOST_STATE_DIR=${ids.state}`]),
      agentCwd(ids),
      JSON.stringify({ hook_event_name: "DashboardDeny", seq }),
    );
  }
}

function need(method: string, want: string): void {
  if (method !== want) throw new HttpError(405, `${want} only`, { Allow: want });
}

function json(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { ...API_HEADERS, "Content-Type": "application/json; charset=utf-8" });
  res.end(text.endsWith("\n") ? text : `${text}\n`);
}

/** The request body as UTF-8 text: JSON only, at most `max` bytes (413 past it, read no further). */
function body(req: http.IncomingMessage, max: number): Promise<string> {
  const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json")
    return Promise.reject(new HttpError(415, "Content-Type must be application/json"));
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > max) {
    req.resume();
    return Promise.reject(new HttpError(413, `the body is over ${max} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new HttpError(413, `the body is over ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
