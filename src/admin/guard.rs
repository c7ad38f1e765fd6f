//! The admin listener against a browser turned against it. A page on any
//! site can make its visitor's browser send a form POST to
//! `http://127.0.0.1:9180/backends/web01/drain` (no preflight is needed for
//! a form), and, with DNS rebinding, read `status.json` under its own name.
//! So, before anything else:
//!
//! - the Host must be an IP address, `localhost`, or one of `admin.hosts`:
//!   a rebound name is another Host (421 Misdirected Request);
//! - a POST that a browser marks as cross-site (`Sec-Fetch-Site` other
//!   than `same-origin` or `none`, an `Origin` that is not this Host) or
//!   that carries a form content type (`application/x-www-form-urlencoded`,
//!   `multipart/form-data`, `text/plain`: the ones a page may send without
//!   asking) is refused with 403. curl and scripts send none of these.

use std::net::IpAddr;

use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode};

use crate::http::headers::parse_host;

/// Why a request is refused, with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// 403 for a request a browser marked as cross-site with `header: value`.
fn cross_site(header: &str, value: &http::HeaderValue) -> Refusal {
    refuse(
        StatusCode::FORBIDDEN,
        format!(
            "cross-site request ({header}: {:?})",
            String::from_utf8_lossy(value.as_bytes())
        ),
    )
}

/// Whether `host` (lower case, no port) is one the admin API answers to.
fn known_host(host: &str, hosts: &[String]) -> bool {
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    literal.unwrap_or(host).parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host == "localhost."
        || hosts.iter().any(|h| h == host)
}

/// Refuses a request a browser could have been made to send; `hosts` are
/// the configured `admin.hosts`.
pub fn check(method: &Method, headers: &HeaderMap, hosts: &[String]) -> Result<(), Refusal> {
    // A request without Host is no browser's (HTTP/1.0 tools): let it be.
    let host = match headers.get(HOST) {
        None => None,
        Some(value) => {
            let Some(parsed) = parse_host(value.as_bytes()) else {
                return Err(refuse(StatusCode::BAD_REQUEST, "invalid Host"));
            };
            if !known_host(&parsed.host, hosts) {
                return Err(refuse(
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "Host {} is neither an IP address, localhost nor in admin.hosts",
                        parsed.host
                    ),
                ));
            }
            Some(value.as_bytes())
        }
    };
    if *method != Method::POST {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err(cross_site("Sec-Fetch-Site", site));
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let same = origin
            .as_bytes()
            .strip_prefix(b"http://")
            .zip(host)
            .is_some_and(|(o, h)| o.eq_ignore_ascii_case(h));
        if !same {
            return Err(cross_site("Origin", origin));
        }
    }
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let media = ct.as_bytes().split(|&b| b == b';').next().unwrap_or(b"");
        let media = media.trim_ascii();
        let form = [
            &b"application/x-www-form-urlencoded"[..],
            b"multipart/form-data",
            b"text/plain",
        ];
        if form.iter().any(|f| media.eq_ignore_ascii_case(f)) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "form content type on an admin POST (what a cross-site form sends)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn status(method: Method, pairs: &[(&str, &str)]) -> u16 {
        let hosts = vec!["fpmlb.internal".to_owned()];
        check(&method, &headers(pairs), &hosts).map_or_else(|r| r.status.as_u16(), |()| 200)
    }

    #[test]
    fn hosts_an_attacker_cannot_choose_pass() {
        for host in [
            "127.0.0.1:9180",
            "10.1.2.3",
            "[::1]:9180",
            "localhost:9180",
            "FPMLB.internal",
        ] {
            assert_eq!(status(Method::GET, &[("host", host)]), 200, "{host}");
        }
        assert_eq!(status(Method::GET, &[]), 200, "no Host: not a browser");
    }

    #[test]
    fn a_rebound_name_is_misdirected() {
        assert_eq!(status(Method::GET, &[("host", "evil.example:9180")]), 421);
        assert_eq!(
            status(Method::GET, &[("host", "localhost.evil.example")]),
            421
        );
        assert_eq!(status(Method::GET, &[("host", "a b")]), 400);
    }

    #[test]
    fn cross_site_posts_are_forbidden() {
        let h = ("host", "127.0.0.1:9180");
        assert_eq!(status(Method::POST, &[h]), 200, "curl -X POST");
        assert_eq!(
            status(Method::POST, &[h, ("sec-fetch-site", "same-origin")]),
            200
        );
        assert_eq!(status(Method::POST, &[h, ("sec-fetch-site", "none")]), 200);
        assert_eq!(
            status(Method::POST, &[h, ("sec-fetch-site", "cross-site")]),
            403
        );
        assert_eq!(
            status(Method::POST, &[h, ("sec-fetch-site", "same-site")]),
            403
        );
        assert_eq!(
            status(Method::POST, &[h, ("origin", "http://127.0.0.1:9180")]),
            200
        );
        assert_eq!(
            status(Method::POST, &[h, ("origin", "http://evil.example")]),
            403
        );
        assert_eq!(status(Method::POST, &[h, ("origin", "null")]), 403);
        assert_eq!(
            status(Method::POST, &[("origin", "http://127.0.0.1:9180")]),
            403,
            "no Host to match"
        );
        // Reading is not guarded by origin: the Host check covers it.
        assert_eq!(
            status(Method::GET, &[h, ("sec-fetch-site", "cross-site")]),
            200
        );
    }

    #[test]
    fn form_content_types_are_forbidden_on_post() {
        let h = ("host", "127.0.0.1");
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "Text/Plain;charset=UTF-8",
        ] {
            assert_eq!(
                status(Method::POST, &[h, ("content-type", ct)]),
                403,
                "{ct}"
            );
        }
        assert_eq!(
            status(Method::POST, &[h, ("content-type", "application/json")]),
            200
        );
    }
}
