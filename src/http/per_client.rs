//! What one client address holds: its connections
//! (`max_connections_per_client`, taken by the accept loop), so that one
//! address cannot take every connection of the global cap (nginx's
//! `limit_conn` on `$binary_remote_addr`, HAProxy's `sc_conn_cur` with a
//! stick table); and its HTTP/2 script requests, at most as many, taken by
//! the handler before it reads the body.
//!
//! An HTTP/1.1 connection carries one request at a time, so a client has
//! at most as many requests at the backends as it has connections. An
//! HTTP/2 connection carries up to 128 at once: without a count of its own,
//! a handful of connections from one address would fill every pool's wait
//! queue (`queue_size`), and every other client would get 503 for as long
//! as it keeps them full. nginx's `limit_conn` counts each HTTP/2 request as
//! a connection for the same reason; here only the requests that go to a
//! backend count, so a browser's burst of static files is never refused.
//!
//! An IPv6 client is counted by its /64: one machine has a whole /64 to
//! pick addresses from. An IPv4-mapped IPv6 address counts as its IPv4.
//!
//! Who holds what: each admitted connection holds a [`ClientSlot`] until it
//! closes, each counted request a [`RequestSlot`] from before its body is
//! read until its response body ends (a streamed response keeps its worker
//! that long); dropping a slot gives it back, and an address with nothing
//! held leaves the table, so the table holds only addresses with
//! connections open.

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
    /// HTTP/2 requests at the backends.
    requests: usize,
    /// When a refusal of a connection from this address was last worth a
    /// warning.
    warned: Option<Instant>,
    /// The same for a request.
    warned_request: Option<Instant>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.open == 0 && self.requests == 0
    }
}

/// Takes one of `count`'s `cap` places, or says whether the refusal is
/// worth a warning (none in the last minute, recorded in `warned`).
fn take(count: &mut usize, cap: usize, warned: &mut Option<Instant>) -> Result<(), AtCap> {
    if *count < cap {
        *count += 1;
        return Ok(());
    }
    let now = Instant::now();
    let warn = warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
    if warn {
        *warned = Some(now);
    }
    Err(AtCap { warn })
}

/// One connection admitted for its client address.
#[derive(Debug)]
pub struct ClientSlot {
    table: Option<Arc<PerClient>>,
    key: IpAddr,
}

/// Where a connection's requests are counted: its client address in the
/// table (see [`ClientSlot::requests`]).
#[derive(Debug, Clone)]
pub struct ClientRequests {
    table: Arc<PerClient>,
    key: IpAddr,
}

/// One request of a client address at the backends.
#[derive(Debug)]
pub struct RequestSlot {
    table: Arc<PerClient>,
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
        take(&mut entry.open, self.cap, &mut entry.warned)?;
        Ok(ClientSlot {
            table: Some(Arc::clone(self)),
            key,
        })
    }

    /// Gives back one of `key`'s connections or requests.
    fn give_back(&self, key: IpAddr, which: fn(&mut Entry) -> &mut usize) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = open.get_mut(&key) {
            let count = which(entry);
            *count = count.saturating_sub(1);
            if entry.is_empty() {
                open.remove(&key);
            }
        }
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

impl ClientSlot {
    /// Where the connection's HTTP/2 requests are counted; None when
    /// nothing is counted (no cap).
    pub fn requests(&self) -> Option<ClientRequests> {
        let table = self.table.as_ref()?;
        Some(ClientRequests {
            table: Arc::clone(table),
            key: self.key,
        })
    }
}

impl ClientRequests {
    /// Takes a place for one request at the backends, unless the address
    /// has as many there as it may have connections.
    pub fn take(&self) -> Result<RequestSlot, AtCap> {
        let table = &self.table;
        let mut open = table.open.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = open.entry(self.key).or_default();
        take(&mut entry.requests, table.cap, &mut entry.warned_request)?;
        Ok(RequestSlot {
            table: Arc::clone(table),
            key: self.key,
        })
    }

    /// The address counted.
    pub fn address(&self) -> IpAddr {
        self.key
    }

    /// The most requests it may have at the backends.
    pub fn cap(&self) -> usize {
        self.table.cap
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some(table) = &self.table {
            table.give_back(self.key, |e| &mut e.open);
        }
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.table.give_back(self.key, |e| &mut e.requests);
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

    #[test]
    fn requests_are_counted_apart_from_connections_up_to_the_same_cap() {
        let table = PerClient::new(2);
        let conn = table.admit(ip("10.0.0.1")).unwrap();
        let requests = conn.requests().unwrap();
        let r1 = requests.take().unwrap();
        let _r2 = requests.take().unwrap();
        assert_eq!(requests.take().unwrap_err(), AtCap { warn: true });
        assert_eq!(requests.take().unwrap_err(), AtCap { warn: false });
        // Connections have their own count: one more still comes in.
        let _conn2 = table.admit(ip("10.0.0.1")).unwrap();
        // Another address is not held back.
        let other = table.admit(ip("10.0.0.2")).unwrap();
        assert!(other.requests().unwrap().take().is_ok());
        // A request done frees its place.
        drop(r1);
        assert!(requests.take().is_ok());
    }

    #[test]
    fn an_address_leaves_the_table_when_it_holds_nothing() {
        let table = PerClient::new(4);
        let conn = table.admit(ip("10.0.0.1")).unwrap();
        let requests = conn.requests().unwrap();
        let request = requests.take().unwrap();
        drop(conn);
        assert_eq!(table.addresses(), 1, "a request still held");
        drop(request);
        assert_eq!(table.addresses(), 0);
        assert!(
            PerClient::new(0)
                .admit(ip("10.0.0.1"))
                .unwrap()
                .requests()
                .is_none()
        );
    }
}
