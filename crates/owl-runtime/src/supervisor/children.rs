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

/// One child of a static supervisor, or a dynamic child that does not run:
/// its spec and where it stands. Children started from one spec (a dynamic
/// supervisor's batch) share it. A running dynamic child is kept as its
/// spec alone (see [`Kept::ByPid`]).
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

    fn view(&self) -> ChildView<'_> {
        ChildView {
            spec: &self.spec,
            pid: self.pid,
            restarting: self.restarting,
        }
    }
}

/// What the engine reads of a child, however it is kept.
#[derive(Clone, Copy)]
pub(super) struct ChildView<'a> {
    pub spec: &'a Arc<ChildSpec>,
    pid: Option<NonZeroU64>,
    /// Its last restart failed; a retry is queued in the supervisor's mailbox.
    pub restarting: bool,
}

impl ChildView<'_> {
    /// A running dynamic child: its key is its pid number.
    fn running(spec: &Arc<ChildSpec>, pid: Serial) -> ChildView<'_> {
        ChildView {
            spec,
            pid: NonZeroU64::new(pid),
            restarting: false,
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

/// Takes the next serial: a dynamic supervisor's with [`NOT_RUNNING`] set.
fn next_serial(next: &mut Serial, dynamic: bool) -> Serial {
    let serial = *next;
    *next += 1;
    if dynamic {
        serial | NOT_RUNNING
    } else {
        serial
    }
}

/// What a dynamic supervisor keeps of a running child: its spec.
type RunningChild = Arc<ChildSpec>;

/// The children themselves.
enum Kept {
    /// A static supervisor's: in start order, found by pid through an index.
    InOrder {
        children: IndexMap<Serial, Child, FxBuildHasher>,
        by_pid: FxHashMap<u64, Serial>,
    },
    /// A dynamic supervisor's: in no order (OTP stops those all at once).
    /// A running child is its spec alone under its pid number — 16 bytes
    /// an entry, where a whole `Child` would take 32 (24 MB more at a
    /// million children, with the map's slack): it has no failed tries
    /// and no retry pending. The few between a failed start and the retry
    /// wait apart, under serials of their own.
    ByPid {
        running: PartedMap<Serial, RunningChild>,
        waiting: FxHashMap<Serial, Child>,
    },
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
                Kept::ByPid {
                    running: PartedMap::default(),
                    waiting: FxHashMap::default(),
                }
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
            Kept::ByPid { running, waiting } => running.len() + waiting.len(),
        }
    }

    /// Every child: in start order for a static supervisor; a dynamic
    /// one's running children first.
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = (Serial, ChildView<'_>)> + '_> {
        match &self.kept {
            Kept::InOrder { children, .. } => {
                Box::new(children.iter().map(|(s, c)| (*s, c.view())))
            }
            Kept::ByPid { running, waiting } => Box::new(
                running
                    .iter()
                    .map(|(s, spec)| (*s, ChildView::running(spec, *s)))
                    .chain(waiting.iter().map(|(s, c)| (*s, c.view()))),
            ),
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
            Kept::ByPid { .. } => self.iter().map(|(s, _)| s).collect(),
        }
    }

    /// A key for a child that does not run.
    fn fresh_serial(&mut self) -> Serial {
        let dynamic = matches!(self.kept, Kept::ByPid { .. });
        next_serial(&mut self.next, dynamic)
    }

    /// Adds a child (last in start order); `keyed` records its id for
    /// lookups (static children). Returns its key.
    pub(super) fn push(&mut self, child: Child, keyed: bool) -> Serial {
        let serial = match (&self.kept, child.pid) {
            (Kept::ByPid { .. }, Some(pid)) => pid.get(),
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
            Kept::ByPid { running, .. } if child.pid.is_some() => {
                running.insert(serial, child.spec);
            }
            Kept::ByPid { waiting, .. } => {
                waiting.insert(serial, child);
            }
        }
        serial
    }

    pub(super) fn get(&self, serial: Serial) -> Option<ChildView<'_>> {
        match &self.kept {
            Kept::InOrder { children, .. } => children.get(&serial).map(Child::view),
            Kept::ByPid { running, waiting } => match running.get(&serial) {
                Some(spec) => Some(ChildView::running(spec, serial)),
                None => waiting.get(&serial).map(Child::view),
            },
        }
    }

    /// A child that does not run (a running dynamic child has no such state).
    fn not_running_mut(&mut self, serial: Serial) -> Option<&mut Child> {
        match &mut self.kept {
            Kept::InOrder { children, .. } => children.get_mut(&serial),
            Kept::ByPid { waiting, .. } => waiting.get_mut(&serial),
        }
    }

    /// Records a failed restart of a child that does not run: it now waits
    /// for a retry. Returns its failed tries in a row.
    pub(super) fn restart_failed(&mut self, serial: Serial) -> u32 {
        match self.not_running_mut(serial) {
            Some(child) => {
                child.restarting = true;
                child.failed_tries += 1;
                child.failed_tries
            }
            None => 1,
        }
    }

    /// Cancels a pending retry of the child.
    pub(super) fn cancel_retry(&mut self, serial: Serial) {
        if let Some(child) = self.not_running_mut(serial) {
            child.restarting = false;
        }
    }

    pub(super) fn by_id(&self, id: &str) -> Option<Serial> {
        self.by_id.get(id).copied()
    }

    pub(super) fn by_pid(&self, pid: &Pid) -> Option<Serial> {
        let id = pid.id().0;
        match &self.kept {
            Kept::InOrder { by_pid, .. } => by_pid.get(&id).copied(),
            Kept::ByPid { running, .. } => running.contains_key(&id).then_some(id),
        }
    }

    /// Records that the child now runs as `pid` (or does not run), and
    /// returns its key from now on: a dynamic child's changes with its pid.
    #[must_use = "a dynamic child's key changes with its pid"]
    pub(super) fn set_pid(&mut self, serial: Serial, pid: Option<Pid>) -> Serial {
        let new = pid.as_ref().and_then(number);
        let Children { kept, next, .. } = self;
        match kept {
            Kept::InOrder { children, by_pid } => {
                let Some(child) = children.get_mut(&serial) else {
                    return serial;
                };
                if let Some(old) = child.pid {
                    by_pid.remove(&old.get());
                }
                if let Some(new) = new {
                    by_pid.insert(new.get(), serial);
                    child.failed_tries = 0;
                }
                child.restarting = false;
                child.pid = new;
                serial
            }
            Kept::ByPid { running, waiting } => {
                let spec = match (running.remove(&serial), new) {
                    (Some(spec), _) => spec,
                    // Still not running: only its retry is off.
                    (None, None) => {
                        if let Some(child) = waiting.get_mut(&serial) {
                            child.restarting = false;
                        }
                        return serial;
                    }
                    (None, Some(_)) => match waiting.remove(&serial) {
                        Some(child) => child.spec,
                        None => return serial,
                    },
                };
                match new {
                    Some(new) => {
                        running.insert(new.get(), spec);
                        new.get()
                    }
                    None => {
                        let key = next_serial(next, true);
                        waiting.insert(key, Child::new(spec));
                        key
                    }
                }
            }
        }
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
            Kept::ByPid { running, waiting } => match running.remove(&serial) {
                Some(spec) => Child::new(spec),
                None => waiting.remove(&serial)?,
            },
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
            Kept::ByPid { running, waiting } => {
                running.clear();
                waiting.clear();
            }
        }
        self.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamic supervisor may hold millions of children: each byte of a
    /// running child's entry costs a megabyte and a half there, with the
    /// map's slack. The others are few, or a static supervisor's.
    #[test]
    fn a_running_dynamic_child_is_two_words_and_any_other_three() {
        assert_eq!(std::mem::size_of::<(Serial, RunningChild)>(), 16);
        assert_eq!(std::mem::size_of::<Child>(), 24);
    }
}
