// A newcomer follows links: every relative link in README.md, docs/ and the other tracked
// markdown resolves to a file in the repository, and every #anchor to a heading there (GitHub's
// slugs: lowercase, punctuation dropped, spaces to hyphens, -1, -2 … for repeats).
import { execFileSync } from "child_process";
import { existsSync, readFileSync, statSync } from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..");

const markdown = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "*.md"], {
  cwd: ROOT,
  encoding: "utf8",
})
  .split("\n")
  .filter((file) => file !== "" && existsSync(path.join(ROOT, file)));

/** GitHub's anchor for each heading of a markdown text (github-slugger's rules). */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  let fence = false;
  for (const line of text.split("\n")) {
    if (/^\s*```/.test(line)) fence = !fence;
    const heading = fence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = heading[1]
      .replace(/`/g, "")
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** The relative links of a markdown text, outside code: [text](target), target as written. */
export function relativeLinks(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1])
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

function broken(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  return relativeLinks(text).flatMap((target) => {
    const [where, anchor] = target.split("#", 2);
    const resolved =
      where === "" ? path.join(ROOT, file) : path.join(ROOT, path.dirname(file), where);
    if (!resolved.startsWith(ROOT) || !existsSync(resolved)) {
      return [`${file}: ${target} (no such file)`];
    }
    if (anchor === undefined || statSync(resolved).isDirectory()) return [];
    if (!resolved.endsWith(".md")) return [];
    return anchors(readFileSync(resolved, "utf8")).has(anchor)
      ? []
      : [`${file}: ${target} (no heading with that anchor)`];
  });
}

test("the README and docs/ are there, and link to each other", () => {
  expect(markdown).toEqual(expect.arrayContaining(["README.md", "docs/testing.md"]));
  expect(relativeLinks(readFileSync(path.join(ROOT, "README.md"), "utf8")).length).toBeGreaterThan(
    10,
  );
});

test("the anchor rules are GitHub's", () => {
  expect([
    ...anchors(
      "# Who needs you\n## The host bundle\n## `npm test`: 1, 2\n## Clean up\n## Clean up\n",
    ),
  ]).toEqual(["who-needs-you", "the-host-bundle", "npm-test-1-2", "clean-up", "clean-up-1"]);
});

test.each(markdown)("%s: every relative link resolves", (file) => {
  expect(broken(file)).toEqual([]);
});

// Paths named in prose, comments and workflows (a script a comment tells you to run, a test a doc
// cites) name files that exist: from the repository's root or from the naming file's folder, or
// a build output .gitignore lists (cloud-init/host/agent-host.js). A rename leaves none behind.
const NAMED_PATH =
  /(?:^|[^\w./-])((?:scripts|tests|host|components|cloud-init|docs|\.ci|\.github)\/[\w./-]+\.(?:ts|js|sh|md|ya?ml|json|jsonl|txt))(?![\w])/g;

// Named relative to something else, on purpose: the bundle's source is relative to cloud-init/.
const NOT_FROM_HERE = new Set(["tests/host-bundle.test.ts: host/agent-host.js"]);

/** The repository paths a text names. */
export function namedPaths(text: string): string[] {
  return [...text.matchAll(NAMED_PATH)].map((m) => m[1]);
}

function missingPaths(): string[] {
  const tracked = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    // this file's own examples are not references
    .filter((file) => !["", "package-lock.json", "tests/docs-links.test.ts"].includes(file));
  const missing: string[] = [];
  for (const file of tracked) {
    const full = path.join(ROOT, file);
    if (!existsSync(full) || statSync(full).isDirectory()) continue;
    for (const named of namedPaths(readFileSync(full, "utf8"))) {
      const candidates = [named, path.join(path.dirname(file), named)];
      const found = candidates.some((c) => existsSync(path.join(ROOT, c)));
      const where = `${file}: ${named}`;
      if (!found && !candidates.some(ignored) && !NOT_FROM_HERE.has(where)) missing.push(where);
    }
  }
  return [...new Set(missing)];
}

function ignored(file: string): boolean {
  try {
    execFileSync("git", ["check-ignore", "-q", "--no-index", file], { cwd: ROOT });
    return true;
  } catch {
    return false;
  }
}

test("namedPaths finds a path in prose, a comment and a command line", () => {
  expect(
    namedPaths(
      "# scripts/check-workflows.ts runs it\nsee `docs/cicd.md`, (tests/fixtures/a.jsonl).",
    ),
  ).toEqual(["scripts/check-workflows.ts", "docs/cicd.md", "tests/fixtures/a.jsonl"]);
  expect(namedPaths("/usr/local/lib/agent-host/host/a.ts and my-scripts/x.sh")).toEqual([]);
});

test("every repository path a tracked file names is there (or is built)", () => {
  expect(missingPaths()).toEqual([]);
});
