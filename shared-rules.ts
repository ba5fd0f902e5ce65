// Rules that more than one part of the stack applies: the config check (config.ts, index.ts), the
// policy pack (policy/rules.ts) and the host (host/*.ts, and the bash in cloud-init/host). Each is
// written here once; the TypeScript imports it, and tests/shared-rules.test.ts fails when a bash
// copy (bash cannot import it) drifts from it. Pure and import-free, so the policy pack and the
// host bundle can take it without pulling in the stack.

/** Regex source matching any one of `words` literally. */
function anyOf(words: readonly string[]): string {
  return words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
}

/**
 * A whole number as an integer config key is written (Pulumi keeps config values as text): the
 * config check and the policy pack read snapshotRetentionDays by it alike.
 */
export const WHOLE_NUMBER_RE = /^-?\d+$/;

/**
 * Debian policy: lowercase letters, digits, + - . ; at least two characters, starting alphanumeric.
 * Used by apply on the host too (host/apply/bundle.ts extraPackageNames).
 */
export const PACKAGE_NAME_RE = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * GitHub's classic token prefixes: personal access, OAuth, user-to-server, server-to-server and
 * refresh tokens (github.blog "Behind GitHub's new authentication token formats"), followed by
 * base62 characters.
 */
const GITHUB_CLASSIC_TOKEN_PREFIXES = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] as const;
/** A fine-grained personal access token's prefix, followed by base62 characters and `_`. */
const GITHUB_FINE_GRAINED_TOKEN_PREFIX = "github_pat_";
/** Every GitHub token prefix. */
export const GITHUB_TOKEN_PREFIXES: readonly string[] = [
  ...GITHUB_CLASSIC_TOKEN_PREFIXES,
  GITHUB_FINE_GRAINED_TOKEN_PREFIX,
];
/** A value that starts like a GitHub token (apply logs gh in with one: host/apply/git.ts). */
export const GITHUB_TOKEN_RE = new RegExp(`^(${anyOf(GITHUB_TOKEN_PREFIXES)})`);
/**
 * Regex source of a GitHub token somewhere in a text: a classic one with at least
 * `classicChars` characters after the prefix, or a fine-grained one with at least `fineChars`.
 */
export function githubTokenShape(classicChars: number, fineChars: number): string {
  return (
    `\\b(?:(?:${anyOf(GITHUB_CLASSIC_TOKEN_PREFIXES)})[A-Za-z0-9]{${classicChars},}` +
    `|${GITHUB_FINE_GRAINED_TOKEN_PREFIX}[A-Za-z0-9_]{${fineChars},})`
  );
}

/** Every Anthropic credential starts so: API keys (sk-ant-api03-…) and OAuth tokens (sk-ant-oat01-…). */
export const ANTHROPIC_KEY_PREFIX = "sk-ant-";
/** The characters after the prefix. */
export const ANTHROPIC_KEY_CHARS = "[A-Za-z0-9_-]";
/** Regex source of an Anthropic API key or OAuth token inside a text. */
const ANTHROPIC_KEY_SHAPE = `${ANTHROPIC_KEY_PREFIX}${ANTHROPIC_KEY_CHARS}{20,}`;
/** A whole value that is an Anthropic API key or OAuth token (the anthropicApiKey rule). */
export const ANTHROPIC_KEY_RE = new RegExp(`^${ANTHROPIC_KEY_SHAPE}$`);
/** The OAuth token's prefix: a credential that starts so is a token, else an API key. */
export const ANTHROPIC_OAUTH_TOKEN_PREFIX = `${ANTHROPIC_KEY_PREFIX}oat`;
/**
 * What `claude setup-token` prints (sk-ant-oat01-…), the only thing `agentctl login` stores.
 * Copy: cloud-init/host/agentctl SETUP_TOKEN_RE.
 */
export const ANTHROPIC_SETUP_TOKEN_RE = new RegExp(
  `^${ANTHROPIC_OAUTH_TOKEN_PREFIX}[0-9]{2}-${ANTHROPIC_KEY_CHARS}{20,}$`,
);

/** The PEM / OpenSSH private key types the stack takes: OpenSSH, PKCS#1 RSA, SEC1 EC, PKCS#8. */
const PRIVATE_KEY_TYPE = "(OPENSSH |RSA |EC )?";
/** A value that starts like a private key the stack takes. */
export const PRIVATE_KEY_BEGIN_RE = new RegExp(`^-----BEGIN ${PRIVATE_KEY_TYPE}PRIVATE KEY-----`);
/** A private key's END line at the end of a value (trailing blanks allowed). */
export const PRIVATE_KEY_END_RE = new RegExp(`-----END ${PRIVATE_KEY_TYPE}PRIVATE KEY-----\\s*$`);
/** A whole private key, BEGIN line through END line, nothing around it (trim first). */
export const WHOLE_PRIVATE_KEY_RE = new RegExp(
  `^-----BEGIN ${PRIVATE_KEY_TYPE}PRIVATE KEY-----\\r?\\n[\\s\\S]+\\n-----END ${PRIVATE_KEY_TYPE}PRIVATE KEY-----$`,
);
/** An OpenSSH-format private key (the rest are PEM). */
export const OPENSSH_PRIVATE_KEY_RE = /^-----BEGIN OPENSSH PRIVATE KEY-----/;
/** Any private key's BEGIN line inside a text, of any type (ENCRYPTED, DSA, …). */
const PRIVATE_KEY_SHAPE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * Shapes of secrets: what must never be in instance metadata (the policy pack) or in a plain
 * config value (config.ts). Each message describes the shape, never the text found.
 */
export const SECRET_SHAPES: readonly { label: string; pattern: RegExp }[] = [
  {
    label: "an Anthropic API key or OAuth token (sk-ant-…)",
    pattern: new RegExp(ANTHROPIC_KEY_SHAPE),
  },
  { label: "a private key (-----BEGIN … PRIVATE KEY-----)", pattern: PRIVATE_KEY_SHAPE },
  { label: "an AWS access key ID (AKIA…)", pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { label: "a Google API key (AIza…)", pattern: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/ },
  {
    label: "a Google service account key (JSON with private_key)",
    pattern: /"type"\s*:\s*"service_account"[\s\S]*"private_key"/,
  },
  {
    label: "a GitHub token (ghp_…, github_pat_…)",
    pattern: new RegExp(githubTokenShape(36, 22)),
  },
];

/** The labels of the secret shapes found in `text`. */
export function secretShapesIn(text: string): string[] {
  return SECRET_SHAPES.filter(({ pattern }) => pattern.test(text)).map(({ label }) => label);
}

/**
 * Vertex AI takes only this scope (it has no narrower one); with it the service account's IAM
 * roles alone decide what the VM may do. The stack gives it to the VM with claudeProvider vertex;
 * the policy pack lets it through then, and only then.
 */
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
/**
 * What the agents need to call Claude on Vertex AI: aiplatform.endpoints.predict (invoke a model)
 * and aiplatform.endpoints.computeTokens (count tokens), the two permissions Claude Code's Vertex
 * page lists under this role. The role holds more of Vertex AI than that; a custom role with just
 * those two would be narrower, at the price of iam.roles.create for whoever deploys. The stack
 * grants it with claudeProvider vertex; the policy pack wants it wherever cloud-platform is.
 */
export const VERTEX_ROLE = "roles/aiplatform.user";

/**
 * The range IAP's TCP forwarding connects from (Google's "Using IAP for TCP forwarding": the
 * firewall rule that admits it). connectVia iap admits SSH from it alone.
 */
export const IAP_TCP_FORWARDING_RANGE = "35.235.240.0/20";

/** Where a project's Compute Engine Service Agent (which runs instance schedules) lives. */
const COMPUTE_SERVICE_AGENT_DOMAIN = "compute-system.iam.gserviceaccount.com";
/** The Compute Engine Service Agent of a project: the identity that runs instance schedules. */
export const computeServiceAgent = (projectNumber: string) =>
  `service-${projectNumber}@${COMPUTE_SERVICE_AGENT_DOMAIN}`;
/** A member string that ends in any project's Compute Engine Service Agent. */
export const COMPUTE_SERVICE_AGENT_RE = new RegExp(
  `service-\\d+@${anyOf([COMPUTE_SERVICE_AGENT_DOMAIN])}$`,
);

/** An IPv4 address as a number, with its /prefix when one was written. */
export interface Ipv4 {
  address: number;
  prefix?: number;
}

/** Parses `a.b.c.d` or `a.b.c.d/n`; undefined when it is not IPv4 (octet > 255, prefix > 32). */
export function parseIpv4(text: string): Ipv4 | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefix = match[5] === undefined ? undefined : Number(match[5]);
  if (octets.some((o) => o > 255) || (prefix !== undefined && prefix > 32)) return undefined;
  return { address: octets.reduce((acc, o) => acc * 256 + o, 0), prefix };
}

/** The network address of `address`/`prefix`: the host bits cleared. */
export function ipv4Network(address: number, prefix: number): number {
  const size = 2 ** (32 - prefix);
  return Math.floor(address / size) * size;
}

/** Dotted-quad text of an IPv4 address given as a number. */
export function ipv4Text(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

// The host.conf values the stack writes and the host reads (host/conf/conf.ts checks them on the VM).

/** An exact Claude Code release, as npm publishes it: x.y.z, no leading zeros, no range or tag. */
export const CLAUDE_CODE_VERSION_RE = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;

export const CLAUDE_CODE_SOURCES = ["npm", "native"] as const;

export const DOCKER_SOURCES = ["docker-apt", "distro"] as const;

/**
 * Whose Docker the agents use: `rootless`, one rootless daemon per agent, as that agent (no agent
 * in the docker group); `shared`, the root daemon and the docker group (root-equivalent).
 */
export const DOCKER_MODES = ["rootless", "shared"] as const;
export type DockerMode = (typeof DOCKER_MODES)[number];

/**
 * Claude Code's `--permission-mode` values: what 2.1's `--help` lists (acceptEdits, auto,
 * bypassPermissions, manual, dontAsk, plan) plus `default`, which it still accepts (hidden).
 */
export const PERMISSION_MODES = [
  "default",
  "auto",
  "manual",
  "acceptEdits",
  "plan",
  "dontAsk",
  "bypassPermissions",
] as const;

/**
 * Where the agents' Claude runs: `vertex` (Vertex AI, signed in by the VM's service account: no
 * secret anywhere) or `anthropic` (Anthropic's API with anthropicApiKey, or one `agentctl login`).
 */
export const CLAUDE_PROVIDERS = ["anthropic", "vertex"] as const;

/**
 * The variables Claude Code reads for its provider, gateway and model, each set from a host.conf
 * key of its own (host/agents/claude-env.ts providerEnv).
 */
export const CLAUDE_PROVIDER_ENV = {
  model: "ANTHROPIC_MODEL",
  useVertex: "CLAUDE_CODE_USE_VERTEX",
  vertexProjectId: "ANTHROPIC_VERTEX_PROJECT_ID",
  vertexRegion: "CLOUD_ML_REGION",
  vertexBaseUrl: "ANTHROPIC_VERTEX_BASE_URL",
  anthropicBaseUrl: "ANTHROPIC_BASE_URL",
} as const;
export type ClaudeProviderName = keyof typeof CLAUDE_PROVIDER_ENV;

/**
 * Variables every claude gets from agent-wrapper itself, its own host.conf keys or a secret file:
 * claudeEnv (on the host too) may not set them. host.conf is world-readable, so no
 * credential may come that way either.
 */
export const RESERVED_CLAUDE_ENV: readonly string[] = [
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "PATH",
  "CLAUDE_CONFIG_DIR",
  "DISABLE_AUTOUPDATER",
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_AUTH_TOKEN",
  "CLAUDE_CODE_OAUTH_TOKEN",
  ...Object.values(CLAUDE_PROVIDER_ENV),
  "AGENT_HOST_AGENT",
  "AGENT_HOST_STATE_DIR",
  // Each agent's own Docker (host/docker/rootless.ts agentDockerEnv): one value per agent.
  "DOCKER_HOST",
  "AGENT_PORT_BASE",
  "AGENT_PORT_COUNT",
  "COMPOSE_PROJECT_NAME",
];

/**
 * The first pair of a NAME=value list for every claude's environment that breaks the rule, and
 * why (words to follow the pair), or undefined. The stack (claudeEnv) and the host (host.conf)
 * apply it alike.
 */
export function claudeEnvProblem(
  pairs: readonly string[],
): { pair: string; problem: string } | undefined {
  for (const pair of pairs) {
    const name = pair.split("=")[0];
    if (!pair.includes("=") || !/^[A-Z_][A-Z0-9_]*$/.test(name) || /\s/.test(pair))
      return { pair, problem: "is not NAME=value (NAME in capitals and digits, no blanks)" };
    if (RESERVED_CLAUDE_ENV.includes(name))
      return {
        pair,
        problem: `sets ${name}, which comes from its own setting or from a secret file`,
      };
  }
  return undefined;
}
