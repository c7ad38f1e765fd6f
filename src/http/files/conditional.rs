//! Validators of a file and the preconditions of a request on it (RFC 9110
//! §8.8 and §13): `ETag` and `Last-Modified` out, `If-Match`,
//! `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since` and
//! `If-Range` in. Pure: the file's length and mtime come in, a verdict
//! goes out.
//!
//! The ETag is nginx's, `"<mtime hex>-<length hex>"`, a strong validator
//! (so If-Match and If-Range can use it). `If-Modified-Since` follows the
//! RFC (not modified when the file is not newer than the date), which is
//! nginx's `if_modified_since before`; nginx's default `exact` wants the
//! very date, which a client that rounds or a proxy that rewrites misses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, header};

/// What a file is, for validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators {
    pub len: u64,
    /// Modification time in whole seconds since the epoch (HTTP dates have
    /// no finer precision).
    pub mtime: u64,
}

impl Validators {
    pub fn of(meta: &std::fs::Metadata) -> Validators {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Validators {
            len: meta.len(),
            mtime,
        }
    }

    /// `"<mtime hex>-<length hex>"`, as nginx writes it.
    #[must_use]
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime, self.len)
    }

    #[must_use]
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.mtime))
    }

    /// The two headers, ready to send.
    pub fn headers(&self) -> [(header::HeaderName, HeaderValue); 2] {
        let value = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
        [
            (header::ETAG, value(self.etag())),
            (header::LAST_MODIFIED, value(self.last_modified())),
        ]
    }
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on: send the file (or the range).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order.
pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Precondition {
    let etag = v.etag();
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if let Some(if_match) = joined(headers, &header::IF_MATCH) {
        if !matches_any(&if_match, &etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, &header::IF_UNMODIFIED_SINCE)
        && v.mtime > since
    {
        return Precondition::Failed;
    }
    if let Some(if_none_match) = joined(headers, &header::IF_NONE_MATCH) {
        if matches_any(&if_none_match, &etag, Comparison::Weak) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head
        && let Some(since) = date(headers, &header::IF_MODIFIED_SINCE)
        && v.mtime <= since
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured: no `If-Range`, or one that still
/// names this file (its ETag, compared strongly, or exactly its date).
pub fn if_range_holds(headers: &HeaderMap, v: &Validators) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return !value.starts_with("W/") && value == v.etag();
    }
    httpdate::parse_http_date(value)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|d| d.as_secs() == v.mtime)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether the list (`*`, or entity tags) holds `etag` (a strong tag).
fn matches_any(list: &str, etag: &str, how: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    entity_tags(list).any(|tag| match tag.strip_prefix("W/") {
        Some(weak) => how == Comparison::Weak && weak == etag,
        None => tag == etag,
    })
}

/// The entity tags of a list, each as written (`"x"` or `W/"x"`); commas
/// inside quotes do not split.
fn entity_tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = list;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            return None;
        }
        let weak = rest.starts_with("W/");
        let body_start = if weak { 2 } else { 0 };
        let end = if rest[body_start..].starts_with('"') {
            rest[body_start + 1..]
                .find('"')
                .map_or(rest.len(), |q| body_start + q + 2)
        } else {
            rest.find(',').unwrap_or(rest.len())
        };
        let (tag, after) = rest.split_at(end);
        rest = after;
        Some(tag.trim())
    })
}

/// The header's lines joined by ", " (a list may come over several lines).
fn joined(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let parts: Vec<&str> = values.filter_map(|v| v.to_str().ok()).collect();
    Some(parts.join(", "))
}

/// An HTTP date header in seconds since the epoch; an invalid one is
/// ignored, as the RFC says.
fn date(headers: &HeaderMap, name: &header::HeaderName) -> Option<u64> {
    let value = headers.get(name)?.to_str().ok()?;
    let t: SystemTime = httpdate::parse_http_date(value.trim()).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const V: Validators = Validators {
        len: 1234,
        mtime: 1_700_000_000,
    };

    /// A header map from pairs (also for `serve`'s tests).
    pub(in crate::http::files) fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn get(pairs: &[(&str, &str)]) -> Precondition {
        evaluate(&Method::GET, &h(pairs), &V)
    }

    #[test]
    fn validators_are_nginx_s() {
        assert_eq!(V.etag(), "\"6553f100-4d2\"");
        assert_eq!(V.last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        let etag = V.etag();
        let date = V.last_modified();
        assert_eq!(get(&[]), Precondition::Proceed);
        assert_eq!(get(&[("if-none-match", &etag)]), Precondition::NotModified);
        let weak = format!("W/{etag}");
        assert_eq!(
            get(&[("if-none-match", &weak)]),
            Precondition::NotModified,
            "weak comparison"
        );
        let list = format!("\"a,b\", {etag}");
        assert_eq!(get(&[("if-none-match", &list)]), Precondition::NotModified);
        assert_eq!(get(&[("if-none-match", "*")]), Precondition::NotModified);
        assert_eq!(
            get(&[("if-none-match", "\"other\"")]),
            Precondition::Proceed
        );
        assert_eq!(
            get(&[("if-modified-since", &date)]),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", "Wed, 15 Nov 2023 00:00:00 GMT")]),
            Precondition::NotModified
        );
        assert_eq!(
            get(&[("if-modified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]),
            Precondition::Proceed
        );
        assert_eq!(
            get(&[("if-modified-since", "yesterday")]),
            Precondition::Proceed
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            get(&[("if-none-match", "\"other\""), ("if-modified-since", &date)]),
            Precondition::Proceed
        );
        // A POST that matches If-None-Match fails.
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-none-match", "*")]), &V),
            Precondition::Failed
        );
        // If-Modified-Since is for GET and HEAD only.
        assert_eq!(
            evaluate(&Method::POST, &h(&[("if-modified-since", &date)]), &V),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        let etag = V.etag();
        assert_eq!(get(&[("if-match", &etag)]), Precondition::Proceed);
        assert_eq!(get(&[("if-match", "*")]), Precondition::Proceed);
        assert_eq!(get(&[("if-match", "\"x\"")]), Precondition::Failed);
        let weak = format!("W/{etag}");
        assert_eq!(get(&[("if-match", &weak)]), Precondition::Failed, "strong");
        assert_eq!(
            get(&[("if-unmodified-since", "Tue, 14 Nov 2023 22:13:19 GMT")]),
            Precondition::Failed
        );
        assert_eq!(
            get(&[("if-unmodified-since", &V.last_modified())]),
            Precondition::Proceed
        );
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_eq!(
            get(&[
                ("if-match", &etag),
                ("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")
            ]),
            Precondition::Proceed
        );
        // Failing If-Match beats a matching If-None-Match.
        assert_eq!(
            get(&[("if-match", "\"x\""), ("if-none-match", &etag)]),
            Precondition::Failed
        );
    }

    #[test]
    fn if_range() {
        let etag = V.etag();
        assert!(if_range_holds(&h(&[]), &V));
        assert!(if_range_holds(&h(&[("if-range", &etag)]), &V));
        assert!(!if_range_holds(&h(&[("if-range", "\"old\"")]), &V));
        let weak = format!("W/{etag}");
        assert!(!if_range_holds(&h(&[("if-range", &weak)]), &V));
        assert!(if_range_holds(&h(&[("if-range", &V.last_modified())]), &V));
        assert!(!if_range_holds(
            &h(&[("if-range", "Wed, 15 Nov 2023 00:00:00 GMT")]),
            &V
        ));
        assert!(!if_range_holds(&h(&[("if-range", "garbage")]), &V));
    }
}
