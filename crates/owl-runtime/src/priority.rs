//! Process priorities: normal work first, background work with what is left.
//!
//! A node runs two sets of schedulers. Normal processes — the default —
//! run on the node's schedulers. Low-priority processes run on as many
//! *background* schedulers, OS threads that the kernel runs only when the
//! normal schedulers leave it the CPU (nice 19: a weight of 15 against
//! the normal threads' 1,024). The kernel enforces the order at every
//! instruction, not at the next poll: a page's request that wakes up while
//! a million background jobs are queued preempts them at once, and a long
//! poll of a background process cannot delay it.
//!
//! Low work is never starved: the kernel gives a runnable background thread
//! at least 15/1,039 of a core it shares with busy normal threads — about
//! 14 ms of every second — so a low process always makes progress, only
//! slowly while normal work saturates the core. (Measured by
//! `tests/priorities.rs` on one core: a background spinner keeps 1.6–1.8 %
//! of its pace while a normal one saturates the core.)
//!
//! A background process's [`sleep`](crate::Process::sleep) ends on a 4 ms
//! tick (a normal one's on a 1 ms tick): a quarter of the wake-ups — each a
//! context switch of its scheduler thread — for work that waits behind
//! everything else anyway.
//!
//! Per-process CPU time is the wall time of a process's polls, so a
//! background poll that the kernel preempted counts the preemption too:
//! under contention, low processes show more CPU than they used. For the
//! same reason a background poll is reported as long only past ten times
//! the long-poll threshold.
//!
//! Unlike the BEAM, owl offers no `high` or `max`: only a thread with
//! real-time privileges could run ahead of normal work at the kernel, and
//! owl asks for none. Work that must never wait behind the node's own load
//! (cluster gossip and failure detection) runs on its own thread instead.
//!
//! A process's priority is set when it is spawned
//! ([`SpawnOptions::priority`](crate::SpawnOptions::priority), or
//! [`ChildSpec::priority`](crate::supervisor::ChildSpec::priority) for every
//! start and restart of a supervised child) and kept for its life.

use std::fmt;
use std::str::FromStr;

/// How a process competes for the CPU with the node's other processes.
///
/// ```
/// use owl_runtime::{Priority, Runtime, SpawnOptions};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let background = node.spawn_opts(SpawnOptions::new().priority(Priority::Low), |mut p| async move {
///     p.recv::<()>().await;
/// });
/// assert_eq!(node.info(&background).unwrap().priority, Priority::Low);
/// assert_eq!("low".parse::<Priority>(), Ok(Priority::Low));
/// assert_eq!(Priority::default().to_string(), "normal");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Priority {
    /// Background work: runs when normal work leaves the CPU free, and is
    /// never starved (see the [module docs](self)).
    Low = 0,
    /// Everything else: the default.
    #[default]
    Normal = 1,
}

impl Priority {
    /// The name the process table shows: `low` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A priority name that is not `low` or `normal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPriority(pub String);

impl fmt::Display for UnknownPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no priority {:?} (low or normal)", self.0)
    }
}
impl std::error::Error for UnknownPriority {}

impl FromStr for Priority {
    type Err = UnknownPriority;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            other => Err(UnknownPriority(other.to_string())),
        }
    }
}

/// How much lower the background schedulers' CPU priority is than the
/// normal ones' (the most a thread may lower itself without privileges).
pub(crate) const BACKGROUND_NICE: i32 = 19;

/// The tick of background processes' sleeps (normal ones tick every 1 ms).
pub(crate) const BACKGROUND_TICK: std::time::Duration = std::time::Duration::from_millis(4);
