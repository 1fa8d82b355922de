"""The official Anthropic SDK against the gateway: messages.create, messages.stream and
messages.count_tokens, each outcome printed as one JSON object for the Rust test.

Usage: python3 anthropic_sdk.py BASE_URL API_KEY MODEL MAX_TOKENS
An error raised by the SDK is recorded as {"error": class name, "status": code, "body": body}.
"""
import json
import sys

import anthropic

base_url, api_key, model, max_tokens = sys.argv[1:5]
client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0,
                             default_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
system = [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}]
messages = [{"role": "user", "content": [
    {"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]}]
out = {}


def call(name, f):
    try:
        out[name] = f()
    except anthropic.APIStatusError as e:
        out[name] = {"error": type(e).__name__, "status": e.status_code, "body": e.body}


def create():
    r = client.messages.create(model=model, max_tokens=int(max_tokens), system=system,
                               messages=messages)
    return {"content": "".join(b.text for b in r.content if b.type == "text"),
            "stop_reason": r.stop_reason, "usage": r.usage.model_dump()}


def stream():
    with client.messages.stream(model=model, max_tokens=int(max_tokens), system=system,
                                messages=messages) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    return {"content": text, "stop_reason": final.stop_reason, "usage": final.usage.model_dump()}


def count():
    r = client.messages.count_tokens(model=model, system=system, messages=messages)
    return {"input_tokens": r.input_tokens}


call("create", create)
call("stream", stream)
call("count", count)
print(json.dumps(out))
