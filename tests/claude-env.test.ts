// What agent-N's claude gets from host.conf (host/agents/claude-env.ts), as agent-wrapper exports
// it: the site's pairs, then the provider's variables under Claude Code's names.
import { CLAUDE_ENV_FIELDS, providerEnv } from "../host/agents/claude-env";
import { HOST_KEYS, KEY, parseHostConf } from "../host/conf/conf";
import { RESERVED_CLAUDE_ENV, claudeEnvProblem } from "../shared-rules";

const env = (text: string) => providerEnv(parseHostConf(text, "/f"));

test("Anthropic's API: the site's pairs, the model, the gateway; nothing of Vertex", () => {
  expect(
    env(
      [
        "CLAUDE_ENV=HTTPS_PROXY=http://p:3128  NO_PROXY=localhost",
        "CLAUDE_MODEL=claude-x",
        "ANTHROPIC_BASE_URL=https://gateway.example.test",
        "VERTEX_PROJECT_ID=ignored",
      ].join("\n"),
    ),
  ).toEqual([
    "HTTPS_PROXY=http://p:3128",
    "NO_PROXY=localhost",
    "ANTHROPIC_MODEL=claude-x",
    "ANTHROPIC_BASE_URL=https://gateway.example.test",
  ]);
});

test("Vertex AI: its switch, project, region and endpoint; no Anthropic gateway", () => {
  expect(
    env(
      [
        "CLAUDE_PROVIDER=vertex",
        "VERTEX_PROJECT_ID=p",
        "VERTEX_REGION=global",
        "VERTEX_BASE_URL=https://vertex.example.test/v1",
        "ANTHROPIC_BASE_URL=https://gateway.example.test",
      ].join("\n"),
    ),
  ).toEqual([
    "CLAUDE_CODE_USE_VERTEX=1",
    "ANTHROPIC_VERTEX_PROJECT_ID=p",
    "CLOUD_ML_REGION=global",
    "ANTHROPIC_VERTEX_BASE_URL=https://vertex.example.test/v1",
  ]);
});

test("the defaults give claude nothing from host.conf", () => {
  expect(env("")).toEqual([]);
});

test("no site pair can set a provider's variable: each is reserved", () => {
  for (const line of env(
    "CLAUDE_PROVIDER=vertex\nVERTEX_PROJECT_ID=p\nVERTEX_REGION=r\nVERTEX_BASE_URL=https://v\nCLAUDE_MODEL=m",
  ).concat(env("ANTHROPIC_BASE_URL=https://g"))) {
    expect(RESERVED_CLAUDE_ENV).toContain(line.split("=")[0]);
    expect(claudeEnvProblem([line])?.problem).toMatch(/comes from its own setting/);
  }
});

test("claude-env refuses a bad value of every key it reads from", () => {
  expect(CLAUDE_ENV_FIELDS.map((f) => KEY[f]).filter((k) => !(k in HOST_KEYS))).toEqual([]);
  expect(CLAUDE_ENV_FIELDS.map((f) => KEY[f]).sort()).toEqual(
    [
      "CLAUDE_ENV",
      "CLAUDE_MODEL",
      "CLAUDE_PROVIDER",
      "VERTEX_PROJECT_ID",
      "VERTEX_REGION",
      "VERTEX_BASE_URL",
      "ANTHROPIC_BASE_URL",
      "DOCKER_MODE",
    ].sort(),
  );
});
