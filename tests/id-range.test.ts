// login.defs' UID_MAX/GID_MAX kept below the agents' pinned uids (host/agents/id-range.ts), pure.
// The real check (a `useradd` without -u on a booted host, then a scale-up) is in
// tests/boot/boot.test.ts.
import * as fs from "fs";
import { reserveAgentIdRange } from "../host/agents/id-range";

// Debian 12's own file (login 1:4.13), the one a GCE image ships.
const DEBIAN = fs.existsSync("/etc/login.defs") ? fs.readFileSync("/etc/login.defs", "utf8") : "";

const SAMPLE = [
  "# sample",
  "MAIL_DIR\t/var/mail",
  "UID_MIN\t\t\t 1000",
  "UID_MAX\t\t\t60000",
  "#SYS_UID_MAX\t\t  999",
  "GID_MIN\t\t\t 1000",
  "GID_MAX\t\t\t60000",
  "SUB_UID_MAX\t\t600100000",
  "ENCRYPT_METHOD SHA512",
  "",
].join("\n");

const active = (text: string, key: string): string[] =>
  text
    .split("\n")
    .filter((l) => new RegExp(`^\\s*${key}\\s`).test(l))
    .map((l) => l.trim().split(/\s+/)[1]);

test("sets UID_MAX and GID_MAX to base - 1 and keeps every other line as it was", () => {
  const r = reserveAgentIdRange(SAMPLE, 2000);
  expect(r.changed).toBe(true);
  expect(r.problem).toBeUndefined();
  const before = SAMPLE.split("\n");
  const after = r.text.split("\n");
  expect(after.length).toBe(before.length);
  for (const [i, line] of before.entries()) {
    if (/^(UID|GID)_MAX/.test(line)) expect(after[i]).toBe(line.replace("60000", "1999"));
    else expect(after[i]).toBe(line);
  }
  expect(active(r.text, "UID_MAX")).toEqual(["1999"]);
  expect(active(r.text, "GID_MAX")).toEqual(["1999"]);
  // SUB_UID_MAX is another key: untouched.
  expect(active(r.text, "SUB_UID_MAX")).toEqual(["600100000"]);
});

test("is idempotent: a second run changes nothing", () => {
  const once = reserveAgentIdRange(SAMPLE, 2000).text;
  const twice = reserveAgentIdRange(once, 2000);
  expect(twice.changed).toBe(false);
  expect(twice.text).toBe(once);
});

test("a missing or commented-out key is added once, after the commented one", () => {
  const text = SAMPLE.replace("UID_MAX\t\t\t60000", "#UID_MAX\t\t\t60000").replace(
    "GID_MAX\t\t\t60000\n",
    "",
  );
  const r = reserveAgentIdRange(text, 2000);
  expect(r.changed).toBe(true);
  const lines = r.text.split("\n");
  expect(lines[lines.indexOf("#UID_MAX\t\t\t60000") + 2]).toBe("UID_MAX\t\t\t1999");
  expect(active(r.text, "UID_MAX")).toEqual(["1999"]);
  expect(active(r.text, "GID_MAX")).toEqual(["1999"]);
  expect(r.text.endsWith("\n")).toBe(true);
  expect(reserveAgentIdRange(r.text, 2000)).toEqual({ text: r.text, changed: false });
  // An empty (missing) file: just the two keys, and a newline at the end.
  const empty = reserveAgentIdRange("", 2000);
  expect(active(empty.text, "UID_MAX")).toEqual(["1999"]);
  expect(active(empty.text, "GID_MAX")).toEqual(["1999"]);
  expect(empty.text.endsWith("1999\n")).toBe(true);
});

test("only lowers: a UID_MAX already below the base is kept; every active line is set", () => {
  const low = SAMPLE.replace("UID_MAX\t\t\t60000", "UID_MAX\t\t\t1500");
  expect(active(reserveAgentIdRange(low, 2000).text, "UID_MAX")).toEqual(["1500"]);
  // shadow reads the last of several: each one is set, so none can win above the base.
  const twice = SAMPLE.replace("ENCRYPT_METHOD", "UID_MAX 50000\nENCRYPT_METHOD");
  expect(active(reserveAgentIdRange(twice, 2000).text, "UID_MAX")).toEqual(["1999", "1999"]);
});

test("a base with no room below UID_MIN is refused by name and the text left alone", () => {
  const r = reserveAgentIdRange(SAMPLE, 1000);
  expect(r.changed).toBe(false);
  expect(r.text).toBe(SAMPLE);
  expect(r.problem).toMatch(/agentUidBase 1000 .*UID_MIN 1000/);
});

(DEBIAN ? test : test.skip)("Debian's own login.defs: only the two lines change", () => {
  const r = reserveAgentIdRange(DEBIAN, 2000);
  const diff = DEBIAN.split("\n").filter((l, i) => r.text.split("\n")[i] !== l);
  expect(diff.map((l) => l.split(/\s+/)[0])).toEqual(["UID_MAX", "GID_MAX"]);
});
