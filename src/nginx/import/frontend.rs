//! What the front end does to connections and responses: TLS certificates
//! and HSTS, the real client address, gzip, and error pages.

use super::draft::{Compression, RealIp, Sourced, Tls};
use super::server::{Translation, size};
use super::{Cx, NoteKind, Scope};

impl<'a> Translation<'a, '_> {
    /// TLS certificates, HSTS, real IP, gzip.
    pub(super) fn tls_real_ip_compression(
        &mut self,
        cx: &mut Cx<'_>,
        srv: &Scope<'a>,
        php: &Scope<'a>,
    ) {
        let any_tls = self.draft.listen.iter().any(|l| l.tls);
        let mut tls = Tls::default();
        if any_tls {
            // The chosen server's certificates, then those of its copies on
            // other listeners (fpmlb picks one by SNI).
            let mut scopes = vec![srv.clone()];
            for copy in &self.copies {
                scopes.push(Scope::new(self.http).with(copy.children()));
            }
            for scope in scopes {
                let certs = scope.all(cx, "ssl_certificate");
                let keys = scope.all(cx, "ssl_certificate_key");
                for (i, c) in certs.iter().enumerate() {
                    let cert = c.arg(0).unwrap_or("");
                    let key = keys.get(i).and_then(|k| k.arg(0)).unwrap_or("");
                    if cert.contains('$') || key.contains('$') || key.is_empty() {
                        cx.untranslated(c, "a certificate named with variables or without its key");
                        continue;
                    }
                    cx.done(c);
                    if let Some(k) = keys.get(i) {
                        cx.done(k);
                    }
                    if !tls
                        .certificates
                        .iter()
                        .any(|(c0, k0, _)| c0 == cert && k0 == key)
                    {
                        tls.certificates
                            .push((cert.to_owned(), key.to_owned(), cx.why(c)));
                    }
                }
            }
            if tls.certificates.is_empty() {
                cx.general(
                    NoteKind::Untranslated,
                    "a TLS listener without ssl_certificate: give tls.certificates (or \
                     tls.acme)",
                );
            }
        }
        for d in srv.all(cx, "add_header") {
            let is_hsts = d
                .arg(0)
                .is_some_and(|h| h.eq_ignore_ascii_case("strict-transport-security"));
            if is_hsts && any_tls {
                tls.hsts = Some(Sourced::new(d.arg(1).unwrap_or("").to_owned(), cx.why(d)));
                cx.done(d);
            }
        }
        if any_tls {
            self.draft.tls = Some(tls);
        }

        // Real IP.
        let from = srv.all(cx, "set_real_ip_from");
        if !from.is_empty() {
            let mut trusted = Vec::new();
            let mut why = Vec::new();
            for d in &from {
                match cidr(d.arg(0).unwrap_or("")) {
                    Some(c) => {
                        trusted.push(c);
                        why.push(cx.at(d));
                        cx.done(d);
                    }
                    None => cx.untranslated(d, "not an address or CIDR (unix: has no address)"),
                }
            }
            let header = srv.one(cx, "real_ip_header").and_then(|d| {
                let h = d.arg(0).unwrap_or("").to_ascii_lowercase();
                match h.as_str() {
                    "x-forwarded-for" | "forwarded" => {
                        cx.done(d);
                        Some(Sourced::new(h, cx.why(d)))
                    }
                    "proxy_protocol" => {
                        cx.info(
                            d,
                            "the client is the PROXY header's address: listeners with \
                             proxy_protocol",
                        );
                        None
                    }
                    _ => {
                        cx.untranslated(d, "fpmlb reads x-forwarded-for or forwarded only");
                        None
                    }
                }
            });
            if let Some(d) = srv.one(cx, "real_ip_recursive") {
                cx.differs(
                    d,
                    "check how fpmlb picks the address in the header (README, real_ip)",
                );
            }
            if cx.compat {
                cx.general(
                    NoteKind::Compat,
                    "real_ip: issue 13's key, written commented out (PHP sees the proxy's \
                     address as REMOTE_ADDR)",
                );
            }
            self.draft.real_ip = Some(RealIp {
                trusted_proxies: trusted,
                header,
                why: format!("set_real_ip_from ({})", why.join(", ")),
            });
        }

        // gzip, as it applies to the PHP location's responses.
        if let Some(d) = php.one(cx, "gzip") {
            if d.arg(0) == Some("on") {
                cx.done(d);
                let types = php.all(cx, "gzip_types");
                let types = if types.is_empty() {
                    None
                } else if types.iter().any(|t| t.args.iter().any(|a| a == "*")) {
                    for t in &types {
                        cx.untranslated(t, "gzip_types *: give fpmlb the list of types");
                    }
                    None
                } else {
                    let mut list = vec!["text/html".to_owned()];
                    for t in &types {
                        cx.done(t);
                        for a in &t.args {
                            if !list.contains(a) {
                                list.push(a.clone());
                            }
                        }
                    }
                    Some(Sourced::new(list, cx.why(types[0])))
                };
                let min_size = php.one(cx, "gzip_min_length").and_then(|m| size(cx, m));
                let level = php.one(cx, "gzip_comp_level").and_then(|l| {
                    match l.arg(0).and_then(|v| v.parse::<u32>().ok()) {
                        Some(n) if (1..=9).contains(&n) => {
                            cx.done(l);
                            Some(Sourced::new(n, cx.why(l)))
                        }
                        _ => {
                            cx.untranslated(l, "not a level 1 to 9");
                            None
                        }
                    }
                });
                if let Some(v) = php.one(cx, "gzip_vary") {
                    cx.done(v);
                }
                if cx.compat {
                    cx.general(
                        NoteKind::Compat,
                        "gzip: issue 13's compression, written commented out (responses go \
                         uncompressed)",
                    );
                }
                self.draft.compression = Some(Compression {
                    off: false,
                    types,
                    min_size,
                    level,
                    why: cx.why(d),
                });
            } else {
                cx.done(d);
                // nginx compresses nothing here; fpmlb would by default.
                self.draft.compression = Some(Compression {
                    off: true,
                    types: None,
                    min_size: None,
                    level: None,
                    why: cx.why(d),
                });
                for name in [
                    "gzip_types",
                    "gzip_min_length",
                    "gzip_comp_level",
                    "gzip_vary",
                ] {
                    for g in php.all(cx, name) {
                        cx.done(g);
                    }
                }
            }
        }
    }

    pub(super) fn error_pages(&mut self, cx: &mut Cx<'_>, srv: &Scope<'a>) {
        for d in srv.all(cx, "error_page") {
            let Some((uri, codes)) = d.args.split_last() else {
                continue;
            };
            let codes: Option<Vec<u16>> = codes.iter().map(|c| c.parse::<u16>().ok()).collect();
            let Some(codes) = codes.filter(|c| !c.is_empty()) else {
                cx.untranslated(d, "changes the response code (=...)");
                continue;
            };
            if !uri.starts_with('/') || uri.contains('$') {
                cx.untranslated(d, "the page is a named location, a URL or has variables");
                continue;
            }
            let path = uri.split('?').next().unwrap_or(uri);
            if crate::config::paths::is_php_source(path.as_bytes()) {
                cx.untranslated(
                    d,
                    "the error page is a PHP script: fpmlb's error_pages are static files (the \
                     front controller already answers unknown paths)",
                );
                continue;
            }
            cx.done(d);
            for c in codes {
                self.draft.error_pages.retain(|(s, _, _)| *s != c);
                self.draft.error_pages.push((c, uri.clone(), cx.why(d)));
            }
        }
        if cx.compat && !self.draft.error_pages.is_empty() {
            cx.general(
                NoteKind::Compat,
                "error_page: issue 14's error_pages, written commented out",
            );
        }
    }
}

/// An address or CIDR of `set_real_ip_from`, as a CIDR.
fn cidr(arg: &str) -> Option<String> {
    let (addr, bits) = match arg.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (arg, None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then(|| format!("{ip}/{bits}"))
}

#[cfg(test)]
mod tests {
    use super::cidr;

    #[test]
    fn cidrs() {
        assert_eq!(cidr("10.0.0.0/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(cidr("192.0.2.1").as_deref(), Some("192.0.2.1/32"));
        assert_eq!(cidr("2001:db8::/32").as_deref(), Some("2001:db8::/32"));
        assert_eq!(cidr("10.0.0.0/33"), None);
        assert_eq!(cidr("unix:"), None);
    }
}
