//! The params of one FastCGI request, in one buffer.
//!
//! Built by the HTTP front end for proxied requests and by the health
//! checker for its own requests (ping, status, session probe).
//!
//! php-fpm reads a name-value pair only whole within one PARAMS record
//! (65,535 bytes of content): a longer pair, split over two records, makes it
//! drop the connection, which looks like a dead backend. A [`ParamList`]
//! therefore never holds a pair that does not fit one record: it refuses it
//! and remembers it ([`ParamList::refused`]), whatever built it.

use crate::fastcgi::record::MAX_CONTENT_LEN;

/// The longest name + value of one pair: a record's content less the
/// longest length prefix (two 4-byte lengths).
pub const MAX_PAIR_LEN: usize = MAX_CONTENT_LEN - 8;

/// The value of SERVER_SOFTWARE, in proxied requests and fpmlb's own.
pub const SERVER_SOFTWARE: &str = concat!("fpmlb/", env!("CARGO_PKG_VERSION"));

/// All params of one request in one buffer (two allocations in all, however
/// many headers): the pairs are byte ranges into `buf`.
#[derive(Debug, Default)]
pub struct ParamList {
    buf: Vec<u8>,
    /// (name start, name end, value end): a value starts where its name ends.
    spans: Vec<(u32, u32, u32)>,
    /// The name of the first pair left out for being over [`MAX_PAIR_LEN`].
    refused: Option<Vec<u8>>,
}

impl ParamList {
    pub fn with_capacity(bytes: usize, pairs: usize) -> Self {
        ParamList {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(pairs),
            refused: None,
        }
    }

    fn offset(&self) -> u32 {
        // Request heads are bounded by the head limits (1 MiB at most), far below 4 GiB.
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    /// The name of the first pair that was too long for one record and so
    /// was left out: a request with one must not be sent.
    pub fn refused(&self) -> Option<&[u8]> {
        self.refused.as_deref()
    }

    /// Whether a pair of these lengths fits one record; if not, `name()` is noted.
    fn admits(
        &mut self,
        name_len: usize,
        value_len: usize,
        name: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        if name_len + value_len <= MAX_PAIR_LEN {
            return true;
        }
        if self.refused.is_none() {
            let mut name = name();
            name.truncate(64);
            self.refused = Some(name);
        }
        false
    }

    /// Adds a pair, unless it does not fit one record (see [`ParamList::refused`]).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        if !self.admits(name.len(), value.len(), || name.to_vec()) {
            return;
        }
        let start = self.offset();
        self.buf.extend_from_slice(name);
        let mid = self.offset();
        self.buf.extend_from_slice(value);
        let end = self.offset();
        self.spans.push((start, mid, end));
    }

    /// Pushes `HTTP_` + the header name upper-cased with '-' as '_' (unless
    /// it does not fit one record, see [`ParamList::refused`]).
    pub fn push_header(&mut self, header: &str, value: &[u8]) {
        let cgi_name = || {
            b"HTTP_".iter().copied().chain(header.bytes().map(|b| {
                if b == b'-' {
                    b'_'
                } else {
                    b.to_ascii_uppercase()
                }
            }))
        };
        if !self.admits(5 + header.len(), value.len(), || cgi_name().collect()) {
            return;
        }
        let start = self.offset();
        self.buf.extend(cgi_name());
        let mid = self.offset();
        self.buf.extend_from_slice(value);
        let end = self.offset();
        self.spans.push((start, mid, end));
    }

    /// The value of `name`, the last one if given twice (php-fpm keeps the last).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .filter(|(n, _)| *n == name.as_bytes())
            .last()
            .map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(s, m, e)| {
            (
                &self.buf[s as usize..m as usize],
                &self.buf[m as usize..e as usize],
            )
        })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The params of one of fpmlb's own GET requests (ping, status page,
/// session probe): `script_filename` on the node, seen by PHP as
/// `script_name` with `query`, from 127.0.0.1.
pub fn internal_get(script_filename: &str, script_name: &str, query: &str) -> ParamList {
    let mut p = ParamList::with_capacity(512, 16);
    p.push(b"SCRIPT_FILENAME", script_filename.as_bytes());
    p.push(b"SCRIPT_NAME", script_name.as_bytes());
    let uri = if query.is_empty() {
        script_name.to_string()
    } else {
        format!("{script_name}?{query}")
    };
    p.push(b"REQUEST_URI", uri.as_bytes());
    p.push(b"DOCUMENT_URI", script_name.as_bytes());
    p.push(b"QUERY_STRING", query.as_bytes());
    p.push(b"REQUEST_METHOD", b"GET");
    p.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
    p.push(b"GATEWAY_INTERFACE", b"CGI/1.1");
    p.push(b"SERVER_SOFTWARE", SERVER_SOFTWARE.as_bytes());
    p.push(b"REMOTE_ADDR", b"127.0.0.1");
    p.push(b"REDIRECT_STATUS", b"200");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_over_one_record_is_refused_and_remembered() {
        let mut p = ParamList::with_capacity(0, 0);
        let fits = vec![b'a'; MAX_PAIR_LEN - "HTTP_X_PAD".len()];
        p.push_header("x-pad", &fits);
        p.push(b"Q", &fits[..10]);
        assert_eq!(p.refused(), None);
        p.push_header("x-big", &[b'a'; MAX_PAIR_LEN]);
        p.push(b"QUERY_STRING", &vec![b'q'; 70_000]);
        assert_eq!(
            p.refused(),
            Some(&b"HTTP_X_BIG"[..]),
            "the first one is named"
        );
        assert_eq!(p.len(), 2, "neither was added");
        // What is left encodes with every pair whole in one record.
        let mut buf = bytes::BytesMut::new();
        crate::fastcgi::record::encode_params(&mut buf, 1, p.iter());
        assert_eq!(p.get("HTTP_X_PAD").map(<[u8]>::len), Some(fits.len()));
    }
}
