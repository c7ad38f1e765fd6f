//! The real client address and scheme from forwarding headers
//! (`X-Forwarded-For` + `X-Forwarded-Proto`, or RFC 7239 `Forwarded`), as
//! nginx's realip module does with `real_ip_recursive on`. Pure: headers
//! and addresses in, an answer out; no I/O.
//!
//! The rules:
//! - Nothing is read unless the *transport client* is in
//!   `real_ip.trusted_proxies`. The transport client is who connected to
//!   fpmlb: the PROXY header's source on `proxy_protocol` listeners (the TCP
//!   balancer is transparent), else the TCP peer. From anyone else these
//!   headers change nothing (and reach PHP as plain `HTTP_*` params).
//! - The addresses are walked from the right (the hop nearest fpmlb
//!   first), over every line of the header in order. Each trusted address
//!   hands on to the one to its left; the first untrusted address is the
//!   client. When every address is trusted, the leftmost one is.
//! - An entry that is not an address (`unknown`, an RFC 7239 obfuscated
//!   identifier such as `_hidden`, garbage, a `Forwarded` line that does not
//!   parse) stops the walk: the client is the last address reached, the
//!   trusted proxy that wrote the entry (nginx does the same).
//! - The port comes with the address when the entry has one
//!   (`"[2001:db8::1]:4711"`, `192.0.2.7:5000`); otherwise it is unknown.
//! - The scheme (HTTPS / REQUEST_SCHEME): with `Forwarded`, the `proto=` of
//!   the element that names the client (the one the walk stopped at); with
//!   `X-Forwarded-Proto`, the value at the client's position when the header
//!   has one value per `X-Forwarded-For` address (proxies that append to
//!   both), else the last value (proxies that overwrite it, as AWS ALB,
//!   Cloudflare and `proxy_set_header X-Forwarded-Proto $scheme` do). Only
//!   `http` and `https` count.
//!
//! The cost is bounded by the request head (`max_header_size`): one pass
//! over the header, and the walk ends at the first untrusted address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use http::header::FORWARDED;

use crate::config::{RealIpConfig, RealIpHeader, canonical_ip};

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "x-forwarded-proto";

/// What trusted forwarding headers said of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// The client, when the walk found an address other than the transport
    /// client; `None`: the transport client is the client.
    pub client: Option<ForwardedClient>,
    /// Whether the client's own connection was HTTPS; `None`: not said.
    pub https: Option<bool>,
}

/// A client address named by a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedClient {
    pub ip: IpAddr,
    /// `None` when the header gave no port (REMOTE_PORT is then empty, as
    /// in nginx).
    pub port: Option<u16>,
}

impl ForwardedClient {
    /// As a socket address, port 0 when unknown.
    #[must_use]
    pub fn socket_addr(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(0))
    }
}

/// One entry of a forwarding header, as far as the walk cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Addr(IpAddr, Option<u16>),
    /// `unknown`, an obfuscated identifier, or anything that is not an address.
    Opaque,
}

/// One hop: its node, and (`Forwarded` only) the scheme it was reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    node: Node,
    https: Option<bool>,
}

/// Reads the forwarding headers of a request that came from `transport`
/// (the PROXY source, else the TCP peer). `None` when the transport client
/// is not trusted, or the headers say nothing usable.
#[must_use]
pub fn resolve(headers: &HeaderMap, transport: IpAddr, config: &RealIpConfig) -> Option<Forwarded> {
    if config.trusted_proxies.is_empty() || !config.trusts(transport) {
        return None;
    }
    let found = match config.header {
        RealIpHeader::XForwardedFor => {
            let hops = xff_hops(headers);
            let (client, index) = walk(&hops, config);
            let https = xfp_https(headers, hops.len(), index);
            Forwarded { client, https }
        }
        RealIpHeader::Forwarded => {
            let hops = forwarded_hops(headers);
            let (client, index) = walk(&hops, config);
            let https = index.and_then(|i| hops[i].https);
            Forwarded { client, https }
        }
    };
    (found.client.is_some() || found.https.is_some()).then_some(found)
}

/// Walks `hops` (left to right as in the header) from the right; returns
/// the client found (None: the transport client) and the index of the last
/// hop visited (the one that names the client, or the opaque one that
/// stopped the walk).
fn walk(hops: &[Hop], config: &RealIpConfig) -> (Option<ForwardedClient>, Option<usize>) {
    let mut client = None;
    let mut last = None;
    for (i, hop) in hops.iter().enumerate().rev() {
        last = Some(i);
        match hop.node {
            Node::Opaque => break,
            Node::Addr(ip, port) => {
                client = Some(ForwardedClient { ip, port });
                if !config.trusts(ip) {
                    break;
                }
            }
        }
    }
    (client, last)
}

/// The entries of every `X-Forwarded-For` line, in order. Empty list
/// elements (`a,,b`) are skipped, as the list syntax allows.
fn xff_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(X_FORWARDED_FOR) {
        for entry in line.as_bytes().split(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if !entry.is_empty() {
                hops.push(Hop {
                    node: parse_xff_node(entry),
                    https: None,
                });
            }
        }
    }
    hops
}

/// `X-Forwarded-Proto` as the module's doc says: the value at `index` when
/// there is one value per address (`addresses`), else the last one.
fn xfp_https(headers: &HeaderMap, addresses: usize, index: Option<usize>) -> Option<bool> {
    let values: Vec<&[u8]> = headers
        .get_all(X_FORWARDED_PROTO)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|v| !v.is_empty())
        .collect();
    let value = match index {
        Some(i) if values.len() == addresses => values.get(i),
        _ => values.last(),
    };
    value.and_then(|v| scheme_is_https(v))
}

/// `http` / `https` (any case); anything else says nothing.
fn scheme_is_https(value: &[u8]) -> Option<bool> {
    if value.eq_ignore_ascii_case(b"https") {
        Some(true)
    } else if value.eq_ignore_ascii_case(b"http") {
        Some(false)
    } else {
        None
    }
}

/// An `X-Forwarded-For` entry: `192.0.2.7`, `192.0.2.7:5000`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:5000`; anything else is opaque.
fn parse_xff_node(entry: &[u8]) -> Node {
    let Ok(text) = std::str::from_utf8(entry) else {
        return Node::Opaque;
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Node::Addr(canonical_ip(ip), None);
    }
    match text.parse::<SocketAddr>() {
        Ok(sa) => Node::Addr(canonical_ip(sa.ip()), Some(sa.port())),
        Err(_) => match text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<Ipv6Addr>().ok())
        {
            Some(v6) => Node::Addr(canonical_ip(IpAddr::V6(v6)), None),
            None => Node::Opaque,
        },
    }
}

/// The elements of every `Forwarded` line, in order. A line that does not
/// parse is one opaque hop: what a client wrote in it cannot be told from
/// what a proxy appended.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(FORWARDED) {
        let before = hops.len();
        if parse_forwarded_line(line.as_bytes(), &mut hops).is_err() {
            hops.truncate(before);
            hops.push(Hop {
                node: Node::Opaque,
                https: None,
            });
        }
    }
    hops
}

/// A `Forwarded` line is not RFC 7239 syntax.
#[derive(Debug, PartialEq, Eq)]
struct Malformed;

/// Parses one `Forwarded` line (RFC 7239 §4: `1#forwarded-element`,
/// `forwarded-element = [pair] *(";" [pair])`, `pair = token "=" (token /
/// quoted-string)`), with optional whitespace around `,` and `;`. An
/// element without `for=`, or with a parameter twice, is opaque; an empty
/// one is skipped.
fn parse_forwarded_line(line: &[u8], hops: &mut Vec<Hop>) -> Result<(), Malformed> {
    let mut p = Cursor { s: line, i: 0 };
    loop {
        // One element.
        let mut for_: Option<Vec<u8>> = None;
        let mut proto: Option<Vec<u8>> = None;
        let mut duplicate = false;
        let mut others: Vec<Vec<u8>> = Vec::new();
        let mut pairs = 0usize;
        loop {
            p.skip_ows();
            if p.at_end() || p.peek() == Some(b',') || p.peek() == Some(b';') {
                // An empty pair: allowed by the grammar.
            } else {
                let name = p.token().ok_or(Malformed)?.to_ascii_lowercase();
                if p.next() != Some(b'=') {
                    return Err(Malformed);
                }
                let value = if p.peek() == Some(b'"') {
                    p.quoted()?
                } else {
                    p.token().ok_or(Malformed)?.to_vec()
                };
                pairs += 1;
                match name.as_slice() {
                    b"for" => duplicate |= for_.replace(value).is_some(),
                    b"proto" => duplicate |= proto.replace(value).is_some(),
                    _ if others.contains(&name) => duplicate = true,
                    _ => others.push(name),
                }
                p.skip_ows();
            }
            match p.peek() {
                Some(b';') => {
                    p.i += 1;
                }
                _ => break,
            }
        }
        // An empty list element (`a, , b`, a trailing comma) is no hop.
        if pairs == 0 {
            match p.next() {
                None => return Ok(()),
                Some(b',') => continue,
                Some(_) => return Err(Malformed),
            }
        }
        let node = match (&for_, duplicate) {
            (Some(v), false) => parse_forwarded_node(v),
            _ => Node::Opaque,
        };
        let https = if duplicate {
            None
        } else {
            proto.as_deref().and_then(scheme_is_https)
        };
        hops.push(Hop { node, https });
        match p.next() {
            None => return Ok(()),
            Some(b',') => {}
            Some(_) => return Err(Malformed),
        }
    }
}

/// RFC 7239 §6 `node = nodename [":" node-port]`: `192.0.2.43`,
/// `192.0.2.43:47011`, `[2001:db8:cafe::17]`, `[2001:db8:cafe::17]:4711`;
/// `unknown` and obfuscated names (`_hidden`) are opaque, and so is a
/// bare IPv6 address (it must be in brackets).
fn parse_forwarded_node(value: &[u8]) -> Node {
    let Ok(text) = std::str::from_utf8(value) else {
        return Node::Opaque;
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Node::Opaque;
        };
        let Ok(v6) = inside.parse::<Ipv6Addr>() else {
            return Node::Opaque;
        };
        (IpAddr::V6(v6), after)
    } else {
        let (name, after) = match text.find(':') {
            Some(colon) => (&text[..colon], &text[colon..]),
            None => (text, ""),
        };
        let Ok(v4) = name.parse::<Ipv4Addr>() else {
            return Node::Opaque;
        };
        (IpAddr::V4(v4), after)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return Node::Opaque,
        // An obfuscated port (`_abc`) hides the port, not the address.
        Some(p) if p.starts_with('_') => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) => Some(n),
                Err(_) => return Node::Opaque,
            }
        }
        Some(_) => return Node::Opaque,
    };
    Node::Addr(canonical_ip(host), port)
}

/// A position in a `Forwarded` line.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// RFC 9110 `token`: one or more tchar.
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// RFC 9110 `quoted-string`, unescaped.
    fn quoted(&mut self) -> Result<Vec<u8>, Malformed> {
        if self.next() != Some(b'"') {
            return Err(Malformed);
        }
        let mut out = Vec::new();
        loop {
            match self.next() {
                None => return Err(Malformed),
                Some(b'"') => return Ok(out),
                Some(b'\\') => match self.next() {
                    Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => out.push(b),
                    _ => return Err(Malformed),
                },
                Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => out.push(b),
                Some(_) => return Err(Malformed),
            }
        }
    }
}

/// RFC 9110 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cidr;

    fn config(header: RealIpHeader, trusted: &[&str]) -> RealIpConfig {
        RealIpConfig {
            trusted_proxies: trusted.iter().map(|t| parse_cidr(t).unwrap()).collect(),
            header,
        }
    }

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in lines {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    /// (REMOTE_ADDR, REMOTE_PORT, HTTPS) as fpmlb would send them for a
    /// request from `transport` with `lines`: the transport client's
    /// address and no scheme when the headers say nothing.
    fn client(header: RealIpHeader, trusted: &[&str], transport: &str, lines: Lines<'_>) -> Seen {
        let transport: IpAddr = transport.parse().unwrap();
        match resolve(&headers(lines), transport, &config(header, trusted)) {
            None => (transport.to_string(), None, None),
            Some(f) => match f.client {
                Some(c) => (c.ip.to_string(), c.port, f.https),
                None => (transport.to_string(), None, f.https),
            },
        }
    }

    const XFF: RealIpHeader = RealIpHeader::XForwardedFor;
    const FWD: RealIpHeader = RealIpHeader::Forwarded;
    const LB: &str = "10.0.0.5";
    const TRUSTED: &[&str] = &["10.0.0.0/8", "2001:db8:ffff::/48"];

    /// Header lines of a request.
    type Lines<'a> = &'a [(&'a str, &'a str)];
    /// (REMOTE_ADDR, REMOTE_PORT, HTTPS).
    type Seen = (String, Option<u16>, Option<bool>);

    fn s(ip: &str, port: Option<u16>, https: Option<bool>) -> Seen {
        (ip.to_owned(), port, https)
    }

    #[test]
    fn x_forwarded_for_walks_from_the_right_to_the_first_untrusted() {
        let table: &[(Lines<'_>, Seen)] = &[
            // One proxy in front.
            (
                &[("x-forwarded-for", "203.0.113.7")],
                s("203.0.113.7", None, None),
            ),
            // The client's own (forged) entries are left of the one the proxy added.
            (
                &[("x-forwarded-for", "1.1.1.1, 10.9.9.9, 203.0.113.7")],
                s("203.0.113.7", None, None),
            ),
            // A chain of trusted proxies is walked through.
            (
                &[(
                    "x-forwarded-for",
                    "198.51.100.2, 203.0.113.7, 10.0.0.8, 10.0.0.9",
                )],
                s("203.0.113.7", None, None),
            ),
            // Every address trusted: the leftmost.
            (
                &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")],
                s("10.1.1.1", None, None),
            ),
            // Several lines are one list, in order.
            (
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "10.0.0.8, 203.0.113.7"),
                ],
                s("203.0.113.7", None, None),
            ),
            // Ports, IPv6 with and without brackets, mapped IPv4.
            (
                &[("x-forwarded-for", "203.0.113.7:5000")],
                s("203.0.113.7", Some(5000), None),
            ),
            (
                &[("x-forwarded-for", "2001:db8::7")],
                s("2001:db8::7", None, None),
            ),
            (
                &[("x-forwarded-for", "[2001:db8::7]")],
                s("2001:db8::7", None, None),
            ),
            (
                &[("x-forwarded-for", "[2001:db8::7]:443")],
                s("2001:db8::7", Some(443), None),
            ),
            (
                &[("x-forwarded-for", "::ffff:203.0.113.7")],
                s("203.0.113.7", None, None),
            ),
            // unknown / garbage stop the walk: the proxy that wrote it is the client.
            (
                &[("x-forwarded-for", "203.0.113.7, unknown")],
                s(LB, None, None),
            ),
            (
                &[("x-forwarded-for", "203.0.113.7, unknown, 10.0.0.8")],
                s("10.0.0.8", None, None),
            ),
            (&[("x-forwarded-for", "<script>")], s(LB, None, None)),
            (&[("x-forwarded-for", "fe80::1%eth0")], s(LB, None, None)),
            (
                &[("x-forwarded-for", "203.0.113.7:99999")],
                s(LB, None, None),
            ),
            // Empty list elements are skipped; an empty header says nothing.
            (
                &[("x-forwarded-for", " , 203.0.113.7 ,, ")],
                s("203.0.113.7", None, None),
            ),
            (&[("x-forwarded-for", "")], s(LB, None, None)),
            (&[], s(LB, None, None)),
            // The other header is not read.
            (&[("forwarded", "for=203.0.113.7")], s(LB, None, None)),
        ];
        for (lines, want) in table {
            assert_eq!(&client(XFF, TRUSTED, LB, lines), want, "{lines:?}");
        }
    }

    #[test]
    fn x_forwarded_proto_follows_the_client_or_the_nearest_proxy() {
        let table: &[(Lines<'_>, Option<bool>)] = &[
            (
                &[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "https"),
                ],
                Some(true),
            ),
            (
                &[
                    ("x-forwarded-for", "203.0.113.7"),
                    ("x-forwarded-proto", "HTTP"),
                ],
                Some(false),
            ),
            // One value per address (proxies that append): the client's.
            (
                &[
                    ("x-forwarded-for", "203.0.113.7, 10.0.0.8"),
                    ("x-forwarded-proto", "https, http"),
                ],
                Some(true),
            ),
            // Proxies that overwrite: the last value.
            (
                &[
                    ("x-forwarded-for", "1.1.1.1, 203.0.113.7"),
                    ("x-forwarded-proto", "http"),
                ],
                Some(false),
            ),
            // Without X-Forwarded-For, from a trusted proxy: still believed.
            (&[("x-forwarded-proto", "https")], Some(true)),
            (&[("x-forwarded-proto", "gopher")], None),
            (&[("x-forwarded-proto", "https, gopher")], None),
        ];
        for (lines, want) in table {
            assert_eq!(client(XFF, TRUSTED, LB, lines).2, *want, "{lines:?}");
        }
    }

    #[test]
    fn untrusted_peers_change_nothing() {
        let spoof: &[(&str, &str)] = &[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=10.0.0.1;proto=https"),
        ];
        for header in [XFF, FWD] {
            assert_eq!(
                client(header, TRUSTED, "198.51.100.9", spoof),
                s("198.51.100.9", None, None)
            );
            assert_eq!(client(header, &[], LB, spoof), s(LB, None, None));
        }
        // A mapped address of a trusted network is trusted (dual-stack sockets).
        assert_eq!(
            client(
                XFF,
                TRUSTED,
                "::ffff:10.0.0.5",
                &[("x-forwarded-for", "203.0.113.7")]
            ),
            s("203.0.113.7", None, None)
        );
    }

    #[test]
    fn forwarded_rfc_7239() {
        let table: &[(Lines<'_>, Seen)] = &[
            // RFC 7239 §4's examples.
            (&[("forwarded", "for=\"_gazonk\"")], s(LB, None, None)),
            (
                &[("forwarded", "For=\"[2001:db8:cafe::17]:4711\"")],
                s("2001:db8:cafe::17", Some(4711), None),
            ),
            (
                &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
                s("192.0.2.60", None, Some(false)),
            ),
            (
                &[("forwarded", "for=192.0.2.43, for=198.51.100.17")],
                s("198.51.100.17", None, None),
            ),
            // Walk through trusted ones; proto of the element naming the client.
            (
                &[(
                    "forwarded",
                    "for=198.51.100.17;proto=https, for=10.0.0.8;proto=http",
                )],
                s("198.51.100.17", None, Some(true)),
            ),
            (
                &[
                    ("forwarded", "for=1.1.1.1;proto=http"),
                    (
                        "forwarded",
                        "for=\"198.51.100.17:1234\";proto=https;host=a.example",
                    ),
                ],
                s("198.51.100.17", Some(1234), Some(true)),
            ),
            // Whitespace around separators, quoted IPv4, obfuscated port.
            (&[("forwarded", "for = 1.2.3.4")], s(LB, None, None)),
            (
                &[(
                    "forwarded",
                    " for=\"198.51.100.17:_p1\" ; proto=\"https\" ,  ",
                )],
                s("198.51.100.17", None, Some(true)),
            ),
            // unknown: the proxy that wrote it, with the proto it saw.
            (
                &[("forwarded", "for=unknown;proto=https")],
                s(LB, None, Some(true)),
            ),
            (
                &[("forwarded", "for=198.51.100.17, for=unknown, for=10.0.0.8")],
                s("10.0.0.8", None, None),
            ),
            // An element without for=, or with a parameter twice: opaque.
            (
                &[("forwarded", "proto=https;by=10.0.0.1")],
                s(LB, None, Some(true)),
            ),
            (
                &[("forwarded", "for=198.51.100.17;for=10.0.0.8")],
                s(LB, None, None),
            ),
            (
                &[("forwarded", "for=198.51.100.17;proto=https;proto=http")],
                s(LB, None, None),
            ),
            // Bare IPv6 (no brackets, no quotes) is not the syntax.
            (&[("forwarded", "for=2001:db8::1")], s(LB, None, None)),
            (&[("forwarded", "for=\"2001:db8::1\"")], s(LB, None, None)),
            // A quoted comma does not split elements; escapes are undone.
            (
                &[("forwarded", "for=198.51.100.17;ext=\"a, for=10.0.0.8\"")],
                s("198.51.100.17", None, None),
            ),
            (
                &[("forwarded", "for=\"198.51.100.\\17\"")],
                s("198.51.100.17", None, None),
            ),
        ];
        for (lines, want) in table {
            assert_eq!(&client(FWD, TRUSTED, LB, lines), want, "{lines:?}");
        }
    }

    #[test]
    fn a_malformed_forwarded_line_is_opaque_and_does_not_swallow_the_next() {
        let table: &[(Lines<'_>, Seen)] = &[
            // Unterminated quote in the client's line, the proxy's own line after it.
            (
                &[
                    ("forwarded", "for=\"1.1.1.1"),
                    ("forwarded", "for=198.51.100.17"),
                ],
                s("198.51.100.17", None, None),
            ),
            // ... and the walk stops at it when it is reached.
            (
                &[
                    ("forwarded", "for=\"1.1.1.1"),
                    ("forwarded", "for=10.0.0.8"),
                ],
                s("10.0.0.8", None, None),
            ),
            // The proxy appended to the broken line: nothing usable in it.
            (
                &[("forwarded", "for=\"1.1.1.1, for=198.51.100.17")],
                s(LB, None, None),
            ),
            (&[("forwarded", "for")], s(LB, None, None)),
            (&[("forwarded", "for=")], s(LB, None, None)),
            (&[("forwarded", "=1.2.3.4")], s(LB, None, None)),
            (&[("forwarded", "for=1.2.3.4 x")], s(LB, None, None)),
            (&[("forwarded", "for=1.2.3.4\"")], s(LB, None, None)),
            (&[("forwarded", "for=[::1]")], s(LB, None, None)),
            (&[("forwarded", "for=\"[::1\"")], s(LB, None, None)),
            (&[("forwarded", "for=\"[::1]x\"")], s(LB, None, None)),
            (&[("forwarded", "for=\"1.2.3.4:65536\"")], s(LB, None, None)),
            (&[("forwarded", "for=\"[zz::1]\"")], s(LB, None, None)),
        ];
        for (lines, want) in table {
            assert_eq!(&client(FWD, TRUSTED, LB, lines), want, "{lines:?}");
        }
    }

    #[test]
    fn hostile_sizes_stay_linear_and_bounded() {
        // 20,000 trusted entries then the client: walked through.
        let mut long = "10.0.0.1, ".repeat(20_000);
        long.push_str("203.0.113.7");
        assert_eq!(
            client(XFF, TRUSTED, LB, &[("x-forwarded-for", &long)]),
            s("203.0.113.7", None, None)
        );
        // 20,000 forged entries left of the client: never reached.
        let mut forged = "10.0.0.1,".repeat(20_000);
        forged.push_str("203.0.113.7, 10.0.0.9");
        assert_eq!(
            client(XFF, TRUSTED, LB, &[("x-forwarded-for", &forged)]),
            s("203.0.113.7", None, None)
        );
        // The same in Forwarded, and a line of quotes and backslashes.
        let mut fwd = "for=10.0.0.1, ".repeat(20_000);
        fwd.push_str("for=\"[2001:db8::7]:80\"");
        assert_eq!(
            client(FWD, TRUSTED, LB, &[("forwarded", &fwd)]),
            s("2001:db8::7", Some(80), None)
        );
        let garbage = "\"\\\\\";;;,,,=".repeat(5_000);
        assert_eq!(
            client(FWD, TRUSTED, LB, &[("forwarded", &garbage)]),
            s(LB, None, None)
        );
        // Bytes that are not UTF-8.
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.7").unwrap(),
        );
        h.insert(
            FORWARDED,
            http::HeaderValue::from_bytes(b"for=\"\xff\"").unwrap(),
        );
        let lb: IpAddr = LB.parse().unwrap();
        let f = resolve(&h, lb, &config(XFF, TRUSTED)).unwrap();
        assert_eq!(f.client.unwrap().ip.to_string(), "203.0.113.7");
        assert_eq!(resolve(&h, lb, &config(FWD, TRUSTED)), None);
    }

    #[test]
    fn socket_addr_has_port_zero_when_unknown() {
        let c = ForwardedClient {
            ip: "203.0.113.7".parse().unwrap(),
            port: None,
        };
        assert_eq!(c.socket_addr().to_string(), "203.0.113.7:0");
    }
}
