//! The FastCGI client side, a leaf: it uses nothing else of fpmlb.
//! `record` (the codec: bytes in, records out, no I/O), `params` (the
//! name-value pairs of one request, in one buffer), `cgi` (the CGI response
//! head PHP writes into STDOUT), `conn` (where a pool listens, and one
//! socket to it), `exchange` (one request and its response over a
//! connection it is lent; pooling is upstream's) and `question` (whether a
//! worker is free, asked on a connection of its own).

pub mod cgi;
pub mod conn;
pub mod exchange;
pub mod params;
pub mod question;
pub mod record;
