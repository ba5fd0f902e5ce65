// The Messages-API stand-in's own rules (tests/fixtures/messages-api.ts), each shown failing a
// request the real API refuses: an unanswered tool_use, a stray tool_result, an unknown model;
// and verify() failing a test that left a scripted reply unused.
import {
  CLAUDE_CODE_MODELS,
  startMessagesApi,
  toolPairingError,
  type MessagesApi,
} from "./fixtures/messages-api";

const KEY = "sk-ant-api03-messages-api-test";

function system(cwd: string) {
  return [
    {
      type: "text",
      text: `# Environment\n - Primary working directory: ${cwd}\n - Is a git repository: false\n`,
    },
  ];
}

async function post(api: MessagesApi, body: Record<string, unknown>) {
  const res = await fetch(`${api.url}/v1/messages`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "anthropic-version": "2023-06-01",
      "x-api-key": KEY,
    },
    body: JSON.stringify({
      model: CLAUDE_CODE_MODELS[0],
      max_tokens: 100,
      tools: [{ name: "Bash" }],
      ...body,
    }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const useThenResult = [
  { role: "user", content: [{ type: "text", text: "run it" }] },
  { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "Bash", input: {} }] },
  { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "ok" }] },
];

describe("messages-api stand-in", () => {
  let api: MessagesApi;
  beforeEach(async () => {
    api = await startMessagesApi();
  });
  afterEach(async () => {
    await api.close();
  });

  it("answers a conversation whose tool uses are all answered", async () => {
    api.reply({ text: "done" });
    const r = await post(api, { messages: useThenResult });
    expect(r.status).toBe(200);
    expect(r.body.content).toEqual([{ type: "text", text: "done" }]);
    expect(() => api.verify()).not.toThrow();
  });

  it("refuses a tool_use with no tool_result in the next message, as the API does (400)", async () => {
    const r = await post(api, {
      messages: [
        ...useThenResult.slice(0, 2),
        { role: "user", content: [{ type: "text", text: "never mind" }] },
      ],
    });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      type: "error",
      error: {
        type: "invalid_request_error",
        message:
          "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
      },
      request_id: expect.stringMatching(/^req_/),
    });
    // The test that caused it fails at its end, even if the client swallowed the 400.
    expect(() => api.verify()).toThrow(/request refused: 400 messages\.1: `tool_use` ids/);
    expect(() => api.verify()).not.toThrow();
  });

  it("refuses a tool_result that answers no tool_use of the message before", async () => {
    const r = await post(api, {
      messages: [
        useThenResult[0],
        { role: "assistant", content: [{ type: "text", text: "hm" }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_9", content: "x" }] },
      ],
    });
    expect(r.status).toBe(400);
    expect((r.body.error as { message: string }).message).toBe(
      "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
    );
    api.violations.splice(0);
  });

  it("the pairing rule, case by case", () => {
    expect(toolPairingError(useThenResult)).toBeUndefined();
    // Two uses, one answered.
    expect(
      toolPairingError([
        {
          role: "assistant",
          content: [
            { type: "tool_use", id: "a" },
            { type: "tool_use", id: "b" },
          ],
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "b" }] },
      ]),
    ).toMatch(/^messages\.0: .* immediately after: a\. /);
    // The last message may not be an unanswered tool use either.
    expect(toolPairingError(useThenResult.slice(0, 2))).toMatch(/^messages\.1: /);
  });

  it("refuses a model Claude Code 2.1.331 does not send here, as the API does (404)", async () => {
    const r = await post(api, { model: "claude-made-up-9", messages: useThenResult.slice(0, 1) });
    expect(r.status).toBe(404);
    expect(r.body.error).toEqual({ type: "not_found_error", message: "model: claude-made-up-9" });
    for (const model of CLAUDE_CODE_MODELS) {
      expect((await post(api, { model, messages: useThenResult.slice(0, 1) })).status).toBe(200);
    }
    expect(() => api.verify()).toThrow("request refused: 404 model: claude-made-up-9");
  });

  it("serves a model a suite configures", async () => {
    const own = await startMessagesApi({ models: ["claude-sonnet-4-5-20250929"] });
    try {
      const r = await post(own, {
        model: "claude-sonnet-4-5-20250929",
        messages: useThenResult.slice(0, 1),
      });
      expect(r.status).toBe(200);
    } finally {
      await own.close();
    }
  });

  it("verify() fails a test that left a scripted reply unused, and empties the queue", async () => {
    api.reply({ text: "used" });
    api.reply({ text: "never asked for" });
    expect((await post(api, { messages: useThenResult.slice(0, 1) })).status).toBe(200);
    expect(() => api.verify()).toThrow(
      'scripted reply never requested: {"text":"never asked for"}',
    );
    // The next test starts clean: its request gets the default text, not the leftover.
    const r = await post(api, { messages: useThenResult.slice(0, 1) });
    expect(r.body.content).toEqual([{ type: "text", text: api.defaultText }]);
    expect(() => api.verify()).not.toThrow();
  });

  it("a reply with a cwd goes only to that working directory's conversation", async () => {
    api.reply({ text: "for agent-2", cwd: "/w/agent-2" });
    api.reply({ text: "for anyone" });
    const one = await post(api, {
      system: system("/w/agent-1"),
      messages: useThenResult.slice(0, 1),
    });
    expect(one.body.content).toEqual([{ type: "text", text: "for anyone" }]);
    const two = await post(api, {
      system: system("/w/agent-2"),
      messages: useThenResult.slice(0, 1),
    });
    expect(two.body.content).toEqual([{ type: "text", text: "for agent-2" }]);
    expect(() => api.verify()).not.toThrow();
  });

  it("finds the working directory in a system message too (an interactive session's place)", async () => {
    api.reply({ text: "for agent-3", cwd: "/w/agent-3" });
    const env = { role: "system", content: system("/w/agent-3") };
    const r = await post(api, { messages: [useThenResult[0], env] });
    expect(r.body.content).toEqual([{ type: "text", text: "for agent-3" }]);
    expect(() => api.verify()).not.toThrow();
  });
});
