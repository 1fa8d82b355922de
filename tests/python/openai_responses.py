"""client.responses.create through the gateway with the official OpenAI SDK, streamed or not,
optionally offering a function tool and sending its output on a second turn.

Usage: python3 openai_responses.py BASE_URL API_KEY MODEL STREAM [TOOLS]
  STREAM: stream or once; TOOLS: tools to offer a weather tool, then answer its call
Prints {"text", "calls": [{"call_id","name","arguments"}], "usage", "status", "events"} per turn
as {"turns": [...]}, or {"error", "status", "body"} when the SDK raises an API error.
"""
import json
import sys

import openai

base_url, api_key, model, stream = sys.argv[1:5]
tools = len(sys.argv) > 5 and sys.argv[5] == "tools"
stream = stream == "stream"
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False},
            "strict": True}]


def call(input_items):
    kwargs = dict(model=model, instructions="Be brief.", input=input_items, max_output_tokens=200)
    if tools:
        kwargs["tools"] = WEATHER
    if not stream:
        r = client.responses.create(**kwargs)
        return summary(r, [])
    events, final = [], None
    for ev in client.responses.create(stream=True, **kwargs):
        events.append(ev.type)
        if ev.type in ("response.completed", "response.incomplete", "response.failed"):
            final = ev.response
    return summary(final, events)


def summary(r, events):
    calls = [{"call_id": o.call_id, "name": o.name, "arguments": o.arguments}
             for o in r.output if o.type == "function_call"]
    return {"id": r.id, "text": r.output_text, "calls": calls, "status": r.status,
            "usage": r.usage.model_dump() if r.usage else None, "events": events}


try:
    first_input = [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}]
    turns = [call(first_input)]
    if tools and turns[0]["calls"]:
        c = turns[0]["calls"][0]
        second = first_input + [
            {"type": "function_call", "call_id": c["call_id"], "name": c["name"], "arguments": c["arguments"]},
            {"type": "function_call_output", "call_id": c["call_id"], "output": "sunny, 21 C"},
        ]
        turns.append(call(second))
    print(json.dumps({"turns": turns}))
except openai.APIStatusError as e:
    print(json.dumps({"error": type(e).__name__, "status": e.status_code, "body": e.body}))
