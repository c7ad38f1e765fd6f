//! The HTTP front end: `edge` answers ACME HTTP-01 and HTTPS redirects
//! before routing, `limits` and `headers` refuse what must not reach a
//! backend (oversized heads, duplicate or malformed Host, odd framing
//! headers), `params` maps a request to FastCGI params (pure), `body` takes
//! request bodies in bounded memory before a backend is picked, `handler`
//! runs a request against the backends, `compress` compresses responses as
//! they stream, `error` says which side failed and
//! what status and retry that means, `response` builds what goes back and
//! logs it, `activity` follows what a client connection is doing (requests
//! in flight, a head being read), `session_watch` spots backends that hand
//! out new sessions to clients that had one, `real_ip` reads the client
//! and scheme from a trusted proxy's forwarding headers, `walk_back`
//! refuses the paths php-fpm's PATH_INFO walk-back would turn into another
//! script or its own pages.

pub mod activity;
pub mod body;
pub mod budget;
pub mod compress;
pub mod edge;
pub mod error;
pub mod files;
pub mod handler;
pub mod headers;
pub mod limits;
pub mod locations;
pub mod params;
pub mod per_client;
pub mod read_ahead;
pub mod real_ip;
pub mod response;
pub mod router;
#[cfg(test)]
mod router_tests;
pub mod send_clock;
pub mod session_watch;
pub mod walk_back;
