//! Certificates from PEM: a chain and its private key read, parsed, checked
//! to belong together, and described (the SAN names SNI picks them by, the
//! expiry ACME renews by). Used at start-up, on reload and by
//! `fpmlb config test`, so all three refuse the same files with the same words.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::{CertificateFiles, DefaultCertificate, TlsConfig};

/// Largest certificate or key file read (a chain of a few certificates is
/// ~10 KiB; this keeps a wrong path, say a log file, from filling memory).
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// The leaf's DNS names (SAN), lower case; `*.example.com` for wildcards.
    pub names: Vec<String>,
    /// The leaf's notBefore and notAfter.
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Where it came from, for log lines (`tls.certificates[0] (/etc/...)`, `acme`).
    pub origin: String,
}

impl LoadedCert {
    /// How long the certificate is valid in all.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// Whether the leaf covers `name` (lower case): exactly, or by a
    /// wildcard for one label (`*.example.com` covers `a.example.com`, not
    /// `example.com` nor `a.b.example.com`), as RFC 6125 has it.
    #[must_use]
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, name))
    }
}

/// Whether certificate name `pattern` covers host `name` (both lower case).
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == name,
    }
}

/// The crypto provider of every TLS config fpmlb builds: *ring* (see
/// `tls/mod.rs` for why not aws-lc-rs).
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM chain and key and checks that the key is the leaf's.
///
/// # Errors
///
/// What is wrong, in words for a log line: no certificate, no key, a key
/// that does not match, an unparseable leaf.
pub fn parse_pair(cert_pem: &[u8], key_pem: &[u8], origin: String) -> Result<LoadedCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate file: bad PEM: {e}"))?;
    if chain.is_empty() {
        return Err("certificate file: no CERTIFICATE block in it".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "key file: no PRIVATE KEY block in it".to_owned()
        }
        e => format!("key file: bad PEM: {e}"),
    })?;
    let (names, not_before, not_after) = describe_leaf(&chain[0])?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key file: unusable key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err("the key does not belong to the certificate (public keys differ)".into());
        }
        Err(e) => return Err(format!("cannot check the key against the certificate: {e}")),
    }
    Ok(LoadedCert {
        key: Arc::new(certified),
        names,
        not_before,
        not_after,
        origin,
    })
}

/// The leaf's DNS names and validity.
fn describe_leaf(
    der: &CertificateDer<'_>,
) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("certificate file: the first certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    // Clients have ignored the subject CN for names since RFC 6125, but an
    // old certificate without SAN still names its host there.
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        match u64::try_from(secs) {
            Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
            Err(_) => SystemTime::UNIX_EPOCH,
        }
    };
    Ok((
        names,
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// Reads a PEM file of bounded size.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{what} {}: {} bytes, more than a PEM file holds",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Loads one `tls.certificates` entry.
///
/// # Errors
///
/// A message naming the file and what is wrong.
pub fn load_files(files: &CertificateFiles, origin: String) -> Result<LoadedCert, String> {
    let cert = read_pem(&files.cert, "certificate file")?;
    let key = read_pem(&files.key, "key file")?;
    parse_pair(&cert, &key, origin).map_err(|e| {
        format!(
            "{e} (cert {}, key {})",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// The certificates of `tls.certificates`, in file order, and which one is
/// the default.
#[derive(Debug, Clone, Default)]
pub struct FileCerts {
    pub certs: Vec<LoadedCert>,
    /// Index into `certs` of the default one, when the config names one.
    pub default: Option<usize>,
}

/// Loads every `tls.certificates` entry and resolves `default_certificate`.
///
/// # Errors
///
/// One message per bad entry, each starting with its key path.
pub fn load_configured(tls: &TlsConfig) -> Result<FileCerts, Vec<String>> {
    let mut certs = Vec::with_capacity(tls.certificates.len());
    let mut errors = Vec::new();
    for (i, files) in tls.certificates.iter().enumerate() {
        let key = format!("tls.certificates[{i}]");
        match load_files(files, format!("{key} ({})", files.cert.display())) {
            Ok(c) => certs.push(c),
            Err(e) => errors.push(format!("{key}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let default = match &tls.default_certificate {
        DefaultCertificate::First => None,
        DefaultCertificate::Index(i) => Some(*i),
        DefaultCertificate::Name(name) => match certs.iter().position(|c| c.covers(name)) {
            Some(i) => Some(i),
            None if tls.acme.as_ref().is_some_and(|a| a.domains.contains(name)) => None,
            None => {
                return Err(vec![format!(
                    "tls.default_certificate: no certificate in tls.certificates (nor tls.acme.domains) covers {name}"
                )]);
            }
        },
    };
    let now = SystemTime::now();
    for c in &certs {
        if c.not_after < now {
            tracing::warn!(certificate = %c.origin, "certificate has EXPIRED; clients will refuse it");
        }
    }
    Ok(FileCerts { certs, default })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn parses_names_and_matches_keys() {
        let (cert, key) = pair(&["a.example", "*.b.example"]);
        let loaded = parse_pair(cert.as_bytes(), key.as_bytes(), "t".into()).unwrap();
        assert_eq!(loaded.names, vec!["a.example", "*.b.example"]);
        assert!(loaded.covers("a.example"));
        assert!(loaded.covers("x.b.example"));
        assert!(!loaded.covers("b.example"));
        assert!(!loaded.covers("y.x.b.example"));
        assert!(loaded.not_after > loaded.not_before);
    }

    #[test]
    fn refuses_a_key_of_another_certificate() {
        let (cert, _) = pair(&["a.example"]);
        let (_, other_key) = pair(&["a.example"]);
        let err = parse_pair(cert.as_bytes(), other_key.as_bytes(), "t".into()).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn refuses_missing_blocks() {
        let (cert, key) = pair(&["a.example"]);
        let err = parse_pair(key.as_bytes(), key.as_bytes(), "t".into()).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
        let err = parse_pair(cert.as_bytes(), cert.as_bytes(), "t".into()).unwrap_err();
        assert!(err.contains("no PRIVATE KEY"), "{err}");
        let err = parse_pair(b"garbage", key.as_bytes(), "t".into()).unwrap_err();
        assert!(err.contains("CERTIFICATE"), "{err}");
    }

    #[test]
    fn wildcard_matching() {
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(!name_matches("*.example.com", "a.www.example.com"));
        assert!(name_matches("example.com", "example.com"));
    }
}
