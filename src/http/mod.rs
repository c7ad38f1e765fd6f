//! The HTTP front end: `params` maps a request to FastCGI params (pure),
//! `body` takes request bodies in bounded memory, `handler` runs a request
//! against the backends, `error` says which side failed and what status and
//! retry that means, `response` builds what goes back and logs it,
//! `activity` counts the requests in flight on a client connection,
//! `session_watch` spots backends that hand out new sessions to clients that
//! had one, `walk_back` refuses the paths php-fpm's PATH_INFO walk-back
//! would turn into another script or its own pages.

pub mod activity;
pub mod body;
pub mod error;
pub mod handler;
pub mod params;
pub mod response;
pub mod session_watch;
pub mod walk_back;
