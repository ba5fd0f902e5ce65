/// <reference lib="dom" />
// The dashboard page's script (inlined into page.html by scripts/build-host.ts). Everything the
// agents wrote (WHY, the pane) is put in the page as text, never as HTML. The token comes from the
// URL fragment (`agentctl web --url`), which browsers never send to a server; it is kept in this
// browser's localStorage, removed from the address bar at once, and sent only as
// `Authorization: Bearer` to this page's own origin.

interface Row {
  name: string;
  agent_state: string;
  state_seconds: number | null;
  needs_you: boolean | null;
  why: string;
}

/** `agentctl status --json`: the host's health, then the agents. */
interface Status {
  host: { healthy: boolean; problems: { level: string; message: string }[] };
  agents: Row[];
}

interface PaneView {
  name: string;
  text: string;
  prompt: {
    kind: "permission" | "question";
    options: { n: number; label: string; checked?: boolean }[];
    multiSelect?: boolean;
    chat?: number;
    cursor?: number;
  } | null;
}

const TOKEN_KEY = "agent-host-dashboard-token";
const PANE_EVERY_MS = 1000;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

let token = "";
let rows: Row[] = [];
let problems: Status["host"]["problems"] = [];
let rowsAt = 0;
let selected: string | undefined;
let paneTimer: number | undefined;
let busy = false;

function fragment(): URLSearchParams {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function takeToken(): void {
  const f = fragment();
  const t = f.get("token");
  if (t) localStorage.setItem(TOKEN_KEY, t);
  token = localStorage.getItem(TOKEN_KEY) ?? "";
  const agent = f.get("agent");
  // The token leaves the address bar (and so the history and screenshots) at once.
  history.replaceState(null, "", agent ? `#agent=${encodeURIComponent(agent)}` : location.pathname);
  selected = agent && /^agent-[1-9][0-9]*$/.test(agent) ? agent : undefined;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers = { ...init.headers, "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = (await r.json().catch(() => ({}))) as T & { error?: string };
  if (!r.ok) throw new ApiError(r.status, data.error ?? `HTTP ${r.status}`);
  return data;
}

function notice(text: string): void {
  $("notice").textContent = text;
}

function authProblem(e: unknown): boolean {
  if (e instanceof ApiError && (e.status === 401 || e.status === 429)) {
    notice(
      e.status === 401
        ? "The token was refused. On the VM run: sudo agentctl web --url, and open the URL it prints."
        : e.message,
    );
    $("live").classList.remove("on");
    return true;
  }
  return false;
}

function duration(s: number): string {
  const pad = (v: number) => String(v).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

function el(tag: string, cls: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function since(r: Row): string {
  if (r.state_seconds === null) return "-";
  return duration(r.state_seconds + Math.floor((Date.now() - rowsAt) / 1000));
}

function card(r: Row, tag: "button" | "div"): HTMLElement {
  const c = el(tag, "agent");
  c.dataset.agent = r.name;
  c.dataset.state = r.agent_state;
  if (tag === "button") (c as HTMLButtonElement).type = "button";
  const top = el("div", "top");
  top.append(
    el("span", "name", r.name),
    el("span", "state", r.agent_state),
    el("span", "since", since(r)),
  );
  c.append(top, el("div", "why", r.why || "-"));
  return c;
}

function take(s: Status): void {
  rows = s.agents;
  problems = s.host.problems;
  rowsAt = Date.now();
}

function render(): void {
  const waiting = rows.filter((r) => r.needs_you).length;
  const title = waiting ? `${waiting} need${waiting === 1 ? "s" : ""} you` : "nobody needs you";
  $("title").textContent = `agent-host · ${title}`;
  document.title = waiting ? `(${waiting}) agent-host` : "agent-host";
  const host = problems.map((p) => `host ${p.level}: ${p.message}`).join("\n");
  if (host) notice(host);
  else if (rows.length === 0) notice("No agents.");
  else if (/^(Loading…|host )/.test($("notice").textContent ?? "")) notice("");
  const list = $("list");
  list.replaceChildren(
    ...rows.map((r) => {
      const li = document.createElement("li");
      const b = card(r, "button");
      b.addEventListener("click", () => open(r.name));
      li.append(b);
      return li;
    }),
  );
  const detail = $("detail");
  const row = rows.find((r) => r.name === selected);
  list.hidden = row !== undefined;
  detail.hidden = row === undefined;
  if (row) $("card").replaceChildren(card(row, "div"));
  document.body.dataset.ready = "1";
}

function open(name: string | undefined): void {
  selected = name;
  history.replaceState(null, "", name ? `#agent=${name}` : location.pathname);
  $("pane").textContent = "";
  // A fresh agent view draws its buttons anew (actions() skips a dialog it already drew).
  $("actions").replaceChildren();
  delete $("actions").dataset.sig;
  say("");
  render();
  window.clearInterval(paneTimer);
  if (name) {
    void refreshPane();
    paneTimer = window.setInterval(() => void refreshPane(), PANE_EVERY_MS);
  }
}

function say(text: string, bad = false): void {
  const m = $("msg");
  m.textContent = text;
  m.classList.toggle("bad", bad);
}

function button(id: string, label: string, run: () => Promise<void>): HTMLButtonElement {
  const b = el("button", "act", label) as HTMLButtonElement;
  b.type = "button";
  if (id) b.id = id;
  b.disabled = busy;
  b.addEventListener("click", () => {
    if (busy) return;
    busy = true;
    for (const x of Array.from($("actions").querySelectorAll("button"))) x.disabled = true;
    run()
      .catch((e: unknown) => authProblem(e) || say((e as Error).message, true))
      .finally(() => {
        busy = false;
        void refreshPane();
      });
  });
  return b;
}

function actions(view: PaneView, row: Row | undefined): void {
  const box = $("actions");
  const p = view.prompt;
  const waiting = row?.agent_state === "needs-permission" || row?.agent_state === "needs-answer";
  const sig = p && waiting ? JSON.stringify(p) : "";
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  const name = view.name;
  const answer = (body: unknown, done: string) => async () => {
    await api(`/api/agents/${name}/answer`, body);
    say(done);
  };
  if (!p || !waiting) return void box.replaceChildren();
  if (p.kind === "permission") {
    box.replaceChildren(
      button("approve", "Approve once", answer({ action: "approve" }, "Approved.")),
      button("deny", "Deny", answer({ action: "deny" }, "Denied.")),
    );
  } else {
    // A question that takes several options: each button ticks or unticks its option (the pane
    // shows which are ticked), and Next moves on to the next part or the review's Submit.
    const options = p.options.map((o) => {
      const box = p.multiSelect ? `${o.checked ? "☑" : "☐"} ` : "";
      const done = p.multiSelect ? `Ticked or unticked ${o.n}.` : `Answered ${o.n}.`;
      const b = button(
        "",
        `${o.n}. ${box}${o.label}`,
        answer({ action: "option", option: o.n }, done),
      );
      b.dataset.option = String(o.n);
      return b;
    });
    const next = p.multiSelect
      ? [button("next", "Next →", answer({ action: "next" }, "Next."))]
      : [];
    // Declines the question for a conversation: the model asks what to clarify, and the send box
    // answers it once the agent is idle.
    const chat =
      p.chat === undefined
        ? []
        : [
            button(
              "chat",
              "Chat about this",
              answer({ action: "chat" }, "Asked to talk it over: reply with Send once it asks."),
            ),
          ];
    box.replaceChildren(...options, ...next, ...chat);
  }
}

async function refreshPane(): Promise<void> {
  const name = selected;
  if (!name) return;
  try {
    const view = await api<PaneView>(`/api/agents/${name}/pane`);
    if (name !== selected) return;
    const pane = $("pane");
    const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
    pane.textContent = view.text;
    if (atBottom) pane.scrollTop = pane.scrollHeight;
    actions(
      view,
      rows.find((r) => r.name === name),
    );
  } catch (e) {
    if (!authProblem(e)) say((e as Error).message, true);
  }
}

/** The rows as server-sent events, read with fetch (EventSource cannot send the token). */
async function stream(): Promise<void> {
  for (;;) {
    try {
      const r = await fetch("/api/events", {
        headers: { Authorization: `Bearer ${token}` },
        cache: "no-store",
      });
      if (!r.ok || !r.body) {
        const data = (await r.json().catch(() => ({}))) as { error?: string };
        if (authProblem(new ApiError(r.status, data.error ?? `HTTP ${r.status}`))) return;
        throw new Error(`HTTP ${r.status}`);
      }
      $("live").classList.add("on");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end: number;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = frame
            .split("\n")
            .filter((l) => l.startsWith("data: "))
            .map((l) => l.slice(6))
            .join("\n");
          if (/^event: agents$/m.test(frame) && data) {
            take(JSON.parse(data) as Status);
            render();
            if (selected) void refreshPane();
          }
        }
      }
    } catch {
      // the tunnel dropped or the server restarted: try again below
    }
    $("live").classList.remove("on");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function main(): void {
  takeToken();
  $("back").addEventListener("click", () => open(undefined));
  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const box = $<HTMLTextAreaElement>("send-text");
    const text = box.value;
    if (!selected || !text.trim()) return;
    const b = $<HTMLButtonElement>("send");
    b.disabled = true;
    api(`/api/agents/${selected}/send`, { text })
      .then(() => {
        box.value = "";
        say("Sent.");
      })
      .catch((e: unknown) => authProblem(e) || say((e as Error).message, true))
      .finally(() => (b.disabled = false));
  });
  window.addEventListener("hashchange", () => {
    const a = fragment().get("agent");
    if (a !== selected) open(a ?? undefined);
  });
  if (!token) {
    notice("No token. On the VM run: sudo agentctl web --url, and open the URL it prints.");
    return;
  }
  api<Status>("/api/agents")
    .then((s) => {
      take(s);
      render();
      if (selected) open(selected);
    })
    .catch((e: unknown) => authProblem(e) || notice((e as Error).message));
  // SINCE counts on between pushes.
  window.setInterval(() => {
    for (const s of Array.from(document.querySelectorAll<HTMLElement>(".agent"))) {
      const r = rows.find((x) => x.name === s.dataset.agent);
      const cell = s.querySelector(".since");
      if (r && cell) cell.textContent = since(r);
    }
  }, 1000);
  void stream();
}

main();
