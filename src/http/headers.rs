//! Header hygiene: what of a request's head fpmlb refuses, and which
//! headers may become `HTTP_*` params.
//!
//! hyper already refuses control bytes (NUL, CR, LF) in values, obs-fold,
//! two differing Content-Lengths, and a Transfer-Encoding whose last coding
//! is not chunked (all 400); a Transfer-Encoding with a Content-Length is
//! read as chunked and the connection closed after the answer (RFC 9112
//! §6.1). On top of that, as nginx does:
//! - a second `Host`, `Content-Length` or `Transfer-Encoding` line is 400;
//! - a Host that is not `host[:port]` (a name of `[A-Za-z0-9._-]`, an IPv4
//!   address or a bracketed IPv6 one) is 400; so is an HTTP/1.1 request
//!   without any host, and a Host that names another host than the
//!   absolute-form target or HTTP/2's `:authority` (RFC 9112 §3.2,
//!   RFC 9113 §8.3.1);
//! - a Transfer-Encoding other than plain `chunked` is 501.
//!
//! And, as nginx's `ignore_invalid_headers on` + `underscores_in_headers
//! off`: only names of `[A-Za-z0-9-]` become `HTTP_*` params. PHP turns
//! `.`, ` ` and `[` in a variable name into `_`, so `X.Forwarded-For` would
//! arrive as HTTP_X_FORWARDED_FOR; `X_Forwarded-For` the same.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;

use crate::http::error::ClientError;

/// Whether a header named `name` (hyper gives names in lower case) may be
/// passed on as `HTTP_*`: letters, digits and `-` only, so that no two names
/// give the same param, and not `Proxy`, which PHP code reads as a proxy
/// setting (httpoxy, CVE-2016-5385).
pub fn passes_as_cgi(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.eq_ignore_ascii_case("proxy")
}

/// Refuses a head that nginx would refuse (see the module's doc).
pub fn check(parts: &Parts) -> Result<(), ClientError> {
    for name in [HOST, CONTENT_LENGTH, TRANSFER_ENCODING] {
        if parts.headers.get_all(&name).iter().nth(1).is_some() {
            return Err(ClientError::BadHeader(format!("duplicate {name} header")));
        }
    }
    if let Some(te) = parts.headers.get(TRANSFER_ENCODING)
        && !te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")
    {
        return Err(ClientError::TransferEncoding(
            String::from_utf8_lossy(te.as_bytes()).into_owned(),
        ));
    }
    check_host(parts)
}

/// A host and port as a request names them: the host in lower case, the
/// port when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

fn bad_host(what: &str, value: &[u8]) -> ClientError {
    ClientError::BadHeader(format!(
        "{what} {:?}",
        String::from_utf8_lossy(&value[..value.len().min(256)])
    ))
}

fn check_host(parts: &Parts) -> Result<(), ClientError> {
    let header = match parts.headers.get(HOST) {
        Some(value) => Some(
            parse_host(value.as_bytes())
                .ok_or_else(|| bad_host("invalid Host", value.as_bytes()))?,
        ),
        None => None,
    };
    let target = match parts.uri.authority() {
        Some(authority) => Some(parse_host(authority.as_str().as_bytes()).ok_or_else(|| {
            bad_host(
                "invalid host in the request target",
                authority.as_str().as_bytes(),
            )
        })?),
        None => None,
    };
    match (&header, &target) {
        (None, None) if parts.version == http::Version::HTTP_11 => Err(ClientError::BadHeader(
            "HTTP/1.1 request without Host".into(),
        )),
        (Some(h), Some(t)) if !same_origin(h, t, parts.uri.scheme_str()) => {
            Err(ClientError::BadHeader(format!(
                "Host {} is not the request's authority {}",
                h.host, t.host
            )))
        }
        _ => Ok(()),
    }
}

/// Same host, and same port once a missing one is read as the scheme's.
fn same_origin(a: &HostPort, b: &HostPort, scheme: Option<&str>) -> bool {
    let default = if scheme == Some("https") { 443 } else { 80 };
    a.host == b.host && a.port.unwrap_or(default) == b.port.unwrap_or(default)
}

/// Parses `host[:port]`: a name of `[A-Za-z0-9._-]` (no empty label but a
/// final dot), an IPv4 address, or `[IPv6]`. None when it is anything else.
pub fn parse_host(value: &[u8]) -> Option<HostPort> {
    let (host, port) = if value.first() == Some(&b'[') {
        let end = value.iter().position(|&b| b == b']')?;
        let literal = &value[1..end];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return None;
        }
        (&value[..=end], &value[end + 1..])
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &b""[..]),
        }
    };
    let port = match port {
        b"" | b":" => None,
        [b':', digits @ ..] if digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) => {
            Some(std::str::from_utf8(digits).ok()?.parse::<u16>().ok()?)
        }
        _ => return None,
    };
    if host.first() != Some(&b'[') {
        let name = host.strip_suffix(b".").unwrap_or(host);
        let ok = !name.is_empty()
            && name.split(|&b| b == b'.').all(|label| {
                !label.is_empty()
                    && label
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return None;
        }
    }
    let host = String::from_utf8(host.to_ascii_lowercase()).ok()?;
    Some(HostPort { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, version: http::Version, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::get(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn status(uri: &str, version: http::Version, headers: &[(&str, &str)]) -> u16 {
        check(&parts(uri, version, headers)).map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    const H10: http::Version = http::Version::HTTP_10;
    const H11: http::Version = http::Version::HTTP_11;
    const H2: http::Version = http::Version::HTTP_2;

    #[test]
    fn only_plain_names_pass_as_cgi() {
        for ok in ["host", "x-forwarded-for", "accept", "x-1", "-"] {
            assert!(passes_as_cgi(ok), "{ok}");
        }
        for refused in [
            "x_forwarded-for",
            "x.forwarded-for",
            "x~y",
            "x+y",
            "proxy",
            "",
            "x!",
        ] {
            assert!(!passes_as_cgi(refused), "{refused}");
        }
    }

    #[test]
    fn host_syntax() {
        let hp = |s: &str| parse_host(s.as_bytes());
        assert_eq!(
            hp("Example.COM:8080"),
            Some(HostPort {
                host: "example.com".into(),
                port: Some(8080)
            })
        );
        assert_eq!(hp("example.com.").map(|h| h.port), Some(None));
        assert_eq!(hp("127.0.0.1").map(|h| h.host), Some("127.0.0.1".into()));
        assert_eq!(hp("[::1]:80").map(|h| h.port), Some(Some(80)));
        assert_eq!(
            hp("[::ffff:1.2.3.4]").map(|h| h.host),
            Some("[::ffff:1.2.3.4]".into())
        );
        assert_eq!(
            hp("a_b.example"),
            Some(HostPort {
                host: "a_b.example".into(),
                port: None
            })
        );
        for bad in [
            "", ":80", "a..b", ".a", "a/b", "a b", "a\\b", "a,b", "a:80:80", "a:x", "a:999999",
            "[::1", "[zz]", "[]", "a@b", "a%2fb", "..", "a;b",
        ] {
            assert_eq!(hp(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(status("/", H11, &[("host", "a.example")]), 200);
        assert_eq!(status("/", H11, &[]), 400, "HTTP/1.1 needs a host");
        assert_eq!(status("/", H10, &[]), 200, "HTTP/1.0 does not");
        assert_eq!(status("/", H11, &[("host", "a"), ("host", "b")]), 400);
        assert_eq!(status("/", H11, &[("host", "a"), ("host", "a")]), 400);
        assert_eq!(status("/", H11, &[("host", "a, evil")]), 400);
        assert_eq!(status("/", H11, &[("host", "evil/x")]), 400);
        // Absolute form: the target's host, which Host must not contradict.
        assert_eq!(status("http://a.example/x", H11, &[]), 200);
        assert_eq!(
            status("http://a.example/x", H11, &[("host", "A.example:80")]),
            200
        );
        assert_eq!(
            status("http://a.example/x", H11, &[("host", "b.example")]),
            400
        );
        assert_eq!(
            status("http://a.example/x", H11, &[("host", "a.example:81")]),
            400
        );
        // HTTP/2: :authority and Host agree, or one of them is there.
        assert_eq!(
            status("http://a.example/x", H2, &[("host", "a.example")]),
            200
        );
        assert_eq!(status("http://a.example/x", H2, &[("host", "evil")]), 400);
        assert_eq!(status("/x", H2, &[]), 200);
    }

    #[test]
    fn framing_headers_must_be_single() {
        let h = |extra: &[(&str, &str)]| {
            let mut all = vec![("host", "a")];
            all.extend_from_slice(extra);
            status("/", H11, &all)
        };
        assert_eq!(h(&[("content-length", "5"), ("content-length", "5")]), 400);
        assert_eq!(
            h(&[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked")
            ]),
            400
        );
        assert_eq!(h(&[("transfer-encoding", "chunked")]), 200);
        assert_eq!(h(&[("transfer-encoding", "Chunked ")]), 200);
        assert_eq!(h(&[("transfer-encoding", "gzip, chunked")]), 501);
    }
}
