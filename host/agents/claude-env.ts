// What agent-N's claude gets from host.conf in its environment, besides what agent-wrapper sets
// itself (its user, home, config folder, credential): the site's pairs (claudeEnv), the provider's
// variables (Vertex AI, a gateway, a model) and its own Docker. `agent-host.js claude-env N`
// prints them as NAME=value lines; the wrapper exports each. Pure but for claudeEnvMain.
import {
  CLAUDE_PROVIDER_ENV as V,
  type ClaudeProviderName,
  type DockerMode,
} from "../../shared-rules";
import { firstErrorOf, loadHostConf, type HostConf, type HostField } from "../conf/conf";
import { agentDockerEnv } from "../docker/rootless";

/** The keys the lines come from: a bad value of one is refused before claude starts. */
export const CLAUDE_ENV_FIELDS: readonly HostField[] = [
  "claudeEnv",
  "claudeModel",
  "claudeProvider",
  "vertexProjectId",
  "vertexRegion",
  "vertexBaseUrl",
  "anthropicBaseUrl",
  "dockerMode",
];

type ProviderConf = Pick<
  HostConf,
  | "claudeEnv"
  | "claudeModel"
  | "claudeProvider"
  | "vertexProjectId"
  | "vertexRegion"
  | "vertexBaseUrl"
  | "anthropicBaseUrl"
>;

/**
 * The site's pairs, then the provider's variables: Vertex AI with its project and region (and an
 * endpoint, if set), or Anthropic's API through a gateway, if set; the model either way, if set.
 * The pairs never set a provider's variable (shared-rules.ts RESERVED_CLAUDE_ENV).
 */
export function providerEnv(conf: ProviderConf): string[] {
  const env = conf.claudeEnv.split(/\s+/).filter(Boolean);
  const set = (name: ClaudeProviderName, value: string) => env.push(`${V[name]}=${value}`);
  if (conf.claudeModel !== "") set("model", conf.claudeModel);
  if (conf.claudeProvider === "vertex") {
    set("useVertex", "1");
    set("vertexProjectId", conf.vertexProjectId);
    set("vertexRegion", conf.vertexRegion);
    if (conf.vertexBaseUrl !== "") set("vertexBaseUrl", conf.vertexBaseUrl);
  } else if (conf.anthropicBaseUrl !== "") set("anthropicBaseUrl", conf.anthropicBaseUrl);
  return env;
}

/** `agent-host.js claude-env N`: the NAME=value lines agent-N's claude gets (agent-wrapper). */
export function claudeEnvMain(argv: readonly string[], env = process.env): number {
  const say = (line: string) => process.stderr.write(`agent-host.js claude-env: ${line}\n`);
  if (argv.length !== 1 || !/^[1-9][0-9]*$/.test(argv[0] ?? "")) {
    process.stderr.write("agent-host.js: usage: claude-env N (the agent's number)\n");
    return 2;
  }
  const conf = loadHostConf(env);
  const error = firstErrorOf(conf, CLAUDE_ENV_FIELDS);
  if (error) return (say(error), 2);
  try {
    const lines = [
      ...agentDockerEnv(Number(argv[0]), conf.dockerMode as DockerMode),
      ...providerEnv(conf),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  } catch (e) {
    return (say((e as Error).message), 2);
  }
  return 0;
}
