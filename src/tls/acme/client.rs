//! The HTTP client instant-acme speaks to the CA with, bounded.
//!
//! instant-acme's own client reads every response whole, however long, and
//! waits for it as long as it takes. A CA is outside fpmlb, and so is
//! whatever answers for it (a hijacked name, a proxy on the way, a
//! misconfigured `directory`): an endless response would grow fpmlb's
//! memory until the order's timeout. Here every request has
//! [`REQUEST_TIMEOUT`] to answer and its body [`MAX_RESPONSE`] bytes (an
//! ACME response is a JSON object or a certificate chain, a few KiB).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The longest one request to the CA may take, its body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response body taken from the CA.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// HTTPS only, HTTP/1.1 or HTTP/2, as instant-acme's own client.
pub struct BoundedClient {
    inner: Client<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    timeout: Duration,
    max_response: usize,
}

impl BoundedClient {
    /// Trusting the system's roots, or only `ca_root` (a PEM file) when
    /// given (a test CA).
    pub fn new(ca_root: Option<&Path>) -> Result<BoundedClient, String> {
        let builder = match ca_root {
            None => HttpsConnectorBuilder::new()
                .try_with_platform_verifier()
                .map_err(|e| format!("the system's root certificates: {e}"))?,
            Some(path) => {
                let root = CertificateDer::from_pem_file(path)
                    .map_err(|e| format!("ca_root {}: {e}", path.display()))?;
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(root)
                    .map_err(|e| format!("ca_root {}: {e}", path.display()))?;
                let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS client: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let connector = builder.https_only().enable_http1().enable_http2().build();
        Ok(BoundedClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            timeout: REQUEST_TIMEOUT,
            max_response: MAX_RESPONSE,
        })
    }
}

impl HttpClient for BoundedClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        let uri = req.uri().clone();
        let response = self.inner.request(req);
        let (timeout, max) = (self.timeout, self.max_response);
        Box::pin(async move {
            let read = async move {
                let response = response.await.map_err(|e| Error::Other(Box::new(e)))?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, max)
                    .collect()
                    .await
                    .map_err(|e| Error::Other(format!("{uri}: response body: {e}").into()))?
                    .to_bytes();
                Ok(BytesResponse {
                    parts,
                    body: Box::new(body),
                })
            };
            tokio::time::timeout(timeout, read)
                .await
                .unwrap_or_else(|_| Err(Error::Str("the CA took too long to answer")))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A TLS server for `localhost` on loopback that sends `answer` to
    /// every request, then `filler` forever when given; its CA's PEM file
    /// is written in `dir`.
    async fn server(dir: &Path, answer: &'static [u8], filler: bool) -> (String, BoundedClient) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = [0u8; 4096];
                    if tls.read(&mut request).await.is_err() || tls.write_all(answer).await.is_err()
                    {
                        return;
                    }
                    let chunk = vec![b'0'; 64 * 1024];
                    while filler && tls.write_all(&chunk).await.is_ok() {}
                    // Silent, or done: the connection stays open.
                    std::future::pending::<()>().await;
                });
            }
        });
        let client = BoundedClient::new(Some(&pem)).unwrap();
        (format!("https://localhost:{port}/directory"), client)
    }

    fn get(url: &str) -> http::Request<BodyWrapper<Bytes>> {
        http::Request::get(url)
            .body(BodyWrapper::default())
            .unwrap()
    }

    /// The answer of a test server to one GET, within a hang guard.
    async fn ask(
        answer: &'static [u8],
        filler: bool,
        timeout: Duration,
    ) -> Result<BytesResponse, Error> {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut client) = server(dir.path(), answer, filler).await;
        client.timeout = timeout;
        let hang_guard = Duration::from_secs(60);
        tokio::time::timeout(hang_guard, client.request(get(&url)))
            .await
            .expect("an answer, or an error, within the hang guard")
    }

    #[tokio::test]
    async fn a_short_answer_is_read_whole() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let mut response = ask(answer, false, REQUEST_TIMEOUT).await.unwrap();
        assert_eq!(response.parts.status, 200);
        assert_eq!(response.body.into_bytes().await.unwrap(), &b"{}"[..]);
    }

    /// An endless body (a CA, or whatever answers for it, that streams
    /// for ever) ends at `MAX_RESPONSE`: an error, not memory without end.
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_limit() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n";
        let Err(e) = ask(answer, true, REQUEST_TIMEOUT).await else {
            panic!("an endless body was taken");
        };
        assert!(e.to_string().contains("length limit"), "{e}");
    }

    /// A CA that accepts the connection and never answers is given up on.
    #[tokio::test]
    async fn a_silent_ca_times_out() {
        let Err(e) = ask(b"", false, Duration::from_millis(300)).await else {
            panic!("an answer from a silent server");
        };
        assert!(e.to_string().contains("too long"), "{e}");
    }
}
