//! The Gemini door (#30) on translated routes, through the real binary: a Google client's
//! `generateContent` to an `anthropic` route (tools, and the next turn with the model's call
//! and its `functionResponse` sent back without ids, as the SDKs send them), and
//! `streamGenerateContent?alt=sse` to an `openai` route. What each vendor got is checked by
//! its strict validator (`support::strict`).

use crate::support;

use serde_json::{json, Value};
use support::*;

const ANTH_KEY: &str = "sk-ant-gemini-door";

struct Setup {
    anth: MockAnthropic,
    oai: MockUpstream,
    gw: Gateway,
}

async fn setup() -> Setup {
    let anth = MockAnthropic::start(ANTH_KEY).await;
    let oai = MockUpstream::start().await;
    let body = ConfigBody::new()
        .provider(
            "claude",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_GD_ANTH\"",
        )
        .provider("oai", "openai", &oai.base_url(), "")
        .model("claude", &[("claude", "claude-sonnet-4-5")])
        .model("gpt", &[("oai", "gpt-x")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_GD_ANTH", ANTH_KEY)
        .start()
        .await;
    Setup { anth, oai, gw }
}

/// POSTs a Gemini request to `models/{model}:{method}` with the key as the SDKs send it.
async fn post(gw: &Gateway, model: &str, method: &str, body: &Value) -> reqwest::Response {
    gw.client()
        .post(gw.url(&format!("/v1beta/models/{model}:{method}")))
        .header("x-goog-api-key", DEMO_SECRET)
        .json(body)
        .send()
        .await
        .expect("the gateway answers")
}

fn weather_tool() -> Value {
    json!([{"functionDeclarations": [{
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}
    }]}])
}

#[tokio::test]
async fn a_gemini_client_calls_tools_on_an_anthropic_route_over_two_turns() {
    let s = setup().await;
    s.anth.set_content(json!([
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01Weather", "name": "get_weather", "input": {"city": "Paris"}}
    ]));
    let first_turn = json!([{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]);
    let resp = post(
        &s.gw,
        "claude",
        "generateContent",
        &json!({
            "contents": first_turn,
            "tools": weather_tool(),
            "generationConfig": {"maxOutputTokens": 500, "topK": 3},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        }),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", s.gw.logs());
    assert_eq!(
        resp.headers()["x-switchyard-adjusted"],
        "safetySettings, generationConfig.topK"
    );
    let answer: Value = resp.json().await.unwrap();
    let candidate = &answer["candidates"][0];
    assert_eq!(
        candidate["content"],
        json!({"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"id": "toolu_01Weather", "name": "get_weather", "args": {"city": "Paris"}}}
        ]})
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], 20);
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 7);
    let sent = s.anth.last().json();
    strict::anthropic::check(&sent).expect("Anthropic takes the translated request");
    assert_eq!(
        sent["tools"][0]["input_schema"],
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    );
    assert_eq!(sent["max_tokens"], 500);

    // The next turn: the model's content as the SDK keeps it, but without the call's id (a
    // client may drop it), and the function's response paired by name.
    let mut model_turn = candidate["content"].clone();
    model_turn["parts"][1]["functionCall"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let mut contents = first_turn.as_array().unwrap().clone();
    contents.push(model_turn);
    contents.push(json!({"role": "user", "parts": [
        {"function_response": {"name": "get_weather", "response": {"sky": "sunny", "c": 21}}}
    ]}));
    s.anth
        .set_content(json!([{"type": "text", "text": "It is sunny."}]));
    let resp = post(
        &s.gw,
        "models/claude",
        "generateContent",
        &json!({"contents": contents, "tools": weather_tool()}),
    )
    .await;
    assert_eq!(resp.status(), 200, "{}", s.gw.logs());
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer["candidates"][0]["content"]["parts"],
        json!([{"text": "It is sunny."}])
    );
    let sent = s.anth.last().json();
    strict::anthropic::check(&sent).expect("Anthropic takes the second turn");
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    let call = &messages[1]["content"][1];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], call["id"]);
    let text = result["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"sky": "sunny", "c": 21})
    );
}

#[tokio::test]
async fn a_gemini_client_streams_from_an_openai_route() {
    let s = setup().await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "Tell me a short story about a fox"}]}],
        "generationConfig": {"temperature": 0.3, "stopSequences": ["THE END"]}
    });
    let resp = post(&s.gw, "gpt", "streamGenerateContent?alt=sse", &body).await;
    assert_eq!(resp.status(), 200, "{}", s.gw.logs());
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("{e:?}"));
            serde_json::from_str(data).unwrap()
        })
        .collect();
    assert!(events.len() >= 2, "{text}");
    let said: String = events
        .iter()
        .flat_map(|e| {
            e["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect();
    let sent = s.oai.last_request().unwrap().json();
    strict::openai_chat::check(&sent).expect("OpenAI takes the translated request");
    // MockUpstream streams five chunks `tok0 ` … `tok4 `.
    assert_eq!(said, "tok0 tok1 tok2 tok3 tok4 ");
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    assert_eq!(sent["model"], "gpt-x");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(sent["stop"], json!(["THE END"]));
    assert_eq!(sent["temperature"], 0.3);
}

#[tokio::test]
async fn what_the_pivot_cannot_carry_is_a_400_in_googles_shape() {
    let s = setup().await;
    let resp = post(
        &s.gw,
        "claude",
        "generateContent",
        &json!({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cachedContent"),
        "{body}"
    );
    assert_eq!(s.anth.message_count(), 0);
}

/// Without `alt=sse` a translated stream is Google's JSON array, as Gemini answers it.
#[tokio::test]
async fn a_translated_stream_without_alt_sse_is_googles_json_array() {
    let s = setup().await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]});
    let resp = post(&s.gw, "gpt", "streamGenerateContent", &body).await;
    assert_eq!(resp.status(), 200, "{}", s.gw.logs());
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let text = resp.text().await.unwrap();
    assert!(text.starts_with('[') && text.ends_with(']'), "{text}");
    let items: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(items.len() >= 2, "{text}");
    let last = items.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["promptTokenCount"].as_u64().unwrap() > 0);
}
