"""`/v1/models` and `/v1/models/{id}` through the official SDKs: Anthropic's
`client.models.list()` (every page, by its own pagination) and `.retrieve()`, OpenAI's
`client.models.list()` and `.retrieve()`, and each SDK's retrieve of an unknown model.

Usage: python3 models_sdk.py BASE_URL API_KEY MODEL
  BASE_URL: the gateway's root (the Anthropic SDK adds /v1, the OpenAI SDK is given BASE_URL/v1)
Prints {"anthropic": {"ids", "retrieved", "unknown"}, "openai": {"ids", "retrieved",
"unknown"}} as JSON; `unknown` is {"error": class name, "status", "body"}.
"""
import json
import sys

import anthropic
import openai

base_url, api_key, model = sys.argv[1:4]
out = {}


def failure(f):
    try:
        f()
        return {"error": None}
    except (anthropic.APIStatusError, openai.APIStatusError) as e:
        return {"error": type(e).__name__, "status": e.status_code, "body": e.body}


a = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)
# limit=2: the SDK follows `has_more`/`last_id` page after page.
listed = [m for m in a.models.list(limit=2)]
got = a.models.retrieve(model)
out["anthropic"] = {
    "ids": [m.id for m in listed],
    "types": sorted({m.type for m in listed}),
    "retrieved": {"id": got.id, "type": got.type, "display_name": got.display_name,
                  "created_at": got.created_at.isoformat()},
    "unknown": failure(lambda: a.models.retrieve("no-such-model")),
}

o = openai.OpenAI(base_url=base_url + "/v1", api_key=api_key, max_retries=0)
got = o.models.retrieve(model)
out["openai"] = {
    "ids": [m.id for m in o.models.list()],
    "retrieved": {"id": got.id, "object": got.object, "owned_by": got.owned_by},
    "unknown": failure(lambda: o.models.retrieve("no-such-model")),
}
print(json.dumps(out))
