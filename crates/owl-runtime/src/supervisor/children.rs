//! A supervisor's children: in start order, and found by id or by pid in
//! constant time, so that a supervisor of 100,000 children handles each
//! exit, start and stop without scanning the others.
//!
//! A dynamic supervisor may hold millions of children, and a hash map that
//! grows rehashes all its entries at once: 115 ms at a million (measured),
//! one long poll of the supervisor. So its maps are split into parts of
//! unequal size that grow one at a time (see [`shards`](crate::shards)),
//! and its batches yield between starts (see `start_children`).

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};

use std::num::NonZeroU64;
use std::sync::Arc;

use super::{ChildSpec, ChildStatus};
use crate::pid::{Pid, PidId};
use crate::shards::PartedMap;

/// One child: its spec and where it stands. Children started from one spec
/// (a dynamic supervisor's batch) share it.
pub(super) struct Child {
    pub spec: Arc<ChildSpec>,
    /// The running process, by number: its handle is looked up when one is
    /// needed (to stop it, to list it). A handle here would take 8 more
    /// bytes a child, 13 MB for a million of them with the map's slack.
    pid: Option<NonZeroU64>,
    /// Its last restart failed; a retry is queued in the supervisor's mailbox.
    pub restarting: bool,
    /// Failed restarts in a row (for the pause before the next try).
    pub failed_tries: u32,
}

impl Child {
    pub(super) fn new(spec: impl Into<Arc<ChildSpec>>) -> Child {
        Child {
            spec: spec.into(),
            pid: None,
            restarting: false,
            failed_tries: 0,
        }
    }

    /// A child running as `pid`.
    pub(super) fn running(spec: impl Into<Arc<ChildSpec>>, pid: &Pid) -> Child {
        Child {
            pid: number(pid),
            ..Child::new(spec)
        }
    }

    /// The running process's number.
    pub(super) fn pid(&self) -> Option<PidId> {
        self.pid.map(|n| PidId(n.get()))
    }

    pub(super) fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    pub(super) fn status(&self) -> ChildStatus {
        match (self.pid, self.restarting) {
            (Some(_), _) => ChildStatus::Running,
            (None, true) => ChildStatus::Restarting,
            (None, false) => ChildStatus::Stopped,
        }
    }
}

/// A child's pid number: never 0, the node's own.
fn number(pid: &Pid) -> Option<NonZeroU64> {
    NonZeroU64::new(pid.id().0)
}

/// A child's key inside one supervisor. A static child's never changes
/// while the child is known, even across restarts. A dynamic child's is its
/// pid number while it runs (one map then finds it by key and by pid — a
/// second index would cost 29 MB at a million children), and a serial of
/// its own between a failed start and the retry; [`Children::set_pid`]
/// says what it becomes.
pub(super) type Serial = u64;

/// Serials of dynamic children that do not run have the top bit set: no
/// pid number ever reaches it, so the two kinds of key never meet.
const NOT_RUNNING: Serial = 1 << 63;

/// The children themselves.
enum Kept {
    /// A static supervisor's: in start order, found by pid through an index.
    InOrder {
        children: IndexMap<Serial, Child, FxBuildHasher>,
        by_pid: FxHashMap<u64, Serial>,
    },
    /// A dynamic supervisor's: in no order (OTP stops those all at once),
    /// keyed by pid number while running.
    ByPid(PartedMap<Serial, Child>),
}

pub(super) struct Children {
    kept: Kept,
    /// Static children by id (dynamic children are known by pid only).
    by_id: FxHashMap<String, Serial>,
    next: Serial,
}

impl Children {
    /// No children yet: a dynamic supervisor's are kept by pid.
    pub(super) fn new(dynamic: bool) -> Children {
        Children {
            kept: if dynamic {
                Kept::ByPid(PartedMap::default())
            } else {
                Kept::InOrder {
                    children: IndexMap::default(),
                    by_pid: FxHashMap::default(),
                }
            },
            by_id: FxHashMap::default(),
            next: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        match &self.kept {
            Kept::InOrder { children, .. } => children.len(),
            Kept::ByPid(m) => m.len(),
        }
    }

    /// Every child: in start order for a static supervisor.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (Serial, &Child)> + '_> {
        match &self.kept {
            Kept::InOrder { children, .. } => Box::new(children.iter().map(|(s, c)| (*s, c))),
            Kept::ByPid(m) => Box::new(m.iter().map(|(s, c)| (*s, c))),
        }
    }

    /// Serials in start order, from `serial`'s position on (all of them for
    /// `None`; a dynamic supervisor's in no order).
    pub(super) fn serials_from(&self, serial: Option<Serial>) -> Vec<Serial> {
        match &self.kept {
            Kept::InOrder { children, .. } => {
                let start = serial.and_then(|s| children.get_index_of(&s)).unwrap_or(0);
                children.keys().skip(start).copied().collect()
            }
            Kept::ByPid(m) => m.iter().map(|(s, _)| *s).collect(),
        }
    }

    /// A key for a child that does not run.
    fn fresh_serial(&mut self) -> Serial {
        let serial = self.next;
        self.next += 1;
        match self.kept {
            Kept::InOrder { .. } => serial,
            Kept::ByPid(_) => serial | NOT_RUNNING,
        }
    }

    /// Adds a child (last in start order); `keyed` records its id for
    /// lookups (static children). Returns its key.
    pub(super) fn push(&mut self, child: Child, keyed: bool) -> Serial {
        let serial = match (&self.kept, child.pid) {
            (Kept::ByPid(_), Some(pid)) => pid.get(),
            _ => self.fresh_serial(),
        };
        if keyed {
            self.by_id.insert(child.spec.id.clone(), serial);
        }
        match &mut self.kept {
            Kept::InOrder { children, by_pid } => {
                if let Some(pid) = child.pid {
                    by_pid.insert(pid.get(), serial);
                }
                children.insert(serial, child);
            }
            Kept::ByPid(m) => {
                m.insert(serial, child);
            }
        }
        serial
    }

    pub(super) fn get(&self, serial: Serial) -> Option<&Child> {
        match &self.kept {
            Kept::InOrder { children, .. } => children.get(&serial),
            Kept::ByPid(m) => m.get(&serial),
        }
    }

    pub(super) fn get_mut(&mut self, serial: Serial) -> Option<&mut Child> {
        match &mut self.kept {
            Kept::InOrder { children, .. } => children.get_mut(&serial),
            Kept::ByPid(m) => m.get_mut(&serial),
        }
    }

    pub(super) fn by_id(&self, id: &str) -> Option<Serial> {
        self.by_id.get(id).copied()
    }

    pub(super) fn by_pid(&self, pid: &Pid) -> Option<Serial> {
        let id = pid.id().0;
        match &self.kept {
            Kept::InOrder { by_pid, .. } => by_pid.get(&id).copied(),
            Kept::ByPid(m) => m.contains_key(&id).then_some(id),
        }
    }

    /// Records that the child now runs as `pid` (or does not run), and
    /// returns its key from now on: a dynamic child's changes with its pid.
    #[must_use = "a dynamic child's key changes with its pid"]
    pub(super) fn set_pid(&mut self, serial: Serial, pid: Option<Pid>) -> Serial {
        let key = match (&self.kept, &pid) {
            (Kept::InOrder { .. }, _) => serial,
            (Kept::ByPid(_), Some(new)) => new.id().0,
            (Kept::ByPid(_), None) if serial & NOT_RUNNING != 0 => serial,
            (Kept::ByPid(_), None) => self.fresh_serial(),
        };
        let child = match &mut self.kept {
            Kept::InOrder { children, by_pid } => {
                let Some(child) = children.get_mut(&serial) else {
                    return serial;
                };
                if let Some(old) = child.pid {
                    by_pid.remove(&old.get());
                }
                if let Some(new) = &pid {
                    by_pid.insert(new.id().0, serial);
                }
                child
            }
            Kept::ByPid(m) => {
                let Some(child) = m.remove(&serial) else {
                    return serial;
                };
                m.insert(key, child);
                m.get_mut(&key).expect("inserted just now")
            }
        };
        child.restarting = false;
        if pid.is_some() {
            child.failed_tries = 0;
        }
        child.pid = pid.as_ref().and_then(number);
        key
    }

    /// Forgets a child, keeping the start order of the others.
    pub(super) fn remove(&mut self, serial: Serial) -> Option<Child> {
        let child = match &mut self.kept {
            Kept::InOrder { children, by_pid } => {
                let child = children.shift_remove(&serial)?;
                if let Some(pid) = child.pid {
                    by_pid.remove(&pid.get());
                }
                child
            }
            Kept::ByPid(m) => m.remove(&serial)?,
        };
        if self.by_id.get(&child.spec.id) == Some(&serial) {
            self.by_id.remove(&child.spec.id);
        }
        Some(child)
    }

    pub(super) fn clear(&mut self) {
        match &mut self.kept {
            Kept::InOrder { children, by_pid } => {
                children.clear();
                by_pid.clear();
            }
            Kept::ByPid(m) => m.clear(),
        }
        self.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamic supervisor may hold millions of children: each byte of a
    /// child costs a megabyte and a half there, with the map's slack.
    #[test]
    fn a_child_is_three_words() {
        assert_eq!(std::mem::size_of::<Child>(), 24);
    }
}
