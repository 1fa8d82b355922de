// The Vercel AI SDK's default OpenAI provider (the Responses API, `store` on) against the
// gateway: a two-step tool loop (`generateText` with one tool, `stopWhen: stepCountIs(2)`),
// then a second turn that carries the first one's messages back. With `store` on, the SDK
// sends the previous output as `item_reference` items naming the ids the gateway gave them
// (`msg_resp_sy…_0`, `fc_resp_sy…_1`), which the gateway resolves from its response store.
//
// Usage: node tool_loop.mjs BASE_URL API_KEY MODEL
// Prints one JSON line: {"steps": [{"finishReason", "toolCalls", "text"}], "turn2": {"text"},
// "item_references": N (how many `item_reference` items the SDK sent)}; an error prints
// {"error", "status", "body"} and exits 1.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, tool } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
let itemReferences = 0;
// A spy on the SDK's own requests (it still makes them itself): counts the references sent.
const spy = async (url, init) => {
  if (typeof init?.body === "string") {
    const body = JSON.parse(init.body);
    for (const item of body.input ?? []) {
      if (item.type === "item_reference") itemReferences += 1;
    }
  }
  return fetch(url, init);
};
const openai = createOpenAI({ baseURL, apiKey, fetch: spy });

const getWeather = tool({
  description: "The weather in a city",
  inputSchema: jsonSchema({
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
    additionalProperties: false,
  }),
  execute: async ({ city }) => ({ city, forecast: "sunny", celsius: 21 }),
});

try {
  const prompt = [{ role: "user", content: "What is the weather in Paris?" }];
  const first = await generateText({
    model: openai(model),
    messages: prompt,
    tools: { get_weather: getWeather },
    stopWhen: stepCountIs(2),
    maxRetries: 0,
  });
  const second = await generateText({
    model: openai(model),
    messages: [...prompt, ...first.response.messages, { role: "user", content: "Thanks!" }],
    tools: { get_weather: getWeather },
    stopWhen: stepCountIs(1),
    maxRetries: 0,
  });
  console.log(
    JSON.stringify({
      steps: first.steps.map((s) => ({
        finishReason: s.finishReason,
        toolCalls: s.toolCalls.map((c) => c.toolName),
        text: s.text,
      })),
      turn2: { text: second.text },
      item_references: itemReferences,
    }),
  );
} catch (e) {
  console.log(
    JSON.stringify({
      error: String(e?.message ?? e),
      status: e?.statusCode ?? null,
      body: e?.responseBody ?? null,
    }),
  );
  process.exit(1);
}
