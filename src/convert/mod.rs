//! Translated pairs. A request is translated only when the route's vendor speaks another
//! dialect than the client's front door; otherwise its bytes pass through ([`crate::dialect`]).
//! [`Route`] decides which, in one place, from the door's dialect and the provider.
//!
//! Naming: one module per pair, `<door dialect>_to_<vendor dialect>`, holding both directions
//! (the request door → vendor, the answer and the stream vendor → door), each with the same
//! entry points: `request(…)` (the request body), `answer(…)` (a whole answer, as
//! [`Translated`] or bytes) and `Stream::new(…)` (a stream translator, an [`SseTranslator`]).
//! Chat Completions is the pivot, so pairs chain through it (a Messages door on a Gemini
//! vendor is `messages_to_chat` then `chat_to_gemini`):
//!
//! - [`chat_to_messages`]: chat requests → Anthropic Messages; Messages answers and streams →
//!   chat;
//! - [`chat_to_gemini`]: chat requests → Gemini `generateContent`; its answers and streams →
//!   chat;
//! - [`chat_to_converse`]: chat requests → Bedrock `Converse` (every model family on Bedrock
//!   but Claude); its answers and `ConverseStream` events → chat;
//! - [`messages_to_chat`]: Messages requests (the `/v1/messages` door) → chat; chat answers and
//!   streams → Messages;
//! - [`responses_to_chat`]: Responses requests (the `/v1/responses` door) → chat; chat answers
//!   and streams → a `response` object and the Responses events;
//! - [`gemini_to_chat`]: Gemini `generateContent` requests (the Gemini door) → chat; chat
//!   answers and streams → `GenerateContentResponse`s;
//! - [`embeddings_to_gemini`]: embeddings requests → Gemini `batchEmbedContents`, and back;
//! - [`gemini_to_embeddings`]: the Gemini door's `embedContent`/`batchEmbedContents` → OpenAI
//!   embeddings, and back.
//!
//! The wire types the pairs read and write belong to their dialect (`crate::dialect::<name>::
//! wire`). A translated request keeps the vendor's contract ([`crate::contract`]): each
//! vendor leg calls its rules, and the leg to chat vendors is [`chat_vendor`]. Vendor state
//! that must come back on the next turn (signed thinking, Gemini's signatures) and the
//! tool-call ids the gateway mints are [`vendor_state`]'s; a Messages body passed through to
//! Anthropic is cleaned of another vendor's state by [`native_history`]; the state of a
//! chat-door answer's tool calls, for clients that drop `thinking_blocks`, is gathered and
//! put back by [`kept_state`] (kept in `crate::response_store::vendor_state`).
//! What the pairs share: [`translate`] (the stream-translation driver, [`Translated`]),
//! [`chunks`] (the writer of chat chunk events), [`request`] (what chat → vendor requests read
//! beyond the chat wire view), [`hosted_tools`] (the Responses door's `namespace` and hosted
//! tools: flattened, mapped to the vendor's own, or left out and noted) and [`errors`]. Each
//! pair's doc lists what it drops.
//! The proxy calls [`upstream_body`], [`AnswerTranslation`] and [`mock_answer`].

pub(crate) mod chat_to_converse;
pub(crate) mod chat_to_gemini;
pub(crate) mod chat_to_messages;
pub(crate) mod chat_vendor;
pub(crate) mod chunks;
pub(crate) mod embeddings_to_gemini;
pub mod errors;
pub(crate) mod gemini_to_chat;
pub(crate) mod gemini_to_embeddings;
pub(crate) mod hosted_tools;
pub mod kept_state;
pub(crate) mod messages_to_chat;
pub(crate) mod native_history;
pub(crate) mod request;
pub(crate) mod responses_to_chat;
pub(crate) mod translate;
pub(crate) mod vendor_state;

use bytes::{Bytes, BytesMut};

use crate::accounting::meter::Meter;
use crate::config::{Provider, ProviderKind};
use crate::dialect::adjusted::Adjustments;
use crate::dialect::body::Prepared;
use crate::dialect::body::RewriteOptions;
use crate::dialect::chat::{self, ChatRequest};
use crate::dialect::embeddings;
use crate::dialect::request::{FrontRequest, Pivot};
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::providers;

pub use translate::{unix_now, SseTranslator, Translated};

/// How a request goes between its front door and the route's vendor: the ONE place that
/// decides pass-through or translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The vendor speaks the door's dialect: the client's bytes go upstream with only `model`
    /// spliced, and the vendor's bytes come back untouched.
    PassThrough,
    /// The vendor speaks another dialect: the pair translates.
    Translate(Pair),
}

/// A translated pair, (door dialect, vendor dialect). Chat Completions is the pivot: the
/// door's leg (`<door>_to_chat`; none for the chat door) and the vendor's leg
/// (`chat_to_<vendor>`; none for a chat vendor) chain through it; embeddings go straight
/// (`embeddings_to_gemini`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub door: Dialect,
    pub vendor: Dialect,
}

impl Route {
    /// The route from `door` to `provider` for `upstream_model` (the provider's configuration
    /// may narrow what its kind speaks: a `chat_only` OpenAI provider serves no Responses; a
    /// cloud's dialect depends on the model).
    pub fn for_provider(door: Dialect, provider: &Provider, upstream_model: &str) -> Route {
        let native = providers::serves(provider, upstream_model, door);
        Route::decide(
            door,
            providers::dialect_for(provider, upstream_model),
            native,
        )
    }

    /// The route from `door` to a vendor kind (the built-in mock).
    pub fn for_kind(door: Dialect, kind: ProviderKind) -> Route {
        Route::decide(
            door,
            providers::dialect(kind),
            providers::speaks(kind, door),
        )
    }

    fn decide(door: Dialect, vendor: Dialect, native: bool) -> Route {
        if native {
            return Route::PassThrough;
        }
        Route::Translate(Pair { door, vendor })
    }
}

/// The upstream body of one attempt. When the route's vendor speaks the front door's dialect
/// it is the client's bytes with only `model` spliced (but for a chat request's tool-call ids
/// over OpenAI's 40 characters: [`chat_vendor::door_ids_mapped`]); otherwise the request is translated
/// through the chat pivot (made once, on the first attempt that needs it).
///
/// What the translation changed for the vendor is left in `req.adjusted` (empty on
/// pass-through): the door's leg's changes, then the vendor's leg's.
pub fn upstream_body(
    req: &mut FrontRequest,
    provider: &Provider,
    upstream_model: &str,
) -> Result<Bytes, GatewayError> {
    req.adjusted = Adjustments::default();
    let Route::Translate(pair) = Route::for_provider(req.dialect, provider, upstream_model) else {
        if req.dialect == Dialect::Chat {
            if let Some(body) = chat_vendor::door_ids_mapped(&req.body)? {
                let (prepared, without_stream_options) = prepared(&body)?;
                return Ok(match providers::takes_stream_options(provider) {
                    true => prepared,
                    false => without_stream_options,
                }
                .body_for(upstream_model));
            }
        }
        if req.dialect == Dialect::Chat && !providers::takes_stream_options(provider) {
            // The chat door's own body, without `stream_options` (old Azure versions); not
            // the pivot, which may hold vendor state the gateway kept (`kept_state`).
            return Ok(prepared(&req.body)?.1.body_for(upstream_model));
        }
        let body = req.native_body(upstream_model);
        if req.dialect == Dialect::Messages {
            let mut adjusted = Adjustments::default();
            if let Some(cleaned) = native_history::clean(&body, &mut adjusted) {
                req.adjusted = adjusted;
                return Ok(cleaned);
            }
        }
        return Ok(body);
    };
    if let Some(batch) = gemini_embeds(req) {
        // The Gemini door's embeddings, to a vendor of OpenAI's embeddings.
        return match pair.vendor {
            Dialect::Chat => {
                gemini_to_embeddings::request(&req.body, &req.model, upstream_model, batch)
            }
            _ => Err(GatewayError::InvalidRequest(format!(
                "the route's provider `{}` serves no embeddings",
                provider.name
            ))),
        };
    }
    if pair.door == Dialect::Embeddings {
        return match pair.vendor {
            Dialect::Gemini => {
                embeddings_to_gemini::request(&embeddings::parse(&req.body)?, upstream_model)
            }
            _ => Err(GatewayError::InvalidRequest(format!(
                "the route's provider `{}` serves no embeddings",
                provider.name
            ))),
        };
    }
    let pivot = chat_pivot(req)?;
    let mut adjusted = pivot.adjusted.clone();
    let body = match pair.vendor {
        Dialect::Chat => chat_vendor::request(pivot, provider, upstream_model, &mut adjusted),
        Dialect::Messages
        | Dialect::Gemini
        | Dialect::Converse
        | Dialect::Embeddings
        | Dialect::Responses => {
            let view = chat::parse(&pivot.body)?;
            request_body(provider, &view, upstream_model, &mut adjusted)
                .unwrap_or_else(|| Ok(pivot.prepared.body_for(upstream_model)))
        }
    };
    req.adjusted = adjusted;
    body
}

/// A Gemini-door embeddings request: `Some(batch)` for `:batchEmbedContents` (`true`) and
/// `:embedContent` (`false`); `None` for other calls and other doors.
fn gemini_embeds(req: &FrontRequest) -> Option<bool> {
    use crate::dialect::gemini::door::Method;
    match req.gemini_method {
        Some(Method::BatchEmbed) => Some(true),
        Some(Method::Embed) => Some(false),
        _ => None,
    }
}

/// The request as a chat-completions body: the client's own for the chat door, a translation
/// for the others (kept in the request for later attempts). What the door's leg left out of
/// the offer is in its `adjusted`.
pub fn chat_pivot(req: &mut FrontRequest) -> Result<&Pivot, GatewayError> {
    if req.pivot.is_none() {
        let mut adjusted = Adjustments::default();
        let body = match req.dialect {
            Dialect::Messages => messages_to_chat::request(&req.body)?,
            Dialect::Responses => responses_to_chat::request(&req.body, &mut adjusted)?,
            Dialect::Gemini => {
                let (body, door_adjusted) =
                    gemini_to_chat::request(&req.body, &req.model, req.stream)?;
                adjusted = door_adjusted;
                body
            }
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings => req.body.clone(),
        };
        let (prepared, without_stream_options) = prepared(&body)?;
        req.pivot = Some(Pivot {
            body,
            prepared,
            without_stream_options,
            adjusted,
        });
    }
    req.pivot
        .as_ref()
        .ok_or_else(|| GatewayError::Internal("no chat pivot".into()))
}

/// Makes the chat door's pivot from `body`, the client's body with the vendor state the
/// gateway kept spliced in ([`kept_state::splice`]): translations read it, pass-through
/// routes send the client's own bytes.
pub fn set_chat_pivot(req: &mut FrontRequest, body: Bytes) -> Result<(), GatewayError> {
    let (prepared, without_stream_options) = prepared(&body)?;
    req.pivot = Some(Pivot {
        body,
        prepared,
        without_stream_options,
        adjusted: Adjustments::default(),
    });
    Ok(())
}

/// A chat body without its `model`, for chat vendors: with usage asked for in streams, and
/// without `stream_options` (for the vendors that refuse it).
fn prepared(body: &Bytes) -> Result<(Prepared, Prepared), GatewayError> {
    let view = chat::parse(body)?;
    let prepared = Prepared::new(
        view.fields(),
        body,
        RewriteOptions {
            stream: view.stream,
            include_usage: true,
        },
    );
    let fields: Vec<_> = view
        .fields()
        .iter()
        .filter(|(k, _)| k != "stream_options")
        .cloned()
        .collect();
    let without_stream_options = Prepared::new(&fields, body, RewriteOptions::default());
    Ok((prepared, without_stream_options))
}

/// The translation of a successful answer whose vendor speaks another dialect than the
/// client: vendor → chat (metered there) → the front door's dialect. Streams go chunk by
/// chunk; the door's leg, when there is one, decodes each chat event once for itself and the
/// meter ([`SseTranslator::feed_metered`]). A whole answer is kept and translated at its end.
pub struct AnswerTranslation {
    front: Dialect,
    vendor: Dialect,
    model_hint: String,
    /// Embeddings: the client asked for base64 vectors; the input estimate (Gemini counts none).
    base64: bool,
    prompt_estimate: u64,
    to_chat: Option<Box<dyn SseTranslator>>,
    to_front: Option<Box<dyn SseTranslator>>,
    buffered: Option<BytesMut>,
    /// Responses door: the id and state fields of the answer (`crate::response_store`).
    identity: responses_to_chat::Identity,
    /// Responses door: the whole translated `response` of a non-streamed answer.
    completed: Option<Bytes>,
    /// Responses door: the completed response was handed out for the store already.
    handed_out: bool,
    /// Chat door from a vendor that signs its reasoning (Gemini, Anthropic): the answer's
    /// vendor state for its tool calls, kept for clients that drop it ([`kept_state`]).
    kept: Option<kept_state::Collector>,
    /// The answer is complete (a whole answer, or the pivot stream's end went through).
    complete: bool,
    /// Gemini door: an embeddings call (`Some(batch)`), answered in Google's shape.
    gemini_embed: Option<bool>,
    /// Gemini door: a stream asked without `alt=sse`, re-framed as Google's JSON array.
    array: Option<crate::dialect::gemini::array::ToArray>,
}

impl AnswerTranslation {
    /// `None` when the provider speaks the client's dialect for `upstream_model` (the answer
    /// passes through).
    pub fn for_provider(
        req: &FrontRequest,
        provider: &Provider,
        upstream_model: &str,
    ) -> Option<AnswerTranslation> {
        let model_hint = upstream_model;
        match Route::for_provider(req.dialect, provider, upstream_model) {
            Route::PassThrough => None,
            Route::Translate(pair) => Some(AnswerTranslation::build(req, pair, model_hint)),
        }
    }

    /// `None` when the vendor kind speaks the client's dialect (the answer passes through).
    pub fn new(
        req: &FrontRequest,
        vendor: ProviderKind,
        model_hint: &str,
    ) -> Option<AnswerTranslation> {
        match Route::for_kind(req.dialect, vendor) {
            Route::PassThrough => None,
            Route::Translate(pair) => Some(AnswerTranslation::build(req, pair, model_hint)),
        }
    }

    fn build(req: &FrontRequest, pair: Pair, model_hint: &str) -> AnswerTranslation {
        let mut t = AnswerTranslation {
            front: pair.door,
            vendor: pair.vendor,
            model_hint: model_hint.to_string(),
            base64: req.base64,
            prompt_estimate: req.prompt_estimate,
            to_chat: None,
            to_front: None,
            buffered: None,
            identity: identity(req),
            completed: None,
            handed_out: false,
            kept: (pair.door == Dialect::Chat
                && matches!(pair.vendor, Dialect::Gemini | Dialect::Messages))
            .then(kept_state::Collector::default),
            complete: false,
            gemini_embed: gemini_embeds(req),
            array: (pair.door == Dialect::Gemini && req.stream && !req.gemini_sse)
                .then(Default::default),
        };
        if req.stream {
            t.to_chat = stream_translator(pair.vendor, model_hint, unix_now());
            t.to_front = match pair.door {
                Dialect::Messages => Some(Box::new(messages_to_chat::Stream::new(model_hint))),
                Dialect::Responses => Some(Box::new(responses_to_chat::Stream::with_identity(
                    model_hint,
                    unix_now(),
                    t.identity.clone(),
                ))),
                Dialect::Gemini => Some(Box::new(gemini_to_chat::Stream::new(model_hint))),
                Dialect::Chat | Dialect::Converse | Dialect::Embeddings => None,
            };
        } else {
            t.buffered = Some(BytesMut::new());
        }
        t
    }

    /// The content type of the translated answer.
    pub fn content_type(&self) -> &'static str {
        if self.buffered.is_some() || self.array.is_some() {
            "application/json"
        } else {
            "text/event-stream"
        }
    }

    /// One chunk of the vendor's answer in; what to send the client now out (`None`: nothing
    /// yet). `meter` reads the chat pivot: its events as the door's leg decodes them, or, for
    /// the chat door, its bytes. An untranslatable whole answer is an error.
    pub fn chunk(
        &mut self,
        chunk: Option<Bytes>,
        end: bool,
        meter: &mut Meter,
    ) -> Result<Option<Bytes>, GatewayError> {
        let chunk = chunk.unwrap_or_default();
        if let Some(buf) = self.buffered.as_mut() {
            buf.extend_from_slice(&chunk);
            if !end {
                return Ok(None);
            }
            let whole = std::mem::take(buf).freeze();
            return self.whole(whole, meter).map(Some);
        }
        let chat = match self.to_chat.as_mut() {
            Some(t) => through(t.as_mut(), &chunk, end),
            None => chunk,
        };
        if let Some(kept) = self.kept.as_mut() {
            kept.feed(&chat);
            self.complete |= end || self.to_chat.as_ref().is_some_and(|t| t.is_done());
        }
        let mut out = match self.to_front.as_mut() {
            // The door's leg decodes each chat event once, for itself and the meter.
            Some(front) => through_metered(front.as_mut(), &chat, end, meter),
            None => {
                meter.feed(&chat);
                chat
            }
        };
        if let Some(array) = self.array.as_mut() {
            let framed = array.feed(&out);
            out = match end {
                true => joined(framed, array.finish()),
                false => framed,
            };
        }
        Ok((end || !out.is_empty()).then_some(out))
    }

    /// Whether the client's stream has had its end event (`[DONE]`, `message_stop`, a terminal
    /// `response.*` event) from this translation: the answer is complete for the client,
    /// whatever the vendor still sends after it.
    pub fn is_done(&self) -> bool {
        self.to_front
            .as_ref()
            .or(self.to_chat.as_ref())
            .is_some_and(|t| t.is_done())
    }

    /// The Responses door's answer once it is complete: the whole `response` object (of a
    /// non-streamed answer, or what a stream's `response.completed` carried), for the
    /// response store. `None` for other doors and for answers that failed or were cut.
    pub fn completed_response(&self) -> Option<serde_json::Value> {
        if let Some(body) = &self.completed {
            return serde_json::from_slice(body).ok();
        }
        self.to_front.as_ref().and_then(|t| t.completed_response())
    }

    /// [`Self::completed_response`] the first time the answer is complete (the chunk that
    /// holds `response.completed`/`response.incomplete` was just translated, or the whole
    /// answer), `None` before and after: the caller keeps it before those bytes go out.
    pub fn take_completed_response(&mut self) -> Option<serde_json::Value> {
        if self.handed_out {
            return None;
        }
        let response = self.completed_response()?;
        self.handed_out = true;
        Some(response)
    }

    /// The vendor state of a complete chat-door answer's tool calls, `(tool-call id,
    /// thinking_blocks array)`, the first time the answer is complete; empty before, after,
    /// and for answers that carry none ([`kept_state`]). The caller keeps it before the
    /// answer's end goes out, so the client's next turn finds it.
    pub fn take_vendor_state(&mut self) -> Vec<(String, Bytes)> {
        match self.kept.as_mut() {
            Some(kept) if self.complete => kept.take(),
            _ => Vec::new(),
        }
    }

    /// A whole non-streaming answer: to chat, metered, then to the client's dialect.
    fn whole(&mut self, whole: Bytes, meter: &mut Meter) -> Result<Bytes, GatewayError> {
        if let Some(batch) = self.gemini_embed {
            // OpenAI's vectors in Google's shape; their usage is metered as the vendor said.
            meter.feed(&whole);
            return gemini_to_embeddings::answer(&whole, batch);
        }
        if self.front == Dialect::Embeddings {
            // Gemini's vectors; the usage in them is the gateway's estimate, metered as such.
            return embeddings_to_gemini::answer(
                &whole,
                &self.model_hint,
                self.base64,
                self.prompt_estimate,
            );
        }
        let chat = match response_body(self.vendor, &whole, &self.model_hint, unix_now()) {
            None => whole,
            Some(t) => t?.body,
        };
        meter.feed(&chat);
        if let Some(kept) = self.kept.as_mut() {
            kept.whole(&chat);
            self.complete = true;
        }
        match self.front {
            Dialect::Messages => messages_to_chat::answer(&chat, &self.model_hint).map(|t| t.body),
            Dialect::Responses => {
                let body =
                    responses_to_chat::answer(&chat, &self.model_hint, unix_now(), &self.identity)?
                        .body;
                let shown = responses_to_chat::client_view(&self.identity, &body);
                self.completed = Some(body);
                Ok(shown)
            }
            Dialect::Gemini => gemini_to_chat::answer(&chat, &self.model_hint),
            Dialect::Chat | Dialect::Converse | Dialect::Embeddings => Ok(chat),
        }
    }
}

/// The Responses door's identity of an answer: the id and state fields decided before
/// routing, or the defaults (an id derived from the chat answer's) without them.
fn identity(req: &FrontRequest) -> responses_to_chat::Identity {
    let include_encrypted = req.dialect == Dialect::Responses && asks_encrypted(&req.body);
    match &req.pending {
        Some(p) => responses_to_chat::Identity {
            id: Some(p.id.clone()),
            store: p.store,
            previous_response_id: p.previous_response_id.clone(),
            tools: hosted_tools::Namespaced::of_request(&req.body),
            include_encrypted,
        },
        None if req.dialect == Dialect::Responses => responses_to_chat::Identity {
            tools: hosted_tools::Namespaced::of_request(&req.body),
            include_encrypted,
            ..responses_to_chat::Identity::default()
        },
        None => responses_to_chat::Identity::default(),
    }
}

/// Whether a Responses request's `include` names `reasoning.encrypted_content`.
fn asks_encrypted(body: &[u8]) -> bool {
    if memchr::memmem::find(body, responses_to_chat::INCLUDE_ENCRYPTED.as_bytes()).is_none() {
        return false;
    }
    #[derive(serde::Deserialize)]
    struct Include {
        #[serde(default)]
        include: Option<Vec<String>>,
    }
    serde_json::from_slice::<Include>(body).is_ok_and(|i| {
        i.include
            .unwrap_or_default()
            .iter()
            .any(|s| s == responses_to_chat::INCLUDE_ENCRYPTED)
    })
}

/// The built-in mock's answer at any front door.
pub struct MockAnswer {
    pub content_type: &'static str,
    pub chunks: Vec<Bytes>,
    pub usage: crate::accounting::usage::Usage,
    /// Responses door: the whole `response` object, for the response store.
    pub completed: Option<serde_json::Value>,
}

/// The built-in mock's answer at any front door: its chat answer translated like any chat
/// vendor's, or its embeddings.
pub fn mock_answer(
    req: &mut FrontRequest,
    id: &str,
    created: u64,
    model: &str,
) -> Result<MockAnswer, GatewayError> {
    if req.dialect == Dialect::Gemini {
        return gemini_mock_answer(req, id, model);
    }
    if req.dialect == Dialect::Embeddings {
        let (body, usage) = providers::mock::embeddings(&embeddings::parse(&req.body)?, model);
        return Ok(MockAnswer {
            content_type: "application/json",
            chunks: vec![body],
            usage,
            completed: None,
        });
    }
    let pivot = chat_pivot(req)?;
    let mut adjusted = pivot.adjusted.clone();
    let pivot = pivot.body.clone();
    let view = chat::parse(&pivot)?;
    // The mock hosts no tools: a hosted web search is left out, as for any chat vendor.
    if view.field("web_search_options").is_some() {
        adjusted.note(hosted_tools::WEB_SEARCH);
    }
    req.adjusted = adjusted;
    let reply = providers::mock::reply(&view);
    let (content_type, chunks) = if view.stream {
        let events = providers::mock::stream_events(id, created, model, &reply);
        ("text/event-stream", events)
    } else {
        let body = providers::mock::completion(id, created, model, &reply);
        ("application/json", vec![body])
    };
    let Some(mut t) = AnswerTranslation::new(req, ProviderKind::Mock, model) else {
        return Ok(MockAnswer {
            content_type,
            chunks,
            usage: reply.usage(),
            completed: None,
        });
    };
    let n = chunks.len();
    let mut out = Vec::with_capacity(n + 1);
    for (i, chunk) in chunks.into_iter().enumerate() {
        if let Some(b) = t.chunk(Some(chunk), i + 1 == n, &mut Meter::None)? {
            if !b.is_empty() {
                out.push(b);
            }
        }
    }
    Ok(MockAnswer {
        content_type,
        chunks: out,
        usage: reply.usage(),
        completed: t.completed_response(),
    })
}

/// The built-in mock's answer at the Gemini door, in Google's shapes: a generation (whole, or
/// a stream in the framing the client asked), or embeddings.
fn gemini_mock_answer(
    req: &FrontRequest,
    id: &str,
    model: &str,
) -> Result<MockAnswer, GatewayError> {
    use crate::dialect::gemini::{array, door::Method, view};
    let method = req.gemini_method.unwrap_or(Method::Generate);
    let view = view::parse(&req.body, method)?;
    if method.embeds() {
        let texts = view.embed_texts();
        let (body, usage) =
            providers::mock::gemini_embeddings(&texts, method == Method::BatchEmbed);
        return Ok(MockAnswer {
            content_type: "application/json",
            chunks: vec![body],
            usage,
            completed: None,
        });
    }
    let texts: Vec<String> = view.texts();
    let reply = providers::mock::reply_to(&texts, view.max_tokens);
    let id = id.trim_start_matches("chatcmpl-");
    let events = providers::mock::gemini(id, model, &reply, req.stream);
    let (content_type, chunks) = match (req.stream, req.gemini_sse) {
        (false, _) => ("application/json", events),
        (true, true) => ("text/event-stream", events),
        (true, false) => ("application/json", vec![array::whole(&events)]),
    };
    Ok(MockAnswer {
        content_type,
        chunks,
        usage: reply.usage(),
        completed: None,
    })
}

/// One chunk through a stream translator; at the end, with what only the end can tell.
fn through(t: &mut dyn SseTranslator, input: &[u8], end: bool) -> Bytes {
    let out = t.feed(input);
    if !end {
        return out;
    }
    joined(out, t.finish())
}

/// [`through`] the door's leg of a translated stream, which hands each chat event it decodes
/// to `meter` ([`SseTranslator::feed_metered`]).
fn through_metered(t: &mut dyn SseTranslator, input: &[u8], end: bool, meter: &mut Meter) -> Bytes {
    let out = t.feed_metered(input, meter);
    if !end {
        return out;
    }
    joined(out, t.finish_metered(meter))
}

/// `out` then `last`, copied only when both hold bytes.
fn joined(out: Bytes, last: Bytes) -> Bytes {
    if out.is_empty() {
        return last;
    }
    if last.is_empty() {
        return out;
    }
    let mut both = BytesMut::with_capacity(out.len() + last.len());
    both.extend_from_slice(&out);
    both.extend_from_slice(&last);
    both.freeze()
}

/// The vendor body for a provider that does not speak OpenAI's dialect (the chat pivot's leg
/// to the vendor: `chat_to_<vendor>`), or `None` for chat vendors (`openai`, `azure`,
/// `mock`), whose body is the client's own ([`crate::dialect::body::Prepared`]).
/// What the leg changes for the vendor is noted in `adjusted`; a hosted web search
/// (`web_search_options`) becomes the vendor's own or is left out ([`hosted_tools`]).
pub fn request_body(
    provider: &Provider,
    req: &ChatRequest<'_>,
    upstream_model: &str,
    adjusted: &mut Adjustments,
) -> Option<Result<Bytes, GatewayError>> {
    let vendor = providers::dialect_for(provider, upstream_model);
    let body = match vendor {
        Dialect::Messages => {
            chat_to_messages::request(req, upstream_model, provider.default_max_tokens, adjusted)
        }
        Dialect::Gemini => chat_to_gemini::request(req, adjusted),
        Dialect::Converse => chat_to_converse::request(req, upstream_model, adjusted),
        Dialect::Chat | Dialect::Embeddings | Dialect::Responses => return None,
    };
    let Some(options) = req.field("web_search_options") else {
        return Some(body);
    };
    let options: serde_json::Value = serde_json::from_str(options.get()).unwrap_or_default();
    Some(body.map(|b| hosted_tools::vendor_web_search(vendor, b, &options, adjusted)))
}

/// A translating vendor's successful non-streaming answer as an OpenAI `chat.completion`, or
/// `None` for vendors that already answer in the chat dialect.
pub fn response_body(
    vendor: Dialect,
    body: &[u8],
    model_hint: &str,
    created: u64,
) -> Option<Result<Translated, GatewayError>> {
    match vendor {
        Dialect::Messages => Some(chat_to_messages::answer(body, model_hint, created)),
        Dialect::Gemini => Some(chat_to_gemini::answer(body, model_hint, created)),
        Dialect::Converse => Some(chat_to_converse::answer(body, model_hint, created)),
        Dialect::Chat | Dialect::Embeddings | Dialect::Responses => None,
    }
}

/// The stream translator from a vendor's dialect to chat, or `None` for chat vendors.
/// `model_hint` (the route's upstream model) names the model until the vendor says its own.
pub fn stream_translator(
    vendor: Dialect,
    model_hint: &str,
    created: u64,
) -> Option<Box<dyn SseTranslator>> {
    match vendor {
        Dialect::Messages => Some(Box::new(chat_to_messages::Stream::new(model_hint, created))),
        Dialect::Gemini => Some(Box::new(chat_to_gemini::Stream::new(model_hint, created))),
        Dialect::Converse => Some(Box::new(chat_to_converse::Stream::new(model_hint, created))),
        Dialect::Chat | Dialect::Embeddings | Dialect::Responses => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_cut_out_where_it_stands() {
        let cut = |text: &str, key: &str| {
            let v: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
                serde_json::from_str(text).unwrap();
            let r = chat_vendor::member_range(text, v[key].get());
            format!("{}{}", &text[..r.start], &text[r.end..])
        };
        let m = r#"{"role":"assistant","thinking_blocks":[{"a":1}],"content":"x"}"#;
        assert_eq!(
            cut(m, "thinking_blocks"),
            r#"{"role":"assistant","content":"x"}"#
        );
        let m = r#"{"thinking_blocks" : [] , "role":"assistant"}"#;
        assert_eq!(cut(m, "thinking_blocks"), r#"{"role":"assistant"}"#);
        let m = r#"{"role":"assistant", "thinking_blocks": []}"#;
        assert_eq!(cut(m, "thinking_blocks"), r#"{"role":"assistant"}"#);
    }

    /// What a meter read: (started, refused, error, usage as settled).
    fn read(m: &mut Meter) -> (bool, bool, Option<String>, String) {
        let (started, refused) = (m.started(), m.refused());
        let error = m.stream_error().map(str::to_string);
        (started, refused, error, format!("{:?}", m.settle(7)))
    }

    /// The door's leg of a translated stream meters the chat events it decodes: the client
    /// gets the same bytes, and the meter reads the same, after every chunk and at the end,
    /// as when it decoded the chat bytes itself — wherever the stream is cut, with an event
    /// after `[DONE]` and with a last event left without its blank line (whole or cut).
    #[test]
    fn the_door_leg_meters_what_it_decodes() {
        let fixtures: [&[u8]; 4] = [
            include_bytes!("../../tests/fixtures/openai/stream_text.sse"),
            include_bytes!("../../tests/fixtures/openai/stream_tool_calls.sse"),
            include_bytes!("../../tests/fixtures/openai/stream_content_filter.sse"),
            include_bytes!("../../tests/fixtures/openai/stream_error.sse"),
        ];
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for f in fixtures {
            inputs.push(f.to_vec());
            let mut after = f.to_vec();
            after
                .extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n");
            inputs.push(after);
            // The last event without its blank line, then cut inside its data.
            let open = f.trim_ascii_end().to_vec();
            inputs.push(open.clone());
            inputs.push(open[..open.len() - 3].to_vec());
        }
        // No usage: the estimate counts the text of the last event, left without its blank
        // line, and only at the end.
        inputs.push(
            b"data: {\"id\":\"chatcmpl-1\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"}}]}".to_vec(),
        );
        let doors: [fn() -> Box<dyn SseTranslator>; 2] = [
            || Box::new(messages_to_chat::Stream::new("m")),
            || Box::new(responses_to_chat::Stream::new("m", 1)),
        ];
        for input in &inputs {
            for door in doors {
                // Every fifth byte, and each of the last ten (where the end is told).
                let len = input.len();
                for cut in (0..=len).filter(|c| c % 5 == 0 || len - c < 10) {
                    let (a, b) = input.split_at(cut);
                    let (mut old_t, mut new_t) = (door(), door());
                    let mut old_m = Meter::stream_of(Dialect::Chat);
                    let mut new_m = Meter::stream_of(Dialect::Chat);
                    old_m.feed(a);
                    let old_a = through(old_t.as_mut(), a, false);
                    let new_a = through_metered(new_t.as_mut(), a, false, &mut new_m);
                    assert_eq!(old_a, new_a, "cut at {cut}");
                    assert_eq!(
                        (old_m.started(), old_m.refused(), old_m.stream_error()),
                        (new_m.started(), new_m.refused(), new_m.stream_error()),
                        "cut at {cut}"
                    );
                    old_m.feed(b);
                    let old_b = through(old_t.as_mut(), b, true);
                    let new_b = through_metered(new_t.as_mut(), b, true, &mut new_m);
                    assert_eq!(old_b, new_b, "cut at {cut}");
                    assert_eq!(read(&mut old_m), read(&mut new_m), "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn dispatch_by_kind() {
        let body = include_bytes!("../../tests/fixtures/anthropic/message_text.json");
        let t = response_body(Dialect::Messages, body, "h", 1)
            .unwrap()
            .unwrap();
        assert_eq!(t.finish_reason, "stop");
        let body = include_bytes!("../../tests/fixtures/gemini/generate_text.json");
        assert!(response_body(Dialect::Gemini, body, "h", 1)
            .unwrap()
            .is_ok());
        for kind in [
            ProviderKind::OpenAi,
            ProviderKind::Azure,
            ProviderKind::Mock,
        ] {
            let vendor = providers::dialect(kind);
            assert!(response_body(vendor, b"{}", "h", 1).is_none());
            assert!(stream_translator(vendor, "h", 1).is_none());
        }
        let mut t = stream_translator(Dialect::Gemini, "h", 1).unwrap();
        t.feed(include_bytes!(
            "../../tests/fixtures/gemini/stream_text.sse"
        ));
        assert!(t.finish().ends_with(b"data: [DONE]\n\n"));
        assert!(t.is_done() && t.usage().is_some());
    }
}
