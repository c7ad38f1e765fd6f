//! The edge of fpmlb in the config: listener options (`listen:` entries that
//! are maps), the `tls:` section (certificate files, HSTS, ACME) and the
//! `real_ip:` section, from the raw YAML structs to typed values.
//!
//! The keys are those of the lead's schema for issue 13. Only the text is
//! checked here: whether the certificate files exist, parse and match their
//! keys is `crate::tls`'s business (`fpmlb config test` runs both).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::defaults as d;
use super::locate::join;
use super::parse::{parse_duration, parse_listen};
use super::validate::Validator;

/// One address fpmlb serves HTTP on, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `:8080` in the file means `0.0.0.0:8080`.
    pub addr: SocketAddr,
    /// TLS on this listener, with the certificates of `tls:`.
    pub tls: bool,
    /// A PROXY protocol header (v1 or v2) must come first on every connection.
    pub proxy_protocol: bool,
    /// Every request is answered with a 308 to `https://` (ACME HTTP-01 excepted).
    pub redirect_https: bool,
}

impl Listener {
    /// A cleartext listener without options (what a `listen:` string gives).
    #[must_use]
    pub fn plain(addr: SocketAddr) -> Listener {
        Listener {
            addr,
            tls: false,
            proxy_protocol: false,
            redirect_https: false,
        }
    }
}

/// The `tls:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate and key files, in file order.
    pub certificates: Vec<CertificateFiles>,
    /// The certificate for clients whose SNI matches none (or who send none).
    pub default_certificate: DefaultCertificate,
    /// `Strict-Transport-Security` value sent on TLS responses; `None`: not sent.
    pub hsts: Option<String>,
    /// Automatic certificates; `None`: off.
    pub acme: Option<AcmeConfig>,
}

/// One entry of `tls.certificates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM: the certificate, then its chain (a "fullchain" file).
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `tls.default_certificate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultCertificate {
    /// `~`: the first certificate (of the files, else the first ACME one).
    First,
    /// An index into `tls.certificates`, checked to be in range.
    Index(usize),
    /// A host name: the certificate whose SAN names match it.
    Name(String),
}

/// `tls.acme`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Host names of the one certificate to obtain (never empty, no wildcard).
    pub domains: Vec<String>,
    /// Contact for the account (`mailto:` is added).
    pub email: Option<String>,
    /// The ACME directory URL (`https://`).
    pub directory: String,
    /// PEM file of the root to trust for the directory (private CA); `None`: the system's roots.
    pub ca_root: Option<PathBuf>,
    /// Account key and certificates live here.
    pub state_dir: PathBuf,
    /// How the CA validates the names.
    pub challenge: AcmeChallenge,
    /// Renew when less than this is left (or a third of the lifetime, if shorter).
    pub renew_before: Duration,
}

/// `tls.acme.challenge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum AcmeChallenge {
    /// Answered on the TLS listeners (ALPN `acme-tls/1`); the CA connects to port 443.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Answered on the cleartext listeners (`/.well-known/acme-challenge/`); port 80.
    #[serde(rename = "http-01")]
    Http01,
}

impl AcmeChallenge {
    /// The name in the file and in RFC 8555/8737.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

impl fmt::Display for AcmeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `real_ip:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealIpConfig {
    /// Peers whose PROXY headers (and forwarding headers) are believed; empty: PROXY
    /// headers are accepted from any peer of a `proxy_protocol` listener, and
    /// forwarding headers from none.
    pub trusted_proxies: Vec<IpNet>,
    /// Which forwarding header names the client.
    pub header: RealIpHeader,
}

impl Default for RealIpConfig {
    fn default() -> Self {
        RealIpConfig {
            trusted_proxies: Vec::new(),
            header: d::REAL_IP_HEADER,
        }
    }
}

impl RealIpConfig {
    /// Whether `peer` may speak for clients (in `trusted_proxies`).
    #[must_use]
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        let peer = canonical_ip(peer);
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket
/// reports) as the IPv4 address it is, so `10.0.0.0/8` covers it.
#[must_use]
pub fn canonical_ip(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// `real_ip.header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum RealIpHeader {
    /// nginx's `real_ip_header X-Forwarded-For`.
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

// ---- the raw layer ----

/// An entry of `listen:`: an address, or a map with options.
#[derive(Debug)]
pub(super) enum RawListenEntry {
    Address(String),
    Options(RawListenOptions),
}

/// `listen: [{address: ..., tls: ...}]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenOptions {
    pub address: Option<String>,
    pub tls: Option<bool>,
    pub proxy_protocol: Option<bool>,
    pub redirect_https: Option<bool>,
}

impl<'de> Deserialize<'de> for RawListenEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RawListenEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address or a map with address, tls, proxy_protocol, redirect_https")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawListenEntry, E> {
                Ok(RawListenEntry::Address(v.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawListenEntry, E> {
                Ok(RawListenEntry::Address(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawListenEntry, E> {
                Ok(RawListenEntry::Address(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawListenEntry, A::Error> {
                RawListenOptions::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawListenEntry::Options)
            }
        }

        d.deserialize_any(EntryVisitor)
    }
}

/// `tls:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub certificates: Option<Vec<RawCertificate>>,
    pub default_certificate: Option<String>,
    pub hsts: Option<String>,
    pub acme: Option<RawAcme>,
}

/// An entry of `tls.certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificate {
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `tls.acme:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    pub domains: Option<Vec<String>>,
    pub email: Option<String>,
    pub directory: Option<String>,
    pub ca_root: Option<String>,
    pub state_dir: Option<String>,
    pub challenge: Option<AcmeChallenge>,
    pub renew_before: Option<String>,
}

/// `real_ip:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealIp {
    pub trusted_proxies: Option<Vec<String>>,
    pub header: Option<RealIpHeader>,
}

// ---- validation ----

impl Validator<'_> {
    /// `listen:` entries; `items` are (key path, entry). Returns each
    /// listener with the key path of its entry.
    pub(super) fn listeners(
        &mut self,
        items: Vec<(String, RawListenEntry)>,
    ) -> Vec<(String, Listener)> {
        if items.is_empty() {
            self.error("listen", "at least one address is required, e.g. \":8080\"");
        }
        let mut listeners: Vec<(String, Listener)> = Vec::with_capacity(items.len());
        for (key, entry) in items {
            let (address_key, text, listener) = match entry {
                RawListenEntry::Address(text) => {
                    (key.clone(), text, Listener::plain(unspecified()))
                }
                RawListenEntry::Options(o) => {
                    let Some(text) = o.address else {
                        self.missing(&key, "address");
                        continue;
                    };
                    let listener = Listener {
                        addr: unspecified(),
                        tls: o.tls.unwrap_or(false),
                        proxy_protocol: o.proxy_protocol.unwrap_or(false),
                        redirect_https: o.redirect_https.unwrap_or(false),
                    };
                    if listener.tls && listener.redirect_https {
                        self.error(
                            &join(&key, "redirect_https"),
                            "a TLS listener cannot redirect to HTTPS (it is HTTPS)",
                        );
                    }
                    (join(&key, "address"), text, listener)
                }
            };
            match parse_listen(&text) {
                Ok(addr) if listeners.iter().any(|(_, l)| l.addr == addr) => {
                    self.error(&address_key, format!("address {addr} is listed twice"));
                }
                Ok(addr) => listeners.push((key, Listener { addr, ..listener })),
                Err(message) => self.error(&address_key, message),
            }
        }
        listeners
    }

    /// Checks that the listeners (with their key paths) and `tls:` fit
    /// together. `acme_given`: `tls.acme` is in the file (valid or not).
    pub(super) fn edge_consistency(
        &mut self,
        listeners: &[(String, Listener)],
        tls: Option<&TlsConfig>,
        acme_given: bool,
    ) {
        let any_tls = listeners.iter().any(|(_, l)| l.tls);
        let has_certs = acme_given || tls.is_some_and(|t| !t.certificates.is_empty());
        for (key, l) in listeners {
            if l.tls && !has_certs {
                self.error(
                    &join(key, "tls"),
                    "a TLS listener needs certificates: set tls.certificates or tls.acme",
                );
            }
            if l.redirect_https && !any_tls {
                self.error(
                    &join(key, "redirect_https"),
                    "no listener has tls: true to redirect to",
                );
            }
        }
        let listeners: Vec<&Listener> = listeners.iter().map(|(_, l)| l).collect();
        let Some(tls) = tls else { return };
        if !any_tls {
            self.error("tls", "no listener has tls: true");
        }
        if let Some(acme) = &tls.acme
            && acme.challenge == AcmeChallenge::Http01
            && listeners.iter().all(|l| l.tls)
        {
            self.error(
                "tls.acme.challenge",
                "http-01 is answered on a cleartext listener, and every listener has tls: true",
            );
        }
    }

    pub(super) fn tls(&mut self, raw: RawTls) -> TlsConfig {
        let mut certificates = Vec::new();
        for (i, c) in raw.certificates.unwrap_or_default().into_iter().enumerate() {
            let path = format!("tls.certificates[{i}]");
            let cert = self.file_path(&path, "cert", c.cert);
            let key = self.file_path(&path, "key", c.key);
            if let (Some(cert), Some(key)) = (cert, key) {
                certificates.push(CertificateFiles { cert, key });
            }
        }
        let default_certificate = match raw.default_certificate {
            None => DefaultCertificate::First,
            Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                match text.parse::<usize>() {
                    Ok(i) if i < certificates.len() => DefaultCertificate::Index(i),
                    _ => {
                        self.error(
                            "tls.default_certificate",
                            format!(
                                "index {text} is beyond tls.certificates ({} entries, counted from 0)",
                                certificates.len()
                            ),
                        );
                        DefaultCertificate::First
                    }
                }
            }
            Some(name) => match check_dns_name(&name, true) {
                Ok(()) => DefaultCertificate::Name(name.to_ascii_lowercase()),
                Err(message) => {
                    self.error(
                        "tls.default_certificate",
                        format!("an index into tls.certificates or a host name: {message}"),
                    );
                    DefaultCertificate::First
                }
            },
        };
        let hsts = raw.hsts.and_then(|value| match check_hsts(&value) {
            Ok(()) => Some(value),
            Err(message) => {
                self.error("tls.hsts", message);
                None
            }
        });
        let acme = raw.acme.and_then(|a| self.acme(a));
        TlsConfig {
            certificates,
            default_certificate,
            hsts,
            acme,
        }
    }

    fn file_path(&mut self, parent: &str, field: &str, value: Option<String>) -> Option<PathBuf> {
        match value {
            None => {
                self.missing(parent, field);
                None
            }
            Some(p) if p.trim().is_empty() || p.contains('\0') => {
                self.error(&join(parent, field), "must be a file path");
                None
            }
            Some(p) => Some(PathBuf::from(p)),
        }
    }

    fn acme(&mut self, raw: RawAcme) -> Option<AcmeConfig> {
        let errors_before = self.error_count();
        let domains = match raw.domains {
            None => {
                self.missing("tls.acme", "domains");
                Vec::new()
            }
            Some(list) if list.is_empty() => {
                self.error("tls.acme.domains", "at least one host name is required");
                Vec::new()
            }
            Some(list) => {
                let mut domains: Vec<String> = Vec::with_capacity(list.len());
                for (i, name) in list.into_iter().enumerate() {
                    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
                    if let Err(message) = check_dns_name(&name, false) {
                        self.error(&format!("tls.acme.domains[{i}]"), message);
                    } else if domains.contains(&name) {
                        self.error(
                            &format!("tls.acme.domains[{i}]"),
                            format!("{name} is listed twice"),
                        );
                    } else {
                        domains.push(name);
                    }
                }
                domains
            }
        };
        let email = raw.email.and_then(|e| {
            let ok = e.contains('@')
                && !e.starts_with('@')
                && !e.ends_with('@')
                && !e.contains(|c: char| c.is_whitespace() || c.is_control() || c == ',');
            if ok {
                Some(e.strip_prefix("mailto:").unwrap_or(&e).to_owned())
            } else {
                self.error("tls.acme.email", format!("not an e-mail address: {e:?}"));
                None
            }
        });
        let directory = raw
            .directory
            .unwrap_or_else(|| d::ACME_DIRECTORY.to_owned());
        if !directory.starts_with("https://") || directory.contains(char::is_whitespace) {
            self.error(
                "tls.acme.directory",
                format!("must be an https:// URL (RFC 8555), got {directory:?}"),
            );
        }
        let ca_root = raw.ca_root.and_then(|p| {
            if p.trim().is_empty() {
                self.error("tls.acme.ca_root", "must be a file path, or ~");
                None
            } else {
                Some(PathBuf::from(p))
            }
        });
        let state_dir = match raw.state_dir {
            Some(p) if !p.starts_with('/') => {
                self.error(
                    "tls.acme.state_dir",
                    format!("must be an absolute path, got {p:?}"),
                );
                PathBuf::from(d::ACME_STATE_DIR)
            }
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(d::ACME_STATE_DIR),
        };
        let renew_before = match raw.renew_before {
            None => d::ACME_RENEW_BEFORE,
            Some(text) => match parse_duration(&text) {
                Ok(v) if v.is_zero() => {
                    self.error("tls.acme.renew_before", "must be greater than 0");
                    d::ACME_RENEW_BEFORE
                }
                Ok(v) => v,
                Err(message) => {
                    self.error("tls.acme.renew_before", message);
                    d::ACME_RENEW_BEFORE
                }
            },
        };
        if self.error_count() > errors_before {
            return None;
        }
        Some(AcmeConfig {
            domains,
            email,
            directory,
            ca_root,
            state_dir,
            challenge: raw.challenge.unwrap_or(d::ACME_CHALLENGE),
            renew_before,
        })
    }

    /// A `proxy_protocol` listener on an address others can reach, with no
    /// `trusted_proxies`: any peer may then name its own client address
    /// (REMOTE_ADDR, logs, the per-client cap). Loads, with a warning.
    pub(super) fn proxy_protocol_trust(
        &mut self,
        listeners: &[(String, Listener)],
        real_ip: &RealIpConfig,
    ) {
        if !real_ip.trusted_proxies.is_empty() {
            return;
        }
        for (key, listener) in listeners {
            if listener.proxy_protocol && !listener.addr.ip().is_loopback() {
                self.warn(
                    key,
                    "proxy_protocol with real_ip.trusted_proxies empty: any peer that reaches this address may send a PROXY header and choose the client address fpmlb sees (REMOTE_ADDR, the access log, max_connections_per_client); list the balancers in real_ip.trusted_proxies",
                );
            }
        }
    }

    pub(super) fn real_ip(&mut self, raw: RawRealIp) -> RealIpConfig {
        let mut trusted_proxies = Vec::new();
        for (i, text) in raw
            .trusted_proxies
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match parse_cidr(&text) {
                Ok(net) => trusted_proxies.push(net),
                Err(message) => self.error(&format!("real_ip.trusted_proxies[{i}]"), message),
            }
        }
        RealIpConfig {
            trusted_proxies,
            header: raw.header.unwrap_or(d::REAL_IP_HEADER),
        }
    }
}

/// `0.0.0.0:0`, a placeholder until the address is parsed.
fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.0.0.7`, a /32 or /128).
///
/// # Errors
///
/// A message quoting `text`.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        if net.network() != net.addr() {
            return Err(format!(
                "{t:?} has host bits set; the network is {}",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    t.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("not an address or CIDR (10.0.0.0/8, 2001:db8::/32): {t:?}"))
}

/// A host name a certificate can be issued for (letters, digits, '-', dots);
/// `*.` in front only when `wildcard` is allowed.
fn check_dns_name(name: &str, wildcard: bool) -> Result<(), String> {
    let bare = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => {
            return Err(format!(
                "{name:?}: wildcards cannot be validated by http-01 or tls-alpn-01"
            ));
        }
        None => name,
    };
    let labels_ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return Err(format!("{name:?} is not a valid host name"));
    }
    if bare.parse::<std::net::IpAddr>().is_ok()
        || bare.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(format!("{name:?} is an IP address, not a host name"));
    }
    Ok(())
}

/// `max-age=N[; includeSubDomains][; preload]`, a valid header value.
fn check_hsts(value: &str) -> Result<(), String> {
    let first = value.split(';').next().unwrap_or("").trim();
    let max_age = first
        .to_ascii_lowercase()
        .strip_prefix("max-age=")
        .map(|n| n.trim_matches('"').bytes().all(|b| b.is_ascii_digit()) && !n.is_empty());
    if max_age != Some(true) || http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "a Strict-Transport-Security value starting with max-age=SECONDS, e.g. \"max-age=63072000; includeSubDomains\", got {value:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    const BACKENDS: &str =
        "document_root: /srv\nbackends:\n  - {name: a, address: \"127.0.0.1:9000\"}\n";

    fn ok(head: &str) -> Config {
        let yaml = format!("{head}{BACKENDS}");
        Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\nin:\n{yaml}"))
    }

    fn errors(head: &str) -> Vec<ConfigError> {
        let yaml = format!("{head}{BACKENDS}");
        match Config::from_yaml(&yaml) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.0,
        }
    }

    /// (key, line) of each error.
    fn where_(errors: &[ConfigError]) -> Vec<(&str, Option<usize>)> {
        errors.iter().map(|e| (e.key.as_str(), e.line)).collect()
    }

    const TLS: &str = "tls:\n  certificates:\n    - {cert: /c.pem, key: /k.pem}\n";

    /// PROXY headers believed from any peer of a reachable listener: a
    /// warning naming the listener, not when only loopback can reach it or
    /// when the proxies are listed.
    #[test]
    fn proxy_protocol_from_anyone_is_warned_of() {
        let warned = |head: &str| -> Vec<String> {
            ok(head)
                .warnings
                .iter()
                .filter(|w| w.message.contains("trusted_proxies"))
                .map(|w| w.key.clone())
                .collect()
        };
        let open = "listen:\n  - \":80\"\n  - {address: \":81\", proxy_protocol: true}\n";
        assert_eq!(warned(open), ["listen[1]"]);
        assert_eq!(
            warned(&format!(
                "{open}real_ip:\n  trusted_proxies: [10.0.0.0/8]\n"
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            warned("listen:\n  - {address: \"127.0.0.1:81\", proxy_protocol: true}\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn listen_entries_mix_strings_and_maps() {
        let c = ok(&format!(
            "listen:\n  - \":80\"\n  - {{address: \":443\", tls: true}}\n  - address: \"127.0.0.1:8080\"\n    redirect_https: true\n    proxy_protocol: true\n{TLS}"
        ));
        assert_eq!(
            c.listen,
            vec![
                Listener::plain("0.0.0.0:80".parse().unwrap()),
                Listener {
                    addr: "0.0.0.0:443".parse().unwrap(),
                    tls: true,
                    proxy_protocol: false,
                    redirect_https: false
                },
                Listener {
                    addr: "127.0.0.1:8080".parse().unwrap(),
                    tls: false,
                    proxy_protocol: true,
                    redirect_https: true
                },
            ]
        );
        let tls = c.tls.unwrap();
        assert_eq!(tls.certificates[0].cert, PathBuf::from("/c.pem"));
        assert_eq!(tls.default_certificate, DefaultCertificate::First);
        assert_eq!(tls.acme, None);
        // One map alone, not in a list.
        let c = ok(&format!("listen: {{address: \":443\", tls: true}}\n{TLS}"));
        assert!(c.listen[0].tls);
    }

    #[test]
    fn listener_errors_name_key_and_line() {
        let e = errors(
            "listen:\n  - {address: \":443\", tls: true, redirect_https: true}\n  - {tls: true}\n  - {address: \":80\", bogus: 1}\n",
        );
        assert_eq!(e.len(), 1, "{e:?}"); // unknown keys stop the typed parse
        assert_eq!(where_(&e), vec![("listen[2].bogus", Some(4))]);
        let e = errors(
            "listen:\n  - {address: \":443\", tls: true, redirect_https: true}\n  - {tls: true}\n",
        );
        assert_eq!(
            where_(&e),
            vec![
                ("listen[0].redirect_https", Some(2)),
                ("listen[0].tls", Some(2)),
                ("listen[1].address", Some(3)),
            ]
        );
        let e = errors("listen:\n  - {address: \":80\", redirect_https: true}\n");
        assert!(e[0].message.contains("no listener has tls"), "{e:?}");
        let e = errors(&format!("listen: \":80\"\n{TLS}"));
        assert_eq!(where_(&e), vec![("tls", Some(2))]);
    }

    #[test]
    fn tls_and_acme_keys() {
        let c = ok(
            "listen:\n  - \":80\"\n  - {address: \":443\", tls: true}\ntls:\n  hsts: \"max-age=600\"\n  acme:\n    domains: [Example.COM, www.example.com]\n    email: ops@example.com\n",
        );
        let tls = c.tls.unwrap();
        assert_eq!(tls.hsts.as_deref(), Some("max-age=600"));
        let acme = tls.acme.unwrap();
        assert_eq!(acme.domains, vec!["example.com", "www.example.com"]);
        assert_eq!(acme.directory, d::ACME_DIRECTORY);
        assert_eq!(acme.state_dir, PathBuf::from(d::ACME_STATE_DIR));
        assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(acme.renew_before, d::ACME_RENEW_BEFORE);
        let e = errors(
            "listen: {address: \":443\", tls: true}\ntls:\n  hsts: preload\n  default_certificate: 3\n  acme:\n    domains: [\"*.example.com\", 10.0.0.1]\n    email: nobody\n    directory: http://ca/dir\n    state_dir: relative\n    challenge: http-01\n    renew_before: 0s\n",
        );
        assert_eq!(
            where_(&e),
            vec![
                ("tls.hsts", Some(3)),
                ("tls.default_certificate", Some(4)),
                ("tls.acme.domains[0]", Some(6)),
                ("tls.acme.domains[1]", Some(6)),
                ("tls.acme.email", Some(7)),
                ("tls.acme.directory", Some(8)),
                ("tls.acme.state_dir", Some(9)),
                ("tls.acme.renew_before", Some(11)),
            ]
        );
        // http-01 needs a cleartext listener.
        let e = errors(
            "listen: {address: \":443\", tls: true}\ntls:\n  acme:\n    domains: [a.example]\n    challenge: http-01\n",
        );
        assert_eq!(where_(&e), vec![("tls.acme.challenge", Some(5))]);
    }

    #[test]
    fn real_ip_keys() {
        let c = ok(
            "listen: \":80\"\nreal_ip:\n  trusted_proxies: [10.0.0.0/8, \"2001:db8::1\"]\n  header: forwarded\n",
        );
        assert_eq!(c.real_ip.trusted_proxies.len(), 2);
        assert_eq!(c.real_ip.header, RealIpHeader::Forwarded);
        let e = errors("listen: \":80\"\nreal_ip:\n  trusted_proxies: [10.0.0.1/8, nowhere]\n");
        assert_eq!(
            where_(&e),
            vec![
                ("real_ip.trusted_proxies[0]", Some(3)),
                ("real_ip.trusted_proxies[1]", Some(3))
            ]
        );
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.0.0.7").unwrap().to_string(), "10.0.0.7/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("10.0.0.0/8"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }

    #[test]
    fn trusts_mapped_ipv4() {
        let real_ip = RealIpConfig {
            trusted_proxies: vec![parse_cidr("10.0.0.0/8").unwrap()],
            header: RealIpHeader::XForwardedFor,
        };
        assert!(real_ip.trusts("10.1.2.3".parse().unwrap()));
        assert!(real_ip.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!real_ip.trusts("11.1.2.3".parse().unwrap()));
        assert!(!RealIpConfig::default().trusts("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_name("example.com", false).is_ok());
        assert!(check_dns_name("a-b.example", false).is_ok());
        assert!(check_dns_name("*.example.com", false).is_err());
        assert!(check_dns_name("*.example.com", true).is_ok());
        assert!(check_dns_name("-a.example", false).is_err());
        assert!(check_dns_name("a..b", false).is_err());
        assert!(check_dns_name("10.0.0.1", false).is_err());
        assert!(check_dns_name("a b", false).is_err());
    }

    #[test]
    fn hsts_values() {
        assert!(check_hsts("max-age=63072000; includeSubDomains").is_ok());
        assert!(check_hsts("max-age=0").is_ok());
        assert!(check_hsts("includeSubDomains").is_err());
        assert!(check_hsts("max-age=abc").is_err());
        assert!(check_hsts("max-age=1\r\nX: y").is_err());
    }
}
