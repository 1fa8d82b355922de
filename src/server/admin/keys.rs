//! The runtime key API on the admin listener (`crate::policy::runtime_keys` keeps the keys):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/keys` `{"team", "id"?, "limits"?, "expires_at"?, "metadata"?}` | 201, the key with its secret in `key` (shown this once) |
//! | `GET /v1/keys` | 200 `{"data": [key, …]}` |
//! | `GET /v1/keys/{id}` | 200, the key |
//! | `PATCH /v1/keys/{id}` `{"limits"?, "disabled"?, "expires_at"?, "metadata"?}` | 200, the key |
//! | `DELETE /v1/keys/{id}` | 200 `{"id", "deleted": true}` |
//!
//! A key is shown with its id, team, limits, state, dates, metadata and the first 8 hex digits
//! of its hash (`sha256_prefix`); never its secret (but in the create's answer) nor its hash.
//!
//! The credential: `Authorization: Bearer <token>`, the token read from the environment
//! variable `[server] admin_token_env` names (compared in constant time), or the admin
//! listener's mTLS (`[server] admin_tls_client_ca`: the handshake verified the client's
//! certificate). Without either configured the API is off (403); without the credential,
//! 401. Errors are `{"error": {"type", "message"}}`: 400 naming the field of a malformed body,
//! 404 an unknown id, 405 another method, 409 an id taken, 413 a body over [`MAX_BODY`], 503
//! the store unreachable. Each change writes an audit line (target `switchyard::audit`): who
//! (`admin token` or the mTLS client), what, the key id and team, when; never a secret or hash.

use http::{Method, Response, StatusCode};
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{reply, AdminApp};
use crate::config::Config;
use crate::policy::runtime_keys::{ApiError, RuntimeKey};

/// The largest request body the key API reads.
pub const MAX_BODY: usize = 64 * 1024;

/// Answers a request under `/v1/keys`.
pub(super) async fn serve(
    app: &AdminApp,
    session: &mut ServerSession,
    method: &Method,
    path: &str,
) -> Response<Vec<u8>> {
    let config = app.snapshot.load();
    match route(app, &config, session, method, path).await {
        Ok((status, body)) => reply(status, "application/json", body.to_string().into_bytes()),
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            reply(status, "application/json", e.body())
        }
    }
}

async fn route(
    app: &AdminApp,
    config: &Config,
    session: &mut ServerSession,
    method: &Method,
    path: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let who = caller(config, session)?;
    let keys = &app.runtime_keys;
    let id = path.strip_prefix("/v1/keys/").map(str::to_string);
    match (method, id.as_deref()) {
        (&Method::GET, None) => {
            let all = keys.list().await?;
            let data: Vec<Value> = all.iter().map(RuntimeKey::public).collect();
            Ok((StatusCode::OK, json!({"object": "list", "data": data})))
        }
        (&Method::POST, None) => {
            let body = read_body(session).await?;
            let (record, secret) = keys.create(&body).await?;
            audit(&who, "create", &record);
            let mut shown = record.public();
            if let Value::Object(m) = &mut shown {
                m.insert("key".into(), Value::String(secret));
            }
            Ok((StatusCode::CREATED, shown))
        }
        (&Method::GET, Some(id)) => Ok((StatusCode::OK, keys.get(id).await?.public())),
        (&Method::PATCH, Some(id)) => {
            let body = read_body(session).await?;
            let record = keys.update(id, &body).await?;
            let what = if body_disables(&body) {
                "disable"
            } else {
                "update"
            };
            audit(&who, what, &record);
            Ok((StatusCode::OK, record.public()))
        }
        (&Method::DELETE, Some(id)) => {
            let record = keys.delete(id).await?;
            audit(&who, "delete", &record);
            Ok((StatusCode::OK, json!({"id": record.id, "deleted": true})))
        }
        (_, None) => Err(not_allowed("GET, POST")),
        (_, Some(_)) => Err(not_allowed("GET, PATCH, DELETE")),
    }
}

fn not_allowed(allow: &str) -> ApiError {
    ApiError {
        status: 405,
        kind: "invalid_request_error",
        message: format!("method not allowed here: {allow}"),
    }
}

/// Whether an update sets `disabled: true` (the audit line says "disable").
fn body_disables(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("disabled") == Some(&Value::Bool(true)))
}

/// Who calls: the admin listener's mTLS client, or the holder of the admin token.
fn caller(config: &Config, session: &ServerSession) -> Result<String, ApiError> {
    let mtls = config
        .server
        .tls
        .as_ref()
        .is_some_and(|t| t.admin && t.admin_client_ca.is_some());
    if mtls {
        // The handshake required a certificate the configured CA signed.
        return Ok(mtls_subject(session));
    }
    let Some(token) = &config.runtime_keys.admin_token else {
        return Err(ApiError {
            status: 403,
            kind: "permission_error",
            message: "the key API is off: set [server] admin_token_env (or the admin \
                      listener's mTLS, admin_tls_client_ca)"
                .into(),
        });
    };
    let presented = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| crate::policy::auth::bearer(v.as_bytes()));
    let unauthorized = |message: &str| ApiError {
        status: 401,
        kind: "authentication_error",
        message: message.into(),
    };
    let presented = presented.ok_or_else(|| {
        unauthorized("missing admin token: send `Authorization: Bearer <admin token>`")
    })?;
    // Hashed first, so the comparison is of equal lengths and in constant time.
    let want: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
    let got: [u8; 32] = Sha256::digest(presented).into();
    if bool::from(want.ct_eq(&got)) {
        Ok("admin token".to_string())
    } else {
        Err(unauthorized("invalid admin token"))
    }
}

/// The mTLS client's certificate, as the TLS layer describes it (organization, serial).
fn mtls_subject(session: &ServerSession) -> String {
    let ssl = session.digest().and_then(|d| d.ssl_digest.clone());
    match ssl {
        Some(d) => format!(
            "mTLS client (organization {}, serial {})",
            d.organization.as_deref().unwrap_or("-"),
            d.serial_number.as_deref().unwrap_or("-")
        ),
        None => "mTLS client".to_string(),
    }
}

/// The request body, at most [`MAX_BODY`] bytes (413 beyond).
async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError {
        status: 413,
        kind: "invalid_request_error",
        message: format!("body: larger than {MAX_BODY} bytes"),
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err(ApiError::invalid("body", "could not be read")),
        }
    }
}

/// One audit line per change: who, what, which key of which team, when. No secret, no hash.
fn audit(who: &str, action: &str, record: &RuntimeKey) {
    tracing::info!(
        target: "switchyard::audit",
        who,
        action,
        key_id = %record.id,
        team = %record.team,
        at = %jiff::Timestamp::now(),
        "runtime key {action}"
    );
}
