//! Parsers for the value syntaxes of the file: nginx-style durations and sizes, listen
//! addresses and backend addresses.
//!
//! Every error message quotes the offending text and says what was expected, so validation
//! can show it as is after the key and line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::BackendAddress;

/// Duration units, largest first, with their length in milliseconds, as nginx knows them
/// (`M` is a 30-day month, `y` a 365-day year).
const DURATION_UNITS: [(&str, u64); 8] = [
    ("y", 365 * 24 * 3_600_000),
    ("M", 30 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses an nginx-style duration: `250ms`, `5s`, `1m`, `1h`, `2m30s`, `1h 30m`.
///
/// Units are `ms`, `s`, `m`, `h`, `d`, `w`, `M` (30 days) and `y` (365 days), case-sensitive
/// as in nginx, each used at most once, largest first. A bare number means seconds, as in
/// nginx. Fractions, signs and values that overflow are errors.
///
/// # Errors
///
/// A message quoting `s` and saying what is wrong, e.g. `invalid duration "5x": unknown unit "x" ...`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let fail = |reason: &str| format!("invalid duration {s:?}: {reason}");
    let text = s.trim();
    if text.is_empty() {
        return Err(fail("empty (use e.g. 5s, 250ms, 1m)"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|secs| {
                secs.checked_mul(1000)
                    .is_some_and(|ms| ms <= MAX_DURATION_MS)
            })
            .map(Duration::from_secs)
            .ok_or_else(|| fail("too large (at most 100y)"));
    }
    let mut total_ms: u64 = 0;
    // Index into DURATION_UNITS of the previous unit: the next must be smaller.
    let mut previous: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            return Err(fail(
                "expected a number followed by a unit: ms, s, m, h, d, w, M or y",
            ));
        }
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(fail(&format!(
                "missing unit after {digits} (use ms, s, m, h, d, w, M or y; a bare number alone means seconds)"
            )));
        }
        let Some(rank) = DURATION_UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(fail(&format!(
                "unknown unit {unit:?} (use ms, s, m, h, d, w, M or y)"
            )));
        };
        if previous.is_some_and(|p| p >= rank) {
            return Err(fail(
                "units must appear once each, largest first, as in 1h30m",
            ));
        }
        previous = Some(rank);
        let unit_ms = DURATION_UNITS[rank].1;
        total_ms = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| fail("too large"))?;
        rest = after.trim_start();
    }
    if total_ms > MAX_DURATION_MS {
        return Err(fail("too large (at most 100y)"));
    }
    Ok(Duration::from_millis(total_ms))
}

/// The longest duration a config may give: anything longer is a typo,
/// and would overflow a deadline built from it (`Instant` + duration
/// panics past the clock's range).
const MAX_DURATION_MS: u64 = 100 * DURATION_UNITS[0].1;

/// Parses an nginx-style size: `100` (bytes), `512k`, `1m`, `1g`, case-insensitive, with
/// 1k = 1024 bytes. Fractions, signs and values above `u64::MAX` are errors.
///
/// # Errors
///
/// A message quoting `s` and saying what is wrong, e.g. `invalid size "1x": ...`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let fail = |reason: &str| format!("invalid size {s:?}: {reason}");
    let text = s.trim();
    let (digits, multiplier) = if let Some(d) = text.strip_suffix(['k', 'K']) {
        (d, 1u64 << 10)
    } else if let Some(d) = text.strip_suffix(['m', 'M']) {
        (d, 1 << 20)
    } else if let Some(d) = text.strip_suffix(['g', 'G']) {
        (d, 1 << 30)
    } else {
        (text, 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(
            "expected a number of bytes, optionally followed by k, m or g (e.g. 512k)",
        ));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| fail("too large"))
}

/// Parses a listen address: `127.0.0.1:8080`, `[::1]:8080`, or a port alone as `:8080`,
/// `*:8080` or `8080`, meaning all IPv4 interfaces (`0.0.0.0:8080`), as in nginx.
/// Port 0 asks the system for a free port (useful in tests).
///
/// # Errors
///
/// A message quoting `s`; hostnames are not accepted, a listen address must be an IP.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let text = s.trim();
    let port_only = text
        .strip_prefix(':')
        .or_else(|| text.strip_prefix("*:"))
        .unwrap_or(text);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        return port_only
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            .map_err(|_| format!("invalid listen address {s:?}: port must be 0 to 65535"));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        format!("invalid listen address {s:?}: expected ip:port, [ipv6]:port or :port")
    })
}

impl FromStr for BackendAddress {
    type Err = String;

    /// Parses `10.0.0.7:9000`, `[::1]:9000`, `php.internal:9000` or
    /// `unix:/run/php/php8.2-fpm.sock`.
    fn from_str(s: &str) -> Result<Self, String> {
        let fail = |reason: &str| format!("invalid address {s:?}: {reason}");
        let text = s.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(fail(
                    "unix socket path must be absolute, as in unix:/run/php/fpm.sock",
                ));
            }
            if path.contains('\0') {
                return Err(fail("unix socket path contains a NUL byte"));
            }
            return Ok(BackendAddress::Unix(PathBuf::from(path)));
        }
        let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
            let Some((host, port)) = bracketed.split_once("]:") else {
                return Err(fail("expected [ipv6]:port"));
            };
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(fail(&format!("{host:?} is not an IPv6 address")));
            }
            (host, port)
        } else {
            let Some((host, port)) = text.rsplit_once(':') else {
                return Err(fail("expected host:port or unix:/path"));
            };
            if host.contains(':') {
                return Err(fail("IPv6 addresses need brackets, as in [::1]:9000"));
            }
            check_host(host).map_err(|reason| fail(&reason))?;
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(number) if number > 0 && port_digits_only(port) => number,
            _ => return Err(fail("port must be 1 to 65535")),
        };
        Ok(BackendAddress::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

/// Whether a port is written as plain digits (`u16::from_str` also takes a leading `+`).
fn port_digits_only(port: &str) -> bool {
    port.bytes().all(|b| b.is_ascii_digit())
}

/// Checks an IPv4 address or DNS hostname (letters, digits, `-`, `_`, dot-separated).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing host before the port".to_owned());
    }
    let labels_ok = host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !labels_ok {
        return Err(format!("{host:?} is not a valid hostname or IP address"));
    }
    let numeric = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if numeric && host.parse::<Ipv4Addr>().is_err() {
        return Err(format!("{host:?} is not a valid IPv4 address"));
    }
    Ok(())
}

impl fmt::Display for BackendAddress {
    /// The config form: `10.0.0.7:9000`, `[::1]:9000`, `unix:/run/php/fpm.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendAddress::Tcp { host, port } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            BackendAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
            BackendAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}
