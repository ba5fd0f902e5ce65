// Secret-leak suite: the whole program evaluated with canary values for the API key and the deploy
// key (generated, and given in config). A canary may appear only inside values marked secret —
// never in a plain resource input, VM metadata, the rendered user-data, the command strings, a
// plain output or anything logged — and it must appear where it is needed, so no check passes
// because the canary went nowhere. Canaries are searched raw and base64-encoded (the day-2 bundle
// base64-encodes every value, so a raw search alone would miss a key leaked into its public part).
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { gunzipSync } from "zlib";
import { secretShapesIn } from "../shared-rules";
import {
  BASE_CONFIG,
  SECRET_SIG,
  SIG_KEY,
  one,
  plainStrings,
  registeredSoFar,
  runProgram,
  unwrap,
  type ProgramRun,
} from "./harness";
import { cloudInitUserData } from "./user-data";

jest.setTimeout(60_000);

const API_KEY_TOKEN = "CANARYapikey7f3e9c1d2b4a6e8f0a1b2c3d4e5f6a7b8c9d0e1f";
const API_KEY = `sk-ant-api03-${API_KEY_TOKEN}-AA`;
/** A `claude setup-token` token: the same key, the other shape it takes. */
const SETUP_TOKEN_TOKEN = "CANARYsetupToken3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d";
const SETUP_TOKEN = `sk-ant-oat01-${SETUP_TOKEN_TOKEN}-BB`;
const GENERATED_TOKEN = "CANARYgeneratedDeployKey0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d";
// A Slack incoming webhook's path is its credential.
const WEBHOOK_TOKEN = "CANARYwebhook5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f";
const WEBHOOK = `https://hooks.slack.com/services/T0CANARY/B0CANARY/${WEBHOOK_TOKEN}`;
const GIVEN_TOKEN = "CANARYgivenDeployKey9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a";
const pem = (token: string) =>
  `-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n${token}\n-----END OPENSSH PRIVATE KEY-----\n`;

/**
 * The texts that betray a canary: itself, and its base64 encoding at each of the three byte
 * alignments it can have inside a larger encoded text (minus the edge groups that depend on the
 * neighbouring bytes).
 */
function forms(token: string): string[] {
  const encoded = [0, 1, 2].map((shift) => {
    const b64 = Buffer.from("\0".repeat(shift) + token, "utf8").toString("base64");
    return b64.slice(shift === 0 ? 0 : 4, -4);
  });
  return [token, ...encoded];
}

const contains = (text: string, token: string) => forms(token).some((f) => text.includes(f));

/** Every string in a value, secret wrappers removed. */
const allText = (value: unknown): string =>
  typeof value === "string" ? value : JSON.stringify(unwrap(value) ?? null);

/** Where, among the resources' inputs, a token sits inside a secret wrapper. */
function secretLocations(run: ProgramRun, token: string): string[] {
  const found: string[] = [];
  const walk = (value: unknown, path: string, where: string) => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${path}[${i}]`, where));
    else if (value && typeof value === "object") {
      const obj = value as Record<string, unknown>;
      if (obj[SIG_KEY] === SECRET_SIG) {
        if (contains(allText(obj.value), token)) found.push(`${where} ${path}`);
        return;
      }
      for (const [k, v] of Object.entries(obj)) walk(v, `${path}.${k}`, where);
    }
  };
  for (const r of run.resources) walk(r.inputs, "$", `${r.type}::${r.name}`);
  return found;
}

interface Observed {
  run: ProgramRun;
  /** Everything logged during the run: pulumi.log.*, console.*, process.stdout/stderr. */
  logged: string[];
  /**
   * The SDK's own RPC traces (pulumi.log.debug "… RPC finished: …"): they print each resource's
   * whole registered state, secret values included (inside their secret marker). The engine shows
   * them only with `pulumi up --debug`.
   */
  sdkTraces: string[];
}

const SDK_TRACE =
  /^(?:RegisterResource|RegisterResourceOutputs|ReadResource|getResource Invoke) RPC finished: /;

/** Runs the program with every log channel recorded. */
async function observe(
  config: Record<string, string>,
  options: Parameters<typeof runProgram>[1],
): Promise<Observed> {
  const logged: string[] = [];
  const sdkTraces: string[] = [];
  const record = (...args: unknown[]) => {
    const text = args.map((a) => (typeof a === "string" ? a : allText(a))).join(" ");
    (SDK_TRACE.test(text) ? sdkTraces : logged).push(text);
  };
  // pulumi.log.warn is recorded by the harness itself (run.warnings).
  const spies: jest.SpyInstance[] = [
    jest.spyOn(pulumi.log, "debug").mockImplementation(async (message) => record(message)),
    jest.spyOn(pulumi.log, "info").mockImplementation(async (message) => record(message)),
    jest.spyOn(pulumi.log, "error").mockImplementation(async (message) => record(message)),
    ...(["log", "info", "warn", "error", "debug"] as const).map((level) =>
      jest.spyOn(console, level).mockImplementation(record),
    ),
    ...[process.stdout, process.stderr].map((stream) =>
      jest.spyOn(stream, "write").mockImplementation(((chunk: unknown) => {
        record(Buffer.isBuffer(chunk) ? chunk.toString("utf8") : chunk);
        return true;
      }) as typeof stream.write),
    ),
  ];
  try {
    const run = await runProgram(config, options);
    logged.push(...run.warnings);
    return { run, logged, sdkTraces };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

interface Scenario {
  label: string;
  config: Record<string, string>;
  options: Parameters<typeof runProgram>[1];
  deployToken: string;
  /** The anthropicApiKey value and its canary; none on Vertex AI, where there is no key. */
  apiKey?: { value: string; token: string };
  /** The notifyWebhookUrl value and its canary, when the scenario sets one. */
  webhook?: { value: string; token: string };
}

const SCENARIOS: Scenario[] = [
  {
    label: "generated deploy key",
    config: {
      ...BASE_CONFIG,
      "agent-host:anthropicApiKey": API_KEY,
      "agent-host:notifyWebhookUrl": WEBHOOK,
      // Its warning proves the log channel is recorded.
      "agent-host:agentPermissionMode": "bypassPermissions",
    },
    options: {
      secretKeys: ["agent-host:anthropicApiKey", "agent-host:notifyWebhookUrl"],
      generatedPrivateKey: pem(GENERATED_TOKEN),
    },
    deployToken: GENERATED_TOKEN,
    apiKey: { value: API_KEY, token: API_KEY_TOKEN },
    webhook: { value: WEBHOOK, token: WEBHOOK_TOKEN },
  },
  {
    label: "deploy key given in config",
    config: {
      ...BASE_CONFIG,
      "agent-host:anthropicApiKey": API_KEY,
      "agent-host:deployPrivateKey": pem(GIVEN_TOKEN),
      "agent-host:agentPermissionMode": "bypassPermissions",
    },
    options: {
      secretKeys: ["agent-host:anthropicApiKey", "agent-host:deployPrivateKey"],
      // Would show up if the program used a generated key instead of the given one.
      generatedPrivateKey: pem(GENERATED_TOKEN),
    },
    deployToken: GIVEN_TOKEN,
    apiKey: { value: API_KEY, token: API_KEY_TOKEN },
  },
  {
    // The gateway URL and the model are plain settings (host.conf); the token beside them is not.
    label: "setup-token through a gateway",
    config: {
      ...BASE_CONFIG,
      "agent-host:anthropicApiKey": SETUP_TOKEN,
      "agent-host:anthropicBaseUrl": "https://llm.acme.example/anthropic",
      "agent-host:claudeModel": "sonnet",
      "agent-host:agentPermissionMode": "bypassPermissions",
    },
    options: {
      secretKeys: ["agent-host:anthropicApiKey"],
      generatedPrivateKey: pem(GENERATED_TOKEN),
    },
    deployToken: GENERATED_TOKEN,
    apiKey: { value: SETUP_TOKEN, token: SETUP_TOKEN_TOKEN },
  },
  {
    label: "Vertex AI (no key at all)",
    config: {
      ...BASE_CONFIG,
      "agent-host:claudeProvider": "vertex",
      "agent-host:vertexRegion": "europe-west1",
      "agent-host:agentPermissionMode": "bypassPermissions",
    },
    options: { secretKeys: [], generatedPrivateKey: pem(GENERATED_TOKEN) },
    deployToken: GENERATED_TOKEN,
  },
];

/** The places a canary must never reach, each a named leak check. */
const SINKS: Record<string, (o: Observed) => string[]> = {
  "plain resource inputs (every resource, every path, plus names and options)": ({ run }) =>
    run.resources.flatMap((r) => [
      `${r.type}::${r.name}`,
      JSON.stringify(r.options),
      ...plainStrings(r.inputs).map((s) => `${r.type}::${r.name} ${s.path} ${s.text}`),
    ]),
  "VM metadata, even inside a secret": ({ run }) => [
    allText(one(run, "gcp:compute/instance:Instance").inputs.metadata),
  ],
  "rendered user-data: its text, every parsed string, every decoded write_files content": ({
    run,
  }) => {
    const metadata = unwrap(one(run, "gcp:compute/instance:Instance").inputs.metadata) as Record<
      string,
      string
    >;
    const text = cloudInitUserData(metadata);
    const document = parse(text);
    const decoded = (document.write_files ?? []).map(
      (f: { content?: string; encoding?: string }) => {
        const encoding = f.encoding ?? "text/plain";
        if (!/b64|base64/.test(encoding)) return f.content ?? "";
        const bytes = Buffer.from(f.content ?? "", "base64");
        return (/gz/.test(encoding) ? gunzipSync(bytes) : bytes).toString("utf8");
      },
    );
    return [metadata["user-data"], text, ...plainStrings(document).map((s) => s.text), ...decoded];
  },
  "the reconcile command's create and update strings": ({ run }) => {
    const cmd = one(run, "command:remote:Command");
    return [allText(cmd.inputs.create), allText(cmd.inputs.update)];
  },
  "stack outputs not marked secret": ({ run }) =>
    Object.entries(run.outputs)
      .filter(([, o]) => !o.secret)
      .map(([key, o]) => `${key}: ${allText(o.value)}`),
  "pulumi.log (but the SDK's RPC traces), console and process.stdout/stderr": ({ logged }) =>
    logged,
};

/** What the SDK's debug traces expose, per scenario (see README: never share `--debug` output). */
const TRACED: Record<string, string[]> = {
  "generated deploy key": [
    "RegisterResource RPC finished: resource:agent-host-reconcile[command:remote:Command]",
    // The mocks return the key as tls.PrivateKey's state; the real provider marks it secret.
    "RegisterResource RPC finished: resource:deploy-key[tls:index/privateKey:PrivateKey]",
  ],
  "deploy key given in config": [
    "RegisterResource RPC finished: resource:agent-host-reconcile[command:remote:Command]",
  ],
  "setup-token through a gateway": [
    "RegisterResource RPC finished: resource:agent-host-reconcile[command:remote:Command]",
    "RegisterResource RPC finished: resource:deploy-key[tls:index/privateKey:PrivateKey]",
  ],
  "Vertex AI (no key at all)": [
    "RegisterResource RPC finished: resource:agent-host-reconcile[command:remote:Command]",
    "RegisterResource RPC finished: resource:deploy-key[tls:index/privateKey:PrivateKey]",
  ],
};

const CANARIES = (s: Scenario): [string, string][] => [
  ...(s.apiKey ? [["API key", s.apiKey.token] as [string, string]] : []),
  ["deploy key", s.deployToken],
  ...(s.webhook ? [["notification webhook", s.webhook.token] as [string, string]] : []),
];

describe.each(SCENARIOS)("$label", (scenario) => {
  let observed: Observed;
  beforeAll(async () => {
    observed = await observe(scenario.config, scenario.options);
  });

  describe.each(CANARIES(scenario))("the %s canary", (_name, token) => {
    test.each(Object.keys(SINKS))("never in %s", (sink) => {
      const texts = SINKS[sink](observed);
      expect(texts.filter((text) => contains(text, token))).toEqual([]);
    });
  });

  test("the sinks are not empty (the checks look at something)", () => {
    for (const sink of Object.keys(SINKS)) expect(SINKS[sink](observed).length).toBeGreaterThan(0);
    // The bypassPermissions warning reached the recorded log.
    expect(observed.logged.join("\n")).toContain("agentPermissionMode is bypassPermissions");
  });

  test("the API key is in the reconcile command's secret stdin, and only there (on Vertex AI: no key anywhere)", () => {
    const cmd = one(observed.run, "command:remote:Command");
    const { apiKey } = scenario;
    if (apiKey === undefined) {
      expect(unwrap(cmd.inputs.stdin)).toContain("secret anthropic-api-key -\n");
      // No Anthropic key or token shape anywhere, secret or not: in every resource's inputs.
      // The host files travel gzipped in the user-data: searched as cloud-init writes them.
      const everything = [
        ...observed.run.resources.map((r) => allText(r.inputs)),
        ...SINKS[
          "rendered user-data: its text, every parsed string, every decoded write_files content"
        ](observed),
      ].join("\n");
      // (agentctl's own text names the prefix in a pattern; the shape is a whole key.)
      expect(secretShapesIn(everything)).not.toContain(
        "an Anthropic API key or OAuth token (sk-ant-…)",
      );
      expect(everything).toContain("sk-ant-");
      return;
    }
    expect(cmd.inputs.stdin).toMatchObject({ [SIG_KEY]: SECRET_SIG });
    expect(unwrap(cmd.inputs.stdin)).toContain(
      `secret anthropic-api-key ${Buffer.from(apiKey.value).toString("base64")}\n`,
    );
    expect(secretLocations(observed.run, apiKey.token)).toEqual([
      "command:remote:Command::agent-host-reconcile $.stdin",
    ]);
  });

  test("the webhook URL is in the reconcile command's secret stdin, and only there (else its line is '-')", () => {
    const cmd = one(observed.run, "command:remote:Command");
    const { webhook } = scenario;
    if (webhook === undefined) {
      expect(unwrap(cmd.inputs.stdin)).toContain("secret notify-webhook-url -\n");
      return;
    }
    expect(cmd.inputs.stdin).toMatchObject({ [SIG_KEY]: SECRET_SIG });
    expect(unwrap(cmd.inputs.stdin)).toContain(
      `secret notify-webhook-url ${Buffer.from(webhook.value).toString("base64")}\n`,
    );
    expect(secretLocations(observed.run, webhook.token)).toEqual([
      "command:remote:Command::agent-host-reconcile $.stdin",
    ]);
  });

  test("the deploy key is in the reconcile command's secret connection, and only there", () => {
    const cmd = one(observed.run, "command:remote:Command");
    expect(cmd.inputs.connection).toMatchObject({ [SIG_KEY]: SECRET_SIG });
    expect((unwrap(cmd.inputs.connection) as { privateKey: string }).privateKey).toBe(
      pem(scenario.deployToken),
    );
    expect(secretLocations(observed.run, scenario.deployToken)).toEqual([
      "command:remote:Command::agent-host-reconcile $.connection",
    ]);
  });

  test("debug level only: the SDK's RegisterResource traces of secret-holding resources", () => {
    const withCanary = observed.sdkTraces
      .filter((t) => contains(t, API_KEY_TOKEN) || contains(t, scenario.deployToken))
      .map((t) => t.slice(0, t.indexOf("; err:")));
    expect([...new Set(withCanary)].sort()).toEqual(TRACED[scenario.label]);
  });

  test("the deployPrivateKey output is secret and holds the deploy key", () => {
    expect(observed.run.outputs.deployPrivateKey).toEqual({
      value: pem(scenario.deployToken),
      secret: true,
    });
  });
});

test("the canary forms catch an encoded leak (the search itself can fail)", () => {
  const bundleLine = `keys ${Buffer.from(`ssh-ed25519 AAAA x\n${API_KEY}\n`).toString("base64")}`;
  expect(contains(bundleLine, API_KEY_TOKEN)).toBe(true);
  expect(contains(`x${API_KEY}y`, API_KEY_TOKEN)).toBe(true);
  expect(contains(Buffer.from("nothing here").toString("base64"), API_KEY_TOKEN)).toBe(false);
});

test("leak check count", () => {
  // (3 scenarios × 2 canaries + 1 (Vertex: the deploy key only) + 1 webhook) × 6 sinks.
  const canaries = SCENARIOS.reduce((n, s) => n + CANARIES(s).length, 0);
  expect(canaries * Object.keys(SINKS).length).toBe(48);
});

/**
 * anthropicBaseUrl, vertexBaseUrl, claudeModel and vertexRegion are not secrets (host.conf, each
 * agent's environment), so a credential must never get into them: each way of putting one there
 * is refused before any resource exists, and neither the refusal nor anything logged repeats it.
 */
describe.each([
  ["anthropicBaseUrl", "user info", (t: string) => `https://team:${t}@llm.acme.example/anthropic`],
  ["anthropicBaseUrl", "a query string", (t: string) => `https://llm.acme.example/a?key=${t}`],
  ["anthropicBaseUrl", "a fragment", (t: string) => `https://llm.acme.example/a#${t}`],
  [
    "anthropicBaseUrl",
    "a key in the path",
    (t: string) => `https://llm.acme.example/sk-ant-api03-${t}`,
  ],
  ["vertexBaseUrl", "user info", (t: string) => `https://sa:${t}@vertex.example.internal/v1`],
  ["anthropicBaseUrl", "user info without a scheme", (t: string) => `team:${t}@llm.acme.example`],
  ["anthropicBaseUrl", "a query without a scheme", (t: string) => `llm.acme.example/?key=${t}`],
  ["anthropicBaseUrl", "user info over http", (t: string) => `http://team:${t}@llm.acme.example`],
  ["claudeModel", "a key pasted into it", (t: string) => `sk-ant-api03-${t}`],
  ["vertexRegion", "a key pasted into it", (t: string) => `sk-ant-oat01-${t}`],
])("a credential in %s (%s)", (key, _how, url) => {
  const CANARY = "CANARYurlSecret4d3c2b1a0f9e8d7c6b5a";
  test("is refused before any resource, and the canary is in no message or log", async () => {
    const config = {
      ...BASE_CONFIG,
      ...(key.startsWith("vertex") ? { "agent-host:claudeProvider": "vertex" } : {}),
      [`agent-host:${key}`]: url(CANARY),
    };
    let message = "";
    const logged: string[] = [];
    const spies = (["log", "info", "warn", "error", "debug"] as const).map((level) =>
      jest.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        logged.push(args.map(String).join(" "));
      }),
    );
    try {
      await runProgram(config, {});
    } catch (error) {
      message = String(error);
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(message).toMatch(new RegExp(`^ConfigError: ${key} `));
    expect(message).toContain("(not shown)");
    expect(contains(message, CANARY)).toBe(false);
    expect(logged.filter((line) => contains(line, CANARY))).toEqual([]);
    expect(registeredSoFar()).toEqual([]);
  });
});
