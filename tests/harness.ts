// Runs the Pulumi program under the SDK's mocks and records everything it registers, invokes,
// warns and exports. Unexpected invokes throw. Shared by the stack, leak and policy tests.
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { readFileSync } from "fs";
import { parse as parseYaml } from "yaml";
import { PIN_CHECK_PASS, PIN_CREATE } from "../components/agent-fleet";
import { generateUrn, type Alias } from "./engine/urn";

/** The SDK's marker for a secret value in mocked resource inputs (its own exported constants). */
export const SECRET_SIG = specialSecretSig;
export const SIG_KEY = specialSigKey;

/** Resource options as the SDK sent them to the engine (its RegisterResourceRequest). */
export interface SentOptions {
  ignoreChanges: string[];
  retainOnDelete: boolean;
  importId: string;
  /** undefined: the program left it to the provider (getDeletebeforereplacedefined false). */
  deleteBeforeReplace?: boolean;
  replaceOnChanges: string[];
  protect: boolean;
  /** The URN this resource is deleted with, or "". */
  deletedWith: string;
  /** URNs of every resource this one depends on (dependsOn and inputs). */
  dependencies: string[];
  /** Input property → the URNs its value came from (RegisterResourceRequest.propertyDependencies). */
  propertyDependencies: Record<string, string[]>;
  /** Alias specs as the Node SDK sends them (mapAliasesForRequest), resolved by the engine. */
  aliases: Alias[];
}

export interface RecordedResource {
  type: string;
  name: string;
  /** The URN the engine gives it (tests/engine/urn.ts, generateUrn). */
  urn: string;
  /** The parent's URN, or "" at the top of the stack. */
  parent: string;
  custom: boolean;
  inputs: Record<string, unknown>;
  options: SentOptions;
}

/** A resource as the program constructed it: recorded in its constructor, before any await. */
export interface ConstructedResource {
  type: string;
  name: string;
  custom: boolean;
}

export interface RecordedOutput {
  value: unknown;
  secret: boolean;
}

export interface ProgramRun {
  resources: RecordedResource[];
  outputs: Record<string, RecordedOutput>;
  warnings: string[];
  invokes: string[];
  /** Each invoke's token and arguments (secrets unwrapped by the mocks). */
  invokeArgs: { token: string; inputs: Record<string, unknown> }[];
}

export const BASE_CONFIG: Record<string, string> = {
  "gcp:project": "acme-agents",
  "gcp:zone": "europe-west1-b",
  "agent-host:sshSourceRanges": JSON.stringify(["203.0.113.7/32", "35.235.240.0/20"]),
};

export const MOCK_DEPLOY_PUBLIC_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockDeployKeyMockDeployKeyMockDeployKey0 deploy";
export const MOCK_INSTANCE_ID = "4242424242424242";
export const MOCK_IP = "198.51.100.10";
export const MOCK_PROJECT_NUMBER = "123456789012";
/** The ed25519 host key the mocked VM publishes in its guest attributes (a real key's blob). */
export const MOCK_HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3QtaG9zdC1rZXktb2YtdGhlLW1vY2tlZC12bSEh";
export const MOCK_SUMMARY = '{"desired":10,"added":[],"removed":[],"restarted":[],"running":10}';

export interface RunOptions {
  /** Config keys (full, e.g. agent-host:anthropicApiKey) stored as secrets. */
  secretKeys?: string[];
  /** The data disk the project already has (for the shrink check). */
  existingDisk?: { size: number; type: string };
  /** Private key text the mocked tls.PrivateKey returns. */
  generatedPrivateKey?: string;
  /** Its public half (OpenSSH, one line), from the mocked key and tls.getPublicKey. */
  generatedPublicKey?: string;
  stack?: string;
  /**
   * The VM's guest attributes under hostkeys/ (getInstanceGuestAttributes' queryValues).
   * @default one ssh-ed25519 entry holding MOCK_HOST_KEY
   */
  guestAttributes?: { namespace: string; key: string; value: string }[];
  /** currentStatus getInstance reports for the VM (RUNNING, TERMINATED, …); unset: no VM yet. */
  instanceStatus?: string;
  /**
   * A stateful stand-in for the engine and the cloud (tests/engine/lifecycle.ts): it answers
   * every registration and the invokes it knows; the rest fall through to the mocks below.
   */
  engine?: MockEngine;
  /**
   * The program to run. @default index.ts — the stack itself; another program drives the engine
   * stand-in's own tests, or several hosts.
   */
  program?: () => Promise<Record<string, unknown>>;
}

/** What the lifecycle engine plugs in: registrations and invokes, answered from its state. */
export interface MockEngine {
  newResource(
    args: pulumi.runtime.MockResourceArgs,
    registration: RecordedResource,
  ): { id: string; state: Record<string, unknown> };
  /** undefined: not this engine's invoke. */
  call(token: string, inputs: Record<string, unknown>): Record<string, unknown> | undefined;
}

let state: {
  resources: RecordedResource[];
  constructed: ConstructedResource[];
  invokes: string[];
  invokeArgs: ProgramRun["invokeArgs"];
  options: RunOptions;
} = { resources: [], constructed: [], invokes: [], invokeArgs: [], options: {} };

let mocked = false;

// Every resource the program constructs, recorded in its constructor. The SDK registers
// asynchronously (runtime/resource.ts registerResource awaits the parent, the dependencies and
// every input before its RPC), so a program that throws right after `new X(...)` rejects before
// the mocks see X: only a record taken at construction sees every registration. Resource's
// constructor calls the module's registerResource export synchronously (resource.ts), and that
// export is what is wrapped here; runProgram checks on every run that the two records agree, so
// an SDK that stopped calling through it fails loudly instead of recording nothing.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdkResource = require("@pulumi/pulumi/runtime/resource") as {
  registerResource: (
    res: unknown,
    parent: unknown,
    t: string,
    name: string,
    custom: boolean,
    ...rest: unknown[]
  ) => void;
};
const originalSdkRegister = sdkResource.registerResource;
sdkResource.registerResource = function (res, parent, t, name, custom, ...rest) {
  state.constructed.push({ type: t, name, custom });
  return originalSdkRegister.call(this, res, parent, t, name, custom, ...rest);
};

// waitForRPCs is @internal in the SDK's typings but exported at run time: it resolves once every
// RPC started so far (each registerResource holds one from its first line) has finished.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sdkSettings = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> };

/** How long the registrations a program started may take to reach the mocks. */
const REGISTRATION_DEADLINE_MS = 10_000;

/** Waits until every registration and invoke the program started has been answered. */
async function registrationsSettled(): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const seen = new Set(state.resources.map((r) => `${r.type}::${r.name}`));
      const pending = state.constructed
        .filter((c) => !seen.has(`${c.type}::${c.name}`))
        .map((c) => `${c.type}::${c.name}`);
      reject(
        new Error(
          `registrations still pending after ${REGISTRATION_DEADLINE_MS} ms: ${pending.join(", ") || "(none: another RPC)"}`,
        ),
      );
    }, REGISTRATION_DEADLINE_MS);
  });
  try {
    await Promise.race([sdkSettings.waitForRPCs(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

// The mocks' newResource callback sees neither the parent nor the resource options, but the
// request the SDK sends carries them: the request is read on the way in. The SDK offers no hook
// for this: a subclass of its MockMonitor installed with runtime/settings' setMockOptions loses the
// feature flags setMocks sets (resetOptions clears them, and secrets then arrive unwrapped), so
// the one method is wrapped. MockMonitor.registerResource calls mocks.newResource before its first
// await, so the request being registered is the one in `registering` (checked by type and name).
type RegisterRequest = {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getIgnorechangesList(): string[];
  getRetainondelete(): boolean | undefined;
  getImportid(): string;
  getDeletebeforereplace(): boolean;
  getDeletebeforereplacedefined(): boolean;
  getReplaceonchangesList(): string[];
  getProtect(): boolean | undefined;
  getDeletedwith(): string;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): {
    forEach(callback: (deps: { getUrnsList(): string[] }, key: string) => void): void;
  };
  getAliasesList(): {
    getUrn(): string;
    getSpec():
      | {
          getName(): string;
          getType(): string;
          getStack(): string;
          getProject(): string;
          getParenturn(): string;
          getNoparent(): boolean;
        }
      | undefined;
  }[];
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { MockMonitor } = require("@pulumi/pulumi/runtime/mocks") as {
  MockMonitor: {
    prototype: {
      registerResource(req: RegisterRequest, cb: unknown): Promise<void>;
      newUrn(parent: string, type: string, name: string): string;
    };
  };
};

/** The request being registered, between the wrapper below and the mocks' newResource. */
let registering: Omit<RecordedResource, "inputs"> | undefined;

function aliasesOf(req: RegisterRequest): Alias[] {
  return req.getAliasesList().map((alias) => {
    const spec = alias.getSpec();
    if (!spec) return { urn: alias.getUrn() };
    return {
      name: spec.getName() || undefined,
      type: spec.getType() || undefined,
      stack: spec.getStack() || undefined,
      project: spec.getProject() || undefined,
      parent: spec.getParenturn() || undefined,
      noParent: spec.getNoparent() || undefined,
    };
  });
}

// The mocks' own URNs keep only the parent's last type segment (MockMonitor.newUrn); the engine
// keeps the whole chain. Children build their URNs from the parent's, so they must agree.
MockMonitor.prototype.newUrn = function (parent: string, type: string, name: string) {
  return generateUrn(pulumi.getStack(), pulumi.getProject(), parent, type, name);
};

/** The request's property dependencies, as the engine reads them (key → URNs). */
function propertyDependenciesOf(req: RegisterRequest): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  req.getPropertydependenciesMap().forEach((deps, key) => {
    out[key] = deps.getUrnsList();
  });
  return out;
}

const originalRegister = MockMonitor.prototype.registerResource;
MockMonitor.prototype.registerResource = function (req: RegisterRequest, cb: unknown) {
  const deleteBeforeReplace = req.getDeletebeforereplacedefined()
    ? req.getDeletebeforereplace()
    : undefined;
  registering = {
    type: req.getType(),
    name: req.getName(),
    urn: generateUrn(
      pulumi.getStack(),
      pulumi.getProject(),
      req.getParent(),
      req.getType(),
      req.getName(),
    ),
    parent: req.getParent(),
    custom: req.getCustom(),
    options: {
      ignoreChanges: req.getIgnorechangesList(),
      retainOnDelete: req.getRetainondelete() ?? false,
      importId: req.getImportid() ?? "",
      ...(deleteBeforeReplace === undefined ? {} : { deleteBeforeReplace }),
      replaceOnChanges: req.getReplaceonchangesList(),
      protect: req.getProtect() ?? false,
      deletedWith: req.getDeletedwith(),
      dependencies: req.getDependenciesList(),
      propertyDependencies: propertyDependenciesOf(req),
      aliases: aliasesOf(req),
    },
  };
  try {
    return originalRegister.call(this, req, cb);
  } finally {
    registering = undefined;
  }
};

const deployPublicKey = (): string => state.options.generatedPublicKey ?? MOCK_DEPLOY_PUBLIC_KEY;

function mockState(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  const inputs = args.inputs as Record<string, unknown>;
  switch (args.type) {
    case "tls:index/privateKey:PrivateKey":
      return {
        ...inputs,
        privateKeyOpenssh:
          state.options.generatedPrivateKey ??
          "-----BEGIN OPENSSH PRIVATE KEY-----\nmock\n-----END OPENSSH PRIVATE KEY-----\n",
        publicKeyOpenssh: `${deployPublicKey()}\n`,
      };
    case "gcp:serviceaccount/account:Account":
      return { ...inputs, email: `${inputs.accountId}@${inputs.project}.iam.gserviceaccount.com` };
    case "gcp:compute/address:Address":
      return { ...inputs, address: MOCK_IP };
    case "gcp:compute/disk:Disk":
      return {
        ...inputs,
        selfLink: `projects/${inputs.project}/zones/${inputs.zone}/disks/${inputs.name}`,
      };
    case "gcp:compute/resourcePolicy:ResourcePolicy":
      return {
        ...inputs,
        selfLink: `https://www.googleapis.com/compute/v1/projects/${inputs.project}/regions/${inputs.region}/resourcePolicies/${inputs.name}`,
      };
    case "gcp:projects/iAMCustomRole:IAMCustomRole":
      return { ...inputs, name: `projects/${inputs.project}/roles/${inputs.roleId}` };
    case "gcp:compute/instance:Instance":
      return { ...inputs, instanceId: MOCK_INSTANCE_ID };
    case "command:remote:Command":
      return { ...inputs, stdout: `${MOCK_SUMMARY}\n`, stderr: "" };
    case "command:local:Command": {
      // What each of the stack's local commands prints (the provider trims one "\n"): the pin's
      // `cat` its stdin, the passing check the key in its environment, the IAP reconcile
      // agentctl's summary. (The engine stand-in, tests/engine/lifecycle.ts, runs them.)
      const env = (inputs.environment ?? {}) as Record<string, string>;
      if (inputs.create === PIN_CREATE) {
        return { ...inputs, stdout: String(inputs.stdin ?? "").replace(/\n$/, ""), stderr: "" };
      }
      if (inputs.create === PIN_CHECK_PASS) {
        return { ...inputs, stdout: env.AGENT_HOST_HOST_KEY, stderr: "" };
      }
      return { ...inputs, stdout: `${MOCK_SUMMARY}\n`, stderr: "" };
    }
    default:
      return { ...inputs };
  }
}

function ensureMocks(stack: string): void {
  if (mocked) return;
  pulumi.runtime.setMocks(
    {
      newResource(args) {
        const request = registering;
        if (!request || request.type !== args.type || request.name !== args.name) {
          throw new Error(
            `tests/harness.ts: no request recorded for ${args.type}::${args.name}; the SDK's MockMonitor no longer calls newResource synchronously`,
          );
        }
        const registration: RecordedResource = { ...request, inputs: args.inputs };
        state.resources.push(registration);
        if (state.options.engine) return state.options.engine.newResource(args, registration);
        return { id: `${args.name}-id`, state: mockState(args) };
      },
      call(args) {
        state.invokes.push(args.token);
        state.invokeArgs.push({ token: args.token, inputs: args.inputs });
        const answer = state.options.engine?.call(args.token, args.inputs);
        if (answer !== undefined) return answer;
        if (args.token === "gcp:compute/getDisk:getDisk") {
          const disk = state.options.existingDisk;
          // GCP answers a missing disk with a 404 error, whose text the SDK's mocks drop; an
          // empty result takes the same "no disk yet" branch of index.ts.
          if (!disk) return {};
          return { size: disk.size, type: `projects/p/zones/z/diskTypes/${disk.type}` };
        }
        if (args.token === "gcp:organizations/getProject:getProject") {
          // The project number names the Compute Engine Service Agent (work-hour schedule).
          return { projectId: args.inputs.projectId, number: MOCK_PROJECT_NUMBER };
        }
        if (args.token === "gcp:compute/getInstance:getInstance") {
          // No VM yet: GCP's 404, whose text the mocks drop, like getDisk's above.
          const status = state.options.instanceStatus;
          return status ? { name: args.inputs.name, currentStatus: status } : {};
        }
        if (args.token === "gcp:compute/getInstanceGuestAttributes:getInstanceGuestAttributes") {
          const [type, blob] = MOCK_HOST_KEY.split(" ");
          return {
            queryValues: state.options.guestAttributes ?? [
              { namespace: "hostkeys", key: type, value: blob },
            ],
          };
        }
        if (args.token === "tls:index/getPublicKey:getPublicKey") {
          return { publicKeyOpenssh: `${deployPublicKey()}\n` };
        }
        throw new Error(`unexpected invoke ${args.token}`);
      },
    },
    "agent-host",
    stack,
    false,
  );
  mocked = true;
}

/** Resolves an Output to its value and whether it is secret. */
export function settle(output: unknown): Promise<RecordedOutput> {
  if (!pulumi.Output.isInstance(output)) {
    return Promise.resolve({ value: output, secret: false });
  }
  const out = output as pulumi.Output<unknown> & { isSecret: Promise<boolean> };
  return new Promise((resolve) => {
    out.apply(async (value) => {
      resolve({ value, secret: await out.isSecret });
      return value;
    });
  });
}

async function settleDeep(value: unknown): Promise<RecordedOutput> {
  if (Array.isArray(value)) {
    const items = await Promise.all(value.map(settleDeep));
    return { value: items.map((i) => i.value), secret: items.some((i) => i.secret) };
  }
  return settle(value);
}

/** Evaluates index.ts with this config and returns what it did. */
export async function runProgram(
  config: Record<string, string>,
  options: RunOptions = {},
): Promise<ProgramRun> {
  ensureMocks(options.stack ?? "dev");
  state = { resources: [], constructed: [], invokes: [], invokeArgs: [], options };
  pulumi.runtime.setAllConfig(config, options.secretKeys ?? []);
  const warnings: string[] = [];
  // A plain swap rather than jest.spyOn: the benchmarks (scripts/bench-scale.ts) run the program
  // outside jest. pulumi.log's exports are assignable (what spyOn itself relies on).
  const log = pulumi.log as { warn: typeof pulumi.log.warn };
  const originalWarn = log.warn;
  log.warn = async (message: string) => {
    warnings.push(message);
  };
  try {
    const main =
      options.program ??
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require("../index") as () => Promise<Record<string, unknown>>);
    const exported = await main();
    const outputs: Record<string, RecordedOutput> = {};
    for (const [key, value] of Object.entries(exported)) outputs[key] = await settleDeep(value);
    // Registrations that no output depends on may still be in flight.
    await registrationsSettled();
    const registered = state.resources.map((r) => `${r.type}::${r.name}`).sort();
    const constructed = state.constructed.map((c) => `${c.type}::${c.name}`).sort();
    if (JSON.stringify(registered) !== JSON.stringify(constructed)) {
      throw new Error(
        `tests/harness.ts: the resources constructed and those registered differ:\n  constructed ${constructed.join(" ")}\n  registered  ${registered.join(" ")}`,
      );
    }
    return {
      resources: [...state.resources],
      outputs,
      warnings,
      invokes: [...state.invokes],
      invokeArgs: [...state.invokeArgs],
    };
  } catch (error) {
    // A refused run may leave registrations in flight; let them land in this run's record, not
    // in the next run's. A registration that never lands is reported by the construction record.
    await registrationsSettled().catch(() => undefined);
    throw error;
  } finally {
    log.warn = originalWarn;
  }
}

/**
 * Every resource the last run constructed, including those whose registration had not reached the
 * engine yet when the program threw (bad input): recorded in each constructor, so a resource
 * created just before a refusal is counted.
 */
export function registeredSoFar(): ConstructedResource[] {
  return [...state.constructed];
}

export function byType(run: ProgramRun, type: string): RecordedResource[] {
  return run.resources.filter((r) => r.type === type);
}

export function one(run: ProgramRun, type: string): RecordedResource {
  const found = byType(run, type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0];
}

/** Strips the SDK's secret wrappers: the plain value of mocked inputs. */
export function unwrap(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrap);
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SIG_KEY] === SECRET_SIG) return unwrap(obj.value);
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, unwrap(v)]));
  }
  return value;
}

/** Every string in `value` that is NOT inside a secret wrapper, with its path. */
export function plainStrings(value: unknown, path = "$"): { path: string; text: string }[] {
  if (typeof value === "string") return [{ path, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => plainStrings(v, `${path}[${i}]`));
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (obj[SIG_KEY] === SECRET_SIG) return [];
    return Object.entries(obj).flatMap(([k, v]) => plainStrings(v, `${path}.${k}`));
  }
  return [];
}

/**
 * The config the Pulumi CLI hands the program: the stack's values plus every Pulumi.yaml default
 * for a key the stack does not set (primitives as text, lists and objects as JSON), which the
 * SDK's mocks do not apply themselves.
 */
export function withProjectDefaults(config: Record<string, string>): Record<string, string> {
  const project = parseYaml(readFileSync(`${__dirname}/../Pulumi.yaml`, "utf8"));
  const merged = { ...config };
  for (const [key, declaration] of Object.entries(
    project.config as Record<string, { default?: unknown }>,
  )) {
    const full = `agent-host:${key}`;
    if (merged[full] !== undefined || declaration.default === undefined) continue;
    const value = declaration.default;
    merged[full] = typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  return merged;
}
