//! Naming a process on any node: [`NodePid`] and [`Dest`].

use std::fmt;
use std::sync::Arc;

use owl_runtime::PidId;
use serde::{Deserialize, Serialize};

/// A process on some node of the cluster: its node's name, its number
/// there, and which incarnation of that node it belongs to (a node that
/// restarts under the same name does not inherit its old pids).
///
/// It prints as the dashboards write a process of another node, and it
/// serializes, so a message can carry a pid to answer to:
///
/// ```
/// use owl_cluster::dist::NodePid;
/// use owl_runtime::PidId;
///
/// let pid = NodePid::new("b", PidId(45), 7);
/// assert_eq!(pid.to_string(), "b <0.45.0>");
/// let bytes = serde_json::to_string(&pid).unwrap();
/// assert_eq!(serde_json::from_str::<NodePid>(&bytes).unwrap(), pid);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "WirePid", from = "WirePid")]
pub struct NodePid {
    node: Arc<str>,
    id: PidId,
    creation: u32,
}

#[derive(Serialize, Deserialize)]
struct WirePid {
    node: String,
    id: u64,
    creation: u32,
}

impl From<NodePid> for WirePid {
    fn from(pid: NodePid) -> WirePid {
        WirePid {
            node: pid.node.to_string(),
            id: pid.id.0,
            creation: pid.creation,
        }
    }
}

impl From<WirePid> for NodePid {
    fn from(pid: WirePid) -> NodePid {
        NodePid::new(&pid.node, PidId(pid.id), pid.creation)
    }
}

impl NodePid {
    /// The process numbered `id` on incarnation `creation` of `node`.
    pub fn new(node: &str, id: PidId, creation: u32) -> NodePid {
        NodePid {
            node: node.into(),
            id,
            creation,
        }
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The number of the process on its node.
    pub fn id(&self) -> PidId {
        self.id
    }

    /// The incarnation of the node the process runs on.
    pub fn creation(&self) -> u32 {
        self.creation
    }
}

impl fmt::Display for NodePid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.node, self.id)
    }
}

impl fmt::Debug for NodePid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a message, call, link or monitor goes: a process, or whatever
/// process holds a registered name on a node when it arrives (Erlang's
/// `{Name, Node}`).
///
/// ```
/// use owl_cluster::dist::{Dest, NodePid};
/// use owl_runtime::PidId;
///
/// assert_eq!(Dest::named("pong", "b").node(), "b");
/// assert_eq!(Dest::from(NodePid::new("c", PidId(3), 1)).to_string(), "c <0.3.0>");
/// assert_eq!(Dest::named("pong", "b").to_string(), "pong on b");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dest {
    /// One process.
    Pid(NodePid),
    /// A registered name on a node.
    Name {
        /// The registered name.
        name: String,
        /// The node it is registered on.
        node: String,
    },
}

impl Dest {
    /// The process registered as `name` on `node`.
    pub fn named(name: &str, node: &str) -> Dest {
        Dest::Name {
            name: name.to_string(),
            node: node.to_string(),
        }
    }

    /// The node it is on.
    pub fn node(&self) -> &str {
        match self {
            Dest::Pid(pid) => pid.node(),
            Dest::Name { node, .. } => node,
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Pid(pid) => fmt::Display::fmt(pid, f),
            Dest::Name { name, node } => write!(f, "{name} on {node}"),
        }
    }
}

impl From<NodePid> for Dest {
    fn from(pid: NodePid) -> Dest {
        Dest::Pid(pid)
    }
}

impl From<&NodePid> for Dest {
    fn from(pid: &NodePid) -> Dest {
        Dest::Pid(pid.clone())
    }
}

impl From<&Dest> for Dest {
    fn from(dest: &Dest) -> Dest {
        dest.clone()
    }
}
