//! A throw-away certificate authority for TLS tests.
//!
//! `TestCa::new()` makes a self-signed CA; `leaf_for_localhost()` issues a server
//! certificate for DNS name `localhost` and IP `127.0.0.1` signed by it;
//! `ca_pem_path()` is a PEM file of the CA that a child process can be told to
//! trust with `SSL_CERT_FILE`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate authority that lives as long as this value.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    ca_pem: String,
    ca_pem_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// A server certificate issued by a [`TestCa`].
#[derive(Debug)]
pub struct LeafCert {
    /// `[leaf, ca]`, DER.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key (PKCS#8), DER.
    pub key: PrivateKeyDer<'static>,
    /// The leaf certificate followed by the CA certificate, PEM.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA ("Switchyard Test CA", ECDSA P-256); its PEM is written to a temp file.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Switchyard Test CA");
        dn.push(DnType::OrganizationName, "Switchyard tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        let ca_pem = cert.pem();
        let dir = tempfile::tempdir().expect("tempdir for CA");
        let ca_pem_path = dir.path().join("test-ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem).expect("write CA PEM");
        TestCa {
            cert,
            key,
            ca_pem,
            ca_pem_path,
            _dir: dir,
        }
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A PEM file holding the CA certificate (lives as long as `self`).
    /// Give it to the gateway as `SSL_CERT_FILE`.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The CA as a reqwest root certificate (`ClientBuilder::add_root_certificate`).
    pub fn reqwest_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM for reqwest")
    }

    /// A reqwest client (no proxy, HTTP/1 only, rustls) that trusts this CA
    /// in addition to the built-in web roots.
    pub fn reqwest_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .use_rustls_tls()
            .add_root_certificate(self.reqwest_certificate())
            .build()
            .expect("reqwest client trusting the test CA")
    }

    /// A server certificate for DNS name `localhost` and IP 127.0.0.1 signed by this CA.
    pub fn leaf_for_localhost(&self) -> LeafCert {
        self.leaf(&["localhost"], &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
    }

    /// A client certificate (`clientAuth`) named `name`, signed by this CA (for mTLS).
    pub fn client_leaf(&self, name: &str) -> LeafCert {
        self.issue(&[name], &[], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate for the given DNS names and IPs, signed by this CA.
    pub fn leaf(&self, dns_names: &[&str], ips: &[IpAddr]) -> LeafCert {
        self.issue(dns_names, ips, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn issue(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
        usage: ExtendedKeyUsagePurpose,
    ) -> LeafCert {
        let names: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            dns_names.first().copied().unwrap_or("switchyard-test-leaf"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        LeafCert {
            cert_chain: vec![cert.der().clone(), self.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: format!("{}{}", cert.pem(), self.ca_pem),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl Clone for LeafCert {
    fn clone(&self) -> Self {
        LeafCert {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

impl LeafCert {
    /// A rustls server config (ring provider, ALPN `http/1.1`) serving this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .expect("leaf cert/key pair");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }

    /// Writes `cert.pem` (chain) and `key.pem` into `dir`; returns their paths.
    pub fn write_pem_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("write cert.pem");
        std::fs::write(&key, &self.key_pem).expect("write key.pem");
        (cert, key)
    }
}
