//! Cluster-wide settings, last writer wins.
//!
//! Each node keeps its latest known copy of every setting in its own gossip
//! state under `setting:NAME`, as `STAMP/ORIGIN/VALUE`. The copy with the
//! highest `(stamp, origin)` wins everywhere; a node that sees a newer copy
//! than its own adopts it, so a setting outlives the node that made it.
//! Stamps are wall-clock milliseconds, bumped past the newest stamp known
//! so that a later write on a node with a slow clock still wins.

/// The key prefix of settings in a node's gossip state.
pub(crate) const PREFIX: &str = "setting:";

/// One setting's value and who wrote it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: String,
    /// When it was written (milliseconds since the Unix epoch; 0 for a
    /// node's start-up default, which any real write overrides).
    pub stamp: u64,
    /// The node that wrote it.
    pub origin: String,
}

impl Setting {
    /// True if `self` wins over `other`.
    pub(crate) fn newer_than(&self, other: &Setting) -> bool {
        (self.stamp, &self.origin) > (other.stamp, &other.origin)
    }

    pub(crate) fn encode(&self) -> String {
        format!("{}/{}/{}", self.stamp, self.origin, self.value)
    }

    pub(crate) fn decode(text: &str) -> Option<Setting> {
        let (stamp, rest) = text.split_once('/')?;
        let (origin, value) = rest.split_once('/')?;
        Some(Setting {
            value: value.to_string(),
            stamp: stamp.parse().ok()?,
            origin: origin.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_order_by_stamp_then_origin() {
        let a = Setting {
            value: "30/000".into(),
            stamp: 5,
            origin: "a".into(),
        };
        assert_eq!(Setting::decode(&a.encode()), Some(a.clone()));
        let b = Setting {
            stamp: 5,
            origin: "b".into(),
            ..a.clone()
        };
        let later = Setting {
            stamp: 6,
            ..a.clone()
        };
        assert!(b.newer_than(&a) && !a.newer_than(&b));
        assert!(later.newer_than(&b));
        assert_eq!(Setting::decode("junk"), None);
        assert_eq!(Setting::decode("x/a/1"), None);
    }
}
