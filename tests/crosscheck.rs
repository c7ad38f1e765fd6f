//! fpmlb's FastCGI client against the `fastcgi-client` crate, both talking
//! to the same real php-fpm node with the same params and body: the
//! response bodies must be identical.
//!
//! Its network is in tests/support/nets.rs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fpmlb::fastcgi::conn::Endpoint;
use fpmlb::fastcgi::exchange::ExchangeTimeouts;
use fpmlb::fastcgi::params::ParamList;
use fpmlb::health::passive::FailureWindow;
use fpmlb::upstream::backend::Backend;
use fpmlb::upstream::exchange::small_request;
use fpmlb::upstream::pool::{Pool, PoolSettings};
use support::{Cluster, nets};

fn params(docroot: &str, script: &str, query: &str, body_len: usize) -> Vec<(String, String)> {
    let uri = if query.is_empty() {
        script.to_string()
    } else {
        format!("{script}?{query}")
    };
    vec![
        ("SCRIPT_FILENAME".into(), format!("{docroot}{script}")),
        ("SCRIPT_NAME".into(), script.into()),
        ("REQUEST_URI".into(), uri),
        ("QUERY_STRING".into(), query.into()),
        (
            "REQUEST_METHOD".into(),
            if body_len > 0 { "POST" } else { "GET" }.into(),
        ),
        ("CONTENT_TYPE".into(), "application/octet-stream".into()),
        ("CONTENT_LENGTH".into(), body_len.to_string()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("REMOTE_ADDR".into(), "127.0.0.9".into()),
        ("REMOTE_PORT".into(), "40000".into()),
        ("HTTP_HOST".into(), "crosscheck".into()),
        ("HTTP_X_LONG".into(), "v".repeat(300)),
    ]
}

/// The body after the CGI head, from fastcgi-client's raw STDOUT.
fn body_of(stdout: &[u8]) -> &[u8] {
    let end = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    &stdout[end..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_and_fastcgi_client_get_the_same_bytes_from_php_fpm() {
    let cluster = Cluster::start(nets::CROSSCHECK, &["--nodes", "1"]);
    let (_, node) = cluster.nodes().remove(0);
    let addr: std::net::SocketAddr = node.parse().unwrap();
    let settings = PoolSettings {
        max_conns: 2,
        queue_size: 4,
        connect_timeout: Duration::from_secs(2),
        queue_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
    };
    let backend = Arc::new(Backend::new(
        "web01".into(),
        Endpoint::Tcp(addr),
        1,
        Pool::new(Endpoint::Tcp(addr), settings),
        FailureWindow::new(0, Duration::from_secs(1)),
    ));
    let timeouts = ExchangeTimeouts {
        send: Duration::from_secs(10),
        read: Duration::from_secs(10),
    };
    let docroot = cluster.docroot();
    let big_body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("/env.php", "x=1&y=%20z", Vec::new()),
        ("/env.php", "", big_body.clone()),
        ("/big.php", "bytes=300000", Vec::new()),
        ("/stderr.php", "n=50", Vec::new()),
    ];
    for (script, query, body) in cases {
        // fastcgi-client's defaults first, ours over them: both send the same set.
        let mut pairs: Vec<(String, String)> = fastcgi_client::Params::default()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in params(&docroot, script, query, body.len()) {
            pairs.retain(|(old, _)| *old != k);
            pairs.push((k, v));
        }
        let mut ours = ParamList::with_capacity(1024, pairs.len());
        for (k, v) in &pairs {
            ours.push(k.as_bytes(), v.as_bytes());
        }
        let mine = small_request(
            &backend,
            &ours,
            &body,
            Duration::from_secs(2),
            timeouts,
            4 << 20,
        )
        .await
        .unwrap();

        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let client = fastcgi_client::Client::new(stream);
        let mut theirs_params = fastcgi_client::Params::default();
        theirs_params.clear();
        for (k, v) in &pairs {
            theirs_params.insert(k.clone().into(), v.clone().into());
        }
        let request = fastcgi_client::Request::new(theirs_params, &body[..]);
        let theirs = client.execute_once(request).await.unwrap();
        let stdout = theirs.stdout.unwrap_or_default();
        assert_eq!(mine.head.status, 200, "{script}?{query}");
        let theirs = body_of(&stdout);
        // fastcgi-client sends its params in HashMap order, and PHP lists
        // HTTP_* in the order received: compare JSON as values, the rest as bytes.
        let as_json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
        match (as_json(&mine.body), as_json(theirs)) {
            (Some(a), Some(b)) => assert_eq!(a, b, "{script}?{query}: bodies differ"),
            _ => assert_eq!(&mine.body[..], theirs, "{script}?{query}: bodies differ"),
        }
        assert!(!mine.body.is_empty());
    }
}
