//! The save path syntaxes of php-memcached (`memcached`) and pecl-memcache (`memcache`).

use super::handler::Handler;
use super::php::{
    is_scheme, leading_number, parse_query, parse_url, split_entries, translate_unix,
};
use super::secret::redact_entry;
use super::spec::{Server, StoreSpec, positive_weight, record_tuning};

/// `memcached`: libmemcached's `memcached_servers_parse`, as php-memcached 3 calls it.
pub(super) fn parse_memcached(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    let mut rest = save_path.trim();
    if let Some(after) = rest.strip_prefix("PERSISTENT=") {
        let Some((id, servers)) = after.split_once(' ') else {
            return Err(
                "memcached: PERSISTENT=<id> must be followed by a space and the servers"
                    .to_string(),
            );
        };
        spec.notes.push(format!(
            "PERSISTENT={id} is php-memcached 2 syntax: php-memcached 3 refuses this save_path \
             (use memcached.sess_persistent = 1)"
        ));
        rest = servers.trim();
    } else if rest.contains("PERSISTENT=") {
        spec.notes
            .push("PERSISTENT= in the save_path: php-memcached 3 refuses it".to_string());
    }
    if rest.contains("--SERVER") {
        return Err(
            "memcached: libmemcached configuration strings (--SERVER=...) are not \
                    accepted by php-memcached 3 sessions"
                .to_string(),
        );
    }
    for raw in rest.split(',') {
        let mut entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        if let Some((scheme, _)) = entry.split_once("://")
            && is_scheme(scheme)
        {
            // libmemcached reads "tcp://h:11211" as the host "tcp" (port 0, then the default):
            // a URL copied from a memcache or redis save path, never a working server.
            return Err(format!(
                "memcached: '{}': php-memcached takes host:port or /path/to.sock, not a URL \
                 (it would look for a host named '{scheme}')",
                redact_entry(entry)
            ));
        }
        if let Some((_, host)) = entry.rsplit_once('@') {
            spec.notes.push(format!(
                "{}: php-memcached does not take credentials from the save_path (use \
                 memcached.sess_sasl_username/password)",
                redact_entry(entry)
            ));
            entry = host;
        }
        spec.servers.push(memcached_server(entry)?);
    }
    Ok(())
}

/// One `memcached_servers_parse` entry: host up to the first `:`, the port's digits, then a
/// weight after a space or a second `:`.
fn memcached_server(entry: &str) -> Result<Server, String> {
    let (host, after) = if let Some(v6) = entry.strip_prefix('[') {
        let Some((host, rest)) = v6.split_once(']') else {
            return Err(format!("memcached: '{entry}': missing ']'"));
        };
        (host, rest.strip_prefix(':'))
    } else {
        match entry.split_once(':') {
            Some((host, rest)) => (host, Some(rest)),
            None => (entry, None),
        }
    };
    let host = host.trim();
    let (port, weight) = match after {
        None => (0, 0),
        Some(rest) => {
            let weight = rest
                .find(' ')
                .or_else(|| rest.find(':'))
                .map_or(0, |i| leading_number(&rest[i + 1..]));
            (leading_number(rest), weight)
        }
    };
    let weight = u32::try_from(weight).unwrap_or(u32::MAX).max(1);
    if host.starts_with('/') {
        return Ok(Server::unix(host, weight));
    }
    if host.is_empty() {
        return Err(format!("memcached: '{entry}': no host"));
    }
    let port = match port {
        0 => Handler::Memcached.default_port(),
        p => u16::try_from(p).map_err(|_| format!("memcached: '{entry}': port out of range"))?,
    };
    Ok(Server::tcp(host, port, weight))
}

/// `memcache`: pecl-memcache's PS_OPEN_FUNC, URLs separated by commas or whitespace.
pub(super) fn parse_memcache(save_path: &str, spec: &mut StoreSpec) -> Result<(), String> {
    let mut queries = Vec::new();
    for entry in split_entries(save_path) {
        let url = parse_url(&translate_unix(entry))
            .map_err(|e| format!("memcache: '{}': {e}", redact_entry(entry)))?;
        if url.userinfo.is_some() {
            spec.notes.push(format!(
                "{}: pecl-memcache ignores credentials in the save_path",
                redact_entry(entry)
            ));
        }
        let params = parse_query(url.query.as_deref().unwrap_or(""));
        queries.push(params.clone());
        let weight = positive_weight(&params, "memcache", entry)?;
        let server = if url.scheme.as_deref() == Some("file") {
            let Some(path) = url.path.as_deref().filter(|p| !p.is_empty()) else {
                return Err(format!(
                    "memcache: '{}': no socket path",
                    redact_entry(entry)
                ));
            };
            Server::unix(path, weight)
        } else {
            let Some(host) = url.host.as_deref().filter(|h| !h.is_empty()) else {
                return Err(format!(
                    "memcache: '{}': no host (pecl-memcache wants tcp://host:port)",
                    redact_entry(entry)
                ));
            };
            let port = url.port.unwrap_or(Handler::Memcache.default_port());
            if port == 0 {
                spec.notes.push(format!(
                    "{}: no port: pecl-memcache connects to port 0 and fails (write :11211)",
                    redact_entry(entry)
                ));
            }
            // pecl-memcache ignores the scheme: tcp://, udp:// and none all mean TCP.
            Server::tcp(host, port, weight)
        };
        spec.servers.push(server);
    }
    // memcache_session.c PS_OPEN_FUNC reads these to connect; they do not place keys.
    record_tuning(
        spec,
        &["persistent", "timeout", "retry_interval", "udp_port"],
        &queries,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::save_path::testing::{ini, servers, spec};
    use crate::save_path::{Handler, parse_save_path, parse_with, warnings};

    #[test]
    fn memcached_syntaxes() {
        let s = spec(
            "memcached",
            "10.0.0.1:11211, 10.0.0.2,/var/run/mc.sock, Cache.Example:11212:3, 10.0.0.4:11213 2",
        );
        assert_eq!(
            servers(&s),
            [
                "10.0.0.1:11211",
                "10.0.0.2:11211",
                "unix:/var/run/mc.sock",
                "cache.example:11212",
                "10.0.0.4:11213"
            ]
        );
        assert!(!s.order_matters);
        assert_eq!(s.distribution, "ketama consistent hashing");
        assert!(s.options.is_empty());
        assert!(s.notes.is_empty());
        // Spaces do not separate servers: libmemcached reads the second as a weight.
        assert_eq!(
            servers(&spec("memcached", "10.0.0.1:11211 10.0.0.2:11211")),
            ["10.0.0.1:11211"]
        );
        assert_eq!(servers(&spec("memcached", "[::1]:11211")), ["[::1]:11211"]);
    }

    #[test]
    fn memcached_weights_count_only_with_ketama_weighted() {
        let p = "10.0.0.1:11211:3, 10.0.0.2:11211 2, 10.0.0.3:11211:0";
        assert_eq!(
            servers(&spec("memcached", p)),
            ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
        );
        let weighted = ini(&[("memcached.sess_consistent_hash_type", "ketama_weighted")]);
        let s = parse_with(&Handler::Memcached, p, &weighted).unwrap();
        assert_eq!(
            servers(&s),
            [
                "10.0.0.1:11211 weight 3",
                "10.0.0.2:11211 weight 2",
                "10.0.0.3:11211"
            ]
        );
        assert_eq!(s.distribution, "weighted ketama consistent hashing");
        let modula = ini(&[("memcached.sess_consistent_hash", "0")]);
        let s = parse_with(&Handler::Memcached, p, &modula).unwrap();
        assert!(s.order_matters);
        assert!(s.servers.iter().all(|s| s.weight == 1));
    }

    #[test]
    fn memcached_persistent_prefix_and_credentials_are_noted() {
        let s = spec("memcached", "PERSISTENT=pool 10.0.0.1:11211,10.0.0.2:11211");
        assert_eq!(servers(&s), ["10.0.0.1:11211", "10.0.0.2:11211"]);
        assert!(
            warnings(&s)
                .iter()
                .any(|w| w.contains("php-memcached 3 refuses"))
        );

        let s = spec("memcached", "bob:hunter2@10.0.0.1:11211");
        assert_eq!(servers(&s), ["10.0.0.1:11211"]);
        let w = warnings(&s).join("\n");
        assert!(
            w.contains("memcached.sess_sasl_username") && !w.contains("hunter2"),
            "{w}"
        );
    }

    #[test]
    fn memcached_rejects_what_php_memcached_cannot_use() {
        for p in [
            "--SERVER=10.0.0.1:11211",
            "10.0.0.1:99999",
            "",
            " , ",
            "PERSISTENT=pool",
            "[::1:11211",
        ] {
            assert!(parse_save_path("memcached", p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn memcached_refuses_urls() {
        // libmemcached would look for a host named "tcp": never what was meant.
        for p in [
            "tcp://",
            "tcp://10.0.0.1:11211",
            "10.0.0.1:11211, udp://10.0.0.2:11211",
            "unix:///run/mc.sock",
            "tcp://bob:hunter2@10.0.0.1:11211",
        ] {
            let err = parse_save_path("memcached", p).unwrap_err();
            assert!(err.contains("not a URL"), "{p:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        // The same paths are fine for pecl-memcache, which takes URLs.
        assert!(parse_save_path("memcache", "tcp://10.0.0.1:11211").is_ok());
    }

    #[test]
    fn memcache_syntaxes() {
        let s = spec(
            "memcache",
            "tcp://Mc1:11211?persistent=1&weight=2&timeout=1&retry_interval=15, udp://mc2:11211 \
             10.0.0.3:11212,unix:///var/run/memcached.sock",
        );
        assert_eq!(
            servers(&s),
            [
                "mc1:11211 weight 2",
                "mc2:11211",
                "10.0.0.3:11212",
                "unix:/var/run/memcached.sock"
            ]
        );
        assert!(!s.order_matters);
        assert_eq!(s.distribution, "consistent hashing");
        assert!(s.notes.is_empty());
        assert_eq!(
            spec("memcache", "tcp://mc2:11211"),
            spec("memcache", "udp://mc2:11211")
        );
    }

    #[test]
    fn memcache_without_port_is_port_zero() {
        // Seen on a real node: pecl-memcache then fails to write the session.
        let s = spec("memcache", "tcp://10.0.0.1");
        assert_eq!(servers(&s), ["10.0.0.1:0"]);
        assert!(warnings(&s).iter().any(|w| w.contains("port 0")));
        assert!(parse_save_path("memcache", "localhost").is_err());
        assert!(parse_save_path("memcache", "tcp://h:11211?weight=0").is_err());
    }
}
