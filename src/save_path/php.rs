//! How PHP itself reads strings, as far as save paths need it: URLs (`php_url_parse_ex`),
//! query strings (`treat_data`), `urldecode`, integers, floats and ini booleans.

use percent_encoding::percent_decode;

/// The parts of a URL as PHP's `php_url_parse_ex` splits them (enough of it for save paths).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Url {
    pub(super) scheme: Option<String>,
    pub(super) userinfo: Option<String>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) path: Option<String>,
    pub(super) query: Option<String>,
}

/// The extensions read `unix:...` as `file:...`.
pub(super) fn translate_unix(entry: &str) -> String {
    match entry.strip_prefix("unix:") {
        Some(rest) => format!("file:{rest}"),
        None => entry.to_string(),
    }
}

pub(super) fn parse_url(entry: &str) -> Result<Url, String> {
    // phpredis puts a #fragment back onto the query; keep it there.
    let (main, query) = match entry.split_once('?') {
        Some((main, query)) => (main, Some(query.to_string())),
        None => (entry.split('#').next().unwrap_or(entry), None),
    };
    let mut url = Url {
        query,
        ..Url::default()
    };
    if let Some((scheme, rest)) = main.split_once("://")
        && is_scheme(scheme)
    {
        url.scheme = Some(scheme.to_ascii_lowercase());
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        url.path = path.map(str::to_string);
        parse_authority(authority, &mut url)?;
        return Ok(url);
    }
    if let Some(rest) = main
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("file:"))
        .and_then(|_| main.get(5..))
    {
        url.scheme = Some("file".to_string());
        url.path = Some(rest.to_string());
        return Ok(url);
    }
    if !main.starts_with('/')
        && let Some((_, port)) = main.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        // PHP reads "host:6379" as host and port, not as a scheme.
        parse_authority(main, &mut url)?;
        return Ok(url);
    }
    // PHP reads "localhost" and "/run/redis.sock" as a path.
    url.path = Some(main.to_string());
    Ok(url)
}

pub(super) fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'))
}

pub(super) fn parse_authority(authority: &str, url: &mut Url) -> Result<(), String> {
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            url.userinfo = Some(userinfo.to_string());
            hostport
        }
        None => authority,
    };
    let (host, port) = split_host_port(hostport)?;
    url.host = Some(host).filter(|h| !h.is_empty());
    url.port = port;
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; host lowercased without brackets.
pub(super) fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return Err("missing ']' after an IPv6 address".to_string());
        };
        if !rest.is_empty() && !rest.starts_with(':') {
            return Err("unexpected text after ']'".to_string());
        }
        (host, rest.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((host, port)) if port.contains(':') => {
                return Err(format!("'{host}:{port}': put IPv6 addresses in brackets"));
            }
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid port '{p}'"));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("port '{p}' out of range"))?,
            )
        }
    };
    Ok((normalise_host(host), port))
}

pub(super) fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// Entries of a server list: separated by commas or C `isspace` characters.
pub(super) fn split_entries(path: &str) -> impl Iterator<Item = &str> {
    path.split(|c: char| c == ',' || is_c_space(c))
        .filter(|e| !e.is_empty())
}

pub(super) fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Parameters PHP's `treat_data` takes from one string (`max_input_vars`'
/// default); the rest it drops with a warning, and so does this.
const MAX_INPUT_VARS: usize = 1000;

/// `a=1&b[]=2` as PHP's `treat_data(PARSE_STRING)` sees it: decoded keys and values, in order,
/// the first [`MAX_INPUT_VARS`].
pub(super) fn parse_query(query: &str) -> Vec<(String, Vec<u8>)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .take(MAX_INPUT_VARS)
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (lossy(&urldecode(key)), urldecode(value))
        })
        .collect()
}

/// The last value of the scalar parameter `name`.
pub(super) fn query_get<'a>(params: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// PHP's `urldecode`: `+` is a space, `%XX` a byte, anything else kept.
pub(super) fn urldecode(s: &str) -> Vec<u8> {
    let plus: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus).collect()
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// PHP's string to integer conversion: leading blanks, a sign, digits; anything else is 0.
pub(super) fn php_int(bytes: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if negative { -n } else { n }
}

pub(super) fn php_float(bytes: &[u8]) -> f64 {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    s.parse::<f64>()
        .unwrap_or_else(|_| php_int(s.as_bytes()) as f64)
}

/// Leading decimal digits of `s` (after blanks), as C's `strtoul` reads a port or weight.
pub(super) fn leading_number(s: &str) -> u64 {
    let s = s.trim_start();
    s.bytes().take_while(u8::is_ascii_digit).fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

/// PHP's `zend_ini_parse_bool`.
pub(crate) fn parse_bool(value: &str) -> bool {
    let v = value.trim();
    ["true", "yes", "on"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
        || php_int(v.as_bytes()) != 0
}
