//! TLS on the listeners: the certificate pair of `[server] tls_cert`/`tls_key`, served through
//! pingora's rustls acceptor, and rotated without a restart.
//!
//! - [`load_pair`] ([`pem`]) reads and checks a pair (a PEM chain, leaf first, and its private key):
//!   every refusal names the file and why (unreadable, no certificate, no key, a key that does
//!   not match, an expired certificate). `config::validate` calls it, so `switchyard check`
//!   and `serve` refuse a bad pair at start.
//! - [`Resolver`] is the rustls `ResolvesServerCert` handed to pingora's `TlsSettings`: it
//!   answers every handshake with the pair behind an `ArcSwap`. Storing a new pair changes the
//!   certificate of the next handshake; a connection already open keeps the one it agreed on.
//! - [`Rotation`] reloads the pair when its files change ([`Rotation::spawn`]: a `notify`
//!   watch of both files, the same one the config reloader uses, so cert-manager, certbot and
//!   Kubernetes Secret updates are all seen), and on SIGHUP ([`Rotation::trigger`]). A bad
//!   pair is logged once, counted as `switchyard_tls_certificate_reloads_total{result="failure"}`,
//!   and the last good pair keeps serving. `switchyard_tls_certificate_expiry_timestamp_seconds`
//!   is the serving certificate's `notAfter`.
//! - [`settings`] builds the listener's `TlsSettings`: HTTP/2 by ALPN beside HTTP/1.1 on the
//!   API listener, and optionally client certificates checked against a CA (mTLS on admin).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub mod pem;

use pem::read;
pub use pem::{load_roots, parse_pair, Pair, PairError, PairFile};

use crate::config::watch::{FileWatch, DEBOUNCE, MAX_DELAY};
use crate::config::TlsConfig;
use crate::observability::metrics::Metrics;

/// Answers every TLS handshake with the current pair.
#[derive(Debug)]
pub struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl Resolver {
    pub fn new(pair: &Pair) -> Resolver {
        Resolver {
            current: ArcSwap::new(Arc::clone(&pair.key)),
        }
    }

    /// The next handshake gets `pair`; connections already open keep theirs.
    pub fn store(&self, pair: &Pair) {
        self.current.store(Arc::clone(&pair.key));
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// pingora's TLS settings for a listener served by `resolver`: HTTP/2 offered by ALPN when
/// `h2`, and client certificates required (and checked against `client_ca`) when given.
pub fn settings(
    resolver: &Arc<Resolver>,
    h2: bool,
    client_ca: Option<&Path>,
) -> Result<TlsSettings, String> {
    // Paths are ignored once a resolver is set.
    let mut settings = TlsSettings::intermediate("", "").map_err(|e| e.to_string())?;
    settings.set_cert_resolver(Arc::clone(resolver) as Arc<dyn ResolvesServerCert>);
    if h2 {
        settings.enable_h2();
    }
    if let Some(ca) = client_ca {
        let roots = load_roots(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
        settings.set_client_cert_verifier(verifier);
    }
    Ok(settings)
}

/// What a reload of the pair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The files hold the serving (or the last refused) pair.
    Unchanged,
    /// A new pair serves new connections.
    Applied,
    /// The new files were refused; the last good pair keeps serving.
    Rejected,
}

/// The pair of the config, reloaded when its files change.
pub struct Rotation {
    cert: PathBuf,
    key: PathBuf,
    resolver: Arc<Resolver>,
    metrics: Arc<Metrics>,
    /// SHA-256 of the serving pair's files, and of the last refused ones (logged once).
    serving: [u8; 32],
    last_rejected: Option<[u8; 32]>,
    trigger_tx: mpsc::Sender<()>,
    trigger_rx: Option<mpsc::Receiver<()>>,
}

impl Rotation {
    /// Loads the pair of `tls` (as validation did) and publishes its expiry.
    pub fn load(tls: &TlsConfig, metrics: Arc<Metrics>) -> Result<Rotation, PairError> {
        let cert_pem = read(&tls.cert, PairFile::Cert)?;
        let key_pem = read(&tls.key, PairFile::Key)?;
        let pair = parse_pair(&tls.cert, &cert_pem, &tls.key, &key_pem)?;
        publish_expiry(&metrics, &pair);
        let (trigger_tx, trigger_rx) = mpsc::channel(1);
        Ok(Rotation {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            resolver: Arc::new(Resolver::new(&pair)),
            metrics,
            serving: digest(&cert_pem, &key_pem),
            last_rejected: None,
            trigger_tx,
            trigger_rx: Some(trigger_rx),
        })
    }

    /// The resolver to give every TLS listener.
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// A function that asks the running watcher for a reload (SIGHUP goes through it).
    pub fn trigger(&self) -> impl Fn() + Send + Sync + 'static {
        let tx = self.trigger_tx.clone();
        move || {
            // Full: a reload is already pending, and it reads the newest files.
            let _ = tx.try_send(());
        }
    }

    /// Reads both files; a pair that differs from the serving one is checked and, if good,
    /// serves the next handshakes.
    pub fn reload(&mut self) -> Outcome {
        let files = read(&self.cert, PairFile::Cert)
            .and_then(|c| read(&self.key, PairFile::Key).map(|k| (c, k)));
        let (cert_pem, key_pem) = match files {
            Ok(f) => f,
            Err(e) => return self.reject(None, &e),
        };
        let hash = digest(&cert_pem, &key_pem);
        if hash == self.serving || self.last_rejected == Some(hash) {
            return Outcome::Unchanged;
        }
        match parse_pair(&self.cert, &cert_pem, &self.key, &key_pem) {
            Ok(pair) => {
                self.resolver.store(&pair);
                self.serving = hash;
                self.last_rejected = None;
                publish_expiry(&self.metrics, &pair);
                self.count("success");
                tracing::info!(
                    cert = %self.cert.display(),
                    not_after = %humantime::format_rfc3339_seconds(pair.not_after),
                    "TLS certificate reloaded; new connections get it"
                );
                Outcome::Applied
            }
            Err(e) => self.reject(Some(hash), &e),
        }
    }

    fn reject(&mut self, hash: Option<[u8; 32]>, e: &PairError) -> Outcome {
        if hash.is_some() {
            self.last_rejected = hash;
        }
        self.count("failure");
        tracing::error!("TLS certificate reload rejected, the last good pair keeps serving: {e}");
        Outcome::Rejected
    }

    fn count(&self, result: &str) {
        self.metrics
            .tls_certificate_reloads
            .with_label_values(&[result])
            .inc();
    }

    /// Starts the thread that watches both files (and hears [`Rotation::trigger`]) and returns
    /// once the watch is set up. The thread lives until the process exits.
    pub fn spawn(mut self) -> io::Result<()> {
        let Some(rx) = self.trigger_rx.take() else {
            return Err(io::Error::other("the TLS watcher was started twice"));
        };
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(self.run(rx, ready_tx)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| io::Error::other("the TLS watcher did not start"))?
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<()>,
        ready: std_mpsc::SyncSender<io::Result<()>>,
    ) {
        let mut watches: Vec<FileWatch> = [self.cert.clone(), self.key.clone()]
            .iter()
            .filter_map(|p| FileWatch::start(p, self.trigger_tx.clone(), "TLS file"))
            .collect();
        let _ = ready.send(Ok(()));
        while rx.recv().await.is_some() {
            // A rotation writes two files, often in a burst of events: wait for quiet, but
            // no longer than MAX_DELAY (files rewritten without pause must not starve it).
            let deadline = tokio::time::Instant::now() + MAX_DELAY;
            while tokio::time::Instant::now() < deadline {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    _ => break,
                }
            }
            self.reload();
            for (w, p) in watches.iter_mut().zip([&self.cert, &self.key]) {
                w.refresh(p);
            }
        }
    }
}

/// Whether the TLS listener at `addr` completes a handshake within `within`. `/readyz` uses it
/// instead of a bare TCP connect, which pingora would log as a failed handshake on every probe.
/// Only that the listener answers is checked, not who it is: the certificate is not verified.
pub async fn probe(addr: std::net::SocketAddr, within: Duration) -> bool {
    use pingora::tls::TlsConnector;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        // close_notify: a clean goodbye, nothing for the server to log.
        tokio::io::AsyncWriteExt::shutdown(&mut tls).await
    };
    matches!(tokio::time::timeout(within, handshake).await, Ok(Ok(())))
}

/// Accepts any server certificate (signatures are still checked): for [`probe`] only.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(cert);
    h.update([0u8]);
    h.update(key);
    h.finalize().into()
}

fn publish_expiry(metrics: &Metrics, pair: &Pair) {
    let secs = pair
        .not_after
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics.tls_certificate_expiry.set(secs);
}

#[cfg(test)]
mod tests {
    use super::pem::load_pair;
    use super::*;
    use std::time::SystemTime;

    fn self_signed(expired: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_good_pair_loads_with_its_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(false);
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let pair = load_pair(&c, &k).unwrap();
        assert!(pair.not_after > SystemTime::now());
        assert_eq!(pair.key.cert.len(), 1);
    }

    #[test]
    fn bad_pairs_name_the_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(false);
        let (_, other_key) = self_signed(false);
        let (old_cert, old_key) = self_signed(true);
        let c = write(dir.path(), "c.pem", &cert);
        let k = write(dir.path(), "k.pem", &key);
        let wrong = write(dir.path(), "wrong.pem", &other_key);
        let expired = write(dir.path(), "old.pem", &old_cert);
        let expired_key = write(dir.path(), "old-key.pem", &old_key);
        let missing = dir.path().join("missing.pem");
        let garbage = write(dir.path(), "garbage.pem", "hello\n");
        let cases = [
            (&missing, &k, PairFile::Cert, "cannot read the file"),
            (&c, &missing, PairFile::Key, "cannot read the file"),
            (&garbage, &k, PairFile::Cert, "no CERTIFICATE block"),
            (&c, &garbage, PairFile::Key, "no PEM private key"),
            (&k, &k, PairFile::Cert, "no CERTIFICATE block"),
            (
                &c,
                &wrong,
                PairFile::Key,
                "does not match the certificate in",
            ),
            (
                &expired,
                &expired_key,
                PairFile::Cert,
                "expired at 2001-01-01T00:00:00Z",
            ),
        ];
        for (cert, key, file, why) in cases {
            let e = load_pair(cert, key).unwrap_err();
            assert_eq!(e.file, file, "{e}");
            assert!(e.to_string().contains(why), "{e}");
            let path = if file == PairFile::Cert { cert } else { key };
            assert!(
                e.to_string().starts_with(&path.display().to_string()),
                "{e}"
            );
            // No key material in a message.
            for line in key_pem_body(&key_text(key)) {
                assert!(!e.to_string().contains(&line), "{e}");
            }
        }
    }

    fn key_text(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn key_pem_body(pem: &str) -> Vec<String> {
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 8)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn rotation_keeps_the_last_good_pair_and_logs_a_bad_one_once() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(false);
        let tls = TlsConfig {
            cert: write(dir.path(), "c.pem", &cert),
            key: write(dir.path(), "k.pem", &key),
            admin: false,
            admin_client_ca: None,
        };
        let metrics = Arc::new(Metrics::new());
        let mut rotation = Rotation::load(&tls, Arc::clone(&metrics)).unwrap();
        let first = rotation.resolver().current.load_full();
        assert_eq!(rotation.reload(), Outcome::Unchanged);
        // A new certificate with the old key: refused, the old pair serves.
        let (cert2, key2) = self_signed(false);
        write(dir.path(), "c.pem", &cert2);
        assert_eq!(rotation.reload(), Outcome::Rejected);
        assert_eq!(
            rotation.reload(),
            Outcome::Unchanged,
            "the same bad files again"
        );
        assert!(Arc::ptr_eq(
            &first,
            &rotation.resolver().current.load_full()
        ));
        // Its key arrives: the new pair serves.
        write(dir.path(), "k.pem", &key2);
        assert_eq!(rotation.reload(), Outcome::Applied);
        let second = rotation.resolver().current.load_full();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(
            second.cert[0].as_ref(),
            load_pair(&tls.cert, &tls.key).unwrap().key.cert[0].as_ref()
        );
        let count = |r| {
            metrics
                .tls_certificate_reloads
                .with_label_values(&[r])
                .get()
        };
        assert_eq!((count("success"), count("failure")), (1, 1));
        assert!(metrics.tls_certificate_expiry.get() > 1.7e9);
    }
}
