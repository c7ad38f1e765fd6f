//! Limits on the request head, as nginx's `large_client_header_buffers 4 8k`:
//! a request line over `max_request_line` is 414, a header line over
//! `max_header_line` or a head over `max_header_size` is 431. Checked before
//! the request is routed, so a refused request never reaches, nor counts
//! against, a backend.
//!
//! hyper bounds what it buffers before fpmlb sees a head; its limits are set
//! from the same numbers ([`HeadLimits::h1_max_buf_size`],
//! [`HeadLimits::h2_max_header_list_size`]) so that both protocols refuse
//! the same heads. The line limits keep every FastCGI param far inside one
//! PARAMS record; `fastcgi::params::ParamList` refuses a pair that would not
//! fit whatever the limits say (a Cookie joined from many lines).

use http::request::Parts;

use crate::http::error::ClientError;

/// hyper's smallest http1 read buffer (its `max_buf_size` panics below it).
const HYPER_MIN_BUF_SIZE: usize = 8192;

/// HTTP/2 counts each field as name + value + 32 bytes (RFC 9113 §6.5.2);
/// with hyper's HTTP/1 default of at most 100 header lines, this much more
/// than `max_header_size` lets through on HTTP/2 what HTTP/1 lets through,
/// and fpmlb's own count ([`check_head`]) then applies the same limit to both.
const H2_FIELD_OVERHEAD: usize = 32;
const H1_MAX_HEADERS: usize = 100;

/// The limits of one request head, from the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Method, target and version (`max_request_line`).
    pub request_line: usize,
    /// One `name: value` line (`max_header_line`).
    pub header_line: usize,
    /// The whole head, line ends included (`max_header_size`).
    pub total: usize,
}

impl HeadLimits {
    /// hyper's http1 `max_buf_size`: a head that does not fit is hyper's
    /// own 431 (hyper-util's builder has no `max_header_size`); a smaller one
    /// is counted by [`check_head`].
    pub fn h1_max_buf_size(&self) -> usize {
        self.total.max(HYPER_MIN_BUF_SIZE)
    }

    /// h2's SETTINGS_MAX_HEADER_LIST_SIZE.
    pub fn h2_max_header_list_size(&self) -> u32 {
        let size = self.total + H2_FIELD_OVERHEAD * H1_MAX_HEADERS;
        u32::try_from(size).unwrap_or(u32::MAX)
    }
}

/// The request line as HTTP/1.1 carries it: `METHOD SP target SP HTTP/1.1`.
/// On HTTP/2 the target is `:path` (its `:authority` is a header line's worth).
fn request_line_len(parts: &Parts) -> usize {
    let uri = &parts.uri;
    let path = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let absolute = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) if parts.version != http::Version::HTTP_2 => {
            scheme.len() + "://".len() + authority.as_str().len()
        }
        _ => 0,
    };
    parts.method.as_str().len() + 1 + absolute + path + 1 + "HTTP/1.1".len()
}

/// Refuses a head over the limits: 414 for the request line, 431 for a
/// header line or the whole.
pub fn check_head(parts: &Parts, limits: &HeadLimits) -> Result<(), ClientError> {
    let line = request_line_len(parts);
    if line > limits.request_line {
        return Err(ClientError::UriTooLong {
            len: line,
            limit: limits.request_line,
        });
    }
    let mut total = line + 2;
    if parts.version == http::Version::HTTP_2
        && let Some(authority) = parts.uri.authority()
    {
        total += "host: ".len() + authority.as_str().len() + 2;
    }
    for (name, value) in &parts.headers {
        let len = name.as_str().len() + 2 + value.len();
        if len > limits.header_line {
            return Err(ClientError::HeadTooLarge(format!(
                "header {} of {len} bytes over max_header_line ({})",
                shown_name(name.as_str()),
                limits.header_line
            )));
        }
        total += len + 2;
    }
    total += 2;
    if total > limits.total {
        return Err(ClientError::HeadTooLarge(format!(
            "{total} bytes over max_header_size ({})",
            limits.total
        )));
    }
    Ok(())
}

/// A header name for a log line: hyper's names are tokens, but may be long.
fn shown_name(name: &str) -> &str {
    let end = name.char_indices().nth(64).map_or(name.len(), |(i, _)| i);
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        request_line: 100,
        header_line: 50,
        total: 200,
    };

    fn parts(uri: &str, version: http::Version, headers: &[(&str, String)]) -> Parts {
        let mut b = http::Request::get(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn status(p: &Parts) -> u16 {
        check_head(p, &LIMITS).map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn request_line_over_the_limit_is_414() {
        // "GET " + target + " HTTP/1.1": 13 bytes around the target.
        let fits = format!("/{}", "a".repeat(100 - 13 - 1));
        let over = format!("/{}", "a".repeat(100 - 13));
        let h11 = http::Version::HTTP_11;
        assert_eq!(status(&parts(&fits, h11, &[])), 200);
        assert_eq!(status(&parts(&over, h11, &[])), 414);
        // The query counts; so does an absolute-form target's scheme and host.
        assert_eq!(status(&parts(&format!("/?{}", &fits[2..]), h11, &[])), 200);
        assert_eq!(status(&parts(&format!("http://h{fits}"), h11, &[])), 414);
        // HTTP/2's :authority is not part of its request line.
        let h2 = http::Version::HTTP_2;
        assert_eq!(status(&parts(&format!("http://h{fits}"), h2, &[])), 200);
    }

    #[test]
    fn header_line_over_the_limit_is_431() {
        let h11 = http::Version::HTTP_11;
        // "x-pad: " is 7 bytes.
        let fits = vec![("x-pad", "a".repeat(50 - 7))];
        let over = vec![("x-pad", "a".repeat(50 - 6))];
        assert_eq!(status(&parts("/", h11, &fits)), 200);
        assert_eq!(status(&parts("/", h11, &over)), 431);
        let err = check_head(&parts("/", h11, &over), &LIMITS).unwrap_err();
        assert!(err.to_string().contains("x-pad"), "{err}");
    }

    #[test]
    fn a_head_over_the_total_is_431() {
        let h11 = http::Version::HTTP_11;
        // Each line fits; together they do not.
        let many: Vec<(&str, String)> = ["a", "b", "c", "d", "e"]
            .into_iter()
            .map(|n| (n, "v".repeat(40)))
            .collect();
        assert_eq!(status(&parts("/", h11, &many[..3])), 200);
        assert_eq!(status(&parts("/", h11, &many)), 431);
        // Repeated lines count one by one.
        let repeated: Vec<(&str, String)> = (0..5).map(|_| ("cookie", "v".repeat(40))).collect();
        assert_eq!(status(&parts("/", h11, &repeated)), 431);
    }

    #[test]
    fn hyper_limits_follow_the_config() {
        let l = HeadLimits {
            request_line: 8192,
            header_line: 8192,
            total: 4096,
        };
        assert_eq!(l.h1_max_buf_size(), 8192, "hyper's minimum");
        assert!(l.h2_max_header_list_size() as usize > l.total);
    }
}
