//! The Gemini front door's paths: which of Google's Gemini API calls a request line is.
//!
//! Google's Gemini API reference (ai.google.dev/api, "Generating content", "Counting tokens",
//! "Embeddings", "Models"): every call on a model is `POST /v1beta/models/{model}:{method}`
//! (the `v1` surface the same under `/v1/`), the model as the last path segment before the
//! `:method` custom verb (gRPC transcoding syntax), and the model list is `GET /v1beta/models`,
//! one model `GET /v1beta/models/{model}`.
//!
//! - `{model}` is a Switchyard model name or alias, `%XX`-decoded; a `models/` prefix inside
//!   the segment (`models%2Fgemini-2.5-flash`, or the SDKs' `models/` doubled in the path) is
//!   tolerated. A tuned model (`tunedModels/…`) is not served: 404 in Google's shape.
//! - the methods: `generateContent`, `streamGenerateContent` (`?alt=sse` for server-sent
//!   events, else Google's streamed JSON array), `countTokens`, `embedContent`,
//!   `batchEmbedContents`; any other is a 404 in Google's shape.
//!
//! `/v1beta/…` is Google's alone; under `/v1/` a model path with a `:method` (POST) is Google's,
//! while `GET /v1/models[/{id}]` answers in Google's shape only when the client authenticated
//! the Google way (`crate::policy::models`).

use crate::error::{printable, GatewayError};

/// One of the Gemini API's calls on a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `:generateContent`: a whole `GenerateContentResponse`.
    Generate,
    /// `:streamGenerateContent`: a stream of `GenerateContentResponse`s.
    Stream,
    /// `:countTokens`: `{"totalTokens": n, …}`.
    CountTokens,
    /// `:embedContent`: one content → `{"embedding": {"values": […]}}`.
    Embed,
    /// `:batchEmbedContents`: `requests[]` → `{"embeddings": [{"values": […]}]}`.
    BatchEmbed,
}

impl Method {
    /// The method of a `:verb`, `None` for a verb the door does not serve.
    fn parse(verb: &str) -> Option<Method> {
        Some(match verb {
            "generateContent" => Method::Generate,
            "streamGenerateContent" => Method::Stream,
            "countTokens" => Method::CountTokens,
            "embedContent" => Method::Embed,
            "batchEmbedContents" => Method::BatchEmbed,
            _ => return None,
        })
    }

    /// The method's name in a path (`generateContent`).
    pub fn verb(self) -> &'static str {
        match self {
            Method::Generate => "generateContent",
            Method::Stream => "streamGenerateContent",
            Method::CountTokens => "countTokens",
            Method::Embed => "embedContent",
            Method::BatchEmbed => "batchEmbedContents",
        }
    }

    /// Whether the method makes embeddings.
    pub fn embeds(self) -> bool {
        matches!(self, Method::Embed | Method::BatchEmbed)
    }
}

/// A call on a model at the Gemini door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The model as the client named it (decoded, without `models/`).
    pub model: String,
    pub method: Method,
    /// The client asked for server-sent events (`alt=sse` in the query); else a stream is
    /// Google's JSON array. Only a stream reads it.
    pub sse: bool,
}

/// What a Gemini request line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST …/models/{model}:{method}`.
    Call(Call),
    /// `GET …/models` (`None`) or `GET …/models/{model}`.
    Models(Option<String>),
}

/// The Gemini endpoint of `method path?query`: `None` when the path is not the Gemini door's
/// (`/v1/models[/{id}]` without a `:method` is left to the OpenAI/Anthropic model list, which
/// answers in Google's shape for a Google client); `Some(Err)`: the door's 404 or 405.
pub fn route(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Option<Result<Endpoint, GatewayError>> {
    if let Some(rest) = path.strip_prefix("/v1beta/") {
        return Some(beta(method, rest, query));
    }
    // `/v1/models/{model}:{verb}`: Google's v1 surface. A GET of an OpenAI model id with a
    // colon (`ft:gpt-4o:org::id`) stays the model list's.
    let rest = path.strip_prefix("/v1/models/")?;
    if method != http::Method::POST || !rest.contains(':') {
        return None;
    }
    Some(on_model(rest, query))
}

/// Whether the request line belongs to the Gemini door, so that its refusals (a 404, a 401)
/// are in Google's shape: everything under `/v1beta/`, and a `POST /v1/models/…:…`.
pub fn claims(method: &http::Method, path: &str) -> bool {
    path.starts_with("/v1beta/")
        || (method == http::Method::POST
            && path
                .strip_prefix("/v1/models/")
                .is_some_and(|r| r.contains(':')))
}

/// A path under `/v1beta/`.
fn beta(method: &http::Method, rest: &str, query: Option<&str>) -> Result<Endpoint, GatewayError> {
    if rest.starts_with("tunedModels/") || rest == "tunedModels" {
        return Err(not_found(format!(
            "tuned models are not served here: {}",
            printable(rest, 128)
        )));
    }
    if rest == "models" {
        return match *method {
            http::Method::GET => Ok(Endpoint::Models(None)),
            _ => Err(not_allowed(method, "GET")),
        };
    }
    let Some(model) = rest.strip_prefix("models/") else {
        return Err(not_found(format!(
            "no such endpoint: /v1beta/{}",
            printable(rest, 128)
        )));
    };
    if model.contains(':') {
        return match *method {
            http::Method::POST => on_model(model, query),
            _ => Err(not_allowed(method, "POST")),
        };
    }
    match *method {
        http::Method::GET => Ok(Endpoint::Models(Some(model_name(model)?))),
        _ => Err(not_allowed(method, "GET")),
    }
}

/// `{model}:{verb}` (after `models/`), POSTed.
fn on_model(rest: &str, query: Option<&str>) -> Result<Endpoint, GatewayError> {
    let sse = alt_is_sse(query)?;
    let (model, verb) = rest.rsplit_once(':').unwrap_or((rest, ""));
    let method = Method::parse(verb).ok_or_else(|| {
        not_found(format!(
            "no such method on a model: `{}` (served: generateContent, streamGenerateContent, \
             countTokens, embedContent, batchEmbedContents)",
            printable(verb, 64)
        ))
    })?;
    Ok(Endpoint::Call(Call {
        model: model_name(model)?,
        method,
        sse,
    }))
}

/// The query's `alt` (Google's system parameter "alt": the answer's format): `sse`
/// (server-sent events), `json` or none (JSON; a stream is the JSON array). Any other value,
/// or `alt` given twice, is a 400 (Google Cloud docs, "System parameters": `alt` is `json`,
/// `media` or `proto`; `sse` for the streaming methods; the door serves no `media`/`proto`).
fn alt_is_sse(query: Option<&str>) -> Result<bool, GatewayError> {
    match query_values(query, "alt").as_slice() {
        [] => Ok(false),
        [one] if one == "sse" => Ok(true),
        [one] if one == "json" => Ok(false),
        [one] => Err(GatewayError::InvalidParam {
            message: format!(
                "Invalid value at 'alt' ({}): the door answers `json` or `sse`",
                printable(one, 32)
            ),
            param: "alt".into(),
        }),
        _ => Err(GatewayError::InvalidParam {
            message: "`alt` is given twice".into(),
            param: "alt".into(),
        }),
    }
}

/// The model of a path segment: `%XX`-decoded, a `models/` prefix dropped; a tuned model or
/// an empty name is a 404.
fn model_name(segment: &str) -> Result<String, GatewayError> {
    let decoded = crate::policy::models::percent_decoded(segment);
    let name = decoded.strip_prefix("models/").unwrap_or(&decoded);
    if name.starts_with("tunedModels/") {
        return Err(not_found(format!(
            "tuned models are not served here: {}",
            printable(name, 128)
        )));
    }
    if name.is_empty() {
        return Err(not_found("the path names no model".to_string()));
    }
    Ok(name.to_string())
}

/// The value of `name` in a query string (`a=1&b=2`), `%XX`- and `+`-decoded; the first one
/// given.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query_values(query, name).into_iter().next()
}

/// Every value of `name` in a query string, in order, decoded as [`query_value`] does. A
/// system parameter's name may also be written with a `$` (`$key`, `$alt`, `%24key`): Google
/// Cloud docs, "System parameters" (each is given as `name` or `$name` in the URL query).
pub fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    let Some(query) = query else {
        return Vec::new();
    };
    let decode = |s: &str| crate::policy::models::percent_decoded(&s.replace('+', " "));
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k);
            (k.strip_prefix('$').unwrap_or(&k) == name).then(|| decode(v))
        })
        .collect()
}

/// A vendor's stream path without its `alt=sse` (the `gemini` and Vertex paths ask for server-sent
/// events, [`crate::providers`]): the client of a native route asked Google's JSON array, and
/// its vendor is asked the same, so that the answer's bytes pass through.
pub fn without_sse(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query.split('&').filter(|p| *p != "alt=sse").collect();
    match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    }
}

fn not_found(message: String) -> GatewayError {
    GatewayError::NotFound(message)
}

fn not_allowed(method: &http::Method, allow: &'static str) -> GatewayError {
    GatewayError::MethodNotAllowed {
        method: method.as_str().chars().take(16).collect(),
        allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str) -> Option<Result<Endpoint, GatewayError>> {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        route(&method.parse().unwrap(), path, query)
    }

    fn ok(model: &str, method: Method, sse: bool) -> Option<Result<Endpoint, GatewayError>> {
        Some(Ok(Endpoint::Call(Call {
            model: model.into(),
            method,
            sse,
        })))
    }

    #[test]
    fn every_method_under_both_versions() {
        for v in ["v1beta", "v1"] {
            for (verb, m) in [
                ("generateContent", Method::Generate),
                ("streamGenerateContent", Method::Stream),
                ("countTokens", Method::CountTokens),
                ("embedContent", Method::Embed),
                ("batchEmbedContents", Method::BatchEmbed),
            ] {
                let path = format!("/{v}/models/gemini-2.5-flash:{verb}");
                assert_eq!(
                    call("POST", &path),
                    ok("gemini-2.5-flash", m, false),
                    "{path}"
                );
            }
        }
        assert_eq!(
            call(
                "POST",
                "/v1beta/models/g:streamGenerateContent?alt=sse&key=k"
            ),
            ok("g", Method::Stream, true)
        );
    }

    #[test]
    fn the_model_is_decoded_and_its_prefix_dropped() {
        assert_eq!(
            call("POST", "/v1beta/models/models%2Fmy%20model:generateContent"),
            ok("my model", Method::Generate, false)
        );
        assert_eq!(
            call("POST", "/v1beta/models/models/m:generateContent"),
            ok("m", Method::Generate, false)
        );
        // The last colon is the verb's: a model name may hold one.
        assert_eq!(
            call("POST", "/v1/models/ft:x:countTokens"),
            ok("ft:x", Method::CountTokens, false)
        );
    }

    #[test]
    fn alt_is_sse_or_json_once() {
        let stream = |q: &str| {
            call(
                "POST",
                &format!("/v1beta/models/g:streamGenerateContent?{q}"),
            )
        };
        assert_eq!(stream("alt=json"), ok("g", Method::Stream, false));
        assert_eq!(stream("alt=sse"), ok("g", Method::Stream, true));
        for bad in [
            "alt=SSE",
            "alt=proto",
            "alt=media",
            "alt=sse,json",
            "alt=sse&alt=json",
        ] {
            let err = stream(bad).unwrap().unwrap_err();
            assert_eq!((err.status(), err.param()), (400, Some("alt")), "{bad}");
        }
    }

    #[test]
    fn refusals_are_the_doors() {
        let status = |m: &str, p: &str| call(m, p).unwrap().unwrap_err().status();
        assert_eq!(status("POST", "/v1beta/models/m:predict"), 404);
        assert_eq!(status("POST", "/v1beta/tunedModels/t:generateContent"), 404);
        assert_eq!(
            status("POST", "/v1beta/models/tunedModels%2Ft:generateContent"),
            404
        );
        assert_eq!(status("GET", "/v1beta/models/m:generateContent"), 405);
        assert_eq!(status("POST", "/v1beta/models"), 405);
        assert_eq!(status("GET", "/v1beta/files"), 404);
        assert_eq!(status("POST", "/v1/models/m:nothing"), 404);
    }

    #[test]
    fn model_lists() {
        assert_eq!(
            call("GET", "/v1beta/models"),
            Some(Ok(Endpoint::Models(None)))
        );
        assert_eq!(
            call("GET", "/v1beta/models/models%2Fg"),
            Some(Ok(Endpoint::Models(Some("g".into()))))
        );
        // `/v1/models[/{id}]` stays the model list's, which picks the shape by the client.
        assert_eq!(call("GET", "/v1/models"), None);
        assert_eq!(call("GET", "/v1/models/ft:gpt-4o:org::id"), None);
        assert_eq!(call("POST", "/v1/chat/completions"), None);
    }

    #[test]
    fn sse_is_dropped_from_a_vendor_path() {
        assert_eq!(
            without_sse("/v1beta/models/g:streamGenerateContent?alt=sse"),
            "/v1beta/models/g:streamGenerateContent"
        );
        assert_eq!(
            without_sse("/b/m:streamGenerateContent?x=1&alt=sse"),
            "/b/m:streamGenerateContent?x=1"
        );
        assert_eq!(without_sse("/b/m:generateContent"), "/b/m:generateContent");
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query_value(Some("alt=sse&key=a%2Bb"), "key").unwrap(),
            "a+b"
        );
        assert_eq!(query_value(Some("key"), "key").unwrap(), "");
        assert_eq!(query_value(Some("alt=sse"), "key"), None);
        assert_eq!(query_value(None, "key"), None);
        assert_eq!(
            super::query_values(Some("key=a&$key=b&%24key=c&xkey=d"), "key"),
            ["a", "b", "c"]
        );
        assert_eq!(
            call("POST", "/v1beta/models/g:streamGenerateContent?%24alt=sse"),
            ok("g", Method::Stream, true)
        );
    }
}
