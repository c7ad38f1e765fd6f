//! Automatic certificates (ACME, RFC 8555), as Caddy gets them: for the
//! names of `tls.acme.domains`, one certificate obtained from the
//! configured directory, kept in `state_dir`, renewed well before it
//! expires, and served by the [`CertResolver`] throughout.
//!
//! instant-acme speaks the protocol (JWS, nonces, the order's states); this
//! module decides when, answers the challenges on fpmlb's own listeners
//! (TLS-ALPN-01 through the resolver, HTTP-01 through [`Http01Tokens`],
//! read by the front end before any routing), and never lets the CA hold
//! anything up: start-up serves the stored certificate, or a temporary
//! self-signed one with a warning, and orders in the background; a failed
//! order keeps the certificate in service and tries again after a backoff.

pub mod client;
pub mod order;
pub mod schedule;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use instant_acme::{Account, AccountCredentials, NewAccount};
use tokio_util::sync::CancellationToken;

use self::client::BoundedClient;
use self::order::{Answers, chain};
use self::store::Store;
use crate::config::AcmeConfig;
use crate::tls::certs::{self, LoadedCert};
use crate::tls::resolver::CertResolver;

/// The longest one order may take, from the new order to the downloaded
/// chain; beyond it the try counts as failed (a CA that stopped answering
/// mid-way must not stall renewals forever).
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// Path prefix of HTTP-01 challenges (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// HTTP-01 answers while an order runs: token -> key authorization.
#[derive(Debug, Default)]
pub struct Http01Tokens(RwLock<HashMap<String, String>>);

impl Http01Tokens {
    pub fn insert(&self, token: &str, key_authorization: &str) {
        if let Ok(mut map) = self.0.write() {
            map.insert(token.to_owned(), key_authorization.to_owned());
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(token);
        }
    }

    /// The answer to `GET /.well-known/acme-challenge/<token>`.
    #[must_use]
    pub fn get(&self, token: &str) -> Option<String> {
        self.0.read().ok()?.get(token).cloned()
    }
}

/// The ACME side of one config: its store, the certificate it got, the
/// account once made.
pub struct AcmeTask {
    config: AcmeConfig,
    resolver: Arc<CertResolver>,
    http01: Arc<Http01Tokens>,
    store: Store,
    /// The certificate the CA issued (stored or new) for every name;
    /// `None` until there is one (an order is due now).
    current: Option<LoadedCert>,
    /// Served meanwhile: a stored certificate for some of the names (one
    /// was added to `domains`), else the temporary self-signed one.
    stand_in: String,
    account: Option<Account>,
}

impl AcmeTask {
    /// Opens the state directory and puts a certificate in service at once:
    /// the stored one, else a temporary self-signed one. Never talks to the CA.
    ///
    /// # Errors
    ///
    /// The state directory cannot be created or is open to others.
    pub fn start(
        config: AcmeConfig,
        resolver: Arc<CertResolver>,
        http01: Arc<Http01Tokens>,
    ) -> Result<AcmeTask, String> {
        let store = Store::open(&config.state_dir)?;
        let domains = config.domains.join(",");
        let loaded = store.load_cert(&config.domains).and_then(|(cert, key)| {
            certs::parse_pair(&cert, &key, "acme".to_owned())
                .map_err(|e| {
                    tracing::warn!(%domains, "ACME: the stored certificate is unusable ({e}); ordering a new one");
                })
                .ok()
        });
        let valid = |c: &LoadedCert| c.not_after > SystemTime::now();
        let (stored, stand_in) = match loaded {
            Some(c) if config.domains.iter().all(|d| c.covers(d)) => {
                tracing::info!(%domains, valid_until = %when(c.not_after), "ACME: serving the stored certificate");
                resolver.set_acme(Some(c.clone()));
                (Some(c), String::new())
            }
            // A name was added: the stored certificate keeps serving the
            // names it has until the CA issues one for all (a self-signed
            // one would make browsers warn on every name meanwhile).
            Some(c) if valid(&c) && config.domains.iter().any(|d| c.covers(d)) => {
                tracing::info!(%domains, valid_until = %when(c.not_after), "ACME: the stored certificate does not cover every name: serving it for those it has while a new one is ordered");
                resolver.set_acme(Some(c));
                (
                    None,
                    "the stored certificate, for the names it covers".to_owned(),
                )
            }
            _ => {
                let temporary = self_signed(&config.domains)?;
                resolver.set_acme(Some(temporary));
                tracing::warn!(%domains, "ACME: no certificate yet: serving a temporary self-signed one (browsers will warn) until the CA issues one");
                (None, "the temporary self-signed certificate".to_owned())
            }
        };
        Ok(AcmeTask {
            config,
            resolver,
            http01,
            store,
            current: stored,
            stand_in,
            account: None,
        })
    }

    /// Orders and renews until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let domains = self.config.domains.join(",");
        let mut failures = 0u32;
        let mut next = self.renewal_time();
        loop {
            let wait = next
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let renewing = self.current.is_some();
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(ORDER_TIMEOUT, self.obtain()) => {
                    r.unwrap_or_else(|_| Err(format!("no certificate within {ORDER_TIMEOUT:?}")))
                }
            };
            match result {
                Ok(cert) => {
                    let due = self.renewal_time();
                    let now = SystemTime::now();
                    next = schedule::after_issue(due, now, &mut failures, rand::random::<f64>());
                    if failures > 0 {
                        tracing::warn!(
                            %domains,
                            valid_until = %when(cert.not_after),
                            "ACME: the CA issued a certificate already due for renewal (a clock ahead of the CA's?): serving it; next order in {}s",
                            next.duration_since(now).unwrap_or_default().as_secs()
                        );
                        continue;
                    }
                    tracing::info!(
                        %domains,
                        valid_until = %when(cert.not_after),
                        renew_from = %when(next),
                        "ACME: certificate {}",
                        if renewing { "renewed" } else { "issued" }
                    );
                }
                Err(e) => {
                    failures += 1;
                    let delay = schedule::backoff(failures, rand::random::<f64>());
                    next = SystemTime::now() + delay;
                    let serving = match &self.current {
                        Some(c) => format!(
                            "still serving the certificate valid until {}",
                            when(c.not_after)
                        ),
                        None => format!("still serving {}", self.stand_in),
                    };
                    tracing::warn!(
                        %domains,
                        failures,
                        "ACME: could not {} the certificate: {}; {serving}; next try in {}s",
                        if renewing { "renew" } else { "obtain" },
                        shown(&e),
                        delay.as_secs()
                    );
                }
            }
        }
    }

    /// When the current certificate is due; now when there is none.
    fn renewal_time(&self) -> SystemTime {
        match &self.current {
            Some(c) => schedule::renew_at(
                c.not_before,
                c.not_after,
                self.config.renew_before,
                rand::random::<f64>(),
            ),
            None => SystemTime::now(),
        }
    }

    /// One order; the new certificate is stored and served.
    async fn obtain(&mut self) -> Result<LoadedCert, String> {
        let account = match &self.account {
            Some(a) => a.clone(),
            None => {
                let a = self.account().await?;
                self.account = Some(a.clone());
                a
            }
        };
        let answers = Answers {
            resolver: &self.resolver,
            http01: &self.http01,
        };
        let issued = match order::issue(
            &account,
            &self.config.domains,
            self.config.challenge,
            &answers,
        )
        .await
        {
            Ok(issued) => issued,
            Err(e) => {
                if e.contains("accountDoesNotExist") {
                    // The CA forgot the account (a test CA restarted): make a new one next time.
                    self.account = None;
                    self.store.forget_account(&self.config.directory);
                }
                return Err(e);
            }
        };
        let cert = certs::parse_pair(
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            "acme".to_owned(),
        )
        .map_err(|e| format!("the CA sent an unusable certificate: {e}"))?;
        if let Some(missing) = self.config.domains.iter().find(|d| !cert.covers(d)) {
            return Err(format!(
                "the CA sent a certificate that does not cover {missing}"
            ));
        }
        if cert.not_after <= SystemTime::now() {
            return Err(format!(
                "the CA sent a certificate that expired at {}",
                when(cert.not_after)
            ));
        }
        if let Err(e) = self.store.save_cert(
            &self.config.domains,
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        ) {
            // Served all the same; a restart orders again.
            tracing::error!("ACME: cannot keep the new certificate: {e}");
        }
        self.resolver.set_acme(Some(cert.clone()));
        self.current = Some(cert.clone());
        Ok(cert)
    }

    /// The stored account for this directory, or a new one (then stored).
    async fn account(&self) -> Result<Account, String> {
        let directory = &self.config.directory;
        let client = BoundedClient::new(self.config.ca_root.as_deref())
            .map_err(|e| format!("HTTP client for {directory}: {e}"))?;
        let builder = Account::builder_with_http(Box::new(client));
        if let Some(json) = self.store.load_account(directory) {
            match serde_json::from_slice::<AccountCredentials>(&json) {
                Ok(credentials) => {
                    return builder
                        .from_credentials(credentials)
                        .await
                        .map_err(|e| format!("ACME directory {directory}: {}", chain(&e)));
                }
                Err(e) => tracing::warn!(
                    "ACME: the stored account is unreadable ({e}); creating a new one"
                ),
            }
        }
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("new account at {directory}: {}", chain(&e)))?;
        let json = serde_json::to_vec(&credentials).map_err(|e| format!("account: {e}"))?;
        self.store.save_account(directory, &json)?;
        tracing::info!(%directory, "ACME: account created");
        Ok(account)
    }
}

/// A self-signed certificate for `domains`, served until the CA's arrives.
fn self_signed(domains: &[String]) -> Result<LoadedCert, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("temporary key: {e}"))?;
    let params = rcgen::CertificateParams::new(domains.to_vec())
        .map_err(|e| format!("temporary certificate: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("temporary certificate: {e}"))?;
    certs::parse_pair(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        "acme (temporary self-signed)".to_owned(),
    )
}

/// The longest CA text a log line carries.
const SHOWN_MAX: usize = 512;

/// An error that may quote the CA (its problem documents): control
/// characters escaped so that it cannot start a log line of its own, and
/// at most [`SHOWN_MAX`] characters.
fn shown(error: &str) -> String {
    crate::fastcgi::exchange::escape_log_text_within(error.as_bytes(), SHOWN_MAX)
}

/// A time for log lines, RFC 3339 to the second.
fn when(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_with_a_temporary_certificate_then_the_stored_one() {
        let base = tempfile::tempdir().unwrap();
        let config = AcmeConfig {
            domains: vec!["a.example".into(), "b.example".into()],
            email: None,
            directory: "https://ca.invalid/dir".into(),
            ca_root: None,
            state_dir: base.path().join("acme"),
            challenge: crate::config::AcmeChallenge::TlsAlpn01,
            renew_before: Duration::from_secs(30 * 86400),
        };
        let resolver = Arc::new(CertResolver::default());
        let http01 = Arc::new(Http01Tokens::default());
        let task =
            AcmeTask::start(config.clone(), Arc::clone(&resolver), Arc::clone(&http01)).unwrap();
        assert!(task.current.is_none());
        let temp = resolver.acme().unwrap();
        assert!(temp.origin.contains("temporary"));
        assert!(temp.covers("b.example"));
        // A certificate in the store is served at the next start.
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(config.domains.clone())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        task.store
            .save_cert(
                &config.domains,
                cert.pem().as_bytes(),
                key.serialize_pem().as_bytes(),
            )
            .unwrap();
        let task =
            AcmeTask::start(config.clone(), Arc::clone(&resolver), Arc::clone(&http01)).unwrap();
        assert!(task.current.is_some());
        assert_eq!(resolver.acme().unwrap().origin, "acme");
        // A name added: the stored certificate keeps serving the two it
        // has (not a self-signed one for all three) while one is ordered.
        let mut more = config;
        more.domains.push("c.example".into());
        let task = AcmeTask::start(more, Arc::clone(&resolver), http01).unwrap();
        assert!(task.current.is_none(), "an order is due");
        let served = resolver.acme().unwrap();
        assert_eq!(served.origin, "acme");
        assert!(served.covers("a.example") && !served.covers("c.example"));
        assert!(task.stand_in.contains("stored"), "{}", task.stand_in);
    }

    #[test]
    fn ca_texts_are_one_bounded_line() {
        assert_eq!(shown("badNonce: try again"), "badNonce: try again");
        let forged = shown("x\nERROR fpmlb: forged\r\n\u{1b}[31m");
        assert!(!forged.contains(['\n', '\r', '\u{1b}']), "{forged}");
        let long = shown(&"é".repeat(5000));
        assert!(long.starts_with(&"é".repeat(SHOWN_MAX)));
        assert!(long.ends_with("... (10000 bytes)"), "{long}");
    }

    #[test]
    fn http01_tokens() {
        let t = Http01Tokens::default();
        assert_eq!(t.get("abc"), None);
        t.insert("abc", "abc.thumb");
        assert_eq!(t.get("abc").as_deref(), Some("abc.thumb"));
        t.remove("abc");
        assert_eq!(t.get("abc"), None);
    }
}
