//! What the round trip showed, applied to what the configuration said.
//!
//! The configuration's judgement of each difference (`session::rules`) is a
//! prediction; the round trip is an observation. [`apply`] puts the two
//! together, node by node:
//!
//! * the `Set-Cookie` the node sent is judged against fpmlb's listener (a
//!   browser refuses it: `cookie_dropped`, whatever the configuration said) and
//!   shown beside the cookie settings that differ;
//! * the expiry the store gave the node's session shows `expires_early`;
//! * a lock still held in the store after the node's request ended is a
//!   `race` finding naming the call and the setting;
//! * when the round trip read sessions both ways through a node whose
//!   difference was judged `lost` or `corrupt` for any session id, the round
//!   trip wins: the difference is overruled, and the report says so; when it
//!   failed through a node whose differences were judged harmless, the round
//!   trip wins too (the node fails) and the report says so;
//! * finally each node's verdict follows its worst counted consequence.

use std::time::Duration;

use crate::session::compare::Difference;
use crate::session::consequence::Consequence;
use crate::session::cookie::{self, SetCookie, SiteOrigin};
use crate::session::locking;
use crate::session::node::NodeConfig;
use crate::session::rules::{Judgement, Proof};
use crate::session::verdict::{Locking, NodeReport, Verdict};

/// Two expiries closer than this are the same setting (the store was read a
/// moment after the write).
const TTL_SLACK: Duration = Duration::from_secs(2);

/// What one node's leg of the round trip saw.
#[derive(Debug, Clone, Default)]
pub struct LegEvidence {
    /// `Set-Cookie` headers of the node's write.
    pub set_cookie: Vec<String>,
    /// The session cookie's name the node used.
    pub session_name: Option<String>,
    /// Remaining life the store gave the session the node wrote.
    pub ttl: Option<Duration>,
    /// The node's session lock, looked for after its requests ended.
    pub locks: Vec<LockSeen>,
    /// Whether the session it wrote was read through the next node.
    pub as_writer: Option<bool>,
    /// Whether it read the session written through the previous node.
    pub as_reader: Option<bool>,
    /// Whether the session it wrote was in the expected store (`None`: no store fpmlb
    /// can read, as for `files`).
    pub in_store: Option<bool>,
}

/// A lock key looked for right after a request ended.
#[derive(Debug, Clone)]
pub struct LockSeen {
    /// The call the request ended with.
    pub call: &'static str,
    pub held: bool,
    /// Its remaining life, when held and the store tells.
    pub remaining: Option<Duration>,
    /// Why the store could not be asked.
    pub error: Option<String>,
}

/// The ini setting behind a `Set-Cookie` attribute.
fn cookie_setting(attribute: &str) -> &'static str {
    match attribute {
        "Secure" => "session.cookie_secure",
        "SameSite" => "session.cookie_samesite",
        "Domain" => "session.cookie_domain",
        "Path" => "session.cookie_path",
        "Max-Age" => "session.cookie_lifetime",
        _ => "session.name",
    }
}

/// Applies the round trip's evidence to every node's differences and sets the verdicts.
pub fn apply(
    reports: &mut [NodeReport],
    configs: &[Option<NodeConfig>],
    seen: &[LegEvidence],
    reference: Option<usize>,
    session_name: &str,
    listener: &SiteOrigin,
) {
    let cookie_of = |i: usize| {
        seen.get(i).and_then(|s| {
            SetCookie::find(
                &s.set_cookie,
                s.session_name.as_deref().unwrap_or(session_name),
            )
        })
    };
    let reference_cookie = reference.and_then(cookie_of);
    let reference_name = reference
        .and_then(|r| reports.get(r))
        .map(|r| r.name.clone());
    let reference_ttl = reference.and_then(|r| seen.get(r)).and_then(|s| s.ttl);
    for (i, report) in reports.iter_mut().enumerate() {
        let (Some(Some(cfg)), Some(leg)) = (configs.get(i), seen.get(i)) else {
            continue;
        };
        let cookie = cookie_of(i);
        if let Some(c) = &cookie {
            cookie_evidence(
                report,
                c,
                reference_cookie.as_ref(),
                reference_name.as_deref(),
                listener,
            );
        } else if leg.as_writer.is_some()
            && let Some(theirs) = &reference_cookie
            && let Some(d) = report
                .differences
                .iter_mut()
                .find(|d| d.setting == "session.use_cookies")
        {
            d.evidence = Some(format!(
                "it sent no session cookie when it started a session; {} sends {}",
                reference_name.as_deref().unwrap_or("the reference node"),
                theirs.header
            ));
        }
        report.set_cookie = cookie;
        ttl_evidence(report, leg.ttl, reference_ttl, reference_name.as_deref());
        lock_evidence(report, cfg, &leg.locks);
        round_trip_wins(report, leg);
        if let Some(worst) = report.worst() {
            if worst.fails() {
                report.worsen(Verdict::Mismatch);
            } else if worst.warns() {
                report.worsen(Verdict::Warning);
            }
        }
        if report.verdict == Verdict::Ok && !report.warnings.is_empty() {
            report.verdict = Verdict::Warning;
        }
    }
    // Nodes without a config keep the verdict the probe gave them.
}

fn cookie_evidence(
    report: &mut NodeReport,
    cookie: &SetCookie,
    reference: Option<&SetCookie>,
    reference_name: Option<&str>,
    listener: &SiteOrigin,
) {
    for refusal in cookie::refusals(cookie, listener) {
        let evidence = format!("Set-Cookie: {} — {}", cookie.header, refusal.why);
        let key = cookie_setting(refusal.attribute);
        if let Some(d) = report.differences.iter_mut().find(|d| d.setting == key) {
            if !d.consequence.fails() {
                // The cookie it really sends wins over the configuration's judgement.
                d.effect = format!(
                    "{} (the configuration judged it {}: the Set-Cookie it sent wins)",
                    refusal.why, d.consequence
                );
                d.consequence = Consequence::CookieDropped;
            }
            d.evidence = Some(evidence);
        } else {
            let mut d = Difference::judged(
                format!("Set-Cookie {}", refusal.attribute),
                refusal.needed,
                refusal.sent,
                Judgement {
                    consequence: Consequence::CookieDropped,
                    effect: format!(
                        "browsers at {} refuse the session cookie",
                        listener.describe()
                    ),
                    proof: Proof::Cookie,
                },
            );
            d.evidence = Some(evidence);
            report.differences.push(d);
        }
    }
    let Some(reference) = reference else { return };
    for (attribute, theirs, ours) in cookie::attributes_differ(reference, cookie) {
        let key = cookie_setting(attribute);
        if let Some(d) = report
            .differences
            .iter_mut()
            .find(|d| d.setting == key && d.evidence.is_none())
        {
            d.evidence = Some(format!(
                "Set-Cookie {attribute}: {ours} here, {theirs} on {} ({})",
                reference_name.unwrap_or("the reference node"),
                cookie.header
            ));
        }
    }
}

fn ttl_evidence(
    report: &mut NodeReport,
    ttl: Option<Duration>,
    reference: Option<Duration>,
    reference_name: Option<&str>,
) {
    let (Some(ttl), Some(reference)) = (ttl, reference) else {
        return;
    };
    let Some(d) = report
        .differences
        .iter_mut()
        .find(|d| d.setting == "session.gc_maxlifetime" && d.proof == Proof::StoreTtl)
    else {
        return;
    };
    let shorter = ttl + TTL_SLACK < reference;
    d.evidence = Some(format!(
        "the store gave the session written here {} s to live, the one written through {} {} s",
        ttl.as_secs(),
        reference_name.unwrap_or("the reference node"),
        reference.as_secs()
    ));
    if shorter && !d.consequence.fails() {
        d.consequence = Consequence::ExpiresEarly;
        d.effect = format!("{} (the store shows it: the round trip wins)", d.effect);
    } else if !shorter && d.consequence == Consequence::ExpiresEarly {
        d.overruled = true;
        d.effect = format!(
            "{} — but the store gave it as long a life: the round trip wins",
            d.effect
        );
    }
}

fn lock_evidence(report: &mut NodeReport, cfg: &NodeConfig, locks: &[LockSeen]) {
    let mut measured = Vec::new();
    for lock in locks {
        measured.push(match (&lock.error, lock.held, lock.remaining) {
            (Some(e), _, _) => format!("after {}: could not look ({e})", lock.call),
            (None, false, _) => format!("after {}: released", lock.call),
            (None, true, Some(d)) => {
                format!(
                    "after {}: still held, {:.1} s to go",
                    lock.call,
                    d.as_secs_f64()
                )
            }
            (None, true, None) => format!("after {}: still held, no expiry", lock.call),
        });
        if lock.held && lock.error.is_none() {
            report
                .differences
                .push(locking::left_behind(cfg, lock.call, lock.remaining));
        }
    }
    report.locking = Some(Locking {
        settings: locking::describe(cfg),
        measured,
    });
}

fn round_trip_wins(report: &mut NodeReport, leg: &LegEvidence) {
    // Sessions shared among the nodes are not enough: what this node wrote must be in
    // the store every node is expected to use (fpmlb's `session:` section may name
    // another one than the nodes agree on).
    let passed =
        leg.as_writer == Some(true) && leg.as_reader == Some(true) && leg.in_store != Some(false);
    let failed = leg.as_writer == Some(false) || leg.as_reader == Some(false);
    if passed {
        for d in report
            .differences
            .iter_mut()
            .filter(|d| d.counts() && d.consequence.fails())
        {
            match d.proof {
                Proof::RoundTrip => {
                    d.overruled = true;
                    d.evidence = Some(format!(
                        "the configuration says {}, but sessions were written and read through this node both ways, in the expected store: the round trip wins",
                        d.consequence
                    ));
                }
                Proof::PerId => {
                    d.evidence = Some(
                        "the round trip passed for its session id, but another id hashes to another server: not overruled".to_string(),
                    );
                }
                _ => {}
            }
        }
    }
    let judged_fine = !report.differences.is_empty()
        && report
            .differences
            .iter()
            .all(|d| d.overruled || !d.consequence.fails());
    if failed && judged_fine && report.verdict.fails() {
        let settings: Vec<&str> = report
            .differences
            .iter()
            .map(|d| d.setting.as_str())
            .collect();
        report.problems.push(format!(
            "the configuration judged {} not to lose sessions, but the round trip failed: the round trip wins",
            settings.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fixtures::node;

    fn diff(setting: &str, consequence: Consequence, proof: Proof) -> Difference {
        Difference::judged(
            setting,
            "a",
            "b",
            Judgement {
                consequence,
                effect: "x".to_string(),
                proof,
            },
        )
    }

    fn leg(writer: bool, reader: bool) -> LegEvidence {
        LegEvidence {
            as_writer: Some(writer),
            as_reader: Some(reader),
            ..LegEvidence::default()
        }
    }

    fn run(report: NodeReport, leg: LegEvidence, listener: &SiteOrigin) -> NodeReport {
        let mut reports = vec![report];
        apply(
            &mut reports,
            &[Some(node("web03", &[]))],
            &[leg],
            None,
            "PHPSESSID",
            listener,
        );
        reports.remove(0)
    }

    #[test]
    fn the_consequence_decides_the_verdict() {
        let cases = [
            (Consequence::Lost, Verdict::Mismatch),
            (Consequence::Corrupt, Verdict::Mismatch),
            (Consequence::ExpiresEarly, Verdict::Mismatch),
            (Consequence::CookieDropped, Verdict::Mismatch),
            (Consequence::Race, Verdict::Warning),
            (Consequence::Fragile, Verdict::Warning),
            (Consequence::Harmless, Verdict::Ok),
        ];
        for (consequence, verdict) in cases {
            let mut r = NodeReport::new("web03", "x");
            r.differences.push(diff("s", consequence, Proof::Config));
            let r = run(r, LegEvidence::default(), &SiteOrigin::default());
            assert_eq!(r.verdict, verdict, "{consequence}");
        }
    }

    #[test]
    fn a_passing_round_trip_overrules_what_it_can_prove() {
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "session.save_path servers",
            Consequence::Lost,
            Proof::RoundTrip,
        ));
        let r = run(r, leg(true, true), &SiteOrigin::default());
        assert_eq!(r.verdict, Verdict::Ok);
        assert!(r.differences[0].overruled);
        assert!(
            r.differences[0]
                .evidence
                .as_deref()
                .unwrap()
                .contains("the round trip wins")
        );

        // A difference that depends on the session id is not disproved by one id.
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "memcached.sess_consistent_hash",
            Consequence::Lost,
            Proof::PerId,
        ));
        let r = run(r, leg(true, true), &SiteOrigin::default());
        assert_eq!(r.verdict, Verdict::Mismatch);
        assert!(!r.differences[0].overruled);

        // Nor when what it wrote is not in the expected store.
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "session.save_handler",
            Consequence::Lost,
            Proof::RoundTrip,
        ));
        let mut elsewhere = leg(true, true);
        elsewhere.in_store = Some(false);
        let r = run(r, elsewhere, &SiteOrigin::default());
        assert_eq!(r.verdict, Verdict::Mismatch);

        // Nor is anything when the round trip failed one way.
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "memcached.sess_prefix",
            Consequence::Lost,
            Proof::RoundTrip,
        ));
        let r = run(r, leg(true, false), &SiteOrigin::default());
        assert_eq!(r.verdict, Verdict::Mismatch);
    }

    #[test]
    fn a_failing_round_trip_wins_over_harmless() {
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "session.sid_length",
            Consequence::Harmless,
            Proof::RoundTrip,
        ));
        r.worsen(Verdict::RoundTripFailed);
        let r = run(r, leg(false, true), &SiteOrigin::default());
        assert_eq!(r.verdict, Verdict::RoundTripFailed);
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("session.sid_length") && p.contains("the round trip wins")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn the_cookie_sent_is_judged_against_the_listener() {
        let mut evidence = leg(true, true);
        evidence.set_cookie = vec!["PHPSESSID=abc; path=/; secure".to_string()];
        // No setting differs (every node marks it Secure), but fpmlb serves http://.
        let r = run(
            NodeReport::new("web03", "x"),
            evidence.clone(),
            &SiteOrigin::default(),
        );
        assert_eq!(r.verdict, Verdict::Mismatch);
        assert_eq!(r.differences[0].setting, "Set-Cookie Secure");
        assert_eq!(r.differences[0].consequence, Consequence::CookieDropped);
        assert!(r.set_cookie.is_some());
        let https = SiteOrigin {
            https: true,
            host: None,
        };
        let r = run(NodeReport::new("web03", "x"), evidence.clone(), &https);
        assert_eq!(r.verdict, Verdict::Ok);

        // A difference judged harmless by the configuration, refused by browsers.
        let mut r = NodeReport::new("web03", "x");
        r.differences.push(diff(
            "session.cookie_secure",
            Consequence::Harmless,
            Proof::Cookie,
        ));
        let r = run(r, evidence, &SiteOrigin::default());
        assert_eq!(r.differences.len(), 1);
        assert_eq!(r.differences[0].consequence, Consequence::CookieDropped);
        assert!(
            r.differences[0]
                .effect
                .contains("the Set-Cookie it sent wins")
        );
    }

    #[test]
    fn locks_left_behind_are_a_race() {
        let mut evidence = leg(true, true);
        evidence.locks = vec![
            LockSeen {
                call: "session_write_close()",
                held: false,
                remaining: None,
                error: None,
            },
            LockSeen {
                call: "session_start(['read_and_close' => true])",
                held: true,
                remaining: Some(Duration::from_secs(14)),
                error: None,
            },
        ];
        let r = run(
            NodeReport::new("web03", "x"),
            evidence,
            &SiteOrigin::default(),
        );
        assert_eq!(r.verdict, Verdict::Warning);
        assert_eq!(r.differences[0].setting, "session lock");
        let locking = r.locking.unwrap();
        assert_eq!(locking.measured[0], "after session_write_close(): released");
        assert!(locking.measured[1].contains("still held, 14.0 s to go"));
    }

    /// web01 (the reference) and web03 with a shorter gc_maxlifetime, their sessions given
    /// `ttls` in the store.
    fn expiry(ttls: [u64; 2]) -> Vec<NodeReport> {
        let mut reports = vec![NodeReport::new("web01", "a"), NodeReport::new("web03", "b")];
        reports[1].differences.push(diff(
            "session.gc_maxlifetime",
            Consequence::ExpiresEarly,
            Proof::StoreTtl,
        ));
        let mut seen = vec![leg(true, true), leg(true, true)];
        for (s, ttl) in seen.iter_mut().zip(ttls) {
            s.ttl = Some(Duration::from_secs(ttl));
        }
        let configs = [Some(node("web01", &[])), Some(node("web03", &[]))];
        apply(
            &mut reports,
            &configs,
            &seen,
            Some(0),
            "PHPSESSID",
            &SiteOrigin::default(),
        );
        reports
    }

    #[test]
    fn the_store_expiry_shows_what_gc_maxlifetime_does() {
        let reports = expiry([1440, 600]);
        assert_eq!(reports[1].verdict, Verdict::Mismatch);
        let evidence = reports[1].differences[0].evidence.as_deref().unwrap();
        assert!(evidence.contains("600 s to live"), "{evidence}");
        // The same expiry in the store overrules the configuration.
        assert_eq!(expiry([1440, 1439])[1].verdict, Verdict::Ok);
    }
}
