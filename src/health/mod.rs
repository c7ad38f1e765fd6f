//! Backend health: `passive` counts failures of real traffic (nginx's
//! max_fails / fail_timeout), `counter` is the rise/fall hysteresis of
//! active checks, `liveness` probes that a pool answers, `fpm_status` reads
//! php-fpm's status page polled with it, and `runner` runs the liveness and
//! session checks periodically and applies their verdicts.
//!
//! `passive` and `fpm_status` are state each `upstream::Backend` keeps:
//! they use nothing of fpmlb, so upstream may use them (scripts/deps.sh).

pub mod counter;
pub mod fpm_status;
pub mod liveness;
pub mod passive;
pub mod runner;
