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

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Down, ExitReason, MonitorRef, Node, Pid, PidId, Process, SpawnOptions};

use super::command::Command;
use super::conn;
use super::wire::{self, Head};
use super::{Dest, NodePid, RemoteDown, RemoteRef, Shared, target_of};

#[derive(Debug)]
pub(super) struct Watch {
    pub(super) peer: Arc<str>,
    pub(super) generation: u64,
    pub(super) watcher: Pid,
    pub(super) target: Dest,
    pub(super) link: bool,
}

#[derive(Debug)]
struct Held {
    peer: Arc<str>,
    generation: u64,
    reference: u64,
    /// The remote watcher's number: its lane.
    watcher: u64,
    target: Pid,
    link: bool,
}

#[derive(Debug, Default)]
struct State {
    watches: HashMap<u64, Watch>,
    /// The agent's monitor of each local watcher, and its watches.
    watchers: HashMap<PidId, (MonitorRef, Vec<u64>)>,
    held: HashMap<MonitorRef, Held>,
    held_by_reference: HashMap<(Arc<str>, u64), MonitorRef>,
    /// `Down`s of monitors a reader set for a remote watch whose command
    /// has not come yet (at most one per command in flight).
    early_downs: HashMap<MonitorRef, Down>,
}

pub(super) fn child_spec(shared: Arc<Shared>) -> ChildSpec {
    ChildSpec::worker(super::AGENT, move |args| {
        let shared = shared.clone();
        async move {
            let opts = SpawnOptions::new().label("distribution agent");
            Ok::<_, ExitReason>(args.spawn_link_opts(opts, move |p| run(shared, p)))
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
    // A new agent knows no watches: connections from before it are
    // dropped, so that their peers fire theirs.
    close_all(&shared);
    *shared.registry.lock() = super::global::Registry::default();
    *shared.names_process.write() = Some(super::global::spawn_names(&shared, &p));
    *shared.agent.write() = Some(p.pid().clone());
    let _accepting = Accepting(shared.io.spawn(conn::accept_loop(shared.clone())));
    let mut state = State::default();
    loop {
        let message = p.recv_any().await;
        match message.downcast::<Command>() {
            Ok(command) => state.command(&shared, &mut p, command),
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
                let watch = Watch {
                    peer: target.node().into(),
                    generation,
                    watcher,
                    target,
                    link,
                };
                if !shared.is_live(&watch.peer, generation) {
                    // The connection it went on broke before we heard of
                    // it: its PeerDown has passed already.
                    return fire(p.node(), reference, watch, None, ExitReason::NoConnection);
                }
                self.add_watch(p, reference, watch);
            }
            Command::Unwatch { reference } => {
                if let Some(watch) = self.forget_watch(p, reference) {
                    let frame = wire::encode::<()>(&Head::Unwatch { reference }, None);
                    send_to(shared, &watch.peer, watch.generation, &watch.target, frame);
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
                        p.node().exit(&held.target, reason);
                    }
                }
            }
            Command::RemoteDown {
                peer,
                reference,
                pid,
                reason,
            } => {
                if self.watches.get(&reference).is_some_and(|w| w.peer == peer) {
                    let creation = shared.peers.read().get(&peer).and_then(|p| match p.state {
                        super::PeerState::Up { creation, .. } => Some(creation),
                        _ => None,
                    });
                    let watch = self.forget_watch(p, reference).expect("checked above");
                    let pid = (pid != 0)
                        .then_some(creation)
                        .flatten()
                        .map(|c| NodePid::new(&peer, PidId(pid), c));
                    fire(p.node(), reference, watch, pid, reason);
                }
            }
            Command::PeerDown { peer, generation } => {
                let lost: Vec<u64> = self
                    .watches
                    .iter()
                    .filter(|(_, w)| w.peer == peer && w.generation == generation)
                    .map(|(r, _)| *r)
                    .collect();
                for reference in lost {
                    let watch = self.forget_watch(p, reference).expect("listed above");
                    fire(p.node(), reference, watch, None, ExitReason::NoConnection);
                }
                let held: Vec<MonitorRef> = self
                    .held
                    .iter()
                    .filter(|(_, h)| h.peer == peer && h.generation == generation)
                    .map(|(m, _)| *m)
                    .collect();
                for monitor in held {
                    p.demonitor(monitor);
                    let held = self.held.remove(&monitor).expect("listed above");
                    self.held_by_reference.retain(|_, m| *m != monitor);
                    if held.link {
                        p.node().exit(&held.target, ExitReason::NoConnection);
                    }
                }
            }
        }
    }

    fn add_watch(&mut self, p: &mut Process, reference: u64, watch: Watch) {
        let id = watch.watcher.id();
        match self.watchers.get_mut(&id) {
            Some((_, references)) => references.push(reference),
            None => {
                let monitor = p.monitor(&watch.watcher);
                self.watchers.insert(id, (monitor, vec![reference]));
            }
        }
        self.watches.insert(reference, watch);
    }

    /// Removes a watch and, with its last one, the agent's monitor of its
    /// watcher.
    fn forget_watch(&mut self, p: &mut Process, reference: u64) -> Option<Watch> {
        let watch = self.watches.remove(&reference)?;
        let id = watch.watcher.id();
        if let Some((monitor, references)) = self.watchers.get_mut(&id) {
            references.retain(|r| *r != reference);
            if references.is_empty() {
                p.demonitor(*monitor);
                self.watchers.remove(&id);
            }
        }
        Some(watch)
    }

    /// A local process ended: a watcher (its watches go, links carrying
    /// its exit across) or the target of a remote watch (its end is
    /// reported).
    fn local_down(&mut self, shared: &Arc<Shared>, down: Down) {
        if let Some(held) = self.held.remove(&down.monitor) {
            self.held_by_reference.retain(|_, m| *m != down.monitor);
            let reason = down.reason.to_string();
            let frame = wire::encode::<()>(
                &Head::Down {
                    reference: held.reference,
                    pid: held.target.id().0,
                    reason: &reason,
                },
                None,
            );
            send_on(shared, &held.peer, held.generation, held.watcher, frame);
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
        let reason = down.reason.to_string();
        for reference in references {
            let Some(watch) = self.watches.remove(&reference) else {
                continue;
            };
            let head = if watch.link {
                Head::LinkExit {
                    reference,
                    reason: &reason,
                }
            } else {
                Head::Unwatch { reference }
            };
            let frame = wire::encode::<()>(&head, None);
            send_to(shared, &watch.peer, watch.generation, &watch.target, frame);
        }
    }
}

/// Tells a watcher its target ended: an exit signal for a link, a
/// [`RemoteDown`] for a monitor.
pub(super) fn fire(
    node: &Node,
    reference: u64,
    watch: Watch,
    pid: Option<NodePid>,
    reason: ExitReason,
) {
    if watch.link {
        node.exit(&watch.watcher, reason);
    } else {
        let _ = watch.watcher.send(RemoteDown {
            monitor: RemoteRef(reference),
            target: watch.target,
            pid,
            reason,
        });
    }
}

/// Sends a frame about `target` on the connection a watch went over (not
/// a newer one: the peer already fired what went over the old).
fn send_to(
    shared: &Arc<Shared>,
    peer: &Arc<str>,
    generation: u64,
    target: &Dest,
    frame: Result<Vec<u8>, postcard::Error>,
) {
    send_lane(shared, peer, generation, target_of(target).lane(), frame);
}

/// Sends a frame to the remote process `watcher`'s lane.
fn send_on(
    shared: &Arc<Shared>,
    peer: &Arc<str>,
    generation: u64,
    watcher: u64,
    frame: Result<Vec<u8>, postcard::Error>,
) {
    let lane = wire::Target::Pid {
        id: watcher,
        creation: 0,
    }
    .lane();
    send_lane(shared, peer, generation, lane, frame);
}

fn send_lane(
    shared: &Arc<Shared>,
    peer: &Arc<str>,
    generation: u64,
    lane: u64,
    frame: Result<Vec<u8>, postcard::Error>,
) {
    let Ok(frame) = frame else { return };
    let out = match shared.peers.read().get(peer).map(|p| &p.state) {
        Some(super::PeerState::Up { out, .. } | super::PeerState::Dialing(out))
            if out.generation == generation =>
        {
            out.clone()
        }
        _ => return,
    };
    let _ = out.push(lane, frame);
}
