//! Credentials in save paths: digested, never shown or compared in clear.

use sha2::{Digest, Sha256};

use super::handler::Handler;
use super::php::{is_c_space, is_scheme, lossy, urldecode};

/// `sha256:` and the first 16 hex digits of SHA-256 of `secret`: how credentials are shown
/// and compared, by the probe as by fpmlb.
pub fn digest_secret(secret: &[u8]) -> String {
    let hash = Sha256::digest(secret);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Whether `s` already is a [`digest_secret`] value (as the probe sends them).
fn is_digest(s: &[u8]) -> bool {
    s.len() == 23
        && s.starts_with(b"sha256:")
        && s[7..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The digest of a secret, or the secret itself when it already is a digest.
pub(super) fn secret_digest(secret: &[u8]) -> String {
    if is_digest(secret) {
        lossy(secret)
    } else {
        digest_secret(secret)
    }
}

/// Whether a query parameter name carries a credential: `auth`, `auth[]`, `auth[user]`,
/// `user`, `pass`, `password`, `stream[passphrase]`, ... (after URL decoding).
fn is_credential_key(raw_key: &str) -> bool {
    const WORDS: &[&str] = &[
        "auth",
        "user",
        "username",
        "pass",
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "sasl_username",
        "sasl_password",
    ];
    let key = lossy(&urldecode(raw_key)).to_ascii_lowercase();
    key.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| WORDS.contains(&word))
}

/// A save path with every credential replaced by its digest, exactly as `conf/probe.php`
/// redacts it before it leaves the node: credential query values (`auth=`, `auth[]=`,
/// `password=`, `stream[passphrase]=`, ...) by the digest of their URL-decoded value, URL
/// userinfo (`user:pass@`) by the digest of the userinfo as written. For `rediscluster` the
/// whole path is one query string. Digests already present are kept, so it is idempotent.
pub fn redact_save_path(handler: &str, save_path: &str) -> String {
    if Handler::from_name(handler) == Handler::RedisCluster {
        return redact_query(save_path);
    }
    let mut out = String::with_capacity(save_path.len());
    let mut entry = String::new();
    for c in save_path.chars() {
        if c == ',' || is_c_space(c) {
            if !entry.is_empty() {
                out.push_str(&redact_entry(&entry));
                entry.clear();
            }
            out.push(c);
        } else {
            entry.push(c);
        }
    }
    if !entry.is_empty() {
        out.push_str(&redact_entry(&entry));
    }
    out
}

/// One server entry of [`redact_save_path`].
pub(super) fn redact_entry(entry: &str) -> String {
    let scheme_len = entry
        .find("://")
        .filter(|&i| is_scheme(&entry[..i]))
        .map_or(0, |i| i + 3);
    let (scheme, rest) = entry.split_at(scheme_len);
    let rest = match rest.find(['/', '?', '@']) {
        Some(at) if rest.as_bytes()[at] == b'@' => {
            format!("{}{}", secret_digest(&rest.as_bytes()[..at]), &rest[at..])
        }
        _ => rest.to_string(),
    };
    let entry = format!("{scheme}{rest}");
    match entry.split_once('?') {
        Some((main, query)) => format!("{main}?{}", redact_query(query)),
        None => entry,
    }
}

/// Credential values of an `a=1&b=2` string replaced by digests.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((key, value)) if is_credential_key(key) => {
                let decoded = urldecode(value);
                format!("{key}={}", secret_digest(&decoded))
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_probe() {
        // Values printed by PHP: 'sha256:' . substr(hash('sha256', $s), 0, 16).
        assert_eq!(digest_secret(b"secret"), "sha256:2bb80d537b1da3e3");
        assert_eq!(digest_secret(b"bob"), "sha256:81b637d8fcd2c6da");
        assert_eq!(digest_secret(b"p@ss"), "sha256:a4048cba70dad0be");
        assert_eq!(digest_secret(b"x y"), "sha256:887fcea6a80333c6");
        assert_eq!(digest_secret(b"alice:pw"), "sha256:ba87b66806fd2d0b");
        assert_eq!(digest_secret(b"hunter2"), "sha256:f52fbd32b2b3b86f");
    }

    #[test]
    fn redaction_matches_the_probe() {
        // (handler, clear path, what conf/probe.php reported for it)
        let cases = [
            (
                "redis",
                "tcp://h:6379?auth=secret&database=2&prefix=app_",
                "tcp://h:6379?auth=sha256:2bb80d537b1da3e3&database=2&prefix=app_",
            ),
            (
                "redis",
                "tcp://h1:6379?auth[]=bob&auth[]=p%40ss&weight=2, \
                 tcp://h2?auth%5Buser%5D=bob&auth%5Bpass%5D=x+y",
                "tcp://h1:6379?auth[]=sha256:81b637d8fcd2c6da&auth[]=sha256:a4048cba70dad0be\
                 &weight=2, tcp://h2?auth%5Buser%5D=sha256:81b637d8fcd2c6da\
                 &auth%5Bpass%5D=sha256:887fcea6a80333c6",
            ),
            (
                "redis",
                "tls://alice:pw@h:6380?stream[passphrase]=abc&stream[verify_peer]=0",
                "tls://sha256:ba87b66806fd2d0b@h:6380?stream[passphrase]=sha256:ba7816bf8f01cfea\
                 &stream[verify_peer]=0",
            ),
            (
                "rediscluster",
                "seed[]=h1:7000&seed[]=h2:7001&timeout=2&auth=s3cr,et&prefix=x",
                "seed[]=h1:7000&seed[]=h2:7001&timeout=2&auth=sha256:1c1bc3b28cbc4a65&prefix=x",
            ),
            (
                "memcached",
                "bob:pw@10.0.0.1:11211, 10.0.0.2:11211:2",
                "sha256:9577648086bd3b50@10.0.0.1:11211, 10.0.0.2:11211:2",
            ),
            (
                "memcache",
                "tcp://u:p@h2:1?x=1",
                "tcp://sha256:fd8f314419e0a57e@h2:1?x=1",
            ),
            (
                "files",
                "2;0600;/var/lib/php/sessions",
                "2;0600;/var/lib/php/sessions",
            ),
            (
                "memcached",
                "PERSISTENT=pool 10.0.0.1:11211",
                "PERSISTENT=pool 10.0.0.1:11211",
            ),
        ];
        for (handler, clear, redacted) in cases {
            assert_eq!(redact_save_path(handler, clear), redacted, "{clear}");
            // Idempotent: the probe's output is left as it is.
            assert_eq!(redact_save_path(handler, redacted), redacted, "{redacted}");
        }
    }
}
