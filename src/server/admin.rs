//! The admin listener: `/metrics`, `/healthz`, `/readyz`, and the runtime key API under
//! `/v1/keys` ([`keys`], behind its own credential). Never on the public listener.

mod keys;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::snapshot::Snapshot;
use crate::error::GatewayError;
use crate::observability::metrics::Metrics;
use crate::policy::limits::Limiter;
use crate::policy::runtime_keys::RuntimeKeys;
use crate::server::request_head;

pub struct AdminApp {
    pub snapshot: Arc<Snapshot>,
    pub metrics: Arc<Metrics>,
    /// Publishes the budget gauges before each scrape (`Limiter::publish_budgets`).
    pub limiter: Arc<Limiter>,
    /// Where the API listener can be reached from this host, to tell that it accepts.
    pub api_probe: Option<SocketAddr>,
    /// Whether the API listener serves TLS (the probe then completes a handshake).
    pub api_tls: bool,
    /// The keys issued at runtime, served under `/v1/keys`.
    pub runtime_keys: Arc<RuntimeKeys>,
}

/// The address that reaches a listener bound to `listen` from this host: a wildcard bind
/// (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn probe_address(listen: &str) -> Option<SocketAddr> {
    let mut addr: SocketAddr = listen.parse().ok()?;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    Some(addr)
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let limits = self.snapshot.load().server.head;
        if let Err(e) = request_head::check(session.req_header(), &limits) {
            return refuse(&e);
        }
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        if path == "/v1/keys" || path.starts_with("/v1/keys/") {
            return keys::serve(self, session, &method, &path).await;
        }
        if method != http::Method::GET && method != http::Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"GET only\n".to_vec(),
            );
        }
        match path.as_str() {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => self.readyz().await,
            "/metrics" => {
                self.limiter.publish_budgets(&self.snapshot.load()).await;
                let (body, content_type) = self.metrics.render();
                reply(StatusCode::OK, &content_type, body)
            }
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

impl AdminApp {
    /// Ready once a valid config is loaded and the API listener accepts connections (pingora
    /// binds each service's listener separately, so the admin one answering proves nothing
    /// about the API one; and during a drain the API listener is closed: not ready). Shows
    /// which file is serving, its SHA-256, and when it was taken (start or last successful
    /// reload), so an operator can tell whether an edit was picked up.
    async fn readyz(&self) -> Response<Vec<u8>> {
        if let Some(addr) = self.api_probe {
            if !probe(addr, self.api_tls).await {
                let body = json!({"status": "not_ready", "reason": "the API listener does not accept connections"});
                return reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    body.to_string().into_bytes(),
                );
            }
        }
        let config = self.snapshot.load();
        let body = json!({
            "status": "ready",
            "config_file": config.source.display().to_string(),
            "config_hash": config.hash,
            "config_loaded_at": self.snapshot.loaded_at(),
        });
        reply(
            StatusCode::OK,
            "application/json",
            body.to_string().into_bytes(),
        )
    }
}

/// Whether the API listener at `addr` accepts a connection (and, with TLS, a handshake).
async fn probe(addr: SocketAddr, tls: bool) -> bool {
    let within = Duration::from_millis(500);
    if tls {
        return crate::server::tls::probe(addr, within).await;
    }
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(tokio::time::timeout(within, connect).await, Ok(Ok(_)))
}

/// An error of the gateway's own, in the spec's JSON shape.
fn refuse(e: &GatewayError) -> Response<Vec<u8>> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    reply(status, "application/json", e.body().to_vec())
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}
