//! php-fpm's own pool figures, from its `pm.status_path` page in JSON
//! (`?json`), fetched over FastCGI on the health interval.

use serde::{Deserialize, Serialize};

/// A pool's status page, as php-fpm names the fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct FpmStatus {
    pub pool: String,
    #[serde(rename(deserialize = "process manager"))]
    pub process_manager: String,
    #[serde(rename(deserialize = "start since"), default)]
    pub start_since: u64,
    #[serde(rename(deserialize = "accepted conn"), default)]
    pub accepted_conn: u64,
    #[serde(rename(deserialize = "listen queue"), default)]
    pub listen_queue: u64,
    #[serde(rename(deserialize = "max listen queue"), default)]
    pub max_listen_queue: u64,
    #[serde(rename(deserialize = "listen queue len"), default)]
    pub listen_queue_len: u64,
    #[serde(rename(deserialize = "idle processes"), default)]
    pub idle_processes: u64,
    #[serde(rename(deserialize = "active processes"), default)]
    pub active_processes: u64,
    #[serde(rename(deserialize = "total processes"), default)]
    pub total_processes: u64,
    #[serde(rename(deserialize = "max active processes"), default)]
    pub max_active_processes: u64,
    #[serde(rename(deserialize = "max children reached"), default)]
    pub max_children_reached: u64,
    #[serde(rename(deserialize = "slow requests"), default)]
    pub slow_requests: u64,
}

impl FpmStatus {
    /// Parses the JSON status page.
    pub fn parse(body: &[u8]) -> Result<FpmStatus, String> {
        serde_json::from_slice(body)
            .map_err(|e| format!("php-fpm status page is not the JSON expected: {e}"))
    }

    /// The pool's `pm.max_children` when php-fpm lets us know it: with
    /// `pm = static` every child always runs. (php-fpm reports no maximum
    /// for dynamic or ondemand pools, and does not answer FCGI_MAX_CONNS.)
    pub fn known_max_children(&self) -> Option<u64> {
        (self.process_manager == "static" && self.total_processes > 0)
            .then_some(self.total_processes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"pool":"web01","process manager":"static","start time":1763688000,"start since":42,"accepted conn":17,"listen queue":0,"max listen queue":1,"listen queue len":511,"idle processes":3,"active processes":1,"total processes":4,"max active processes":2,"max children reached":0,"slow requests":0}"#;

    #[test]
    fn parses_php_fpm_json_status() {
        let s = FpmStatus::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(s.pool, "web01");
        assert_eq!(
            (s.idle_processes, s.active_processes, s.total_processes),
            (3, 1, 4)
        );
        assert_eq!(s.listen_queue_len, 511);
        assert_eq!(s.known_max_children(), Some(4));
        // Serialised with snake_case names for status.json.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["idle_processes"], 3);
        assert_eq!(j["max_children_reached"], 0);
    }

    #[test]
    fn dynamic_pools_do_not_tell_their_maximum() {
        let s = FpmStatus::parse(SAMPLE.replace("static", "dynamic").as_bytes()).unwrap();
        assert_eq!(s.known_max_children(), None);
        assert!(FpmStatus::parse(b"pool: web01").is_err());
    }
}
