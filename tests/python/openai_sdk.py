"""The official OpenAI Python SDK against Switchyard, changing nothing but base_url and api_key.

Usage: python3 openai_sdk.py BASE_URL API_KEY MODEL
Prints one line per check; exits non-zero on the first failure.
"""
import sys

import openai

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

# Non-streaming, with the seed's model_params passed through extra_body.
resp = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "How are you?"}],
    extra_body={"model_params": {"temperature": 1}},
)
assert resp.object == "chat.completion", resp
assert resp.choices[0].message.role == "assistant", resp
assert resp.choices[0].message.content, resp
assert resp.choices[0].finish_reason == "stop", resp
assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens > 0, resp
print("non-streaming ok:", resp.choices[0].message.content)

# Streaming: the text reassembles, and usage arrives in the last chunk.
text, usage, finish = "", None, None
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "How are you?"}],
    stream=True,
):
    assert chunk.object == "chat.completion.chunk", chunk
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
    if chunk.usage is not None:
        usage = chunk.usage
assert text == resp.choices[0].message.content, (text, resp.choices[0].message.content)
assert finish == "stop", finish
assert usage is not None and usage.completion_tokens > 0, usage
print("streaming ok:", text)

# Errors reach the SDK as its own exception classes.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.status_code == 404 and e.body["reason"] == "model_not_found", e.body
try:
    openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "x"}]
    )
    raise SystemExit("expected AuthenticationError")
except openai.AuthenticationError as e:
    assert e.status_code == 401, e
print("errors ok")

models = [m.id for m in client.models.list()]
assert model in models, models
print("models ok:", models)
