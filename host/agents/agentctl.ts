// agentctl reconcile, restart and logs, and the halves of attach and login that touch tmux:
// agentctl (bash) resolves its files and execs `agent-host.js COMMAND` (host/commands.ts).
// What to do comes from host/agents/reconcile.ts (pure); host/agents/agents.ts and host/agents/checkouts.ts do it.
import * as fs from "fs";
import * as path from "path";
import { type Agents, type Log } from "./agents";
import { agentsWithUnsavedWork, prepareCheckouts } from "./checkouts";
import { legacyAgents, legacyUid, migrateAgent, pidsOfUid, retireLegacyUser } from "./migrate";
import { firstError, loadHostConf, scriptKeys, type HostConf, type HostKey } from "../conf/conf";
import {
  agentsWithWindows,
  faultLine,
  liveAgents,
  namesOrNone,
  paneTail,
  parseLogsArgs,
  parseReconcileArgs,
  parseRestartArgs,
  planReconcile,
  reconcileJson,
  reconcileText,
  resolveAgent,
  runningCount,
  staggerDelay,
  RECONCILE_RECORD,
  type AgentFailure,
  type ReconcileRecord,
} from "./reconcile";
import { UsageError } from "./send";
import { dockerUserNames, setUpAgentDocker } from "../docker/docker-main";
import { SESSION } from "./tmux";

/**
 * The host.conf keys agentctl reads, for itself and for the wrappers it starts: its variables
 * in host/conf/conf.ts SCRIPT_VARS, which its bash load_config gets.
 */
export const AGENTCTL_KEYS: readonly HostKey[] = scriptKeys("agentctl");

/**
 * host.conf as agentctl's load_config reads it (for the commands agentctl hands over without
 * reading it first): warnings logged, and a bad value of one of its keys refused (exit 2) before
 * anything changes.
 */
export function agentctlConf(env: NodeJS.ProcessEnv, log: Log): HostConf {
  const conf = loadHostConf(env);
  for (const warning of conf.warnings) log(`warning: ${warning}`);
  const error = firstError(conf, AGENTCTL_KEYS);
  if (error) throw new UsageError(error);
  return conf;
}

/**
 * `reconcile [N] [--json] [--boot]`: run exactly N agents. Adds the missing, respawns the dead,
 * stops the surplus (their workspaces and conversations are kept). The desired count
 * (conf.runDir/desired, what status lists) moves to N only when every agent it needed started: an
 * agent that cannot start (a full disk, say) leaves it where it was, is named with its cause in
 * conf.runDir/reconcile.json and on stderr, and the exit status is 1. Agents that were running keep
 * running.
 */
export function reconcile(a: Agents, argv: readonly string[]): number {
  const { conf, log } = a;
  const args = parseReconcileArgs(argv, conf);
  // The lock first, then one tmux client for both questions: is the server up, and which windows
  // does the session have (read under the lock). A server that is down is waited for or started.
  a.takeLock();
  if (a.probe()) a.ensureSession(a.windows);
  else {
    a.ensureServer(args.boot);
    a.ensureSession();
  }
  const retry = `agentctl reconcile ${args.count}`;
  const failed: AgentFailure[] = [];
  for (const id of a.windows.duplicates) {
    log(`killing duplicate window ${id}`);
    a.tmux(["kill-window", "-t", id]);
  }
  // One getent: the agents' users, whether the shared user of older hosts is there at all, and the
  // users the Docker step sets up (on the VM the agents' own: one question, not two).
  a.knowAgents(args.count, dockerUserNames(args.count));
  migrateLegacy(a, args.count);
  // One user per agent, made before anything runs for it (a scale-up creates the new ones). An
  // agent that cannot be made (a full disk, a link it planted where its state folder was) is a
  // failure of that agent: it is named and not started, the count is not claimed, and the others
  // still start (one agent never holds the rest up).
  for (let i = 1; i <= args.count; i++) {
    try {
      a.ensureAgent(i);
    } catch (error) {
      failed.push({ agent: i, error: faultLine(error, conf.workspacesDir, retry) });
    }
  }
  const unmade = new Set(failed.map((f) => f.agent));
  // At boot the network (and, on a first boot, the git credentials apply brings) may not be there
  // yet, and a fetch must not hold up the agents: the next reconcile (apply's) makes checkouts.
  try {
    if (!args.boot) prepareCheckouts(a, args.count);
    else if (conf.gitRepository !== "")
      log("boot: repository checkouts are left to the next reconcile");
  } catch (error) {
    failed.push({ agent: 0, error: faultLine(error, conf.workspacesDir, retry) });
  }
  // Before any agent starts: its DOCKER_HOST socket exists, and no agent is left in the docker
  // group in rootless mode. After the agents' users exist (they own the sockets).
  try {
    setUpAgentDocker(conf, args.count, log, process.env, (names) => a.knownUsers(names));
  } catch (error) {
    failed.push({ agent: 0, error: faultLine(error, conf.workspacesDir, retry) });
  }
  const plan = planReconcile(a.windows.byName, args.count, conf.startStaggerSeconds);
  // An agent that could not be made is its own failure; a failure of all (checkouts, Docker's
  // set-up) starts none.
  const blocked = failed.some((f) => f.agent === 0);
  const starts = blocked ? [] : plan.starts.filter((x) => !unmade.has(x.agent));
  for (const start of starts)
    if (start.restart) log(`agent-${start.agent} had exited (code ${start.exitCode}); restarting`);
  // One tmux client for every start (host/agents/agents.ts); each agent's failure is its own.
  for (const [agent, error] of a.startAgents(starts))
    failed.push({ agent, error: faultLine(error, conf.workspacesDir, retry) });
  a.createSession();
  failed.sort((x, y) => x.agent - y.agent);
  // startAgents left the windows as tmux listed them after the starts; stopping changes them.
  const stopped = failed.length === 0 && plan.surplus.length > 0;
  if (stopped) stopSurplus(a, plan.surplus);
  a.applyLimits();
  const desiredFile = path.join(conf.runDir, "desired");
  const text = readText(desiredFile);
  const before = text === undefined ? NaN : Number(text);
  // With none before (a first reconcile that failed), 0: status then lists the agents that have a
  // window, never phantoms of host.conf's agent count.
  const desired = failed.length === 0 ? args.count : Number.isSafeInteger(before) ? before : 0;
  if (failed.length === 0 || text === undefined) fs.writeFileSync(desiredFile, `${desired}\n`);
  const record: ReconcileRecord = {
    at: Math.floor(Date.now() / 1000),
    requested: args.count,
    desired,
    ok: failed.length === 0,
    failed,
  };
  writeRecord(path.join(conf.runDir, RECONCILE_RECORD), record, log);
  const checkoutsFailed = failed.some((f) => f.agent === 0);
  const started = checkoutsFailed
    ? []
    : plan.starts.filter((s) => !failed.some((f) => f.agent === s.agent));
  const summary = {
    desired,
    added: started.filter((s) => !s.restart).map((s) => s.agent),
    removed: failed.length === 0 ? plan.surplus : [],
    restarted: started.filter((s) => s.restart).map((s) => s.agent),
    // The windows as last listed (by startAgents after the starts, or under the lock before).
    running: runningCount((stopped ? a.readWindows() : a.windows).byName, desired),
  };
  process.stdout.write(args.json ? reconcileJson(summary) : reconcileText(summary));
  for (const f of failed)
    log(
      `reconcile ${args.count}: ${f.agent > 0 ? `agent-${f.agent} did not start` : "checkouts failed"}: ${f.error}`,
    );
  if (failed.length > 0)
    log(
      `reconcile ${args.count}: the desired count stays ${desired}; running agents were not touched`,
    );
  return failed.length === 0 ? 0 : 1;
}

const readText = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

/** The record is news for status, not the work itself: a failure to write it is only said. */
function writeRecord(file: string, record: ReconcileRecord, log: Log): void {
  try {
    fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(record)}\n`, { mode: 0o644 });
    fs.renameSync(`${file}.tmp`, file);
  } catch (error) {
    log(`warning: could not write ${file}: ${(error as Error).message}`);
  }
}

/**
 * A host from before per-agent users (host/agents/migrate.ts): its agents, which run as the shared
 * user, stop; that user is retired; each agent's files move onto its own user. The stopped agents
 * start again below (their panes are dead), each as its own user, resuming its conversation.
 */
function migrateLegacy(a: Agents, count: number): void {
  const conf = a.conf;
  const pending = legacyAgents(conf);
  // Nothing to move, and no processes of the shared user: none when no user has its uid (a host
  // that never had one), so /proc is only read where one is or was.
  if (pending.length === 0 && (!a.legacyUidInUse || pidsOfUid(legacyUid(conf)).length === 0))
    return;
  a.log(
    `moving ${namesOrNone(pending)} from the shared user ${conf.agentUser} (uid ${legacyUid(conf)}) onto a user each`,
  );
  const live = liveAgents(a.windows.byName, agentsWithWindows(a.windows.byName));
  if (live.length > 0) a.requestStop(live);
  retireLegacyUser(conf, a.log);
  for (const n of pending) migrateAgent(conf, n, process.argv[1], a.log);
  a.readWindows();
  // The migration made users: look them up again.
  a.knowAgents(count);
}

function stopSurplus(a: Agents, surplus: number[]): void {
  const unsaved = agentsWithUnsavedWork(a, surplus);
  if (unsaved.length > 0)
    a.log(
      `${namesOrNone(unsaved)}: uncommitted or unpushed work in the checkout; kept in ${a.conf.workspacesDir} (workspaces are never deleted), and scaling back up resumes it`,
    );
  a.log(`stopping ${namesOrNone(surplus)}`);
  a.stopAgents(surplus);
}

/** The tmux server is up and has a window of at least one agent. */
function hasAgents(a: Agents): boolean {
  return a.serverUp() && agentsWithWindows(a.readWindows().byName).length > 0;
}

/** `restart N|all [--if-any]`: stop the agent's wrapper and start it again (its conversation resumes). */
export function restart(a: Agents, argv: readonly string[]): number {
  const { target, ifAny } = parseRestartArgs(argv);
  if (ifAny && !hasAgents(a)) {
    a.log("restart all: no agents are running; each starts with the current settings");
    return 0;
  }
  if (!a.serverUp())
    throw new Error(`no tmux server on ${a.conf.tmuxSocket}; run 'agentctl reconcile' first`);
  const byName = a.readWindows().byName;
  let targets: number[];
  if (target === "all") {
    targets = agentsWithWindows(byName);
    if (targets.length === 0)
      throw new UsageError("restart all: no agents on this host; run 'agentctl reconcile' first");
  } else targets = [resolveAgent(byName, target, "restart").agent];
  a.takeLock();
  const live = liveAgents(a.readWindows().byName, targets);
  if (live.length > 0) a.requestStop(live);
  a.readWindows();
  targets.forEach((i, k) => {
    a.startAgent(i, staggerDelay(k, a.conf.startStaggerSeconds));
    a.log(`restarted agent-${i}`);
  });
  return 0;
}

/** `logs N [--lines K]`: the agent window's recent output. */
export function logs(a: Agents, argv: readonly string[]): number {
  const args = parseLogsArgs(argv);
  if (!a.serverUp()) throw new Error(`no tmux server on ${a.conf.tmuxSocket}`);
  const { window } = resolveAgent(a.readWindows().byName, args.agent, "logs");
  // -J joins wrapped lines.
  const captured = a.tmux(["capture-pane", "-p", "-J", "-t", window.id, "-S", `-${args.lines}`]);
  process.stdout.write(paneTail(captured, args.lines));
  return 0;
}

/**
 * `attach [N]` up to the attach itself: checks the session and selects agent-N's window. agentctl
 * then execs `tmux attach` in the caller's terminal (no Node process stays in between).
 */
export function attachSelect(a: Agents, argv: readonly string[]): number {
  if (argv.length > 1)
    throw new UsageError("attach takes at most one agent number, e.g. 'agentctl attach 3'");
  const sock = a.conf.tmuxSocket;
  if (!a.serverUp()) throw new Error(`no tmux server on ${sock}; run 'agentctl reconcile' first`);
  if (!a.sessionUp()) throw new Error(`no tmux session ${SESSION}; run 'agentctl reconcile' first`);
  if (argv.length === 1) {
    const { window } = resolveAgent(a.readWindows().byName, argv[0], "attach");
    a.tmux(["select-window", "-t", window.id]);
  }
  return 0;
}

/** After `agentctl login` stored the token: every agent restarts with it, if there are any. */
export function loginRestart(a: Agents): number {
  if (hasAgents(a)) return restart(a, ["all"]);
  a.log("no agents are running; they will use the login when they start");
  return 0;
}
