"""One call through an official SDK, its outcome printed as one JSON line for the Rust test.

Usage: python3 sdk_call.py MODE BASE_URL API_KEY MODEL STREAM [TOOLS]
  MODE: openai (chat.completions via the OpenAI SDK) or anthropic (messages via the Anthropic SDK)
  STREAM: stream or once; TOOLS: tools to offer a weather tool
An error raised by the SDK is printed as {"error": class name, "status": code, "body": body}.
"""
import json
import sys

mode, base_url, api_key, model, stream = sys.argv[1:6]
tools = len(sys.argv) > 6 and sys.argv[6] == "tools"
stream = stream == "stream"
out = {}


def openai_call():
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    kwargs = dict(model=model, messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ])
    if tools:
        kwargs["tools"] = [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    try:
        if not stream:
            r = client.chat.completions.create(**kwargs)
            m = r.choices[0].message
            out.update(content=m.content, finish_reason=r.choices[0].finish_reason,
                       usage=r.usage.model_dump() if r.usage else None,
                       tool_calls=[{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
                                   for t in (m.tool_calls or [])])
        else:
            text, finish, usage, calls = "", None, None, {}
            for chunk in client.chat.completions.create(stream=True, **kwargs):
                for c in chunk.choices:
                    text += c.delta.content or ""
                    finish = c.finish_reason or finish
                    for t in c.delta.tool_calls or []:
                        call = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
                        call["id"] = t.id or call["id"]
                        if t.function:
                            call["name"] += t.function.name or ""
                            call["arguments"] += t.function.arguments or ""
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
            out.update(content=text, finish_reason=finish, usage=usage,
                       tool_calls=[calls[i] for i in sorted(calls)])
    except openai.APIStatusError as e:
        out.update(error=type(e).__name__, status=e.status_code, body=e.body)


def anthropic_call():
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
    kwargs = dict(model=model, max_tokens=64, system="Be brief.",
                  messages=[{"role": "user", "content": "Say hello"}])
    try:
        if not stream:
            r = client.messages.create(**kwargs)
            out.update(content="".join(b.text for b in r.content if b.type == "text"),
                       stop_reason=r.stop_reason,
                       usage={"input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens})
        else:
            with client.messages.stream(**kwargs) as s:
                text = "".join(s.text_stream)
                final = s.get_final_message()
            out.update(content=text, stop_reason=final.stop_reason,
                       usage={"input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens})
    except anthropic.APIStatusError as e:
        out.update(error=type(e).__name__, status=e.status_code, body=e.body)


openai_call() if mode == "openai" else anthropic_call()
print(json.dumps(out))
