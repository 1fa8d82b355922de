"""client.embeddings.create through the gateway with the official OpenAI SDK (which asks for
base64 vectors by default and decodes them), and once with encoding_format="float".

Usage: python3 openai_embeddings.py BASE_URL API_KEY MODEL
Prints {"vectors": [[...], ...], "floats": [[...]], "usage": {...}} or {"error", "status", "body"}.
"""
import json
import sys

import openai

base_url, api_key, model = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
try:
    r = client.embeddings.create(model=model, input=["first text", "second text"])
    f = client.embeddings.create(model=model, input="only one", encoding_format="float")
    print(json.dumps({"vectors": [d.embedding for d in r.data],
                      "floats": [d.embedding for d in f.data],
                      "usage": r.usage.model_dump()}))
except openai.APIStatusError as e:
    print(json.dumps({"error": type(e).__name__, "status": e.status_code, "body": e.body}))
