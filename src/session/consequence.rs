//! What a difference between nodes does to the users' sessions: the
//! [`Consequence`] every difference, store weakness and measurement carries, in
//! words a person reads at a glance, and which verdict it leads to.
//!
//! Only the first four lose something a user sees (their session, or the
//! cookie that carries it): those fail a node (`mismatch`, drained in
//! `serve`). `race` and `fragile` are warnings: sessions are shared today.
//! `harmless` differences are listed as notes and change nothing.

use std::fmt;

use serde::Serialize;

/// What a difference does to sessions, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consequence {
    /// The other nodes will not find a session this node wrote, or the reverse.
    Lost,
    /// It is found but cannot be decoded (another serializer, another compression).
    Corrupt,
    /// Sessions (or their cookie) end sooner than on the other nodes.
    ExpiresEarly,
    /// The browser will not store the session cookie, or not send it back, given
    /// fpmlb's listeners.
    CookieDropped,
    /// Locking differs: concurrent requests of one session may overwrite each other,
    /// or wait for a lock nobody holds any more.
    Race,
    /// Shared today, lost when a store server fails or comes back.
    Fragile,
    /// No effect on whether a session written on one node is read on another.
    Harmless,
}

impl Consequence {
    /// Every consequence, worst first (for documentation and tests).
    pub const ALL: [Consequence; 7] = [
        Consequence::Lost,
        Consequence::Corrupt,
        Consequence::ExpiresEarly,
        Consequence::CookieDropped,
        Consequence::Race,
        Consequence::Fragile,
        Consequence::Harmless,
    ];

    /// The name used in JSON and in the README.
    pub fn as_str(self) -> &'static str {
        match self {
            Consequence::Lost => "lost",
            Consequence::Corrupt => "corrupt",
            Consequence::ExpiresEarly => "expires_early",
            Consequence::CookieDropped => "cookie_dropped",
            Consequence::Race => "race",
            Consequence::Fragile => "fragile",
            Consequence::Harmless => "harmless",
        }
    }

    /// What it means for users, in a few plain words.
    pub fn words(self) -> &'static str {
        match self {
            Consequence::Lost => "sessions lost",
            Consequence::Corrupt => "sessions unreadable",
            Consequence::ExpiresEarly => "sessions end early",
            Consequence::CookieDropped => "session cookie dropped by browsers",
            Consequence::Race => "concurrent requests may overwrite each other",
            Consequence::Fragile => "shared now, lost when a store server fails",
            Consequence::Harmless => "harmless",
        }
    }

    /// Whether it fails the node (a `mismatch`, drained in `serve`).
    pub fn fails(self) -> bool {
        matches!(
            self,
            Consequence::Lost
                | Consequence::Corrupt
                | Consequence::ExpiresEarly
                | Consequence::CookieDropped
        )
    }

    /// Whether it makes the node a `warning` (sessions shared, something to fix).
    pub fn warns(self) -> bool {
        matches!(self, Consequence::Race | Consequence::Fragile)
    }
}

impl fmt::Display for Consequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_four_fail_and_harmless_does_nothing() {
        let failing: Vec<&str> = Consequence::ALL
            .iter()
            .filter(|c| c.fails())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            failing,
            ["lost", "corrupt", "expires_early", "cookie_dropped"]
        );
        let warning: Vec<&str> = Consequence::ALL
            .iter()
            .filter(|c| c.warns())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(warning, ["race", "fragile"]);
        assert!(!Consequence::Harmless.fails() && !Consequence::Harmless.warns());
        // Worst first: the order decides which consequence a node is judged by.
        let mut sorted = Consequence::ALL;
        sorted.sort();
        assert_eq!(sorted, Consequence::ALL);
        assert_eq!(
            serde_json::to_string(&Consequence::CookieDropped).unwrap(),
            "\"cookie_dropped\""
        );
    }
}
