"""Google's Gen AI SDK (`google-genai`) against a base URL: generate, stream, count tokens,
embed (one text and a batch), list models, get a model, and a function-calling round trip
with the SDK's automatic function calling off. Each outcome is printed in one JSON object for
the Rust test (tests/it/real_clients_gemini.rs), with the bytes of every HTTP exchange.

Usage: python3 genai_sdk.py BASE_URL API_KEY MODEL API_VERSION OPS
  API_VERSION: "default" (the SDK's own choice) or a version ("v1beta", "v1");
  OPS: comma-separated names among generate, stream, count, embed_one, embed_batch, list,
       get, tools.

Output: {"api_version": the version the SDK used,
         "ops": {name: outcome}, "exchanges": {name: [exchange, ...]}}, where an outcome is what
the SDK parsed (or {"error": class, "code": status, "status": Google's status name, "message"}
for an error the SDK raised) and an exchange is {"method", "path" (with the query),
"headers" (the request's, lower-case names), "request" (the body sent, text), "status",
"content_type", "response" (the body received, text)}. Retries are off (one attempt).
"""
import json
import sys

import httpx2
from google import genai
from google.genai import errors, types

base_url, api_key, model, api_version, ops = sys.argv[1:6]

exchanges = {}
current = ["setup"]


class Recording(httpx2.HTTPTransport):
    """The SDK's transport, recording each request's and response's bytes."""

    def handle_request(self, request):
        sent = request.read()
        response = super().handle_request(request)
        got = response.read()
        exchanges.setdefault(current[0], []).append({
            "method": request.method,
            "path": request.url.raw_path.decode(),
            "headers": {k.decode().lower(): v.decode() for k, v in request.headers.raw},
            "request": sent.decode("utf-8", "replace"),
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "response": got.decode("utf-8", "replace"),
        })
        return httpx2.Response(response.status_code, headers=response.headers, content=got,
                               request=request)


options = {"base_url": base_url, "retry_options": types.HttpRetryOptions(attempts=1),
           "client_args": {"transport": Recording()}}
if api_version != "default":
    options["api_version"] = api_version
client = genai.Client(api_key=api_key, http_options=types.HttpOptions(**options))
out = {"api_version": client._api_client._http_options.api_version, "ops": {},
       "exchanges": exchanges}


def call(name, f):
    current[0] = name
    try:
        out["ops"][name] = f()
    except errors.APIError as e:
        out["ops"][name] = {"error": type(e).__name__, "code": e.code, "status": e.status,
                            "message": e.message}


def dump(r):
    return r.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"})


def generate():
    r = client.models.generate_content(model=model, contents="Say hello")
    return dump(r)


def stream():
    chunks = [dump(c) for c in client.models.generate_content_stream(
        model=model, contents="Say hello")]
    return {"chunks": chunks}


def count():
    return dump(client.models.count_tokens(model=model, contents="Say hello"))


def embed_one():
    return dump(client.models.embed_content(model=model, contents="hello"))


def embed_batch():
    # A list of strings is one content of two parts to the SDK; a list of contents is a batch.
    contents = [types.Content(parts=[types.Part(text=t)]) for t in ("hello", "world")]
    return dump(client.models.embed_content(model=model, contents=contents))


def list_models():
    return {"models": [dump(m) for m in client.models.list()]}


def get():
    return dump(client.models.get(model=model))


WX = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="wx", description="The weather in a city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")},
                            required=["city"]))])


def tools():
    config = types.GenerateContentConfig(
        tools=[WX],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    contents = [types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")])]
    first = client.models.generate_content(model=model, contents=contents, config=config)
    calls = first.function_calls or []
    if not calls:
        return {"first": dump(first), "calls": []}
    contents.append(first.candidates[0].content)
    contents.append(types.Content(role="user", parts=[types.Part.from_function_response(
        name=c.name, response={"temp_c": -3}) for c in calls]))
    second = client.models.generate_content(model=model, contents=contents, config=config)
    return {"first": dump(first), "calls": [dump(c) for c in calls], "second": dump(second),
            "text": second.text}


OPS = {"generate": generate, "stream": stream, "count": count, "embed_one": embed_one,
       "embed_batch": embed_batch, "list": list_models, "get": get, "tools": tools}
for name in ops.split(","):
    call(name, OPS[name])
print(json.dumps(out))
