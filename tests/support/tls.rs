//! A test PKI (a CA made by the test with rcgen, leaves it signs) and a
//! rustls client that tells which certificate a server presents.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A leaf certificate and its key, as PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The leaf's DER (the first certificate of the PEM).
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    /// Writes NAME.pem and NAME.key into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.as_ref().pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.as_ref().der().clone()
    }

    /// Writes the CA certificate to DIR/NAME; returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).unwrap();
        p
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What a TLS client saw of a server.
#[derive(Debug)]
pub struct Handshake {
    pub leaf: CertificateDer<'static>,
    pub version: rustls::ProtocolVersion,
    pub alpn: Option<Vec<u8>>,
}

/// Connects to `addr` with SNI `name`, verifying against `roots`; returns
/// what the handshake gave, or the error.
pub async fn handshake(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Handshake, String> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        connector.connect(server_name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    Ok(Handshake {
        leaf: conn.peer_certificates().unwrap()[0].clone(),
        version: conn.protocol_version().unwrap(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
    })
}
