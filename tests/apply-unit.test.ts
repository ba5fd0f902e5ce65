// agent-host.js apply without root (host/apply/bundle.ts, host/apply/git.ts, host/apply/run.ts):
// its arguments and their refusals, the bundle as the stack renders it (cloud-init/bundle.ts) and
// every check on it, the decision to restart the agents, the extraPackages names, and the pieces of
// the agent's git set-up. tests/fleet-ssh.test.ts, tests/git-checkouts.test.ts and the boot test
// run the whole of it as root against real sshd, git servers and systemd.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { publicBundleSha256, renderBundle, renderPublicBundle } from "../cloud-init/bundle";
import { HOST_FILES, type HostFileContent } from "../cloud-init/files";
import {
  ApplyError,
  ApplyUsageError,
  agentsNeedRestart,
  confNeedsRestart,
  extraPackageNames,
  parseApplyArgs,
  parseBundle,
  RESTART_KEYS,
  dockerNeedsInstall,
  type Bundle,
} from "../host/apply/bundle";
import {
  credentialHelper,
  entriesToUnset,
  GIT_KEY_NAME,
  GIT_STORE_NAME,
  keyFileText,
  sshCommand,
  storeLine,
  urlencode,
} from "../host/apply/git";
import { parsePasswd } from "../host/agents/agent-user";
import { commandPath } from "../host/apply/run";
import { applyMain } from "../host/apply/apply";
import { parseHostConf } from "../host/conf/conf";
import { thrownBy } from "./errors";

const SHA = "a".repeat(64);

describe("arguments", () => {
  test("the fleet's command string, in any order; the instance id is optional", () => {
    expect(
      parseApplyArgs(["--agents", "12", "--bundle-sha256", SHA, "--instance-id", "i-1"]),
    ).toEqual({ agents: 12, bundleSha256: SHA, instanceId: "i-1" });
    expect(parseApplyArgs(["--bundle-sha256", SHA, "--agents", "1"])).toEqual({
      agents: 1,
      bundleSha256: SHA,
      instanceId: "",
    });
  });

  test.each([
    [
      ["--agents", "3", "--bundle-sha256", SHA, "--force"],
      "unknown argument '--force'; usage: apply",
    ],
    [["--bundle-sha256", SHA], "--agents must be a positive whole number; got ''"],
    [["--agents", "0", "--bundle-sha256", SHA], "got '0'"],
    [["--agents", "-2", "--bundle-sha256", SHA], "got '-2'"],
    [["--agents", "3x", "--bundle-sha256", SHA], "got '3x'"],
    [["--agents", "3"], "--bundle-sha256 must be 64 hex digits; got ''"],
    [["--agents", "3", "--bundle-sha256", SHA.toUpperCase()], `got '${SHA.toUpperCase()}'`],
    [["--agents", "3", "--bundle-sha256", SHA.slice(1)], "must be 64 hex digits"],
  ])("%j is a usage error (exit 2) naming the bad value", (argv, said) => {
    const error = thrownBy(() => parseApplyArgs(argv));
    expect(error).toBeInstanceOf(ApplyUsageError);
    expect((error as Error).message).toContain(said);
  });

  test("applyMain: a usage error exits 2 with `apply: ` and reads no stdin", () => {
    const write = jest.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      expect(applyMain(["--agents", "none"], {})).toBe(2);
      expect(write.mock.calls.map((c) => String(c[0]))).toEqual([
        "apply: --agents must be a positive whole number; got 'none'\n",
      ]);
    } finally {
      write.mockRestore();
    }
  });
});

const FILES: HostFileContent[] = [
  { ...HOST_FILES[0], content: "#!/usr/bin/env bash\necho agentctl\n" },
  {
    source: "x",
    path: "/etc/systemd/system/agent-host.service",
    mode: "0644",
    content: "[Unit]\n",
  },
];
const CONF = "AGENT_COUNT=2\nPERMISSION_MODE=default\n";
const KEYS = ["ssh-ed25519 AAAAdeploy deploy", "ecdsa-sha2-nistp256 AAAAme me"];

/** A bundle as the fleet sends it, and the sha256 its command string carries. */
function bundle(secrets = {}, pub = renderPublicBundle(FILES, CONF, KEYS)) {
  return { text: renderBundle(pub, secrets), sha: publicBundleSha256(pub) };
}
const refusal = (text: string, sha: string) => {
  const error = thrownBy(() => parseBundle(text, sha));
  expect(error).toBeInstanceOf(ApplyError);
  return (error as Error).message;
};

describe("the bundle", () => {
  test("what the stack renders comes back whole: files, host.conf, keys, secrets", () => {
    const b = bundle({
      apiKey: "sk-ant-api03-x",
      gitCredentials: "u:tok",
      notifyWebhookUrl: "https://h",
    });
    const parsed: Bundle = parseBundle(b.text, b.sha);
    expect(parsed.files.map((f) => [f.path, f.mode, f.content.toString()])).toEqual([
      ["/usr/local/bin/agentctl", 0o755, FILES[0].content],
      ["/etc/systemd/system/agent-host.service", 0o644, "[Unit]\n"],
    ]);
    expect(parsed.conf).toBe(CONF);
    expect(parsed.adminKeys.toString()).toBe(`${KEYS.join("\n")}\n`);
    expect([parsed.apiKey, parsed.gitCredentials, parsed.notifyWebhookUrl].map(String)).toEqual([
      "sk-ant-api03-x",
      "u:tok",
      "https://h",
    ]);
  });

  test("unset secrets are sent as '-': remove them", () => {
    const b = bundle();
    const parsed = parseBundle(b.text, b.sha);
    expect([parsed.apiKey, parsed.gitCredentials, parsed.notifyWebhookUrl]).toEqual([
      "remove",
      "remove",
      "remove",
    ]);
  });

  test("a bundle from before notifications (no webhook line) leaves the webhook alone", () => {
    const b = bundle();
    const old = b.text.replace(/^secret notify-webhook-url .*\n/m, "");
    expect(parseBundle(old, b.sha).notifyWebhookUrl).toBeUndefined();
  });

  test("the checksum covers the public lines only, exactly as the stack hashes them", () => {
    const a = bundle({ apiKey: "sk-ant-api03-one" });
    const b = bundle({ apiKey: "sk-ant-api03-two" });
    expect(a.sha).toBe(b.sha);
    expect(() => parseBundle(b.text, a.sha)).not.toThrow();
    const other = bundle({}, renderPublicBundle(FILES, `${CONF}AGENT_MAX=4\n`, KEYS));
    expect(refusal(other.text, a.sha)).toBe(
      `bundle checksum mismatch (got ${other.sha}, expected ${a.sha})`,
    );
  });

  test("every host file the stack ships has a path and mode apply accepts", () => {
    // The stack's own list, so a new host file apply would refuse fails here, not on a VM.
    const files = HOST_FILES.map((f) => ({ ...f, content: "x" }));
    const pub = renderPublicBundle(files, CONF, KEYS);
    const parsed = parseBundle(renderBundle(pub), publicBundleSha256(pub));
    expect(parsed.files.map((f) => f.path)).toEqual(HOST_FILES.map((f) => f.path));
  });

  test("not a bundle, or cut off before its end line", () => {
    const b = bundle();
    expect(refusal(`hello\n${b.text}`, b.sha)).toBe(
      "stdin is not an agent-host bundle (expected 'agent-host-bundle 1')",
    );
    expect(refusal(b.text.replace(/end\n$/, ""), b.sha)).toBe(
      "the bundle is truncated (no end line)",
    );
    expect(refusal(`${b.text}\n`, b.sha)).toBe("the bundle is truncated (no end line)");
    expect(refusal(b.text.slice(0, b.text.length / 2), b.sha)).toMatch(/truncated|checksum/);
  });

  test.each([
    ["/etc/../root/x", "0644", "refusing file path '/etc/../root/x'"],
    ["etc/x", "0644", "refusing file path 'etc/x'"],
    ["/etc/a b", "0644", "refusing mode 'b' for /etc/a"],
    ["/etc/x", "4755", "refusing mode '4755' for /etc/x"],
    ["/etc/x", "0648", "refusing mode '0648' for /etc/x"],
  ])("a file line %s %s is refused, before anything is installed", (file, mode, said) => {
    const pub = `file ${file} ${mode} ${Buffer.from("x").toString("base64")}\nconf ${Buffer.from(CONF).toString("base64")}\nkeys ${Buffer.from(KEYS[0]).toString("base64")}`;
    const b = bundle({}, pub);
    expect(refusal(b.text, b.sha)).toBe(said);
  });

  test("missing or empty parts are refused, each by name", () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const cases: [string, string][] = [
      [`conf ${b64(CONF)}`, "the bundle has no admin keys"],
      [`keys ${b64(KEYS[0])}`, "the bundle has no host.conf"],
      [`conf ${b64(CONF)}\nkeys ${b64("# nobody\n")}`, "refusing an authorized_keys without a key"],
      [
        `conf ${b64(CONF)}\nkeys ${b64(KEYS[0])}\nfile /x 0644 no*base64`,
        "the bundle's /x is not valid base64",
      ],
    ];
    for (const [pub, said] of cases) {
      const b = bundle({}, pub);
      expect([pub, refusal(b.text, b.sha)]).toEqual([pub, said]);
    }
    const b = bundle();
    expect(refusal(b.text.replace(/^secret anthropic-api-key .*\n/m, ""), b.sha)).toBe(
      "the bundle has no api-key line",
    );
    expect(refusal(b.text.replace(/^secret git-credentials .*\n/m, ""), b.sha)).toBe(
      "the bundle has no git-credentials line",
    );
  });
});

describe("restarting the agents", () => {
  const raw = (text: string) => parseHostConf(text, "/f").raw;
  const before = raw("CLAUDE_CODE_VERSION=2.1.1\nAGENT_COUNT=2\n");

  test.each(RESTART_KEYS.map((k) => [k]))("a changed %s restarts every agent", (key) => {
    const value = key === "CLAUDE_CODE_VERSION" ? "2.1.2" : `${before[key]}x`;
    expect(confNeedsRestart({ ...before, [key]: value }, before)).toBe(true);
  });

  test("the keys that restart the agents are the ones agent-wrapper hands claude", () => {
    expect([...RESTART_KEYS].sort()).toEqual(
      [
        "CLAUDE_CODE_VERSION",
        "PERMISSION_MODE",
        "CLAUDE_PROVIDER",
        "VERTEX_PROJECT_ID",
        "VERTEX_REGION",
        "VERTEX_BASE_URL",
        "CLAUDE_MODEL",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_ENV",
        "DOCKER_MODE",
      ].sort(),
    );
  });

  test("a rotated API key restarts every agent (a running agent keeps the key it started with)", () => {
    expect(agentsNeedRestart({ conf: false, apiKey: true })).toBe(true);
    expect(agentsNeedRestart({ conf: true, apiKey: false })).toBe(true);
    expect(agentsNeedRestart({ conf: false, apiKey: false })).toBe(false);
  });

  test("the same host.conf, or a change only reconcile needs, restarts nothing", () => {
    expect(confNeedsRestart(before, raw("CLAUDE_CODE_VERSION=2.1.1\nAGENT_COUNT=2\n"))).toBe(false);
    expect(confNeedsRestart(raw("CLAUDE_CODE_VERSION=2.1.1\nAGENT_COUNT=9\n"), before)).toBe(false);
    // A first deploy over a host.conf that is missing: its defaults are what is compared.
    expect(confNeedsRestart(raw("CLAUDE_CODE_VERSION=2.1.1\n"), raw(""))).toBe(true);
  });
});

describe("Docker on day-2", () => {
  const raw = (text: string) => parseHostConf(text, "/f").raw;
  const now = "DOCKER_SOURCE=docker-apt\nDOCKER_MODE=rootless\n";
  test.each([
    ["first boot (no host.conf): first-boot ran install-docker", undefined, now, false],
    ["the same source and mode: nothing to do", now, now, false],
    [
      "a host from before dockerMode: moved off the root daemon once",
      "DOCKER_SOURCE=docker-apt\n",
      now,
      true,
    ],
    ["dockerMode changed", now, "DOCKER_SOURCE=docker-apt\nDOCKER_MODE=shared\n", true],
    ["dockerSource changed", now, "DOCKER_SOURCE=distro\nDOCKER_MODE=rootless\n", true],
  ])("%s", (_, oldText, nextText, expected) => {
    expect(dockerNeedsInstall(oldText, raw(nextText), raw(oldText ?? ""))).toBe(expected);
  });
});

describe("extraPackages", () => {
  test("space-separated names, as apt-get's arguments", () => {
    expect(extraPackageNames("")).toEqual([]);
    expect(extraPackageNames(" ripgrep  g++\tlibssl3 python3.11 ")).toEqual([
      "ripgrep",
      "g++",
      "libssl3",
      "python3.11",
    ]);
  });

  test.each(["Ripgrep", "x", "-y", "a;reboot", "$(id)", "pkg=1.0"])(
    "%s is refused, named, with the fix, before apt-get sees any name",
    (bad) => {
      const error = thrownBy(() => extraPackageNames(`jq ${bad} git`));
      expect(error).toBeInstanceOf(ApplyError);
      expect((error as Error).message).toBe(
        `refusing '${bad}' in EXTRA_PACKAGES: not a Debian package name; fix extraPackages`,
      );
    },
  );
});

describe("the agent's git", () => {
  test("urlencode keeps the unreserved characters and encodes every other byte of UTF-8", () => {
    expect(urlencode("AZaz09-._~")).toBe("AZaz09-._~");
    expect(urlencode("a b:c/d@e%f+")).toBe("a%20b%3Ac%2Fd%40e%25f%2B");
    expect(urlencode("é")).toBe("%C3%A9");
    expect(urlencode("")).toBe("");
  });

  test("a bare token is x-access-token's; user:token splits at the first colon", () => {
    expect(storeLine("ghp_abc\n\n", "github.com")).toEqual({
      line: "https://x-access-token:ghp_abc@github.com\n",
      token: "ghp_abc",
    });
    expect(storeLine("oauth2:glpat-a:b@c", "git.example.test:8443")).toEqual({
      line: "https://oauth2:glpat-a%3Ab%40c@git.example.test:8443\n",
      token: "glpat-a:b@c",
    });
  });

  test("only the entries that name our credential file are unset", () => {
    const listing = [
      `credential.https://github.com.helper !f() { exec git credential-store --file=/home/agent/${GIT_STORE_NAME} get; }; f`,
      "credential.https://other.example.helper store",
      `credential.https://old.example:8443.helper !f() { --file=/home/agent/${GIT_STORE_NAME}; }; f`,
      "",
    ].join("\n");
    expect(entriesToUnset(listing, GIT_STORE_NAME)).toEqual([
      "credential.https://github.com.helper",
      "credential.https://old.example:8443.helper",
    ]);
    expect(entriesToUnset("", GIT_STORE_NAME)).toEqual([]);
    expect(entriesToUnset("core.sshcommand ssh -i /k", GIT_KEY_NAME)).toEqual([]);
  });

  test("the helper only answers get, from the agent's file; ssh uses the key alone", () => {
    const helper = credentialHelper("/home/agent");
    expect(helper).toBe(
      `!f() { if [ "$1" = get ]; then exec git credential-store --file=/home/agent/${GIT_STORE_NAME} get; fi; }; f`,
    );
    expect(sshCommand("/home/agent")).toBe(
      `ssh -i /home/agent/${GIT_KEY_NAME} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new`,
    );
  });

  test("an SSH key gets its final newline back, once", () => {
    expect(keyFileText(Buffer.from("KEY")).toString()).toBe("KEY\n");
    expect(keyFileText(Buffer.from("KEY\n")).toString()).toBe("KEY\n");
    expect(keyFileText(Buffer.alloc(0)).length).toBe(0);
  });
});

describe("running things", () => {
  test("a passwd line gives the user's ids and home; anything else none", () => {
    expect(parsePasswd("agent:x:1001:1002:Agent:/home/agent:/bin/bash\n")).toEqual({
      name: "agent",
      uid: 1001,
      gid: 1002,
      home: "/home/agent",
    });
    expect(parsePasswd("")).toBeUndefined();
    expect(parsePasswd("agent:x:u:g:A:/home/agent:/bin/sh")).toBeUndefined();
  });

  test("commandPath finds an executable file on PATH, as `command -v` does", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apply-unit-"));
    try {
      fs.writeFileSync(path.join(dir, "gh"), "", { mode: 0o644 });
      fs.mkdirSync(path.join(dir, "sub"));
      fs.writeFileSync(path.join(dir, "sub", "gh"), "#!/bin/sh\n", { mode: 0o755 });
      fs.mkdirSync(path.join(dir, "x", "gh"), { recursive: true });
      expect(commandPath("gh", `${dir}:${path.join(dir, "x")}`)).toBeUndefined();
      expect(commandPath("gh", `${dir}::${path.join(dir, "sub")}`)).toBe(
        path.join(dir, "sub", "gh"),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
