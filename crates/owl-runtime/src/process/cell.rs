//! The shared state of one process: mailbox, links, monitors, exit signals.
//!
//! Everything that other processes may touch lives behind one small mutex per
//! process. Locks are never nested across two processes: an operation that
//! involves two of them (link, monitor, exit) locks one, releases it, then
//! locks the other, in an order chosen so that a concurrent exit is never missed.

use crate::label::Label;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::exit::ExitReason;
use crate::message::{Down, Exit, Message};
use crate::node::NodeInner;
use crate::pid::{MonitorRef, Pid, PidId};
use crate::priority::Priority;
use crate::process::link_set::LinkSet;
use crate::process::mailbox::Mailbox;
use crate::process::small_map::SmallMap;

/// Process status values kept in [`ProcessCell::status`].
pub(crate) mod status {
    pub(crate) const RUNNABLE: u8 = 0;
    pub(crate) const RUNNING: u8 = 1;
    pub(crate) const WAITING: u8 = 2;
    pub(crate) const EXITING: u8 = 3;
}

/// Mailboxes at least this long are noted as they grow past it (see
/// `Node::notable_processes`).
pub(crate) const LONG_QUEUE: usize = 64;
/// Memory beyond its state at least this large (a guest's linear memory) is
/// noted likewise.
pub(crate) const BIG_MEMORY: usize = 1 << 20;

/// Who is told when a process ends.
pub(crate) enum Watcher {
    /// A process, by a [`Down`] message.
    Process(Pid),
    /// Code outside any process (a `wait_exit` future, a call in flight).
    Channel(ExitSender),
}

/// Where an exit reason goes for code outside any process: a task's inline
/// watch ([`State::exit_channel`]) or a [`Watcher::Channel`].
pub(crate) type ExitSender = futures_channel::oneshot::Sender<ExitReason>;

/// Bounded-mailbox settings; fixed at spawn, so they live outside the lock.
pub(crate) struct Bounded {
    pub capacity: usize,
    /// Woken when a message is taken out (room for a waiting sender) or the
    /// process exits (so that waiting senders learn it is gone).
    pub space: Notify,
}

/// How a signal reached a process: through a link, or from an explicit `exit`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalKind {
    Link,
    Exit,
}

/// Things most processes never use, kept out of line to keep idle processes small.
#[derive(Default)]
pub(crate) struct Extras {
    pub name: Option<Arc<str>>,
    pub groups: Vec<Arc<str>>,
    /// Monitors set *on* this process.
    pub monitored_by: SmallMap<MonitorRef, Watcher>,
    /// Monitors this process set on others.
    pub monitoring: SmallMap<MonitorRef, Pid>,
    /// Memory the process reports beyond its Rust state (e.g. a guest's linear memory).
    pub memory_hint: usize,
    /// The most `memory_hint` may reach (0: no limit known).
    pub memory_limit: usize,
    /// Linked processes beyond the first, by pid number alone (a bitmap
    /// once there are many: see [`LinkSet`]). The process table finds a
    /// linked process's cell when an exit signal is due.
    pub links: LinkSet,
    /// The reason an exit signal will end the process with at its next poll.
    pub pending_exit: Option<ExitReason>,
    pub activity: Option<Arc<str>>,
    pub receive_waker: Option<Waker>,
    /// The type of server this process runs, for typed lookups by name.
    pub server_kind: Option<std::any::TypeId>,
    /// A supervisor or server: an exit signal from its parent means it will
    /// stop for good, even though it traps exits.
    pub stops_with_parent: bool,
}

/// Whether the process waits in a receive, and how to wake it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiving {
    No,
    /// Waiting with the process task's own waker (the usual case).
    OnTask,
    /// Waiting inside some other waker context (e.g. a `FuturesUnordered`):
    /// the waker is in `Extras::receive_waker`.
    OnOther,
}

pub(crate) struct State {
    pub mailbox: Mailbox<Message>,
    pub receiving: Receiving,
    /// The executor's waker for the process task, stored at its first poll;
    /// signals and deliveries wake the task through it.
    pub task_waker: Option<Waker>,
    pub exited: bool,
    pub trap_exit: bool,
    /// The first link, inline, by pid number: nearly every supervised
    /// process has exactly one (to its supervisor), and a million of them
    /// should not each need the out-of-line extras for it. (Pid 0, the
    /// node, is never linked.)
    pub link: Option<NonZeroU64>,
    /// Who awaits this process's exit reason from outside any process (a
    /// task's `join`), inline for the same reason as `link`: every task has
    /// one, set at spawn, and a stream of short tasks should not each
    /// allocate the extras (and a monitor entry) for it.
    pub exit_channel: Option<ExitSender>,
    /// Rarely used parts (more links, monitors, name…), out of line so that
    /// an idle process stays small.
    pub extras: Option<Box<Extras>>,
}

impl State {
    pub(crate) fn extras(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Default::default)
    }

    /// The linked processes, by number (look them up in the process table
    /// once this lock is released).
    pub(crate) fn links(&self) -> Vec<PidId> {
        let first = self.link.map(|n| PidId(n.get()));
        let more = self.extras.iter().flat_map(|e| e.links.iter().map(PidId));
        first.into_iter().chain(more).collect()
    }

    /// Adds a link (once).
    pub(crate) fn add_link(&mut self, pid: &Pid) {
        let number = NonZeroU64::new(pid.id().0);
        if number.is_some() && self.link == number {
            return;
        }
        let more = self.extras.as_ref().map_or(0, |e| e.links.len());
        if self.link.is_none() && more == 0 && number.is_some() {
            self.link = number;
        } else {
            self.extras().links.insert(pid.id().0);
        }
    }

    /// Removes a link; whether there was one.
    pub(crate) fn remove_link(&mut self, id: PidId) -> bool {
        if self.link.is_some_and(|n| n.get() == id.0) {
            self.link = None;
            return true;
        }
        self.extras.as_mut().is_some_and(|e| e.links.remove(id.0))
    }

    /// Bytes the links take beyond the cell.
    pub(crate) fn links_heap_bytes(&self) -> usize {
        self.extras.as_ref().map_or(0, |e| e.links.heap_bytes())
    }
}

/// Counters the process owner updates on every poll and anyone may read
/// without locking.
#[derive(Default)]
#[repr(C)]
pub(crate) struct Stats {
    pub reductions: AtomicU64,
    pub cpu_cycles: AtomicU64,
}

/// A process's shared state.
///
/// The fields a scheduler reads or writes on every poll (`id` through
/// `priority`: [`ProcessCell::HOT`]) come first after the label, in one
/// 32-byte span. A cell in its `Arc` is a 160-byte block (two counts, then
/// these 144 bytes), and mimalloc (the `owl` binary's allocator) starts
/// blocks of that size 0 or 32 bytes into a cache line, so there the span
/// always lies in one line (with other allocators, in one or two): a woken
/// process costs one cache miss on its cell, not three, and the timer
/// wheel prefetches just that line. `repr(C)` keeps the order; the
/// assertions below keep the span where it must be.
#[repr(C)]
pub(crate) struct ProcessCell {
    pub label: Label,
    pub id: u64,
    pub stats: Stats,
    pub status: AtomicU8,
    /// What a waiting process waits for besides messages (`WAIT_SLEEP`), for introspection.
    pub waiting_on: AtomicU8,
    /// Fast check for `state.pending_exit`, read on every poll.
    pub exit_pending: AtomicBool,
    /// Fixed at spawn: which schedulers run it.
    pub priority: Priority,
    /// Bytes of the process's future (its stack, in BEAM terms), known at spawn.
    pub future_bytes: u32,
    /// Polls that ran longer than the scheduler's warning threshold.
    pub long_polls: AtomicU32,
    /// When it started, in tenths of a second since its node started (13
    /// years fit): introspection shows no finer, and as half a word it
    /// fills the gap before `node`, which keeps the cell in its size class.
    pub started_ds: u32,
    pub node: Weak<NodeInner>,
    /// The parent's pid number; one word, as pid 0 (the node itself) is
    /// never a parent. See [`parent`](Self::parent).
    pub parent_id: Option<std::num::NonZeroU64>,
    pub bounded: Option<Box<Bounded>>,
    pub state: Mutex<State>,
}

impl ProcessCell {
    /// The bytes of a cell a scheduler touches on every poll of its
    /// process (see the type's doc).
    pub(crate) const HOT: std::ops::Range<usize> =
        std::mem::offset_of!(ProcessCell, id)..std::mem::offset_of!(ProcessCell, future_bytes);
}

// The hot span starts 16 bytes into the cell (32 into its `Arc` block) and
// fits in 32 bytes, and the block stays in the 160-byte size class.
const _: () = assert!(ProcessCell::HOT.start == 16 && ProcessCell::HOT.end <= 48);
const _: () = assert!(std::mem::size_of::<ProcessCell>() + 16 <= 160);

/// Why a message could not be delivered; gives the message back.
///
/// It prints without the message, so `send(..).unwrap()` works for any
/// message type, printable or not.
#[derive(PartialEq, Eq)]
pub enum SendError<M> {
    /// The process has exited (or never existed).
    NoProcess(M),
    /// The process has a bounded mailbox and it is full.
    Full(M),
}

impl<M> SendError<M> {
    /// The message that was not delivered.
    pub fn into_inner(self) -> M {
        match self {
            SendError::NoProcess(m) | SendError::Full(m) => m,
        }
    }
}

impl<M> std::fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NoProcess(_) => f.write_str("NoProcess(..)"),
            SendError::Full(_) => f.write_str("Full(..)"),
        }
    }
}

impl<M> std::fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NoProcess(_) => f.write_str("no such process"),
            SendError::Full(_) => f.write_str("mailbox full"),
        }
    }
}
impl<M> std::error::Error for SendError<M> {}

impl std::fmt::Debug for ProcessCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCell")
            .field("pid", &PidId(self.id))
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl ProcessCell {
    /// The process that spawned this one as its parent (a supervisor, usually).
    pub(crate) fn parent(&self) -> Option<PidId> {
        self.parent_id.map(|id| PidId(id.get()))
    }

    pub(crate) fn pid(self: &Arc<Self>) -> Pid {
        Pid::new(self.id, self)
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.status.load(Ordering::Acquire) == status::EXITING
    }

    /// Marks the process runnable and wakes its task. Called with the state
    /// locked: waking only queues the task on the executor.
    fn wake_task(&self, st: &State) {
        if self.status.load(Ordering::Relaxed) == status::WAITING {
            self.status.store(status::RUNNABLE, Ordering::Relaxed);
        }
        if let Some(w) = &st.task_waker {
            w.wake_by_ref();
        }
    }

    /// Wakes a receive in progress, if any (state locked by the caller).
    fn wake_receiver(&self, st: &mut State) -> Option<Waker> {
        match std::mem::replace(&mut st.receiving, Receiving::No) {
            Receiving::No => None,
            Receiving::OnTask => {
                self.wake_task(st);
                None
            }
            Receiving::OnOther => {
                if self.status.load(Ordering::Relaxed) == status::WAITING {
                    self.status.store(status::RUNNABLE, Ordering::Relaxed);
                }
                st.extras.as_mut().and_then(|e| e.receive_waker.take())
            }
        }
    }

    /// Appends a message. `bounded` says whether the mailbox limit applies
    /// (runtime notifications such as `Exit` and `Down` are never refused).
    pub(crate) fn deliver(&self, msg: Message, bounded: bool) -> Result<(), SendError<Message>> {
        self.deliver_with(msg, |m| m, bounded)
    }

    /// Appends `wrap(msg)` — checking for room and for an exit and pushing
    /// in one step under the lock, so that `Ok` always means the message
    /// is in the mailbox and a refusal always gives `msg` back unwrapped
    /// (a cast's request is wrapped only once it is sure to be delivered).
    pub(crate) fn deliver_with<M>(
        &self,
        msg: M,
        wrap: impl FnOnce(M) -> Message,
        bounded: bool,
    ) -> Result<(), SendError<M>> {
        let mut st = self.state.lock();
        if st.exited {
            return Err(SendError::NoProcess(msg));
        }
        if bounded
            && let Some(b) = &self.bounded
            && st.mailbox.len() >= b.capacity
        {
            return Err(SendError::Full(msg));
        }
        let msg = wrap(msg);
        crate::trace::on_deliver(&self.node, self.id, &msg);
        st.mailbox.push_back(msg);
        let grew_long = st.mailbox.len() == LONG_QUEUE;
        let other = self.wake_receiver(&mut st);
        drop(st);
        if grew_long && let Some(node) = self.node.upgrade() {
            node.note(self.id);
        }
        if let Some(w) = other {
            w.wake();
        }
        Ok(())
    }

    /// Records memory the process holds beyond its state; a process that
    /// grows past [`BIG_MEMORY`] is noted for the process lists.
    pub(crate) fn set_memory_hint(&self, bytes: usize) {
        let was = std::mem::replace(&mut self.state.lock().extras().memory_hint, bytes);
        if was < BIG_MEMORY
            && bytes >= BIG_MEMORY
            && let Some(node) = self.node.upgrade()
        {
            node.note(self.id);
        }
    }

    /// Called after a message left the mailbox: a sender waiting for room may go on.
    pub(crate) fn message_taken(&self) {
        self.stats.reductions.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bounded {
            b.space.notify_one();
        }
    }

    /// Delivers an exit signal following Erlang's rules:
    /// an untrappable `Kill` (explicit exit only) ends the process as `Killed`;
    /// a trapping process gets an [`Exit`] message; `Normal` is otherwise
    /// ignored; any other reason ends the process with that reason.
    pub(crate) fn signal_exit(&self, from: &Pid, reason: ExitReason, kind: SignalKind) {
        let mut st = self.state.lock();
        if st.exited {
            return;
        }
        if kind == SignalKind::Link {
            let linked = st.remove_link(from.id());
            if !linked {
                // Unlinked meanwhile: the signal no longer concerns us.
                return;
            }
        }
        let die_with = if kind == SignalKind::Exit && reason == ExitReason::Kill {
            Some(ExitReason::Killed)
        } else if st.trap_exit {
            let reason = if reason == ExitReason::Kill {
                ExitReason::Killed
            } else {
                reason
            };
            st.mailbox.push_back(Message::new(Exit {
                from: from.clone(),
                reason,
            }));
            // A supervisor or server told by its parent to stop will stop:
            // its name is free now, not once it has read the signal and shut
            // its own children down, so the parent's replacement can take it.
            let from_parent = from.id().0 == 0 || self.parent() == Some(from.id());
            let leaving_name = match st.extras.as_mut() {
                Some(ex) if ex.stops_with_parent && from_parent => ex.name.take(),
                _ => None,
            };
            let other = self.wake_receiver(&mut st);
            drop(st);
            if let Some(w) = other {
                w.wake();
            }
            if let (Some(name), Some(node)) = (leaving_name, self.node.upgrade()) {
                node.registry.release(&name, PidId(self.id));
            }
            return;
        } else if reason == ExitReason::Normal {
            None
        } else {
            Some(reason)
        };
        if let Some(reason) = die_with {
            // An untrappable kill overrides an earlier, softer pending reason.
            let extras = st.extras();
            if extras.pending_exit.is_none() || reason == ExitReason::Killed {
                extras.pending_exit = Some(reason);
            }
            // The process is as good as dead: its name is free from now on,
            // not from its next poll. A supervisor restarting a killed
            // subtree then finds the names of the old workers released.
            let name = extras.name.take();
            self.exit_pending.store(true, Ordering::Release);
            self.wake_task(&st);
            drop(st);
            if let (Some(name), Some(node)) = (name, self.node.upgrade()) {
                node.registry.release(&name, PidId(self.id));
            }
        }
    }

    pub(crate) fn take_pending_exit(&self) -> Option<ExitReason> {
        self.state.lock().extras.as_mut()?.pending_exit.take()
    }

    /// Adds `watcher` to the monitors of this process, or reports it is gone.
    pub(crate) fn add_monitor(&self, mref: MonitorRef, watcher: Watcher) -> Result<(), Watcher> {
        let mut st = self.state.lock();
        if st.exited {
            return Err(watcher);
        }
        let monitors = &mut st.extras().monitored_by;
        // Waiters outside processes may give up (a timed-out call): prune their
        // closed channels now and then so a long-lived process does not collect them.
        if monitors.len() >= 8 && monitors.len().is_power_of_two() {
            monitors.retain(|_, w| !matches!(w, Watcher::Channel(tx) if tx.is_canceled()));
        }
        monitors.insert_new(mref, watcher);
        Ok(())
    }

    pub(crate) fn remove_monitor(&self, mref: MonitorRef) {
        let mut st = self.state.lock();
        if let Some(ex) = st.extras.as_mut() {
            ex.monitored_by.remove(&mref);
        }
    }

    /// Delivers the `Down` of a monitor this process set, and forgets the
    /// monitor in the same step: a fired monitor leaves nothing behind.
    pub(crate) fn deliver_down(&self, down: Down) {
        let mut st = self.state.lock();
        if st.exited {
            return;
        }
        if let Some(ex) = st.extras.as_mut() {
            ex.monitoring.remove(&down.monitor);
        }
        let msg = Message::new(down);
        crate::trace::on_deliver(&self.node, self.id, &msg);
        st.mailbox.push_back(msg);
        let other = self.wake_receiver(&mut st);
        drop(st);
        if let Some(w) = other {
            w.wake();
        }
    }

    /// Ends the process: releases its name and groups, then tells linked
    /// processes and monitors, in that order, so that whoever sees the `Down`
    /// also sees the name free.
    pub(crate) fn finish(self: &Arc<Self>, reason: ExitReason) {
        let (extras, first_link, exit_channel, mailbox) = {
            let mut st = self.state.lock();
            if st.exited {
                return;
            }
            st.exited = true;
            st.receiving = Receiving::No;
            // The task's waker holds the task, whose future holds this cell.
            drop(st.task_waker.take());
            (
                st.extras.take(),
                st.link.take(),
                st.exit_channel.take(),
                std::mem::take(&mut st.mailbox),
            )
        };
        self.status.store(status::EXITING, Ordering::Release);
        if let Some(b) = &self.bounded {
            b.space.notify_waiters();
        }
        let me = self.pid();
        let node = self.node.upgrade();
        if let Some(node) = &node {
            node.table.remove(self.id);
            node.labels.add(&self.label, -1);
        }
        let mut name = None;
        let mut watchers = Vec::new();
        let mut link_ids: Vec<u64> = first_link.map(NonZeroU64::get).into_iter().collect();
        let mut activity = None;
        if let Some(ex) = extras {
            let ex = *ex;
            if let Some(node) = &node {
                if let Some(n) = &ex.name {
                    node.registry.release(n, me.id());
                }
                for g in &ex.groups {
                    node.groups.remove_member(g, &me);
                }
            }
            for (mref, target) in ex.monitoring.into_entries() {
                if let Some(cell) = target.cell() {
                    cell.remove_monitor(mref);
                }
            }
            name = ex.name;
            watchers = ex.monitored_by.into_entries();
            link_ids.extend(ex.links.iter());
            activity = ex.activity;
        }
        if let Some(node) = &node {
            node.report_exit(self, name.as_deref(), activity.as_deref(), &reason);
        }
        // The parent (a supervisor, usually) hears last: by the time it
        // reacts, every other linked process has had its signal, so a
        // killed worker of this process no longer holds its name when the
        // parent starts a replacement.
        // Linked cells from the table, outside every lock (a cell's exit
        // takes its table part's).
        let mut links: Vec<Arc<ProcessCell>> = match &node {
            Some(node) => link_ids
                .into_iter()
                .filter_map(|id| node.table.get(id))
                .collect(),
            None => Vec::new(),
        };
        let parent = self.parent();
        links.sort_by_key(|cell| Some(PidId(cell.id)) == parent);
        for cell in links {
            cell.signal_exit(&me, reason.clone(), SignalKind::Link);
        }
        // Set at spawn, before any monitor: it hears first, as it would as
        // the first entry of the monitors.
        if let Some(tx) = exit_channel {
            let _ = tx.send(reason.clone());
        }
        for (mref, watcher) in watchers {
            match watcher {
                Watcher::Process(owner) => {
                    if let Some(cell) = owner.cell() {
                        cell.deliver_down(Down {
                            monitor: mref,
                            pid: me.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                Watcher::Channel(tx) => {
                    let _ = tx.send(reason.clone());
                }
            }
        }
        drop(mailbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node of a million processes holds a million cells: with the
    /// `Arc`'s two counters a cell must stay within 160 bytes, a size class
    /// of mimalloc (owl's allocator; its next is 192): every byte above it
    /// costs up to 32 MB at a million processes.
    #[test]
    fn a_process_cell_stays_within_its_size_class() {
        let cell = std::mem::size_of::<ProcessCell>();
        assert!(cell + 16 <= 160, "a process cell takes {cell} bytes");
    }

    /// Waiters outside processes that give up (a `wait_exit` future
    /// dropped, as a timed-out call does) do not pile up on a long-lived
    /// process: their channels are pruned as new ones come.
    #[test]
    fn abandoned_exit_waiters_do_not_pile_up_on_a_long_lived_process() {
        let rt = crate::Runtime::new(Default::default()).unwrap();
        let node = rt.node();
        let pid = node.spawn(|mut p| async move {
            let () = p.recv().await;
        });
        for _ in 0..1000 {
            drop(pid.wait_exit());
        }
        let kept = pid
            .cell()
            .expect("alive")
            .state
            .lock()
            .extras()
            .monitored_by
            .len();
        assert!(kept < 100, "{kept} abandoned waiters kept");
        // A waiter still waiting is kept, and told.
        let waiting = pid.wait_exit();
        assert!(node.kill(&pid));
        assert_eq!(rt.block_on(waiting), ExitReason::Killed);
    }
}
