// The Pulumi CLI's configuration rules, ported from pulumi/pulumi (snapshot 1b5949891b, 2026-08-21)
// so tests can apply them to Pulumi.yaml and every Pulumi.<stack>.yaml without the CLI. The SDK's
// mocks apply none of them. Pure: no Pulumi import, no I/O; messages are the CLI's own text.
//
// Where each rule lives upstream:
// - loading Pulumi.yaml: sdk/go/common/workspace/loaders.go `LoadProjectBytes` → project.go
//   `ValidateProject` (the JSON schema project.json, `configTypeDeclaration`),
//   `RewriteShorthandConfigValues`, then `(*Project).Validate`;
// - loading Pulumi.<stack>.yaml: loaders.go `LoadProjectStackBytes`
//   (`stackConfigNamespacedWithProject`: a bare key belongs to the project; `checkForEmptyConfig`),
//   sdk/go/common/resource/config/key.go `ParseKey`, object.go `unmarshalObject`/`MarshalString`;
// - `up`, `preview`, `refresh`, `destroy`: pkg/workspace/config.go
//   `ValidateStackConfigAndApplyProjectConfig` → `mergeConfig(validate=true)` →
//   `missingStackConfigurationKeysError`, `validateStackConfigValues` → `validateStackConfigValue`,
//   with project.go `ValidateConfigValue` and `InferFullTypeName`; the caller wraps the error as
//   "validating stack config: …" (pkg/cmd/pulumi/operations/up.go, preview.go);
// - `config get` / `config` (list): `ApplyProjectConfig` = `mergeConfig(validate=false)`: defaults
//   are applied, nothing is refused (pkg/cmd/pulumi/config/config.go, since ea609d546f, 2022).
//
// Not ported: ESC environments (this stack uses none), property paths in project keys (`a.b`,
// this project declares none: refused here rather than guessed).

/** An error the real CLI reports, with its text. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}

export interface ItemsType {
  type: string;
  items?: ItemsType;
}

export interface ProjectConfigType {
  type?: string;
  description?: string;
  items?: ItemsType;
  default?: unknown;
  value?: unknown;
  secret?: boolean;
}

export interface Project {
  name: string;
  config: Record<string, ProjectConfigType>;
}

/** A stack config value as config.Value holds it: text, plus whether it is a secret or JSON. */
export interface StackValue {
  text: string;
  secure: boolean;
  object: boolean;
}

/** Stack config keyed `<namespace>:<name>`. */
export type StackConfig = Map<string, StackValue>;

// project.json `$defs.simpleConfigType`.
const SIMPLE_CONFIG_TYPES = ["string", "integer", "boolean", "array", "object"];
// project.json `$defs.configTypeDeclaration` has additionalProperties: false.
const DECLARATION_ATTRIBUTES = ["type", "items", "description", "secret", "default", "value"];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Go's yaml decodes a whole number as int and any other number as float64. */
function isGoInt(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value);
}

/** project.go `isPrimitiveValue`: string, int, bool (a float64 is not one). */
function isPrimitive(value: unknown): boolean {
  return typeof value === "string" || typeof value === "boolean" || isGoInt(value);
}

/**
 * project.json: `config` maps each key to a string, integer, boolean, array or a
 * configTypeDeclaration (`oneOf`), and an items type needs `type` (plus `items` for an array).
 * The upstream message comes from the jsonschema library; this port keeps its location
 * (`#/config/<key>`) and reason, not its exact wording.
 */
function checkSchema(config: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const checkItems = (where: string, items: unknown): void => {
    if (!isPlainObject(items) || items.type === undefined) {
      problems.push(`${where}: missing properties: 'type'`);
      return;
    }
    if (isPlainObject(items.type)) {
      checkItems(`${where}/type`, items.type);
    } else if (!SIMPLE_CONFIG_TYPES.includes(String(items.type))) {
      problems.push(`${where}/type: value must be one of ${SIMPLE_CONFIG_TYPES.join(", ")}`);
    }
    if (items.type === "array" && items.items === undefined) {
      problems.push(`${where}: missing properties: 'items'`);
    }
    if (items.items !== undefined) checkItems(`${where}/items`, items.items);
  };
  for (const [key, declaration] of Object.entries(config)) {
    const where = `#/config/${key}`;
    if (declaration === null || isPrimitive(declaration) || Array.isArray(declaration)) continue;
    if (!isPlainObject(declaration)) {
      problems.push(`${where}: oneOf failed, none matched`);
      continue;
    }
    for (const attribute of Object.keys(declaration)) {
      if (!DECLARATION_ATTRIBUTES.includes(attribute)) {
        problems.push(`${where}: additionalProperties '${attribute}' not allowed`);
      }
    }
    if (declaration.type !== undefined && !SIMPLE_CONFIG_TYPES.includes(String(declaration.type))) {
      problems.push(`${where}/type: value must be one of ${SIMPLE_CONFIG_TYPES.join(", ")}`);
    }
    if (declaration.items !== undefined) checkItems(`${where}/items`, declaration.items);
    if (declaration.description !== undefined && typeof declaration.description !== "string") {
      problems.push(`${where}/description: expected string`);
    }
    if (declaration.secret !== undefined && typeof declaration.secret !== "boolean") {
      problems.push(`${where}/secret: expected boolean`);
    }
  }
  return problems;
}

/** project.go `configKeyIsNamespacedByProject`. */
export function configKeyIsNamespacedByProject(projectName: string, configKey: string): boolean {
  return !configKey.includes(":") || configKey.startsWith(`${projectName}:`);
}

/** project.go `InferFullTypeName`. */
export function inferFullTypeName(typeName: string, items?: ItemsType): string {
  if (items !== undefined) return `array<${inferFullTypeName(items.type, items.items)}>`;
  return typeName;
}

/** project.go `ValidateConfigValue`: a value (decoded from YAML or JSON) against a declared type. */
export function validateConfigValue(
  typeName: string,
  items: ItemsType | undefined,
  value: unknown,
): boolean {
  if (typeName === "string") return typeof value === "string";
  if (typeName === "integer") {
    if (typeof value === "number") return Number.isInteger(value);
    // strconv.Atoi: optional sign, decimal digits, nothing else.
    if (typeof value === "string") return /^[+-]?\d+$/.test(value);
    return false;
  }
  if (typeName === "boolean") {
    return value === "true" || value === "false" || typeof value === "boolean";
  }
  if (typeName === "object") return isPlainObject(value);
  if (!Array.isArray(value) || items === undefined) return false;
  return value.every((item) => validateConfigValue(items.type, items.items, item));
}

/**
 * loaders.go `LoadProjectBytes`: the schema, the shorthand rewrite, then `(*Project).Validate`.
 * `raw` is the parsed YAML document; `path` is only used in messages, as upstream does.
 */
export function loadProject(raw: unknown, path = "Pulumi.yaml"): Project {
  if (!isPlainObject(raw))
    throw new CliError(`could not validate '${path}': expected project to be an object`);
  // project.go `ValidateProject`
  if (typeof raw.name !== "string" || raw.name === "") {
    throw new CliError(
      `could not validate '${path}': project is missing a non-empty string 'name' attribute`,
    );
  }
  const name = raw.name;
  const rawConfig = raw.config ?? {};
  if (!isPlainObject(rawConfig)) {
    throw new CliError(`could not validate '${path}': #/config: expected object`);
  }
  const schemaProblems = checkSchema(rawConfig);
  if (schemaProblems.length > 0) {
    throw new CliError(`could not validate '${path}': ${schemaProblems.join("; ")}`);
  }
  // project.go `RewriteShorthandConfigValues`: `key: 3` is a default for a project key and a
  // value for another namespace's key.
  const config: Record<string, ProjectConfigType> = {};
  for (const [key, declaration] of Object.entries(rawConfig)) {
    if (isPrimitive(declaration) || Array.isArray(declaration)) {
      config[key] = configKeyIsNamespacedByProject(name, key)
        ? { default: declaration }
        : { value: declaration };
    } else {
      config[key] = (declaration ?? {}) as ProjectConfigType;
    }
  }
  // project.go `(*Project).Validate`
  const fail = (message: string): never => {
    throw new CliError(`could not unmarshal '${path}': ${message}`);
  };
  for (const [key, type] of Object.entries(config)) {
    const hasDefault = type.default !== undefined && type.default !== null;
    const hasValue = type.value !== undefined && type.value !== null;
    if (hasDefault && hasValue) {
      fail(`project config '${key}' cannot have both a 'default' and 'value' attribute`);
    }
    if (configKeyIsNamespacedByProject(name, key)) {
      if (type.type === "array" && type.items === undefined) {
        fail(
          `The configuration key '${key}' declares an array but does not specify the underlying type via the 'items' attribute`,
        );
      }
      if (
        type.type !== undefined &&
        hasDefault &&
        !validateConfigValue(type.type, type.items, type.default)
      ) {
        fail(
          `The default value specified for configuration key '${key}' is not of the expected type '${inferFullTypeName(type.type, type.items)}'`,
        );
      }
    } else {
      if (type.type !== undefined) {
        fail(
          `Configuration key '${key}' is not namespaced by the project and should not define a type`,
        );
      }
      if (hasDefault) {
        fail(
          `Configuration key '${key}' is not namespaced by the project and should not define a default value. Did you mean to use the 'value' attribute instead of 'default'?`,
        );
      }
      if (!hasValue)
        fail(`Configuration key '${key}' is namespaced and must provide an attribute 'value'`);
    }
  }
  return { name, config };
}

/** key.go `ParseKey`: `<namespace>:<name>`, or the old `<namespace>:config:<name>`. */
export function parseKey(text: string): string {
  const parts = text.split(":");
  if (parts.length === 2) return text;
  if (parts.length === 3 && parts[1] === "config" && parts[0] !== "" && parts[2] !== "") {
    return `${parts[0]}:${parts[2]}`;
  }
  throw new CliError(
    `could not parse ${text} as a configuration key (configuration keys should be of the form \`<namespace>:<name>\`)`,
  );
}

/** object.go `isSecureValue`: a map whose only key is `secure`, holding a string. */
function isSecureValue(value: unknown): boolean {
  return (
    isPlainObject(value) && Object.keys(value).length === 1 && typeof value.secure === "string"
  );
}

function containsSecure(value: unknown): boolean {
  if (isSecureValue(value)) return true;
  if (Array.isArray(value)) return value.some(containsSecure);
  if (isPlainObject(value)) return Object.values(value).some(containsSecure);
  return false;
}

/** object.go `unmarshalObject` then `MarshalString`: how a YAML value becomes a config.Value. */
export function stackValueOf(value: unknown): StackValue {
  if (typeof value === "string") return { text: value, secure: false, object: false };
  if (typeof value === "boolean" || typeof value === "number") {
    return { text: JSON.stringify(value), secure: false, object: false };
  }
  if (isSecureValue(value)) {
    return { text: (value as { secure: string }).secure, secure: true, object: false };
  }
  return { text: JSON.stringify(value), secure: containsSecure(value), object: true };
}

export interface LoadedStack {
  config: StackConfig;
  /** `checkForEmptyConfig`'s warning, when a key has no value. */
  warnings: string[];
}

/** loaders.go `LoadProjectStackBytes`: bare keys join the project's namespace. */
export function loadProjectStack(project: Project, raw: unknown): LoadedStack {
  const config: StackConfig = new Map();
  const warnings: string[] = [];
  if (raw === null || raw === undefined) return { config, warnings };
  if (!isPlainObject(raw))
    throw new CliError(`expected project to be an object, was '${typeof raw}'`);
  const rawConfig = raw.config ?? {};
  if (!isPlainObject(rawConfig)) return { config, warnings };
  const empty: string[] = [];
  for (const [key, value] of Object.entries(rawConfig)) {
    // `stackConfigNamespacedWithProject`
    const namespaced = key.includes(":") ? key : `${project.name}:${key}`;
    if (value === null) {
      empty.push(`"${key}"`);
    }
    config.set(parseKey(namespaced), value === null ? stackValueOf("") : stackValueOf(value));
  }
  if (empty.length > 0) {
    const plural = empty.length > 1 ? "s" : "";
    const list = empty.length === 2 ? empty.join(" and ") : empty.join(", ");
    warnings.push(
      `No value for configuration key${plural} ${list}. This is currently treated as an empty string \`""\`, but will be treated as \`null\` in a future version of pulumi.\nSet the value${plural} to \`""\` to avoid this warning.`,
    );
  }
  return { config, warnings };
}

/** config.go `parseConfigKey`: a project key with no namespace belongs to the project. */
export function parseConfigKey(projectName: string, key: string): string {
  if (key.includes(":")) return parseKey(key);
  if (/[.[]/.test(key)) {
    throw new CliError(`property paths in project keys are not ported (${key})`);
  }
  return `${projectName}:${key}`;
}

/** config.go `formatMissingKeys`. */
function formatMissingKeys(keys: string[]): string {
  if (keys.length === 1) return `'${keys[0]}'`;
  const sorted = [...keys].sort();
  return sorted
    .map((key, index) =>
      index === sorted.length - 1
        ? `and '${key}'`
        : index === sorted.length - 2
          ? `'${key}' `
          : `'${key}', `,
    )
    .join("");
}

/** config.go `createConfigValue`: how a project default (or value) enters the stack config. */
function createConfigValue(raw: unknown): StackValue {
  if (isPrimitive(raw)) return { text: String(raw), secure: false, object: false };
  return { text: JSON.stringify(raw), secure: false, object: true };
}

/** Decrypts a secure value's ciphertext; undefined when no passphrase is available. */
export type Decrypter = (ciphertext: string) => string;

/** config.go `validateStackConfigValue`. */
function validateStackConfigValue(
  stackName: string,
  key: string,
  type: ProjectConfigType,
  value: StackValue,
  decrypt?: Decrypter,
): void {
  if (type.secret && !value.secure) {
    throw new CliError(
      `Stack '${stackName}' with configuration key '${key}' must be encrypted as it's secret`,
    );
  }
  const typeName = type.type as string;
  let plain: string;
  if (value.secure && !value.object && typeName === "string" && decrypt === undefined) {
    // Whatever the passphrase decrypts, a scalar secret's plaintext is a string.
    return;
  } else if (value.secure) {
    if (decrypt === undefined) {
      throw new CliError(`cannot check '${key}' without the stack's passphrase (not ported)`);
    }
    plain = value.object ? value.text : decrypt(value.text);
  } else {
    plain = value.text;
  }
  const content: unknown = value.object ? JSON.parse(plain) : plain;
  if (!validateConfigValue(typeName, type.items, content)) {
    throw new CliError(
      `Stack '${stackName}' with configuration key '${key}' must be of type '${inferFullTypeName(typeName, type.items)}'`,
    );
  }
}

/**
 * config.go `mergeConfig`: applies Pulumi.yaml's defaults and values to the keys the stack leaves
 * unset. With `validate` (up, preview, refresh, destroy) a project key with neither a stack value
 * nor a default is missing, and every explicitly typed key's merged value is type-checked; the
 * first problem stops the command. Returns the merged config (the stack's is not modified).
 */
export function mergeConfig(
  stackName: string,
  project: Project,
  stack: StackConfig,
  validate: boolean,
  decrypt?: Decrypter,
): StackConfig {
  const merged: StackConfig = new Map(stack);
  const missing: string[] = [];
  const keys = Object.keys(project.config).sort();
  for (const projectKey of keys) {
    const type = project.config[projectKey];
    const key = parseConfigKey(project.name, projectKey);
    const found = merged.has(key);
    const hasDefault = type.default !== undefined && type.default !== null;
    const hasValue = type.value !== undefined && type.value !== null;
    if (!found && !hasValue && !hasDefault && key.split(":")[0] === project.name) {
      missing.push(projectKey);
      continue;
    }
    if (!found && (hasValue || hasDefault)) {
      merged.set(key, createConfigValue(hasDefault ? type.default : type.value));
    }
  }
  if (validate && missing.length > 0) {
    throw new CliError(
      `Stack '${stackName}' is missing configuration value${missing.length > 1 ? "s" : ""} ${formatMissingKeys(missing)}`,
    );
  }
  if (validate) {
    // `validateStackConfigValues`: a key not found reads as config.Value{} (empty text).
    for (const projectKey of keys) {
      const type = project.config[projectKey];
      const key = parseConfigKey(project.name, projectKey);
      const value = merged.get(key) ?? { text: "", secure: false, object: false };
      if (type.type !== undefined)
        validateStackConfigValue(stackName, projectKey, type, value, decrypt);
    }
  }
  return merged;
}

/**
 * What `pulumi up` / `preview` hand the program, or the error they stop with
 * (`ValidateStackConfigAndApplyProjectConfig`, wrapped by operations/up.go).
 */
export function configForUp(
  stackName: string,
  project: Project,
  stack: StackConfig,
  decrypt?: Decrypter,
): StackConfig {
  try {
    return mergeConfig(stackName, project, stack, true, decrypt);
  } catch (error) {
    if (error instanceof CliError) throw new CliError(`validating stack config: ${error.message}`);
    throw error;
  }
}

/**
 * Keys in the project's namespace that Pulumi.yaml does not declare. The CLI accepts them: the
 * check ("Stack 'dev' uses configuration value 'x' which is not defined by the project
 * configuration", commit 9a9a39bbf9) was removed by 88558b271b ("relaxed stack config
 * validation", 2022) and pkg/workspace/config.go has none. This program refuses them itself
 * (config.ts `parseConfig`: "… is not a configuration key of this stack (a typo?)").
 */
export function undeclaredProjectKeys(project: Project, stack: StackConfig): string[] {
  const declared = new Set(
    Object.keys(project.config).map((key) => parseConfigKey(project.name, key)),
  );
  return [...stack.keys()]
    .filter((key) => key.startsWith(`${project.name}:`) && !declared.has(key))
    .sort();
}

/** The config as the program reads it: `<namespace>:<name>` → text (JSON for lists). */
export function asRawConfig(config: StackConfig): Record<string, string> {
  return Object.fromEntries([...config].map(([key, value]) => [key, value.text]));
}
