//! How the Redis backend reaches Redis: the `[state]` URL (`redis://` or `rediss://`), the
//! password read from `redis_password_env` at load (never in the URL, never logged), and for
//! `rediss://` the system's root certificates plus `redis_ca_file`.

use std::path::Path;

use ::redis::{Client, IntoConnectionInfo, TlsCertificates};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::config::RedisState;

/// A client for `state` (it connects on first use). Errors never quote the URL or password.
pub(crate) fn client(state: &RedisState) -> Result<Client, String> {
    let mut info = state
        .url
        .as_str()
        .into_connection_info()
        .map_err(|_| "not a valid Redis URL".to_string())?;
    if let Some(password) = &state.password {
        let settings = info
            .redis_settings()
            .clone()
            .set_password(password.expose());
        info = info.set_redis_settings(settings);
    }
    let client = match &state.ca_file {
        // `rediss://` without a CA file: redis-rs trusts the system's roots.
        None => Client::open(info),
        Some(ca) => Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(roots_pem(ca)?),
            },
        ),
    };
    // The URL was parsed above and the password is not part of what an error prints.
    client.map_err(|e| format!("cannot make a Redis client: {e}"))
}

/// The CA file's certificates followed by the system's roots, as PEM: redis-rs replaces the
/// system roots by the store it is given, and the config promises both.
fn roots_pem(ca: &Path) -> Result<Vec<u8>, String> {
    let mut out =
        std::fs::read(ca).map_err(|e| format!("{}: cannot read the file: {e}", ca.display()))?;
    out.push(b'\n');
    let system = rustls_native_certs::load_native_certs();
    for cert in system.certs.into_iter().filter(usable_root) {
        out.extend_from_slice(pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec())).as_bytes());
    }
    Ok(out)
}

/// Whether rustls takes `cert` as a trust anchor (one odd system root must not refuse them all).
fn usable_root(cert: &CertificateDer<'static>) -> bool {
    RootCertStore::empty().add(cert.clone()).is_ok()
}
