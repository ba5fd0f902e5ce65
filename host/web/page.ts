// The page, as the bundle carries it: host/web/page.html with host/web/client.ts compiled and
// inlined by cloud-init/host-bundle.ts (esbuild's define AGENT_HOST_PAGE), so the server has no
// file to find and the page makes no request but to its own API. Its Content-Security-Policy
// allows exactly its one inline script and style (by hash) and connections to itself.
import { createHash } from "crypto";

declare const AGENT_HOST_PAGE: string;

export const PAGE_HTML: string = AGENT_HOST_PAGE;

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
