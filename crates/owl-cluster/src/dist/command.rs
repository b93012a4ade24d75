//! What the distribution agent is asked to do, by the API and by the
//! connections.

use std::sync::Arc;

use owl_runtime::{ExitReason, MonitorRef, Pid};

use super::{Dest, NodePid};

/// What the agent is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// A local process watches a remote one. Sent before its frame is
    /// queued (on connection `generation`), so that the agent knows the
    /// watch before any answer to it can arrive.
    Watch {
        reference: u64,
        watcher: Pid,
        target: Dest,
        link: bool,
        generation: u32,
    },
    /// The frame of watch `reference` could not be queued: it fires
    /// `noconnection` at once.
    WatchNotSent { reference: u64 },
    /// A local process drops a monitor.
    Unwatch { reference: u64 },
    /// A remote process watches a local one.
    RemoteWatch {
        peer: Arc<str>,
        generation: u32,
        reference: u64,
        /// The remote process that asked.
        watcher: NodePid,
        /// The local process, already monitored for the agent by the
        /// connection's reader (so that the monitor is in place before the
        /// next frame is delivered).
        target: Pid,
        monitor: MonitorRef,
        link: bool,
    },
    /// A remote watcher is done: it dropped its monitor, or (`exit`) its
    /// linked process ended with that reason.
    RemoteUnwatch {
        peer: Arc<str>,
        reference: u64,
        exit: Option<ExitReason>,
    },
    /// A remote process this node watches ended.
    RemoteDown {
        peer: Arc<str>,
        reference: u64,
        pid: u64,
        reason: ExitReason,
    },
    /// A connection is gone.
    PeerDown { peer: Arc<str>, generation: u32 },
}
