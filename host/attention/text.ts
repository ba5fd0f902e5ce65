// One-line reasons: what a status row, a tmux window mark and a notification may carry about an
// agent. Everything an agent produced (a command, a question, the end of an answer) passes through
// here before it is stored or sent: one line, bounded, and with anything token-shaped removed.
import { ANTHROPIC_KEY_CHARS, ANTHROPIC_KEY_PREFIX, githubTokenShape } from "../../shared-rules";
import { SLACK_WEBHOOK_HOST } from "./webhook";

/** Longest reason kept; a status table and a phone notification both show one line. */
export const REASON_MAX_CHARS = 160;

// Shapes of credentials worth hiding even when an agent prints them in a command line: vendor
// token prefixes, bearer/basic headers, URL user-info, key=value secrets, PEM blocks, and long
// runs of base64/hex that look like random keys.
const REDACTIONS: readonly RegExp[] = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
  new RegExp(`\\b${ANTHROPIC_KEY_PREFIX}${ANTHROPIC_KEY_CHARS}{8,}`, "g"),
  /\bsk-[A-Za-z0-9_-]{20,}/g,
  new RegExp(githubTokenShape(20, 20), "g"),
  /\bglpat-[A-Za-z0-9_-]{16,}/g,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g,
  /\bAKIA[0-9A-Z]{16}\b/g,
  /\bAIza[0-9A-Za-z_-]{30,}/g,
  /\bya29\.[0-9A-Za-z_-]{20,}/g,
  /\btk_[A-Za-z0-9]{20,}/g,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g,
  new RegExp(`\\bhttps://${SLACK_WEBHOOK_HOST.replace(/\./g, "\\.")}/[^\\s"'<>]+`, "g"),
];
const REDACT_AUTH_HEADER =
  /\b(authorization|proxy-authorization)(\s*[:=]\s*)(?:bearer|basic|token)?\s*[^\s"']+/gi;
const REDACT_BEARER = /\b(bearer|token)(\s+)[A-Za-z0-9._~+/=-]{12,}/gi;
const REDACT_URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:"']+:[^\s/@"']+@/gi;
const REDACT_ASSIGNMENT =
  /\b([A-Za-z0-9_]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[A-Za-z0-9_]*)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s"'&;]+)/gi;
const REDACT_LONG_RANDOM =
  /\b(?=[A-Za-z0-9+/_-]*[0-9])(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}/g;

export const REDACTED = "[redacted]";

/** Removes token-shaped substrings. Applied to every reason before it is stored and before it is sent. */
export function redact(text: string): string {
  let out = text;
  for (const re of REDACTIONS) out = out.replace(re, REDACTED);
  out = out
    .replace(REDACT_AUTH_HEADER, `$1$2${REDACTED}`)
    .replace(REDACT_BEARER, `$1$2${REDACTED}`)
    .replace(REDACT_URL_USERINFO, `$1${REDACTED}@`)
    .replace(REDACT_ASSIGNMENT, `$1$2${REDACTED}`)
    .replace(REDACT_LONG_RANDOM, REDACTED);
  return out;
}

/**
 * One line: control characters (newlines, escapes that could repaint a terminal or a tmux status
 * line) become spaces, runs of blanks collapse, and the result is cut to `max` characters.
 */
export function oneLine(text: string, max = REASON_MAX_CHARS): string {
  const flat = text
    // eslint-disable-next-line no-control-regex -- removing control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  const chars = [...flat];
  return chars.length <= max ? flat : `${chars.slice(0, max - 1).join("")}…`;
}

/** The last non-blank line of a text (how an answer ends is what a person wants to read). */
export function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i] !== "") return lines[i];
  return "";
}

/** The form every stored or sent reason takes. */
export function reasonText(text: string, max = REASON_MAX_CHARS): string {
  return oneLine(redact(text), max);
}
