// The notifyWebhookUrl value: which receiver format it gets. One definition, used by the stack's
// config check (config.ts) and by the host's notifier (host/attention/notify.ts). Pure.

export type WebhookKind = "slack" | "ntfy" | "json";

/** Where Slack's incoming webhooks live: a URL on this host is itself the credential. */
export const SLACK_WEBHOOK_HOST = "hooks.slack.com";

export interface Webhook {
  kind: WebhookKind;
  url: URL;
}

/**
 * Reads the configured value: `slack:`, `ntfy:` or `json:` before the URL forces a format;
 * otherwise hooks.slack.com is Slack, ntfy.sh (or a host named ntfy.*) is ntfy, anything else JSON.
 */
export function parseWebhook(raw: string): Webhook | undefined {
  let text = raw.trim();
  let kind: WebhookKind | undefined;
  const forced = /^(slack|ntfy|json):(?=https?:\/\/)/i.exec(text);
  if (forced) {
    kind = forced[1].toLowerCase() as WebhookKind;
    text = text.slice(forced[0].length);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (!kind) {
    const host = url.hostname.toLowerCase();
    kind =
      host === SLACK_WEBHOOK_HOST
        ? "slack"
        : host === "ntfy.sh" || host.startsWith("ntfy.")
          ? "ntfy"
          : "json";
  }
  return { kind, url };
}
