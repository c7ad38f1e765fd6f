//! The `Range` header of a GET (RFC 9110 §14.1.2, §14.2): which byte
//! ranges of a file of a known length to send. Pure.
//!
//! As nginx: a unit other than `bytes` is ignored (the whole file), a
//! malformed `bytes=` set or one with no satisfiable range is 416; ranges
//! that together ask for more than the file (overlapping ranges, the
//! "Apache killer") or more than [`MAX_RANGES`] of them are ignored and the
//! whole file is sent once.

use http::HeaderValue;

/// More ranges than this in one request are ignored (the whole file goes
/// out): a client that wants many small pieces gets one response instead of
/// thousands of multipart headers.
pub const MAX_RANGES: usize = 64;

/// What a `Range` header asks of a file of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable Range: the whole file, 200.
    Full,
    /// These ranges, first and last byte included, in the order asked: 206.
    Parts(Vec<(u64, u64)>),
    /// 416, with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Reads `value` against a file of `len` bytes.
pub fn parse(value: Option<&HeaderValue>, len: u64) -> Ranges {
    let Some(value) = value else {
        return Ranges::Full;
    };
    let Ok(text) = value.to_str() else {
        return Ranges::Unsatisfiable;
    };
    let text = text.trim();
    let Some((unit, set)) = text.split_once('=') else {
        return Ranges::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full;
    }
    let mut parts = Vec::new();
    for (n, spec) in set.split(',').enumerate() {
        if n >= MAX_RANGES {
            return Ranges::Full;
        }
        let spec = spec.trim();
        if spec.is_empty() {
            // `bytes=0-1,,2-3`: empty list elements are allowed (RFC 9110 §5.6.1).
            continue;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Unsatisfiable;
        };
        let (Ok(first), Ok(last)) = (optional(first.trim()), optional(last.trim())) else {
            return Ranges::Unsatisfiable;
        };
        let range = match (first, last) {
            (Some(a), Some(b)) if a > b => return Ranges::Unsatisfiable,
            (Some(a), _) if a >= len => None,
            (Some(a), Some(b)) => Some((a, b.min(len - 1))),
            (Some(a), None) => Some((a, len - 1)),
            (None, Some(n)) => (n > 0 && len > 0).then(|| (len - n.min(len), len - 1)),
            (None, None) => return Ranges::Unsatisfiable,
        };
        parts.extend(range);
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    let asked: u128 = parts.iter().map(|(a, b)| u128::from(b - a + 1)).sum();
    if parts.len() > 1 && asked > u128::from(len) {
        return Ranges::Full;
    }
    Ranges::Parts(parts)
}

/// An empty position, or a number; `Err` for anything else.
fn optional(s: &str) -> Result<Option<u64>, ()> {
    if s.is_empty() {
        Ok(None)
    } else {
        number(s).map(Some).ok_or(())
    }
}

/// A decimal number of digits only (no sign, no space), that fits u64.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u64) -> Ranges {
        parse(Some(&HeaderValue::from_str(s).unwrap()), len)
    }

    fn parts(v: &[(u64, u64)]) -> Ranges {
        Ranges::Parts(v.to_vec())
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 10), Ranges::Full);
        assert_eq!(p("bytes=0-4", 10), parts(&[(0, 4)]));
        assert_eq!(p("bytes=5-", 10), parts(&[(5, 9)]));
        assert_eq!(p("bytes=-3", 10), parts(&[(7, 9)]));
        assert_eq!(
            p("bytes=-30", 10),
            parts(&[(0, 9)]),
            "suffix over the length"
        );
        assert_eq!(p("bytes=8-100", 10), parts(&[(8, 9)]), "clamped");
        assert_eq!(p("bytes=9-9", 10), parts(&[(9, 9)]));
        assert_eq!(p("Bytes = 0-0", 10), parts(&[(0, 0)]));
        assert_eq!(p("bytes=18446744073709551615-", 10), Ranges::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_and_malformed() {
        assert_eq!(p("bytes=10-", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=10-20", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Ranges::Unsatisfiable, "empty file");
        assert_eq!(p("bytes=-5", 0), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=5-3", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=a-b", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=+1-2", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=1", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=20-x", 10), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=99999999999999999999-", 10), Ranges::Unsatisfiable);
        // An unknown unit is ignored.
        assert_eq!(p("items=0-1", 10), Ranges::Full);
    }

    #[test]
    fn several_ranges() {
        assert_eq!(p("bytes=0-1, 4-5", 10), parts(&[(0, 1), (4, 5)]));
        assert_eq!(p("bytes=0-1,,-2", 10), parts(&[(0, 1), (8, 9)]));
        // The unsatisfiable one is left out.
        assert_eq!(p("bytes=0-1,20-30", 10), parts(&[(0, 1)]));
        // More than the file in all: the file once.
        assert_eq!(p("bytes=0-9,0-9", 10), Ranges::Full);
        assert_eq!(p("bytes=0-5,3-8", 10), Ranges::Full);
        let many: Vec<String> = (0..MAX_RANGES + 1).map(|i| format!("{i}-{i}")).collect();
        assert_eq!(p(&format!("bytes={}", many.join(",")), 1000), Ranges::Full);
    }
}
