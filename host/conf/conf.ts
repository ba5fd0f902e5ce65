// host.conf, the host's one config format, and its one parser: every key once (default, kind,
// rule), read here by the TypeScript host code and, through `agent-host.js conf`, by the bash
// scripts (agentctl, agent-wrapper, apply, data-disk, the installers, first-boot), which no
// longer parse it themselves. The stack writes the file (cloud-init/host-config.ts) with the
// same names and takes its fixed values from here.
//
// Format: KEY=value lines, `#` comments, no quoting, no expansion, trailing blanks dropped; the
// last value of a key wins (host.conf.local is appended after the stack's lines). A value never
// holds a newline, so `KEY=value` lines carry any value to bash intact.
import * as fs from "fs";
import {
  CLAUDE_CODE_SOURCES,
  CLAUDE_CODE_VERSION_RE,
  CLAUDE_PROVIDERS,
  DOCKER_MODES,
  DOCKER_SOURCES,
  PERMISSION_MODES,
  claudeEnvProblem,
} from "../../shared-rules";
import { parseArgs } from "util";

export const DEFAULT_CONFIG = "/etc/agent-host/host.conf";

/** What a rule says about a bad value: the text after "KEY=value in FILE". */
type Rule = (value: string) => string | undefined;

const matches =
  (re: RegExp, problem: string): Rule =>
  (v) =>
    re.test(v) ? undefined : problem;
const oneOf =
  (
    values: readonly string[],
    problem = `is not one of: ${values.join(", ")}; fix the config`,
  ): Rule =>
  (v) =>
    values.includes(v) ? undefined : problem;
const orEmpty =
  (rule: Rule): Rule =>
  (v) =>
    v === "" ? undefined : rule(v);

const count = matches(
  /^[1-9][0-9]{0,5}$/,
  "is not a whole number from 1 to 999999; fix the config",
);
const whole = matches(/^[1-9][0-9]*$/, "is not a whole number; fix the config");
const seconds = matches(/^[0-9]+(\.[0-9]+)?$/, "is not a number of seconds; fix the config");
const positiveSeconds = matches(
  /^(0*[1-9][0-9]*(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*)$/,
  "is not a number of seconds above 0; fix the config",
);
const bool = oneOf(["true", "false"], "is not true or false; fix the config");
const absolutePath = matches(/^\//, "is not an absolute path; fix the config");
const userName = matches(/^[a-z_][a-z0-9_-]{0,31}$/, "is not a plain user name; fix the config");

/** CLAUDE_ENV: space-separated NAME=value pairs, none of them reserved (shared-rules.ts). */
const claudeEnv: Rule = (v) => {
  const bad = claudeEnvProblem(v.split(/\s+/).filter(Boolean));
  return bad && `has '${bad.pair}', which ${bad.problem}; remove or fix it`;
};

type Kind = "text" | "number" | "bool";
interface KeySpec<K extends Kind = Kind> {
  /** The value when the file has none ("" = none). */
  default: string;
  /** How the TypeScript host code sees it (HostConf); bash gets the text. */
  kind: K;
  rule?: Rule;
  /**
   * What apply does when a deploy changes the value (host/apply/bundle.ts): "agents" restarts
   * every agent (agent-wrapper hands the value to claude when it starts it), "docker" runs
   * install-docker again.
   */
  changes?: readonly Change[];
}
type Change = "agents" | "docker";

const text = (def: string, rule?: Rule, changes?: readonly Change[]): KeySpec<"text"> => ({
  default: def,
  kind: "text",
  rule,
  changes,
});
const num = (def: string, rule: Rule): KeySpec<"number"> => ({
  default: def,
  kind: "number",
  rule,
});
const flag = (def: string): KeySpec<"bool"> => ({ default: def, kind: "bool", rule: bool });
/** A key agent-wrapper hands to claude: a change restarts every agent (conversations resume). */
const forClaude = (spec: KeySpec<"text">): KeySpec<"text"> => ({ ...spec, changes: ["agents"] });

/** Every host.conf key, in HOST.md's order. HOST.md documents each; tests/host-conf-keys checks both. */
export const HOST_KEYS = {
  AGENT_COUNT: num("1", count),
  AGENT_MAX: num("24", count),
  // The agents' name prefix: agent N is the Unix user AGENT_USER-N (host/agents/agent-user.ts).
  // A user of exactly this name is the shared user of hosts from before per-agent users: migrated.
  AGENT_USER: text(
    "agent",
    matches(
      /^[a-z_][a-z0-9_-]{0,24}$/,
      "is not a plain user name of at most 25 characters (agent-N is added); fix the config",
    ),
  ),
  // uid = gid = AGENT_UID_BASE + N; the shared user of older hosts had AGENT_UID_BASE itself.
  AGENT_UID_BASE: num(
    "2000",
    matches(/^[1-9][0-9]{3,8}$/, "is not a whole number from 1000 to 999999999; fix the config"),
  ),
  AGENT_HOMES_DIR: text("/data/home", absolutePath),
  ADMIN_USER: text("agent-admin", userName),
  PERMISSION_MODE: forClaude(
    text(
      "default",
      oneOf(
        PERMISSION_MODES,
        `is not a Claude Code permission mode; use one of: ${PERMISSION_MODES.join(" ")}`,
      ),
    ),
  ),
  CLAUDE_PROVIDER: forClaude(
    text("anthropic", oneOf(CLAUDE_PROVIDERS, "is not anthropic or vertex; fix the config")),
  ),
  VERTEX_PROJECT_ID: forClaude(text("")),
  VERTEX_REGION: forClaude(text("")),
  VERTEX_BASE_URL: forClaude(
    text("", orEmpty(matches(/^https?:\/\/\S+$/, "is not an http(s) URL; fix the config"))),
  ),
  CLAUDE_MODEL: forClaude(text("")),
  ANTHROPIC_BASE_URL: forClaude(
    text("", orEmpty(matches(/^https?:\/\/\S+$/, "is not an http(s) URL; fix the config"))),
  ),
  CLAUDE_ENV: forClaude(text("", claudeEnv)),
  // Empty until the stack writes it; install-claude-code refuses to run without one.
  CLAUDE_CODE_VERSION: forClaude(
    text(
      "",
      orEmpty(
        matches(
          CLAUDE_CODE_VERSION_RE,
          "is not an exact release such as 2.1.331; fix claudeCodeVersion in the stack config",
        ),
      ),
    ),
  ),
  CLAUDE_CODE_SOURCE: text("npm", oneOf(CLAUDE_CODE_SOURCES)),
  CLAUDE_BIN: text("/usr/local/bin/claude", absolutePath),
  AGENT_MEMORY_MAX_MB: num("2048", whole),
  AGENT_CPU_QUOTA_PERCENT: num("200", whole),
  AGENTS_MEMORY_MAX_MB: text("", orEmpty(whole)),
  START_STAGGER_SECONDS: num("2", seconds),
  RESTART_BACKOFF_MIN_SECONDS: num("2", seconds),
  RESTART_BACKOFF_MAX_SECONDS: num("60", seconds),
  STOP_TIMEOUT_SECONDS: num("30", seconds),
  SHUTDOWN_STOP_TIMEOUT_SECONDS: num("10", seconds),
  NOTIFY_ON_IDLE: flag("true"),
  NOTIFY_WEBHOOK_FILE: text("/etc/agent-host/secrets/notify-webhook-url", absolutePath),
  // Off unless the stack says otherwise: a host.conf from before auto-stop never stops the VM.
  AUTO_STOP_SECONDS: num("0", seconds),
  AUTO_STOP_COMMAND: text("systemctl poweroff", matches(/\S/, "is empty; fix the config")),
  AUTO_STOP_POLL_SECONDS: num("15", positiveSeconds),
  DASHBOARD_PORT: num("7420", (v) =>
    /^[1-9][0-9]{3,4}$/.test(v) && Number(v) >= 1024 && Number(v) <= 65535
      ? undefined
      : "is not a port from 1024 to 65535; fix dashboardPort in the stack config",
  ),
  DASHBOARD_URL: text(
    "",
    orEmpty(
      matches(
        /^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~/-]*)?$/,
        "is not an http(s) URL without user, query or fragment; fix dashboardUrl in the stack config",
      ),
    ),
  ),
  DASHBOARD_TOKEN_FILE: text("/etc/agent-host/secrets/dashboard-token", absolutePath),
  WORKSPACES_DIR: text("/workspaces", absolutePath),
  // Where the shared user of older hosts kept every agent's state: migrated from, never written.
  STATE_DIR: text("/data/home/agent/.agent-host", absolutePath),
  RUN_DIR: text("/run/agent-host", absolutePath),
  TMUX_SOCKET: text("/run/agent-host/tmux.sock", absolutePath),
  API_KEY_FILE: text("/etc/agent-host/secrets/anthropic-api-key", absolutePath),
  LOGIN_TOKEN_FILE: text("/data/agent-host/claude-login-token", absolutePath),
  DATA_DEVICE: text("/dev/disk/by-id/google-workspaces", absolutePath),
  DATA_MOUNT: text(
    "/data",
    (v) => absolutePath(v) ?? (v === "/" ? "must not be /; fix the config" : undefined),
  ),
  DOCKER_SOURCE: text("docker-apt", oneOf(DOCKER_SOURCES), ["docker"]),
  // The wrapper hands claude DOCKER_HOST (rootless) or none (shared): host/docker/rootless.ts.
  DOCKER_MODE: text("rootless", oneOf(DOCKER_MODES), ["agents", "docker"]),
  DOCKER_KEY_URL: text(
    "https://download.docker.com/linux/ubuntu/gpg",
    matches(/^(https|file):\/\//, "is not an https:// (or a local file://) URL; fix the config"),
  ),
  DOCKER_KEY_FINGERPRINT: text("9DC858229FC7DD38854AE2D88D81803C0EBFCD88", (v) =>
    /^[0-9A-F]{40}$/.test(v.replace(/ /g, "").toUpperCase())
      ? undefined
      : "is not a 40-hex-digit OpenPGP v4 fingerprint; fix the config",
  ),
  DOCKER_APT_URL: text(
    "https://download.docker.com/linux/ubuntu",
    matches(/^https?:\/\/\S+$/, "is not an http(s) URL; fix the config"),
  ),
  GIT_USER_NAME: text(""),
  GIT_USER_EMAIL: text(""),
  GIT_REPOSITORY: text(""),
  GIT_CREDENTIAL_HOST: text(""),
  EXTRA_PACKAGES: text(""),
} satisfies Record<string, KeySpec>;

export type HostKey = keyof typeof HOST_KEYS;
export const HOST_KEY_NAMES = Object.keys(HOST_KEYS) as HostKey[];
const isHostKey = (k: string): k is HostKey => Object.prototype.hasOwnProperty.call(HOST_KEYS, k);

/** AGENT_MAX → agentMax. */
type Camel<S extends string> = S extends `${infer H}_${infer T}`
  ? `${Lowercase<H>}${Capitalize<Camel<T>>}`
  : Lowercase<S>;
type KindType<K extends Kind> = K extends "number" ? number : K extends "bool" ? boolean : string;
type Spec<K extends HostKey> = (typeof HOST_KEYS)[K];

/** host.conf as the TypeScript host code sees it: one typed field per key (AGENT_MAX → agentMax). */
export type HostConf = { [K in HostKey as Camel<K>]: KindType<Spec<K>["kind"]> } & {
  /** The file read. */
  file: string;
  /** The text of each key (defaults filled in), for bash and for checks. */
  raw: Record<HostKey, string>;
  /** Keys whose value breaks its rule: the message, naming key, value, file and fix. */
  errors: Partial<Record<HostKey, string>>;
  /** Lines that are not KEY=value, and unknown keys (ignored). */
  warnings: string[];
};

export const camel = (key: string): string =>
  key.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A typed field of HostConf: what host code names a key by (agentMax for AGENT_MAX). */
export type HostField = Camel<HostKey>;

/**
 * The host.conf key of each field, for what the host says to people (`${KEY.agentMax}=...`):
 * the host code names keys only through this, so a key is renamed here and in its writer.
 */
export const KEY = Object.fromEntries(HOST_KEY_NAMES.map((k) => [camel(k), k])) as {
  [K in HostKey as Camel<K>]: K;
};

/** A field's default, as host.conf writes it. */
export const defaultOf = (field: HostField): string => HOST_KEYS[KEY[field]].default;

/** A field's text as written (defaults filled in, before its rule): `conf.raw` by field. */
export const rawOf = (conf: Pick<HostConf, "raw">, field: HostField): string =>
  conf.raw[KEY[field]];

/** The keys whose change needs `change` when a deploy installs a new host.conf (KeySpec.changes). */
export const keysThatChange = (change: Change): HostKey[] =>
  HOST_KEY_NAMES.filter((k) => (HOST_KEYS[k] as KeySpec).changes?.includes(change));

/**
 * What each bash script reads, under the name it uses: `agent-host.js conf --vars SCRIPT` prints
 * `name=value` for each (checked, defaults filled in). The scripts name no host.conf key, so
 * renaming a key touches this table, not them; a script's variables are its own lowercase
 * globals, set once by its load_config. agentctl's list also covers what the wrappers it starts
 * read (it refuses a bad value before it starts any).
 */
export const SCRIPT_VARS = {
  agentctl: {
    agent_count: "AGENT_COUNT",
    agent_max: "AGENT_MAX",
    agent_user: "AGENT_USER",
    agent_uid_base: "AGENT_UID_BASE",
    agent_homes_dir: "AGENT_HOMES_DIR",
    admin_user: "ADMIN_USER",
    state_dir: "STATE_DIR",
    agent_memory_max_mb: "AGENT_MEMORY_MAX_MB",
    agent_cpu_quota_percent: "AGENT_CPU_QUOTA_PERCENT",
    agents_memory_max_mb: "AGENTS_MEMORY_MAX_MB",
    start_stagger_seconds: "START_STAGGER_SECONDS",
    stop_timeout_seconds: "STOP_TIMEOUT_SECONDS",
    workspaces_dir: "WORKSPACES_DIR",
    run_dir: "RUN_DIR",
    tmux_socket: "TMUX_SOCKET",
    git_repository: "GIT_REPOSITORY",
    claude_bin: "CLAUDE_BIN",
    permission_mode: "PERMISSION_MODE",
    claude_provider: "CLAUDE_PROVIDER",
    api_key_file: "API_KEY_FILE",
    login_token_file: "LOGIN_TOKEN_FILE",
    claude_env: "CLAUDE_ENV",
    docker_mode: "DOCKER_MODE",
  },
  "agent-wrapper": {
    permission_mode: "PERMISSION_MODE",
    claude_bin: "CLAUDE_BIN",
    agent_memory_max_mb: "AGENT_MEMORY_MAX_MB",
    agent_cpu_quota_percent: "AGENT_CPU_QUOTA_PERCENT",
    start_stagger_seconds: "START_STAGGER_SECONDS",
    restart_backoff_min_seconds: "RESTART_BACKOFF_MIN_SECONDS",
    restart_backoff_max_seconds: "RESTART_BACKOFF_MAX_SECONDS",
    stop_timeout_seconds: "STOP_TIMEOUT_SECONDS",
    shutdown_stop_timeout_seconds: "SHUTDOWN_STOP_TIMEOUT_SECONDS",
    run_dir: "RUN_DIR",
    api_key_file: "API_KEY_FILE",
    login_token_file: "LOGIN_TOKEN_FILE",
    claude_provider: "CLAUDE_PROVIDER",
  },
  "data-disk": {
    agent_user: "AGENT_USER",
    workspaces_dir: "WORKSPACES_DIR",
    run_dir: "RUN_DIR",
    data_device: "DATA_DEVICE",
    data_mount: "DATA_MOUNT",
  },
  "install-claude-code": {
    claude_code_version: "CLAUDE_CODE_VERSION",
    claude_code_source: "CLAUDE_CODE_SOURCE",
    claude_bin: "CLAUDE_BIN",
  },
  "install-docker": {
    docker_source: "DOCKER_SOURCE",
    docker_mode: "DOCKER_MODE",
    docker_key_url: "DOCKER_KEY_URL",
    docker_key_fingerprint: "DOCKER_KEY_FINGERPRINT",
    docker_apt_url: "DOCKER_APT_URL",
  },
} as const satisfies Record<string, Record<string, HostKey>>;
export type Script = keyof typeof SCRIPT_VARS;
const isScript = (s: string): s is Script => Object.prototype.hasOwnProperty.call(SCRIPT_VARS, s);

/** The keys a script reads (SCRIPT_VARS), e.g. the ones agentctl refuses a bad value of. */
export const scriptKeys = (script: Script): HostKey[] => Object.values(SCRIPT_VARS[script]);

function typed(spec: KeySpec, value: string): string | number | boolean {
  if (spec.kind === "number") return Number(value);
  if (spec.kind === "bool") return value === "true";
  return value;
}

/** The one parser. A value that breaks its key's rule is reported in `errors` and typed from the default. */
export function parseHostConf(textIn: string, file = DEFAULT_CONFIG): HostConf {
  const raw = Object.fromEntries(HOST_KEY_NAMES.map((k) => [k, HOST_KEYS[k].default])) as Record<
    HostKey,
    string
  >;
  const warnings: string[] = [];
  textIn.split("\n").forEach((line, i) => {
    line = line.replace(/\r$/, "");
    if (/^\s*(#|$)/.test(line)) return;
    const m = /^\s*([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) warnings.push(`${file}:${i + 1}: not KEY=value, ignored`);
    else if (!isHostKey(m[1])) warnings.push(`${file}:${i + 1}: unknown key ${m[1]}, ignored`);
    else raw[m[1]] = m[2].trimEnd();
  });
  const errors: Partial<Record<HostKey, string>> = {};
  const conf: Record<string, unknown> = { file, raw, errors, warnings };
  for (const key of HOST_KEY_NAMES) {
    const spec: KeySpec = HOST_KEYS[key];
    const problem = spec.rule?.(raw[key]);
    if (problem) errors[key] = `${key}=${raw[key]} in ${file} ${problem}`;
    conf[camel(key)] = typed(spec, problem ? spec.default : raw[key]);
  }
  // Across keys: Vertex needs its project and region (reported with CLAUDE_PROVIDER).
  if (raw.CLAUDE_PROVIDER === "vertex" && !(raw.VERTEX_PROJECT_ID && raw.VERTEX_REGION))
    errors.CLAUDE_PROVIDER = `CLAUDE_PROVIDER=vertex in ${file} needs VERTEX_PROJECT_ID and VERTEX_REGION (got '${raw.VERTEX_PROJECT_ID}', '${raw.VERTEX_REGION}'); set both`;
  return conf as HostConf;
}

/** Reads AGENTCTL_CONFIG (tests) or /etc/agent-host/host.conf; a missing file means every default. */
export function loadHostConf(env: NodeJS.ProcessEnv = process.env, file?: string): HostConf {
  const path = file ?? (env.AGENTCTL_CONFIG || DEFAULT_CONFIG);
  let textIn: string | undefined;
  try {
    textIn = fs.readFileSync(path, "utf8");
  } catch {
    textIn = undefined;
  }
  const conf = parseHostConf(textIn ?? "", path);
  if (textIn === undefined) conf.warnings.push(`no config at ${path}; using defaults`);
  return conf;
}

/** The first error among `keys`, if any: callers refuse to act on a key they read that is bad. */
export function firstError(conf: HostConf, keys: readonly HostKey[]): string | undefined {
  return keys.map((k) => conf.errors[k]).find(Boolean);
}

/** firstError by the fields host code reads (e.g. ["dashboardPort", "tmuxSocket"]). */
export const firstErrorOf = (conf: HostConf, fields: readonly HostField[]): string | undefined =>
  firstError(
    conf,
    fields.map((f) => KEY[f]),
  );

/**
 * `agent-host.js conf [--as NAME] [--vars SCRIPT] [--file FILE] [--quiet] [--unchecked] [KEY...]`:
 * how the bash scripts read host.conf. With --vars, prints `name=value` for each of SCRIPT's
 * variables (SCRIPT_VARS; the positionals pick among its names); without, `KEY=value` for each
 * KEY (every key if none). Defaults filled in; warnings go to stderr as `NAME: warning: ...`
 * unless --quiet. Exit 2, printing nothing on stdout, when a requested key breaks its rule: a
 * script never acts on a value it did not check. --unchecked prints the values as written.
 */
export function confMain(argv: string[], env: NodeJS.ProcessEnv = process.env): number {
  const options = {
    as: { type: "string" },
    vars: { type: "string" },
    file: { type: "string" },
    quiet: { type: "boolean" },
    unchecked: { type: "boolean" },
  } as const;
  const { values, tokens } = parseArgs({
    args: argv,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const as = typeof values.as === "string" ? values.as : "agent-host";
  const file = typeof values.file === "string" ? values.file : undefined;
  const quiet = values.quiet === true;
  const checked = values.unchecked !== true;
  const script = typeof values.vars === "string" ? values.vars : undefined;
  const names: string[] = [];
  const say = (line: string) => process.stderr.write(`${as}: ${line}\n`);
  if (script !== undefined && !isScript(script))
    return (say(`conf: --vars '${script}' is not a script that reads host.conf`), 2);
  const vars: Readonly<Record<string, HostKey>> =
    script === undefined
      ? Object.fromEntries(HOST_KEY_NAMES.map((k) => [k, k]))
      : SCRIPT_VARS[script];
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    const word = token.kind === "positional" ? token.value : token.rawName;
    if (token.kind === "option" && token.name in options) {
      const needsValue = options[token.name as keyof typeof options].type === "string";
      if (needsValue && token.value === undefined) return (say(`conf: ${word} needs a value`), 2);
      if (!needsValue && token.value !== undefined) {
        return (say(`conf: ${word} takes no value`), 2);
      }
    } else if (Object.prototype.hasOwnProperty.call(vars, word)) names.push(word);
    else if (script !== undefined) return (say(`conf: '${word}' is not one of ${script}'s`), 2);
    else return (say(`conf: '${word}' is not a host.conf key (see HOST.md)`), 2);
  }
  const conf = loadHostConf(env, file);
  if (!quiet) for (const w of conf.warnings) say(`warning: ${w}`);
  const wanted = names.length > 0 ? names : Object.keys(vars);
  const error =
    checked &&
    firstError(
      conf,
      wanted.map((n) => vars[n]),
    );
  if (error) return (say(error), 2);
  process.stdout.write(wanted.map((n) => `${n}=${conf.raw[vars[n]]}\n`).join(""));
  return 0;
}
