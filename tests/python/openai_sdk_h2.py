"""The official OpenAI Python SDK against Switchyard over HTTPS with HTTP/2 (httpx with h2).

Usage: python3 openai_sdk_h2.py BASE_URL API_KEY MODEL   (SSL_CERT_FILE names the CA to trust)
Prints one line per check; exits non-zero on the first failure.
"""
import sys

import openai

base_url, api_key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(
    base_url=base_url,
    api_key=api_key,
    max_retries=0,
    http_client=openai.DefaultHttpxClient(http2=True),
)

raw = client.chat.completions.with_raw_response.create(
    model=model, messages=[{"role": "user", "content": "How are you?"}]
)
assert raw.http_response.http_version == "HTTP/2", raw.http_response.http_version
resp = raw.parse()
assert resp.choices[0].message.content, resp
print("non-streaming ok over", raw.http_response.http_version)

text, usage = "", None
with client.chat.completions.with_streaming_response.create(
    model=model, messages=[{"role": "user", "content": "How are you?"}], stream=True
) as streamed:
    assert streamed.http_response.http_version == "HTTP/2", streamed.http_response.http_version
    for chunk in streamed.parse():
        for choice in chunk.choices:
            text += choice.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
assert text == resp.choices[0].message.content, (text, resp.choices[0].message.content)
assert usage is not None and usage.completion_tokens > 0, usage
print("streaming ok over HTTP/2:", text)
