//! Which `locations:` entry a request path falls in, in nginx's documented
//! precedence (ngx_http_core_module, "location"): an exact `= /x` that
//! equals the path wins at once; else the longest matching prefix is
//! remembered, and if it is a `^~` one it wins; else the regexes are tried
//! in file order and the first that matches wins; else the remembered
//! prefix, if any. Prefixes compare bytes, case-sensitively (nginx on Linux);
//! the path is the decoded, normalised one (nginx's `$uri`).
//!
//! Where nginx's PCRE and fpmlb differ (see `config::site`): PCRE's `$`
//! also matches before a final newline (`/x.php%0A` matches `\.php$` in
//! nginx, not in fpmlb); lookaround and backreferences run on a bounded
//! backtracking engine; possessive quantifiers, atomic groups beyond what
//! fancy-regex reads, recursion and callouts are refused by `config test`;
//! nested locations do not exist.

use crate::config::{Location, LocationMatch, RegexGaveUp};

/// The location `uri` falls in, if any.
///
/// # Errors
///
/// A lookaround regex gave up on this path (its backtracking bound).
pub fn select<'a>(
    locations: &'a [Location],
    uri: &[u8],
) -> Result<Option<&'a Location>, RegexGaveUp> {
    let mut longest: Option<&Location> = None;
    let mut longest_len = 0;
    for location in locations {
        match &location.matcher {
            LocationMatch::Exact(p) if p.as_bytes() == uri => return Ok(Some(location)),
            LocationMatch::Prefix(p) | LocationMatch::PrefixNoRegex(p)
                if uri.starts_with(p.as_bytes())
                    && (longest.is_none() || p.len() > longest_len) =>
            {
                longest = Some(location);
                longest_len = p.len();
            }
            _ => {}
        }
    }
    if let Some(l) = longest
        && matches!(l.matcher, LocationMatch::PrefixNoRegex(_))
    {
        return Ok(Some(l));
    }
    for location in locations {
        if let LocationMatch::Regex(re) = &location.matcher
            && re.is_match(uri)?
        {
            return Ok(Some(location));
        }
    }
    Ok(longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn locations(matches: &[&str]) -> Vec<Location> {
        let mut yaml = String::from(
            "listen: \":8080\"\ndocument_root: /srv\nbackends: [{name: a, address: \"127.0.0.1:9000\"}]\nlocations:\n",
        );
        for m in matches {
            yaml.push_str(&format!(
                "  - match: {}\n",
                serde_json::to_string(m).unwrap()
            ));
        }
        Config::from_yaml(&yaml).unwrap().locations
    }

    fn which(locs: &[Location], uri: &str) -> Option<String> {
        select(locs, uri.as_bytes())
            .unwrap()
            .map(|l| l.matcher.to_string())
    }

    /// nginx's own example (ngx_http_core_module docs, "location"): "/" → A,
    /// "/index.html" → B, "/documents/document.html" → C,
    /// "/images/1.gif" → D, "/documents/1.jpg" → E.
    #[test]
    fn nginx_documentation_example() {
        let l = locations(&[
            "= /",
            "/",
            "/documents/",
            "^~ /images/",
            "~* \\.(gif|jpg|jpeg)$",
        ]);
        assert_eq!(which(&l, "/").as_deref(), Some("= /"));
        assert_eq!(which(&l, "/index.html").as_deref(), Some("/"));
        assert_eq!(
            which(&l, "/documents/document.html").as_deref(),
            Some("/documents/")
        );
        assert_eq!(which(&l, "/images/1.gif").as_deref(), Some("^~ /images/"));
        assert_eq!(
            which(&l, "/documents/1.jpg").as_deref(),
            Some("~* \\.(gif|jpg|jpeg)$")
        );
    }

    #[test]
    fn longest_prefix_regex_order_and_caseless() {
        let l = locations(&[
            "/a/",
            "/a/b/",
            "^~ /a/b/c/",
            "~ \\.php$",
            "~ ^/a/.*\\.php$",
            "~* \\.PNG$",
        ]);
        assert_eq!(which(&l, "/a/x").as_deref(), Some("/a/"));
        assert_eq!(which(&l, "/a/b/x").as_deref(), Some("/a/b/"));
        assert_eq!(which(&l, "/a/b/c/x.php").as_deref(), Some("^~ /a/b/c/"));
        // Regexes in file order: the first that matches, not the longest.
        assert_eq!(which(&l, "/a/x.php").as_deref(), Some("~ \\.php$"));
        assert_eq!(which(&l, "/z/x.png").as_deref(), Some("~* \\.PNG$"));
        assert_eq!(which(&l, "/z/x.PhP"), None, "~ is case-sensitive");
        assert_eq!(which(&l, "/A/x"), None, "prefixes are case-sensitive");
        // A ^~ that is not the longest prefix does not stop the regexes.
        let l = locations(&["^~ /s/", "/s/img/", "~ \\.gif$"]);
        assert_eq!(which(&l, "/s/img/a.gif").as_deref(), Some("~ \\.gif$"));
        assert_eq!(which(&l, "/s/a.gif").as_deref(), Some("^~ /s/"));
        // An exact match beats everything, only on the very path.
        let l = locations(&["= /x", "^~ /x", "~ x"]);
        assert_eq!(which(&l, "/x").as_deref(), Some("= /x"));
        assert_eq!(which(&l, "/x/").as_deref(), Some("^~ /x"));
    }
}
