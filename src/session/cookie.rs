//! The session cookie as browsers see it: how fpmlb serves the site
//! ([`SiteOrigin`]), the `Set-Cookie` a node sends ([`SetCookie`], parsed with the
//! `cookie` crate), and what a browser does with it there ([`refusals`]) or next
//! to the other nodes' cookie ([`attributes_differ`]).
//!
//! Browser rules are RFC 6265 (domain and path matching) and RFC 6265bis (the
//! storage model browsers implement: a `Secure` cookie set over `http://` is
//! ignored, so is `SameSite=None` without `Secure`).

use std::net::IpAddr;

use serde::Serialize;

/// How fpmlb serves the site, as far as the session cookie cares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteOrigin {
    /// Browsers reach the site over https (fpmlb's `https: true`, behind a TLS terminator).
    pub https: bool,
    /// The site's host name (`server_name`), when the configuration names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl SiteOrigin {
    /// `https://shop.example.com` or `http://(any host)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host.as_deref().unwrap_or("(any host)")
        )
    }
}

/// The attributes of a `Set-Cookie` header that decide whether browsers keep it and
/// send it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetCookie {
    /// The header as the node sent it, the value (the session id) replaced by `…`.
    pub header: String,
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    /// `SameSite` as written (`Lax`, `Strict`, `None`), `None` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Max-Age` in seconds, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

impl SetCookie {
    /// Parses one `Set-Cookie` header value; `None` when it is not a cookie.
    pub fn parse(header: &str) -> Option<SetCookie> {
        let parsed = cookie::Cookie::parse(header.trim()).ok()?;
        let same_site = header
            .split(';')
            .skip(1)
            .filter_map(|a| a.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("samesite"))
            .map(|(_, v)| v.trim().to_string());
        let shown = match header.split_once(';') {
            Some((_, rest)) => format!("{}=…;{rest}", parsed.name()),
            None => format!("{}=…", parsed.name()),
        };
        Some(SetCookie {
            header: shown.trim().to_string(),
            name: parsed.name().to_string(),
            secure: parsed.secure().unwrap_or(false),
            http_only: parsed.http_only().unwrap_or(false),
            same_site,
            domain: parsed.domain().map(str::to_string),
            path: parsed.path().map(str::to_string),
            max_age: parsed.max_age().map(|d| d.whole_seconds()),
        })
    }

    /// The `Set-Cookie` for cookie `name` among a response's headers.
    pub fn find(headers: &[String], name: &str) -> Option<SetCookie> {
        headers
            .iter()
            .filter_map(|h| SetCookie::parse(h))
            .rfind(|c| c.name == name)
    }
}

/// Why a browser would not keep or send back `cookie` when the site is served as
/// `listener`: (attribute, what the site needs, what the node sends, why).
pub fn refusals(cookie: &SetCookie, listener: &SiteOrigin) -> Vec<Refusal> {
    let mut out = Vec::new();
    if cookie.secure && !listener.https {
        out.push(Refusal {
            attribute: "Secure",
            needed: "no Secure (fpmlb serves http://)".to_string(),
            sent: "Secure".to_string(),
            why: "browsers ignore a Secure cookie set over http:// (RFC 6265bis 5.7); set https: true when a TLS terminator is in front".to_string(),
        });
    }
    if cookie
        .same_site
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("none"))
        && !cookie.secure
    {
        out.push(Refusal {
            attribute: "SameSite",
            needed: "Lax, Strict, or None with Secure".to_string(),
            sent: "SameSite=None without Secure".to_string(),
            why: "browsers ignore SameSite=None cookies that are not Secure (RFC 6265bis 5.7)"
                .to_string(),
        });
    }
    if let (Some(domain), Some(host)) = (cookie.domain.as_deref(), listener.host.as_deref())
        && !domain_match(host, domain)
    {
        out.push(Refusal {
            attribute: "Domain",
            needed: format!("{host} or a domain above it"),
            sent: format!("Domain={domain}"),
            why: format!(
                "browsers ignore a cookie whose Domain does not match the site {host} (RFC 6265 5.3)"
            ),
        });
    }
    out
}

/// One reason a browser refuses a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub attribute: &'static str,
    pub needed: String,
    pub sent: String,
    pub why: String,
}

/// The attributes (name, `Path`, `Domain`, `Secure`, `SameSite`, `Max-Age`) in which
/// `a` and `b` differ, as (attribute, a's, b's).
pub fn attributes_differ(a: &SetCookie, b: &SetCookie) -> Vec<(&'static str, String, String)> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
    let mut out = Vec::new();
    if a.name != b.name {
        out.push(("name", a.name.clone(), b.name.clone()));
    }
    if a.path != b.path {
        out.push(("Path", opt(&a.path), opt(&b.path)));
    }
    if a.domain != b.domain {
        out.push(("Domain", opt(&a.domain), opt(&b.domain)));
    }
    if a.secure != b.secure {
        out.push(("Secure", a.secure.to_string(), b.secure.to_string()));
    }
    let ss = |c: &SetCookie| c.same_site.as_ref().map(|s| s.to_ascii_lowercase());
    if ss(a) != ss(b) {
        out.push(("SameSite", opt(&a.same_site), opt(&b.same_site)));
    }
    if a.max_age != b.max_age {
        let age = |m: Option<i64>| m.map_or("(none)".to_string(), |s| s.to_string());
        out.push(("Max-Age", age(a.max_age), age(b.max_age)));
    }
    out
}

/// RFC 6265 5.1.3: whether `host` domain-matches the cookie `domain` (a leading dot
/// ignored, case-insensitive; an IP address matches only itself).
pub fn domain_match(host: &str, domain: &str) -> bool {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain = domain
        .trim()
        .trim_start_matches('.')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() {
        return false;
    }
    if host == domain {
        return true;
    }
    host.parse::<IpAddr>().is_err()
        && host.len() > domain.len()
        && host.ends_with(&domain)
        && host.as_bytes().get(host.len() - domain.len() - 1) == Some(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(https: bool, host: Option<&str>) -> SiteOrigin {
        SiteOrigin {
            https,
            host: host.map(str::to_string),
        }
    }

    #[test]
    fn set_cookie_as_php_sends_it() {
        // The header php_session_send_cookie builds (session.c).
        let c = SetCookie::parse(
            "PHPSESSID=2staq50mi8it7f2bi436c08b46; expires=Thu, 01 Jan 2037 00:00:00 GMT; Max-Age=300; path=/app; domain=.example.com; secure; HttpOnly; SameSite=Strict",
        )
        .unwrap();
        assert_eq!(c.name, "PHPSESSID");
        assert!(c.secure && c.http_only);
        assert_eq!(c.same_site.as_deref(), Some("Strict"));
        assert_eq!(c.domain.as_deref(), Some("example.com"));
        assert_eq!(c.path.as_deref(), Some("/app"));
        assert_eq!(c.max_age, Some(300));
        assert!(!c.header.contains("2staq50"), "{}", c.header);
        let plain = SetCookie::parse("PHPSESSID=abc; path=/").unwrap();
        assert!(!plain.secure && plain.same_site.is_none() && plain.max_age.is_none());
        assert!(SetCookie::parse("").is_none());
        let headers = vec!["a=1".to_string(), "PHPSESSID=x; path=/".to_string()];
        assert_eq!(
            SetCookie::find(&headers, "PHPSESSID").unwrap().name,
            "PHPSESSID"
        );
        assert!(SetCookie::find(&headers, "OTHER").is_none());
    }

    #[test]
    fn what_browsers_refuse() {
        let secure = SetCookie::parse("PHPSESSID=x; path=/; secure").unwrap();
        let refusals_of = |c: &SetCookie, l: &SiteOrigin| -> Vec<&'static str> {
            refusals(c, l).iter().map(|r| r.attribute).collect()
        };
        assert_eq!(refusals_of(&secure, &listener(false, None)), ["Secure"]);
        assert!(refusals_of(&secure, &listener(true, None)).is_empty());
        let none = SetCookie::parse("PHPSESSID=x; path=/; SameSite=None").unwrap();
        assert_eq!(refusals_of(&none, &listener(true, None)), ["SameSite"]);
        let none_secure = SetCookie::parse("PHPSESSID=x; SameSite=None; Secure").unwrap();
        assert!(refusals_of(&none_secure, &listener(true, None)).is_empty());
        let other = SetCookie::parse("PHPSESSID=x; domain=other.example").unwrap();
        let shop = listener(true, Some("shop.example.com"));
        assert_eq!(refusals_of(&other, &shop), ["Domain"]);
        // Without server_name the host is unknown: nothing to judge the domain by.
        assert!(refusals_of(&other, &listener(true, None)).is_empty());
        let parent = SetCookie::parse("PHPSESSID=x; domain=.example.com").unwrap();
        assert!(refusals_of(&parent, &shop).is_empty());
    }

    #[test]
    fn domain_matching() {
        assert!(domain_match("shop.example.com", "example.com"));
        assert!(domain_match("shop.example.com", ".Example.COM"));
        assert!(domain_match("example.com", "example.com"));
        assert!(!domain_match("badexample.com", "example.com"));
        assert!(!domain_match("example.com", "shop.example.com"));
        assert!(!domain_match("10.0.0.1", "0.0.1"));
        assert!(domain_match("10.0.0.1", "10.0.0.1"));
        assert!(!domain_match("shop.example.com", ""));
    }

    #[test]
    fn attribute_differences() {
        let a = SetCookie::parse("PHPSESSID=x; path=/").unwrap();
        let b = SetCookie::parse("PHPSESSID=y; path=/app; SameSite=lax; secure").unwrap();
        let attrs: Vec<&str> = attributes_differ(&a, &b).iter().map(|d| d.0).collect();
        assert_eq!(attrs, ["Path", "Secure", "SameSite"]);
        let c = SetCookie::parse("PHPSESSID=z; path=/").unwrap();
        assert!(attributes_differ(&a, &c).is_empty());
    }
}
