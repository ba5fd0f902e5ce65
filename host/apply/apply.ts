// `agent-host.js apply`: the day-2 step, run by cloud-init/host/apply (the fleet's remote command,
// as root) with the bundle on stdin, after that entry point has waited for cloud-init. It installs
// the host files and host.conf from the bundle, stores or removes the API key and the webhook
// (root-only), updates Claude Code, installs missing extraPackages, sets up the agent user's git
// (host/apply/git.ts), and reconciles the agents. stdout carries only agentctl's JSON summary;
// logs go to stderr. The bundle and the secrets are never printed nor put in an argv.
//
// AGENT_HOST_ROOT (default empty) prefixes every path it writes but the agent user's home: the
// loopback tests use it. /etc/agent-host/host.conf.local, when present, is appended to host.conf:
// site-local overrides that survive deploys.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
  firstError,
  HOST_KEY_NAMES,
  loadHostConf,
  parseHostConf,
  type HostConf,
} from "../conf/conf";
import {
  ApplyError,
  ApplyUsageError,
  agentsNeedRestart,
  confNeedsRestart,
  dockerNeedsInstall,
  extraPackageNames,
  parseApplyArgs,
  parseBundle,
  type ApplyArgs,
  type Bundle,
  type BundleFile,
  type SecretValue,
} from "./bundle";
import { ensureAgentHome } from "../agents/agent-user";
import { ensureAgentIdRange } from "../agents/id-range";
import {
  badCredentialHost,
  configureGit,
  GIT_CREDENTIAL_HOST_RE,
  PRIVATE_KEY_LINE_RE,
} from "./git";
import { Journal, JOURNAL_PATH } from "./journal";
import { applyLog, lookupUser, runRoot } from "./run";

export interface ApplyPaths {
  /** AGENT_HOST_ROOT: prefixes every path apply writes but the agent's home. */
  root: string;
  lib: string;
  conf: string;
  secrets: string;
  agentctl: string;
  /** What this apply decided and how far it got (host/apply/journal.ts). */
  journal: string;
}

export function applyPaths(env: NodeJS.ProcessEnv): ApplyPaths {
  const root = env.AGENT_HOST_ROOT ?? "";
  return {
    root,
    lib: `${root}/usr/local/lib/agent-host`,
    conf: `${root}/etc/agent-host/host.conf`,
    secrets: `${root}/etc/agent-host/secrets`,
    agentctl: `${root}/usr/local/bin/agentctl`,
    journal: `${root}${JOURNAL_PATH}`,
  };
}

/** Whether `dest` is a regular file with exactly this content (and mode, when given). */
function isAlready(dest: string, content: Buffer, mode?: number): boolean {
  try {
    const st = fs.statSync(dest);
    if (!st.isFile() || (mode !== undefined && (st.mode & 0o7777) !== mode)) return false;
    return fs.readFileSync(dest).equals(content);
  } catch {
    return false;
  }
}

/**
 * Writes `content` to `dest` (parents 0755) with this mode and owner, through a new file renamed
 * over it: created 0600, so a secret is never readable by others, even briefly.
 */
function writeFile(dest: string, content: Buffer, mode: number, uid = 0, gid = 0): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
  const tmp = `${dest}.apply-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, "wx", 0o600);
  try {
    fs.writeFileSync(fd, content);
    fs.fchownSync(fd, uid, gid);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, dest);
}

/** install -D -m MODE -o root -g root, when the content or the mode differs; true when it did. */
function installIfChanged(content: Buffer, dest: string, mode: number): boolean {
  if (isAlready(dest, content, mode)) return false;
  writeFile(dest, content, mode);
  return true;
}

/** install -d -m MODE -o UID -g GID: parents as root 0755, the directory itself as asked. */
function ensureDir(dir: string, mode: number, uid = 0, gid = 0): void {
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  if (!fs.existsSync(dir)) fs.mkdirSync(dir, { mode });
  fs.chownSync(dir, uid, gid);
  fs.chmodSync(dir, mode);
}

/** The host files that differ from what is installed (content or mode). */
function changedFiles(files: readonly BundleFile[], p: ApplyPaths): BundleFile[] {
  return files.filter((f) => !isAlready(`${p.root}${f.path}`, f.content, f.mode));
}

function installFiles(files: readonly BundleFile[], changed: readonly BundleFile[], p: ApplyPaths) {
  for (const f of changed) {
    if (!installIfChanged(f.content, `${p.root}${f.path}`, f.mode)) continue;
    applyLog(`updated ${f.path}`);
  }
  applyLog(`host files: ${files.length} shipped, ${changed.length} changed`);
}

/**
 * host.conf (with host.conf.local appended), read through the host's one parser and checked before
 * it is installed: a bad override in host.conf.local stops the deploy here, naming the key, with
 * the old file still in place. The file replaced is read unchecked: its values are only compared.
 */
function decideConf(
  stackConf: string,
  p: ApplyPaths,
): { conf: HostConf; text: string; restart: boolean; docker: boolean } {
  let text = stackConf;
  const local = `${p.conf}.local`;
  if (fs.existsSync(local) && fs.statSync(local).isFile())
    text += `# --- appended from ${local} ---\n${fs.readFileSync(local, "utf8")}`;
  const conf = parseHostConf(text, p.conf);
  const error = firstError(conf, HOST_KEY_NAMES);
  if (error) throw new ApplyUsageError(error);
  const old = loadHostConf({}, p.conf);
  const oldText = fs.existsSync(p.conf) ? fs.readFileSync(p.conf, "utf8") : undefined;
  return {
    conf,
    text,
    restart: confNeedsRestart(conf.raw, old.raw),
    docker: dockerNeedsInstall(oldText, conf.raw, old.raw),
  };
}

function installConf(text: string, p: ApplyPaths): void {
  if (installIfChanged(Buffer.from(text, "utf8"), p.conf, 0o644))
    applyLog("updated /etc/agent-host/host.conf");
}

/**
 * The admin user's keys follow sshAuthorizedKeys and the deploy key on every run (parseBundle
 * refused an empty list, which would lock everyone out).
 */
function installAdminKeys(keys: Buffer, admin: string, p: ApplyPaths): void {
  const user = lookupUser(admin);
  if (!user?.home) throw new ApplyError(`the admin user ${admin} does not exist`);
  const dir = `${p.root}${user.home}/.ssh`;
  ensureDir(dir, 0o700, user.uid, user.gid);
  const file = `${dir}/authorized_keys`;
  if (isAlready(file, keys)) return;
  writeFile(file, keys, 0o600, user.uid, user.gid);
  applyLog(`updated ${admin}'s authorized keys`);
}

/** Whether installSecret would change the file. */
function secretDiffers(value: SecretValue, file: string): boolean {
  if (value === undefined) return false;
  if (value === "remove") return fs.existsSync(file);
  return !isAlready(file, value, 0o600);
}

/** A root-only secret file (dir 0700, file 0600): stored, replaced or removed; true when changed. */
function installSecret(value: SecretValue, file: string, said: SecretMessages): boolean {
  if (value === undefined) return false;
  ensureDir(path.dirname(file), 0o700);
  if (value === "remove") {
    if (!fs.existsSync(file)) return false;
    fs.rmSync(file, { force: true });
    applyLog(said.removed);
    return true;
  }
  if (!installIfChanged(value, file, 0o600)) return false;
  applyLog(said.stored);
  return true;
}

interface SecretMessages {
  stored: string;
  removed: string;
}

const API_KEY: SecretMessages = {
  stored: "stored a new API key (root-only, 0600)",
  removed: "removed the API key; agents use the login from 'sudo agentctl login', if any",
};
// Read by the control window's monitor (agent-host.js watch), as root, when it changes. A bundle
// without the line (sent by a stack from before notifications) leaves the file as it is.
const WEBHOOK: SecretMessages = {
  stored: "stored the notification webhook (root-only, 0600)",
  removed: "removed the notification webhook; no more notifications",
};

/**
 * dockerSource or dockerMode changed, or the host predates dockerMode: Docker is set up again, from
 * the host.conf being installed (a file beside host.conf, root's directory), before host.conf
 * itself. An apply cut off before host.conf is installed still finds the change next time; one cut
 * off after runs install-docker again, which then changes nothing.
 */
function updateDocker(text: string, conf: HostConf, p: ApplyPaths): void {
  const next = `${p.conf}.docker-next`;
  fs.writeFileSync(next, text, { mode: 0o644 });
  try {
    applyLog(`Docker: setting up ${conf.dockerSource}, mode ${conf.dockerMode}`);
    const rc = runRoot(`${p.lib}/install-docker`, [], { env: { AGENTCTL_CONFIG: next } });
    if (rc !== 0) throw new ApplyError(`setting up Docker (${conf.dockerMode}) failed`);
  } finally {
    fs.rmSync(next, { force: true });
  }
}

function updateClaudeCode(conf: HostConf, p: ApplyPaths): void {
  const rc = runRoot(`${p.lib}/install-claude-code`, [], { env: { AGENTCTL_CONFIG: p.conf } });
  if (rc !== 0) throw new ApplyError(`installing Claude Code ${conf.claudeCodeVersion} failed`);
}

function systemctl(...args: string[]): void {
  if (runRoot("systemctl", args) !== 0)
    throw new ApplyError(`systemctl ${args.join(" ")} failed (its output is above)`);
}

function ensureService(unitsChanged: boolean): void {
  if (!fs.existsSync("/run/systemd/system")) {
    applyLog("systemd is not running here; leaving the tmux server to agentctl");
    return;
  }
  if (unitsChanged) systemctl("daemon-reload");
  const units = [
    "agent-host-data.service",
    "agent-host.service",
    "agent-host-autostop.service",
    "agent-host-web.service",
  ];
  systemctl("enable", "--quiet", ...units);
  systemctl("start", ...units.slice(0, 2));
  // They read host.conf when they start: a restart applies a changed autoStopMinutes or stop
  // command, and a changed dashboardPort. The auto-stop's quiet clock survives
  // (conf.runDir/autostop.json), and this deploy's own SSH session holds the stop meanwhile; an open
  // dashboard page reconnects by itself within a second.
  systemctl("restart", ...units.slice(2));
}

function dpkgInstalled(name: string): boolean {
  const r = spawnSync("dpkg-query", ["-W", "-f", "${db:Status-Status}", name], {
    encoding: "utf8",
  });
  return r.status === 0 && r.stdout === "installed";
}

/**
 * The team's toolchain (extraPackages): cloud-init installs it at first boot; here the ones still
 * missing are installed, so a deploy that adds a package brings it to a running VM.
 */
function installExtraPackages(list: string): void {
  const missing = extraPackageNames(list).filter((n) => !dpkgInstalled(n));
  if (missing.length === 0) return;
  applyLog(`installing extra packages: ${missing.join(" ")}`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  if (runRoot("apt-get", ["-q", "update"], { env }) !== 0)
    applyLog("warning: apt-get update failed; installing from the package lists already there");
  const install = ["-q", "install", "-y", "--no-install-recommends"];
  if (runRoot("apt-get", [...install, "-o", "DPkg::Lock::Timeout=300", ...missing], { env }) !== 0)
    throw new ApplyError(
      `installing ${missing.join(" ")} failed (apt-get's output is above); fix extraPackages and run pulumi up again`,
    );
}

/**
 * Each agent's git, in its own home, as that agent (host/apply/git.ts): agent-1..N get their user
 * and home first (a scale-up's new agents too), and each its own copy of the credentials, which no
 * other agent can read.
 */
function setUpGit(
  conf: HostConf,
  credentials: Bundle["gitCredentials"],
  p: ApplyPaths,
  agents: number,
): void {
  // A bad config value stops the deploy before any agent is touched (only an agent's own doing
  // is a per-agent warning below).
  if (
    credentials !== "remove" &&
    !PRIVATE_KEY_LINE_RE.test(credentials.toString("utf8")) &&
    !GIT_CREDENTIAL_HOST_RE.test(conf.gitCredentialHost)
  )
    throw badCredentialHost(conf.gitCredentialHost);
  for (let n = 1; n <= agents; n++) {
    const agent = ensureAgentHome(conf, n, applyLog);
    const settings = {
      agent,
      userName: conf.gitUserName,
      userEmail: conf.gitUserEmail,
      repository: conf.gitRepository,
      credentialHost: conf.gitCredentialHost,
      ghHostFile: `${p.secrets}/gh-host-${agent.name}`,
    };
    // What one agent did to its own home (a link where git's files go) fails that agent's set-up
    // only, named here; the deploy and the other agents go on.
    try {
      configureGit(settings, credentials);
    } catch (error) {
      applyLog(`warning: ${agent.name}: ${(error as Error).message}`);
    }
  }
}

/**
 * Installs everything the bundle carries, then reconciles; the exit status. Every decision that
 * outlives a step (a daemon-reload, a restart of every agent) is written to the journal before the
 * step that makes it needed: an apply cut off anywhere (SIGKILL, a dropped SSH session, a
 * preemption) leaves a journal from which the next apply finishes the job, even though the files
 * it compares are by then already the new ones.
 */
function apply(args: ApplyArgs, bundle: Bundle, p: ApplyPaths, j: Journal): number {
  applyLog(`instance ${args.instanceId || "unknown"}: ${args.agents} agents`);
  {
    const changed = changedFiles(bundle.files, p);
    if (changed.some((f) => f.path.startsWith("/etc/systemd/system/"))) j.owe({ reload: true });
    j.step("files", () => installFiles(bundle.files, changed, p));
    const next = decideConf(bundle.conf, p);
    const conf = next.conf;
    const keyFile = `${p.secrets}/anthropic-api-key`;
    const keyChanged = secretDiffers(bundle.apiKey, keyFile);
    // Decided before host.conf or the key is installed: a cut-off run must not lose it.
    if (agentsNeedRestart({ conf: next.restart, apiKey: keyChanged }))
      j.owe({
        restart: next.restart
          ? "Claude Code version, permission mode or provider changed"
          : "the API key changed",
      });
    // Docker first: installed from the new host.conf before it replaces the old (updateDocker).
    j.step("conf", () => {
      if (next.docker) updateDocker(next.text, conf, p);
      installConf(next.text, p);
    });
    j.step("admin-keys", () => installAdminKeys(bundle.adminKeys, conf.adminUser, p));
    j.step("secrets", () => {
      installSecret(bundle.apiKey, keyFile, API_KEY);
      installSecret(bundle.notifyWebhookUrl, `${p.secrets}/notify-webhook-url`, WEBHOOK);
    });
    j.step("claude-code", () => updateClaudeCode(conf, p));
    j.step("services", () => {
      ensureService(j.state.reload_owed);
      j.owe({ reload: false });
    });
    j.step("packages", () => installExtraPackages(conf.extraPackages));
    j.step("git", () => {
      // Before any agent user is made: useradd's automatic ids kept below the agents' (id-range.ts).
      ensureAgentIdRange(p.root, conf.agentUidBase, applyLog);
      setUpGit(conf, bundle.gitCredentials, p, args.agents);
    });
    const agentctlEnv = { AGENTCTL_CONFIG: p.conf };
    // The agents that ran before this apply restart first, then reconcile adds the new ones: an
    // agent reconcile starts already reads the new settings, and restarting it (a first deploy's
    // every agent, before) cost each a second start, and its first conversation's claude.
    j.step("restart", () => {
      const owed = j.state.restart_owed;
      if (owed === null) return;
      applyLog(`${owed}: restarting every agent (conversations resume)`);
      const rc = runRoot(p.agentctl, ["restart", "all", "--if-any"], { env: agentctlEnv });
      if (rc !== 0) throw new ApplyError(`agentctl restart all failed (exit ${rc})`);
      j.owe({ restart: null });
    });
    const reconcile = ["reconcile", String(args.agents), "--json"];
    j.step("reconcile", () => {
      const rc = runRoot(p.agentctl, reconcile, { env: agentctlEnv, stdout: "inherit" });
      if (rc !== 0)
        throw new ApplyError(
          `agentctl reconcile ${args.agents} failed (exit ${rc}; its reason is above and in 'sudo agentctl status')`,
        );
    });
    j.finish();
    return 0;
  }
}

/** `agent-host.js apply --agents N --bundle-sha256 SHA --instance-id ID < bundle`. */
export function applyMain(argv: readonly string[], env = process.env): number {
  let journal: Journal | undefined;
  try {
    const args = parseApplyArgs(argv);
    process.umask(0o022);
    const p = applyPaths(env);
    journal = new Journal(p.journal, args, env, applyLog);
    // The whole bundle is read before anything is installed, so a cut-off transfer changes nothing.
    const bundle = parseBundle(fs.readFileSync(0, "utf8"), args.bundleSha256);
    return apply(args, bundle, p, journal);
  } catch (error) {
    journal?.fail(error as Error);
    if (error instanceof ApplyUsageError) {
      process.stderr.write(`apply: ${error.message}\n`);
      return 2;
    }
    // One line: the fault, and what to do. Before the first step nothing was changed.
    const done = journal?.state.step;
    const fix =
      done === undefined || done === ""
        ? "nothing was changed; run 'pulumi up' again"
        : `the steps up to '${done}' are in; fix that, then run 'pulumi up' again to finish`;
    applyLog(`error: ${(error as Error).message}; ${fix}`);
    return 1;
  }
}
