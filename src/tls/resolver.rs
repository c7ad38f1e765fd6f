//! Which certificate a TLS handshake gets: rustls asks [`CertResolver`] with
//! the client's SNI name and ALPN list, once per handshake.
//!
//! The certificates sit behind `ArcSwap`s, so a reload (SIGHUP, a file that
//! changed, a certificate ACME renewed) swaps them for the next handshake
//! while connections already open keep the one they were given: nothing is
//! dropped. Files and ACME are swapped apart, each by its own owner.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{FileCerts, LoadedCert, name_matches};

/// ALPN protocol of the TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificates fpmlb serves, chosen by SNI.
#[derive(Debug)]
pub struct CertResolver {
    /// `tls.certificates`, in file order, with the default's index.
    files: ArcSwap<FileCerts>,
    /// The ACME certificate (or the temporary self-signed one before it).
    acme: ArcSwapOption<LoadedCert>,
    /// TLS-ALPN-01 challenge certificates by host name, while an order runs.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Default for CertResolver {
    fn default() -> Self {
        CertResolver {
            files: ArcSwap::from_pointee(FileCerts::default()),
            acme: ArcSwapOption::empty(),
            challenges: RwLock::new(HashMap::new()),
        }
    }
}

impl CertResolver {
    /// Serves `files` from the next handshake on.
    pub fn set_files(&self, files: FileCerts) {
        self.files.store(Arc::new(files));
    }

    /// Serves `cert` as the ACME certificate from the next handshake on.
    pub fn set_acme(&self, cert: Option<LoadedCert>) {
        self.acme.store(cert.map(Arc::new));
    }

    /// The ACME certificate served now.
    #[must_use]
    pub fn acme(&self) -> Option<Arc<LoadedCert>> {
        self.acme.load_full()
    }

    /// Answers TLS-ALPN-01 for `name` with `cert` until removed.
    pub fn add_challenge(&self, name: &str, cert: Arc<CertifiedKey>) {
        if let Ok(mut map) = self.challenges.write() {
            map.insert(name.to_owned(), cert);
        }
    }

    pub fn remove_challenge(&self, name: &str) {
        if let Ok(mut map) = self.challenges.write() {
            map.remove(name);
        }
    }

    /// The certificate for `sni` (lower case), as a handshake would get it.
    #[must_use]
    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let files = self.files.load();
        let acme = self.acme.load();
        if let Some(name) = sni {
            // An exact name beats a wildcard, wherever each is.
            let exact = |c: &LoadedCert| c.names.iter().any(|n| n == name);
            let wild = |c: &LoadedCert| c.names.iter().any(|n| name_matches(n, name));
            for matches in [&exact as &dyn Fn(&LoadedCert) -> bool, &wild] {
                if let Some(c) = files.certs.iter().find(|c| matches(c)) {
                    return Some(Arc::clone(&c.key));
                }
                if let Some(c) = acme.as_deref().filter(|c| matches(c)) {
                    return Some(Arc::clone(&c.key));
                }
            }
        }
        let default = files
            .default
            .and_then(|i| files.certs.get(i))
            .or_else(|| files.certs.first());
        default
            .map(|c| Arc::clone(&c.key))
            .or_else(|| acme.as_ref().map(|c| Arc::clone(&c.key)))
    }

    fn challenge(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = sni?;
        let map = self.challenges.read().ok()?;
        map.get(name).cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let acme_challenge = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme_challenge {
            // Only the challenge certificate, never a real one (RFC 8737 §3).
            return self.challenge(sni.as_deref());
        }
        self.pick(sni.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::parse_pair;

    fn cert(names: &[&str]) -> LoadedCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let c = params.self_signed(&key).unwrap();
        parse_pair(
            c.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            names.join(","),
        )
        .unwrap()
    }

    fn same(a: &Option<Arc<CertifiedKey>>, b: &LoadedCert) -> bool {
        a.as_ref().is_some_and(|a| Arc::ptr_eq(a, &b.key))
    }

    #[test]
    fn picks_by_sni_exact_before_wildcard_then_default() {
        let wild = cert(&["*.example.com"]);
        let www = cert(&["www.example.com"]);
        let other = cert(&["other.test"]);
        let r = CertResolver::default();
        assert!(r.pick(Some("www.example.com")).is_none());
        r.set_files(FileCerts {
            certs: vec![wild.clone(), www.clone(), other.clone()],
            default: Some(2),
        });
        assert!(same(&r.pick(Some("www.example.com")), &www));
        assert!(same(&r.pick(Some("api.example.com")), &wild));
        assert!(same(&r.pick(Some("unknown.test")), &other));
        assert!(same(&r.pick(None), &other));
    }

    #[test]
    fn acme_certificate_by_name_and_as_last_default() {
        let file = cert(&["files.test"]);
        let acme = cert(&["acme.test"]);
        let r = CertResolver::default();
        r.set_acme(Some(acme.clone()));
        assert!(same(&r.pick(None), &acme));
        r.set_files(FileCerts {
            certs: vec![file.clone()],
            default: None,
        });
        assert!(same(&r.pick(Some("acme.test")), &acme));
        assert!(same(&r.pick(Some("nope.test")), &file));
    }

    #[test]
    fn challenges_come_and_go() {
        let c = cert(&["acme.test"]);
        let r = CertResolver::default();
        assert!(r.challenge(Some("acme.test")).is_none());
        r.add_challenge("acme.test", Arc::clone(&c.key));
        assert!(r.challenge(Some("acme.test")).is_some());
        assert!(r.challenge(Some("other.test")).is_none());
        r.remove_challenge("acme.test");
        assert!(r.challenge(Some("acme.test")).is_none());
    }
}
