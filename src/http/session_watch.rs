//! Passive session watch: a request that carried the session cookie and got
//! a new session id back means the backend did not find the session.
//!
//! Applications can switch the save handler at run time (phpMyAdmin moves to
//! `files` when `$cfg['SessionSavePath']` is set), which no ini probe sees;
//! real traffic does. Pure functions over headers; the counts live in
//! `BackendStats` and the session checker compares backends' rates.

use http::HeaderMap;

/// The value of cookie `name` in the request's Cookie headers, if any.
pub fn request_session_id<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    for value in headers.get_all(http::header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(rest) = pair.strip_prefix(name.as_bytes())
                && let Some(id) = rest.strip_prefix(b"=")
            {
                return Some(id);
            }
        }
    }
    None
}

/// Whether the response sets cookie `name` to an id other than `sent` (a
/// deletion, "deleted" or an empty value, does not count: that is a logout).
pub fn resets_session(response: &HeaderMap, name: &str, sent: &[u8]) -> bool {
    response
        .get_all(http::header::SET_COOKIE)
        .iter()
        .any(|value| {
            let v = value.as_bytes();
            let Some(rest) = v
                .strip_prefix(name.as_bytes())
                .and_then(|r| r.strip_prefix(b"="))
            else {
                return false;
            };
            let id = rest
                .split(|&b| b == b';')
                .next()
                .unwrap_or(b"")
                .trim_ascii();
            !id.is_empty() && id != b"deleted" && id != sent
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers("cookie", &["a=1; PHPSESSID=abc123; b=2"]);
        assert_eq!(request_session_id(&h, "PHPSESSID"), Some(&b"abc123"[..]));
        assert_eq!(request_session_id(&h, "SID"), None);
        let h = headers("cookie", &["XPHPSESSID=zz", "PHPSESSID=ok"]);
        assert_eq!(request_session_id(&h, "PHPSESSID"), Some(&b"ok"[..]));
    }

    #[test]
    fn a_new_id_is_a_reset_the_same_or_a_deletion_is_not() {
        let h = headers(
            "set-cookie",
            &["other=1", "PHPSESSID=new456; path=/; HttpOnly"],
        );
        assert!(resets_session(&h, "PHPSESSID", b"abc123"));
        assert!(!resets_session(&h, "PHPSESSID", b"new456"));
        let h = headers(
            "set-cookie",
            &["PHPSESSID=deleted; expires=Thu, 01 Jan 1970 00:00:01 GMT"],
        );
        assert!(!resets_session(&h, "PHPSESSID", b"abc123"));
        assert!(!resets_session(&HeaderMap::new(), "PHPSESSID", b"abc123"));
    }
}
