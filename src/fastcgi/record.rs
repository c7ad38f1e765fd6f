//! FastCGI 1.0 record layer (FastCGI Specification, Open Market, 1996).
//!
//! This module owns the byte format of the FastCGI connection between the
//! balancer (the "web server" side) and php-fpm (the "application" side):
//! the 8-byte record header, the request records we send (BEGIN_REQUEST,
//! PARAMS, STDIN, ABORT_REQUEST, GET_VALUES), the response records php-fpm
//! sends back (STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE)
//! and the name-value pair encoding used by PARAMS and GET_VALUES.
//!
//! It does no I/O, so the connection code can own buffering, timeouts and
//! request-id bookkeeping while every framing rule is unit-tested here
//! without sockets. As in tokio-rs/mini-redis `frame.rs`, parsing first
//! checks that a whole record is buffered: a partial record is the normal
//! outcome of a short read (`Ok(None)`), not an error, and consumes nothing.
//!
//! Encoders append to a caller-owned [`BytesMut`] so a whole request head
//! (BEGIN_REQUEST + PARAMS + small STDIN) can be built in one buffer and
//! written with one syscall. They never write padding: padding only exists
//! for 8-byte alignment, which php-fpm does not need. The parser honours
//! whatever padding the peer sends (php-fpm pads every record to a multiple
//! of 8 bytes).

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the fixed record header: version, type, requestId (2), contentLength (2),
/// paddingLength, reserved.
pub const HEADER_LEN: usize = 8;

/// Largest content a single record can carry, because contentLength is a 16-bit field.
pub const MAX_CONTENT_LEN: usize = 65535;

/// The Responder role: the application gets the request and produces the whole HTTP
/// response. It is the role a web server uses for ordinary PHP requests (php-fpm also
/// knows Authorizer and Filter, which the balancer never uses).
pub const FCGI_RESPONDER: u16 = 1;

/// The only protocol version FastCGI has ever had.
const FCGI_VERSION_1: u8 = 1;

/// BEGIN_REQUEST flag bit asking the application to keep the connection open after
/// the request, so it can be reused for the next one.
const FCGI_KEEP_CONN: u8 = 1;

/// Size of FCGI_BeginRequestBody: role (2), flags (1), reserved (5).
const BEGIN_REQUEST_BODY_LEN: usize = 8;

/// Size of FCGI_EndRequestBody: appStatus (4), protocolStatus (1), reserved (3).
const END_REQUEST_BODY_LEN: usize = 8;

/// Largest name or value length the pair encoding can express: the 4-byte form keeps
/// 31 bits for the length because the top bit marks the form itself.
const MAX_NAME_VALUE_LEN: usize = 0x7FFF_FFFF;

/// Lengths below this fit the 1-byte form (top bit clear).
const SHORT_NAME_VALUE_LEN: usize = 0x80;

/// Largest size of the two length prefixes of one pair (two 4-byte forms).
const MAX_PAIR_PREFIX_LEN: usize = 8;

/// Record types of FastCGI 1.0 (spec section 8), with their wire values.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// Web server → app: starts a request (role and keep-conn flag).
    BeginRequest = 1,
    /// Web server → app: asks the app to abandon a request.
    AbortRequest = 2,
    /// App → web server: the request is finished.
    EndRequest = 3,
    /// Web server → app: stream of CGI/1.1 environment name-value pairs.
    Params = 4,
    /// Web server → app: stream carrying the request body.
    Stdin = 5,
    /// App → web server: stream carrying the CGI response (head and body).
    Stdout = 6,
    /// App → web server: stream carrying error output.
    Stderr = 7,
    /// Web server → app: extra data stream of the Filter role.
    Data = 8,
    /// Web server → app: management query for application variables.
    GetValues = 9,
    /// App → web server: answer to [`RecordType::GetValues`].
    GetValuesResult = 10,
    /// App → web server: the app did not understand a management record type.
    UnknownType = 11,
}

/// The protocolStatus of an END_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// FCGI_REQUEST_COMPLETE (0): normal end of the request.
    RequestComplete,
    /// FCGI_CANT_MPX_CONN (1): the app refused a second concurrent request on one connection.
    CantMpxConn,
    /// FCGI_OVERLOADED (2): the app ran out of some resource and rejected the request.
    Overloaded,
    /// FCGI_UNKNOWN_ROLE (3): the app does not implement the role asked for.
    UnknownRole,
    /// Any other value, which the spec does not define.
    Other(u8),
}

impl ProtocolStatus {
    fn from_wire(byte: u8) -> Self {
        match byte {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }
}

/// A record received from the application (php-fpm) side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A piece of the STDOUT stream; an empty payload marks the end of the stream.
    /// php-fpm does not send that marker: it follows the last data with END_REQUEST.
    Stdout(Bytes),
    /// A piece of the STDERR stream; an empty payload marks the end of the stream.
    Stderr(Bytes),
    /// The request is over. Any content beyond the 8-byte body is ignored.
    EndRequest {
        /// The application's exit status (php-fpm always sends 0).
        app_status: u32,
        /// Whether the request completed or why it was rejected.
        protocol_status: ProtocolStatus,
    },
    /// Answer to GET_VALUES: the variables the app knows, with their values.
    GetValuesResult(Vec<(Bytes, Bytes)>),
    /// The app did not understand a management record of this type.
    UnknownType(u8),
}

/// A violation of the FastCGI protocol by the application. The connection cannot be
/// trusted to be in sync any more and must be closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The header's version byte is not 1.
    #[error("unsupported FastCGI protocol version {0} (only version 1 exists)")]
    UnsupportedVersion(u8),
    /// A record type an application must not send to a web server (BEGIN_REQUEST,
    /// ABORT_REQUEST, PARAMS, STDIN, DATA, GET_VALUES) or a type FastCGI 1.0 does not define.
    #[error("FastCGI record type {0} is not one an application may send to a web server")]
    UnexpectedType(u8),
    /// An END_REQUEST record whose content is shorter than its 8-byte body.
    #[error("FastCGI END_REQUEST record content is shorter than its 8-byte body")]
    BadEndRequest,
    /// An UNKNOWN_TYPE record with no content, so without the type byte it reports.
    #[error("FastCGI UNKNOWN_TYPE record has no content")]
    BadUnknownType,
    /// A name-value pair whose lengths run past the end of the record content.
    #[error("malformed FastCGI name-value pair: lengths run past the end of the content")]
    BadNameValue,
    /// A record for another request than the one in flight on the connection
    /// (a record left over from an earlier exchange, or a confused backend).
    /// Checked by the exchange, which knows the request id it sent.
    #[error("FastCGI record for request {got} while request {expected} is in flight")]
    UnexpectedRequestId { got: u16, expected: u16 },
    /// An END_REQUEST that refuses the request (overloaded, cannot
    /// multiplex, ...) after the response's output began: the script ran,
    /// so this is no refusal. Checked by the exchange.
    #[error("FastCGI END_REQUEST refused the request ({0}) after its output began")]
    RefusedAfterOutput(&'static str),
}

/// The record types an application may send to a web server; any other type is a
/// protocol error when parsing.
#[derive(Clone, Copy)]
enum AppType {
    EndRequest,
    Stdout,
    Stderr,
    GetValuesResult,
    UnknownType,
}

impl AppType {
    fn from_wire(byte: u8) -> Option<Self> {
        const END_REQUEST: u8 = RecordType::EndRequest as u8;
        const STDOUT: u8 = RecordType::Stdout as u8;
        const STDERR: u8 = RecordType::Stderr as u8;
        const GET_VALUES_RESULT: u8 = RecordType::GetValuesResult as u8;
        const UNKNOWN_TYPE: u8 = RecordType::UnknownType as u8;
        match byte {
            END_REQUEST => Some(Self::EndRequest),
            STDOUT => Some(Self::Stdout),
            STDERR => Some(Self::Stderr),
            GET_VALUES_RESULT => Some(Self::GetValuesResult),
            UNKNOWN_TYPE => Some(Self::UnknownType),
            _ => None,
        }
    }
}

/// The type byte and content length of the record at the front of `buf`
/// when all of it (content and padding) is there; only the lengths are
/// read, nothing is checked.
pub fn whole_at_front(buf: &[u8]) -> Option<(u8, usize)> {
    let header = buf.first_chunk::<HEADER_LEN>()?;
    let content = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let padding = usize::from(header[6]);
    (buf.len() >= HEADER_LEN + content + padding).then_some((header[1], content))
}

/// Whether `buf` holds the start of a response record (STDOUT, STDERR or
/// END_REQUEST) of request `id`: a header is enough. Walks headers only,
/// stops at the first incomplete one.
pub fn holds_output_for(buf: &[u8], id: u16) -> bool {
    let mut at = 0usize;
    while let Some(header) = buf.get(at..).and_then(<[u8]>::first_chunk::<HEADER_LEN>) {
        let kind = header[1];
        let rid = u16::from_be_bytes([header[2], header[3]]);
        let output = kind == RecordType::Stdout as u8
            || kind == RecordType::Stderr as u8
            || kind == RecordType::EndRequest as u8;
        if rid == id && output {
            return true;
        }
        let content = usize::from(u16::from_be_bytes([header[4], header[5]]));
        at += HEADER_LEN + content + usize::from(header[6]);
    }
    false
}

/// Parse one complete record from the front of `buf`, consuming it (content and padding).
/// Ok(None) = not enough bytes yet (nothing consumed). Returns (request_id, record).
///
/// Header errors (version, type, END_REQUEST too short) are reported as soon as the
/// 8 header bytes are buffered, without waiting for the content. On `Err` nothing is
/// consumed either, but the connection is out of sync and must be closed.
///
/// STDOUT/STDERR payloads are split off `buf` without copying, so they share its
/// allocation until dropped. A record is at most `HEADER_LEN + MAX_CONTENT_LEN + 255`
/// bytes, which bounds how far `buf` must grow before a record completes.
///
/// Request ids are returned as received: checking that they belong to a request in
/// flight (or are 0 for GET_VALUES_RESULT/UNKNOWN_TYPE) is the caller's job.
pub fn parse(buf: &mut BytesMut) -> Result<Option<(u16, Record)>, ProtocolError> {
    let Some(
        &[
            version,
            kind,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            padding,
            _reserved,
        ],
    ) = buf.first_chunk::<HEADER_LEN>()
    else {
        return Ok(None);
    };
    if version != FCGI_VERSION_1 {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let app_type = AppType::from_wire(kind).ok_or(ProtocolError::UnexpectedType(kind))?;
    let request_id = u16::from_be_bytes([id_hi, id_lo]);
    let content_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    match app_type {
        AppType::EndRequest if content_len < END_REQUEST_BODY_LEN => {
            return Err(ProtocolError::BadEndRequest);
        }
        AppType::UnknownType if content_len == 0 => {
            return Err(ProtocolError::BadUnknownType);
        }
        _ => {}
    }
    let padding = usize::from(padding);
    if buf.len() < HEADER_LEN + content_len + padding {
        return Ok(None);
    }

    // The whole record is buffered from here on, so the slicing below is in bounds.
    let content = &buf[HEADER_LEN..HEADER_LEN + content_len];
    let record = match app_type {
        AppType::EndRequest => {
            let app_status = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
            let protocol_status = ProtocolStatus::from_wire(content[4]);
            buf.advance(HEADER_LEN + content_len + padding);
            Record::EndRequest {
                app_status,
                protocol_status,
            }
        }
        AppType::UnknownType => {
            let unknown = content[0];
            buf.advance(HEADER_LEN + content_len + padding);
            Record::UnknownType(unknown)
        }
        AppType::GetValuesResult => {
            // Validate before consuming so an error leaves `buf` untouched.
            let ranges = scan_name_values(content)?;
            let content = take_content(buf, content_len, padding);
            Record::GetValuesResult(slice_pairs(&content, ranges))
        }
        AppType::Stdout => Record::Stdout(take_content(buf, content_len, padding)),
        AppType::Stderr => Record::Stderr(take_content(buf, content_len, padding)),
    };
    Ok(Some((request_id, record)))
}

/// Consumes a fully buffered record and returns its content without copying.
fn take_content(buf: &mut BytesMut, content_len: usize, padding: usize) -> Bytes {
    buf.advance(HEADER_LEN);
    let content = buf.split_to(content_len).freeze();
    buf.advance(padding);
    content
}

/// Appends a BEGIN_REQUEST record starting request `request_id` in `role`
/// (normally [`FCGI_RESPONDER`]). With `keep_conn` the application keeps the
/// connection open after END_REQUEST; without it, it closes the connection.
pub fn encode_begin_request(buf: &mut BytesMut, request_id: u16, role: u16, keep_conn: bool) {
    buf.reserve(HEADER_LEN + BEGIN_REQUEST_BODY_LEN);
    put_header(
        buf,
        RecordType::BeginRequest,
        request_id,
        BEGIN_REQUEST_BODY_LEN as u16,
    );
    let [role_hi, role_lo] = role.to_be_bytes();
    let flags = if keep_conn { FCGI_KEEP_CONN } else { 0 };
    buf.put_slice(&[role_hi, role_lo, flags, 0, 0, 0, 0, 0]);
}

/// Appends an ABORT_REQUEST record for `request_id` (e.g. the HTTP client went away).
/// The application still answers with END_REQUEST.
pub fn encode_abort_request(buf: &mut BytesMut, request_id: u16) {
    put_header(buf, RecordType::AbortRequest, request_id, 0);
}

/// Appends PARAMS records holding all pairs, followed by the empty PARAMS record
/// that ends the stream.
///
/// Each record holds only whole pairs, and a new record starts when the next pair
/// would not fit. The spec lets a pair span records, but php-fpm decodes each PARAMS
/// record on its own (`fcgi_get_params` in php-src main/fastcgi.c) and drops the
/// connection on a pair cut in two; nginx never cuts one either, as it sends all
/// params in a single record. A single pair longer than
/// `MAX_CONTENT_LEN` cannot fit any record; it is still sent, spanning records as the
/// spec allows, but php-fpm will reject the request, so callers should bound header
/// sizes (nginx's defaults keep a header line under 8 KiB). Names and values longer
/// than 2^31-1 bytes cannot be encoded and are truncated (see [`encode_name_value`]).
///
/// The pairs are written straight into `buf` behind a placeholder header that is
/// back-patched with the content length once the record is full, so there is no
/// intermediate buffer. The empty placeholder left open at the end, if any, is the
/// end-of-stream record.
pub fn encode_params<'a, I>(buf: &mut BytesMut, request_id: u16, params: I)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut header_at = open_record(buf, RecordType::Params, request_id);
    for (name, value) in params {
        let (name, value) = (clamp_name_value(name), clamp_name_value(value));
        let (prefix, prefix_len) = pair_prefix(name.len(), value.len());
        let pair_len = prefix_len + name.len() + value.len();
        let used = buf.len() - header_at - HEADER_LEN;
        if used > 0 && used + pair_len > MAX_CONTENT_LEN {
            close_record(buf, header_at);
            header_at = open_record(buf, RecordType::Params, request_id);
        }
        buf.reserve(pair_len);
        for piece in [&prefix[..prefix_len], name, value] {
            header_at = put_spanning(buf, request_id, header_at, piece);
        }
    }
    if buf.len() > header_at + HEADER_LEN {
        close_record(buf, header_at);
        put_header(buf, RecordType::Params, request_id, 0);
    }
    // Otherwise the open placeholder is empty and already is the end-of-stream record.
}

/// Appends `piece` to the PARAMS record open at `header_at`, closing it and opening
/// more records when it fills up. Returns where the record now open starts. Only an
/// oversized pair (see [`encode_params`]) ever needs more than one record here.
fn put_spanning(buf: &mut BytesMut, request_id: u16, mut header_at: usize, piece: &[u8]) -> usize {
    let mut rest = piece;
    while !rest.is_empty() {
        let room = MAX_CONTENT_LEN - (buf.len() - header_at - HEADER_LEN);
        if room == 0 {
            close_record(buf, header_at);
            header_at = open_record(buf, RecordType::Params, request_id);
            continue;
        }
        let (now, later) = rest.split_at(room.min(rest.len()));
        buf.put_slice(now);
        rest = later;
    }
    header_at
}

/// Appends `data` as records of `kind` (Stdin normally), split at MAX_CONTENT_LEN;
/// appends nothing for empty data (an empty record would end the stream).
///
/// `kind` should be a stream type (Stdin, Params, Data); the caller picks it.
pub fn encode_stream(buf: &mut BytesMut, kind: RecordType, request_id: u16, data: &[u8]) {
    buf.reserve(data.len() + data.len().div_ceil(MAX_CONTENT_LEN) * HEADER_LEN);
    for chunk in data.chunks(MAX_CONTENT_LEN) {
        put_header(buf, kind, request_id, content_len_u16(chunk.len()));
        buf.put_slice(chunk);
    }
}

/// Appends the empty record that ends a stream of `kind`.
pub fn encode_end_of_stream(buf: &mut BytesMut, kind: RecordType, request_id: u16) {
    put_header(buf, kind, request_id, 0);
}

/// GET_VALUES for e.g. FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS (request id 0).
///
/// Writes exactly one record, because GET_VALUES is not a stream. A name that no
/// longer fits in the record's 65535 bytes is left out: the answer has to fit in one
/// record as well. php-fpm reads a GET_VALUES where it would read the next
/// request's first record, so it answers once its worker is back for one: fpmlb
/// sends one behind each request to learn when the script has ended (see
/// `exchange::encode_ready_check`). php-fpm 8.2 keeps the connection open after
/// answering; older versions' source closes it.
pub fn encode_get_values(buf: &mut BytesMut, names: &[&[u8]]) {
    let header_at = open_record(buf, RecordType::GetValues, 0);
    for &name in names {
        let name = clamp_name_value(name);
        let (_, prefix_len) = pair_prefix(name.len(), 0);
        let used = buf.len() - header_at - HEADER_LEN;
        if used + prefix_len + name.len() <= MAX_CONTENT_LEN {
            encode_name_value(buf, name, b"");
        }
    }
    close_record(buf, header_at);
}

/// FastCGI name-value pair length encoding (1 byte if < 128, else 4 bytes with the
/// high bit set), followed by the name and value bytes.
///
/// The 4-byte form holds 31 bits, so names and values longer than 2^31-1 bytes
/// cannot be encoded; they are truncated to that length so the output stays
/// well-formed instead of corrupting the stream. Params come from HTTP request
/// headers, which the HTTP server bounds far below that.
pub fn encode_name_value(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    let (name, value) = (clamp_name_value(name), clamp_name_value(value));
    let (prefix, prefix_len) = pair_prefix(name.len(), value.len());
    buf.reserve(prefix_len + name.len() + value.len());
    buf.put_slice(&prefix[..prefix_len]);
    buf.put_slice(name);
    buf.put_slice(value);
}

/// Decodes the name-value pairs of a PARAMS, GET_VALUES or GET_VALUES_RESULT content.
///
/// Copies `content` once; the returned names and values share that copy.
pub fn decode_name_values(content: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let ranges = scan_name_values(content)?;
    Ok(slice_pairs(&Bytes::copy_from_slice(content), ranges))
}

/// Where the name and the value of each pair lie in a record content.
type PairRanges = Vec<(Range<usize>, Range<usize>)>;

/// Finds the name and value of each pair in `content`, checking every length.
fn scan_name_values(content: &[u8]) -> Result<PairRanges, ProtocolError> {
    let mut pairs = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (name_len, after) = read_name_value_len(rest)?;
        let (value_len, after) = read_name_value_len(after)?;
        let start = content.len() - after.len();
        let name_end = start
            .checked_add(name_len)
            .ok_or(ProtocolError::BadNameValue)?;
        let value_end = name_end
            .checked_add(value_len)
            .filter(|&end| end <= content.len())
            .ok_or(ProtocolError::BadNameValue)?;
        pairs.push((start..name_end, name_end..value_end));
        rest = &content[value_end..];
    }
    Ok(pairs)
}

/// Reads one length (1- or 4-byte form) from the front of `bytes`.
fn read_name_value_len(bytes: &[u8]) -> Result<(usize, &[u8]), ProtocolError> {
    match bytes {
        [short, rest @ ..] if short & 0x80 == 0 => Ok((usize::from(*short), rest)),
        [b3, b2, b1, b0, rest @ ..] => {
            let len = u32::from_be_bytes([b3 & 0x7F, *b2, *b1, *b0]);
            let len = usize::try_from(len).map_err(|_| ProtocolError::BadNameValue)?;
            Ok((len, rest))
        }
        _ => Err(ProtocolError::BadNameValue),
    }
}

/// Turns scanned ranges into zero-copy slices of `content`.
fn slice_pairs(content: &Bytes, ranges: PairRanges) -> Vec<(Bytes, Bytes)> {
    ranges
        .into_iter()
        .map(|(name, value)| (content.slice(name), content.slice(value)))
        .collect()
}

/// The length prefixes of a pair, and how many bytes of the array they use.
fn pair_prefix(name_len: usize, value_len: usize) -> ([u8; MAX_PAIR_PREFIX_LEN], usize) {
    let mut prefix = [0; MAX_PAIR_PREFIX_LEN];
    let mut at = 0;
    for len in [name_len, value_len] {
        if len < SHORT_NAME_VALUE_LEN {
            // Lossless: len < 128.
            prefix[at] = len as u8;
            at += 1;
        } else {
            // Lossless after clamping to 31 bits; the top bit marks the 4-byte form.
            let long = (len.min(MAX_NAME_VALUE_LEN) as u32) | 0x8000_0000;
            prefix[at..at + 4].copy_from_slice(&long.to_be_bytes());
            at += 4;
        }
    }
    (prefix, at)
}

/// Cuts a name or value to the longest length the pair encoding can express.
fn clamp_name_value(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_NAME_VALUE_LEN)]
}

/// Appends a record header with no padding.
fn put_header(buf: &mut BytesMut, kind: RecordType, request_id: u16, content_len: u16) {
    let [id_hi, id_lo] = request_id.to_be_bytes();
    let [len_hi, len_lo] = content_len.to_be_bytes();
    buf.put_slice(&[
        FCGI_VERSION_1,
        kind as u8,
        id_hi,
        id_lo,
        len_hi,
        len_lo,
        0,
        0,
    ]);
}

/// Appends a header with content length 0 to be back-patched by [`close_record`];
/// returns its offset in `buf`.
fn open_record(buf: &mut BytesMut, kind: RecordType, request_id: u16) -> usize {
    let header_at = buf.len();
    put_header(buf, kind, request_id, 0);
    header_at
}

/// Writes the content length of the record opened at `header_at`, which extends to
/// the end of `buf`.
fn close_record(buf: &mut BytesMut, header_at: usize) {
    let content_len = content_len_u16(buf.len() - header_at - HEADER_LEN);
    buf[header_at + 4..header_at + 6].copy_from_slice(&content_len.to_be_bytes());
}

/// Converts a content length the encoders have kept within `MAX_CONTENT_LEN`.
fn content_len_u16(len: usize) -> u16 {
    debug_assert!(len <= MAX_CONTENT_LEN, "record content of {len} bytes");
    u16::try_from(len).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of a request is found by its header alone, past records of
    /// other requests (a readiness answer, id 0) and whatever their size.
    #[test]
    fn output_of_a_request_is_found_by_its_header() {
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::Stdout, 0, b"not ours, id 0");
        assert!(!holds_output_for(&buf, 2));
        encode_stream(&mut buf, RecordType::Stdin, 2, b"not output");
        assert!(!holds_output_for(&buf, 2));
        let mut with_ours = buf.clone();
        encode_stream(&mut with_ours, RecordType::Stderr, 2, b"warning");
        // Cut inside the record's content: its header is enough.
        assert!(holds_output_for(&with_ours[..with_ours.len() - 3], 2));
        assert!(!holds_output_for(&with_ours, 3));
        assert!(!holds_output_for(&with_ours[..with_ours.len() - 15], 2));
        assert!(!holds_output_for(&[], 2));
    }

    /// A raw record as a test sees it, padding dropped.
    #[derive(Debug, PartialEq, Eq)]
    struct Raw {
        kind: u8,
        request_id: u16,
        content: Vec<u8>,
    }

    /// Splits encoder output (or any record stream) into raw records.
    fn raw_records(mut bytes: &[u8]) -> Vec<Raw> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            assert!(bytes.len() >= HEADER_LEN, "truncated header");
            assert_eq!(bytes[0], FCGI_VERSION_1);
            let content_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
            let padding = usize::from(bytes[6]);
            let end = HEADER_LEN + content_len;
            records.push(Raw {
                kind: bytes[1],
                request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
                content: bytes[HEADER_LEN..end].to_vec(),
            });
            bytes = &bytes[end + padding..];
        }
        records
    }

    /// Builds an app-side record the way a peer would, with explicit padding.
    fn app_record(kind: u8, request_id: u16, content: &[u8], padding: u8) -> Vec<u8> {
        let mut out = vec![FCGI_VERSION_1, kind];
        out.extend_from_slice(&request_id.to_be_bytes());
        out.extend_from_slice(&u16::try_from(content.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&[padding, 0]);
        out.extend_from_slice(content);
        out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
        out
    }

    /// php-fpm style: padded to a multiple of 8.
    fn php_record(kind: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
        let padding = (8 - content.len() % 8) % 8;
        app_record(kind, request_id, content, u8::try_from(padding).unwrap())
    }

    fn end_request_body(app_status: u32, protocol_status: u8) -> Vec<u8> {
        let mut body = app_status.to_be_bytes().to_vec();
        body.extend_from_slice(&[protocol_status, 0, 0, 0]);
        body
    }

    fn parse_all(bytes: &[u8]) -> Vec<(u16, Record)> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(record) = parse(&mut buf).unwrap() {
            out.push(record);
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    /// Concatenated content of a PARAMS stream, checking it is well-terminated.
    fn params_stream(records: &[Raw], request_id: u16) -> Vec<u8> {
        let (last, body) = records.split_last().unwrap();
        assert_eq!(
            last,
            &Raw {
                kind: RecordType::Params as u8,
                request_id,
                content: vec![],
            }
        );
        let mut stream = Vec::new();
        for record in body {
            assert_eq!(record.kind, RecordType::Params as u8);
            assert_eq!(record.request_id, request_id);
            assert!(!record.content.is_empty(), "empty PARAMS mid-stream");
            assert!(record.content.len() <= MAX_CONTENT_LEN);
            stream.extend_from_slice(&record.content);
        }
        stream
    }

    fn pairs_of(decoded: &[(Bytes, Bytes)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        decoded
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn begin_request_layout() {
        let mut buf = BytesMut::new();
        encode_begin_request(&mut buf, 0x0102, FCGI_RESPONDER, true);
        assert_eq!(
            &buf[..],
            &[1, 1, 1, 2, 0, 8, 0, 0, 0, 1, FCGI_KEEP_CONN, 0, 0, 0, 0, 0]
        );
        buf.clear();
        encode_begin_request(&mut buf, 7, FCGI_RESPONDER, false);
        assert_eq!(buf[10], 0);
    }

    #[test]
    fn abort_and_end_of_stream_layout() {
        let mut buf = BytesMut::new();
        encode_abort_request(&mut buf, 3);
        encode_end_of_stream(&mut buf, RecordType::Stdin, 3);
        assert_eq!(&buf[..], &[1, 2, 0, 3, 0, 0, 0, 0, 1, 5, 0, 3, 0, 0, 0, 0]);
    }

    #[test]
    fn encoders_append_after_existing_bytes() {
        let mut buf = BytesMut::from(&b"prefix"[..]);
        encode_begin_request(&mut buf, 1, FCGI_RESPONDER, true);
        encode_params(&mut buf, 1, [(&b"A"[..], &b"B"[..])]);
        encode_stream(&mut buf, RecordType::Stdin, 1, b"body");
        encode_end_of_stream(&mut buf, RecordType::Stdin, 1);
        assert_eq!(&buf[..6], b"prefix");
        let kinds: Vec<u8> = raw_records(&buf[6..]).iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [1, 4, 4, 5, 5]);
    }

    #[test]
    fn name_value_lengths() {
        let mut buf = BytesMut::new();
        encode_name_value(&mut buf, b"AB", b"");
        assert_eq!(&buf[..], &[2, 0, b'A', b'B']);

        let name = vec![b'n'; 127];
        let value = vec![b'v'; 128];
        buf.clear();
        encode_name_value(&mut buf, &name, &value);
        assert_eq!(&buf[..5], &[127, 0x80, 0, 0, 128]);
        assert_eq!(buf.len(), 5 + 127 + 128);

        let value = vec![b'v'; 70_000];
        buf.clear();
        encode_name_value(&mut buf, b"X", &value);
        assert_eq!(buf[0], 1);
        assert_eq!(&buf[1..5], &(0x8000_0000u32 | 70_000).to_be_bytes());
    }

    #[test]
    fn name_value_length_limit() {
        // 2^31-1 is the largest encodable length; beyond it the prefix saturates
        // (and `clamp_name_value` cuts the bytes to match).
        let (prefix, len) = pair_prefix(MAX_NAME_VALUE_LEN, MAX_NAME_VALUE_LEN + 10);
        assert_eq!(len, 8);
        assert_eq!(prefix, [0xFF; 8]);
        let (prefix, len) = pair_prefix(127, 128);
        assert_eq!(&prefix[..len], &[127, 0x80, 0, 0, 128]);
    }

    #[test]
    fn name_values_round_trip() {
        let long = vec![b'x'; 300];
        let huge = vec![b'y'; 70_000];
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"SCRIPT_FILENAME", b"/srv/index.php"),
            (b"EMPTY", b""),
            (b"", b"empty name"),
            (&long, b"long name"),
            (b"LONG_VALUE", &long),
            (b"HUGE", &huge),
            (&huge, &huge),
        ];
        let mut buf = BytesMut::new();
        for (name, value) in &pairs {
            encode_name_value(&mut buf, name, value);
        }
        let decoded = decode_name_values(&buf).unwrap();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(pairs_of(&decoded), expected);
        assert_eq!(decode_name_values(b"").unwrap(), vec![]);
    }

    #[test]
    fn malformed_name_values_are_errors() {
        for bad in [
            &[1u8][..],                                            // value length missing
            &[0x80, 0, 0][..],                                     // truncated 4-byte name length
            &[1, 0x80, 0, 0][..],                                  // truncated 4-byte value length
            &[3, 0, b'a', b'b'][..],                               // name runs past the end
            &[0, 2, b'a'][..],                                     // value runs past the end
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..], // huge lengths
            &[1, 1, b'a', b'b', 5][..],                            // trailing garbage
        ] {
            assert_eq!(
                decode_name_values(bad),
                Err(ProtocolError::BadNameValue),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn params_small_request_is_one_record_plus_terminator() {
        let params: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_FILENAME", b"/srv/www/index.php"),
            (b"QUERY_STRING", b""),
        ];
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 9, params.iter().copied());
        let records = raw_records(&buf);
        assert_eq!(records.len(), 2);
        let stream = params_stream(&records, 9);
        let mut expected = BytesMut::new();
        for (name, value) in &params {
            encode_name_value(&mut expected, name, value);
        }
        assert_eq!(stream, &expected[..]);
    }

    #[test]
    fn params_empty_is_just_the_terminator() {
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 5, std::iter::empty());
        assert_eq!(&buf[..], &[1, 4, 0, 5, 0, 0, 0, 0]);
    }

    #[test]
    fn params_keep_pairs_whole_within_records() {
        // Three 30 000-byte values: two fit one record, the third must start a new
        // record rather than span (php-fpm decodes each record on its own).
        let value = vec![b'v'; 30_000];
        let names: Vec<Vec<u8>> = (0..3).map(|i| format!("HTTP_X_{i}").into_bytes()).collect();
        let params: Vec<(&[u8], &[u8])> = names.iter().map(|n| (&n[..], &value[..])).collect();
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 1, params.iter().copied());
        let records = raw_records(&buf);
        assert_eq!(records.len(), 3);
        let mut all = Vec::new();
        for record in &records[..2] {
            // Each record decodes on its own, as php-fpm requires.
            all.extend(pairs_of(&decode_name_values(&record.content).unwrap()));
        }
        let expected: Vec<(Vec<u8>, Vec<u8>)> = params
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(all, expected);
        params_stream(&records, 1);
    }

    #[test]
    fn params_exactly_full_record() {
        // One pair of exactly MAX_CONTENT_LEN bytes: a full record, then the
        // terminator, and no empty record in between.
        let value = vec![b'v'; MAX_CONTENT_LEN - 5 - 1];
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 1, [(&b"N"[..], &value[..])]);
        let records = raw_records(&buf);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].content.len(), MAX_CONTENT_LEN);
        params_stream(&records, 1);
    }

    #[test]
    fn params_oversized_pair_spans_records() {
        let huge_name = vec![b'n'; 70_000];
        let huge_value = vec![b'v'; 150_000];
        let params: Vec<(&[u8], &[u8])> = vec![
            (b"BEFORE", b"1"),
            (&huge_name, &huge_value),
            (b"AFTER", b"2"),
        ];
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 2, params.iter().copied());
        let records = raw_records(&buf);
        assert!(records.len() > 4);
        let stream = params_stream(&records, 2);
        let expected: Vec<(Vec<u8>, Vec<u8>)> = params
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(pairs_of(&decode_name_values(&stream).unwrap()), expected);
        // The small pair before the huge one got a record of its own.
        assert_eq!(
            pairs_of(&decode_name_values(&records[0].content).unwrap()),
            [(b"BEFORE".to_vec(), b"1".to_vec())]
        );
    }

    #[test]
    fn params_many_small_pairs_fill_records() {
        let names: Vec<Vec<u8>> = (0..5000).map(|i| format!("P{i}").into_bytes()).collect();
        let value = [b'v'; 40];
        let mut buf = BytesMut::new();
        encode_params(&mut buf, 1, names.iter().map(|n| (&n[..], &value[..])));
        let records = raw_records(&buf);
        assert!(records.len() >= 4);
        let mut count = 0;
        let (data, _terminator) = records.split_at(records.len() - 1);
        for (i, record) in data.iter().enumerate() {
            // Every record but the last is filled to within one pair of the limit.
            if i + 1 < data.len() {
                assert!(record.content.len() > MAX_CONTENT_LEN - 60);
            }
            count += decode_name_values(&record.content).unwrap().len();
        }
        assert_eq!(count, 5000);
    }

    #[test]
    fn stream_splits_at_max_content_len() {
        let mut buf = BytesMut::new();
        encode_stream(&mut buf, RecordType::Stdin, 4, b"");
        assert!(buf.is_empty());

        let data: Vec<u8> = (0..MAX_CONTENT_LEN * 2 + 10).map(|i| i as u8).collect();
        encode_stream(&mut buf, RecordType::Stdin, 4, &data);
        let records = raw_records(&buf);
        let lens: Vec<usize> = records.iter().map(|r| r.content.len()).collect();
        assert_eq!(lens, [MAX_CONTENT_LEN, MAX_CONTENT_LEN, 10]);
        assert!(records.iter().all(|r| r.kind == 5 && r.request_id == 4));
        let joined: Vec<u8> = records.into_iter().flat_map(|r| r.content).collect();
        assert_eq!(joined, data);

        buf.clear();
        encode_stream(&mut buf, RecordType::Stdin, 4, &data[..MAX_CONTENT_LEN]);
        assert_eq!(raw_records(&buf).len(), 1);
    }

    #[test]
    fn get_values_is_one_record_with_empty_values() {
        let mut buf = BytesMut::new();
        encode_get_values(
            &mut buf,
            &[b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"],
        );
        let records = raw_records(&buf);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].kind, RecordType::GetValues as u8);
        assert_eq!(records[0].request_id, 0);
        let decoded = decode_name_values(&records[0].content).unwrap();
        let names: Vec<&[u8]> = decoded.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(
            names,
            [&b"FCGI_MAX_CONNS"[..], b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS"]
        );
        assert!(decoded.iter().all(|(_, v)| v.is_empty()));
    }

    #[test]
    fn get_values_drops_names_that_do_not_fit() {
        let big = vec![b'N'; 40_000];
        let mut buf = BytesMut::new();
        encode_get_values(&mut buf, &[&big, &big, b"FCGI_MAX_CONNS"]);
        let records = raw_records(&buf);
        assert_eq!(records.len(), 1);
        let decoded = decode_name_values(&records[0].content).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(&decoded[1].0[..], b"FCGI_MAX_CONNS");
    }

    #[test]
    fn parses_each_app_record_type() {
        let mut bytes = Vec::new();
        bytes.extend(php_record(6, 1, b"Status: 200\r\n\r\nhello"));
        bytes.extend(php_record(7, 1, b"PHP Warning"));
        bytes.extend(php_record(6, 1, b""));
        bytes.extend(php_record(3, 1, &end_request_body(0x01020304, 0)));
        bytes.extend(php_record(3, 2, &end_request_body(0, 1)));
        bytes.extend(php_record(3, 2, &end_request_body(0, 2)));
        bytes.extend(php_record(3, 2, &end_request_body(0, 3)));
        bytes.extend(php_record(3, 2, &end_request_body(7, 200)));
        let mut result = BytesMut::new();
        encode_name_value(&mut result, b"FCGI_MPXS_CONNS", b"0");
        encode_name_value(&mut result, b"FCGI_MAX_CONNS", b"50");
        bytes.extend(php_record(10, 0, &result));
        bytes.extend(php_record(11, 0, &[42, 0, 0, 0, 0, 0, 0, 0]));

        let end = |app_status, protocol_status| Record::EndRequest {
            app_status,
            protocol_status,
        };
        assert_eq!(
            parse_all(&bytes),
            vec![
                (
                    1,
                    Record::Stdout(Bytes::from_static(b"Status: 200\r\n\r\nhello"))
                ),
                (1, Record::Stderr(Bytes::from_static(b"PHP Warning"))),
                (1, Record::Stdout(Bytes::new())),
                (1, end(0x01020304, ProtocolStatus::RequestComplete)),
                (2, end(0, ProtocolStatus::CantMpxConn)),
                (2, end(0, ProtocolStatus::Overloaded)),
                (2, end(0, ProtocolStatus::UnknownRole)),
                (2, end(7, ProtocolStatus::Other(200))),
                (
                    0,
                    Record::GetValuesResult(vec![
                        (
                            Bytes::from_static(b"FCGI_MPXS_CONNS"),
                            Bytes::from_static(b"0")
                        ),
                        (
                            Bytes::from_static(b"FCGI_MAX_CONNS"),
                            Bytes::from_static(b"50")
                        ),
                    ])
                ),
                (0, Record::UnknownType(42)),
            ]
        );
    }

    #[test]
    fn padding_is_honoured() {
        for padding in [0u8, 1, 7, 8, 255] {
            let mut bytes = app_record(6, 1, b"abc", padding);
            bytes.extend(app_record(3, 1, &end_request_body(0, 0), padding));
            let records = parse_all(&bytes);
            assert_eq!(records[0], (1, Record::Stdout(Bytes::from_static(b"abc"))));
            assert!(matches!(records[1].1, Record::EndRequest { .. }));
        }
    }

    #[test]
    fn content_complete_but_padding_missing_is_incomplete() {
        let bytes = app_record(6, 1, b"abcde", 3);
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(parse(&mut buf), Ok(None));
        assert_eq!(buf.len(), bytes.len() - 1);
        buf.extend_from_slice(&bytes[bytes.len() - 1..]);
        assert_eq!(
            parse(&mut buf),
            Ok(Some((1, Record::Stdout(Bytes::from_static(b"abcde")))))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn longer_end_request_and_unknown_type_bodies_are_accepted() {
        let mut body = end_request_body(5, 0);
        body.extend_from_slice(b"extra");
        let mut bytes = php_record(3, 1, &body);
        bytes.extend(app_record(11, 0, &[9], 0));
        let records = parse_all(&bytes);
        assert_eq!(
            records,
            vec![
                (
                    1,
                    Record::EndRequest {
                        app_status: 5,
                        protocol_status: ProtocolStatus::RequestComplete
                    }
                ),
                (0, Record::UnknownType(9)),
            ]
        );
    }

    /// Feeds `bytes` one byte at a time; every prefix that ends mid-record must be
    /// Incomplete without consuming, and the records must come out unchanged.
    #[test]
    fn every_split_point_byte_by_byte() {
        let mut bytes = Vec::new();
        bytes.extend(php_record(6, 1, b"Content-Type: text/html\r\n\r\n"));
        bytes.extend(app_record(6, 1, b"<html>", 5));
        bytes.extend(app_record(7, 1, b"", 0));
        bytes.extend(php_record(6, 1, b""));
        bytes.extend(php_record(3, 1, &end_request_body(0, 0)));
        let mut result = BytesMut::new();
        encode_name_value(&mut result, b"FCGI_MAX_REQS", b"100");
        bytes.extend(app_record(10, 0, &result, 3));
        bytes.extend(php_record(11, 0, &[1, 0, 0, 0, 0, 0, 0, 0]));
        let expected = parse_all(&bytes);
        assert_eq!(expected.len(), 7);

        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &bytes {
            buf.put_u8(byte);
            loop {
                let before = buf.len();
                match parse(&mut buf).unwrap() {
                    Some(record) => got.push(record),
                    None => {
                        assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                        break;
                    }
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected);

        // And every two-piece split of the whole stream.
        for split in 0..=bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            let mut got = Vec::new();
            while let Some(record) = parse(&mut buf).unwrap() {
                got.push(record);
            }
            buf.extend_from_slice(&bytes[split..]);
            while let Some(record) = parse(&mut buf).unwrap() {
                got.push(record);
            }
            assert!(buf.is_empty());
            assert_eq!(got, expected, "split at {split}");
        }
    }

    #[test]
    fn stdout_payload_is_not_copied() {
        let bytes = php_record(6, 1, b"payload");
        let mut buf = BytesMut::from(&bytes[..]);
        let base = buf.as_ptr() as usize;
        let Some((_, Record::Stdout(content))) = parse(&mut buf).unwrap() else {
            panic!("expected Stdout");
        };
        assert_eq!(content.as_ptr() as usize, base + HEADER_LEN);
    }

    #[test]
    fn max_size_record_with_max_padding() {
        let content = vec![b'z'; MAX_CONTENT_LEN];
        let bytes = app_record(6, 65535, &content, 255);
        assert_eq!(bytes.len(), HEADER_LEN + MAX_CONTENT_LEN + 255);
        let records = parse_all(&bytes);
        assert_eq!(records, vec![(65535, Record::Stdout(Bytes::from(content)))]);
    }

    #[test]
    fn short_end_request_is_an_error() {
        for len in 0..END_REQUEST_BODY_LEN {
            let bytes = app_record(3, 1, &vec![0; len], 0);
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(parse(&mut buf), Err(ProtocolError::BadEndRequest));
            assert_eq!(buf.len(), bytes.len(), "error must not consume");
        }
        // Reported from the header alone, before the content arrives.
        let bytes = app_record(3, 1, &[0; 4], 0);
        let mut buf = BytesMut::from(&bytes[..HEADER_LEN]);
        assert_eq!(parse(&mut buf), Err(ProtocolError::BadEndRequest));
    }

    #[test]
    fn empty_unknown_type_is_an_error() {
        let mut buf = BytesMut::from(&app_record(11, 0, b"", 0)[..]);
        assert_eq!(parse(&mut buf), Err(ProtocolError::BadUnknownType));
    }

    #[test]
    fn unknown_version_is_an_error() {
        for version in [0u8, 2, 255] {
            let mut bytes = php_record(6, 1, b"x");
            bytes[0] = version;
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(
                parse(&mut buf),
                Err(ProtocolError::UnsupportedVersion(version))
            );
            assert_eq!(buf.len(), bytes.len());
        }
    }

    #[test]
    fn types_the_app_must_not_send_are_errors() {
        for kind in [0u8, 1, 2, 4, 5, 8, 9, 12, 255] {
            let mut buf = BytesMut::from(&php_record(kind, 1, b"12345678")[..]);
            assert_eq!(parse(&mut buf), Err(ProtocolError::UnexpectedType(kind)));
        }
    }

    #[test]
    fn bad_get_values_result_is_an_error_and_consumes_nothing() {
        let bytes = php_record(10, 0, &[5, 1, b'a']);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(parse(&mut buf), Err(ProtocolError::BadNameValue));
        assert_eq!(buf.len(), bytes.len());
    }

    #[test]
    fn fewer_than_header_bytes_is_incomplete() {
        let bytes = php_record(6, 1, b"x");
        for len in 0..HEADER_LEN {
            let mut buf = BytesMut::from(&bytes[..len]);
            assert_eq!(parse(&mut buf), Ok(None));
            assert_eq!(buf.len(), len);
        }
    }

    /// Pseudo-random inputs: parse must never panic, never consume on Ok(None) or
    /// Err, and consume exactly one record on Ok(Some).
    #[test]
    fn fuzz_parse_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = (next() % 96) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Make most inputs look like headers so parsing gets past the version
            // check, with small lengths so records actually complete.
            let mut at = 0;
            while at + HEADER_LEN <= bytes.len() && next() % 4 != 0 {
                bytes[at] = FCGI_VERSION_1;
                bytes[at + 1] = (next() % 13) as u8;
                bytes[at + 4] = 0;
                bytes[at + 5] = (next() % 24) as u8;
                bytes[at + 6] = (next() % 4) as u8;
                at += HEADER_LEN + usize::from(bytes[at + 5]) + usize::from(bytes[at + 6]);
            }
            let mut buf = BytesMut::from(&bytes[..]);
            loop {
                let before = buf.len();
                let header = buf.first_chunk::<HEADER_LEN>().copied();
                match parse(&mut buf) {
                    Ok(Some(_)) => {
                        let header = header.unwrap();
                        let record_len = HEADER_LEN
                            + usize::from(u16::from_be_bytes([header[4], header[5]]))
                            + usize::from(header[6]);
                        assert_eq!(before - buf.len(), record_len);
                    }
                    Ok(None) | Err(_) => {
                        assert_eq!(buf.len(), before, "consumed without a record");
                        break;
                    }
                }
            }
        }
    }

    /// Cross-check against an independent implementation: the `fastcgi-client`
    /// crate sends a request over an in-memory pipe to a fake php-fpm built from
    /// this module, which answers with padded records the client must understand.
    #[tokio::test]
    async fn cross_check_with_fastcgi_client() {
        use fastcgi_client::{Client, Params, Request};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (client_side, mut server_side) = tokio::io::duplex(1 << 20);
        let long_value = "v".repeat(70_000);
        let server = tokio::spawn(async move {
            // Read until the empty STDIN record, with a raw splitter (the request
            // record types are not ones `parse` accepts).
            let mut received = Vec::new();
            let records = loop {
                let mut chunk = [0u8; 8192];
                let n = server_side.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                received.extend_from_slice(&chunk[..n]);
                if let Some(records) = complete_request(&received) {
                    break records;
                }
            };
            let mut reply = Vec::new();
            reply.extend(php_record(6, 1, b"Content-type: text/plain\r\n\r\n"));
            reply.extend(app_record(6, 1, b"hello", 3));
            reply.extend(app_record(7, 1, b"warn", 4));
            reply.extend(php_record(3, 1, &end_request_body(0, 0)));
            server_side.write_all(&reply).await.unwrap();
            records
        });

        let params = Params::default()
            .request_method("POST")
            .custom("HTTP_X_LONG", long_value.as_str());
        let body = b"request body".to_vec();
        let response = Client::new(client_side)
            .execute_once(Request::new(params, &mut &body[..]))
            .await
            .unwrap();
        assert_eq!(
            response.stdout.as_deref(),
            Some(&b"Content-type: text/plain\r\n\r\nhello"[..])
        );
        assert_eq!(response.stderr.as_deref(), Some(&b"warn"[..]));

        let records = server.await.unwrap();
        // BEGIN_REQUEST: identical bytes (8-byte content needs no padding).
        let mut ours = BytesMut::new();
        encode_begin_request(&mut ours, 1, FCGI_RESPONDER, false);
        assert_eq!(records[0], raw_records(&ours).remove(0));

        // PARAMS: our decoder reads the client's encoding, and our encoder
        // produces the same pairs.
        let param_records: Vec<Raw> = records
            .iter()
            .filter(|r| r.kind == RecordType::Params as u8)
            .map(|r| Raw {
                kind: r.kind,
                request_id: r.request_id,
                content: r.content.clone(),
            })
            .collect();
        let theirs = decode_name_values(&params_stream(&param_records, 1)).unwrap();
        assert!(theirs.contains(&(
            Bytes::from_static(b"HTTP_X_LONG"),
            Bytes::from(long_value.clone())
        )));
        assert!(theirs.contains(&(
            Bytes::from_static(b"REQUEST_METHOD"),
            Bytes::from_static(b"POST")
        )));
        let mut ours = BytesMut::new();
        encode_params(&mut ours, 1, theirs.iter().map(|(n, v)| (&n[..], &v[..])));
        let reencoded = params_stream(&raw_records(&ours), 1);
        assert_eq!(decode_name_values(&reencoded).unwrap(), theirs);

        // STDIN: same content, ending with the empty record.
        let stdin: Vec<&Raw> = records
            .iter()
            .filter(|r| r.kind == RecordType::Stdin as u8)
            .collect();
        let mut ours = BytesMut::new();
        encode_stream(&mut ours, RecordType::Stdin, 1, &body);
        encode_end_of_stream(&mut ours, RecordType::Stdin, 1);
        assert_eq!(stdin, raw_records(&ours).iter().collect::<Vec<_>>());
    }

    /// The records of a request if it is complete (ends with an empty STDIN).
    fn complete_request(bytes: &[u8]) -> Option<Vec<Raw>> {
        let mut rest = bytes;
        let mut records = Vec::new();
        while let Some(header) = rest.first_chunk::<HEADER_LEN>() {
            let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let total = HEADER_LEN + content_len + usize::from(header[6]);
            if rest.len() < total {
                return None;
            }
            records.extend(raw_records(&rest[..total]));
            rest = &rest[total..];
        }
        let last = records.last()?;
        (last.kind == RecordType::Stdin as u8 && last.content.is_empty()).then_some(records)
    }
}
