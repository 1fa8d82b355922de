//! An identity provider for the JWT tests: signing keys made in the test (RSA from
//! `openssl genpkey`, ES256 and Ed25519 from rcgen), tokens signed by `jsonwebtoken`, and a
//! JWK Set server (axum) whose keys can be rotated, and which can be made to serve garbage
//! or hang, counting its fetches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key of the test's identity provider, with its public JWK.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `use`, `alg`).
    pub jwk: Value,
}

impl SigningKey {
    /// An RSA-2048 key (RS256), from `openssl genpkey`.
    pub fn rsa(kid: &str) -> SigningKey {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl genpkey: {out:?}");
        let pem = String::from_utf8(out.stdout).unwrap();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
        let der = key.to_pkcs1_der().unwrap();
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                        "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())}),
        }
    }

    /// A P-256 key (ES256), from rcgen.
    pub fn es256(kid: &str) -> SigningKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                        "x": b64(&point[1..33]), "y": b64(&point[33..])}),
        }
    }

    /// An Ed25519 key (EdDSA), from rcgen.
    pub fn ed25519(kid: &str) -> SigningKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        SigningKey {
            kid: kid.to_string(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&pair.serialize_der()),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
                        "x": b64(pair.public_key_raw())}),
        }
    }

    /// `claims` signed with this key, the header naming its `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// `claims` signed with this key under `header` as given.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Seconds since the Unix epoch.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What the JWKS server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwksMode {
    Serve,
    /// `200` with an HTML page.
    Garbage,
    /// Headers never come.
    Hang,
}

struct Inner {
    keys: Vec<Value>,
    mode: JwksMode,
    fetches: usize,
}

/// A JWK Set server on loopback: `GET /jwks`.
pub struct JwksServer {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves the public JWKs of `keys`.
    pub async fn start(keys: &[&SigningKey]) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, keys)
    }

    /// [`JwksServer::start`] on a listener bound already (a port named in a config first).
    pub fn serve(listener: tokio::net::TcpListener, keys: &[&SigningKey]) -> JwksServer {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            keys: keys.iter().map(|k| k.jwk.clone()).collect(),
            mode: JwksMode::Serve,
            fetches: 0,
        }));
        let app = axum::Router::new()
            .route("/jwks", get(jwks))
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer { addr, inner, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Serves `keys` from now on (a rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.inner.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Serves raw JWKs (to publish an odd key).
    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        self.inner.lock().unwrap().keys = keys;
    }

    pub fn set_mode(&self, mode: JwksMode) {
        self.inner.lock().unwrap().mode = mode;
    }

    /// How many times the set was asked for.
    pub fn fetches(&self) -> usize {
        self.inner.lock().unwrap().fetches
    }

    /// Waits until the set was asked for at least `n` times (10 s at most).
    pub async fn wait_fetches(&self, n: usize) {
        for _ in 0..100 {
            if self.fetches() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the JWKS was fetched {} times, not {n}", self.fetches());
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let (mode, keys) = {
        let mut inner = inner.lock().unwrap();
        inner.fetches += 1;
        (inner.mode, inner.keys.clone())
    };
    match mode {
        JwksMode::Serve => axum::Json(json!({ "keys": keys })).into_response(),
        JwksMode::Garbage => "<html>maintenance</html>".into_response(),
        JwksMode::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            "late".into_response()
        }
    }
}
