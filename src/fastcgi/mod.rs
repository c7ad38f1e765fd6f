//! The FastCGI client side: `record` (the codec: bytes in, records out, no
//! I/O), `cgi` (the CGI response head PHP writes into STDOUT), `conn` (one
//! socket to a pool) and `exchange` (one request and its response over it).

pub mod cgi;
pub mod conn;
pub mod exchange;
pub mod params;
pub mod record;
