// The dashboard's door, pure: which Host and Origin headers it answers, the Bearer check, the limit
// on failed attempts, and the strict reading of request bodies. The server (host/web/server.ts)
// runs these in this order on every request: Host (DNS rebinding), Origin, then the token.
import { timingSafeEqual } from "crypto";

/**
 * The only Host headers served: the tunnel's end on the lead's machine and the loopback address
 * the server listens on. Anything else is a rebound DNS name pointing a web page at this port.
 */
export function allowedHosts(port: number): string[] {
  return [`127.0.0.1:${port}`, `localhost:${port}`];
}

export function hostAllowed(host: string | undefined, port: number): boolean {
  return host !== undefined && allowedHosts(port).includes(host.toLowerCase());
}

/**
 * A request with an Origin must come from the page itself (http://127.0.0.1:PORT or
 * http://localhost:PORT). No Origin (curl, a same-origin GET) passes: the token decides then.
 */
export function originAllowed(origin: string | undefined, port: number): boolean {
  if (origin === undefined) return true;
  return allowedHosts(port).some((h) => origin.toLowerCase() === `http://${h}`);
}

/** The token from `Authorization: Bearer TOKEN`; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(header ?? "");
  return m ? m[1] : undefined;
}

/** Compares in constant time (for equal lengths; a length mismatch is a plain no). */
export function tokenMatches(given: string | undefined, expected: string | undefined): boolean {
  if (!given || !expected) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Failed attempts (no token, a wrong one) in a sliding window. Past `max` in `windowMs`, a failing
 * request is answered 429 with the seconds to wait. A request with the right token is served
 * whatever the count: a process on the VM hammering the port cannot lock the lead out.
 */
export class FailureLimiter {
  private times: number[] = [];

  constructor(
    readonly max = 20,
    readonly windowMs = 60_000,
  ) {}

  private prune(now: number): void {
    while (this.times.length > 0 && now - this.times[0] >= this.windowMs) this.times.shift();
  }

  /** Records one failure; returns the seconds to wait when the limit is passed, else undefined. */
  fail(now = Date.now()): number | undefined {
    this.prune(now);
    // Bounded memory: past the limit only the count matters, not each moment.
    if (this.times.length < this.max * 2) this.times.push(now);
    if (this.times.length <= this.max) return undefined;
    return Math.max(1, Math.ceil((this.windowMs - (now - this.times[0])) / 1000));
  }
}

export class BadRequest extends Error {}

/** agent-N, as tmux names the windows (never agent-01): its number, or a BadRequest. */
export function agentParam(name: string): number {
  const m = /^agent-([1-9][0-9]{0,3})$/.exec(name);
  if (!m) throw new BadRequest(`'${name.slice(0, 40)}' is not an agent name such as agent-3`);
  return Number(m[1]);
}

/** A JSON object whose keys are exactly among `allowed`; anything else is a BadRequest. */
export function jsonObject(text: string, allowed: readonly string[]): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BadRequest("the body is not JSON");
  }
  if (!v || typeof v !== "object" || Array.isArray(v))
    throw new BadRequest("the body must be a JSON object");
  const extra = Object.keys(v).filter((k) => !allowed.includes(k));
  if (extra.length > 0)
    throw new BadRequest(
      `unknown field '${extra[0].slice(0, 40)}'; expected only ${allowed.join(", ")}`,
    );
  return v as Record<string, unknown>;
}

export type Answer =
  | { action: "approve" }
  | { action: "deny" }
  | { action: "next" }
  | { action: "chat" }
  | { action: "option"; option: number };

/**
 * POST /answer's body: {"action":"approve"} | {"action":"deny"} | {"action":"option","option":N}
 * | {"action":"next"} (a question that takes several options: on to its next part or review)
 * | {"action":"chat"} (a question's "Chat about this": declined, for the lead to talk it over).
 */
export function parseAnswer(text: string): Answer {
  const o = jsonObject(text, ["action", "option"]);
  if (o.action === "approve" || o.action === "deny" || o.action === "next" || o.action === "chat") {
    if (o.option !== undefined) throw new BadRequest(`'option' goes only with action "option"`);
    return { action: o.action };
  }
  if (o.action === "option") {
    const n = o.option;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 9)
      throw new BadRequest("option must be a whole number from 1 to 9");
    return { action: "option", option: n };
  }
  throw new BadRequest(`action must be "approve", "deny", "option", "next" or "chat"`);
}

/** POST /send's body: {"text": "..."}; the text's own limits are agentctl send's (send.ts). */
export function parseSendBody(text: string): string {
  const o = jsonObject(text, ["text"]);
  if (typeof o.text !== "string") throw new BadRequest("text must be a string");
  return o.text;
}
