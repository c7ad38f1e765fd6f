//! Whether a php-fpm pool has a worker free, asked on a connection of its
//! own. php-fpm reads a connection only once a worker has accepted it, and
//! its workers accept connections in the order they arrived (one listen
//! queue); a management record (FCGI_GET_VALUES) before any request is
//! answered at once, and the connection closed, by the worker that accepts
//! it (php-src `main/fastcgi.c`, `fcgi_read_request`). So an answer says
//! that a worker took this connection, after any connection queued before
//! it; it holds that worker for microseconds.

use std::time::Duration;

use bytes::BytesMut;

use super::conn::{Connection, Endpoint};
use super::exchange::encode_ready_check;
use super::record::Record;

/// Connects to `endpoint` (within `connect_timeout`) and asks; true once
/// php-fpm answered. Waits as long as the caller lets it: a pool with no
/// worker free answers when one frees.
pub async fn worker_answers(endpoint: &Endpoint, connect_timeout: Duration) -> bool {
    let Ok(mut conn) = Connection::connect(endpoint, connect_timeout).await else {
        return false;
    };
    let mut ask = BytesMut::new();
    encode_ready_check(&mut ask);
    if conn.write_all(&ask).await.is_err() {
        return false;
    }
    matches!(
        conn.read_record().await,
        Ok(Some((0, Record::GetValuesResult(_))))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A GET_VALUES_RESULT record of no pairs, as php-fpm sends one.
    const RESULT: [u8; 8] = [1, 10, 0, 0, 0, 0, 0, 0];

    async fn asked(answer: &'static [u8]) -> bool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = [0u8; 8];
            s.read_exact(&mut got).await.unwrap();
            s.write_all(answer).await.unwrap();
            got
        });
        let answered = worker_answers(&endpoint, Duration::from_secs(5)).await;
        let got = server.await.unwrap();
        // The record read is a GET_VALUES (type 9) of the management id 0.
        assert_eq!(&got[..4], &[1, 9, 0, 0]);
        answered
    }

    #[tokio::test]
    async fn an_answer_is_a_worker_and_anything_else_is_not() {
        assert!(asked(&RESULT).await);
        // Closed without an answer, or a request's record instead.
        assert!(!asked(b"").await);
        assert!(!asked(&[1, 6, 0, 1, 0, 0, 0, 0]).await);
        // Nobody listening.
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::Tcp(gone.local_addr().unwrap());
        drop(gone);
        assert!(!worker_answers(&endpoint, Duration::from_secs(5)).await);
    }
}
