//! The certificate files, read and checked: a PEM chain (leaf first) with its private key, and
//! a CA file of roots. Pure functions of the files, with no watcher and no rotation, so that
//! `config::validate` can call them (`switchyard check` and `serve` refuse a bad pair at start)
//! without reaching the reload machinery.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Which file of a pair a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFile {
    Cert,
    Key,
}

/// Why a certificate pair was refused: the file it is about and the reason. Displayed as
/// `path: reason`. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    pub file: PairFile,
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for PairError {}

/// A checked pair, ready for rustls.
#[derive(Debug, Clone)]
pub struct Pair {
    pub key: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`.
    pub not_after: SystemTime,
}

/// Reads the PEM chain at `cert` and the PEM private key at `key` and checks them as a pair.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Pair, PairError> {
    let cert_pem = read(cert, PairFile::Cert)?;
    let key_pem = read(key, PairFile::Key)?;
    parse_pair(cert, &cert_pem, key, &key_pem)
}

/// Reads one file of a pair; a refusal names it.
pub(super) fn read(path: &Path, file: PairFile) -> Result<Vec<u8>, PairError> {
    std::fs::read(path).map_err(|e| PairError {
        file,
        path: path.to_path_buf(),
        reason: format!("cannot read the file: {e}"),
    })
}

/// [`load_pair`] on bytes already read (`cert`/`key` name them in errors).
pub fn parse_pair(
    cert: &Path,
    cert_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> Result<Pair, PairError> {
    let cert_err = |reason: String| PairError {
        file: PairFile::Cert,
        path: cert.to_path_buf(),
        reason,
    };
    let key_err = |reason: String| PairError {
        file: PairFile::Key,
        path: key.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    };
    let not_after = not_after(leaf).map_err(cert_err)?;
    if not_after < SystemTime::now() {
        return Err(cert_err(format!(
            "the certificate expired at {}",
            humantime::format_rfc3339_seconds(not_after)
        )));
    }
    // The key's own parse errors are not shown: they could quote a piece of the key.
    let private = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
        key_err("no PEM private key in the file (PKCS#8, PKCS#1 or SEC1 expected)".into())
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, private, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_err(format!(
            "the private key does not match the certificate in {}",
            cert.display()
        )),
        _ => key_err("the private key is not usable (unsupported type or malformed)".into()),
    })?;
    Ok(Pair {
        key: Arc::new(certified),
        not_after,
    })
}

/// The `notAfter` of a DER certificate.
fn not_after(der: &CertificateDer<'_>) -> Result<SystemTime, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the first certificate cannot be parsed: {e}"))?;
    let secs = parsed.validity().not_after.timestamp();
    Ok(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Reads the PEM certificates of a CA file into a root store (for client certificates).
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate file: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE block in the file".into());
    }
    Ok(roots)
}
