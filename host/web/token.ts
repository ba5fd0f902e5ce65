// The dashboard's token: 256 random bits made on the VM, in a root-only file (conf.dashboardTokenFile,
// in /etc/agent-host/secrets/, a 0700 root folder). Never in metadata, argv, logs or the page; the
// lead gets it from `sudo agentctl web --url` and the page keeps it in the URL fragment, which a
// browser never sends. The server re-reads the file when it changes, so a rotation takes effect
// at the next request, without a restart.
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { readBounded, writeAtomic } from "../attention/store";

/** 32 bytes = 256 bits, as base64url (43 characters). */
export const TOKEN_BYTES = 32;
export const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export const newToken = (): string => randomBytes(TOKEN_BYTES).toString("base64url");

/**
 * The token in `file`, when it is a regular file of `owner` (root on the VM) no one else can read
 * or write and holds a well-formed token; undefined otherwise (the server then refuses every API
 * request). Tests name their own uid as the owner, so the rules run without root.
 */
export function readToken(file: string, owner = 0): string | undefined {
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.uid !== owner || (st.mode & 0o077) !== 0) return undefined;
  } catch {
    return undefined;
  }
  const text = readBounded(file, 256, owner)?.trim();
  return text !== undefined && TOKEN_RE.test(text) ? text : undefined;
}

/** Writes a new token (0600, atomically: the old one works until the rename). */
export function writeToken(file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const token = newToken();
  writeAtomic(file, `${token}\n`, 0o600);
  return token;
}

/** The token, made first when there is none (or the file is not a valid root-only token). */
export function ensureToken(file: string, owner = 0): string {
  return readToken(file, owner) ?? writeToken(file);
}

/** Re-reads the token only when the file changed (inode, size, mtime). */
export function tokenReader(file: string): () => string | undefined {
  let stamp = "";
  let token: string | undefined;
  return () => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      stamp = "";
      return (token = undefined);
    }
    const now = `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}:${st.uid}`;
    if (now !== stamp) {
      stamp = now;
      token = readToken(file);
    }
    return token;
  };
}

/** http://127.0.0.1:PORT/#token=TOKEN: what `agentctl web --url` prints. */
export function dashboardUrl(port: number, token: string): string {
  return `http://127.0.0.1:${port}/#token=${token}`;
}
