"""The Responses API's state through the gateway with the official OpenAI SDK: a first turn
that calls a function tool, a second turn that sends only the tool's output with
`previous_response_id`, then `responses.retrieve`, `responses.input_items.list`,
`responses.delete`, and what a deleted id gives afterwards.

Usage: python3 openai_responses_state.py BASE_URL API_KEY MODEL STREAM
  STREAM: stream or once
Prints {"first", "second", "retrieved", "input_items", "deleted", "after_delete",
"follow_up_after_delete"} as JSON; an unexpected API error prints {"error", "status", "body"}.
"""
import json
import sys

import openai

base_url, api_key, model, stream = sys.argv[1:5]
stream = stream == "stream"
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"], "additionalProperties": False},
            "strict": True}]


def create(**kwargs):
    kwargs.update(model=model, tools=WEATHER, max_output_tokens=200)
    if not stream:
        return client.responses.create(**kwargs)
    final = None
    for ev in client.responses.create(stream=True, **kwargs):
        if ev.type in ("response.completed", "response.incomplete", "response.failed"):
            final = ev.response
    return final


def summary(r):
    calls = [{"call_id": o.call_id, "name": o.name, "arguments": o.arguments}
             for o in r.output if o.type == "function_call"]
    return {"id": r.id, "text": r.output_text, "calls": calls, "status": r.status,
            "store": r.store, "previous_response_id": r.previous_response_id}


def status_of(f):
    try:
        f()
        return 200
    except openai.APIStatusError as e:
        return e.status_code


try:
    first = create(instructions="Be brief.", input="Weather in Paris?")
    call = [o for o in first.output if o.type == "function_call"][0]
    second = create(previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    retrieved = client.responses.retrieve(second.id)
    items = client.responses.input_items.list(second.id, order="asc")
    client.responses.delete(first.id)
    out = {
        "first": summary(first),
        "second": summary(second),
        "retrieved": summary(retrieved),
        "input_items": [i.type for i in items.data],
        "input_item_ids": [i.id for i in items.data],
        "deleted": True,
        "after_delete": status_of(lambda: client.responses.retrieve(first.id)),
        "follow_up_after_delete": status_of(
            lambda: create(previous_response_id=first.id, input="and tomorrow?")),
    }
    print(json.dumps(out))
except openai.APIStatusError as e:
    print(json.dumps({"error": type(e).__name__, "status": e.status_code, "body": e.body}))
