//! Cluster-wide names (OTP's `global`) and process groups spanning nodes
//! (OTP's `pg`).
//!
//! Each node owns what its own processes registered and joined, and tells
//! every connected node: at once for each change, and in full (a *sync*)
//! whenever a connection comes up, so that a node that was cut off or
//! restarted catches up. A node that goes down takes its names and members
//! with it everywhere. A process that ends leaves its names and groups.
//!
//! **Conflicts.** Two nodes can hand out the same name while they cannot
//! see each other (a partition, or two registrations at the same instant).
//! When they meet, every node keeps the registration of the node whose name
//! sorts first, the same choice everywhere without a round of messages; the
//! losing process is not killed but told, with a [`NameConflict`] message,
//! and its name is gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use owl_runtime::{Down, MonitorRef, Pid, PidId, Process, SpawnOptions};
use serde::{Deserialize, Serialize};

use super::splice::Frame;
use super::wire::{CONTROL_LANE, Head};
use super::{NodePid, PeerState, Shared};

/// Told to a process whose cluster-wide name went to another process when
/// two registrations met (see the module docs for the rule).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameConflict {
    /// The name it lost.
    pub name: String,
    /// Who holds it now.
    pub winner: NodePid,
}

/// Why a cluster-wide name was not registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalError {
    /// Another process holds it.
    Taken(NodePid),
    /// Names are 1 to 255 bytes.
    BadName,
}

impl std::fmt::Display for GlobalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobalError::Taken(pid) => write!(f, "the name is held by {pid}"),
            GlobalError::BadName => f.write_str("a name is 1 to 255 bytes"),
        }
    }
}
impl std::error::Error for GlobalError {}

/// What one node holds: its names (with the number of the process) and its
/// members by group.
type Held = (Vec<(Arc<str>, u64)>, Vec<(Arc<str>, Vec<u64>)>);

/// The cluster-wide view: every name and every group member, local or not.
#[derive(Debug, Default)]
pub(super) struct Registry {
    names: HashMap<Arc<str>, NodePid>,
    groups: HashMap<Arc<str>, BTreeSet<NodePid>>,
}

impl Registry {
    pub(super) fn whereis(&self, name: &str) -> Option<NodePid> {
        self.names.get(name).cloned()
    }

    pub(super) fn members(&self, group: &str) -> Vec<NodePid> {
        self.groups
            .get(group)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Takes a registration another node announced; returns the local
    /// process that lost the name to it, if one did.
    fn add_name(&mut self, name: &str, pid: NodePid) -> Option<(NodePid, NodePid)> {
        match self.names.get(name) {
            None => {
                self.names.insert(name.into(), pid);
                None
            }
            Some(held) if *held == pid => None,
            Some(held) if held.node() == pid.node() => {
                // The same node says so: its newer word wins.
                self.names.insert(name.into(), pid);
                None
            }
            Some(held) => {
                let held = held.clone();
                if pid.node() < held.node() {
                    self.names.insert(name.into(), pid.clone());
                    Some((held, pid))
                } else {
                    None
                }
            }
        }
    }

    fn remove_name(&mut self, name: &str, pid: &NodePid) {
        if self.names.get(name) == Some(pid) {
            self.names.remove(name);
        }
    }

    fn join(&mut self, group: &str, pid: NodePid) {
        self.groups.entry(group.into()).or_default().insert(pid);
    }

    fn leave(&mut self, group: &str, pid: &NodePid) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(pid);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// The local processes holding a name or a membership.
    fn local_holders(&self, me: &str) -> Vec<PidId> {
        let mut ids: Vec<PidId> = self
            .names
            .values()
            .chain(self.groups.values().flatten())
            .filter(|pid| pid.node() == me)
            .map(|pid| pid.id())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Forgets everything of `node`.
    pub(super) fn drop_node(&mut self, node: &str) {
        self.names.retain(|_, pid| pid.node() != node);
        self.groups.retain(|_, members| {
            members.retain(|pid| pid.node() != node);
            !members.is_empty()
        });
    }

    /// What this node itself holds: its names, and its members by group.
    fn own(&self, me: &str) -> Held {
        let names = self
            .names
            .iter()
            .filter(|(_, pid)| pid.node() == me)
            .map(|(name, pid)| (name.clone(), pid.id().0))
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|(group, members)| {
                let ids = members
                    .iter()
                    .filter(|pid| pid.node() == me)
                    .map(|pid| pid.id().0)
                    .collect::<Vec<_>>();
                (group.clone(), ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        (names, groups)
    }
}

/// What the names process is asked to do.
#[derive(Debug)]
pub(super) enum Own {
    /// Watch a local process that registered a name or joined a group.
    Watch(Pid),
}

/// The names process: it watches the local processes that hold names or
/// group memberships, and removes them everywhere when they end.
pub(super) async fn run(shared: Arc<Shared>, mut p: Process) {
    let mut watched: HashMap<PidId, MonitorRef> = HashMap::new();
    // Named first, then the local holders already known are watched: a
    // registration made meanwhile either saw this process's name and sent
    // it a watch, or came before the scan and is in it.
    *shared.names_process.write() = Some(p.pid().clone());
    let holders: Vec<PidId> = shared.registry.lock().local_holders(&shared.name);
    for id in holders {
        match shared.node.lookup(id) {
            Some(pid) => {
                watched.insert(id, p.monitor(&pid));
            }
            None => forget_local(&shared, id),
        }
    }
    loop {
        let message = p.recv_any().await;
        let message = match message.downcast::<Own>() {
            Ok(Own::Watch(pid)) => {
                if let std::collections::hash_map::Entry::Vacant(entry) = watched.entry(pid.id()) {
                    entry.insert(p.monitor(&pid));
                }
                continue;
            }
            Err(message) => message,
        };
        if let Ok(down) = message.downcast::<Down>() {
            watched.remove(&down.pid.id());
            forget_local(&shared, down.pid.id());
        }
    }
}

pub(super) fn spawn_names(shared: &Arc<Shared>, p: &Process) -> Pid {
    // (Its pid is stored by the process itself, see `run`.)
    let shared = shared.clone();
    p.spawn_opts(
        SpawnOptions::new()
            .label("distribution names")
            .link_to(p.pid().clone()),
        move |names| run(shared, names),
    )
}

/// A local process ended: its names and memberships go, everywhere.
fn forget_local(shared: &Arc<Shared>, id: PidId) {
    let me = NodePid::new(&shared.name, id, shared.creation);
    let (names, groups) = {
        let mut registry = shared.registry.lock();
        let names: Vec<Arc<str>> = registry
            .names
            .iter()
            .filter(|(_, pid)| **pid == me)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &names {
            registry.names.remove(name);
        }
        let groups: Vec<Arc<str>> = registry
            .groups
            .iter()
            .filter(|(_, members)| members.contains(&me))
            .map(|(g, _)| g.clone())
            .collect();
        for group in &groups {
            registry.leave(group, &me);
        }
        (names, groups)
    };
    for name in &names {
        broadcast(shared, &Head::GlobalRemove { name, id: id.0 });
    }
    for group in &groups {
        broadcast(shared, &Head::PgLeave { group, id: id.0 });
    }
}

/// Sends a frame to every connected node.
pub(super) fn broadcast(shared: &Shared, head: &Head<'_>) {
    let Ok(frame) = super::wire::encode::<()>(head, None) else {
        return;
    };
    let peers = shared.peers.read();
    for peer in peers.values() {
        if let PeerState::Up { out, .. } = &peer.state {
            let _ = out.push(CONTROL_LANE, frame.clone());
        }
    }
}

impl Shared {
    fn watch_owner(&self, pid: &Pid) {
        if let Some(names) = &*self.names_process.read() {
            let _ = names.send(Own::Watch(pid.clone()));
        }
    }

    pub(super) fn register_global(&self, name: &str, pid: &Pid) -> Result<(), GlobalError> {
        if name.is_empty() || name.len() > 255 {
            return Err(GlobalError::BadName);
        }
        let me = NodePid::new(&self.name, pid.id(), self.creation);
        {
            let mut registry = self.registry.lock();
            match registry.names.get(name) {
                Some(held) if *held != me => return Err(GlobalError::Taken(held.clone())),
                _ => {
                    registry.names.insert(name.into(), me);
                }
            }
        }
        self.watch_owner(pid);
        broadcast(
            self,
            &Head::GlobalAdd {
                name,
                id: pid.id().0,
            },
        );
        Ok(())
    }

    pub(super) fn unregister_global(&self, name: &str) {
        let removed = {
            let mut registry = self.registry.lock();
            match registry.names.get(name) {
                Some(held) if held.node() == &*self.name => registry.names.remove(name),
                _ => None,
            }
        };
        if let Some(pid) = removed {
            broadcast(
                self,
                &Head::GlobalRemove {
                    name,
                    id: pid.id().0,
                },
            );
        }
    }

    pub(super) fn pg_join(&self, group: &str, pid: &Pid) {
        let me = NodePid::new(&self.name, pid.id(), self.creation);
        self.registry.lock().join(group, me);
        self.watch_owner(pid);
        broadcast(
            self,
            &Head::PgJoin {
                group,
                id: pid.id().0,
            },
        );
    }

    pub(super) fn pg_leave(&self, group: &str, pid: &Pid) {
        let me = NodePid::new(&self.name, pid.id(), self.creation);
        self.registry.lock().leave(group, &me);
        broadcast(
            self,
            &Head::PgLeave {
                group,
                id: pid.id().0,
            },
        );
    }

    /// The full sync sent on a new connection.
    pub(super) fn sync_frame(&self) -> Option<Frame> {
        let (names, groups) = self.registry.lock().own(&self.name);
        let names: Vec<(&str, u64)> = names.iter().map(|(n, id)| (&**n, *id)).collect();
        let groups: Vec<(&str, Vec<u64>)> =
            groups.iter().map(|(g, ids)| (&**g, ids.clone())).collect();
        super::wire::encode::<()>(&Head::Sync { names, groups }, None).ok()
    }

    /// Applies a peer's change or sync.
    pub(super) fn apply_registry(&self, peer: &str, creation: u32, head: Head<'_>) {
        let pid = |id: u64| NodePid::new(peer, PidId(id), creation);
        let mut lost = Vec::new();
        {
            let mut registry = self.registry.lock();
            match head {
                Head::GlobalAdd { name, id } => lost.extend(
                    registry
                        .add_name(name, pid(id))
                        .map(|l| (name.to_string(), l)),
                ),
                Head::GlobalRemove { name, id } => registry.remove_name(name, &pid(id)),
                Head::PgJoin { group, id } => registry.join(group, pid(id)),
                Head::PgLeave { group, id } => registry.leave(group, &pid(id)),
                Head::Sync { names, groups } => {
                    registry.drop_node(peer);
                    for (name, id) in names {
                        lost.extend(
                            registry
                                .add_name(name, pid(id))
                                .map(|l| (name.to_string(), l)),
                        );
                    }
                    for (group, ids) in groups {
                        for id in ids {
                            registry.join(group, pid(id));
                        }
                    }
                }
                _ => {}
            }
        }
        for (name, (loser, winner)) in lost {
            if loser.node() == &*self.name
                && loser.creation() == self.creation
                && let Some(local) = self.node.lookup(loser.id())
            {
                tracing::warn!(target: "owl::dist", node = %self.name, name, %loser, %winner,
                    "a cluster-wide name went to the node that sorts first");
                let _ = local.send(NameConflict { name, winner });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(node: &str, id: u64) -> NodePid {
        NodePid::new(node, PidId(id), 1)
    }

    #[test]
    fn a_conflict_goes_to_the_node_that_sorts_first_whatever_the_order() {
        let mut one = Registry::default();
        one.add_name("leader", pid("b", 5));
        assert_eq!(
            one.add_name("leader", pid("a", 7)),
            Some((pid("b", 5), pid("a", 7)))
        );
        let mut two = Registry::default();
        two.add_name("leader", pid("a", 7));
        assert_eq!(two.add_name("leader", pid("b", 5)), None);
        assert_eq!(one.whereis("leader"), two.whereis("leader"));
    }

    #[test]
    fn a_lost_node_takes_its_names_and_members() {
        let mut r = Registry::default();
        r.add_name("x", pid("b", 1));
        r.join("g", pid("b", 1));
        r.join("g", pid("c", 2));
        r.drop_node("b");
        assert_eq!(r.whereis("x"), None);
        assert_eq!(r.members("g"), vec![pid("c", 2)]);
        r.drop_node("c");
        assert!(r.groups.is_empty(), "an empty group is gone");
    }
}
