//! Introspection: what the process table knows about each process.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use crate::node::Node;
use crate::pid::{Pid, PidId};
use crate::process::cell::{BIG_MEMORY, LONG_QUEUE, ProcessCell, Receiving, Watcher, status};
use crate::scheduler::cycles_to_duration;
use crate::sleep::WAIT_SLEEP;

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Being polled on a scheduler right now.
    Running,
    /// Woken, waiting for a scheduler.
    Runnable,
    /// Waiting for a message, a timer or I/O.
    Waiting,
    /// Ending (its links and monitors are being told).
    Exiting,
}

impl Status {
    /// Lower-case name: `running`, `runnable`, `waiting`, `exiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Runnable => "runnable",
            Status::Waiting => "waiting",
            Status::Exiting => "exiting",
        }
    }

    fn from_raw(raw: u8) -> Status {
        match raw {
            status::RUNNING => Status::Running,
            status::WAITING => Status::Waiting,
            status::EXITING => Status::Exiting,
            _ => Status::Runnable,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the process table knows about one process.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// The process.
    pub pid: Pid,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Its label (kind), e.g. `supervisor`, `web session /`.
    pub label: String,
    /// Who spawned it.
    pub parent: Option<PidId>,
    /// Running, runnable, waiting or exiting.
    pub status: Status,
    /// Which schedulers run it.
    pub priority: crate::Priority,
    /// When it started.
    pub started_at: SystemTime,
    /// Time spent running on a scheduler.
    pub cpu_time: Duration,
    /// Work done: one per scheduling (poll), one per message received, plus
    /// whatever the process reports itself (a guest's executed instructions,
    /// in thousands).
    pub reductions: u64,
    /// Messages waiting in its mailbox.
    pub message_queue_len: usize,
    /// Mailbox bound, if it has one.
    pub mailbox_capacity: Option<usize>,
    /// Estimated bytes: its future (stack), table entry, mailbox contents,
    /// links and monitors, plus memory it reports (a guest's linear memory).
    pub memory_bytes: usize,
    /// A limit on the memory it may report (a guest's linear memory
    /// limit), where it has one.
    pub memory_limit: Option<usize>,
    /// Linked processes.
    pub links: Vec<Pid>,
    /// Processes monitoring it (waiters outside processes are not listed).
    pub monitored_by: Vec<Pid>,
    /// Processes it monitors.
    pub monitors: Vec<Pid>,
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// What it is doing: `receive` while waiting for a message, otherwise the
    /// activity it set (e.g. `sleep`, `sum(1..n)`), or its status.
    pub current_activity: String,
    /// Polls that blocked its scheduler longer than the watchdog threshold.
    pub long_polls: u32,
}

/// The cheap counters of one process, for sorting many processes by work.
#[derive(Clone, Debug)]
pub struct ProcessSample {
    /// The process.
    pub pid: Pid,
    /// Cumulative time on a scheduler.
    pub cpu_time: Duration,
    /// Cumulative reductions.
    pub reductions: u64,
}

/// One line of [`Node::top`]: the work a process did during the interval.
#[derive(Clone, Debug)]
pub struct TopEntry {
    /// The process.
    pub pid: Pid,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Its label (kind).
    pub label: String,
    /// Which schedulers run it.
    pub priority: crate::Priority,
    /// CPU time it used during the interval (guest slices included).
    pub cpu_time: Duration,
    /// That CPU time as a percentage of one scheduler's time (100 = a whole core).
    pub cpu_share: f64,
    /// Reductions during the interval.
    pub reductions: u64,
}

/// What a process is doing: `receive` while it waits in one, `sleep`
/// while it sleeps, else the activity it set, else its status.
fn activity_of<'s>(
    cell: &ProcessCell,
    st: &'s crate::process::cell::State,
    status: Status,
) -> &'s str {
    if !matches!(st.receiving, Receiving::No) && status == Status::Waiting {
        "receive"
    } else if status == Status::Waiting && cell.waiting_on.load(Ordering::Relaxed) == WAIT_SLEEP {
        "sleep"
    } else if let Some(a) = st.extras.as_ref().and_then(|e| e.activity.as_ref()) {
        a
    } else {
        status.as_str()
    }
}

/// Whether `haystack` contains `needle` (already lower case), ignoring the
/// case of ASCII letters; no allocation.
fn contains_folded(haystack: &str, needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    haystack.as_bytes().windows(needle.len()).any(|w| {
        w.iter()
            .zip(needle)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

const TASK_OVERHEAD: usize = 128;
const TABLE_ENTRY: usize = 48;

fn info_of(cell: &std::sync::Arc<ProcessCell>) -> ProcessInfo {
    let st = cell.state.lock();
    let mailbox_bytes: usize =
        st.mailbox.heap_bytes() + st.mailbox.iter().map(|m| m.size_estimate()).sum::<usize>();
    let memory_limit = st
        .extras
        .as_ref()
        .map(|e| e.memory_limit)
        .filter(|&l| l > 0);
    let (name, monitored_by, monitors, hint) = match &st.extras {
        Some(ex) => (
            ex.name.as_ref().map(|n| n.to_string()),
            ex.monitored_by
                .values()
                .filter_map(|w| match w {
                    Watcher::Process(p) => Some(p.clone()),
                    Watcher::Channel(_) => None,
                })
                .collect(),
            ex.monitoring.values().cloned().collect(),
            ex.memory_hint
                + std::mem::size_of_val(&**ex)
                + ex.monitored_by.heap_bytes()
                + ex.monitoring.heap_bytes(),
        ),
        None => (None, Vec::new(), Vec::new(), 0),
    };
    let status = Status::from_raw(cell.status.load(Ordering::Acquire));
    let current_activity = activity_of(cell, &st, status).to_string();
    let link_ids = st.links();
    let mut info = ProcessInfo {
        pid: cell.pid(),
        name,
        label: cell.label.to_string(),
        parent: cell.parent(),
        status,
        priority: cell.priority,
        // Both starts are read on a coarse clock, the node's also exactly: the
        // sum can land a tick past now, which no start time may.
        started_at: cell.node.upgrade().map_or(SystemTime::UNIX_EPOCH, |n| {
            let at = n.started_at + Duration::from_millis(u64::from(cell.started_ds) * 100);
            at.min(SystemTime::now())
        }),
        cpu_time: cycles_to_duration(cell.stats.cpu_cycles.load(Ordering::Relaxed)),
        reductions: cell.stats.reductions.load(Ordering::Relaxed),
        message_queue_len: st.mailbox.len(),
        mailbox_capacity: cell.bounded.as_ref().map(|b| b.capacity),
        memory_bytes: TASK_OVERHEAD
            + TABLE_ENTRY
            + cell.future_bytes as usize
            + std::mem::size_of::<ProcessCell>()
            + mailbox_bytes
            + st.links_heap_bytes()
            + hint,
        memory_limit,
        links: Vec::new(),
        monitored_by,
        monitors,
        trap_exit: st.trap_exit,
        current_activity,
        long_polls: cell.long_polls.load(Ordering::Relaxed),
    };
    // Links are kept by number: their handles come from the process
    // table, looked up with this cell's lock released.
    drop(st);
    let node = cell.node.upgrade();
    info.links = link_ids
        .into_iter()
        .map(|id| {
            node.as_ref()
                .and_then(|n| n.table.with(id.0, |c| c.pid()))
                .unwrap_or_else(|| Pid::gone(id))
        })
        .collect();
    info
}

impl Node {
    /// Everything known about one process, or `None` if it is not alive.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions, Status};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let pid = node.spawn_opts(SpawnOptions::new().label("idle"), |mut p| async move { p.recv::<()>().await });
    /// pid.send(7u64).unwrap(); // not a (), so it stays queued
    /// let info = node.info(&pid).unwrap();
    /// assert_eq!(info.label, "idle");
    /// assert_eq!(info.message_queue_len, 1);
    /// ```
    pub fn info(&self, pid: &Pid) -> Option<ProcessInfo> {
        let cell = self.inner.table.get(pid.id().0)?;
        Some(info_of(&cell))
    }

    /// Live processes whose pid, registered name, label or current
    /// activity contains `text`, ignoring the case of ASCII letters; at
    /// most `limit` of them. It reads every process without allocating —
    /// about a tenth of a second for a million — so call it off the
    /// schedulers (`spawn_blocking`) on a big node.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let cache = node.spawn_opts(SpawnOptions::new().label("Cache"), |mut p| async move { p.recv::<()>().await });
    /// assert_eq!(node.search("cach", 10), vec![cache.clone()]);
    /// assert_eq!(node.search(&cache.to_string(), 10), vec![cache]);
    /// ```
    pub fn search(&self, text: &str, limit: usize) -> Vec<Pid> {
        let needle = text.trim().to_ascii_lowercase();
        let needle = needle.as_bytes();
        // Only a needle made of pid characters can match a pid's text, and
        // only one that is part of a word the table derives can match
        // those: most searches skip both.
        let pid_like = needle.iter().all(|b| b"<>.0123456789".contains(b));
        let derived = [
            "receive", "sleep", "running", "runnable", "waiting", "exiting",
        ]
        .iter()
        .any(|w| contains_folded(w, needle));
        let mut found = Vec::new();
        let mut pid_text = String::with_capacity(32);
        let mut check = |cell: &ProcessCell| {
            if pid_like {
                pid_text.clear();
                let _ =
                    std::fmt::Write::write_fmt(&mut pid_text, format_args!("{}", PidId(cell.id)));
                if contains_folded(&pid_text, needle) {
                    return true;
                }
            }
            if contains_folded(&cell.label, needle) {
                return true;
            }
            let st = cell.state.lock();
            if derived {
                let status = Status::from_raw(cell.status.load(Ordering::Acquire));
                return st
                    .extras
                    .as_ref()
                    .and_then(|e| e.name.as_deref())
                    .is_some_and(|n| contains_folded(n, needle))
                    || contains_folded(activity_of(cell, &st, status), needle);
            }
            st.extras.as_ref().is_some_and(|e| {
                e.name
                    .as_deref()
                    .is_some_and(|n| contains_folded(n, needle))
                    || e.activity
                        .as_deref()
                        .is_some_and(|a| contains_folded(a, needle))
            })
        };
        // A million cells are far more than the caches hold: ask for each a
        // few entries ahead, so the misses overlap.
        const AHEAD: usize = 16;
        for part in self.inner.table.parts() {
            let mut ahead = std::collections::VecDeque::with_capacity(AHEAD + 1);
            for cell in part.values() {
                crate::sleep::Prefetch::of::<ProcessCell>(cell).issue();
                ahead.push_back(cell);
                if ahead.len() > AHEAD
                    && let Some(cell) = ahead.pop_front()
                    && check(cell)
                {
                    found.push(cell.pid());
                    if found.len() >= limit {
                        return found;
                    }
                }
            }
            // The part's lock goes with it: look at what is left first.
            for cell in ahead.drain(..) {
                if found.len() >= limit {
                    return found;
                }
                if check(cell) {
                    found.push(cell.pid());
                }
            }
        }
        found
    }

    /// Processes worth a look whatever their CPU: those whose mailbox grew
    /// past 64 messages, or whose reported memory (a guest's) grew past
    /// 1 MiB, and still hold that much. Noted as it happens, so this costs
    /// what it returns.
    pub fn notable_processes(&self) -> Vec<Pid> {
        let mut notable = self.inner.notable.lock();
        let mut still = Vec::with_capacity(notable.len());
        notable.retain(|&id| {
            let Some(cell) = self.inner.table.get(id) else {
                return false;
            };
            let st = cell.state.lock();
            let hint = st.extras.as_ref().map_or(0, |e| e.memory_hint);
            let keep = st.mailbox.len() >= LONG_QUEUE || hint >= BIG_MEMORY;
            if keep {
                still.push(cell.pid());
            }
            keep
        });
        still
    }

    /// Up to `n` live processes, whichever the table yields first: a cheap
    /// sample of the node.
    pub fn some_processes(&self, n: usize) -> Vec<Pid> {
        let mut some = Vec::with_capacity(n.min(self.inner.table.len()));
        for part in self.inner.table.parts() {
            some.extend(part.values().take(n - some.len()).map(|c| c.pid()));
            if some.len() >= n {
                break;
            }
        }
        some
    }

    /// Info of every live process, ordered by pid.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        let cells: Vec<_> = self
            .inner
            .table
            .parts()
            .flat_map(|part| part.values().cloned().collect::<Vec<_>>())
            .collect();
        let mut all: Vec<ProcessInfo> = cells.iter().map(info_of).collect();
        all.sort_by_key(|i| i.pid.id());
        all
    }

    /// How many live processes carry each label (kind), most first. The
    /// counts are kept as processes spawn and exit, so reading them costs
    /// the number of labels, not of processes.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// for _ in 0..3 {
    ///     node.spawn_opts(SpawnOptions::new().label("worker"), |mut p| async move { p.recv::<()>().await });
    /// }
    /// assert_eq!(node.label_counts()[0], ("worker".to_string(), 3));
    /// ```
    pub fn label_counts(&self) -> Vec<(String, usize)> {
        self.inner.labels.snapshot()
    }

    /// The live processes labelled `label`, without locking any of them.
    ///
    /// ```
    /// use owl_runtime::{Runtime, SpawnOptions};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let pid = node.spawn_opts(SpawnOptions::new().label("cache"), |mut p| async move { p.recv::<()>().await });
    /// assert_eq!(node.labelled("cache"), vec![pid]);
    /// ```
    pub fn labelled(&self, label: &str) -> Vec<Pid> {
        let mut found = Vec::new();
        for part in self.inner.table.parts() {
            found.extend(part.values().filter(|c| c.label == label).map(|c| c.pid()));
        }
        found
    }

    /// Work counters of every live process, without locking any of them:
    /// cheap enough to take every second on a node with a million processes.
    pub fn process_samples(&self) -> Vec<ProcessSample> {
        let mut samples = Vec::with_capacity(self.inner.table.len());
        for part in self.inner.table.parts() {
            samples.extend(part.values().map(|cell| ProcessSample {
                pid: cell.pid(),
                cpu_time: cycles_to_duration(cell.stats.cpu_cycles.load(Ordering::Relaxed)),
                reductions: cell.stats.reductions.load(Ordering::Relaxed),
            }));
        }
        samples
    }
}

impl Node {
    /// The processes that kept the node busy over the last second, with
    /// their share of a scheduler's time, busiest first — found by sampling
    /// (see [`busy`](crate::busy)). The first call starts the profiler and
    /// answers an empty window; a second later the shares are in. It stops
    /// by itself ten seconds after the last call.
    pub fn busiest(&self) -> crate::Busiest {
        let schedulers = self.inner.schedulers.clone();
        let node_id = std::sync::Arc::as_ptr(&self.inner) as usize;
        self.inner.profiler.ask(node_id, move |seen| {
            for pid in schedulers.running_now() {
                seen(pid);
            }
        })
    }
}

impl Node {
    /// The `limit` processes that did the most work over the next `interval`
    /// (most CPU time first, then most reductions), like the reference's
    /// `Runtime.top()`: how the operator finds a runaway.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let busy = node.spawn(|p| async move {
    ///     loop {
    ///         // Busy work between yields.
    ///         let t = std::time::Instant::now();
    ///         while t.elapsed() < Duration::from_millis(1) {}
    ///         p.sleep(Duration::from_millis(1)).await;
    ///     }
    /// });
    /// let _idle = node.spawn(|mut p| async move { p.recv::<()>().await });
    /// let top = rt.block_on(node.top(Duration::from_millis(200), 10));
    /// assert_eq!(top[0].pid, busy);
    /// assert!(top[0].cpu_share > 10.0);
    /// ```
    pub async fn top(&self, interval: Duration, limit: usize) -> Vec<TopEntry> {
        let before: std::collections::HashMap<PidId, ProcessSample> = self
            .process_samples()
            .into_iter()
            .map(|s| (s.pid.id(), s))
            .collect();
        let started = std::time::Instant::now();
        tokio::time::sleep(interval).await;
        let elapsed = started.elapsed().max(Duration::from_micros(1));
        let mut entries: Vec<TopEntry> = self
            .process_samples()
            .into_iter()
            .map(|after| {
                let (cpu0, red0) = before
                    .get(&after.pid.id())
                    .map_or((Duration::ZERO, 0), |b| (b.cpu_time, b.reductions));
                let cpu_time = after.cpu_time.saturating_sub(cpu0);
                TopEntry {
                    cpu_share: cpu_time.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
                    cpu_time,
                    reductions: after.reductions.saturating_sub(red0),
                    name: None,
                    label: String::new(),
                    priority: crate::Priority::Normal,
                    pid: after.pid,
                }
            })
            .collect();
        entries.sort_by(|a, b| {
            b.cpu_time
                .cmp(&a.cpu_time)
                .then(b.reductions.cmp(&a.reductions))
        });
        entries.truncate(limit);
        for e in &mut entries {
            if let Some(cell) = e.pid.cell() {
                e.label = cell.label.to_string();
                e.priority = cell.priority;
                e.name = cell
                    .state
                    .lock()
                    .extras
                    .as_ref()
                    .and_then(|x| x.name.as_ref().map(|n| n.to_string()));
            }
        }
        entries
    }
}
