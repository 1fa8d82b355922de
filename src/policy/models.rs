//! What a model is for: `GET /v1/models` (the models a key may use, each marked chat or
//! embedding) and the check that a door asks a model for what it does (`[[models]] kind`).

use bytes::Bytes;

use crate::config::{Config, Model, ModelKind};
use crate::error::GatewayError;
use crate::policy::auth::Principal;
use crate::providers::Operation;

/// `GET /v1/models`: the models this key's team may use, in OpenAI's list shape; a model
/// marked with a `kind` has a `type` (`"chat"` or `"embedding"`) beside OpenAI's fields.
pub fn list(config: &Config, principal: &Principal) -> Bytes {
    let data: Vec<serde_json::Value> = config
        .models
        .iter()
        .filter(|m| principal.team.allows(&m.name))
        .map(|m| {
            let mut entry = serde_json::json!({
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "switchyard",
            });
            if let Some(kind) = m.kind.as_str() {
                entry["type"] = kind.into();
            }
            entry
        })
        .collect();
    Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string())
}

/// A 400 when the door asks `model` for what it does not do: an embeddings request to a chat
/// model, or a generation (chat, Messages, Responses, token counting) to an embedding model.
pub fn check_kind(model: &Model, operation: Operation) -> Result<(), GatewayError> {
    let wanted = match operation {
        Operation::Embed => ModelKind::Embedding,
        Operation::Generate | Operation::CountTokens | Operation::Respond => ModelKind::Chat,
    };
    if model.kind == wanted || model.kind == ModelKind::Unmarked {
        return Ok(());
    }
    let message = match model.kind {
        ModelKind::Embedding => format!(
            "`{}` is an embedding model: use it on /v1/embeddings",
            model.name
        ),
        ModelKind::Chat | ModelKind::Unmarked => format!(
            "`{}` is a chat model (`kind = \"chat\"`), not an embedding model",
            model.name
        ),
    };
    Err(GatewayError::InvalidParam {
        message,
        param: "model".into(),
    })
}
