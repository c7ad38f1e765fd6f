//! Backend health: `passive` counts failures of real traffic (nginx's
//! max_fails / fail_timeout).

pub mod passive;
