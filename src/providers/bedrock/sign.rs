//! AWS Signature Version 4 over a finished upstream head, with `aws-sigv4` (service
//! `bedrock`, the provider's region).
//!
//! - Signed: `host`, `content-type`, and the signer's own `x-amz-date` (and
//!   `x-amz-security-token` when the credentials carry a session token: "Add the session
//!   token to the request", AWS General Reference, "Create a signed AWS API request"). The
//!   headers the gateway sets after signing (`x-request-id`, `traceparent`) and the client's
//!   forwarded ones are left out of `SignedHeaders`, so setting them later cannot break the
//!   signature.
//! - The canonical URI is the path as sent, percent-encoded once more: every AWS service but
//!   S3 takes the double encoding ("Create a canonical request": "Normalize URI paths
//!   according to RFC 3986 … each path segment must be URI-encoded twice (except for Amazon
//!   S3)"), which is `aws-sigv4`'s default `PercentEncodingMode::Double`. A model ARN in the
//!   path (`arn%3Aaws%3Abedrock…`) is therefore signed as `arn%253Aaws%253Abedrock…`.
//! - The payload hash is the body's SHA-256, not sent as a header (Bedrock does not ask for
//!   `x-amz-content-sha256`).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign as sigv4, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};

/// The SigV4 service name of Bedrock Runtime (its endpoints' signing name).
pub const SERVICE: &str = "bedrock";

/// Signs `head` (whose Host and content type are set) and `body` for `region` with
/// `credentials` at `time`, adding `authorization`, `x-amz-date` and, with a session token,
/// `x-amz-security-token`. `Err` says why, without any secret.
pub fn sign(
    head: &mut http::request::Parts,
    body: &[u8],
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<(), String> {
    let host = header(head, HOST)?;
    let content_type = header(head, CONTENT_TYPE)?;
    let path = head
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let method = head.method.as_str().to_string();
    let signed = [
        ("host", host.as_str()),
        ("content-type", content_type.as_str()),
    ];
    let request = SignableRequest::new(
        &method,
        format!("https://{host}{path}"),
        signed.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let (instructions, _signature) = sigv4(request, &params)
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    for h in headers {
        let name = HeaderName::from_static(h.name());
        let mut value = HeaderValue::from_str(h.value())
            .map_err(|_| "cannot sign the request: a bad header value".to_string())?;
        value.set_sensitive(h.sensitive() || name == http::header::AUTHORIZATION);
        head.headers.insert(name, value);
    }
    Ok(())
}

/// A header of `head` the signature needs, as text.
fn header(head: &http::request::Parts, name: HeaderName) -> Result<String, String> {
    head.headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| format!("cannot sign the request: no {name} header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example (General Reference, "Signature Version 4 test suite",
    /// `get-vanilla`-style keys): the signer's output is stable and shaped as AWS says.
    #[test]
    fn signs_with_the_session_token_and_double_encoded_path() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
            None,
            "test",
        );
        let (mut head, ()) = http::Request::builder()
            .method("POST")
            .uri("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fp/invoke")
            .header("host", "bedrock-runtime.us-east-1.amazonaws.com")
            .header("content-type", "application/json")
            .header("traceparent", "00-1-2-01")
            .body(())
            .unwrap()
            .into_parts();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        sign(&mut head, b"{}", "us-east-1", &creds, time).unwrap();
        let get = |n: &str| head.headers.get(n).unwrap().to_str().unwrap().to_string();
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        assert_eq!(get("x-amz-security-token"), "session-token");
        let auth = get("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
            ),
            "{auth}"
        );
        assert!(head.headers.get("authorization").unwrap().is_sensitive());
    }
}
