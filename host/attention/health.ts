// The host's own health, which `agentctl status` shows before the agents (issue 23, point 1):
// host.conf's errors and warnings (or no host.conf at all), the last apply (failed, or cut off
// with work still owed), the last reconcile (an agent that did not start, and why), a full disk
// (the data disk, the state folders', the root), and an agent state folder its recorder cannot
// write (the hooks then record nothing: host/attention/store.ts says so only in claude's debug
// log). Every problem is one line that names the fault and the fix. assessHealth is pure; the
// gathering below reads the files and the filesystems, as root.
import * as fs from "fs";
import * as path from "path";
import { KEY, type HostConf } from "../conf/conf";
import { agentIds } from "../agents/agent-user";
import {
  currentBootId,
  JOURNAL_PATH,
  parseJournal,
  readText,
  type JournalState,
} from "../apply/journal";
import { parseReconcileRecord, RECONCILE_RECORD, type ReconcileRecord } from "../agents/reconcile";

export type Level = "error" | "warning";

export interface Problem {
  level: Level;
  /** conf, apply, reconcile, disk, state-folder. */
  kind: string;
  /** One line: the fault and the fix. */
  message: string;
}

export interface DiskUse {
  /** The folders on this filesystem that matter, e.g. "/workspaces (the workspaces key)". */
  what: string;
  path: string;
  availBytes: number;
  totalBytes: number;
  /** Free and total inodes (0 total: the filesystem does not count them). */
  availInodes?: number;
  totalInodes?: number;
}

export interface StateFolder {
  agent: number;
  dir: string;
  uid: number;
  mode: number;
  /** The uid its recorder runs as, when known (an agent's); else anything but root will do. */
  expectedUid?: number;
}

export interface HealthInputs {
  conf: HostConf;
  confExists: boolean;
  journal?: JournalState;
  /** Whether the journal's apply is still running (its pid is alive, in this boot). */
  applyRunning: boolean;
  bootId: string;
  reconcile?: ReconcileRecord;
  disks: DiskUse[];
  stateFolders: StateFolder[];
}

/** A filesystem with less than this free is full: writes fail, or are about to. */
export const DISK_FULL_BYTES = 64 * 1024 * 1024;
export const DISK_FULL_FRACTION = 0.02;
/** Below this fraction free, a warning. */
export const DISK_LOW_FRACTION = 0.1;

const iso = (epochSeconds: number): string =>
  new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, "Z");

const mib = (bytes: number): string => `${Math.floor(bytes / (1024 * 1024))} MiB`;

function confProblems(conf: HostConf, exists: boolean): Problem[] {
  if (!exists)
    return [
      {
        level: "error",
        kind: "conf",
        message: `no host config at ${conf.file}: every agent runs on defaults; run 'pulumi up' to install it`,
      },
    ];
  return [
    ...Object.values(conf.errors).map((m) => ({
      level: "error" as const,
      kind: "conf",
      message: m as string,
    })),
    ...conf.warnings.map((w) => ({
      level: "warning" as const,
      kind: "conf",
      message: `${w}; remove the line or fix its key`,
    })),
  ];
}

function applyProblems(i: HealthInputs): Problem[] {
  const j = i.journal;
  if (!j || j.ok === true) return [];
  const owed =
    j.restart_owed !== null && j.boot_id === i.bootId
      ? ` Agents still run with the old settings (${j.restart_owed}).`
      : "";
  if (j.finished === undefined && i.applyRunning)
    return [
      {
        level: "warning",
        kind: "apply",
        message: `an apply is running (pid ${j.pid}, since ${iso(j.started)}, last step done: ${j.step || "none"}); wait for it`,
      },
    ];
  if (j.finished === undefined)
    return [
      {
        level: "error",
        kind: "apply",
        message: `the last apply (started ${iso(j.started)}) was cut off after step '${j.step || "none"}'.${owed} Run 'pulumi up' again: the next apply finishes the job`,
      },
    ];
  return [
    {
      level: "error",
      kind: "apply",
      message: `the last apply (${iso(j.finished)}) failed after step '${j.step || "none"}': ${j.error ?? "unknown error"}.${owed} Fix that, then run 'pulumi up' again`,
    },
  ];
}

function reconcileProblems(r: ReconcileRecord | undefined): Problem[] {
  if (!r || r.ok) return [];
  return r.failed.map((f) => ({
    level: "error" as const,
    kind: "reconcile",
    message: `the last reconcile to ${r.requested} agents (${iso(r.at)}) left the desired count at ${r.desired}: ${f.agent > 0 ? `agent-${f.agent} did not start` : "checkouts failed"}: ${f.error}`,
  }));
}

function diskProblems(disks: readonly DiskUse[]): Problem[] {
  const out: Problem[] = [];
  for (const d of disks) {
    if (d.totalBytes <= 0) continue;
    const free = d.availBytes / d.totalBytes;
    const where = `${d.what}: ${mib(d.availBytes)} free of ${mib(d.totalBytes)}`;
    const inodesOut =
      (d.totalInodes ?? 0) > 0 && (d.availInodes ?? 0) < (d.totalInodes ?? 0) * DISK_FULL_FRACTION;
    if (inodesOut && !(d.availBytes < DISK_FULL_BYTES || free < DISK_FULL_FRACTION))
      out.push({
        level: "error",
        kind: "disk",
        message: `disk full at ${d.what}: ${d.availInodes} of ${d.totalInodes} inodes free (too many small files); agents cannot create files there: remove files (du -xs --inodes ${d.path}/*) or grow the disk`,
      });
    else if (d.availBytes < DISK_FULL_BYTES || free < DISK_FULL_FRACTION)
      out.push({
        level: "error",
        kind: "disk",
        message: `disk full at ${where}; agents cannot write there: free space (du -xsh ${d.path}/*) or grow the disk (dataDiskSizeGb, then pulumi up)`,
      });
    else if (free < DISK_LOW_FRACTION)
      out.push({
        level: "warning",
        kind: "disk",
        message: `disk almost full at ${where} (${Math.round(free * 100)}% free); free space or grow the disk`,
      });
  }
  return out;
}

function stateFolderProblems(folders: readonly StateFolder[]): Problem[] {
  return folders
    .filter(
      (f) =>
        (f.expectedUid !== undefined ? f.uid !== f.expectedUid : f.uid === 0) ||
        (f.mode & 0o200) === 0,
    )
    .map((f) => ({
      level: "error" as const,
      kind: "state-folder",
      message: `agent-${f.agent}'s state folder ${f.dir} is not writable by its user (owner uid ${f.uid}, mode ${(f.mode & 0o7777).toString(8).padStart(4, "0")}): its hooks record nothing; run 'sudo agentctl restart ${f.agent}' (the wrapper makes it the agent's again)`,
    }));
}

/** Every problem, errors first. Pure. */
export function assessHealth(i: HealthInputs): Problem[] {
  const all = [
    ...confProblems(i.conf, i.confExists),
    ...applyProblems(i),
    ...reconcileProblems(i.reconcile),
    ...diskProblems(i.disks),
    ...stateFolderProblems(i.stateFolders),
  ];
  return [...all.filter((p) => p.level === "error"), ...all.filter((p) => p.level === "warning")];
}

export const healthy = (problems: readonly Problem[]): boolean =>
  !problems.some((p) => p.level === "error");

/** The lines `agentctl status` prints first. */
export function healthText(problems: readonly Problem[]): string {
  if (problems.length === 0) return "HOST  healthy\n";
  const errors = problems.filter((p) => p.level === "error").length;
  const warnings = problems.length - errors;
  const counts = [
    errors ? `${errors} error${errors > 1 ? "s" : ""}` : "",
    warnings ? `${warnings} warning${warnings > 1 ? "s" : ""}` : "",
  ].filter(Boolean);
  const head = `HOST  ${errors ? "UNHEALTHY" : "healthy"}: ${counts.join(", ")}`;
  return `${[head, ...problems.map((p) => `  ${p.level}: ${p.message}`)].join("\n")}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// gathering, as root

function diskUse(folders: readonly { what: string; path: string }[]): DiskUse[] {
  const byDev = new Map<number, DiskUse>();
  for (const f of folders) {
    let dev: number;
    let st: fs.StatsFs;
    try {
      dev = fs.statSync(f.path).dev;
      st = fs.statfsSync(f.path);
    } catch {
      continue; // not there (yet): nothing to fill
    }
    const seen = byDev.get(dev);
    if (seen) {
      seen.what += `, ${f.what}`;
      continue;
    }
    byDev.set(dev, {
      what: f.what,
      path: f.path,
      availBytes: st.bavail * st.bsize,
      totalBytes: st.blocks * st.bsize,
      availInodes: st.ffree,
      totalInodes: st.files,
    });
  }
  return [...byDev.values()];
}

function stateFolders(conf: HostConf, agents: readonly number[]): StateFolder[] {
  const out: StateFolder[] = [];
  for (const agent of agents) {
    // Agent N's own state folder, in its own home, owned by its own uid (issue 20).
    const { state: dir, uid: expectedUid } = agentIds(conf, agent);
    try {
      const st = fs.lstatSync(dir);
      if (st.isDirectory()) out.push({ agent, dir, uid: st.uid, mode: st.mode, expectedUid });
    } catch {
      // not made yet: the wrapper makes it when the agent starts
    }
  }
  return out;
}

/**
 * Whether the journal's apply still runs: its pid is there, not a zombie (an apply killed with its
 * parent waits unreaped where PID 1 does not reap, e.g. a container), and still an apply (pids
 * are reused).
 */
export function applyAlive(pid: number, procRoot = "/proc"): boolean {
  const stat = readText(path.join(procRoot, String(pid), "stat"));
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  if (state === "Z" || state === "X") return false;
  const cmdline = readText(path.join(procRoot, String(pid), "cmdline")) ?? "";
  return cmdline.split("\0").includes("apply");
}

/** The host's problems now. `agents`: the agent numbers status reports. */
export function hostHealth(
  conf: HostConf,
  agents: readonly number[],
  env: NodeJS.ProcessEnv = process.env,
): Problem[] {
  const root = env.AGENT_HOST_ROOT ?? "";
  const journal = parseJournal(readText(`${root}${JOURNAL_PATH}`));
  const bootId = currentBootId();
  return assessHealth({
    conf,
    confExists: fs.existsSync(conf.file),
    journal,
    applyRunning:
      journal !== undefined &&
      journal.finished === undefined &&
      journal.boot_id === bootId &&
      applyAlive(journal.pid),
    bootId,
    reconcile: parseReconcileRecord(readText(path.join(conf.runDir, RECONCILE_RECORD))),
    disks: diskUse([
      { what: `${conf.dataMount} (the data disk)`, path: conf.dataMount },
      { what: `${conf.workspacesDir} (${KEY.workspacesDir})`, path: conf.workspacesDir },
      { what: `${conf.agentHomesDir} (${KEY.agentHomesDir})`, path: conf.agentHomesDir },
      { what: "/ (the boot disk)", path: `${root}/` },
    ]),
    stateFolders: stateFolders(conf, agents),
  });
}
