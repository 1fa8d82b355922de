//! The first phase of a request (the map is in `super`): from its path to an `Admitted`
//! request, or a refusal. Routes the path to its front door, authenticates, reads the body
//! and the door's view of it, applies the content policies, resolves the model, reserves
//! against the limits and picks the first route. The door's own answers (`/v1/models` and
//! `/v1/models/{id}`, a stored response, the mock, an estimated `count_tokens`) are written
//! here.

use std::sync::Arc;
use std::time::SystemTime;

use pingora::http::RequestHeader;

use super::{answer, Admitted, Chosen, Gateway, Record};
use crate::config::{Config, Model};
use crate::dialect::body::{self, BodyError};
use crate::dialect::gemini::door::{self as gemini_door, Method as GeminiMethod};
use crate::dialect::request::FrontRequest;
use crate::dialect::Dialect;
use crate::error::GatewayError;
use crate::gateway::failed;
use crate::policy::attribution;
use crate::policy::auth::{self, Principal};
use crate::policy::content_filter;
use crate::policy::health::now_ms;
use crate::policy::jwt;
use crate::policy::limits::Demand;
use crate::policy::models;
use crate::policy::router::{self, Next};
use crate::providers::{self, Operation};
use crate::response_store::{self, door};
use crate::server::downstream::Session;
use crate::server::request_head;

/// How `admit` ended when it did not refuse.
pub(super) enum Admit {
    /// Go on to the upstream. Boxed: moved from `admit` to `serve` to `forward` by a pointer,
    /// and held in an open stream's future as one.
    Forward(Box<Admitted>),
    /// The answer was written already (mock provider, `/v1/models`, a stored response, an
    /// estimated `count_tokens`).
    Answered,
}

/// Why a request is not forwarded.
pub(super) enum Refused {
    Error(GatewayError),
    /// The client went away; nobody to answer.
    ClientGone,
}

impl From<GatewayError> for Refused {
    fn from(e: GatewayError) -> Self {
        Refused::Error(e)
    }
}

/// Which endpoint a request is for.
enum Endpoint {
    Chat,
    /// Anthropic's Messages API, the second front door.
    Messages,
    /// Anthropic's token counting: answered by Anthropic routes, estimated for others.
    CountTokens,
    Embeddings,
    /// OpenAI's Responses API.
    Responses,
    /// `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`: from the response store.
    StoredResponse(door::Call),
    /// `GET /v1/models` (`None`) or `GET /v1/models/{id}` (and Google's `/v1beta/models…`).
    Models(Option<String>),
    /// Google's Gemini API: a call on a model (`…/models/{model}:generateContent`, …).
    Gemini(gemini_door::Call),
}

impl Gateway {
    /// Everything `admit` decides, as plain steps that each may refuse the request. What it
    /// learns on the way goes into `record`, so that a refusal is counted with it.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        record: &mut Record,
    ) -> Result<Admit, Refused> {
        let head = session.req_header();
        // The Gemini door refuses in Google's shape from the first check on.
        let google_path = gemini_door::claims(&head.method, head.uri.path());
        if google_path {
            record.front = Dialect::Gemini;
        }
        request_head::check(head, &self.snapshot.load().server.head)?;
        let endpoint = endpoint(head)?;
        let config = self.snapshot.load();
        // `/v1/models` answers (and refuses) in the shape of the client that asks.
        let anthropic_client = models::anthropic_client(head);
        let google_client = google_path || models::google_client(head);
        record.front = match endpoint {
            Endpoint::Messages | Endpoint::CountTokens => Dialect::Messages,
            Endpoint::Gemini(_) => Dialect::Gemini,
            Endpoint::Models(_) if google_client => Dialect::Gemini,
            Endpoint::Models(_) if anthropic_client => Dialect::Messages,
            Endpoint::Embeddings => Dialect::Embeddings,
            Endpoint::Responses | Endpoint::StoredResponse(_) => Dialect::Responses,
            Endpoint::Chat | Endpoint::Models(_) => Dialect::Chat,
        };
        record.operation = match &endpoint {
            Endpoint::CountTokens => Operation::CountTokens,
            Endpoint::Embeddings => Operation::Embed,
            Endpoint::Responses => Operation::Respond,
            Endpoint::Gemini(call) => match call.method {
                GeminiMethod::Generate | GeminiMethod::Stream => Operation::Generate,
                GeminiMethod::CountTokens => Operation::CountTokens,
                GeminiMethod::Embed => Operation::EmbedOne,
                GeminiMethod::BatchEmbed => Operation::Embed,
            },
            _ => Operation::Generate,
        };
        let principal = authenticate(&config, session.req_header(), record.front).await?;
        record.principal = Some(principal.clone());

        if let Endpoint::Models(id) = &endpoint {
            self.peek_rate_headers(record).await;
            let shape = match record.front {
                Dialect::Messages => models::Shape::Anthropic,
                Dialect::Gemini => models::Shape::Google,
                _ => models::Shape::OpenAi,
            };
            let body = match id {
                None => {
                    let query = session.req_header().uri.query();
                    models::list(&config, &principal, shape, query)?
                }
                Some(id) => models::retrieve(&config, &principal, shape, id)?,
            };
            answer::write_answer(session, record, 200, "application/json", vec![body]).await;
            return Ok(Admit::Answered);
        }
        if let Endpoint::StoredResponse(call) = &endpoint {
            self.peek_rate_headers(record).await;
            let query = session.req_header().uri.query();
            let body = door::answer(&self.responses, &principal.team.name, call, query).await?;
            answer::write_answer(session, record, 200, "application/json", vec![body]).await;
            return Ok(Admit::Answered);
        }

        let bytes = match body::read(session, config.server.max_request_bytes).await {
            Ok(b) => b,
            Err(BodyError::TooLarge { .. }) => {
                return Err(GatewayError::PayloadTooLarge {
                    limit: config.server.max_request_bytes,
                }
                .into())
            }
            Err(BodyError::ClientGone) => return Err(Refused::ClientGone),
            Err(BodyError::Gateway(e)) => return Err(e.into()),
        };
        let req = match &endpoint {
            Endpoint::Gemini(call) => FrontRequest::read_gemini(bytes, call)?,
            _ => FrontRequest::read(record.front, bytes)?,
        };
        record.attribution = attribution::read(
            &principal.team,
            &session.req_header().headers,
            req.body_user.as_ref(),
        )?;
        if let Some(user) = &principal.user {
            // A JWT's user is the signed one, whatever the client's headers say.
            record.attribution.user = Some(user.clone());
        }
        let req = response_store::expand(&self.responses, &principal.team.name, req).await?;
        let req =
            response_store::vendor_state::recall(&self.responses, &principal.team.name, req).await;
        record.stream = req.stream;
        record.array_stream = req.stream && req.dialect == Dialect::Gemini && !req.gemini_sse;
        record.prompt_estimate = req.prompt_estimate;
        if let Some(filter) = content_filter::check(&config, &principal.team, || req.texts()) {
            self.metrics
                .content_filtered
                .with_label_values(&[&principal.team.name, &filter.name])
                .inc();
            return Err(GatewayError::ContentFilter.into());
        }
        let model = router::resolve(&config, &principal.team, &req.model)?;
        record.model = Some(model.clone());
        models::check_kind(&model, record.operation)?;

        // Counting tokens generates nothing: it is not charged against tpm or budgets.
        if record.operation != Operation::CountTokens {
            self.reserve(record, &config, &principal, &model, req.max_tokens)
                .await?;
        }

        let route = self.first_route(&config, &principal, &model)?;
        let deadline = record.started + route.provider.timeouts.total;
        let vendor = providers::vendor(route.provider.kind);
        let counts = vendor.counts_tokens(record.front)
            && providers::serves(&route.provider, route.upstream_model(), record.front);
        if record.operation == Operation::CountTokens && !counts {
            record.route = Some(route);
            self.peek_rate_headers(record).await;
            let body = match record.front {
                // Google's `CountTokensResponse`.
                Dialect::Gemini => format!(r#"{{"totalTokens":{}}}"#, req.prompt_estimate),
                _ => format!(r#"{{"input_tokens":{}}}"#, req.prompt_estimate),
            };
            answer::write_answer(session, record, 200, "application/json", vec![body.into()]).await;
            return Ok(Admit::Answered);
        }
        let mut admitted = Box::new(Admitted {
            config,
            principal,
            model,
            request: req,
            route,
            deadline,
        });
        if vendor.is_local() {
            answer::answer_mock(session, record, &mut admitted, &self.responses).await;
            record.route = Some(admitted.route);
            return Ok(Admit::Answered);
        }
        Ok(Admit::Forward(admitted))
    }

    /// Admits the request against the limits (`crate::policy::limits`): what it reserves is
    /// settled in `logging`; a rejection refuses it, with the limits' headers.
    async fn reserve(
        &self,
        record: &mut Record,
        config: &Config,
        principal: &Principal,
        model: &Model,
        max_tokens: Option<u64>,
    ) -> Result<(), GatewayError> {
        let demand = Demand::estimate(model, record.prompt_estimate, max_tokens, &config.limits);
        let user = record.attribution.user.as_deref();
        match self
            .limiter
            .admit_for(&principal.key, &principal.team, user, demand)
            .await
        {
            Ok(admission) => {
                record.rate_headers = Some(admission.headers().clone());
                record.admission = Some(admission);
                Ok(())
            }
            Err(rejection) => {
                record.rate_headers = Some(rejection.headers().clone());
                Err(rejection.to_error())
            }
        }
    }

    /// The first route for `model` (a fallback's when its own are all down; counted in
    /// `switchyard_fallbacks_total`).
    fn first_route(
        &self,
        config: &Config,
        principal: &Principal,
        model: &Arc<Model>,
    ) -> Result<Chosen, GatewayError> {
        let next = router::next(
            config,
            &principal.team,
            model,
            &[],
            &self.health,
            true,
            false,
            now_ms(),
        );
        let choice = match next {
            Next::Try(choice) => choice,
            Next::Exhausted { blocked_ms } => return Err(failed::no_route_left(model, blocked_ms)),
        };
        if choice.model.name != model.name {
            self.metrics
                .fallbacks
                .with_label_values(&[&model.name, &choice.model.name])
                .inc();
        }
        Ok(Chosen::new(config, choice))
    }
}

/// The caller's key: a bearer token, or (on the Anthropic door, and from an Anthropic client
/// on `/v1/models`, as Anthropic's SDKs send it) `x-api-key`, or (on the Gemini door, and
/// from a Google client on `/v1/models`, as Google's SDKs and CLI send it) `x-goog-api-key`
/// or the query's `key` ([`gemini_key`]).
///
/// A JWT-shaped bearer token (or `x-api-key` on the Messages door, the Google key on the
/// Gemini door) goes to `jwt` when an issuer is configured; anything else is a key.
async fn authenticate(
    config: &Config,
    req: &RequestHeader,
    front: Dialect,
) -> Result<Principal, GatewayError> {
    let auth_header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let google_key = match front {
        Dialect::Gemini => gemini_key(req, auth_header)?,
        _ => None,
    };
    if let Some(key) = &google_key {
        if !config.jwt.is_empty() && jwt::looks_like_jwt(key.as_bytes()) {
            return jwt::authenticate(config, key.as_bytes()).await;
        }
        return auth::authenticate_secret(config, key.as_bytes(), SystemTime::now());
    }
    let api_key = req.headers.get("x-api-key").map(|v| v.as_bytes());
    let token = match (auth_header, api_key, front) {
        (None, Some(key), Dialect::Messages) => Some(key.trim_ascii()),
        _ => auth_header.and_then(auth::bearer),
    };
    if let Some(token) = token.filter(|t| !config.jwt.is_empty() && jwt::looks_like_jwt(t)) {
        return jwt::authenticate(config, token).await;
    }
    match (auth_header, api_key, front) {
        (None, Some(key), Dialect::Messages) => {
            auth::authenticate_secret(config, key, SystemTime::now())
        }
        _ => auth::authenticate(config, auth_header, SystemTime::now()),
    }
}

/// The Google way of sending a key: `x-goog-api-key` or the query's `key` (Gemini API
/// reference, "API keys": the key "in the `x-goog-api-key` header" or as the `key` query
/// parameter); `None` when the client sent neither (a bearer key is then read as at every
/// door). Two keys that differ (the header, the query and a bearer), or `key` given twice in
/// the query, are a 400: the gateway would check one and a reader of the request another.
/// The query's key never leaves the request head: traces and logs show the path alone, and
/// the upstream's path is the vendor's own (`crate::providers`).
fn gemini_key(
    req: &RequestHeader,
    auth_header: Option<&[u8]>,
) -> Result<Option<String>, GatewayError> {
    let mut keys = gemini_door::query_values(req.uri.query(), "key");
    if keys.len() > 1 {
        return Err(GatewayError::InvalidParam {
            message: "`key` is given twice in the query".into(),
            param: "key".into(),
        });
    }
    if let Some(v) = req.headers.get("x-goog-api-key") {
        keys.push(String::from_utf8_lossy(v.as_bytes()).trim().to_string());
    }
    let Some(first) = keys.first().cloned() else {
        return Ok(None);
    };
    let bearer = auth_header.map(|h| auth::bearer(h).unwrap_or_default());
    let differs = keys.iter().any(|k| *k != first) || bearer.is_some_and(|b| b != first.as_bytes());
    if differs {
        return Err(GatewayError::InvalidRequest(
            "the request carries two different keys (`x-goog-api-key`, the query's `key`, \
             `Authorization`): send one"
                .into(),
        ));
    }
    Ok(Some(first))
}

/// The endpoint of a request line; anything else is a 404 or 405.
fn endpoint(req: &RequestHeader) -> Result<Endpoint, GatewayError> {
    let path = req.uri.path();
    let method = &req.method;
    if let Some(call) = door::route(method, path) {
        return call.map(Endpoint::StoredResponse);
    }
    if let Some(google) = gemini_door::route(method, path, req.uri.query()) {
        return google.map(|e| match e {
            gemini_door::Endpoint::Call(call) => Endpoint::Gemini(call),
            gemini_door::Endpoint::Models(id) => Endpoint::Models(id),
        });
    }
    match path {
        // `/v2/chat/completions`: the chat API this gateway serves names both versions.
        "/v1/chat/completions" | "/v2/chat/completions" | "/chat/completions"
            if method == http::Method::POST =>
        {
            Ok(Endpoint::Chat)
        }
        "/v1/messages" if method == http::Method::POST => Ok(Endpoint::Messages),
        "/v1/messages/count_tokens" if method == http::Method::POST => Ok(Endpoint::CountTokens),
        "/v1/embeddings" | "/embeddings" if method == http::Method::POST => {
            Ok(Endpoint::Embeddings)
        }
        "/v1/responses" | "/responses" if method == http::Method::POST => Ok(Endpoint::Responses),
        "/v1/models" | "/models" if method == http::Method::GET => Ok(Endpoint::Models(None)),
        "/v1/chat/completions"
        | "/v2/chat/completions"
        | "/chat/completions"
        | "/v1/messages"
        | "/v1/messages/count_tokens"
        | "/v1/embeddings"
        | "/embeddings"
        | "/v1/responses"
        | "/responses"
        | "/v1/models"
        | "/models" => Err(GatewayError::MethodNotAllowed {
            method: method.as_str().chars().take(16).collect(),
            allow: if path.ends_with("/models") {
                "GET"
            } else {
                "POST"
            },
        }),
        _ => match model_id(path) {
            Some(id) if method == http::Method::GET => Ok(Endpoint::Models(Some(id))),
            Some(_) => Err(GatewayError::MethodNotAllowed {
                method: method.as_str().chars().take(16).collect(),
                allow: "GET",
            }),
            None => Err(GatewayError::NotFound(format!(
                "no such endpoint: {}",
                path.chars().take(128).collect::<String>()
            ))),
        },
    }
}

/// The model id of `/v1/models/{id}` (or `/models/{id}`), its `%XX` escapes decoded.
fn model_id(path: &str) -> Option<String> {
    let id = path
        .strip_prefix("/v1/models/")
        .or_else(|| path.strip_prefix("/models/"))
        .filter(|id| !id.is_empty())?;
    Some(models::percent_decoded(id))
}

/// The client's `x-request-id` if it is a sane token, else a new random one.
pub(super) fn request_id(req: &RequestHeader) -> String {
    if let Some(v) = req
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        let ok = !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            return v.to_string();
        }
    }
    format!("req_{:032x}", rand::random::<u128>())
}
