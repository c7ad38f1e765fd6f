//! One certificate order (RFC 8555 §7.4), driven step by step with
//! instant-acme's protocol client: new order, one challenge per name
//! answered on fpmlb's own listeners, wait for the CA, finalize with a CSR
//! for a fresh key, download the chain.
//!
//! What the challenges answer is published while the order runs and taken
//! down when it ends, whatever way it ends (`Published` on drop).

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::Http01Tokens;
use crate::config::AcmeChallenge;
use crate::tls::certs;
use crate::tls::resolver::CertResolver;

/// How long the CA may take to validate every name, and then to issue.
/// Let's Encrypt validates in seconds; a minute leaves room for its retries.
const VALIDATION_WAIT: Duration = Duration::from_secs(90);

/// A certificate chain and its new key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where challenge answers are published.
pub struct Answers<'a> {
    pub resolver: &'a CertResolver,
    pub http01: &'a Http01Tokens,
}

/// The answers of one order, taken down on drop.
struct Published<'a> {
    answers: &'a Answers<'a>,
    alpn_names: Vec<String>,
    tokens: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for name in &self.alpn_names {
            self.answers.resolver.remove_challenge(name);
        }
        for token in &self.tokens {
            self.answers.http01.remove(token);
        }
    }
}

/// Orders and downloads a certificate for `domains`.
///
/// # Errors
///
/// What failed, for a log line: the CA's problem document when it sent one.
pub async fn issue(
    account: &Account,
    domains: &[String],
    challenge: AcmeChallenge,
    answers: &Answers<'_>,
) -> Result<Issued, String> {
    let identifiers: Vec<Identifier> = domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("new order: {}", chain(&e)))?;
    let mut published = Published {
        answers,
        alpn_names: Vec::new(),
        tokens: Vec::new(),
    };
    let wanted = match challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    let mut seen = 0usize;
    while let Some(result) = authorizations.next().await {
        // The CA, or whatever answers for it, names what to validate: no
        // more authorizations than names ordered, and only those names (a
        // challenge certificate for another name would be served on the
        // TLS listeners).
        seen += 1;
        if seen > domains.len() {
            return Err(format!(
                "the CA sent more authorizations than the {} names ordered",
                domains.len()
            ));
        }
        let mut authz = result.map_err(|e| format!("authorization: {}", chain(&e)))?;
        let name = authz.identifier().to_string();
        if !was_ordered(&name, domains) {
            return Err(format!(
                "the CA asked to validate {}, which was not ordered",
                crate::fastcgi::exchange::escape_log_text(name.as_bytes())
            ));
        }
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(format!(
                    "authorization for {} is {status:?}",
                    authz.identifier()
                ));
            }
        }
        let mut ch = authz
            .challenge(wanted.clone())
            .ok_or_else(|| format!("the CA offers no {challenge} challenge for {name}"))?;
        let key_auth = ch.key_authorization();
        match challenge {
            AcmeChallenge::TlsAlpn01 => {
                let cert = challenge_cert(&name, key_auth.digest().as_ref())?;
                answers.resolver.add_challenge(&name, cert);
                published.alpn_names.push(name.clone());
            }
            AcmeChallenge::Http01 => {
                answers.http01.insert(&ch.token, key_auth.as_str());
                published.tokens.push(ch.token.clone());
            }
        }
        tracing::info!(domain = %name, %challenge, "ACME: challenge published; asking the CA to validate");
        ch.set_ready()
            .await
            .map_err(|e| format!("challenge for {name}: {}", chain(&e)))?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(VALIDATION_WAIT);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| format!("waiting for validation: {}", chain(&e)))?;
    if status != OrderStatus::Ready {
        let mut why = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            if let Ok(state) = authz.refresh().await {
                for c in &state.challenges {
                    if let Some(problem) = &c.error {
                        why.push(format!("{}: {problem}", state.identifier()));
                    }
                }
            }
        }
        return Err(format!("order is {status:?}: {}", why.join("; ")));
    }
    drop(published);

    let key = rcgen::KeyPair::generate().map_err(|e| format!("new key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec())
        .map_err(|e| format!("CSR for {domains:?}: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("CSR: {e}"))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| format!("finalize: {}", chain(&e)))?;
    let cert_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("downloading the certificate: {}", chain(&e)))?;
    Ok(Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
    })
}

/// Whether `name`, from the CA's authorization, is one of the names ordered.
fn was_ordered(name: &str, domains: &[String]) -> bool {
    domains.iter().any(|d| d.eq_ignore_ascii_case(name))
}

/// The TLS-ALPN-01 certificate for `name` (RFC 8737 §3): self-signed, the
/// name as its only SAN, the SHA-256 of the key authorization in a critical
/// acmeIdentifier extension.
fn challenge_cert(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("challenge key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
        .map_err(|e| format!("challenge certificate for {name}: {e}"))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("challenge certificate for {name}: {e}"))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = certs::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("challenge key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// An error with its causes, `a: b: c` (hyper's "client error (Connect)"
/// alone does not say that the connection was refused).
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_ordered_are_validated() {
        let domains = ["example.com".to_owned(), "www.example.com".to_owned()];
        assert!(was_ordered("example.com", &domains));
        assert!(was_ordered("WWW.Example.com", &domains));
        for other in ["evil.example", "*.example.com", "example.com.", ""] {
            assert!(!was_ordered(other, &domains), "{other}");
        }
    }

    #[test]
    fn challenge_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let cert = challenge_cert("a.example", &digest).unwrap();
        let der = cert.end_entity_cert().unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING of 32 bytes: tag 0x04, length 0x20, the digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
