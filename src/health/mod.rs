//! Backend health: `passive` counts failures of real traffic (nginx's
//! max_fails / fail_timeout), `counter` is the rise/fall hysteresis of
//! active checks, `liveness` checks that a pool answers, and `runner` runs
//! the checks periodically and applies their verdicts.

pub mod counter;
pub mod fpm_status;
pub mod liveness;
pub mod passive;
pub mod runner;
