//! The fuzz targets' checks on the stable toolchain, in `make test`: every
//! seed of `fuzz/corpus/` replayed, and proptest's inputs (random bytes and
//! inputs shaped like each decoder's) run through the same checks
//! (`fuzz/src/lib.rs`, included below), so CI covers the decoders with the
//! fuzzers' invariants without nightly or libFuzzer. `make fuzz` runs the
//! real fuzzers (coverage-guided, for minutes), which find what these
//! miss; what they find goes into the corpus, and so into this test.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

use proptest::prelude::*;

/// Every file of every target's corpus through its check; a panic names the
/// file, so a regression points at the input that shows it.
#[test]
fn seed_corpus_passes_every_check() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in harness::TARGETS {
        let dir = corpus.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", file.display());
        }
    }
}

/// Inputs made of pieces a decoder cares about, so random choices reach
/// past its first checks more often than random bytes do.
fn joined(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(pieces), 0..max).prop_map(|p| p.concat())
}

/// A response stream of records: (version, type, request id, content, padding).
fn records() -> impl Strategy<Value = Vec<u8>> {
    let one = (
        prop::sample::select(&[1u8, 1, 1, 1, 0, 2][..]),
        0u8..13,
        prop::sample::select(&[0u16, 1, 1, 2, 65535][..]),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::sample::select(&[0u8, 0, 1, 7, 255][..]),
    );
    prop::collection::vec(one, 0..8).prop_map(|records| {
        let mut out = Vec::new();
        for (version, kind, id, content, padding) in records {
            out.extend_from_slice(&[version, kind]);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
            out.extend_from_slice(&[padding, 0]);
            out.extend_from_slice(&content);
            out.extend(std::iter::repeat_n(0, usize::from(padding)));
        }
        out
    })
}

/// Name-value pairs, with lengths on both sides of the 1-byte form (127)
/// and now and then a value that does not fit one record.
fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let len = prop_oneof![0usize..130, 60_000usize..70_000];
    let pair = (0usize..200, len, any::<u8>()).prop_map(|(n, v, b)| (vec![b'N'; n], vec![b; v]));
    prop::collection::vec(pair, 0..6)
}

const CGI_PIECES: &[&str] = &[
    "Status: ",
    "200",
    "404 Not Found",
    "1xx",
    "999",
    "Location: /x",
    "Content-Type: text/html",
    "Set-Cookie: a=1",
    "Connection: close",
    "Transfer-Encoding: chunked",
    "X-A: ",
    "\u{1}",
    "\0",
    "\u{7f}",
    "é",
    " ",
    "\t",
    ":",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "\n\n",
    "body",
];

const PATH_PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    "%2f",
    "%00",
    "%",
    "%zz",
    "%C3%A9",
    "a",
    "b",
    "x.php",
    "X.PHP",
    ".php",
    "index.php",
    "phar",
    "?",
    "q=1",
    "#",
    " ",
    "\\",
    "é",
];

const HEADER_PIECES: &[&str] = &[
    "\nHost: ",
    "\nhost: ",
    "\nCookie: ",
    "\nX-A-B: ",
    "\nX_A_B: ",
    "\nX.A-B: ",
    "\nProxy: ",
    "\nContent-Type: ",
    "\nA~B: ",
    "\n: ",
    "v",
    "1.2.3.4",
    "evil",
    "\u{1}",
    ":",
    "\r",
];

const YAML_PIECES: &[&str] = &[
    "listen: ",
    "\":8080\"",
    "[\"127.0.0.1:1\", \"[::1]:2\"]",
    "document_root: ",
    "/var/www",
    "backends:\n  - name: a\n    address: ",
    "127.0.0.1:9000",
    "unix:/run/p.sock",
    "\n    weight: ",
    "\n    max_conns: ",
    "0",
    "1000",
    "1001",
    "-1",
    "1g",
    "2m30s",
    "250ms",
    "timeouts: {read: ",
    "}",
    "health:\n  rise: ",
    "session: {save_handler: redis, save_path: \"",
    "tcp://h?auth=x",
    "\"}",
    "params: {A: ",
    "&a ",
    "*a",
    "<<: *a",
    "~",
    "null",
    "!!binary ",
    "\n",
    "  ",
    "- ",
    "{",
    "[",
    "'",
    "\"",
    "#",
    ": ",
];

const SAVE_PATH_HANDLERS: &[&str] = &[
    "files",
    "memcached",
    "memcache",
    "redis",
    "rediscluster",
    "user",
    "",
];

const SAVE_PATH_PIECES: &[&str] = &[
    "tcp://",
    "tls://",
    "udp://",
    "unix://",
    "/run/s.sock",
    "h",
    "10.0.0.1",
    "[::1]",
    ":",
    "11211",
    "6379",
    "0",
    "99999",
    "?",
    "&",
    "=",
    "auth=",
    "auth[]=",
    "user:pw@",
    "sha256:2bb80d537b1da3e3",
    "weight=",
    "database=",
    "prefix=",
    "persistent=1",
    "seed[]=",
    ",",
    " ",
    ";",
    "PERSISTENT=x ",
    "%41",
    "%",
    "\t",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn fastcgi_record_random_bytes(data in prop::collection::vec(any::<u8>(), 0..600)) {
        harness::fastcgi_record(&data);
    }

    #[test]
    fn fastcgi_record_shaped_streams(data in records()) {
        harness::fastcgi_record(&data);
    }

    #[test]
    fn fastcgi_params_round_trip(pairs in pairs()) {
        harness::params_round_trip(&pairs);
    }

    #[test]
    fn cgi_head_random_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        harness::cgi_head(&data);
    }

    #[test]
    fn cgi_head_shaped(head in joined(CGI_PIECES, 40)) {
        harness::cgi_head(head.as_bytes());
    }

    #[test]
    fn request_path_shaped(path in joined(PATH_PIECES, 30), headers in joined(HEADER_PIECES, 20)) {
        harness::request_path(format!("{path}{headers}").as_bytes());
    }

    #[test]
    fn request_path_random_text(text in "\\PC{0,80}") {
        harness::request_path(text.as_bytes());
    }

    #[test]
    fn config_shaped(text in joined(YAML_PIECES, 30)) {
        harness::config(text.as_bytes());
    }

    #[test]
    fn save_path_shaped(
        handler in prop::sample::select(SAVE_PATH_HANDLERS),
        path in joined(SAVE_PATH_PIECES, 20),
        ordered in any::<bool>(),
    ) {
        let ini = if ordered {
            "memcached.sess_consistent_hash=0\nmemcache.hash_strategy=standard"
        } else {
            ""
        };
        harness::save_path(format!("{handler}\n{path}\n{ini}").as_bytes());
    }
}
