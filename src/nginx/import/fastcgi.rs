//! What nginx's stock FastCGI files send, and how each `fastcgi_param` line
//! of a config compares with what fpmlb sends by itself.
//!
//! fpmlb's params are nginx's `fastcgi.conf` plus Debian's
//! `snippets/fastcgi-php.conf` (README, "The FastCGI params fpmlb sends"), so
//! the lines of those files, and the usual spellings of the same values, are
//! dropped; what differs becomes `params:` (a literal value) or a note (a
//! value made of nginx variables fpmlb cannot evaluate).

/// How one `fastcgi_param NAME VALUE [if_not_empty]` line translates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Param {
    /// fpmlb sends the same by itself: the line is dropped.
    Standard,
    /// fpmlb sends about the same; the text says what differs.
    Close(&'static str),
    /// `SCRIPT_FILENAME` (or `DOCUMENT_ROOT`) naming the document root, with
    /// what the root is: the `root` directive, or a literal path.
    Root(RootFrom),
    /// `HTTPS on`: fpmlb's `https: true`.
    HttpsOn,
    /// A literal value: goes to `params:` as is.
    Extra(String),
    /// A value made of variables fpmlb does not have: listed, not sent.
    Untranslatable(&'static str),
}

/// Where a param says the scripts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RootFrom {
    /// `$document_root`: nginx's `root`.
    DocumentRoot,
    /// `$realpath_root`: `root` with symlinks resolved on the nginx host.
    RealpathRoot,
    /// A literal directory.
    Literal(String),
}

/// The values the stock files give each param fpmlb sends, with the
/// spellings configs use for the same thing.
const STANDARD: &[(&str, &[&str])] = &[
    ("QUERY_STRING", &["$query_string", "$args"]),
    ("REQUEST_METHOD", &["$request_method"]),
    ("CONTENT_TYPE", &["$content_type", "$http_content_type"]),
    (
        "CONTENT_LENGTH",
        &["$content_length", "$http_content_length"],
    ),
    ("SCRIPT_NAME", &["$fastcgi_script_name"]),
    ("REQUEST_URI", &["$request_uri"]),
    ("DOCUMENT_URI", &["$document_uri", "$uri"]),
    ("SERVER_PROTOCOL", &["$server_protocol"]),
    ("REQUEST_SCHEME", &["$scheme"]),
    ("GATEWAY_INTERFACE", &["CGI/1.1"]),
    ("REMOTE_ADDR", &["$remote_addr"]),
    ("REMOTE_PORT", &["$remote_port"]),
    ("SERVER_ADDR", &["$server_addr"]),
    ("SERVER_PORT", &["$server_port"]),
    ("SERVER_NAME", &["$server_name"]),
    ("REDIRECT_STATUS", &["200"]),
    ("PATH_INFO", &["$fastcgi_path_info", "$path_info"]),
    // httpoxy: fpmlb never turns a Proxy header into HTTP_PROXY.
    ("HTTP_PROXY", &[""]),
];

/// Classifies one `fastcgi_param` line.
pub(super) fn classify(name: &str, value: &str, if_not_empty: bool) -> Param {
    if let Some((_, values)) = STANDARD.iter().find(|(n, _)| *n == name)
        && values.contains(&value)
    {
        return Param::Standard;
    }
    match (name, value) {
        ("SCRIPT_FILENAME" | "DOCUMENT_ROOT", _) => {
            let root = match name {
                "SCRIPT_FILENAME" => value.strip_suffix("$fastcgi_script_name"),
                _ => Some(value),
            };
            match root {
                Some("$document_root") => Param::Root(RootFrom::DocumentRoot),
                Some("$realpath_root") => Param::Root(RootFrom::RealpathRoot),
                Some(dir) if dir.starts_with('/') && !dir.contains('$') => {
                    Param::Root(RootFrom::Literal(dir.trim_end_matches('/').to_owned()))
                }
                _ if name == "SCRIPT_FILENAME" && value == "$request_filename" => Param::Close(
                    "$request_filename is root + the whole URI: the same as fpmlb's SCRIPT_FILENAME \
                     when the URI has no PATH_INFO",
                ),
                _ => Param::Untranslatable(
                    "fpmlb builds this from document_root and the script's path",
                ),
            }
        }
        ("HTTPS", "$https") if if_not_empty => Param::Standard,
        ("HTTPS", "on") => Param::HttpsOn,
        ("SERVER_SOFTWARE", v) if v.starts_with("nginx") => {
            Param::Close("fpmlb sends SERVER_SOFTWARE=fpmlb/<version>")
        }
        ("REMOTE_USER", "$remote_user") => Param::Close(
            "fpmlb does no HTTP authentication, so REMOTE_USER is never set (nginx sends it empty \
             without auth_basic)",
        ),
        ("HTTP_HOST", "$host") => Param::Close(
            "Debian's fastcgi_params sends the Host header lower-cased without its port ($host); \
             fpmlb sends the Host header as the client sent it (checked as a valid host)",
        ),
        ("SERVER_NAME", "$host" | "$http_host") => Param::Close(
            "fpmlb sends the request's host as SERVER_NAME when server_name is not set",
        ),
        ("PATH_TRANSLATED", _) => Param::Untranslatable("fpmlb does not send PATH_TRANSLATED"),
        (_, v) if v.contains('$') => {
            Param::Untranslatable("the value uses nginx variables, which fpmlb's params cannot")
        }
        (_, v) if if_not_empty && v.is_empty() => Param::Standard,
        (_, v) => Param::Extra(v.to_owned()),
    }
}

/// `fastcgi_split_path_info` regexes and what fpmlb does instead (it always
/// splits after the first path segment ending in `.php`).
pub(super) fn split_path_info(regex: &str) -> Option<Result<(), &'static str>> {
    match regex {
        // Debian's snippet: the first `.php`.
        "^(.+?\\.php)(/.*)$" => Some(Ok(())),
        // The greedy spelling splits at the last `.php/`; the same for every
        // URI with one `.php` segment.
        "^(.+\\.php)(/.*)$" | "^(.+\\.php)(.*)$" | "^(.+\\.php)(/.+)$" => Some(Err(
            "fpmlb splits after the first segment ending in .php; this regex splits after the last \
             (they differ only for URIs with two .php segments)",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of the stock files is dropped (or, for Debian's HTTP_HOST
    /// and nginx's SERVER_SOFTWARE, dropped with a note).
    #[test]
    fn stock_files_translate_to_nothing() {
        for file in [
            include_str!("../../../tests/fixtures/nginx/fastcgi.conf"),
            include_str!("../../../tests/fixtures/nginx/fastcgi_params"),
            include_str!("../../../tests/fixtures/nginx/snippets/fastcgi-php.conf"),
        ] {
            let tree =
                crate::nginx::tree::parse(file.as_bytes(), crate::nginx::tree::FileId(0)).unwrap();
            for d in tree.iter().filter(|d| d.name == "fastcgi_param") {
                let got = classify(
                    &d.args[0],
                    d.arg(1).unwrap_or(""),
                    d.arg(2) == Some("if_not_empty"),
                );
                assert!(
                    matches!(
                        got,
                        Param::Standard | Param::Close(_) | Param::Root(RootFrom::DocumentRoot)
                    ),
                    "{}: {got:?}",
                    d.head()
                );
            }
        }
    }

    #[test]
    fn other_lines() {
        assert_eq!(
            classify("APP_ENV", "prod", false),
            Param::Extra("prod".into())
        );
        assert_eq!(classify("HTTPS", "on", false), Param::HttpsOn);
        assert_eq!(
            classify(
                "SCRIPT_FILENAME",
                "$realpath_root$fastcgi_script_name",
                false
            ),
            Param::Root(RootFrom::RealpathRoot)
        );
        assert_eq!(
            classify("SCRIPT_FILENAME", "/srv/app/$fastcgi_script_name", false),
            Param::Root(RootFrom::Literal("/srv/app".into()))
        );
        assert!(matches!(
            classify("SCRIPT_FILENAME", "$document_root/index.php", false),
            Param::Untranslatable(_)
        ));
        assert!(matches!(
            classify("X_FORWARDED", "$http_x_forwarded_for", false),
            Param::Untranslatable(_)
        ));
        assert_eq!(
            classify("EMPTY", "", true),
            Param::Standard,
            "if_not_empty with an empty value sends nothing"
        );
        assert_eq!(split_path_info("^(.+?\\.php)(/.*)$"), Some(Ok(())));
        assert!(matches!(split_path_info("^(.+\\.php)(/.+)$"), Some(Err(_))));
        assert_eq!(split_path_info("^(.+\\.cgi)(/.*)$"), None);
    }
}
