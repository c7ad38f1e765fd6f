//! fpmlb: a FastCGI load balancer for php-fpm pools that checks, all the
//! time, that every pool shares PHP sessions through the same store.
//!
//! How a request flows, and where each part lives: docs/architecture.md.

#![forbid(unsafe_code)]

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod fastcgi;
pub mod health;
pub mod http;
pub mod nginx;
pub mod runtime;
pub mod save_path;
pub mod server;
pub mod session;
pub mod tls;
pub mod upstream;
