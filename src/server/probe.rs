//! Health probes on the API listener, for load balancers that check the port they send
//! traffic to, and for clients that check the gateway is there before they start (Claude Code
//! sends `HEAD /`): `GET`/`HEAD /healthz` answer `200 {"status":"ok"}`, `HEAD /` answers 200
//! with no body. No key is asked for and nothing is counted (no metric, no usage line): a
//! probe is not a request. Readiness (config loaded, Redis reachable) stays on the admin
//! listener's `/readyz`.

use bytes::Bytes;
use pingora::apps::ReusedHttpStream;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::server::downstream::{self, Session};

const BODY: &[u8] = br#"{"status":"ok"}"#;

/// Whether the request is a probe of the API listener.
pub fn is_probe(req: &RequestHeader) -> bool {
    let (get, head) = (
        req.method == http::Method::GET,
        req.method == http::Method::HEAD,
    );
    match req.uri.path() {
        "/healthz" => get || head,
        "/" => head,
        _ => false,
    }
}

/// Answers a probe, then gives the connection back for the next request.
pub async fn answer(mut session: Session) -> Option<ReusedHttpStream> {
    let with_body = session.req_header().uri.path() == "/healthz";
    let mut resp = ResponseHeader::build(200, Some(3)).ok()?;
    let len = if with_body { BODY.len() } else { 0 };
    resp.insert_header("content-type", "application/json")
        .ok()?;
    resp.insert_header("content-length", len.to_string()).ok()?;
    resp.insert_header("cache-control", "no-store").ok()?;
    session.write_response_header(Box::new(resp)).await.ok()?;
    // pingora writes no body on an answer to HEAD, whatever it is given.
    let body = if with_body {
        Bytes::from_static(BODY)
    } else {
        Bytes::new()
    };
    session.write_response_body(body, true).await.ok()?;
    downstream::finish(session).await
}
