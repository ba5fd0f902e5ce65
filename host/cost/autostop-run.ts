// Agent-aware auto-stop, the daemon (agent-host-autostop.service runs `agent-host.js autostop`):
// every poll it reads the agents' states and who is there, decides (host/cost/autostop.ts), records
// the decision for `agentctl status`, and when the quiet time is over it tells the notification
// channel and runs the stop command (host.conf's autoStopCommand, default `systemctl poweroff`).
//
// A poweroff from inside the guest is a clean ACPI shutdown; GCE then shows the VM as TERMINATED
// (stopped) and keeps its persistent disks and its static address ("Stop or restart a Compute
// Engine instance": stopping from the guest OS; a stopped VM is not billed for vCPUs and memory,
// its disks and a reserved address are). `startCommand` (stack output) starts it again.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  decide,
  describeDecision,
  shortDuration,
  type AgentActivity,
  type AutoStopDecision,
  type Presence,
} from "./autostop";
import { KEY } from "../conf/conf";

export const STATE_FILE = "autostop.json";

/** What the daemon keeps in conf.runDir (a tmpfs: gone at boot, where the quiet time restarts anyway). */
export interface AutoStopState {
  /** Epoch ms something last held the VM up. */
  lastBusyAt?: number;
  /** Epoch ms of the last stop the daemon asked for. */
  stoppedAt?: number;
  /** The last decision, as `agentctl status` prints it. */
  line?: string;
  updated?: number;
}

export function readState(runDir: string): AutoStopState {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(runDir, STATE_FILE), "utf8")) as AutoStopState;
    return typeof v === "object" && v !== null ? v : {};
  } catch {
    return {};
  }
}

function writeState(runDir: string, state: AutoStopState): void {
  const file = path.join(runDir, STATE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** The stop command as argv: whitespace-separated words, never a shell. */
export function stopArgv(command: string): string[] {
  const argv = command.trim().split(/\s+/).filter(Boolean);
  return argv.length > 0 ? argv : ["systemctl", "poweroff"];
}

export interface AutoStopDeps {
  now(): number;
  agents(): AgentActivity[];
  presence(): Presence;
  bootAt: number;
  /** Tells the notification channel (bounded by the caller's timeout); never throws. */
  notify?(text: string): Promise<void>;
  log(line: string): void;
}

export interface AutoStopSettings {
  runDir: string;
  /** Quiet time before the stop, ms; 0 = off. */
  limitMs: number;
  pollMs: number;
  /** conf.autoStopCommand. */
  command: string;
  /** Stop after this many polls (tests); undefined: until the process is stopped. */
  maxPolls?: number;
}

/** One poll: decide, record, and stop when it is time. Returns the decision. */
export async function pollOnce(
  settings: AutoStopSettings,
  deps: AutoStopDeps,
): Promise<AutoStopDecision> {
  const now = deps.now();
  const state = readState(settings.runDir);
  const decision = decide({
    now,
    limitMs: settings.limitMs,
    bootAt: deps.bootAt,
    lastBusyAt: state.lastBusyAt,
    agents: deps.agents(),
    presence: deps.presence(),
  });
  const next: AutoStopState = {
    ...state,
    updated: now,
    line: describeDecision(decision, now, settings.limitMs),
  };
  if (decision.kind === "held") next.lastBusyAt = now;
  if (decision.kind === "stop") {
    // One line of at most 160 characters: it is the notification's reason (host/attention/text.ts).
    const text = `stopping the VM after ${shortDuration(now - decision.quietSince)} with every agent idle or waiting on a person and nobody attached; disks and address stay; start: startCommand`;
    deps.log(text);
    if (deps.notify) await deps.notify(text);
    const argv = stopArgv(settings.command);
    const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) {
      deps.log(
        `${argv.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? "").trim()}`,
      );
    }
    next.stoppedAt = now;
    // The clock starts again: a stop that did not take (or a stand-in) is not repeated every poll.
    next.lastBusyAt = now;
  }
  writeState(settings.runDir, next);
  return decision;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function runAutoStop(settings: AutoStopSettings, deps: AutoStopDeps): Promise<number> {
  fs.mkdirSync(settings.runDir, { recursive: true, mode: 0o700 });
  if (settings.limitMs <= 0) {
    deps.log(`auto-stop is off (${KEY.autoStopSeconds}=0)`);
    writeState(settings.runDir, {
      line: describeDecision({ kind: "off" }, deps.now(), 0),
      updated: deps.now(),
    });
    return 0;
  }
  deps.log(
    `auto-stop: the VM stops after ${Math.round(settings.limitMs / 1000)} s with every agent idle and nobody attached (${stopArgv(settings.command).join(" ")})`,
  );
  for (let polls = 0; settings.maxPolls === undefined || polls < settings.maxPolls; polls++) {
    try {
      await pollOnce(settings, deps);
    } catch (error) {
      // A failed read (tmux restarting, a state file mid-write) must not end the daemon.
      deps.log(`auto-stop: poll failed: ${(error as Error).message}`);
    }
    await sleep(settings.pollMs);
  }
  return 0;
}
