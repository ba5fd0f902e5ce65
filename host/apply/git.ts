// apply's set-up of the agent user's git: identity, push.default, and the credentials from the
// bundle (an HTTPS token or an SSH key), readable by the agent only and used only by git. Every
// file in the agent's home is written as the agent (host/apply/run.ts asAgent). The secret never
// reaches an argv: it goes to the agent's processes on stdin.
import * as fs from "fs";
import * as path from "path";
import { GITHUB_TOKEN_RE } from "../../shared-rules";
import { ApplyError } from "./bundle";
import { applyLog, asAgent, commandPath, type AgentUser } from "./run";

/** In the agent's home: the HTTPS token (git's store format) and the SSH key. */
export const GIT_STORE_NAME = ".config/git/agent-host-credentials";
export const GIT_KEY_NAME = ".ssh/agent-host-git";
/** GIT_CREDENTIAL_HOST: what config.ts derives from the repository URL (host[:port]). */
export const GIT_CREDENTIAL_HOST_RE = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/;

/** The refusal of a credential host that is not host[:port], before or during the set-up. */
export const badCredentialHost = (host: string): ApplyError =>
  new ApplyError(
    `GIT_CREDENTIAL_HOST='${host}' in host.conf is not host[:port]; the git token is not installed (set repository, or use a GitHub token)`,
  );
/**
 * How apply tells a key from a token: looser than config's rule on purpose (any BEGIN … PRIVATE
 * KEY line): it only ever sees values config took.
 */
export const PRIVATE_KEY_LINE_RE = /-----BEGIN .*PRIVATE KEY-----/;

/** Percent-encodes one URL component (git's store format is a URL), byte by byte of its UTF-8. */
export function urlencode(s: string): string {
  return [...Buffer.from(s, "utf8")]
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    })
    .join("");
}

/**
 * The credential store's line for a token secret: `user:token`, or a bare token (GitHub's
 * x-access-token user). Trailing newlines of a secret set from a file are dropped.
 */
export function storeLine(secret: string, host: string): { line: string; token: string } {
  const s = secret.replace(/\n+$/, "");
  const at = s.indexOf(":");
  const user = at >= 0 ? s.slice(0, at) : "x-access-token";
  const token = at >= 0 ? s.slice(at + 1) : s;
  return { line: `https://${urlencode(user)}:${urlencode(token)}@${host}\n`, token };
}

/** The keys of `git config --get-regexp` output whose value names `needle` (our credential file). */
export function entriesToUnset(listing: string, needle: string): string[] {
  return listing
    .split("\n")
    .map((l) => /^\s*(\S+)\s*(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2].includes(needle))
    .map((m) => m[1]);
}

/**
 * Read-only: the file is the stack's. git's own `store` helper would rewrite it after every
 * success and erase the token after a single rejected request (a flaky 401), until the next
 * deploy; this one only answers git's "get".
 */
export function credentialHelper(home: string): string {
  return `!f() { if [ "$1" = get ]; then exec git credential-store --file=${home}/${GIT_STORE_NAME} get; fi; }; f`;
}

/** A host key is accepted on first use (accept-new) and pinned after that. */
export const sshCommand = (home: string): string =>
  `ssh -i ${home}/${GIT_KEY_NAME} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new`;

/** OpenSSH refuses a key file without its final newline; a secret set from a file may lose it. */
export const keyFileText = (secret: Buffer): Buffer =>
  secret.length > 0 && secret[secret.length - 1] !== 0x0a
    ? Buffer.concat([secret, Buffer.from("\n")])
    : secret;

/** What gitConfig needs from host.conf and the paths it writes. */
export interface GitSettings {
  agent: AgentUser;
  userName: string;
  userEmail: string;
  repository: string;
  credentialHost: string;
  /** Root-only: the host gh was logged in to, so removing the token logs it out. */
  ghHostFile: string;
}

class AgentGit {
  constructor(readonly s: GitSettings) {}

  private get a(): AgentUser {
    return this.s.agent;
  }

  global(args: string[], what: string): string {
    const r = asAgent(this.a, ["git", "config", "--global", ...args]);
    if (r.status !== 0)
      throw new ApplyError(`${what} failed as ${this.a.name}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Removes git config entries (key regex) whose value names one of our credential files. */
  unsetEntries(pattern: string, needle: string): void {
    const listing = asAgent(this.a, ["git", "config", "--global", "--get-regexp", pattern]).stdout;
    for (const key of entriesToUnset(listing, needle))
      this.global(["--unset-all", key], `git config --unset-all ${key}`);
  }

  /**
   * Writes `content` to `dest` as the agent; false when it was already so. The agent reads it on
   * stdin and creates it under umask 077, so it is never readable by anyone else, even briefly.
   */
  write(dest: string, mode: string, content: Buffer): boolean {
    if (asAgent(this.a, ["cmp", "-s", "--", "-", dest], content).status === 0) return false;
    const dir = path.dirname(dest);
    const step = (argv: string[], input?: Buffer, what = `write ${dest}`) => {
      if (asAgent(this.a, argv, input, 0o077).status !== 0)
        throw new ApplyError(`could not ${what} as ${this.a.name}`);
    };
    step(["mkdir", "-p", "-m", "0700", "--", dir], undefined, `create ${dir}`);
    step(["tee", "--", `${dest}.tmp`], content, `write ${dest}.tmp`);
    step(["chmod", mode, "--", `${dest}.tmp`], undefined, `chmod ${dest}.tmp`);
    step(["mv", "-f", "--", `${dest}.tmp`, dest]);
    return true;
  }

  /** Removes `name` from the agent's home when it is there; true when it was. */
  remove(name: string): boolean {
    const file = `${this.a.home}/${name}`;
    if (asAgent(this.a, ["test", "-e", file]).status !== 0) return false;
    if (asAgent(this.a, ["rm", "-f", "--", file]).status !== 0)
      throw new ApplyError(`could not remove ${file} as ${this.a.name}`);
    return true;
  }

  removeToken(): void {
    this.unsetEntries("^credential\\..*\\.helper$", GIT_STORE_NAME);
    if (this.remove(GIT_STORE_NAME)) applyLog("removed the agents' git token");
    if (!fs.existsSync(this.s.ghHostFile)) return;
    const host = fs.readFileSync(this.s.ghHostFile, "utf8").replace(/\n+$/, "");
    const gh = commandPath("gh");
    if (gh) {
      const r = asAgent(this.a, ["timeout", "60", gh, "auth", "logout", "--hostname", host], "");
      process.stderr.write(r.stdout + r.stderr);
      if (r.status !== 0) applyLog(`warning: gh auth logout --hostname ${host} failed`);
    }
    fs.rmSync(this.s.ghHostFile, { force: true });
  }

  removeSshKey(): void {
    this.unsetEntries("^core\\.sshcommand$", GIT_KEY_NAME);
    if (this.remove(GIT_KEY_NAME)) applyLog("removed the agents' git SSH key");
  }

  /** gh keeps its own login (~/.config/gh); the token goes in on stdin, never in argv. */
  ghLogin(host: string, token: string): void {
    const gh = commandPath("gh");
    if (!gh) return applyLog("warning: gh is not installed; the GitHub CLI is not logged in");
    const argv = ["timeout", "60", gh, "auth", "login", "--hostname", host, "--with-token"];
    const r = asAgent(this.a, argv, `${token}\n`);
    process.stderr.write(r.stdout + r.stderr);
    if (r.status !== 0)
      return applyLog(
        `warning: gh auth login --hostname ${host} failed (output above); git still uses the token`,
      );
    fs.writeFileSync(this.s.ghHostFile, `${host}\n`, { mode: 0o600 });
    applyLog(`gh: logged in to ${host} as ${this.a.name}`);
  }

  installToken(secret: Buffer): void {
    const host = this.s.credentialHost;
    if (!GIT_CREDENTIAL_HOST_RE.test(host)) throw badCredentialHost(host);
    this.removeSshKey();
    const { line, token } = storeLine(secret.toString("utf8"), host);
    const changed = this.write(`${this.a.home}/${GIT_STORE_NAME}`, "0600", Buffer.from(line));
    if (changed)
      applyLog(
        `stored the agents' git token for https://${host} (readable by ${this.a.name} only, 0600)`,
      );
    this.unsetEntries("^credential\\..*\\.helper$", GIT_STORE_NAME);
    const key = `credential.https://${host}.helper`;
    this.global([key, credentialHelper(this.a.home)], `git config ${key}`);
    if (!GITHUB_TOKEN_RE.test(token)) return;
    const ghHost = fs.existsSync(this.s.ghHostFile)
      ? fs.readFileSync(this.s.ghHostFile, "utf8").replace(/\n+$/, "")
      : undefined;
    if (changed || ghHost !== host) this.ghLogin(host, token);
  }

  installSshKey(secret: Buffer): void {
    this.removeToken();
    if (this.write(`${this.a.home}/${GIT_KEY_NAME}`, "0600", keyFileText(secret)))
      applyLog(`stored the agents' git SSH key (readable by ${this.a.name} only, 0600)`);
    this.global(["core.sshCommand", sshCommand(this.a.home)], "git config core.sshCommand");
  }
}

/**
 * The agent user's git: identity, credentials (only the agent can read them, only git uses them),
 * and push.default=current so `git push` on agent-N pushes to the remote's agent-N.
 */
export function configureGit(s: GitSettings, credentials: Buffer | "remove"): void {
  const git = new AgentGit(s);
  if (s.userName) git.global(["user.name", s.userName], "git config user.name");
  if (s.userEmail) git.global(["user.email", s.userEmail], "git config user.email");
  if (
    s.repository &&
    asAgent(s.agent, ["git", "config", "--global", "--get", "push.default"]).status !== 0
  )
    git.global(["push.default", "current"], "git config push.default");
  if (credentials === "remove") {
    git.removeToken();
    git.removeSshKey();
  } else if (PRIVATE_KEY_LINE_RE.test(credentials.toString("utf8"))) {
    git.installSshKey(credentials);
  } else {
    git.installToken(credentials);
  }
}
