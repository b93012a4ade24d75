//! Damped takeover: a node takes on the share of a node that went down
//! only once it has stayed down for [`TAKEOVER_GRACE`]; giving a share
//! back (a node came up, or the target fell) happens at once.
//!
//! A false "down" — a peer that answers late for a moment — must not hand
//! this node the peer's whole share: at a million jobs that doubles the
//! load on a core that is already the reason the peer answered late, and
//! the next false "up" stops half a million workers again. A flap shorter
//! than the grace changes nothing; a real death costs the grace on top of
//! detection (about 2.5 s), well inside the five seconds a takeover may take.

use std::time::{Duration, Instant};

/// How long a node must stay down before its share moves.
pub const TAKEOVER_GRACE: Duration = Duration::from_millis(1500);

/// What the share should be now, given what it is and what the cluster
/// says it would be.
#[derive(Debug, Default)]
pub(super) struct Takeover {
    /// The nodes up when the share was last applied.
    counted: Vec<String>,
    /// Since when a larger share has waited because a counted node is gone.
    waiting_since: Option<Instant>,
}

/// The verdict for one look at the cluster.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Apply this share now.
    Apply(u64),
    /// Keep the current share; look again by `until`. `started`: the wait
    /// began with this look.
    Wait { until: Instant, started: bool },
}

impl Takeover {
    /// `wanted` is the share for the nodes `up` now; `current` the share
    /// being run.
    pub(super) fn decide(
        &mut self,
        current: u64,
        wanted: u64,
        up: &[String],
        now: Instant,
    ) -> Verdict {
        let lost_a_node = self.counted.iter().any(|n| !up.contains(n));
        if wanted > current && lost_a_node {
            let started = self.waiting_since.is_none();
            let since = *self.waiting_since.get_or_insert(now);
            if now.duration_since(since) < TAKEOVER_GRACE {
                return Verdict::Wait {
                    until: since + TAKEOVER_GRACE,
                    started,
                };
            }
        }
        self.waiting_since = None;
        self.counted = up.to_vec();
        Verdict::Apply(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_flap_shorter_than_the_grace_never_moves_the_share() {
        let t0 = Instant::now();
        let mut takeover = Takeover::default();
        let both = nodes(&["a", "b"]);
        let alone = nodes(&["a"]);
        assert_eq!(takeover.decide(0, 500, &both, t0), Verdict::Apply(500));
        // b looks dead for a second, then answers again.
        let waited = takeover.decide(500, 1_000, &alone, t0 + Duration::from_millis(10));
        let until = t0 + Duration::from_millis(10) + TAKEOVER_GRACE;
        assert_eq!(
            waited,
            Verdict::Wait {
                until,
                started: true
            }
        );
        assert_eq!(
            takeover.decide(500, 1_000, &alone, t0 + Duration::from_millis(900)),
            Verdict::Wait {
                until,
                started: false
            }
        );
        assert_eq!(
            takeover.decide(500, 500, &both, t0 + Duration::from_secs(1)),
            Verdict::Apply(500)
        );
        // A later flap waits its own full grace.
        let again = t0 + Duration::from_secs(5);
        assert!(matches!(
            takeover.decide(500, 1_000, &alone, again),
            Verdict::Wait { started: true, .. }
        ));
    }

    #[test]
    fn a_real_death_is_taken_over_after_the_grace() {
        let t0 = Instant::now();
        let mut takeover = Takeover::default();
        takeover.decide(0, 500, &nodes(&["a", "b"]), t0);
        let alone = nodes(&["a"]);
        assert!(matches!(
            takeover.decide(500, 1_000, &alone, t0),
            Verdict::Wait { .. }
        ));
        assert_eq!(
            takeover.decide(500, 1_000, &alone, t0 + TAKEOVER_GRACE),
            Verdict::Apply(1_000)
        );
    }

    #[test]
    fn giving_back_and_target_changes_apply_at_once() {
        let t0 = Instant::now();
        let mut takeover = Takeover::default();
        let both = nodes(&["a", "b"]);
        takeover.decide(0, 500, &both, t0);
        // The operator raises the target: no node lost, no wait.
        assert_eq!(
            takeover.decide(500, 5_000, &both, t0),
            Verdict::Apply(5_000)
        );
        // A third node joins: the share shrinks at once.
        let three = nodes(&["a", "b", "c"]);
        assert_eq!(
            takeover.decide(5_000, 3_334, &three, t0),
            Verdict::Apply(3_334)
        );
        // One leaves and the target falls together: a smaller share, at once.
        assert_eq!(
            takeover.decide(3_334, 1_000, &both, t0),
            Verdict::Apply(1_000)
        );
    }
}
