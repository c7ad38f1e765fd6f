//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on listeners with
//! `proxy_protocol: true`: the header a TCP load balancer sends first, with
//! the client's address, read before TLS and HTTP.
//!
//! Parsing is the proxy-header crate's (sans I/O: bytes in, a header and its
//! length out, or "need more"); this module reads the bytes with a size
//! bound, the caller bounds the time. Bytes read past the header (a TLS
//! ClientHello or a request the balancer sent right after it) are not lost:
//! [`ClientStream`] hands them out before reading the socket again.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use proxy_header::{ParseConfig, ProxyHeader};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::rewind::Rewind;

/// The largest header accepted: v1 is at most 107 bytes; v2 is 16 bytes plus
/// addresses (at most 216 for AF_UNIX) plus TLVs, a few hundred bytes from
/// HAProxy and the cloud balancers. Anything longer is refused.
pub const MAX_HEADER: usize = 4096;

/// What the header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// A proxied TCP connection from `source` to `destination`.
    Tcp {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// `LOCAL` (v2) or `UNKNOWN` (v1): the balancer's own connection, a
    /// health check; the peer is the client.
    Local,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no valid PROXY protocol header: {0}")]
    Invalid(String),
    #[error("PROXY protocol header longer than {MAX_HEADER} bytes")]
    TooLong,
    #[error("connection closed before a complete PROXY protocol header")]
    Closed,
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// Outcome of parsing the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes.
    Complete { proxied: Proxied, len: usize },
    /// Not enough bytes yet.
    Incomplete,
}

/// Parses a PROXY header at the start of `buf`.
///
/// # Errors
///
/// The bytes are not a valid v1 or v2 header.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let config = ParseConfig {
        include_tlvs: false,
        allow_v1: true,
        allow_v2: true,
    };
    match ProxyHeader::parse(buf, config) {
        Ok((header, len)) => {
            let proxied = match header.proxied_address() {
                None => Proxied::Local,
                Some(a) => match a.protocol {
                    proxy_header::Protocol::Stream => Proxied::Tcp {
                        source: a.source,
                        destination: a.destination,
                    },
                    // A datagram header on a TCP listener says nothing true.
                    proxy_header::Protocol::Datagram => {
                        return Err(ProxyHeaderError::Invalid("a UDP header on TCP".into()));
                    }
                },
            };
            Ok(Parsed::Complete { proxied, len })
        }
        Err(proxy_header::Error::BufferTooShort) if could_be_header(buf) => Ok(Parsed::Incomplete),
        Err(e) => Err(ProxyHeaderError::Invalid(e.to_string())),
    }
}

/// Whether `buf` may still become a header: a prefix of either signature
/// so far, and a v1 line not past its 107 bytes. The parser asks for more
/// bytes of anything starting with 'P' or '\r'; this refuses "GET / HTTP/1.1"
/// at its first byte and "PUT" at its second instead of waiting for the
/// timeout.
fn could_be_header(buf: &[u8]) -> bool {
    const V1: &[u8] = b"PROXY ";
    const V1_MAX: usize = 107;
    const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    let prefix_of = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    (prefix_of(V1) && buf.len() < V1_MAX) || prefix_of(V2)
}

/// Reads a PROXY header from `stream`: returns what it said and the stream
/// with whatever came after it. The caller bounds the time.
///
/// # Errors
///
/// No valid header, too long, the connection closed or failed.
pub async fn read_header(
    mut stream: TcpStream,
) -> Result<(Proxied, ClientStream), ProxyHeaderError> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        if buf.len() >= MAX_HEADER {
            return Err(ProxyHeaderError::TooLong);
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        match parse(&buf)? {
            Parsed::Incomplete => {}
            Parsed::Complete { proxied, len } => {
                buf.advance(len);
                return Ok((proxied, Rewind::new(stream, buf.freeze())));
            }
        }
    }
}

/// A client's TCP stream, with the bytes read ahead while looking for a
/// PROXY header handed out first.
pub type ClientStream = Rewind<TcpStream>;

#[cfg(test)]
mod tests {
    use super::*;

    const V2_TCP4: &[u8] = &[
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
        0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP over IPv4, 12 bytes
        192, 0, 2, 7, 10, 0, 0, 1, // source, destination
        0xd4, 0x31, 0x01, 0xbb, // ports 54321, 443
    ];

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 54321 443\r\nGET /";
        let Parsed::Complete { proxied, len } = parse(h).unwrap() else {
            panic!()
        };
        assert_eq!(len, h.len() - 5);
        assert_eq!(
            proxied,
            Proxied::Tcp {
                source: "192.0.2.7:54321".parse().unwrap(),
                destination: "10.0.0.1:443".parse().unwrap()
            }
        );
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 54321 443\r\n";
        assert!(matches!(parse(h).unwrap(), Parsed::Complete { .. }));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap(),
            Parsed::Complete {
                proxied: Proxied::Local,
                len: 15
            }
        );
    }

    #[test]
    fn v2_tcp4_and_split_points() {
        let Parsed::Complete { proxied, len } = parse(V2_TCP4).unwrap() else {
            panic!()
        };
        assert_eq!(len, V2_TCP4.len());
        assert_eq!(
            proxied,
            Proxied::Tcp {
                source: "192.0.2.7:54321".parse().unwrap(),
                destination: "10.0.0.1:443".parse().unwrap()
            }
        );
        for cut in 1..V2_TCP4.len() {
            assert_eq!(
                parse(&V2_TCP4[..cut]).unwrap(),
                Parsed::Incomplete,
                "cut {cut}"
            );
        }
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 54321 443\r\n";
        for cut in 1..v1.len() {
            assert_eq!(parse(&v1[..cut]).unwrap(), Parsed::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_header_at_once() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PUT",
            b"\x16\x03\x01\x02\x00",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 not-an-ip 5.6.7.8 1 2\r\n",
            b"\r\n\r\n\0\r\nQUIX\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn keeps_the_bytes_after_the_header() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"PROXY TCP4 192.0.2.7 10.0.0.1 54321 443\r\nhello")
                .await
                .unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        client.await.unwrap();
        let (proxied, mut rest) = read_header(stream).await.unwrap();
        assert!(matches!(proxied, Proxied::Tcp { .. }));
        let mut text = String::new();
        rest.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello");
    }
}
