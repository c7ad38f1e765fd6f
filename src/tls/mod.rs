//! TLS termination: certificates from PEM files or ACME, chosen by SNI,
//! reloaded without dropping connections, and the rustls server config of
//! every TLS listener.
//!
//! - `certs.rs`: a PEM chain and key read, parsed, checked to match;
//! - `resolver.rs`: the SNI choice, behind `ArcSwap`s (what a reload swaps);
//! - `watch.rs`: the files polled for changes;
//! - `acme/`: automatic certificates (RFC 8555) and their challenges.
//!
//! The crypto provider is *ring*, chosen deliberately over aws-lc-rs
//! (rustls' default): aws-lc-rs builds AWS-LC's C and assembly with cmake
//! (and bindgen/clang off the prebuilt targets), which neither the reference
//! machine nor CI has; *ring* needs only the C compiler Rust already needs.
//! Both give rustls' safe defaults: TLS 1.3 and 1.2 only (1.0/1.1 are not
//! implemented at all), AEAD suites with forward secrecy, X25519/P-256/P-384.

pub mod acme;
pub mod certs;
pub mod resolver;
pub mod watch;

use std::sync::Arc;

use rustls::ServerConfig;

pub use certs::{FileCerts, LoadedCert, load_configured};
pub use resolver::{ACME_TLS_ALPN, CertResolver};

use crate::config::{AcmeChallenge, TlsConfig};

/// ALPN protocols of the TLS listeners, in the server's order of
/// preference: HTTP/2 when the client speaks it (hyper-util's auto builder
/// serves both on one connection type).
pub const HTTP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The rustls config of the TLS listeners: TLS 1.3 and 1.2, certificates
/// from `resolver`, ALPN `h2` and `http/1.1` (and `acme-tls/1` when ACME
/// answers TLS-ALPN-01), stateless session tickets, no 0-RTT.
///
/// # Errors
///
/// rustls refuses the provider or versions (not expected with *ring*).
pub fn server_config(
    resolver: Arc<CertResolver>,
    tls: &TlsConfig,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(certs::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = HTTP_ALPN.iter().map(|p| p.to_vec()).collect();
    if tls
        .acme
        .as_ref()
        .is_some_and(|a| a.challenge == AcmeChallenge::TlsAlpn01)
    {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.ticketer = ticketer()?;
    Ok(Arc::new(config))
}

/// Resumption without server state: tickets whose key rotates every 6 h,
/// one ticketer for the process, so that a reload (a new `ServerConfig`)
/// leaves the tickets clients hold valid rather than forcing every one of
/// them into a full handshake.
fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    static TICKETER: std::sync::OnceLock<Arc<dyn rustls::server::ProducesTickets>> =
        std::sync::OnceLock::new();
    if let Some(t) = TICKETER.get() {
        return Ok(Arc::clone(t));
    }
    let made = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::clone(TICKETER.get_or_init(|| made)))
}

/// What `fpmlb config test` checks beyond the YAML: every certificate and
/// key file exists, parses, and the key belongs to the certificate; the ACME
/// CA root parses. Returns one message per problem.
#[must_use]
pub fn check_files(tls: &TlsConfig) -> Vec<String> {
    let mut problems = match load_configured(tls) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    };
    if let Some(acme) = &tls.acme {
        if let Some(root) = &acme.ca_root
            && let Err(e) = acme::store::read_ca_root(root)
        {
            problems.push(format!("tls.acme.ca_root: {e}"));
        }
        if let Err(e) = acme::store::check_state_dir(&acme.state_dir) {
            problems.push(format!("tls.acme.state_dir: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DefaultCertificate;

    /// Two configs (a start and a reload) share one ticketer: the tickets
    /// clients got before a reload still resume after it.
    #[test]
    fn a_reload_keeps_the_session_ticket_keys() {
        let tls = TlsConfig {
            certificates: Vec::new(),
            default_certificate: DefaultCertificate::First,
            hsts: None,
            acme: None,
        };
        let resolver = Arc::new(CertResolver::default());
        let first = server_config(Arc::clone(&resolver), &tls).unwrap();
        let reloaded = server_config(resolver, &tls).unwrap();
        assert!(Arc::ptr_eq(&first.ticketer, &reloaded.ticketer));
        assert!(first.ticketer.enabled());
    }
}
