// `agent-host.js own-checkout WORKSPACE`, run AS the agent by the migration (host/agents/migrate.ts):
// a worktree of the shared repository of older hosts (WORKSPACE/.git is a file naming
// .repo.git/worktrees/agent-N in the workspaces folder) becomes a repository of its own: a copy of the
// shared one (objects, refs, config) with this worktree's HEAD, index and reflog, and no other
// worktree. Nothing of the checkout's files changes; git status reads the same before and after.
// Crash-safe: the copy is built in WORKSPACE/.git.migrating and marked complete, the .git file
// steps aside to .git.worktree-link, the copy takes its place; each later run finishes the step
// it finds undone.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { lexists } from "./agent-user";

const COMPLETE = "agent-host-own-checkout";

function copyIfThere(from: string, to: string): void {
  if (!lexists(from)) return;
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
}

export function ownCheckout(ws: string): string {
  const dotgit = path.join(ws, ".git");
  const scratch = path.join(ws, ".git.migrating");
  const link = path.join(ws, ".git.worktree-link");
  const st = lexists(dotgit) ? fs.lstatSync(dotgit) : undefined;
  if (st?.isDirectory()) {
    if (lexists(scratch)) fs.rmSync(scratch, { recursive: true, force: true });
    fs.rmSync(link, { force: true });
    return "already a repository of its own";
  }
  if (!st) {
    if (!lexists(path.join(scratch, COMPLETE)))
      throw new Error(`${dotgit} is missing and no complete copy is in ${scratch}`);
  } else {
    if (!st.isFile()) throw new Error(`${dotgit} is neither a file nor a folder`);
    const m = /^gitdir: (.+)$/m.exec(fs.readFileSync(dotgit, "utf8"));
    if (!m) throw new Error(`${dotgit} does not name a gitdir`);
    const gitdir = path.resolve(ws, m[1].trim());
    const commondir = fs.readFileSync(path.join(gitdir, "commondir"), "utf8").trim();
    const common = path.resolve(gitdir, commondir);
    fs.rmSync(scratch, { recursive: true, force: true });
    const cp = spawnSync("cp", ["-R", "--preserve=mode,timestamps", "--", common, scratch], {
      stdio: ["ignore", "ignore", "inherit"],
    });
    if (cp.status !== 0) throw new Error(`could not copy ${common}`);
    fs.rmSync(path.join(scratch, "worktrees"), { recursive: true, force: true });
    for (const f of ["HEAD", "index", "ORIG_HEAD", "logs/HEAD"])
      copyIfThere(path.join(gitdir, f), path.join(scratch, f));
    const cfg = spawnSync("git", ["--git-dir", scratch, "config", "core.bare", "false"]);
    if (cfg.status !== 0) throw new Error("git config core.bare false failed");
    fs.writeFileSync(path.join(scratch, COMPLETE), `${common}\n`);
    fs.renameSync(dotgit, link);
  }
  fs.renameSync(scratch, dotgit);
  fs.rmSync(path.join(dotgit, COMPLETE), { force: true });
  fs.rmSync(link, { force: true });
  return "now a repository of its own";
}

export function ownCheckoutMain(argv: readonly string[]): number {
  if (argv.length !== 1 || !path.isAbsolute(argv[0])) {
    process.stderr.write("usage: agent-host.js own-checkout /ABSOLUTE/WORKSPACE\n");
    return 2;
  }
  if (process.getuid?.() === 0) {
    process.stderr.write("own-checkout: refusing to run as root: run it as the agent\n");
    return 2;
  }
  try {
    process.stderr.write(`own-checkout: ${argv[0]}: ${ownCheckout(argv[0])}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`own-checkout: ${(error as Error).message}\n`);
    return 1;
  }
}
