// The page, as the bundle carries it: host/web/page.html with host/web/client.ts compiled and
// inlined by scripts/build-host.ts (the virtual module "agent-host:page"), so the server has no
// file to find and the page makes no request but to its own API. Its Content-Security-Policy
// allows exactly its one inline script and style (by hash) and connections to itself.
import { createHash } from "crypto";
import html from "agent-host:page";

export const PAGE_HTML: string = html;

const hashOf = (tag: string): string => {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(PAGE_HTML);
  if (!m) throw new Error(`the page has no inline <${tag}>`);
  return `'sha256-${createHash("sha256").update(m[1], "utf8").digest("base64")}'`;
};

let csp: string | undefined;

export function pageCsp(): string {
  csp ??= [
    "default-src 'none'",
    `script-src ${hashOf("script")}`,
    `style-src ${hashOf("style")}`,
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return csp;
}
