//! The per-client connection cap (`max_connections_per_client`): how many
//! connections one client address holds open, so that one address cannot
//! take every connection of the global cap (nginx's `limit_conn` on
//! `$binary_remote_addr`, HAProxy's `sc_conn_cur` with a stick table).
//!
//! An IPv6 client is counted by its /64: one machine has a whole /64 to
//! pick addresses from. An IPv4-mapped IPv6 address counts as its IPv4.
//!
//! Who holds what: each admitted connection holds a [`ClientSlot`] until it
//! closes; dropping the slot gives it back, and an address with no slot left
//! leaves the table, so the table holds only addresses with connections open.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one warning per address this often: an address at its cap that
/// keeps knocking must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The counts by client address.
#[derive(Debug)]
pub struct PerClient {
    /// 0: no cap (no table kept either).
    cap: usize,
    open: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    open: usize,
    /// When a refusal of this address was last worth a warning.
    warned: Option<Instant>,
}

/// One connection admitted for its client address.
#[derive(Debug)]
pub struct ClientSlot {
    table: Option<Arc<PerClient>>,
    key: IpAddr,
}

/// The address was at its cap.
#[derive(Debug, PartialEq, Eq)]
pub struct AtCap {
    /// Worth a warning: none was given for this address in the last minute
    /// (the others are for the debug log).
    pub warn: bool,
}

/// The address a client is counted by.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

impl PerClient {
    pub fn new(cap: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for a connection from `ip`, unless its address is at the cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ClientSlot, AtCap> {
        let key = client_key(ip);
        if self.cap == 0 {
            return Ok(ClientSlot { table: None, key });
        }
        // A poisoned lock still holds valid counts: a panic elsewhere must
        // not stop the server from accepting.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = open.entry(key).or_default();
        if entry.open >= self.cap {
            let now = Instant::now();
            let warn = entry
                .warned
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if warn {
                entry.warned = Some(now);
            }
            return Err(AtCap { warn });
        }
        entry.open += 1;
        Ok(ClientSlot {
            table: Some(Arc::clone(self)),
            key,
        })
    }

    /// Connections open from `ip`'s address.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&client_key(ip)).map_or(0, |e| e.open)
    }

    /// Client addresses with a connection open.
    pub fn addresses(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some(table) = &self.table else { return };
        let mut open = table.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = open.get_mut(&self.key) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_at_most_its_cap() {
        let table = PerClient::new(2);
        let a1 = table.admit(ip("10.0.0.1")).unwrap();
        let _a2 = table.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            table.admit(ip("10.0.0.1")).unwrap_err(),
            AtCap { warn: true }
        );
        assert_eq!(
            table.admit(ip("10.0.0.1")).unwrap_err(),
            AtCap { warn: false }
        );
        // Another address is not held back.
        let _b = table.admit(ip("10.0.0.2")).unwrap();
        // A closed connection frees its slot.
        drop(a1);
        let _a3 = table.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(table.open(ip("10.0.0.1")), 2);
        // Still at its cap: one warning a minute, not one per knock.
        assert_eq!(
            table.admit(ip("10.0.0.1")).unwrap_err(),
            AtCap { warn: false }
        );
    }

    #[test]
    fn the_table_forgets_addresses_with_nothing_open() {
        let table = PerClient::new(4);
        let slots: Vec<ClientSlot> = (1..=50)
            .map(|i| table.admit(ip(&format!("10.0.1.{i}"))).unwrap())
            .collect();
        assert_eq!(table.addresses(), 50);
        drop(slots);
        assert_eq!(table.addresses(), 0);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let table = PerClient::new(2);
        let _a = table.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = table.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(table.admit(ip("2001:db8:1:2:dead::beef")).is_err());
        assert!(table.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _c = table.admit(ip("::ffff:10.0.0.1")).unwrap();
        let _d = table.admit(ip("10.0.0.1")).unwrap();
        assert!(table.admit(ip("10.0.0.1")).is_err());
    }

    #[test]
    fn zero_is_no_cap() {
        let table = PerClient::new(0);
        let slots: Vec<ClientSlot> = (0..1000)
            .map(|_| table.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(slots.len(), 1000);
        assert_eq!(table.addresses(), 0);
    }
}
