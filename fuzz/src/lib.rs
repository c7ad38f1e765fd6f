//! The checks every fuzz target runs, in one place for both runners: the
//! libFuzzer targets under `fuzz/fuzz_targets/` (nightly, `make fuzz`) call
//! these functions, and the stable test `tests/decoders.rs` includes this
//! file as a module (`#[path]`) to replay the seed corpus and to feed it
//! proptest's inputs. So an invariant is written once and checked by both.
//!
//! Each function takes the raw bytes of one input and panics (an `assert!`)
//! when an invariant does not hold; a panic is what libFuzzer reports as a
//! crash and what fails the stable test. Beyond "no panic", they check round
//! trips (encode then decode gives the input back) and the properties the
//! callers rely on (a normalised path never climbs above the root, a CGI
//! head never yields a hop-by-hop header, ...). Memory is bounded by the
//! runner: libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb` in `make fuzz`.
//!
//! The input formats are simple enough to write seeds by hand (see
//! `fuzz/README.md`): raw FastCGI records, a raw CGI head, a request target
//! and header lines, YAML, and a save handler line with its save path.

use bytes::BytesMut;
use fpmlb::config::Config;
use fpmlb::fastcgi::cgi::{self, CgiError, MAX_HEAD_LEN};
use fpmlb::fastcgi::record::{
    self, HEADER_LEN, MAX_CONTENT_LEN, Record, RecordType, decode_name_values,
    encode_end_of_stream, encode_get_values, encode_name_value, encode_params, encode_stream,
};
use fpmlb::http::params::{self, ConnInfo, Route, Site};
use fpmlb::save_path::{self, Handler, Ini};

/// A target's check: panics when an invariant does not hold for the input.
pub type Check = fn(&[u8]);

/// Every target: its name (the folder of its corpus, `fuzz/corpus/NAME`, and
/// its binary under `fuzz/fuzz_targets/NAME.rs`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("fastcgi_record", fastcgi_record),
    ("cgi_head", cgi_head),
    ("request_path", request_path),
    ("config", config),
    ("save_path", save_path),
];

/// Largest sum of value lengths [`pairs_from_bytes`] builds: enough for
/// values that span several PARAMS records, small enough to stay fast.
const MAX_PAIRS_BYTES: usize = 1 << 18;

// ------------------------------------------------------------ FastCGI records

/// The record layer (`fastcgi/record.rs`): `data` is read as the byte
/// stream php-fpm would send, and as the material for the encoders' round
/// trips.
pub fn fastcgi_record(data: &[u8]) {
    decode_stream(data);
    name_values_round_trip(data);
    params_round_trip(&pairs_from_bytes(data));
    stream_round_trip(data);
}

/// Parses `data` as a response stream: never consumes on `Ok(None)` or
/// `Err`, consumes exactly one record on `Ok(Some)`, returns the content as
/// it was sent, and gives the same records whatever the read boundaries.
pub fn decode_stream(data: &[u8]) {
    let whole = parse_all(&[data]);
    // The same bytes arriving in two reads, split where the input says.
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) * data.len() / 256);
    assert_eq!(
        parse_all(&[&data[..split], &data[split..]]),
        whole,
        "records depend on where the stream was split ({split})"
    );
}

/// Feeds `pieces` one after the other into one buffer, parsing after each;
/// returns the records and the error that stopped parsing, if any.
fn parse_all(pieces: &[&[u8]]) -> (Vec<(u16, Record)>, Option<record::ProtocolError>) {
    let stream = pieces.concat();
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    // Where the front of `buf` is in `stream`: parse consumes from the front.
    let mut offset = 0;
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match record::parse(&mut buf) {
                Ok(Some((id, rec))) => {
                    let consumed = before - buf.len();
                    check_record(&stream[offset..offset + before], consumed, id, &rec);
                    offset += consumed;
                    records.push((id, rec));
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(error) => {
                    assert_eq!(buf.len(), before, "an error consumed bytes");
                    return (records, Some(error));
                }
            }
        }
    }
    (records, None)
}

/// One parsed record against the bytes it came from (`before`, of which
/// `consumed` were taken).
fn check_record(before: &[u8], consumed: usize, id: u16, rec: &Record) {
    let content_len = usize::from(u16::from_be_bytes([before[4], before[5]]));
    let padding = usize::from(before[6]);
    let record_len = HEADER_LEN + content_len + padding;
    assert_eq!(before[0], 1, "a record of another version was accepted");
    assert_eq!(
        consumed, record_len,
        "consumed another length than the record's"
    );
    assert_eq!(id, u16::from_be_bytes([before[2], before[3]]));
    let content = &before[HEADER_LEN..HEADER_LEN + content_len];
    match rec {
        Record::Stdout(got) | Record::Stderr(got) => assert_eq!(&got[..], content),
        Record::EndRequest { app_status, .. } => {
            assert!(content_len >= 8);
            assert_eq!(app_status.to_be_bytes(), content[..4]);
        }
        Record::UnknownType(kind) => assert_eq!(*kind, content[0]),
        Record::GetValuesResult(pairs) => {
            // What was read is what a canonical encoding of it reads as.
            let mut encoded = BytesMut::new();
            for (name, value) in pairs {
                encode_name_value(&mut encoded, name, value);
            }
            assert!(encoded.len() <= content.len());
            assert_eq!(
                &decode_name_values(&encoded).expect("re-encoded pairs"),
                pairs
            );
        }
    }
}

/// `data` as name-value pairs: when it decodes, the canonical encoding of
/// the pairs decodes to the same pairs and is never longer (the 4-byte
/// length form may have been used for short lengths).
pub fn name_values_round_trip(data: &[u8]) {
    let Ok(pairs) = decode_name_values(data) else {
        return;
    };
    let mut encoded = BytesMut::new();
    for (name, value) in &pairs {
        encode_name_value(&mut encoded, name, value);
    }
    assert!(encoded.len() <= data.len(), "canonical encoding is longer");
    assert_eq!(
        decode_name_values(&encoded).expect("canonical pairs"),
        pairs
    );
}

/// Builds name-value pairs from fuzz bytes. Each pair takes a 4-byte
/// header, name length (1 byte), value length (2 bytes) and a shape byte
/// (low 2 bits: a repeat count; the next 4: how far to shift the length
/// right, so most values are short), then fills the name and the value
/// cyclically from the bytes that follow, so short inputs reach lengths
/// past 127 and 65535.
pub fn pairs_from_bytes(data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    let mut rest = data;
    let mut total = 0usize;
    while let [name_len, hi, lo, repeat, tail @ ..] = rest {
        let name_len = usize::from(*name_len);
        let value_len = usize::from(u16::from_be_bytes([*hi, *lo]) >> ((repeat >> 2) & 15))
            * (1 + usize::from(repeat & 3));
        total += name_len + value_len;
        if total > MAX_PAIRS_BYTES {
            break;
        }
        let take = tail.len().min(name_len + value_len.min(64));
        let (material, tail) = tail.split_at(take);
        // By whole copies, not byte by byte: instrumented per-byte loops
        // made this the slowest part of the target.
        let fill = |len: usize, skip: usize| -> Vec<u8> {
            if material.is_empty() {
                return vec![b'x'; len];
            }
            let mut out = Vec::with_capacity(len + material.len());
            out.extend_from_slice(&material[skip % material.len()..]);
            while out.len() < len {
                out.extend_from_slice(material);
            }
            out.truncate(len);
            out
        };
        pairs.push((fill(name_len, 0), fill(value_len, name_len)));
        rest = tail;
    }
    pairs
}

/// encode_params, then each record checked and the stream decoded: the
/// same pairs, in order. php-fpm decodes each PARAMS record on its own, so
/// every pair that fits in one record must not be cut across two, and an
/// empty record (the end of the stream) must come last and only there.
pub fn params_round_trip(pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut buf = BytesMut::new();
    let request_id = 1 + (pairs.len() as u16 % 7);
    encode_params(
        &mut buf,
        request_id,
        pairs.iter().map(|(n, v)| (&n[..], &v[..])),
    );
    let records = split_records(&buf);
    let (last, body) = records.split_last().expect("at least the end record");
    assert!(
        last.content.is_empty(),
        "PARAMS stream not ended by an empty record"
    );
    let mut stream = Vec::new();
    let mut per_record = Vec::new();
    for rec in body {
        assert_eq!(rec.kind, RecordType::Params as u8);
        assert_eq!(rec.request_id, request_id);
        assert!(
            !rec.content.is_empty(),
            "empty PARAMS record before the end"
        );
        stream.extend_from_slice(&rec.content);
        if let Ok(pairs) = decode_name_values(&rec.content) {
            per_record.extend(pairs);
        }
    }
    let decoded = decode_name_values(&stream).expect("the PARAMS stream decodes");
    assert_eq!(decoded.len(), pairs.len());
    for ((name, value), (got_name, got_value)) in pairs.iter().zip(&decoded) {
        assert_eq!(&got_name[..], &name[..]);
        assert_eq!(&got_value[..], &value[..]);
    }
    let fits = |(n, v): &(Vec<u8>, Vec<u8>)| pair_len(n.len(), v.len()) <= MAX_CONTENT_LEN;
    if pairs.iter().all(fits) {
        assert_eq!(
            per_record, decoded,
            "a pair that fits a record was cut in two"
        );
    }

    // GET_VALUES: one record, holding the names that fit, as empty pairs.
    let names: Vec<&[u8]> = pairs.iter().map(|(n, _)| &n[..]).collect();
    let mut buf = BytesMut::new();
    encode_get_values(&mut buf, &names);
    let records = split_records(&buf);
    assert_eq!(records.len(), 1, "GET_VALUES is one record");
    let got = decode_name_values(&records[0].content).expect("GET_VALUES decodes");
    assert!(got.len() <= names.len());
    assert!(got.iter().all(|(_, v)| v.is_empty()));
}

/// Bytes of one pair's encoding.
fn pair_len(name: usize, value: usize) -> usize {
    let prefix = |len: usize| if len < 128 { 1 } else { 4 };
    prefix(name) + prefix(value) + name + value
}

/// encode_stream and encode_end_of_stream, read back with `parse` (as
/// STDOUT, a type `parse` accepts) and as raw records (as STDIN): the data
/// comes back whole, in records of at most 65535 bytes, none empty before
/// the end.
pub fn stream_round_trip(data: &[u8]) {
    // Repeat the input so streams of more than one record are common.
    let repeat = data.first().map_or(1, |&b| 1 + usize::from(b & 3));
    let data = data.repeat(repeat.min(MAX_PAIRS_BYTES / data.len().max(1)).max(1));

    let mut buf = BytesMut::new();
    encode_stream(&mut buf, RecordType::Stdout, 9, &data);
    encode_end_of_stream(&mut buf, RecordType::Stdout, 9);
    let mut got = Vec::new();
    let mut chunks = 0;
    let mut ended = false;
    while let Some((id, rec)) = record::parse(&mut buf).expect("own STDOUT records parse") {
        assert_eq!(id, 9);
        let Record::Stdout(chunk) = rec else {
            panic!("encode_stream(Stdout) gave {rec:?}");
        };
        assert!(!ended, "a record after the end of the stream");
        if chunk.is_empty() {
            ended = true;
        }
        assert!(chunk.len() <= MAX_CONTENT_LEN);
        got.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(buf.is_empty() && ended);
    assert_eq!(got, data);
    assert_eq!(chunks, data.len().div_ceil(MAX_CONTENT_LEN) + 1);

    let mut buf = BytesMut::new();
    encode_stream(&mut buf, RecordType::Stdin, 3, &data);
    let records = split_records(&buf);
    assert!(
        records
            .iter()
            .all(|r| r.kind == RecordType::Stdin as u8 && !r.content.is_empty())
    );
    assert_eq!(
        records
            .iter()
            .flat_map(|r| r.content.clone())
            .collect::<Vec<_>>(),
        data
    );
}

/// A record as the test sees it, padding dropped.
struct Raw {
    kind: u8,
    request_id: u16,
    content: Vec<u8>,
}

/// Splits encoder output into records, checking each header on the way.
fn split_records(mut bytes: &[u8]) -> Vec<Raw> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let header = bytes.first_chunk::<HEADER_LEN>().expect("a whole header");
        assert_eq!(header[0], 1, "version");
        let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let end = HEADER_LEN + content_len + usize::from(header[6]);
        assert!(bytes.len() >= end, "a record cut short");
        records.push(Raw {
            kind: header[1],
            request_id: u16::from_be_bytes([header[2], header[3]]),
            content: bytes[HEADER_LEN..HEADER_LEN + content_len].to_vec(),
        });
        bytes = &bytes[end..];
    }
    records
}

// ------------------------------------------------------------- the CGI head

/// The CGI head parser (`fastcgi/cgi.rs`): `data` is the start of STDOUT.
/// Checks what the HTTP side relies on, and that reading the stream in
/// pieces with `parse_head_from` gives what reading it whole gives.
pub fn cgi_head(data: &[u8]) {
    let whole = cgi::parse_head(data);
    match &whole {
        Ok(Some((head, body_start))) => {
            assert!(*body_start <= data.len() && *body_start <= MAX_HEAD_LEN);
            assert!(matches!(data[body_start - 1], b'\n'));
            assert!((100..=599).contains(&head.status));
            if let Some(reason) = &head.reason {
                // It goes into the HTTP/1.1 status line: HTAB, SP, VCHAR
                // and obs-text (RFC 9112 section 4) only.
                let wire_byte = |b: &u8| *b == b'\t' || (b' '..=b'~').contains(b) || *b >= 0x80;
                assert!(!reason.is_empty() && reason.as_bytes().iter().all(wire_byte));
            }
            for (name, _) in &head.headers {
                assert!(
                    !matches!(
                        name.as_str(),
                        "status"
                            | "connection"
                            | "keep-alive"
                            | "proxy-connection"
                            | "te"
                            | "trailer"
                            | "transfer-encoding"
                            | "upgrade"
                    ),
                    "{name} passed on"
                );
            }
            // The head alone parses to the same head: nothing after it counted.
            assert_eq!(
                cgi::parse_head(&data[..*body_start]),
                Ok(Some((head.clone(), *body_start)))
            );
        }
        Ok(None) => assert!(data.len() < MAX_HEAD_LEN),
        Err(CgiError::TooLong) => assert!(data.len() >= MAX_HEAD_LEN),
        Err(CgiError::Incomplete) => panic!("parse_head returned Incomplete"),
        Err(CgiError::BadHeaderLine(s) | CgiError::BadStatus(s)) => {
            // Quoted in logs: bounded.
            assert!(s.chars().count() <= 200);
        }
    }

    // The same bytes arriving in pieces, with the scan hint the exchange
    // passes (the length at the previous Ok(None)).
    let step = data.first().map_or(1, |&b| 1 + usize::from(b % 32));
    let mut scanned = 0;
    let mut len = 0;
    let pieces = loop {
        len = (len + step).min(data.len());
        match cgi::parse_head_from(&data[..len], scanned) {
            Ok(None) if len < data.len() => scanned = len,
            result => break result,
        }
    };
    match (&pieces, &whole) {
        // Reading in pieces can only stop earlier on a head that is all
        // there: then it is the same head.
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(None), Ok(None)) => {}
        _ => panic!("in pieces {pieces:?}, whole {whole:?}"),
    }
}

// ------------------------------------------------------ request path mapping

/// The request path mapping (`http/params.rs`): the first line of `data` is
/// a request target (path and query), the rest are header lines
/// `name: value`. Checks normalisation, the PATH_INFO split, routing, and,
/// when the target and headers are valid HTTP, the params built.
pub fn request_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("").trim_end_matches('\r');
    let path = target.split('?').next().unwrap_or("");
    normalized_path(path);
    for site in [site(None), site(Some("/index.php"))] {
        routed(path, &site);
    }

    // The params of a real request: only when hyper would have accepted it.
    let Ok(uri) = target.parse::<http::Uri>() else {
        return;
    };
    let mut request = http::Request::builder().uri(uri);
    for line in lines {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    built_params(&parts);
}

/// The site every mapping check uses: like the README's example.
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

/// normalize_path: refuses exactly the paths that climb above the root (or
/// hold NUL), and what it returns is absolute, has no `.`, `..` or empty
/// segment, and is a fixed point once its `%` are escaped again.
fn normalized_path(path: &str) {
    let decoded: Vec<u8> = percent_encoding::percent_decode(path.as_bytes()).collect();
    let expected = reference_normalize(&decoded);
    let got = params::normalize_path(path);
    match (&got, &expected) {
        (Ok(got), Some(expected)) if path.starts_with('/') => {
            assert_eq!(got, expected, "normalised differently from the reference");
        }
        (Err(_), None) => {}
        (Err(_), Some(_)) if !path.starts_with('/') => {}
        _ => panic!("normalize_path({path:?}) = {got:?}, reference {expected:?}"),
    }
    let Ok(out) = got else { return };
    assert!(out.starts_with(b"/"));
    assert!(!out.contains(&0));
    let inner = out.strip_suffix(b"/").unwrap_or(&out);
    for segment in inner.split(|&b| b == b'/').skip(1) {
        assert!(
            !matches!(segment, b"" | b"." | b".."),
            "segment {segment:?} left in {out:?}"
        );
    }
    // Normalising again (after escaping '%', which was decoded once) changes nothing.
    let mut again = String::new();
    for &b in &out {
        match b {
            b'%' => again.push_str("%25"),
            b if b.is_ascii() => again.push(char::from(b)),
            b => again.push_str(&format!("%{b:02X}")),
        }
    }
    assert_eq!(params::normalize_path(&again).as_ref(), Ok(&out));
}

/// An independent normalisation: a stack of segments; None where a `..`
/// would leave the root or a NUL is there.
fn reference_normalize(decoded: &[u8]) -> Option<Vec<u8>> {
    if decoded.contains(&0) {
        return None;
    }
    let mut stack: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = decoded.split(|&b| b == b'/').skip(1).collect();
    for segment in &segments {
        match *segment {
            b"" | b"." => {}
            b".." => {
                stack.pop()?;
            }
            s => stack.push(s),
        }
    }
    let mut out: Vec<u8> = stack.iter().flat_map(|s| [&b"/"[..], s].concat()).collect();
    let dir = matches!(segments.last(), None | Some(&(b"" | b"." | b"..")));
    if dir || out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

/// route: a script is a normalised path that ends in a `.php` segment (the
/// first one), PATH_INFO the rest of the path, and SCRIPT_FILENAME stays
/// under the document root.
fn routed(path: &str, site: &Site) {
    match params::route(path, site) {
        Route::BadRequest(why) => {
            assert!(!why.is_empty());
            assert!(params::normalize_path(path).is_err());
        }
        Route::NotFound => {
            assert!(site.front_controller.is_none());
            let uri = params::normalize_path(path).expect("a 404 path normalises");
            assert!(params::split_path_info(&uri).is_none() && !uri.ends_with(b"/"));
        }
        Route::Script {
            script_name,
            path_info,
            fallback,
        } => {
            let uri = params::normalize_path(path).expect("a routed path normalises");
            assert!(script_name.starts_with(b"/"));
            assert!(path_info.is_empty() || path_info.starts_with(b"/"));
            for segment in script_name.split(|&b| b == b'/') {
                assert!(segment != b"..", "'..' in SCRIPT_NAME {script_name:?}");
            }
            match params::split_path_info(&uri) {
                Some(end) => {
                    assert_eq!(script_name, uri[..end]);
                    assert_eq!(path_info, uri[end..]);
                    assert!(fallback.is_none());
                    let last = script_name.rsplit(|&b| b == b'/').next().unwrap_or(b"");
                    assert!(last.len() > 4 && last[last.len() - 4..].eq_ignore_ascii_case(b".php"));
                    // The first such segment: none before it ends in .php.
                    let before = &script_name[..script_name.len() - last.len()];
                    assert_eq!(params::split_path_info(before), None);
                }
                None if uri.ends_with(b"/") => {
                    assert_eq!(script_name, [&uri[..], site.index.as_bytes()].concat());
                    assert!(path_info.is_empty());
                }
                None => {
                    let fc = site.front_controller.as_deref().expect("front controller");
                    assert_eq!(script_name, fc.as_bytes());
                }
            }
        }
    }
}

/// build_params on a valid request: every header becomes at most one
/// `HTTP_*` param whose name has only `[A-Z0-9_]` (PHP turns `.`, ` ` and
/// `[` into `_`, so any other byte could forge another variable), never
/// HTTP_PROXY; and the params survive the PARAMS encoding unchanged.
fn built_params(parts: &http::request::Parts) {
    let conn = ConnInfo::plain(
        "127.0.0.9:50000".parse().expect("address"),
        "127.0.0.1:8080".parse().expect("address"),
    );
    let path = parts.uri.path();
    let (script_name, path_info) = match params::route(path, &site(None)) {
        Route::Script {
            script_name,
            path_info,
            ..
        } => (script_name, path_info),
        _ => (b"/index.php".to_vec(), Vec::new()),
    };
    // A param too long for one FastCGI record refuses the request (431):
    // nothing is built, nothing to check.
    let Ok(p) = params::build_params(parts, &script_name, &path_info, Some(0), &conn, &site(None))
    else {
        return;
    };
    let filename = p.get("SCRIPT_FILENAME").expect("SCRIPT_FILENAME");
    assert_eq!(filename, [&b"/var/www/html"[..], &script_name].concat());

    let mut seen = std::collections::HashSet::new();
    for (name, _) in p.iter() {
        let Some(rest) = name.strip_prefix(b"HTTP_") else {
            continue;
        };
        assert!(
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "header param {:?}",
            String::from_utf8_lossy(name)
        );
        assert!(name != b"HTTP_PROXY", "HTTP_PROXY passed on");
        assert!(seen.insert(name.to_vec()), "two params named {name:?}");
    }

    let pairs: Vec<(Vec<u8>, Vec<u8>)> = p.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    params_round_trip(&pairs);
}

// ------------------------------------------------------------------- config

/// The config loader (`config/`): `data` as YAML text. Any text gives a
/// config or errors, never a panic; each error says what is wrong and at a
/// line of the file; a config holds what `Config`'s fields promise.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML breaks lines at "\n", "\r\n" and a lone "\r" (YAML 1.2, 5.4);
    // an error may point one line past the last.
    let lines =
        text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count() + 2;
    match Config::from_yaml(text) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "Err without an error");
            for error in &errors.0 {
                assert!(!error.message.is_empty(), "an empty error message");
                if let Some(line) = error.line {
                    assert!(
                        (1..=lines).contains(&line),
                        "line {line} of {lines}: {error}"
                    );
                }
            }
        }
        Ok(config) => {
            assert!(!config.listen.is_empty());
            assert!(!config.backends.is_empty());
            let root = &config.document_root;
            assert!(root.starts_with('/') && (root == "/" || !root.ends_with('/')));
            assert!(config.body_buffer_size > 0);
            let t = config.timeouts;
            for d in [
                t.connect,
                t.send,
                t.read,
                t.queue,
                t.idle,
                t.client_header,
                t.client_idle,
            ] {
                assert!(!d.is_zero());
            }
            let mut names = std::collections::HashSet::new();
            for b in &config.backends {
                assert!(names.insert(&b.name), "backend {} twice", b.name);
                assert!((1..=1000).contains(&b.weight));
                assert_ne!(b.max_conns, Some(0));
            }
            assert!(config.health.rise >= 1 && config.health.fall >= 1);
            for (name, _) in &config.params {
                assert!(!name.is_empty() && !name.contains(['=', '\0']));
            }
            if let Some(fc) = &config.front_controller {
                assert!(fc.starts_with('/') && fc.ends_with(".php"));
            }
            assert_ne!(config.admin.token.as_deref(), Some(""));
            // What validated once validates again from the same text.
            assert_eq!(Config::from_yaml(text).as_ref(), Ok(&config));
        }
    }
}

// ---------------------------------------------------------------- save paths

/// The save path parser (`save_path/`): the first line of `data` is a
/// `session.save_handler`, the second a `session.save_path`, the next ones
/// `name=value` ini settings of the node (its hashing settings).
///
/// Checks: parsing is deterministic and a store is the same as itself;
/// redaction is idempotent and keeps the store the same (fpmlb digests
/// clear credentials, the probe sends them redacted: both must compare
/// equal); a store with an extension has servers.
pub fn save_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let handler_name = lines.next().unwrap_or("").trim();
    let path = lines.next().unwrap_or("");
    let ini: Ini = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), Some(v.trim().to_string())))
        .collect();
    let handler = Handler::from_name(handler_name);

    let redacted = save_path::redact_save_path(handler_name, path);
    assert_eq!(
        save_path::redact_save_path(handler_name, &redacted),
        redacted,
        "redaction is not idempotent"
    );
    let _ = save_path::redis_auth(&handler, path);

    let Ok(spec) = save_path::parse_with(&handler, path, &ini) else {
        return;
    };
    assert_eq!(
        save_path::parse_with(&handler, path, &ini).as_ref(),
        Ok(&spec)
    );
    assert!(spec.same_store(&spec));
    if handler.extension().is_some() {
        assert!(!spec.servers.is_empty());
    }
    let _ = (spec.servers_text(), save_path::warnings(&spec));
    for server in &spec.servers {
        let _ = server.to_string();
    }
    if known_redaction_divergence(&handler, path, &spec) {
        return;
    }
    match save_path::parse_with(&handler, &redacted, &ini) {
        Ok(seen) => assert!(
            seen.same_store(&spec),
            "the redacted path is another store:\n{spec:?}\n{seen:?}"
        ),
        Err(e) => panic!("the redacted path {redacted:?} does not parse: {e}"),
    }
}

/// Save paths whose redacted form is known to read as another store, none
/// of which a working node can have (found by this target; left as they
/// are, listed so the check stays strict for every other path):
/// - a server name with bytes no host name has: redaction reads '@' and
///   '?' in an entry as credentials;
/// - a relative `files` path with '@' before its first '/' (`u:p@x`);
/// - a `memcached` path with '?' (libmemcached has no query syntax) or
///   with '@' in a `PERSISTENT=` id;
/// - a `rediscluster` key that is a seed and names a credential
///   (`seed[auth[]=`): a seed to the parser, a credential to the redaction;
/// - a '#': PHP's URL parser cuts the authority there (a fragment), the
///   redaction does not, so `tcp://u#x:p@h` is host `u` to one and
///   credentials to the other; `tcp://user:pa#ss@h` is no valid URL for
///   phpredis either.
fn known_redaction_divergence(handler: &Handler, path: &str, spec: &save_path::StoreSpec) -> bool {
    let plausible = |s: &save_path::Server| {
        let host_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._:".contains(&b);
        match s.scheme.as_str() {
            "unix" => !s.host.contains(['?', '@', ',', ' ']),
            _ => s.host.bytes().all(host_byte),
        }
    };
    let persistent_id_at = path
        .trim()
        .strip_prefix("PERSISTENT=")
        .is_some_and(|rest| rest.split(' ').next().unwrap_or("").contains('@'));
    let credential_seed = path.split('&').any(|part| {
        let key = part.split('=').next().unwrap_or("").to_ascii_lowercase();
        key.starts_with("seed")
            && ["auth", "user", "pass", "secret", "token"]
                .iter()
                .any(|w| key.contains(w))
    });
    *handler == Handler::Files
        || (*handler == Handler::Memcached && (path.contains('?') || persistent_id_at))
        || (*handler == Handler::RedisCluster && credential_seed)
        || path.contains('#')
        || !spec.servers.iter().all(plausible)
}
