//! The mock Bedrock's Converse answers ([`super::mock_bedrock`] hands `/converse` and
//! `/converse-stream` requests here). The Converse dialect's owner replaces this body; until
//! then every Converse request is refused.

use serde_json::{json, Value};

/// Answers a `Converse` request for `model`: the answer's JSON, or (status, Bedrock error
/// body `{"message"}`).
pub fn converse(_body: &Value, _model: &str) -> Result<Value, (u16, Value)> {
    Err((400, json!({"message": "not yet"})))
}

/// Answers a `ConverseStream` request for `model`: the (event type, payload) pairs the mock
/// frames as an event stream, or (status, Bedrock error body `{"message"}`).
pub fn converse_stream(_body: &Value, _model: &str) -> Result<Vec<(String, Value)>, (u16, Value)> {
    Err((400, json!({"message": "not yet"})))
}
