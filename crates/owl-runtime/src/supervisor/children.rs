//! A supervisor's children: in start order, and found by id or by pid in
//! constant time, so that a supervisor of 100,000 children handles each
//! exit, start and stop without scanning the others.

use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};

use std::sync::Arc;

use super::{ChildSpec, ChildStatus};
use crate::pid::{Pid, PidId};

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

#[derive(Default)]
pub(super) struct Children {
    in_order: IndexMap<Serial, Child, FxBuildHasher>,
    /// Static children by id (dynamic children are known by pid only).
    by_id: FxHashMap<String, Serial>,
    by_pid: FxHashMap<PidId, Serial>,
    next: Serial,
}

impl Children {
    pub(super) fn len(&self) -> usize {
        self.in_order.len()
    }

    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = (Serial, &Child)> {
        self.in_order.iter().map(|(s, c)| (*s, c))
    }

    /// Serials in start order, from `serial`'s position on (all of them for `None`).
    pub(super) fn serials_from(&self, serial: Option<Serial>) -> Vec<Serial> {
        let start = serial
            .and_then(|s| self.in_order.get_index_of(&s))
            .unwrap_or(0);
        self.in_order.keys().skip(start).copied().collect()
    }

    /// Appends a child; `keyed` records its id for lookups (static children).
    pub(super) fn push(&mut self, child: Child, keyed: bool) -> Serial {
        let serial = self.next;
        self.next += 1;
        if keyed {
            self.by_id.insert(child.spec.id.clone(), serial);
        }
        if let Some(pid) = &child.pid {
            self.by_pid.insert(pid.id(), serial);
        }
        self.in_order.insert(serial, child);
        serial
    }

    pub(super) fn get(&self, serial: Serial) -> Option<&Child> {
        self.in_order.get(&serial)
    }

    pub(super) fn get_mut(&mut self, serial: Serial) -> Option<&mut Child> {
        self.in_order.get_mut(&serial)
    }

    pub(super) fn by_id(&self, id: &str) -> Option<Serial> {
        self.by_id.get(id).copied()
    }

    pub(super) fn by_pid(&self, pid: &Pid) -> Option<Serial> {
        self.by_pid.get(&pid.id()).copied()
    }

    /// Records that the child now runs as `pid` (or does not run).
    pub(super) fn set_pid(&mut self, serial: Serial, pid: Option<Pid>) {
        let Some(child) = self.in_order.get_mut(&serial) else {
            return;
        };
        if let Some(old) = child.pid.take() {
            self.by_pid.remove(&old.id());
        }
        if let Some(new) = &pid {
            self.by_pid.insert(new.id(), serial);
        }
        child.restarting = false;
        if pid.is_some() {
            child.failed_tries = 0;
        }
        child.pid = pid;
    }

    /// Forgets a child. `keep_order` preserves the start order of the others
    /// (static children); dynamic children have no order to keep, and are
    /// removed in constant time.
    pub(super) fn remove(&mut self, serial: Serial, keep_order: bool) -> Option<Child> {
        let child = if keep_order {
            self.in_order.shift_remove(&serial)
        } else {
            self.in_order.swap_remove(&serial)
        }?;
        if let Some(pid) = &child.pid {
            self.by_pid.remove(&pid.id());
        }
        if self.by_id.get(&child.spec.id) == Some(&serial) {
            self.by_id.remove(&child.spec.id);
        }
        Some(child)
    }

    pub(super) fn clear(&mut self) {
        self.in_order.clear();
        self.by_id.clear();
        self.by_pid.clear();
    }
}
