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

use std::sync::Arc;

use super::{ChildSpec, ChildStatus};
use crate::pid::Pid;
use crate::shards::PartedMap;

/// One child: its spec and where it stands. Children started from one spec
/// (a dynamic supervisor's batch) share it.
pub(super) struct Child {
    pub spec: Arc<ChildSpec>,
    pub pid: Option<Pid>,
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

    pub(super) fn status(&self) -> ChildStatus {
        match (&self.pid, self.restarting) {
            (Some(_), _) => ChildStatus::Running,
            (None, true) => ChildStatus::Restarting,
            (None, false) => ChildStatus::Stopped,
        }
    }
}

/// A child's handle inside one supervisor: it never changes while the
/// child is known, even across restarts (a pid does).
pub(super) type Serial = u64;

/// The children themselves: a static supervisor's in start order, a
/// dynamic supervisor's in no order (OTP stops those all at once).
enum Kept {
    InOrder(IndexMap<Serial, Child, FxBuildHasher>),
    Unordered(PartedMap<Serial, Child>),
}

pub(super) struct Children {
    kept: Kept,
    /// Static children by id (dynamic children are known by pid only).
    by_id: FxHashMap<String, Serial>,
    by_pid: PartedMap<u64, Serial>,
    next: Serial,
}

impl Children {
    /// No children yet: a dynamic supervisor's are kept in no order.
    pub(super) fn new(dynamic: bool) -> Children {
        Children {
            kept: if dynamic {
                Kept::Unordered(PartedMap::default())
            } else {
                Kept::InOrder(IndexMap::default())
            },
            by_id: FxHashMap::default(),
            by_pid: PartedMap::default(),
            next: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        match &self.kept {
            Kept::InOrder(m) => m.len(),
            Kept::Unordered(m) => m.len(),
        }
    }

    /// Every child: in start order for a static supervisor.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (Serial, &Child)> + '_> {
        match &self.kept {
            Kept::InOrder(m) => Box::new(m.iter().map(|(s, c)| (*s, c))),
            Kept::Unordered(m) => Box::new(m.iter().map(|(s, c)| (*s, c))),
        }
    }

    /// Serials in start order, from `serial`'s position on (all of them for
    /// `None`; a dynamic supervisor's in no order).
    pub(super) fn serials_from(&self, serial: Option<Serial>) -> Vec<Serial> {
        match &self.kept {
            Kept::InOrder(m) => {
                let start = serial.and_then(|s| m.get_index_of(&s)).unwrap_or(0);
                m.keys().skip(start).copied().collect()
            }
            Kept::Unordered(m) => m.iter().map(|(s, _)| *s).collect(),
        }
    }

    /// Appends a child; `keyed` records its id for lookups (static children).
    pub(super) fn push(&mut self, child: Child, keyed: bool) -> Serial {
        let serial = self.next;
        self.next += 1;
        if keyed {
            self.by_id.insert(child.spec.id.clone(), serial);
        }
        if let Some(pid) = &child.pid {
            self.by_pid.insert(pid.id().0, serial);
        }
        match &mut self.kept {
            Kept::InOrder(m) => {
                m.insert(serial, child);
            }
            Kept::Unordered(m) => {
                m.insert(serial, child);
            }
        }
        serial
    }

    pub(super) fn get(&self, serial: Serial) -> Option<&Child> {
        match &self.kept {
            Kept::InOrder(m) => m.get(&serial),
            Kept::Unordered(m) => m.get(&serial),
        }
    }

    pub(super) fn get_mut(&mut self, serial: Serial) -> Option<&mut Child> {
        match &mut self.kept {
            Kept::InOrder(m) => m.get_mut(&serial),
            Kept::Unordered(m) => m.get_mut(&serial),
        }
    }

    pub(super) fn by_id(&self, id: &str) -> Option<Serial> {
        self.by_id.get(id).copied()
    }

    pub(super) fn by_pid(&self, pid: &Pid) -> Option<Serial> {
        self.by_pid.get(&pid.id().0).copied()
    }

    /// Records that the child now runs as `pid` (or does not run).
    pub(super) fn set_pid(&mut self, serial: Serial, pid: Option<Pid>) {
        let old = match self.get_mut(serial) {
            Some(child) => child.pid.take(),
            None => return,
        };
        if let Some(old) = old {
            self.by_pid.remove(&old.id().0);
        }
        if let Some(new) = &pid {
            self.by_pid.insert(new.id().0, serial);
        }
        let Some(child) = self.get_mut(serial) else {
            return;
        };
        child.restarting = false;
        if pid.is_some() {
            child.failed_tries = 0;
        }
        child.pid = pid;
    }

    /// Forgets a child, keeping the start order of the others.
    pub(super) fn remove(&mut self, serial: Serial) -> Option<Child> {
        let child = match &mut self.kept {
            Kept::InOrder(m) => m.shift_remove(&serial),
            Kept::Unordered(m) => m.remove(&serial),
        }?;
        if let Some(pid) = &child.pid {
            self.by_pid.remove(&pid.id().0);
        }
        if self.by_id.get(&child.spec.id) == Some(&serial) {
            self.by_id.remove(&child.spec.id);
        }
        Some(child)
    }

    pub(super) fn clear(&mut self) {
        match &mut self.kept {
            Kept::InOrder(m) => m.clear(),
            Kept::Unordered(m) => m.clear(),
        }
        self.by_id.clear();
        self.by_pid.clear();
    }
}
