// apply's journal (/var/lib/agent-host/apply.json, root's, 0644, no secret in it): what the
// running apply decided and how far it got. Written (atomically) before each step that makes
// something owed and after each step done, so an apply cut off anywhere leaves the truth behind:
//   - the next apply carries over what is still owed (a daemon-reload, a restart of every agent
//     for a changed permission mode, key or Claude Code version), although by then the files it
//     compares are already the new ones and would show no change;
//   - a reboot pays a restart owed by itself (every agent starts afresh): the boot id tells;
//   - `agentctl status` reports an apply that failed or was cut off (host/attention/health.ts).
//
// AGENT_HOST_APPLY_CRASH_AFTER=STEP (tests only: tests/faults.test.ts) makes apply kill its whole
// process group (the apply shell, Node, whatever they run) with SIGKILL right after STEP is
// journaled done, as a power cut or a preemption would: the fault suite cuts it off at every step
// without a sleep or a race. The suite starts apply as the leader of its own group.
import * as fs from "fs";
import * as path from "path";
import type { ApplyArgs } from "./bundle";

export const JOURNAL_PATH = "/var/lib/agent-host/apply.json";
export const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";

/** apply's steps, in order. */
export const APPLY_STEPS = [
  "files",
  "conf",
  "admin-keys",
  "secrets",
  "claude-code",
  "services",
  "packages",
  "git",
  "restart",
  "reconcile",
] as const;
export type ApplyStep = (typeof APPLY_STEPS)[number];

export interface JournalState {
  v: 1;
  pid: number;
  instance: string;
  agents: number;
  bundle_sha256: string;
  /** Epoch seconds. */
  started: number;
  boot_id: string;
  /** The last step done ("" before the first). */
  step: ApplyStep | "";
  /** Why every agent must restart (null: no restart owed). */
  restart_owed: string | null;
  reload_owed: boolean;
  /** Epoch seconds it ended (absent while it runs, or when it was cut off). */
  finished?: number;
  ok?: boolean;
  /** One line, when it failed. */
  error?: string;
}

export function parseJournal(text: string | undefined): JournalState | undefined {
  if (text === undefined) return undefined;
  try {
    const j = JSON.parse(text) as Partial<JournalState>;
    if (j.v !== 1 || typeof j.started !== "number" || typeof j.pid !== "number") return undefined;
    return {
      v: 1,
      pid: j.pid,
      instance: String(j.instance ?? ""),
      agents: Number(j.agents ?? 0),
      bundle_sha256: String(j.bundle_sha256 ?? ""),
      started: j.started,
      boot_id: String(j.boot_id ?? ""),
      step: (APPLY_STEPS as readonly string[]).includes(String(j.step))
        ? (j.step as ApplyStep)
        : "",
      restart_owed: typeof j.restart_owed === "string" ? j.restart_owed : null,
      reload_owed: j.reload_owed === true,
      ...(typeof j.finished === "number" ? { finished: j.finished } : {}),
      ...(typeof j.ok === "boolean" ? { ok: j.ok } : {}),
      ...(typeof j.error === "string" ? { error: j.error } : {}),
    };
  } catch {
    return undefined;
  }
}

/**
 * What a new apply inherits from the journal before it: a restart still owed in this boot (a
 * reboot since has restarted every agent), and a daemon-reload still owed. Pure.
 */
export function carriedOver(
  prev: JournalState | undefined,
  bootId: string,
): { restart_owed: string | null; reload_owed: boolean } {
  if (!prev || prev.ok === true) return { restart_owed: null, reload_owed: false };
  return {
    restart_owed: prev.boot_id === bootId ? prev.restart_owed : null,
    reload_owed: prev.reload_owed,
  };
}

export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export const currentBootId = (): string => (readText(BOOT_ID_FILE) ?? "").trim();

export class Journal {
  state: JournalState;
  private readonly crashAfter: string | undefined;

  constructor(
    private readonly file: string,
    args: ApplyArgs,
    env: NodeJS.ProcessEnv,
    log: (line: string) => void,
  ) {
    const prev = parseJournal(readText(file));
    const bootId = currentBootId();
    if (prev && prev.finished === undefined)
      log(
        `the last apply (started ${new Date(prev.started * 1000).toISOString()}) was cut off after step '${prev.step || "none"}'; this one finishes its work`,
      );
    const carried = carriedOver(prev, bootId);
    if (carried.restart_owed) log(`carried over from the last apply: ${carried.restart_owed}`);
    this.crashAfter = env.AGENT_HOST_APPLY_CRASH_AFTER || undefined;
    this.state = {
      v: 1,
      pid: process.pid,
      instance: args.instanceId,
      agents: args.agents,
      bundle_sha256: args.bundleSha256,
      started: Math.floor(Date.now() / 1000),
      boot_id: bootId,
      step: "",
      ...carried,
    };
    this.write();
  }

  /** Records something owed (or paid: null / false) before the step that makes it so. */
  owe(what: { restart?: string | null; reload?: boolean }): void {
    if (what.restart !== undefined) {
      // A first reason stands: a later one does not make the restart any more needed.
      this.state.restart_owed =
        what.restart === null ? null : (this.state.restart_owed ?? what.restart);
    }
    if (what.reload !== undefined) this.state.reload_owed = what.reload;
    this.write();
  }

  step(name: ApplyStep, fn: () => void): void {
    fn();
    this.state.step = name;
    this.write();
    if (this.crashAfter === name) process.kill(0, "SIGKILL");
  }

  finish(): void {
    this.state = { ...this.state, finished: Math.floor(Date.now() / 1000), ok: true };
    this.write();
  }

  fail(error: Error): void {
    const line = error.message.replace(/\s*\n\s*/g, " ");
    this.state = { ...this.state, finished: Math.floor(Date.now() / 1000), ok: false, error: line };
    this.write();
  }

  private write(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o755 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(this.state)}\n`, { mode: 0o644 });
    fs.renameSync(tmp, this.file);
  }
}
