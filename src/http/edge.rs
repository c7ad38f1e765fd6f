//! What the front end answers itself at the edge, before any routing: ACME
//! HTTP-01 challenges, and the 308 to HTTPS of `redirect_https` listeners;
//! and the `Strict-Transport-Security` header of TLS responses.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;

use crate::http::params::{ConnInfo, Site};
use crate::http::response::{self, BodyError};
use crate::tls::acme::{HTTP01_PREFIX, Http01Tokens};

/// The edge settings of the front end, from the config.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// `tls.hsts`, sent on every response over TLS.
    pub hsts: Option<HeaderValue>,
    /// The port of the first TLS listener: where `redirect_https` sends
    /// clients (left out of the URL when it is 443).
    pub https_port: Option<u16>,
    /// The HTTP-01 answers of a running ACME order.
    pub http01: Arc<Http01Tokens>,
}

type Boxed = UnsyncBoxBody<Bytes, BodyError>;

/// fpmlb's own answer to a request, if the edge has one: an HTTP-01
/// challenge on a cleartext listener, or the redirect of a
/// `redirect_https` listener (challenges first: the CA must reach them).
pub fn answer(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    edge: &Edge,
    site: &Site,
) -> Option<Response<Boxed>> {
    if conn.tls.is_none()
        && (parts.method == Method::GET || parts.method == Method::HEAD)
        && let Some(token) = parts.uri.path().strip_prefix(HTTP01_PREFIX)
        && let Some(key_authorization) = edge.http01.get(token)
    {
        tracing::info!(client = %conn.client(), "ACME: answered an HTTP-01 challenge");
        let mut resp = Response::new(response::full(Bytes::from(key_authorization)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return Some(resp);
    }
    // A trusted proxy that says the client came over HTTPS (a CDN that
    // terminates TLS and talks HTTP to this listener) is not redirected:
    // that would loop.
    if conn.redirect_https && conn.forwarded_https() != Some(true) {
        return Some(redirect(parts, conn, edge, site));
    }
    None
}

/// 308 to the same URL over HTTPS (308 keeps the method and body, where 301
/// turns a POST into a GET).
fn redirect(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    edge: &Edge,
    site: &Site,
) -> Response<Boxed> {
    let location =
        https_url(parts, conn, edge, site).and_then(|url| HeaderValue::from_str(&url).ok());
    let Some(location) = location else {
        return response::error_page(StatusCode::BAD_REQUEST);
    };
    let mut resp = Response::new(response::full(Bytes::from_static(
        b"308 Permanent Redirect\n",
    )));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `https://host[:port]/path?query` for the request: the host from the
/// request (Host, or :authority on HTTP/2), else `server_name`, else the
/// address it came in on; the port of the TLS listener.
fn https_url(
    parts: &http::request::Parts,
    conn: &ConnInfo,
    edge: &Edge,
    site: &Site,
) -> Option<String> {
    let from_request = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()));
    let host = match from_request {
        Some(h) => {
            // An authority with nothing but a host and port: no user info,
            // no path, so the Location cannot point anywhere else.
            let authority: http::uri::Authority = h.parse().ok()?;
            if authority.as_str().contains('@') {
                return None;
            }
            authority.host().to_owned()
        }
        None => match &site.server_name {
            Some(name) => name.clone(),
            None => match conn.local.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            },
        },
    };
    let port = match edge.https_port {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("https://{host}{port}{path}"))
}

/// Adds HSTS to a response the client gets over HTTPS: TLS here, unless a
/// trusted proxy says otherwise (browsers ignore HSTS over plain HTTP).
pub fn add_hsts<B>(resp: &mut Response<B>, conn: &ConnInfo, edge: &Edge) {
    if conn.forwarded_https().unwrap_or(conn.tls.is_some())
        && let Some(hsts) = &edge.hsts
    {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::params::TlsInfo;

    fn site() -> Site {
        Site {
            document_root: "/srv".into(),
            index: "index.php".into(),
            front_controller: None,
            server_name: None,
            https: false,
            extra: Vec::new(),
        }
    }

    fn req(method: &str, uri: &str, host: Option<&str>) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn conn(redirect: bool) -> ConnInfo {
        let mut c = ConnInfo::plain(
            "192.0.2.1:5000".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        );
        c.redirect_https = redirect;
        c
    }

    fn location(r: &Response<Boxed>) -> &str {
        r.headers()[header::LOCATION].to_str().unwrap()
    }

    #[test]
    fn redirects_with_308_keeping_path_and_query() {
        let edge = Edge {
            https_port: Some(8443),
            ..Edge::default()
        };
        let r = answer(
            &req("POST", "/a/b.php?x=1&y=2", Some("shop.example:8080")),
            &conn(true),
            &edge,
            &site(),
        )
        .unwrap();
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(location(&r), "https://shop.example:8443/a/b.php?x=1&y=2");
        let edge = Edge {
            https_port: Some(443),
            ..Edge::default()
        };
        let r = answer(
            &req("GET", "/", Some("[2001:db8::1]:80")),
            &conn(true),
            &edge,
            &site(),
        )
        .unwrap();
        assert_eq!(location(&r), "https://[2001:db8::1]/");
        let r = answer(&req("GET", "/x", None), &conn(true), &edge, &site()).unwrap();
        assert_eq!(location(&r), "https://127.0.0.1/x");
        assert!(
            answer(
                &req("GET", "/", Some("a.example")),
                &conn(false),
                &edge,
                &site()
            )
            .is_none()
        );
    }

    #[test]
    fn refuses_a_host_that_is_not_an_authority() {
        let edge = Edge::default();
        for host in ["evil.example/path", "user@evil.example", "a b"] {
            let r = answer(&req("GET", "/", Some(host)), &conn(true), &edge, &site()).unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{host}");
        }
    }

    #[test]
    fn http01_answers_before_the_redirect_and_only_in_cleartext() {
        let edge = Edge::default();
        edge.http01.insert("tok", "tok.thumb");
        let path = format!("{HTTP01_PREFIX}tok");
        let r = answer(
            &req("GET", &path, Some("a.example")),
            &conn(true),
            &edge,
            &site(),
        )
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let other = format!("{HTTP01_PREFIX}other");
        assert!(
            answer(
                &req("GET", &other, Some("a.example")),
                &conn(false),
                &edge,
                &site()
            )
            .is_none()
        );
        let mut tls = conn(false);
        tls.tls = Some(TlsInfo::default());
        assert!(answer(&req("GET", &path, Some("a.example")), &tls, &edge, &site()).is_none());
    }

    #[test]
    fn hsts_only_over_tls() {
        let edge = Edge {
            hsts: Some(HeaderValue::from_static("max-age=60")),
            ..Edge::default()
        };
        let mut r = Response::new(());
        add_hsts(&mut r, &conn(false), &edge);
        assert!(r.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
        let mut tls = conn(false);
        tls.tls = Some(TlsInfo::default());
        add_hsts(&mut r, &tls, &edge);
        assert_eq!(r.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=60");
        // Behind a trusted proxy, what it says of the client's scheme.
        let mut r = Response::new(());
        add_hsts(&mut r, &forwarded(conn(false), false), &edge);
        assert!(r.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
        add_hsts(&mut r, &forwarded(conn(false), true), &edge);
        assert_eq!(r.headers()[header::STRICT_TRANSPORT_SECURITY], "max-age=60");
    }

    fn forwarded(mut c: ConnInfo, https: bool) -> ConnInfo {
        c.forwarded = Some(crate::http::real_ip::Forwarded {
            client: None,
            https: Some(https),
        });
        c
    }

    #[test]
    fn no_redirect_when_a_trusted_proxy_says_https() {
        let edge = Edge {
            https_port: Some(443),
            ..Edge::default()
        };
        let r = req("GET", "/", Some("a.example"));
        assert!(answer(&r, &forwarded(conn(true), true), &edge, &site()).is_none());
        let answered = answer(&r, &forwarded(conn(true), false), &edge, &site()).unwrap();
        assert_eq!(answered.status(), StatusCode::PERMANENT_REDIRECT);
    }
}
