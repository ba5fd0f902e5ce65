// Every key the stack writes to host.conf is known to every host-side parser of it, and the
// parsers agree with HOST.md: a key added on one side only made install-claude-code warn on
// every deploy ("ignoring unknown key ...") and fail the git suite's no-warning check.
import * as fs from "fs";
import * as path from "path";
import { hostSettingsFor, renderHostConf, type HostSettings } from "../cloud-init/host-config";
import { parseConfig } from "../config";
import { BASE_CONFIG } from "./harness";

const HOST = path.join(__dirname, "..", "cloud-init");
const read = (file: string) => fs.readFileSync(path.join(HOST, file), "utf8");
const UPPER_KEY = /\b[A-Z][A-Z0-9_]*_[A-Z0-9_]+\b|\bAGENT_[A-Z]+\b/g;

/** Every key renderHostConf can write: all optional settings filled in. */
function writtenKeys(): Set<string> {
  const base = hostSettingsFor(parseConfig(BASE_CONFIG).config, []);
  const full: HostSettings = {
    ...base,
    gitUserName: "n",
    gitUserEmail: "e@example.test",
    repository: "https://example.test/r.git",
    gitCredentialHost: "example.test",
    extraPackages: ["ripgrep"],
    claude: {
      ...base.claude,
      provider: "vertex",
      vertexProjectId: "p",
      vertexRegion: "global",
      model: "m",
      anthropicBaseUrl: "https://gateway.example.test",
      vertexBaseUrl: "https://vertex.example.test/v1",
    },
  };
  const text = renderHostConf(full);
  return new Set([...text.matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]));
}

/** agentctl's `case "${key}" in` of load_config: the keys it reads and the ones it accepts. */
function agentctlKeys(): Set<string> {
  const text = read("host/agentctl");
  const start = text.indexOf('case "${key}" in', text.indexOf("load_config()"));
  const block = text.slice(start, text.indexOf("esac", start));
  return new Set(block.match(UPPER_KEY) ?? []);
}

function knownKeysArray(file: string): Set<string> {
  const match = /readonly -a KNOWN_KEYS=\(([^)]*)\)/.exec(read(file));
  if (!match) throw new Error(`${file} has no KNOWN_KEYS array`);
  return new Set(match[1].split(/\s+/).filter(Boolean));
}

function hostMdKeys(): Set<string> {
  const text = read("HOST.md");
  const table = text.slice(text.indexOf("## `/etc/agent-host/host.conf`"));
  const keys = [...table.matchAll(/^\| ([^|]+) \|/gm)].flatMap(
    (m) => m[1].match(/`([A-Z][A-Z0-9_]+)`/g)?.map((k) => k.slice(1, -1)) ?? [],
  );
  return new Set(keys);
}

const sorted = (s: Set<string>) => [...s].sort();

test("every key the stack writes is in HOST.md's table", () => {
  const documented = hostMdKeys();
  expect(sorted(writtenKeys()).filter((k) => !documented.has(k))).toEqual([]);
});

test.each(["host/install-claude-code", "host/install-docker", "host/data-disk"])(
  "%s knows exactly agentctl's keys (no warning for another script's key)",
  (file) => {
    expect(sorted(knownKeysArray(file))).toEqual(sorted(agentctlKeys()));
  },
);

test("agentctl knows every key the stack writes and every key HOST.md documents", () => {
  const known = agentctlKeys();
  expect(sorted(writtenKeys()).filter((k) => !known.has(k))).toEqual([]);
  expect(sorted(hostMdKeys()).filter((k) => !known.has(k))).toEqual([]);
});
