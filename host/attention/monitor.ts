// The monitor: what the control window runs (`agentctl watch`), as root. Every half second it
// reads every agent's state, marks the windows that need a person in tmux (window option
// @agent_mark, shown by tmux.conf's window-status formats; session option @agents_waiting in the
// status line), sends the notifications, and redraws the live view. Only one monitor notifies at a
// time (conf.runDir/monitor.pid); a second `agentctl watch` only shows.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { HostConf } from "../conf/conf";
import {
  humanDuration,
  sortForStatus,
  tmuxMark,
  type AgentState,
  type Effective,
} from "./effective";
import { snapshot } from "../agents/facts";
import {
  attachCommand,
  dashboardLink,
  Notifier,
  parseWebhook,
  type Message,
  type MessageEvent,
  type Webhook,
} from "./notify";
import { readTransitions, writeAtomic, readBounded } from "./store";
import { SESSION, tmux, windowTarget } from "../agents/tmux";
import { agentIds } from "../agents/agent-user";

export const POLL_MS = 500;
const SEEN_FILE = "notify-seen.json";
const PID_FILE = "monitor.pid";
const WEBHOOK_MAX_BYTES = 4096;

/** The webhook from its root-only file, re-read when the file changes. */
export function webhookReader(file: string): () => Webhook | undefined {
  let stamp = "";
  let hook: Webhook | undefined;
  return () => {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      stamp = "";
      hook = undefined;
      return undefined;
    }
    const now = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (now !== stamp) {
      stamp = now;
      const text = readBounded(file, WEBHOOK_MAX_BYTES, 0) ?? "";
      hook = text.trim() ? parseWebhook(text) : undefined;
    }
    return hook;
  };
}

function loadSeen(file: string): Map<number, number> {
  const seen = new Map<number, number>();
  try {
    const v = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    for (const [k, s] of Object.entries(v))
      if (/^\d+$/.test(k) && typeof s === "number") seen.set(Number(k), s);
  } catch {
    // First start (conf.runDir is a tmpfs: also after a reboot): start from the current transitions.
  }
  return seen;
}

/** Claims the notifying role; false when another live monitor holds it. */
function claim(runDir: string): boolean {
  const file = path.join(runDir, PID_FILE);
  for (let i = 0; i < 3; i++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
      return true;
    } catch {
      const pid = Number(fs.readFileSync(file, "utf8").trim());
      let alive = false;
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) return false;
      fs.rmSync(file, { force: true });
    }
  }
  return false;
}

const EVENT_FOR: Partial<Record<AgentState, MessageEvent>> = {
  "needs-permission": "needs-permission",
  "needs-answer": "needs-answer",
  "signed-out": "signed-out",
};

export interface MonitorOptions {
  conf: HostConf;
  /** Draw the live view on stdout. */
  display: boolean;
  log: (line: string) => void;
  /** agentctl's own path, for the full status table under the live view. */
  agentctl?: string;
  hostName?: string;
}

export class Monitor {
  readonly notifier: Notifier;
  private readonly seenFile: string;
  private seen: Map<number, number>;
  private marks = new Map<number, string>();
  private waiting = "";
  private lastState = new Map<number, AgentState>();
  private notifying: boolean;
  private fullTable = "";
  private fullTableAt = 0;
  private readonly host: string;

  constructor(private readonly opts: MonitorOptions) {
    const { conf } = opts;
    fs.mkdirSync(conf.runDir, { recursive: true, mode: 0o700 });
    this.seenFile = path.join(conf.runDir, SEEN_FILE);
    this.seen = loadSeen(this.seenFile);
    this.notifying = claim(conf.runDir);
    this.host = opts.hostName ?? os.hostname();
    this.notifier = new Notifier({ webhook: webhookReader(conf.notifyWebhookFile), log: opts.log });
  }

  release(): void {
    if (!this.notifying) return;
    const file = path.join(this.opts.conf.runDir, PID_FILE);
    try {
      if (fs.readFileSync(file, "utf8").trim() === String(process.pid))
        fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  }

  private message(n: number, event: MessageEvent, reason: string, at: number): Message {
    return {
      agent: n,
      event,
      reason,
      at,
      host: this.host,
      attach: attachCommand(this.opts.conf.adminUser, this.host, n),
      ...(this.opts.conf.dashboardUrl
        ? { dashboard: dashboardLink(this.opts.conf.dashboardUrl, n) }
        : {}),
    };
  }

  /** One round: read, mark, notify. Returns the rows (sorted for display). */
  tick(): Effective[] {
    const { conf } = this.opts;
    const { rows, recorded } = snapshot(conf);
    let seenChanged = false;
    for (const row of rows) {
      const mark = tmuxMark(row.state);
      if (row.state !== "missing" && this.marks.get(row.n) !== mark) {
        const t = windowTarget(row.n);
        const ok =
          tmux(conf.tmuxSocket, ["set-option", "-w", "-t", t, "@agent_mark", mark]).code === 0 &&
          tmux(conf.tmuxSocket, ["set-option", "-w", "-t", t, "@agent_state", row.state]).code ===
            0;
        if (ok) this.marks.set(row.n, mark);
      }
      if (!this.notifying) continue;
      const rec = recorded.get(row.n);
      const seen = this.seen.get(row.n);
      if (rec && (seen === undefined || rec.seq < seen)) {
        // First sight of this agent (or its record was reset): nothing before now is news.
        this.seen.set(row.n, rec.seq);
        seenChanged = true;
      } else if (rec && seen !== undefined && rec.seq > seen) {
        const ids = agentIds(conf, row.n);
        for (const t of readTransitions(ids.state, seen, ids.uid)) {
          if (t.notify === "needs-you" && EVENT_FOR[t.state]) {
            this.notifier.enqueue(
              this.message(row.n, EVENT_FOR[t.state] as MessageEvent, t.reason, t.at),
            );
          } else if (t.notify === "turn-done" && conf.notifyOnIdle) {
            this.notifier.enqueue(this.message(row.n, "turn-done", t.reason, t.at));
          }
        }
        this.seen.set(row.n, rec.seq);
        seenChanged = true;
      }
      // States only agentctl sees: an agent that stopped for good, a login refused.
      const before = this.lastState.get(row.n);
      if (
        before !== undefined &&
        before !== row.state &&
        (row.state === "exited" || (row.state === "signed-out" && rec?.state !== "signed-out"))
      ) {
        this.notifier.enqueue(this.message(row.n, row.state, row.reason, Date.now()));
      }
      this.lastState.set(row.n, row.state);
    }
    if (seenChanged) {
      writeAtomic(this.seenFile, `${JSON.stringify(Object.fromEntries(this.seen))}\n`);
    }
    const waitingRows = rows.filter((r) => r.needsYou);
    const waiting = waitingRows.length
      ? `${waitingRows.length} need${waitingRows.length === 1 ? "s" : ""} you: ${waitingRows.map((r) => r.name).join(" ")}`
      : "";
    if (waiting !== this.waiting) {
      if (
        tmux(conf.tmuxSocket, ["set-option", "-t", `=${SESSION}:`, "@agents_waiting", waiting])
          .code === 0
      ) {
        this.waiting = waiting;
      }
    }
    return sortForStatus(rows);
  }

  private refreshFullTable(): void {
    if (!this.opts.agentctl || Date.now() - this.fullTableAt < 15_000) return;
    this.fullTableAt = Date.now();
    const p = spawn(this.opts.agentctl, ["status"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", () => (this.fullTable = out));
    p.on("error", () => undefined);
  }

  render(rows: readonly Effective[]): string {
    const now = Date.now();
    const waiting = rows.filter((r) => r.needsYou).length;
    const lines = [
      `agent-host control: ${waiting ? `\x1b[1;7m ${waiting} NEED${waiting === 1 ? "S" : ""} YOU \x1b[0m` : "nobody needs you"}` +
        `   (${new Date(now).toISOString().slice(11, 19)} UTC; Ctrl-b N opens agent-N; agentctl send N "text")`,
      "",
    ];
    const w = Math.max(4, ...rows.map((r) => r.name.length));
    const sw = Math.max(5, ...rows.map((r) => r.state.length));
    lines.push(`${"NAME".padEnd(w)}  ${"STATE".padEnd(sw)}  ${"SINCE".padEnd(7)}  WHY`);
    for (const r of rows) {
      const since = r.since !== undefined ? humanDuration((now - r.since) / 1000) : "-";
      const cols = process.stdout.columns || 160;
      const line =
        `${r.name.padEnd(w)}  ${r.state.padEnd(sw)}  ${since.padEnd(7)}  ${r.reason}`.slice(
          0,
          cols,
        );
      lines.push(r.needsYou ? `\x1b[1;33;7m${line}\x1b[0m` : line);
    }
    if (this.fullTable) lines.push("", this.fullTable.trimEnd());
    return lines.join("\n");
  }

  async run(): Promise<never> {
    for (;;) {
      try {
        const rows = this.tick();
        if (this.opts.display) {
          this.refreshFullTable();
          process.stdout.write(`\x1b[H\x1b[2J${this.render(rows)}\n`);
        }
      } catch (error) {
        this.opts.log(`monitor: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}
