//! `[server]`: the listen addresses, the request caps, the head limits and TLS. The
//! certificate files are read and checked by [`crate::server::tls::pem`].

use std::net::SocketAddr;
use std::path::PathBuf;

use toml::Spanned;

use super::checks::{non_blank, opt, pem_roots, positive, positive_usize};
use super::{Result, Source};
use crate::config::raw;
use crate::config::{HeadLimits, Server, TlsConfig};

/// Smallest `server.max_request_bytes`: below this not even a short chat request fits.
const MIN_REQUEST_BYTES: u64 = 1024;

pub(super) fn server(src: &Source, raw: &raw::Server) -> Result<Server> {
    let listen = socket_addr(src, raw.listen.as_ref(), "server.listen", "0.0.0.0:8080")?;
    let admin = socket_addr(
        src,
        raw.admin_listen.as_ref(),
        "server.admin_listen",
        "127.0.0.1:9090",
    )?;
    if listeners_clash(listen.1, admin.1) {
        let reason = format!("admin_listen {} clashes with listen {}", admin.0, listen.0);
        let span = raw
            .admin_listen
            .as_ref()
            .or(raw.listen.as_ref())
            .map(Spanned::span);
        return Err(src.error(span, "server.admin_listen", reason));
    }
    let max_request_bytes = match &raw.max_request_bytes {
        None => 32 * 1024 * 1024,
        Some(v) => {
            let n = positive_usize(src, v, "server.max_request_bytes")?;
            if (n as u64) < MIN_REQUEST_BYTES {
                return Err(src.at(
                    v,
                    "server.max_request_bytes",
                    format!("must be at least {MIN_REQUEST_BYTES}, not {n}"),
                ));
            }
            n
        }
    };
    let threads = opt(raw.threads.as_ref(), |v| {
        positive_usize(src, v, "server.threads")
    })?;
    Ok(Server {
        listen: listen.0,
        admin_listen: admin.0,
        max_request_bytes,
        threads,
        head: head_limits(src, raw)?,
        tls: tls(src, raw)?,
    })
}

/// The caps on the request head: each positive, and no larger than what pingora's own reader
/// lets through (above that pingora answers first, with a bare 400).
fn head_limits(src: &Source, raw: &raw::Server) -> Result<HeadLimits> {
    let d = HeadLimits::default();
    let total_cap = HeadLimits::PINGORA_MAX_HEADER_BYTES as u64;
    let cap = |v: Option<&Spanned<i64>>, path: &str, max: u64, default: usize| {
        opt(v, |v| positive(src, v, path, max).map(|n| n as usize)).map(|n| n.unwrap_or(default))
    };
    Ok(HeadLimits {
        max_uri_bytes: cap(
            raw.max_uri_bytes.as_ref(),
            "server.max_uri_bytes",
            total_cap,
            d.max_uri_bytes,
        )?,
        max_header_line_bytes: cap(
            raw.max_header_line_bytes.as_ref(),
            "server.max_header_line_bytes",
            total_cap,
            d.max_header_line_bytes,
        )?,
        max_header_bytes: cap(
            raw.max_header_bytes.as_ref(),
            "server.max_header_bytes",
            total_cap,
            d.max_header_bytes,
        )?,
        max_headers: cap(
            raw.max_headers.as_ref(),
            "server.max_headers",
            HeadLimits::PINGORA_MAX_HEADERS as u64,
            d.max_headers,
        )?,
    })
}

/// `tls_cert` and `tls_key` come together; the pair is read and checked now (so `check` and a
/// start refuse a missing file, a key that does not match, an expired certificate, naming the
/// PEM file). `admin_tls` needs the pair; `admin_tls_client_ca` needs `admin_tls`.
fn tls(src: &Source, raw: &raw::Server) -> Result<Option<TlsConfig>> {
    let admin = raw.admin_tls.as_ref().is_some_and(|a| *a.get_ref());
    let (cert, key) = match (&raw.tls_cert, &raw.tls_key) {
        (Some(c), Some(k)) => (c, k),
        (Some(c), None) => return Err(src.at(c, "server.tls_key", "tls_cert requires tls_key")),
        (None, Some(k)) => return Err(src.at(k, "server.tls_cert", "tls_key requires tls_cert")),
        (None, None) => {
            return match (&raw.admin_tls, &raw.admin_tls_client_ca) {
                (Some(a), _) if admin => Err(src.at(
                    a,
                    "server.admin_tls",
                    "admin_tls requires tls_cert and tls_key",
                )),
                (_, Some(ca)) => Err(src.at(
                    ca,
                    "server.admin_tls_client_ca",
                    "admin_tls_client_ca requires admin_tls = true (and tls_cert, tls_key)",
                )),
                _ => Ok(None),
            }
        }
    };
    let cert_path = PathBuf::from(non_blank(src, cert, "server.tls_cert")?);
    let key_path = PathBuf::from(non_blank(src, key, "server.tls_key")?);
    if src.read_pem_files() {
        crate::server::tls::pem::load_pair(&cert_path, &key_path).map_err(|e| match e.file {
            crate::server::tls::pem::PairFile::Cert => {
                src.at(cert, "server.tls_cert", e.to_string())
            }
            crate::server::tls::pem::PairFile::Key => src.at(key, "server.tls_key", e.to_string()),
        })?;
    }
    let admin_client_ca = match &raw.admin_tls_client_ca {
        None => None,
        Some(ca) if !admin => {
            return Err(src.at(
                ca,
                "server.admin_tls_client_ca",
                "admin_tls_client_ca requires admin_tls = true",
            ))
        }
        Some(ca) => {
            let path = PathBuf::from(non_blank(src, ca, "server.admin_tls_client_ca")?);
            pem_roots(src, &path).map_err(|reason| {
                src.at(
                    ca,
                    "server.admin_tls_client_ca",
                    format!("{}: {reason}", path.display()),
                )
            })?;
            Some(path)
        }
    };
    Ok(Some(TlsConfig {
        cert: cert_path,
        key: key_path,
        admin,
        admin_client_ca,
    }))
}

/// A listen address as written (kept for the runtime) and parsed (to compare the two).
fn socket_addr(
    src: &Source,
    value: Option<&Spanned<String>>,
    path: &str,
    default: &str,
) -> Result<(String, SocketAddr)> {
    let text = value.map_or(default, |v| v.get_ref().as_str());
    let parsed = text.parse::<SocketAddr>().map_err(|_| {
        src.error(
            value.map(Spanned::span),
            path,
            format!("{text:?} is not an address like 0.0.0.0:8080 or [::1]:8080"),
        )
    })?;
    Ok((text.to_string(), parsed))
}

/// Whether two listeners would fight over one port: the same address, or the same port where
/// one of them is the wildcard address (which binds every interface). Port 0 (the system picks
/// a free port for each) never clashes.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::testing::*;

    // --- server, state, log ------------------------------------------------------------------

    #[test]
    fn server_checks() {
        let server = |fields: &str| format!("[server]\n{fields} # <-\n");
        rejects(
            &server("listen = \"localhost:80\""),
            "server.listen",
            "not an address",
        );
        rejects(
            &server("admin_listen = \"9090\""),
            "server.admin_listen",
            "not an address",
        );
        rejects(
            &server("admin_listen = \"0.0.0.0:8080\""),
            "server.admin_listen",
            "clashes with listen",
        );
        rejects(
            &server("listen = \"127.0.0.1:9000\"\nadmin_listen = \"127.0.0.1:9000\""),
            "server.admin_listen",
            "clashes",
        );
        // Different interfaces may share a port; the wildcard takes them all.
        assert!(load(&server("listen = \"127.0.0.2:9090\"")).is_ok());
        rejects(
            &server("listen = \"[::]:9090\""),
            "server.admin_listen",
            "clashes",
        );
        rejects(
            &server("max_request_bytes = 1023"),
            "server.max_request_bytes",
            "at least 1024",
        );
        rejects(
            &server("max_request_bytes = 0"),
            "server.max_request_bytes",
            "positive",
        );
        assert_eq!(
            load("[server]\nmax_request_bytes = 1024\n")
                .unwrap()
                .server
                .max_request_bytes,
            1024
        );
        rejects(&server("threads = 0"), "server.threads", "positive");
        rejects(
            &server("max_uri_bytes = 0"),
            "server.max_uri_bytes",
            "positive",
        );
        rejects(
            &server("max_header_line_bytes = -1"),
            "server.max_header_line_bytes",
            "positive",
        );
        rejects(
            &server("max_header_bytes = 1048576"),
            "server.max_header_bytes",
            "at most 1048575",
        );
        rejects(
            &server("max_headers = 257"),
            "server.max_headers",
            "at most 256",
        );
        assert_eq!(
            load("[server]\nmax_headers = 256\n")
                .unwrap()
                .server
                .head
                .max_headers,
            256
        );
    }

    #[test]
    fn tls_checks() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = dir.path().join("c.pem");
        let k = dir.path().join("k.pem");
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let (c, k) = (c.display().to_string(), k.display().to_string());
        let server = |fields: &str| format!("[server]\n{fields} # <-\n");
        rejects(
            &server(&format!("tls_cert = \"{c}\"")),
            "server.tls_key",
            "requires tls_key",
        );
        rejects(
            &server(&format!("tls_key = \"{k}\"")),
            "server.tls_cert",
            "requires tls_cert",
        );
        rejects(
            &server("admin_tls = true"),
            "server.admin_tls",
            "requires tls_cert",
        );
        rejects(
            &server(&format!(
                "tls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls_client_ca = \"{c}\""
            )),
            "server.admin_tls_client_ca",
            "requires admin_tls = true",
        );
        rejects(
            &server(&format!("tls_key = \"{k}\"\ntls_cert = \"{k}\"")),
            "server.tls_cert",
            &format!("{k}: no CERTIFICATE block"),
        );
        rejects(
            &server(&format!("tls_cert = \"{c}\"\ntls_key = \"{c}\"")),
            "server.tls_key",
            &format!("{c}: no PEM private key"),
        );
        rejects(
            &server(&format!("tls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls = true\nadmin_tls_client_ca = \"{k}\"")),
            "server.admin_tls_client_ca",
            &format!("{k}: no CERTIFICATE block"),
        );
        // A hot reload reads no PEM file: a bad pair on disk does not block a config edit.
        let bad = format!("[server]\ntls_cert = \"{k}\"\ntls_key = \"/missing.pem\"\n");
        assert!(load(&bad).is_err());
        let reloaded = load_str_for_reload(&bad, Path::new(FILE)).unwrap();
        assert_eq!(
            reloaded.server.tls.unwrap().key,
            PathBuf::from("/missing.pem")
        );
        let ok = load(&format!(
            "[server]\ntls_cert = \"{c}\"\ntls_key = \"{k}\"\nadmin_tls = true\nadmin_tls_client_ca = \"{c}\"\n"
        ))
        .unwrap();
        assert_eq!(
            ok.server.tls,
            Some(TlsConfig {
                cert: c.clone().into(),
                key: k.clone().into(),
                admin: true,
                admin_client_ca: Some(c.into()),
            })
        );
    }
}
