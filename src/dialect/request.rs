//! The client's request as read at its front door: its own bytes, what routing, limits and
//! policies need from it, and the splice that makes the upstream body when the route's vendor
//! speaks the same dialect. A translation to the chat pivot is made only when an attempt needs
//! it ([`crate::convert::upstream_body`]).

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::accounting::estimate;
use crate::dialect::adjusted::Adjustments;
use crate::dialect::body::{Prepared, RewriteOptions};
use crate::dialect::gemini::{self, door};
use crate::dialect::{chat, embeddings, messages, responses, Dialect};
use crate::error::GatewayError;

pub struct FrontRequest {
    /// The front door's dialect.
    pub dialect: Dialect,
    /// The client's body, as it came.
    pub body: Bytes,
    /// The model the client asked for (a configured name or alias).
    pub model: String,
    pub stream: bool,
    /// The output cap the client set (`max_tokens`, `max_completion_tokens`), for the limiter.
    pub max_tokens: Option<u64>,
    /// Prompt tokens estimated from the request, for the limiter and for answers without usage.
    pub prompt_estimate: u64,
    /// Embeddings: the vectors were asked for as base64.
    pub base64: bool,
    /// Gemini door: the call the path named (`None` at the other doors).
    pub gemini_method: Option<door::Method>,
    /// Gemini door: the client asked a stream as server-sent events (`alt=sse`); otherwise
    /// it is Google's streamed JSON array ([`crate::dialect::gemini::array`]).
    pub gemini_sse: bool,
    /// The client's body without `model`, for a vendor of the same dialect; `None`: the body
    /// goes as it is (the Gemini door, whose model is in the path).
    native: Option<Prepared>,
    /// The request as a chat-completions body (the pivot of every translation), built by the
    /// first attempt that needs it and kept for the others.
    pub pivot: Option<Pivot>,
    /// Responses door: the id its answer gets and what is stored of it
    /// ([`crate::response_store::expand`]).
    pub pending: Option<Pending>,
    /// What the last attempt's translation changed for its vendor
    /// ([`crate::dialect::adjusted`]); empty on pass-through.
    pub adjusted: Adjustments,
    /// The body's end-user field, read with the view (`crate::policy::attribution`).
    pub body_user: Option<BodyUser>,
}

/// What a Responses request carries for the store, decided before routing ([`crate::response_store::expand`]).
#[derive(Debug, Clone)]
pub struct Pending {
    /// The id the answer gets on a translated route.
    pub id: String,
    /// Whether the answer is to be kept (`store`, default `true`).
    pub store: bool,
    /// The client's `previous_response_id`, as it sent it.
    pub previous_response_id: Option<String>,
}

/// The request translated to chat completions.
pub struct Pivot {
    pub body: Bytes,
    /// `body` without `model`, for chat vendors (usage asked for in streams).
    pub prepared: Prepared,
    /// The same without `stream_options`, for chat vendors that refuse it.
    pub without_stream_options: Prepared,
    /// What the door's leg (`<door>_to_chat`) changed for every vendor.
    pub adjusted: Adjustments,
}

impl FrontRequest {
    /// Reads a request body at a front door; a body that is not a request of that dialect is a
    /// 400 naming the field.
    pub fn read(dialect: Dialect, body: Bytes) -> Result<FrontRequest, GatewayError> {
        match dialect {
            Dialect::Embeddings => {
                let view = embeddings::parse(&body)?;
                let native = Prepared::new(view.fields(), &body, RewriteOptions::default());
                Ok(FrontRequest {
                    dialect,
                    model: view.model.to_string(),
                    stream: false,
                    max_tokens: Some(0),
                    prompt_estimate: view.prompt_estimate(),
                    base64: view.base64,
                    gemini_method: None,
                    gemini_sse: false,
                    native: Some(native),
                    pivot: None,
                    pending: None,
                    adjusted: Adjustments::default(),
                    body_user: None,
                    body,
                })
            }
            Dialect::Responses => {
                let view = responses::parse(&body)?;
                let body_user = body_user(dialect, view.fields());
                let prompt_estimate = estimate::json_tokens(view.input_json());
                let native = Prepared::new(view.fields(), &body, RewriteOptions::default());
                Ok(FrontRequest {
                    dialect,
                    model: view.model.into_owned(),
                    stream: view.stream,
                    max_tokens: view.max_output_tokens,
                    prompt_estimate,
                    base64: false,
                    gemini_method: None,
                    gemini_sse: false,
                    native: Some(native),
                    pivot: None,
                    pending: None,
                    adjusted: Adjustments::default(),
                    body_user,
                    body,
                })
            }
            Dialect::Messages => {
                let view = messages::parse(&body)?;
                let body_user = body_user(dialect, view.fields());
                let prompt_estimate = estimate::json_tokens(view.input_json());
                let native = Prepared::new(
                    view.fields(),
                    &body,
                    RewriteOptions {
                        stream: view.stream,
                        include_usage: false,
                    },
                );
                Ok(FrontRequest {
                    dialect,
                    model: view.model.into_owned(),
                    stream: view.stream,
                    max_tokens: view.max_tokens,
                    prompt_estimate,
                    base64: false,
                    gemini_method: None,
                    gemini_sse: false,
                    native: Some(native),
                    pivot: None,
                    pending: None,
                    adjusted: Adjustments::default(),
                    body_user,
                    body,
                })
            }
            Dialect::Gemini => Err(GatewayError::Internal(
                "the Gemini door's model is its path's: FrontRequest::read_gemini".into(),
            )),
            Dialect::Chat | Dialect::Converse => {
                let view = chat::parse(&body)?;
                let native = Prepared::new(
                    view.fields(),
                    &body,
                    RewriteOptions {
                        stream: view.stream,
                        include_usage: true,
                    },
                );
                Ok(FrontRequest {
                    dialect: Dialect::Chat,
                    model: view.model.to_string(),
                    stream: view.stream,
                    max_tokens: view.max_tokens,
                    prompt_estimate: estimate::prompt_tokens(&view.messages),
                    base64: false,
                    gemini_method: None,
                    gemini_sse: false,
                    native: Some(native),
                    pivot: None,
                    pending: None,
                    adjusted: Adjustments::default(),
                    body_user: body_user(Dialect::Chat, view.fields()),
                    body,
                })
            }
        }
    }

    /// Reads a request at the Gemini door: the model and the call are the path's (`call`), the
    /// body the client's bytes, which go upstream untouched to a Gemini route. A body that is
    /// not a request of that call is a 400 naming the field ([`gemini::view::parse`]).
    pub fn read_gemini(body: Bytes, call: &door::Call) -> Result<FrontRequest, GatewayError> {
        let view = gemini::view::parse(&body, call.method)?;
        let prompt_estimate = estimate::json_tokens(view.input_json());
        let max_tokens = match call.method {
            door::Method::Embed | door::Method::BatchEmbed => Some(0),
            _ => view.max_tokens,
        };
        Ok(FrontRequest {
            dialect: Dialect::Gemini,
            model: call.model.clone(),
            stream: call.method == door::Method::Stream,
            max_tokens,
            prompt_estimate,
            base64: false,
            gemini_method: Some(call.method),
            gemini_sse: call.sse,
            native: None,
            pivot: None,
            pending: None,
            adjusted: Adjustments::default(),
            body_user: None,
            body,
        })
    }

    /// The upstream body for a vendor of the front door's own dialect: the client's bytes with
    /// only `model` changed (and, for chat streams, usage asked for); at the Gemini door the
    /// client's bytes as they are (the model is in the path), but for `batchEmbedContents`,
    /// whose requests name the model again ([`gemini::view::batch_models_spliced`]).
    pub fn native_body(&self, upstream_model: &str) -> Bytes {
        match &self.native {
            Some(native) => native.body_for(upstream_model),
            None if self.gemini_method == Some(door::Method::BatchEmbed) => {
                gemini::view::batch_models_spliced(&self.body, &self.model, upstream_model)
            }
            None => self.body.clone(),
        }
    }

    /// The texts of the request's system prompt and messages, for content policies.
    pub fn texts(&self) -> Vec<String> {
        match self.dialect {
            Dialect::Messages => {
                messages::parse(&self.body).map_or_else(|_| Vec::new(), |v| v.texts())
            }
            Dialect::Embeddings => {
                embeddings::parse(&self.body).map_or_else(|_| Vec::new(), |v| v.texts())
            }
            Dialect::Responses => {
                responses::parse(&self.body).map_or_else(|_| Vec::new(), |v| v.texts())
            }
            Dialect::Gemini => self
                .gemini_method
                .and_then(|m| gemini::view::parse(&self.body, m).ok())
                .map_or_else(Vec::new, |v| v.texts()),
            Dialect::Chat | Dialect::Converse => chat::parse(&self.body).map_or_else(
                |_| Vec::new(),
                |v| {
                    v.messages
                        .iter()
                        .map(|m| chat::message_text(m.get()))
                        .collect()
                },
            ),
        }
    }
}

/// The body's own user field, as the door's view read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyUser {
    /// The field's name, for an error: `safety_identifier`, `user` or `metadata.user_id`.
    pub field: &'static str,
    pub value: String,
}

/// The user field of a request body at `door`, from its top-level fields (already split by
/// the door's view): `safety_identifier`, else `user` (chat completions, Responses);
/// `metadata.user_id` (Messages). See `crate::policy::attribution` for the vendor docs.
pub fn body_user(door: Dialect, fields: &[(Cow<'_, str>, &RawValue)]) -> Option<BodyUser> {
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let string = |v: &RawValue| serde_json::from_str::<String>(v.get()).ok();
    match door {
        Dialect::Messages => {
            #[derive(serde::Deserialize)]
            struct Metadata {
                user_id: Option<String>,
            }
            let metadata = field("metadata")?;
            let m: Metadata = serde_json::from_str(metadata.get()).ok()?;
            m.user_id.map(|value| BodyUser {
                field: "metadata.user_id",
                value,
            })
        }
        Dialect::Chat | Dialect::Responses => {
            ["safety_identifier", "user"].into_iter().find_map(|name| {
                field(name)
                    .and_then(string)
                    .map(|value| BodyUser { field: name, value })
            })
        }
        Dialect::Embeddings | Dialect::Gemini | Dialect::Converse => None,
    }
}
