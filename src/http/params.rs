//! From an HTTP request to the FastCGI params php-fpm sees, as nginx's
//! `fastcgi_params` + `fastcgi.conf` + Debian's `snippets/fastcgi-php.conf`
//! build them. Pure functions over bytes: no I/O.
//!
//! The path is decoded and normalised first (as nginx's `$uri`): `%XX`
//! decoded, `//` merged, `.` dropped, `..` resolved; a `..` above the root or
//! a NUL byte is a bad request, so neither can reach SCRIPT_FILENAME. Then
//! the script is the path up to the first segment ending in `.php`
//! (ASCII case-insensitive), PATH_INFO the rest (Debian's
//! `fastcgi_split_path_info ^(.+?\.php)(/.*)$`).

use std::net::SocketAddr;

use percent_encoding::percent_decode;

use crate::config::RealIpConfig;
use crate::fastcgi::params::{ParamList, SERVER_SOFTWARE};
use crate::http::error::ClientError;
use crate::http::headers::passes_as_cgi;
use crate::http::per_client::ClientRequests;
use crate::http::real_ip::{self, Forwarded};

/// What the front end knows of the site, from the config.
#[derive(Debug, Clone)]
pub struct Site {
    /// The application's root on the php-fpm nodes, without trailing '/'.
    pub document_root: String,
    pub index: String,
    pub front_controller: Option<String>,
    pub server_name: Option<String>,
    pub https: bool,
    /// Extra params from the config, sent last so they win.
    pub extra: Vec<(String, String)>,
}

/// Where a request path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A PHP script: SCRIPT_NAME and PATH_INFO (both decoded).
    Script {
        script_name: Vec<u8>,
        path_info: Vec<u8>,
        /// For a directory's index with a front controller: the script to
        /// run instead when php-fpm finds no index there (nginx's
        /// `try_files $uri $uri/ /index.php`).
        fallback: Option<Vec<u8>>,
    },
    /// No PHP script there and no front controller: fpmlb answers 404.
    NotFound,
    /// A path that cannot be mapped safely: 400.
    BadRequest(&'static str),
}

/// Decodes and normalises a raw request path as nginx does for `$uri`.
pub fn normalize_path(raw: &str) -> Result<Vec<u8>, &'static str> {
    if !raw.starts_with('/') {
        return Err("request path does not start with '/'");
    }
    let decoded: Vec<u8> = percent_decode(raw.as_bytes()).collect();
    if decoded.contains(&0) {
        return Err("NUL byte in request path");
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split(|&b| b == b'/') {
        trailing_slash = false;
        match segment {
            b"" => trailing_slash = true,
            b"." => trailing_slash = true,
            b".." => {
                if segments.pop().is_none() {
                    return Err("request path climbs above the document root");
                }
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = Vec::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// Where the script part of a normalised path ends: after the first segment
/// that ends in `.php` and has a name before it (nginx's Debian location
/// `~ [^/]\.php(/|$)`), or None.
pub fn split_path_info(uri: &[u8]) -> Option<usize> {
    let mut start = 0;
    while start < uri.len() {
        let end = uri[start + 1..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(uri.len(), |p| start + 1 + p);
        let segment = &uri[start + 1..end];
        if segment.len() > 4 && segment[segment.len() - 4..].eq_ignore_ascii_case(b".php") {
            return Some(end);
        }
        start = end;
    }
    None
}

/// Maps a raw request path to a script, as configured.
pub fn route(raw_path: &str, site: &Site) -> Route {
    let uri = match normalize_path(raw_path) {
        Ok(uri) => uri,
        Err(why) => return Route::BadRequest(why),
    };
    if let Some(end) = split_path_info(&uri) {
        return Route::Script {
            script_name: uri[..end].to_vec(),
            path_info: uri[end..].to_vec(),
            fallback: None,
        };
    }
    if uri.ends_with(b"/") {
        let mut script_name = uri;
        script_name.extend_from_slice(site.index.as_bytes());
        let fallback = site
            .front_controller
            .as_ref()
            .map(|fc| fc.as_bytes().to_vec());
        return Route::Script {
            script_name,
            path_info: Vec::new(),
            fallback,
        };
    }
    match &site.front_controller {
        Some(fc) => Route::Script {
            script_name: fc.as_bytes().to_vec(),
            path_info: Vec::new(),
            fallback: None,
        },
        None => Route::NotFound,
    }
}

/// What the front end knows of the connection a request came on and of the
/// listener that accepted it, and (per request) what trusted forwarding
/// headers said of the client. The client is the TCP peer unless a PROXY
/// protocol header named another, or a trusted proxy's `X-Forwarded-For` /
/// `Forwarded` header (see [`crate::http::real_ip`]).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The TCP peer: the client, or the load balancer that sent a PROXY header.
    pub peer: SocketAddr,
    /// The client named by the PROXY protocol header, on `proxy_protocol` listeners.
    pub proxied: Option<SocketAddr>,
    /// What a trusted proxy's forwarding headers said of this request's
    /// client and scheme (set per request; `None` on the connection's own).
    pub forwarded: Option<Forwarded>,
    /// The address and port the connection came in on (SERVER_ADDR, SERVER_PORT).
    pub local: SocketAddr,
    /// Set when fpmlb terminated TLS on this connection.
    pub tls: Option<TlsInfo>,
    /// The listener answers with a redirect to HTTPS (`redirect_https`).
    pub redirect_https: bool,
    /// Where this connection's HTTP/2 requests at the backends are counted
    /// (`max_connections_per_client`); None for a trusted proxy, or no cap.
    pub requests: Option<ClientRequests>,
}

/// The TLS side of a connection.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The host name the client asked for (SNI), lower case.
    pub sni: Option<std::sync::Arc<str>>,
}

impl ConnInfo {
    /// A cleartext connection from `peer` to `local`.
    #[must_use]
    pub fn plain(peer: SocketAddr, local: SocketAddr) -> ConnInfo {
        ConnInfo {
            peer,
            proxied: None,
            forwarded: None,
            local,
            tls: None,
            redirect_https: false,
            requests: None,
        }
    }

    /// Who connected to fpmlb: the PROXY header's source, else the peer.
    #[must_use]
    pub fn transport_client(&self) -> SocketAddr {
        self.proxied.unwrap_or(self.peer)
    }

    /// The client's address: the one a trusted forwarding header named
    /// (port 0 when it gave none), else the transport client.
    #[must_use]
    pub fn client(&self) -> SocketAddr {
        match self.forwarded.and_then(|f| f.client) {
            Some(c) => c.socket_addr(),
            None => self.transport_client(),
        }
    }

    /// REMOTE_PORT: `None` when a forwarding header named the client
    /// without a port.
    #[must_use]
    pub fn client_port(&self) -> Option<u16> {
        match self.forwarded.and_then(|f| f.client) {
            Some(c) => c.port,
            None => Some(self.transport_client().port()),
        }
    }

    /// What a trusted proxy said of the client's scheme, if it did.
    #[must_use]
    pub fn forwarded_https(&self) -> Option<bool> {
        self.forwarded.and_then(|f| f.https)
    }

    /// Whether the request reached PHP over HTTPS: as a trusted proxy says,
    /// else TLS here, or `https: true` (fpmlb behind a TLS terminator).
    #[must_use]
    pub fn https(&self, site: &Site) -> bool {
        self.forwarded_https()
            .unwrap_or(self.tls.is_some() || site.https)
    }

    /// This connection's info for one request: with what trusted
    /// forwarding headers say of its client (`real_ip`).
    #[must_use]
    pub fn for_request(&self, headers: &http::HeaderMap, real_ip: &RealIpConfig) -> ConnInfo {
        let forwarded = real_ip::resolve(headers, self.transport_client().ip(), real_ip);
        ConnInfo {
            forwarded,
            ..self.clone()
        }
    }
}

/// Builds the params of one request routed to `script_name`/`path_info`.
/// `content_length` is the body length fpmlb will send (None: no body and no
/// Content-Length header, sent as an empty CONTENT_LENGTH like nginx).
///
/// A param too long for one FastCGI record (a Cookie joined from many
/// lines, a path under a long document root) refuses the request with 431:
/// the head limits normally stop such a request earlier.
pub fn build_params(
    parts: &http::request::Parts,
    script_name: &[u8],
    path_info: &[u8],
    content_length: Option<u64>,
    conn: &ConnInfo,
    site: &Site,
) -> Result<ParamList, ClientError> {
    let mut p = ParamList::with_capacity(1024, 32 + parts.headers.len());
    let uri = &parts.uri;
    let query = uri.query().unwrap_or("");
    let request_uri = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let host_header = parts.headers.get(http::header::HOST).map(|h| h.as_bytes());
    let authority = uri.authority().map(|a| a.as_str().as_bytes());
    let host = host_header.or(authority).unwrap_or(b"");

    let mut filename = Vec::with_capacity(site.document_root.len() + script_name.len());
    filename.extend_from_slice(site.document_root.as_bytes());
    filename.extend_from_slice(script_name);
    p.push(b"SCRIPT_FILENAME", &filename);
    p.push(b"QUERY_STRING", query.as_bytes());
    p.push(b"REQUEST_METHOD", parts.method.as_str().as_bytes());
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    p.push(b"CONTENT_TYPE", content_type);
    let length = content_length.map_or_else(Text::default, Text::int);
    p.push(b"CONTENT_LENGTH", length.as_bytes());
    p.push(b"SCRIPT_NAME", script_name);
    p.push(b"REQUEST_URI", request_uri.as_bytes());
    // Debian's snippet runs `try_files $fastcgi_script_name`, which sets
    // $uri (and so DOCUMENT_URI) to the script, without PATH_INFO.
    p.push(b"DOCUMENT_URI", script_name);
    p.push(b"DOCUMENT_ROOT", site.document_root.as_bytes());
    p.push(b"SERVER_PROTOCOL", protocol(parts.version).as_bytes());
    let https = conn.https(site);
    p.push(b"REQUEST_SCHEME", if https { b"https" } else { b"http" });
    if https {
        p.push(b"HTTPS", b"on");
    }
    p.push(b"GATEWAY_INTERFACE", b"CGI/1.1");
    p.push(b"SERVER_SOFTWARE", SERVER_SOFTWARE.as_bytes());
    let client = conn.client();
    let remote = Text::ip(crate::config::canonical_ip(client.ip()));
    p.push(b"REMOTE_ADDR", remote.as_bytes());
    // Empty when a forwarding header gave no port, as nginx's $remote_port.
    let port = conn.client_port().map_or_else(Text::default, Text::int);
    p.push(b"REMOTE_PORT", port.as_bytes());
    p.push(b"SERVER_ADDR", Text::ip(conn.local.ip()).as_bytes());
    p.push(b"SERVER_PORT", Text::int(conn.local.port()).as_bytes());
    match &site.server_name {
        Some(name) => p.push(b"SERVER_NAME", name.as_bytes()),
        None => p.push(b"SERVER_NAME", strip_port(host)),
    }
    p.push(b"REDIRECT_STATUS", b"200");
    p.push(b"PATH_INFO", path_info);

    // HTTP/2 carries the host in :authority, which PHP expects as HTTP_HOST.
    if host_header.is_none()
        && let Some(authority) = authority
    {
        p.push(b"HTTP_HOST", authority);
    }
    push_headers(&mut p, &parts.headers, conn);
    for (name, value) in &site.extra {
        p.push(name.as_bytes(), value.as_bytes());
    }
    match p.refused() {
        None => Ok(p),
        Some(name) => Err(ClientError::HeadTooLarge(format!(
            "param {} does not fit one FastCGI record",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// Request headers as `HTTP_*`, repeated ones joined into one param (", ",
/// or "; " for Cookie, as nginx 1.23+ does). Only names of `[A-Za-z0-9-]`
/// pass (nginx's `ignore_invalid_headers`, `underscores_in_headers off`):
/// `X-A_B` or `X.A-B` would otherwise arrive in PHP as HTTP_X_A_B and forge
/// `X-A-B`. The others are dropped, at debug level: a client's odd header
/// is not the operator's concern.
///
/// `X-Forwarded-For` gets the transport client (who connected to fpmlb: the
/// PROXY source, else the peer) appended, as nginx's
/// `$proxy_add_x_forwarded_for` does, so the param is the whole chain
/// whoever sent it; a request without the header gets the transport client
/// alone (nginx's variable is then `$remote_addr`).
fn push_headers(p: &mut ParamList, headers: &http::HeaderMap, conn: &ConnInfo) {
    let hop = Text::ip(crate::config::canonical_ip(conn.transport_client().ip()));
    let mut forwarded_for = false;
    for name in headers.keys() {
        let key = name.as_str();
        if !passes_as_cgi(key) {
            tracing::debug!(header = key, "request header not passed to PHP");
            continue;
        }
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        if key == real_ip::X_FORWARDED_FOR {
            let mut joined = Vec::with_capacity(first.len() + 48);
            for v in std::iter::once(first).chain(values) {
                joined.extend_from_slice(v.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(hop.as_bytes());
            p.push_header(key, &joined);
            forwarded_for = true;
            continue;
        }
        match values.next() {
            None => p.push_header(key, first.as_bytes()),
            Some(second) => {
                let sep: &[u8] = if name == http::header::COOKIE {
                    b"; "
                } else {
                    b", "
                };
                let mut joined = first.as_bytes().to_vec();
                for v in std::iter::once(second).chain(values) {
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(v.as_bytes());
                }
                p.push_header(key, &joined);
            }
        }
    }
    if !forwarded_for {
        p.push_header(real_ip::X_FORWARDED_FOR, hop.as_bytes());
    }
}

/// A number or an address as a param's text, on the stack. Every request
/// has four (the client's and fpmlb's address and port) and the hop of
/// X-Forwarded-For: through `core::fmt`, each into a `String` of its own,
/// they took 1.4% of fpmlb's CPU for hello.php over one HTTP/2 connection
/// (perf). Integers go through `itoa`, an IPv4 address octet by octet.
struct Text {
    /// Room for the longest IPv6 text (45 bytes, an IPv4 tail included).
    buf: [u8; 48],
    len: usize,
}

impl Default for Text {
    fn default() -> Text {
        Text {
            buf: [0; 48],
            len: 0,
        }
    }
}

impl Text {
    fn int(n: impl itoa::Integer) -> Text {
        let mut text = Text::default();
        text.put(itoa::Buffer::new().format(n).as_bytes());
        text
    }

    fn ip(ip: std::net::IpAddr) -> Text {
        let mut text = Text::default();
        match ip {
            std::net::IpAddr::V4(v4) => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.put(b".");
                    }
                    text.put(digits.format(octet).as_bytes());
                }
            }
            std::net::IpAddr::V6(v6) => {
                use std::fmt::Write;
                // Fits: IPv6 text is at most 45 bytes.
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    /// Appends `bytes`; false (and nothing appended) past the room.
    fn put(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
                true
            }
            None => false,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.put(s.as_bytes()) {
            Ok(())
        } else {
            Err(std::fmt::Error)
        }
    }
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The host part of a Host header value ("example.com:8080" -> "example.com",
/// `"[::1]:8080"` -> `"[::1]"`).
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_read_as_core_fmt_writes_them() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let ips: [IpAddr; 7] = [
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(127, 0, 20, 1).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv6Addr::LOCALHOST.into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
            Ipv4Addr::new(255, 255, 255, 255).to_ipv6_mapped().into(),
            Ipv6Addr::from([0xffff; 8]).into(),
        ];
        for ip in ips {
            assert_eq!(Text::ip(ip).as_bytes(), ip.to_string().as_bytes());
        }
        for n in [0u64, 9, 10, 65535, u64::MAX] {
            assert_eq!(Text::int(n).as_bytes(), n.to_string().as_bytes());
        }
        assert_eq!(Text::default().as_bytes(), b"");
        let mut full = Text::int(u64::MAX);
        assert!(full.put(&[b'9'; 28]), "48 bytes fit");
        assert!(!full.put(b"9"), "no more");
        assert_eq!(full.as_bytes().len(), 48);
    }

    fn site(front_controller: Option<&str>) -> Site {
        Site {
            document_root: "/var/www/html".into(),
            index: "index.php".into(),
            front_controller: front_controller.map(String::from),
            server_name: None,
            https: false,
            extra: vec![("APP_ENV".into(), "prod".into())],
        }
    }

    fn script(s: &str, p: &str) -> Route {
        Route::Script {
            script_name: s.as_bytes().to_vec(),
            path_info: p.as_bytes().to_vec(),
            fallback: None,
        }
    }

    #[test]
    fn normalises_like_nginx_uri() {
        let n = |s| String::from_utf8(normalize_path(s).unwrap()).unwrap();
        assert_eq!(n("/"), "/");
        assert_eq!(n("//a///b"), "/a/b");
        assert_eq!(n("/a/./b/"), "/a/b/");
        assert_eq!(n("/a/b/.."), "/a/");
        assert_eq!(n("/a/%2e%2e/b"), "/b");
        assert_eq!(n("/a%20b.php"), "/a b.php");
        assert_eq!(n("/a/b/../../c"), "/c");
        assert!(normalize_path("/../etc/passwd").is_err());
        assert!(normalize_path("/a/..%2f..%2fetc").is_err());
        assert!(normalize_path("/x.php%00.jpg").is_err());
        assert!(normalize_path("x").is_err());
    }

    #[test]
    fn splits_after_first_php_segment() {
        let s = site(None);
        assert_eq!(route("/index.php", &s), script("/index.php", ""));
        assert_eq!(route("/env.php/a/b", &s), script("/env.php", "/a/b"));
        assert_eq!(route("/a.php/b.php/c", &s), script("/a.php", "/b.php/c"));
        assert_eq!(route("/sub/page.PHP/x", &s), script("/sub/page.PHP", "/x"));
        assert_eq!(route("/env.php/a%20b", &s), script("/env.php", "/a b"));
        assert_eq!(route("/x.phpx/y", &s), Route::NotFound);
        assert_eq!(route("/.php", &s), Route::NotFound);
        assert_eq!(route("/upload.php.jpg", &s), Route::NotFound);
    }

    #[test]
    fn directories_get_the_index() {
        let s = site(None);
        assert_eq!(route("/", &s), script("/index.php", ""));
        assert_eq!(route("/sub/", &s), script("/sub/index.php", ""));
        assert_eq!(route("/sub", &s), Route::NotFound);
    }

    #[test]
    fn front_controller_takes_what_is_not_php() {
        let s = site(Some("/index.php"));
        assert_eq!(route("/users/42", &s), script("/index.php", ""));
        assert_eq!(route("/style.css", &s), script("/index.php", ""));
        assert_eq!(route("/env.php/x", &s), script("/env.php", "/x"));
        // A directory tries its index first, then the front controller.
        let Route::Script {
            script_name,
            fallback,
            ..
        } = route("/wp-admin/", &s)
        else {
            panic!("not a script")
        };
        assert_eq!(script_name, b"/wp-admin/index.php");
        assert_eq!(fallback.as_deref(), Some(&b"/index.php"[..]));
        assert_eq!(
            route("/../x", &s),
            Route::BadRequest("request path climbs above the document root")
        );
    }

    fn parts(uri: &str, headers: &[(&str, &str)], version: http::Version) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn conn() -> ConnInfo {
        ConnInfo::plain(
            "127.0.0.9:50000".parse().unwrap(),
            "127.0.0.1:8080".parse().unwrap(),
        )
    }

    fn get<'a>(p: &'a ParamList, k: &str) -> &'a str {
        std::str::from_utf8(p.get(k).unwrap_or_else(|| panic!("no {k}"))).unwrap()
    }

    #[test]
    fn params_match_nginx_fastcgi_conf() {
        let rq = parts(
            "/env.php/a%20b?x=1&y=%20",
            &[
                ("host", "example.com:8080"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("x-forwarded-for", "1.2.3.4"),
            ],
            http::Version::HTTP_11,
        );
        let p = build_params(&rq, b"/env.php", b"/a b", None, &conn(), &site(None)).unwrap();
        assert_eq!(get(&p, "SCRIPT_FILENAME"), "/var/www/html/env.php");
        assert_eq!(get(&p, "SCRIPT_NAME"), "/env.php");
        assert_eq!(get(&p, "PATH_INFO"), "/a b");
        assert_eq!(get(&p, "REQUEST_URI"), "/env.php/a%20b?x=1&y=%20");
        assert_eq!(get(&p, "DOCUMENT_URI"), "/env.php");
        assert_eq!(get(&p, "QUERY_STRING"), "x=1&y=%20");
        assert_eq!(get(&p, "CONTENT_LENGTH"), "");
        assert_eq!(get(&p, "SERVER_PROTOCOL"), "HTTP/1.1");
        assert_eq!(get(&p, "SERVER_NAME"), "example.com");
        assert_eq!(get(&p, "REMOTE_ADDR"), "127.0.0.9");
        assert_eq!(get(&p, "REMOTE_PORT"), "50000");
        assert_eq!(get(&p, "SERVER_PORT"), "8080");
        assert_eq!(get(&p, "REDIRECT_STATUS"), "200");
        assert_eq!(get(&p, "HTTP_COOKIE"), "a=1; b=2");
        // The peer is appended, whoever sent the header.
        assert_eq!(get(&p, "HTTP_X_FORWARDED_FOR"), "1.2.3.4, 127.0.0.9");
        assert_eq!(get(&p, "APP_ENV"), "prod");
        assert!(p.get("HTTPS").is_none());
    }

    #[test]
    fn http2_authority_becomes_http_host() {
        let rq = parts("http://example.org/index.php", &[], http::Version::HTTP_2);
        let p = build_params(&rq, b"/index.php", b"", Some(0), &conn(), &site(None)).unwrap();
        assert_eq!(get(&p, "HTTP_HOST"), "example.org");
        assert_eq!(get(&p, "SERVER_PROTOCOL"), "HTTP/2.0");
        assert_eq!(get(&p, "CONTENT_LENGTH"), "0");
        assert_eq!(get(&p, "REQUEST_URI"), "/index.php");
    }

    #[test]
    fn only_plain_header_names_become_http_params() {
        let rq = parts(
            "/index.php",
            &[
                ("x-a_b", "forged"),
                ("x.a-b", "forged"),
                ("x-a.b", "forged"),
                ("x~a-b", "forged"),
                ("proxy", "http://evil"),
                ("X-A-B", "real"),
            ],
            http::Version::HTTP_11,
        );
        let p = build_params(&rq, b"/index.php", b"", None, &conn(), &site(None)).unwrap();
        assert_eq!(get(&p, "HTTP_X_A_B"), "real");
        let http: Vec<&[u8]> = p
            .iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(b"HTTP_"))
            .collect();
        // Nothing else but the peer as X-Forwarded-For, which every
        // request gets ($proxy_add_x_forwarded_for).
        assert_eq!(
            http,
            vec![&b"HTTP_X_A_B"[..], b"HTTP_X_FORWARDED_FOR"],
            "nothing else"
        );
        assert_eq!(get(&p, "HTTP_X_FORWARDED_FOR"), "127.0.0.9");
        assert!(p.get("HTTP_PROXY").is_none());
    }

    /// Found by the request_path fuzz target: a name with `.` (or `~`, `!`,
    /// any token byte but `-`) reached PHP, which reads `X.A-B` as X_A_B.
    #[test]
    fn header_names_beyond_letters_digits_and_dash_are_dropped() {
        let rq = parts(
            "/index.php",
            &[
                ("x.forwarded-for", "6.6.6.6"),
                ("x~y", "1"),
                ("x!y", "2"),
                ("x-forwarded-for", "1.2.3.4"),
                ("a9-z", "ok"),
            ],
            http::Version::HTTP_11,
        );
        let p = build_params(&rq, b"/index.php", b"", None, &conn(), &site(None)).unwrap();
        assert_eq!(get(&p, "HTTP_X_FORWARDED_FOR"), "1.2.3.4, 127.0.0.9");
        assert_eq!(get(&p, "HTTP_A9_Z"), "ok");
        let names: Vec<&[u8]> = p
            .iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with(b"HTTP_"))
            .collect();
        assert_eq!(names, [&b"HTTP_X_FORWARDED_FOR"[..], b"HTTP_A9_Z"]);
    }

    #[test]
    fn a_param_over_one_record_refuses_the_request() {
        // Lines within any limit, joined into one Cookie param of 80 KB.
        let cookie = "c".repeat(8000);
        let headers: Vec<(&str, &str)> = (0..10).map(|_| ("cookie", cookie.as_str())).collect();
        let rq = parts("/index.php", &headers, http::Version::HTTP_11);
        let err = build_params(&rq, b"/index.php", b"", None, &conn(), &site(None)).unwrap_err();
        assert_eq!(err.status().as_u16(), 431);
        assert!(err.to_string().contains("HTTP_COOKIE"), "{err}");
    }

    #[test]
    fn https_and_server_name_from_config() {
        let mut s = site(None);
        s.https = true;
        s.server_name = Some("shop.example".into());
        let rq = parts(
            "/index.php",
            &[("host", "[::1]:8443")],
            http::Version::HTTP_11,
        );
        let p = build_params(&rq, b"/index.php", b"", None, &conn(), &s).unwrap();
        assert_eq!(get(&p, "HTTPS"), "on");
        assert_eq!(get(&p, "REQUEST_SCHEME"), "https");
        assert_eq!(get(&p, "SERVER_NAME"), "shop.example");
        assert_eq!(strip_port(b"[::1]:8443"), b"[::1]");
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_its_scheme() {
        let rq = parts(
            "/index.php",
            &[
                ("host", "shop.example"),
                ("x-forwarded-for", "10.6.6.6, 203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
            http::Version::HTTP_11,
        );
        let trusted = RealIpConfig {
            trusted_proxies: vec![crate::config::parse_cidr("127.0.0.0/8").unwrap()],
            header: crate::config::RealIpHeader::XForwardedFor,
        };
        let c = conn().for_request(&rq.headers, &trusted);
        let p = build_params(&rq, b"/index.php", b"", None, &c, &site(None)).unwrap();
        assert_eq!(get(&p, "REMOTE_ADDR"), "203.0.113.7");
        assert_eq!(get(&p, "REMOTE_PORT"), "", "no port in the header");
        assert_eq!(get(&p, "HTTPS"), "on");
        assert_eq!(get(&p, "REQUEST_SCHEME"), "https");
        assert_eq!(
            get(&p, "HTTP_X_FORWARDED_FOR"),
            "10.6.6.6, 203.0.113.7, 127.0.0.9"
        );
        // The same request from a peer that is not trusted changes nothing.
        let c = conn().for_request(&rq.headers, &RealIpConfig::default());
        let p = build_params(&rq, b"/index.php", b"", None, &c, &site(None)).unwrap();
        assert_eq!(get(&p, "REMOTE_ADDR"), "127.0.0.9");
        assert_eq!(get(&p, "REMOTE_PORT"), "50000");
        assert!(p.get("HTTPS").is_none());
        assert_eq!(
            get(&p, "HTTP_X_FORWARDED_FOR"),
            "10.6.6.6, 203.0.113.7, 127.0.0.9"
        );
        // A trusted proxy that says "http" wins over `https: true`.
        let rq = parts(
            "/index.php",
            &[("host", "a"), ("x-forwarded-proto", "http")],
            http::Version::HTTP_11,
        );
        let mut s = site(None);
        s.https = true;
        let c = conn().for_request(&rq.headers, &trusted);
        let p = build_params(&rq, b"/index.php", b"", None, &c, &s).unwrap();
        assert!(p.get("HTTPS").is_none());
        assert_eq!(get(&p, "REQUEST_SCHEME"), "http");
        assert_eq!(get(&p, "REMOTE_ADDR"), "127.0.0.9");
    }

    #[test]
    fn tls_listener_and_proxy_header_shape_the_params() {
        let rq = parts(
            "/index.php",
            &[("host", "shop.example")],
            http::Version::HTTP_2,
        );
        let plain = build_params(&rq, b"/index.php", b"", None, &conn(), &site(None)).unwrap();
        assert!(plain.get("HTTPS").is_none());
        assert_eq!(get(&plain, "REQUEST_SCHEME"), "http");
        let mut c = conn();
        c.local = "127.0.0.1:8443".parse().unwrap();
        c.tls = Some(TlsInfo::default());
        c.proxied = Some("203.0.113.9:41000".parse().unwrap());
        let p = build_params(&rq, b"/index.php", b"", None, &c, &site(None)).unwrap();
        assert_eq!(get(&p, "HTTPS"), "on");
        assert_eq!(get(&p, "REQUEST_SCHEME"), "https");
        assert_eq!(get(&p, "SERVER_PORT"), "8443");
        assert_eq!(get(&p, "REMOTE_ADDR"), "203.0.113.9");
        assert_eq!(get(&p, "REMOTE_PORT"), "41000");
    }
}
