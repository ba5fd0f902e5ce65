// The agents' uids and gids kept out of useradd's and groupadd's automatic allocation (issue 20).
//
// Agent N is pinned to uid = gid = agentUidBase + N (agent-user.ts). shadow's useradd without -u
// takes the highest uid in use within [UID_MIN, UID_MAX] of /etc/login.defs, plus one
// (libmisc/find_new_uid.c, find_new_uid: the "highest found + 1" pass, then the lowest free one
// when that is past UID_MAX); groupadd does the same with GID_MIN/GID_MAX (find_new_gid.c). With
// Debian's 1000–60000 and agent-1..12 at 2001–2012, the next user anybody makes (the GCE guest
// agent for a metadata SSH key, an admin's `useradd bob`) gets 2013, and the scale-up to 13
// agents is refused (ensureAgentUser). So the host sets UID_MAX and GID_MAX to agentUidBase - 1:
// automatic allocation stays in 1000–1999, and the agents' own `useradd --uid 2013` still works
// (an explicit -u/-g is checked for uniqueness only, never against the range: useradd.c
// process_flags/find_new_uid is called only when no -u was given).
//
// Only ever lowered: a file whose UID_MAX is already at or below the base is left as it is.
import * as fs from "fs";
import * as path from "path";

export const LOGIN_DEFS = "/etc/login.defs";

/** The keys set, each with the key whose value must stay at or below it. */
const KEYS = [
  { max: "UID_MAX", min: "UID_MIN" },
  { max: "GID_MAX", min: "GID_MIN" },
] as const;

/** shadow's own default when the file has no UID_MIN/GID_MIN (getdef_ulong's fallback). */
const SHADOW_MIN_DEFAULT = 1000;

const MARK = "# agent-host: agents are agentUidBase + N, outside useradd's automatic range";

/** The active (uncommented) value of `key`: the last one wins, as shadow's def_load reads it. */
function activeValue(lines: readonly string[], key: string): number | undefined {
  let value: number | undefined;
  for (const line of lines) {
    const m = new RegExp(`^\\s*${key}\\s+(\\S+)`).exec(line);
    if (m) value = /^\d+$/.test(m[1]) ? Number(m[1]) : Number.NaN;
  }
  return value;
}

export interface IdRangeResult {
  text: string;
  changed: boolean;
  /** Why it could not be reserved (the base is at or below UID_MIN/GID_MIN); text unchanged. */
  problem?: string;
}

/**
 * login.defs' text with UID_MAX and GID_MAX at most `base - 1`; every other line kept as it was.
 * An active line above it gets the new value (its spacing kept); a file with none (missing or
 * only commented out) gets one, after the commented one when there is one, else at the end.
 * Pure and idempotent.
 */
export function reserveAgentIdRange(text: string, base: number): IdRangeResult {
  const top = base - 1;
  let lines = text === "" ? [""] : text.split("\n");
  // A trailing newline (or an empty file) leaves one empty last element: kept aside so
  // insertions go before it and the file still ends in a newline.
  const trailing = lines[lines.length - 1] === "" ? lines.pop() : undefined;
  for (const { max, min } of KEYS) {
    const lowest = activeValue(lines, min) ?? SHADOW_MIN_DEFAULT;
    if (!(top >= lowest))
      return {
        text,
        changed: false,
        problem: `agentUidBase ${base} leaves no room below it for ${min} ${lowest}; ${max} is left as it is`,
      };
  }
  let changed = false;
  for (const { max } of KEYS) {
    const re = new RegExp(`^(\\s*${max}\\s+)(\\S+)(.*)$`);
    let found = false;
    lines = lines.map((line) => {
      const m = re.exec(line);
      if (!m) return line;
      found = true;
      if (/^\d+$/.test(m[2]) && Number(m[2]) <= top) return line;
      changed = true;
      return `${m[1]}${top}${m[3]}`;
    });
    if (found) continue;
    changed = true;
    const commented = lines.map((l) => new RegExp(`^\\s*#\\s*${max}\\b`).test(l)).lastIndexOf(true);
    const at = commented >= 0 ? commented + 1 : lines.length;
    const add = lines.includes(MARK) ? [`${max}\t\t\t${top}`] : [MARK, `${max}\t\t\t${top}`];
    lines.splice(at, 0, ...add);
  }
  if (trailing !== undefined) lines.push(trailing);
  return changed ? { text: lines.join("\n"), changed, problem: undefined } : { text, changed };
}

/**
 * `${root}/etc/login.defs` rewritten by reserveAgentIdRange when it needs it: through a new file
 * (root's, the old one's mode) renamed over it, never following a link; a missing file is made
 * (0644) with just the two keys, which shadow reads over its defaults. /etc is root's: no agent
 * can write there. A base with no room below it is logged and left alone (ensureAgentUser still
 * refuses a clash by name). True when the file was changed.
 */
export function ensureAgentIdRange(
  root: string,
  base: number,
  log: (line: string) => void,
): boolean {
  const file = `${root}${LOGIN_DEFS}`;
  let text = "";
  let mode = 0o644;
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile()) {
      log(`warning: ${LOGIN_DEFS} is not a regular file; left as it is`);
      return false;
    }
    mode = st.mode & 0o7777;
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const r = reserveAgentIdRange(text, base);
  if (r.problem) log(`warning: ${r.problem}`);
  if (!r.changed) return false;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.agent-host-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  const fd = fs.openSync(tmp, "wx", 0o600);
  try {
    fs.writeFileSync(fd, r.text);
    fs.fchownSync(fd, 0, 0);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  log(
    `set UID_MAX and GID_MAX to ${base - 1} in ${LOGIN_DEFS}: useradd's automatic ids stay below the agents'`,
  );
  return true;
}
