//! The params of one FastCGI request, in one buffer.
//!
//! Built by the HTTP front end for proxied requests and by the health
//! checker for its own requests (ping, status, session probe).

/// The value of SERVER_SOFTWARE, in proxied requests and fpmlb's own.
pub const SERVER_SOFTWARE: &str = concat!("fpmlb/", env!("CARGO_PKG_VERSION"));

/// All params of one request in one buffer (two allocations in all, however
/// many headers): the pairs are byte ranges into `buf`.
#[derive(Debug, Default)]
pub struct ParamList {
    buf: Vec<u8>,
    /// (name start, name end, value end): a value starts where its name ends.
    spans: Vec<(u32, u32, u32)>,
}

impl ParamList {
    pub fn with_capacity(bytes: usize, pairs: usize) -> Self {
        ParamList {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(pairs),
        }
    }

    fn offset(&self) -> u32 {
        // Request heads are bounded by hyper's header limits, far below 4 GiB.
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.offset();
        self.buf.extend_from_slice(name);
        let mid = self.offset();
        self.buf.extend_from_slice(value);
        let end = self.offset();
        self.spans.push((start, mid, end));
    }

    /// Pushes `HTTP_` + the header name upper-cased with '-' as '_'.
    pub fn push_header(&mut self, header: &str, value: &[u8]) {
        let start = self.offset();
        self.buf.extend_from_slice(b"HTTP_");
        self.buf.extend(header.bytes().map(|b| {
            if b == b'-' {
                b'_'
            } else {
                b.to_ascii_uppercase()
            }
        }));
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
