// Notifications: one message per transition into "needs you" and per turn finished after real
// work, to the webhook in notifyWebhookUrl. Sent by the monitor (root; the URL is root-only), never
// by the hooks, so an agent is never held up by a slow or failing receiver.
//
// Bodies, by the receiver's documented format:
// - Slack incoming webhook (https://api.slack.com/messaging/webhooks): POST application/json
//   {"text": "..."}; &, < and > escaped as Slack's "Escaping text" section says.
// - ntfy (https://docs.ntfy.sh/publish/): POST the message as the plain-text body to the topic URL,
//   with the Title, Priority and Tags headers (header values ASCII: non-ASCII needs RFC 2047).
// - any other URL: POST application/json, the body documented in docs/attention.md (WebhookBody below).
import * as http from "http";
import * as https from "https";
import { reasonText } from "./text";

export { parseWebhook, type Webhook, type WebhookKind } from "./webhook";
import { type Webhook } from "./webhook";

export type MessageEvent =
  | "needs-permission"
  | "needs-answer"
  | "signed-out"
  | "exited"
  | "turn-done"
  | "test"
  | "auto-stop";

export interface Message {
  agent: number;
  event: MessageEvent;
  /** One line, redacted (again here: whatever reaches a message passes reasonText). */
  reason: string;
  /** Epoch ms of the transition. */
  at: number;
  /** The VM's name, as `pulumi stack output instanceName` shows it. */
  host: string;
  /** The command that opens the agent's window. */
  attach: string;
  /** The agent on the dashboard (DASHBOARD_URL/#agent=agent-N), when dashboardUrl is set. */
  dashboard?: string;
}

const HEADLINE: Record<MessageEvent, string> = {
  "needs-permission": "needs your permission",
  "needs-answer": "asks you a question",
  "signed-out": "is signed out",
  exited: "has stopped",
  "turn-done": "finished its turn",
  test: "test message from agent-host",
  // The VM itself, not one agent (host/cost/autostop-main.ts): the reason says why.
  "auto-stop": "is stopping itself (auto-stop)",
};

export function attachCommand(adminUser: string, host: string, agent: number): string {
  return `ssh -t ${adminUser}@${host} sudo agentctl attach ${agent}`;
}

/**
 * The agent's view on the dashboard: the page opens it from the fragment, with the token this
 * browser already holds (the token itself is never in a message: host/web/token.ts).
 */
export function dashboardLink(dashboardUrl: string, agent: number): string | undefined {
  return dashboardUrl ? `${dashboardUrl.replace(/\/+$/, "")}/#agent=agent-${agent}` : undefined;
}

export function title(m: Message): string {
  if (m.event === "auto-stop") return `agent-host on ${m.host} ${HEADLINE[m.event]}`;
  return m.event === "test"
    ? `agent-host on ${m.host}: test`
    : `agent-${m.agent} ${HEADLINE[m.event]}`;
}

/** The message as one text: who, what, why, how to get there. */
export function messageText(m: Message): string {
  const reason = reasonText(m.reason);
  if (m.event === "test") return `agent-host on ${m.host}: notifications work. Attach: ${m.attach}`;
  if (m.event === "auto-stop") return `agent-host on ${m.host} ${HEADLINE[m.event]}: ${reason}`;
  const open = m.dashboard ? `\nOpen: ${m.dashboard}` : "";
  return `agent-${m.agent} on ${m.host} ${HEADLINE[m.event]}${reason ? `: ${reason}` : ""}\nAttach: ${m.attach}${open}`;
}

/** The JSON body a generic receiver gets (documented in the README). */
export interface WebhookBody {
  source: "agent-host";
  version: 1;
  event: MessageEvent;
  host: string;
  agent: string;
  agent_number: number;
  reason: string;
  at: string;
  attach: string;
  /** The agent on the dashboard, when dashboardUrl is set. */
  dashboard?: string;
  title: string;
  text: string;
}

export interface Request {
  method: "POST";
  url: URL;
  headers: Record<string, string>;
  body: string;
}

const slackEscape = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const ascii = (s: string): string => s.replace(/[^\x20-\x7e]/g, "?");

export function renderRequest(hook: Webhook, m: Message): Request {
  const text = messageText(m);
  if (hook.kind === "slack") {
    return {
      method: "POST",
      url: hook.url,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: slackEscape(text) }),
    };
  }
  if (hook.kind === "ntfy") {
    const urgent = m.event !== "turn-done" && m.event !== "test";
    return {
      method: "POST",
      url: hook.url,
      headers: {
        "Content-Type": "text/plain; charset=utf-8",
        Title: ascii(title(m)),
        Priority: urgent ? "high" : "default",
        Tags: urgent ? "warning,robot" : "white_check_mark,robot",
      },
      body: text,
    };
  }
  const body: WebhookBody = {
    source: "agent-host",
    version: 1,
    event: m.event,
    host: m.host,
    agent: `agent-${m.agent}`,
    agent_number: m.agent,
    reason: reasonText(m.reason),
    at: new Date(m.at).toISOString(),
    attach: m.attach,
    ...(m.dashboard ? { dashboard: m.dashboard } : {}),
    title: title(m),
    text,
  };
  return {
    method: "POST",
    url: hook.url,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
}

export interface Delivery {
  /** HTTP status, or 0 when no answer came (refused, reset, timed out). */
  status: number;
  /** Seconds from a Retry-After header, when the receiver gave one. */
  retryAfter?: number;
}

/** One POST, bounded by `timeoutMs`; never throws. */
export function post(req: Request, timeoutMs = 10_000): Promise<Delivery> {
  return new Promise((resolve) => {
    const lib = req.url.protocol === "https:" ? https : http;
    let done = false;
    const finish = (d: Delivery) => {
      if (!done) {
        done = true;
        resolve(d);
      }
    };
    const r = lib.request(
      req.url,
      {
        method: req.method,
        headers: {
          ...req.headers,
          "Content-Length": String(Buffer.byteLength(req.body)),
          "User-Agent": "agent-host",
        },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          const ra = Number(res.headers["retry-after"]);
          finish({
            status: res.statusCode ?? 0,
            ...(Number.isFinite(ra) && ra >= 0 ? { retryAfter: ra } : {}),
          });
        });
        res.on("error", () => finish({ status: res.statusCode ?? 0 }));
      },
    );
    r.on("timeout", () => r.destroy(new Error("timeout")));
    r.on("error", () => finish({ status: 0 }));
    r.end(req.body);
  });
}

/** Whether a failed delivery is worth another try: no answer, 408, 429 and 5xx. */
export function retryable(d: Delivery): boolean {
  return d.status === 0 || d.status === 408 || d.status === 429 || d.status >= 500;
}

/** Delay before retry `attempt` (1-based): 1 s doubling, at most 60 s; a Retry-After wins (≤ 5 min). */
export function backoffMs(attempt: number, d?: Delivery): number {
  if (d?.retryAfter !== undefined) return Math.min(d.retryAfter, 300) * 1000;
  return Math.min(1000 * 2 ** (attempt - 1), 60_000);
}

export const MAX_ATTEMPTS = 6;
/** Same agent, event and reason again within this window: sent once. */
export const DEDUP_WINDOW_MS = 60_000;
/** At most RATE_BURST messages at once, then one per RATE_INTERVAL_MS (20 a minute at most). */
export const RATE_BURST = 10;
export const RATE_INTERVAL_MS = 3_000;
/** Messages waiting beyond this are dropped, oldest first (with a log line). */
export const QUEUE_MAX = 100;

export interface NotifierOptions {
  /** The webhook, read when a message is sent (so a deploy that changes it needs no restart). */
  webhook: () => Webhook | undefined;
  log: (line: string) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  send?: (req: Request) => Promise<Delivery>;
}

/**
 * An in-process queue: deduplicated, rate-limited (token bucket), each message retried with
 * backoff, one delivery at a time so messages arrive in order. `enqueue` never waits.
 */
export class Notifier {
  private queue: Message[] = [];
  private recent = new Map<string, number>();
  private tokens = RATE_BURST;
  private refilled: number;
  private running = false;
  private idleWaiters: (() => void)[] = [];
  public sent = 0;
  public failed = 0;

  constructor(private readonly opts: NotifierOptions) {
    this.refilled = this.now();
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private sleep(ms: number): Promise<void> {
    return this.opts.sleep ? this.opts.sleep(ms) : new Promise((r) => setTimeout(r, ms));
  }

  /** Queues a message; false when it was a duplicate or there is no webhook. */
  enqueue(m: Message): boolean {
    if (!this.opts.webhook()) return false;
    const key = `${m.agent}\0${m.event}\0${reasonText(m.reason)}`;
    const now = this.now();
    for (const [k, t] of this.recent) if (now - t > DEDUP_WINDOW_MS) this.recent.delete(k);
    if (m.event !== "test" && this.recent.has(key)) return false;
    this.recent.set(key, now);
    this.queue.push(m);
    if (this.queue.length > QUEUE_MAX) {
      const dropped = this.queue.shift() as Message;
      this.opts.log(`notify: queue full, dropped agent-${dropped.agent} ${dropped.event}`);
    }
    if (!this.running) void this.drain();
    return true;
  }

  /** Resolves when the queue is empty and nothing is in flight. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private async takeToken(): Promise<void> {
    for (;;) {
      const now = this.now();
      const earned = Math.floor((now - this.refilled) / RATE_INTERVAL_MS);
      if (earned > 0) {
        this.tokens = Math.min(RATE_BURST, this.tokens + earned);
        this.refilled += earned * RATE_INTERVAL_MS;
      }
      if (this.tokens > 0) {
        this.tokens--;
        return;
      }
      await this.sleep(RATE_INTERVAL_MS - (now - this.refilled));
    }
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const m = this.queue.shift() as Message;
        await this.takeToken();
        await this.deliver(m);
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Sends one message with retries; true when the receiver accepted it. */
  async deliver(m: Message): Promise<boolean> {
    const send = this.opts.send ?? ((req: Request) => post(req));
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const hook = this.opts.webhook();
      if (!hook) return false;
      const d = await send(renderRequest(hook, m));
      if (d.status >= 200 && d.status < 300) {
        this.sent++;
        return true;
      }
      const what = `notify: agent-${m.agent} ${m.event}: ${hook.kind} webhook answered ${d.status || "nothing"}`;
      if (!retryable(d) || attempt === MAX_ATTEMPTS) {
        this.opts.log(`${what}; giving up after ${attempt} attempt(s)`);
        this.failed++;
        return false;
      }
      const wait = backoffMs(attempt, d);
      this.opts.log(`${what}; retrying in ${Math.round(wait / 1000)}s`);
      await this.sleep(wait);
    }
    return false;
  }
}
