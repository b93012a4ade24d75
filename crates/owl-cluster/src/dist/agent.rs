//! The distribution agent: the process that keeps this node's links and
//! monitors across nodes, on both ends.
//!
//! - A *watch* is a monitor or link a local process holds on a remote
//!   one. The agent monitors the local watcher too, so that a watcher that
//!   ends takes its watches with it (a linked one sends its exit across).
//! - A *held* watch is the remote half: a remote process watching a local
//!   one. The agent monitors the local target and reports its end.
//!
//! Everything a connection carried is tagged with its generation; when a
//! connection is lost, exactly the watches that went over it fire
//! `noconnection`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Down, ExitReason, MonitorRef, Node, Pid, PidId, Process, SpawnOptions};

use super::command::Command;
use super::conn;
use super::splice::Frame;
use super::wire::{self, Head};
use super::{Dest, NodePid, RemoteDown, RemoteExit, RemoteRef, Shared};

/// A monitor or link a local process holds on a remote one, kept small (32
/// bytes): a node may hold hundreds of thousands. The peer is an index into
/// the agent's table of peer names; a watch of a registered name keeps its
/// name aside, in [`State::named`].
#[derive(Debug, Clone, Copy)]
struct Watch {
    watcher: PidId,
    /// The remote process's number (0 for a name).
    target: u64,
    creation: u32,
    generation: u32,
    peer: u32,
    link: bool,
}

#[derive(Debug)]
struct Held {
    peer: Arc<str>,
    generation: u32,
    reference: u64,
    /// The remote watcher (its number is its lane).
    watcher: NodePid,
    target: Pid,
    link: bool,
}

#[derive(Debug, Default)]
struct State {
    watches: HashMap<u64, Watch>,
    /// The names watched by name, by watch.
    named: HashMap<u64, Arc<str>>,
    /// Peer names, interned for [`Watch::peer`].
    peer_names: Vec<Arc<str>>,
    peer_index: HashMap<Arc<str>, u32>,
    /// The agent's monitor of each local watcher, and its watches.
    watchers: HashMap<PidId, (MonitorRef, HashSet<u64>)>,
    /// Slots of all the watchers' sets together (for [`State::table_bytes`]).
    watcher_slots: usize,
    held: HashMap<MonitorRef, Held>,
    held_by_reference: HashMap<(Arc<str>, u64), MonitorRef>,
    /// `Down`s of monitors a reader set for a remote watch whose command
    /// has not come yet (at most one per command in flight).
    early_downs: HashMap<MonitorRef, Down>,
    /// Watches of a lost connection not fired yet, and watches held for
    /// it not ended yet: a batch per poll (see [`FIRE_BATCH`]).
    lost: Vec<u64>,
    lost_held: Vec<MonitorRef>,
}

/// How many watches of a lost node are fired in one poll of the agent:
/// losing a node watched a hundred thousand times never holds a scheduler
/// for long, and the agent takes no other command until all have fired.
const FIRE_BATCH: usize = 1_000;

/// How many messages the agent handles between two yields.
const YIELD_EVERY: u32 = 256;

pub(super) fn child_spec(shared: Arc<Shared>) -> ChildSpec {
    ChildSpec::worker(super::AGENT, move |args| {
        let shared = shared.clone();
        async move {
            let opts = SpawnOptions::new().label("distribution agent");
            let agent = args.spawn_link_opts(opts, {
                let shared = shared.clone();
                move |p| run(shared, p)
            });
            // Known before it first runs: commands sent meanwhile wait in
            // its mailbox rather than being dropped.
            *shared.agent.write() = Some(agent.clone());
            Ok::<_, ExitReason>(agent)
        }
    })
}

/// Aborts the accept loop when the agent ends.
struct Accepting(tokio::task::JoinHandle<()>);

impl Drop for Accepting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run(shared: Arc<Shared>, mut p: Process) {
    // A restarted agent knows no watches: connections from before it are
    // dropped, so that both ends fire theirs.
    if shared.agent_started.swap(true, Ordering::AcqRel) {
        close_all(&shared);
    }
    super::global::spawn_names(&shared, &p);
    let _accepting = Accepting(shared.io.spawn(conn::accept_loop(shared.clone())));
    let mut state = State::default();
    let mut handled = 0u32;
    loop {
        // A burst of commands (ten thousand monitors set at once) is
        // waiting in the mailbox, so receiving never waits: yield now and
        // then, or the burst holds the scheduler in one poll.
        handled = handled.wrapping_add(1);
        if handled.is_multiple_of(YIELD_EVERY) {
            tokio::task::yield_now().await;
        }
        let message = p.recv_any().await;
        match message.downcast::<Command>() {
            Ok(command) => {
                state.command(&shared, &mut p, command);
                while state.fire_lost(&mut p) {
                    tokio::task::yield_now().await;
                }
            }
            Err(message) => {
                if let Ok(down) = message.downcast::<Down>() {
                    state.local_down(&shared, down);
                }
            }
        }
        shared
            .watching
            .store(state.watches.len() as u64, Ordering::Relaxed);
        shared
            .watched_here
            .store(state.held.len() as u64, Ordering::Relaxed);
        shared
            .watch_table_bytes
            .store(state.table_bytes() as u64, Ordering::Relaxed);
    }
}

fn close_all(shared: &Shared) {
    let peers = shared.peers.read();
    for peer in peers.values() {
        match &peer.state {
            super::PeerState::Up { out, .. } | super::PeerState::Dialing(out) => out.close(),
            super::PeerState::Down => {}
        }
    }
}

impl State {
    fn command(&mut self, shared: &Arc<Shared>, p: &mut Process, command: Command) {
        match command {
            Command::Watch {
                reference,
                watcher,
                target,
                link,
                generation,
            } => {
                if !shared.is_live(target.node(), generation) {
                    // The connection it went on broke before we heard of
                    // it: its PeerDown has passed already.
                    let reason = ExitReason::NoConnection;
                    return fire(p.node(), reference, &watcher, link, target, None, reason);
                }
                let peer = self.intern(target.node());
                let (target_id, creation) = match &target {
                    Dest::Pid(pid) => (pid.id().0, pid.creation()),
                    Dest::Name { name, .. } => {
                        self.named.insert(reference, name.as_str().into());
                        (0, 0)
                    }
                };
                let watch = Watch {
                    watcher: watcher.id(),
                    target: target_id,
                    creation,
                    generation,
                    peer,
                    link,
                };
                self.add_watch(p, reference, &watcher, watch);
            }
            Command::WatchNotSent { reference } => {
                if let Some((watch, name)) = self.forget_watch(p, reference) {
                    let reason = ExitReason::NoConnection;
                    self.fire_watch(p.node(), reference, watch, name, None, reason);
                }
            }
            Command::Unwatch { reference } => {
                if let Some((watch, name)) = self.forget_watch(p, reference) {
                    let frame = wire::encode::<()>(&Head::Unwatch { reference }, None);
                    self.send_about(shared, &watch, name.as_deref(), frame);
                }
            }
            Command::RemoteWatch {
                peer,
                generation,
                reference,
                watcher,
                target,
                monitor,
                link,
            } => {
                self.held_by_reference
                    .insert((peer.clone(), reference), monitor);
                self.held.insert(
                    monitor,
                    Held {
                        peer,
                        generation,
                        reference,
                        watcher,
                        target,
                        link,
                    },
                );
                // Its target may have ended before this command came.
                if let Some(down) = self.early_downs.remove(&monitor) {
                    self.local_down(shared, down);
                }
            }
            Command::RemoteUnwatch {
                peer,
                reference,
                exit,
            } => {
                if let Some(monitor) = self.held_by_reference.remove(&(peer, reference)) {
                    p.demonitor(monitor);
                    if let Some(held) = self.held.remove(&monitor)
                        && let Some(reason) = exit
                        && held.link
                    {
                        exit_signal(p.node(), &held.target, held.watcher.into(), reason);
                    }
                }
            }
            Command::RemoteDown {
                peer,
                reference,
                pid,
                reason,
            } => {
                let from_peer = self
                    .watches
                    .get(&reference)
                    .is_some_and(|w| *self.peer_names[w.peer as usize] == *peer);
                if from_peer {
                    let creation = shared.creation_of(&peer);
                    let (watch, name) = self.forget_watch(p, reference).expect("checked above");
                    let pid = (pid != 0)
                        .then_some(creation)
                        .flatten()
                        .map(|c| NodePid::new(&peer, PidId(pid), c));
                    self.fire_watch(p.node(), reference, watch, name, pid, reason);
                }
            }
            Command::PeerDown { peer, generation } => {
                let index = self.peer_index.get(&peer).copied();
                self.lost.extend(
                    self.watches
                        .iter()
                        .filter(|(_, w)| Some(w.peer) == index && w.generation == generation)
                        .map(|(r, _)| *r),
                );
                self.lost_held.extend(
                    self.held
                        .iter()
                        .filter(|(_, h)| h.peer == peer && h.generation == generation)
                        .map(|(m, _)| *m),
                );
            }
        }
    }

    /// Fires up to [`FIRE_BATCH`] watches of a lost connection and ends as
    /// many watches held for it; whether any are left.
    fn fire_lost(&mut self, p: &mut Process) -> bool {
        let keep = self.lost.len().saturating_sub(FIRE_BATCH);
        for reference in self.lost.split_off(keep) {
            if let Some((watch, name)) = self.forget_watch(p, reference) {
                let reason = ExitReason::NoConnection;
                self.fire_watch(p.node(), reference, watch, name, None, reason);
            }
        }
        let keep = self.lost_held.len().saturating_sub(FIRE_BATCH);
        for monitor in self.lost_held.split_off(keep) {
            p.demonitor(monitor);
            if let Some(held) = self.held.remove(&monitor) {
                self.held_by_reference
                    .remove(&(held.peer.clone(), held.reference));
                if held.link {
                    let from = held.watcher.into();
                    exit_signal(p.node(), &held.target, from, ExitReason::NoConnection);
                }
            }
        }
        !self.lost.is_empty() || !self.lost_held.is_empty()
    }

    /// What the tables of local watches take, from their capacities: the
    /// map of watches (entry plus one control byte per slot) and the
    /// watchers' sets of references.
    fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        let watches = self.watches.capacity() * (size_of::<(u64, Watch)>() + 1);
        let watchers = self.watchers.capacity()
            * (size_of::<(PidId, (MonitorRef, HashSet<u64>))>() + 1)
            + self.watcher_slots * (size_of::<u64>() + 1);
        watches + watchers
    }

    /// The index of a peer's name in [`State::peer_names`].
    fn intern(&mut self, peer: &str) -> u32 {
        if let Some(index) = self.peer_index.get(peer) {
            return *index;
        }
        let name: Arc<str> = peer.into();
        let index = self.peer_names.len() as u32;
        self.peer_names.push(name.clone());
        self.peer_index.insert(name, index);
        index
    }

    fn add_watch(&mut self, p: &mut Process, reference: u64, watcher: &Pid, watch: Watch) {
        let (_, references) = self
            .watchers
            .entry(watch.watcher)
            .or_insert_with(|| (p.monitor(watcher), HashSet::new()));
        let before = references.capacity();
        references.insert(reference);
        self.watcher_slots += references.capacity() - before;
        self.watches.insert(reference, watch);
    }

    /// Removes a watch (with its name, if it watched one) and, with its
    /// last one, the agent's monitor of its watcher.
    fn forget_watch(
        &mut self,
        p: &mut Process,
        reference: u64,
    ) -> Option<(Watch, Option<Arc<str>>)> {
        let watch = self.watches.remove(&reference)?;
        if let Some((monitor, references)) = self.watchers.get_mut(&watch.watcher) {
            references.remove(&reference);
            if references.is_empty() {
                p.demonitor(*monitor);
                self.watcher_slots -= references.capacity();
                self.watchers.remove(&watch.watcher);
            }
        }
        Some((watch, self.named.remove(&reference)))
    }

    /// What a watch watched, as the API names it.
    fn dest(&self, watch: &Watch, name: Option<&str>) -> Dest {
        let peer = &self.peer_names[watch.peer as usize];
        match name {
            Some(name) => Dest::named(name, peer),
            None => Dest::Pid(NodePid::new(peer, PidId(watch.target), watch.creation)),
        }
    }

    /// Fires a watch at its watcher (looked up by number: a watcher that
    /// is gone gets nothing).
    fn fire_watch(
        &self,
        node: &Node,
        reference: u64,
        watch: Watch,
        name: Option<Arc<str>>,
        pid: Option<NodePid>,
        reason: ExitReason,
    ) {
        if let Some(watcher) = node.lookup(watch.watcher) {
            let target = self.dest(&watch, name.as_deref());
            fire(node, reference, &watcher, watch.link, target, pid, reason);
        }
    }

    /// Sends a frame about a watch's target, on the connection it went
    /// over.
    fn send_about(
        &self,
        shared: &Arc<Shared>,
        watch: &Watch,
        name: Option<&str>,
        frame: Result<Frame, postcard::Error>,
    ) {
        let lane = match name {
            Some(name) => wire::Target::Name(name).lane(),
            None => wire::Target::Pid {
                id: watch.target,
                creation: watch.creation,
            }
            .lane(),
        };
        let peer = &self.peer_names[watch.peer as usize];
        send_lane(shared, peer, watch.generation, lane, frame);
    }

    /// A local process ended: a watcher (its watches go, links carrying
    /// its exit across) or the target of a remote watch (its end is
    /// reported).
    fn local_down(&mut self, shared: &Arc<Shared>, down: Down) {
        if let Some(held) = self.held.remove(&down.monitor) {
            self.held_by_reference
                .remove(&(held.peer.clone(), held.reference));
            let reason = down.reason.to_string();
            let frame = wire::encode::<()>(
                &Head::Down {
                    reference: held.reference,
                    pid: held.target.id().0,
                    reason: &reason,
                },
                None,
            );
            let lane = wire::pid_lane(held.watcher.id().0);
            send_lane(shared, &held.peer, held.generation, lane, frame);
            return;
        }
        let id = down.pid.id();
        let Some((monitor, references)) = self.watchers.remove(&id) else {
            self.early_downs.insert(down.monitor, down);
            return;
        };
        if monitor != down.monitor {
            self.watchers.insert(id, (monitor, references));
            self.early_downs.insert(down.monitor, down);
            return;
        }
        self.watcher_slots -= references.capacity();
        let reason = down.reason.to_string();
        for reference in references {
            let Some(watch) = self.watches.remove(&reference) else {
                continue;
            };
            let name = self.named.remove(&reference);
            let head = if watch.link {
                Head::LinkExit {
                    reference,
                    reason: &reason,
                }
            } else {
                Head::Unwatch { reference }
            };
            let frame = wire::encode::<()>(&head, None);
            self.send_about(shared, &watch, name.as_deref(), frame);
        }
    }
}

/// Tells a watcher its target ended: an exit signal for a link, a
/// [`RemoteDown`] for a monitor.
pub(super) fn fire(
    node: &Node,
    reference: u64,
    watcher: &Pid,
    link: bool,
    target: Dest,
    pid: Option<NodePid>,
    reason: ExitReason,
) {
    if link {
        exit_signal(node, watcher, pid.map_or(target, Dest::from), reason);
    } else {
        let _ = watcher.send(RemoteDown {
            monitor: RemoteRef(reference),
            target,
            pid,
            reason,
        });
    }
}

/// An exit signal from a process on another node: to a process that
/// traps exits, a [`RemoteExit`] naming it (the runtime's `Exit` can name
/// local processes only); to any other, the runtime's exit signal, with
/// its rules (a normal exit is ignored, any other ends the process).
pub(super) fn exit_signal(node: &Node, to: &Pid, from: Dest, reason: ExitReason) {
    if node.info(to).is_some_and(|info| info.trap_exit) {
        let _ = to.send(RemoteExit { from, reason });
    } else {
        node.exit(to, reason);
    }
}

fn send_lane(
    shared: &Arc<Shared>,
    peer: &str,
    generation: u32,
    lane: u64,
    frame: Result<Frame, postcard::Error>,
) {
    if let (Ok(frame), Some(out)) = (frame, shared.outbound_of(peer, generation)) {
        let _ = out.push(lane, frame);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_watch_stays_small() {
        // With its key and the map's slack this keeps a remote monitor
        // under the BEAM's 88 bytes (docs/benchmarks.md measures it).
        assert!(std::mem::size_of::<super::Watch>() <= 32);
    }
}
