//! Process identifiers and monitor references.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};

use crate::process::cell::ProcessCell;

pub(crate) mod id;

pub use id::{ParsePidError, PidId};

/// The identity of a process, unique within its node for the node's lifetime.
///
/// A `Pid` prints and parses like an Erlang pid: `<0.N.0>`. It is a cheap handle
/// that does not keep the process alive: sending to a pid whose process has
/// exited reports [`SendError::NoProcess`](crate::SendError::NoProcess), just as
/// a message to a dead pid vanishes on the BEAM.
///
/// ```
/// use owl_runtime::{Runtime, Pid};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let pid = rt.node().spawn(|mut p| async move { p.recv::<()>().await });
/// let text = pid.to_string();
/// assert!(text.starts_with("<0.") && text.ends_with(".0>"));
/// assert_eq!(text.parse::<owl_runtime::PidId>().unwrap(), pid.id());
/// assert!(rt.node().lookup(pid.id()).is_some());
/// ```
#[derive(Clone)]
pub struct Pid {
    id: PidId,
    cell: Weak<ProcessCell>,
}

impl Pid {
    pub(crate) fn new(id: u64, cell: &Arc<ProcessCell>) -> Pid {
        Pid {
            id: PidId(id),
            cell: Arc::downgrade(cell),
        }
    }

    /// `<0.0.0>`: the sender of signals that come from outside any process.
    pub fn system() -> Pid {
        Pid {
            id: PidId(0),
            cell: Weak::new(),
        }
    }

    /// The pid of a process known only by number that has already ended:
    /// it prints as the process did, and nothing sent to it arrives.
    pub(crate) fn gone(id: PidId) -> Pid {
        Pid {
            id,
            cell: Weak::new(),
        }
    }

    /// The numeric identity of this pid.
    pub fn id(&self) -> PidId {
        self.id
    }

    /// Whether the process is still running (it has not finished exiting).
    pub fn is_alive(&self) -> bool {
        self.cell().is_some_and(|c| !c.has_exited())
    }

    /// The label the process was spawned with (see
    /// [`SpawnOptions::label`](crate::SpawnOptions::label)), while it lives:
    /// what kind of process this is, without asking its node.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let pid = node.spawn_opts(SpawnOptions::new().label("worker"), |mut p| async move {
    ///     p.recv::<()>().await
    /// });
    /// assert_eq!(pid.label().unwrap(), "worker");
    /// node.kill(&pid);
    /// ```
    pub fn label(&self) -> Option<crate::Label> {
        self.cell()
            .filter(|c| !c.has_exited())
            .map(|c| c.label.clone())
    }

    pub(crate) fn cell(&self) -> Option<Arc<ProcessCell>> {
        self.cell.upgrade()
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Pid {}
impl Hash for Pid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}
impl PartialOrd for Pid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}
impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}

/// Identifies one monitor, as returned by [`Process::monitor`](crate::Process::monitor)
/// and carried by the [`Down`](crate::Down) message it produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorRef(pub(crate) u64);

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<0.{}>", self.0)
    }
}

// The id types pick their own part of a parted map (kept here so that
// `shards` stays a leaf module that knows nothing of pids).
impl crate::shards::PartKey for PidId {
    fn part_key(&self) -> u64 {
        self.0
    }
}

impl crate::shards::PartKey for MonitorRef {
    fn part_key(&self) -> u64 {
        self.0
    }
}
