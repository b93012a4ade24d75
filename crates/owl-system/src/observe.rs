//! What the operator looks at — the same answers for the console and the
//! dashboards: process lists sorted by work, system figures, and killing
//! every process of a guest module.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use owl_runtime::{Node, PidId, ProcessInfo, Utilization};
use owl_sandbox::{CallCounts, ModuleInfo, Sandbox};

/// How a process list is ordered (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortKey {
    /// CPU time (total, or over the last interval where one is known).
    #[default]
    Cpu,
    /// Reductions (work units: polls, messages, guest slices).
    Reductions,
    /// Memory estimate.
    Memory,
    /// Messages waiting in the mailbox.
    Mailbox,
}

impl SortKey {
    /// Every key, in the order menus show them.
    pub const ALL: [SortKey; 4] = [
        SortKey::Cpu,
        SortKey::Reductions,
        SortKey::Memory,
        SortKey::Mailbox,
    ];

    /// The key's name as typed: `cpu`, `reductions`, `memory`, `mailbox`.
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Cpu => "cpu",
            SortKey::Reductions => "reductions",
            SortKey::Memory => "memory",
            SortKey::Mailbox => "mailbox",
        }
    }
}

impl FromStr for SortKey {
    type Err = String;

    fn from_str(s: &str) -> Result<SortKey, String> {
        SortKey::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown sort key {s:?}: cpu, reductions, memory or mailbox"))
    }
}

/// A process as a list shows it.
#[derive(Clone, Debug)]
pub struct ProcessRow {
    /// Everything the process table knows.
    pub info: ProcessInfo,
    /// CPU time over the last interval, where the caller keeps one.
    pub recent_cpu: Option<Duration>,
}

/// Whether `info` matches a search text: a substring of its pid, name,
/// label or current activity, ignoring case. Empty text matches all.
pub fn matches(info: &ProcessInfo, text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let text = text.to_lowercase();
    [
        info.pid.to_string(),
        info.name.clone().unwrap_or_default(),
        info.label.clone(),
        info.current_activity.clone(),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(&text))
}

/// The processes matching `filter`, ordered by `sort`, at most `limit`.
/// With `recent` (CPU over the last interval, per pid), `Cpu` sorts by it.
///
/// ```
/// use owl_runtime::Runtime;
/// use owl_system::observe::{list, SortKey};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let pid = node.spawn(|mut p| async move { p.recv::<()>().await });
/// for _ in 0..3 {
///     pid.send(7u64).unwrap(); // not the `()` it waits for: the queue grows
/// }
/// let rows = list(&node, SortKey::Mailbox, 1, "", None);
/// assert_eq!(rows[0].info.pid, pid);
/// assert_eq!(rows[0].info.message_queue_len, 3);
/// ```
pub fn list(
    node: &Node,
    sort: SortKey,
    limit: usize,
    filter: &str,
    recent: Option<&HashMap<PidId, Duration>>,
) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = node
        .processes()
        .into_iter()
        .filter(|info| matches(info, filter))
        .map(|info| ProcessRow {
            recent_cpu: recent.map(|r| r.get(&info.pid.id()).copied().unwrap_or_default()),
            info,
        })
        .collect();
    let key = |row: &ProcessRow| -> u128 {
        let info = &row.info;
        match sort {
            SortKey::Cpu => row.recent_cpu.unwrap_or(info.cpu_time).as_nanos(),
            SortKey::Reductions => u128::from(info.reductions),
            SortKey::Memory => info.memory_bytes as u128,
            SortKey::Mailbox => info.message_queue_len as u128,
        }
    };
    rows.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then(a.info.pid.id().cmp(&b.info.pid.id()))
    });
    rows.truncate(limit);
    rows
}

/// CPU time per process between two looks, for "CPU over the last interval".
#[derive(Default)]
pub struct RecentCpu {
    last: HashMap<PidId, Duration>,
    at: Option<std::time::Instant>,
}

impl RecentCpu {
    /// Takes a new look at every process; returns each one's CPU time since
    /// the previous look (all of it for processes new since then) and the
    /// time between the two looks.
    pub fn update(&mut self, node: &Node) -> (HashMap<PidId, Duration>, Duration) {
        let now_at = std::time::Instant::now();
        let elapsed = self.at.map_or(Duration::ZERO, |at| now_at - at);
        self.at = Some(now_at);
        let now: HashMap<PidId, Duration> = node
            .process_samples()
            .into_iter()
            .map(|s| (s.pid.id(), s.cpu_time))
            .collect();
        let recent = now
            .iter()
            .map(|(pid, cpu)| {
                let before = self.last.get(pid).copied().unwrap_or_default();
                (*pid, cpu.saturating_sub(before))
            })
            .collect();
        self.last = now;
        (recent, elapsed)
    }
}

/// The node at a glance.
#[derive(Clone, Debug)]
pub struct SystemStats {
    /// Time since the node started.
    pub uptime: Duration,
    /// Processes alive now.
    pub processes: usize,
    /// Processes alive now by label (kind), most first.
    pub by_label: Vec<(String, usize)>,
    /// Processes spawned, exited and crashed since start.
    pub spawned: u64,
    /// See `spawned`.
    pub exited: u64,
    /// See `spawned`.
    pub crashed: u64,
    /// Resident memory of the OS process, in bytes (0 where unknown).
    pub memory_rss: u64,
    /// Scheduler threads, and how many may run at once.
    pub schedulers: usize,
    /// See `schedulers`.
    pub schedulers_online: usize,
    /// Scheduler utilization over the sampling window.
    pub utilization: Utilization,
    /// Guest thread utilization over the same window (sandboxed work runs
    /// there, outside the schedulers).
    pub guest_utilization: Utilization,
    /// Loaded guest modules and their versions.
    pub modules: Vec<ModuleInfo>,
}

/// Samples the node; scheduler utilization is measured over `window`.
pub async fn system_stats(node: &Node, sandbox: &Sandbox, window: Duration) -> SystemStats {
    let before = (node.scheduler_sample(), sandbox.guest_sample());
    tokio::time::sleep(window).await;
    let utilization = node.scheduler_sample().utilization_since(&before.0);
    let guests = sandbox.guest_sample().utilization_since(&before.1);
    snapshot(node, sandbox, utilization, guests)
}

/// The node's figures now, with scheduler and guest thread utilizations the
/// caller measured (a live page measures them between its ticks).
pub fn snapshot(
    node: &Node,
    sandbox: &Sandbox,
    utilization: Utilization,
    guest_utilization: Utilization,
) -> SystemStats {
    let processes = node.processes();
    let mut by_label: HashMap<String, usize> = HashMap::new();
    for info in &processes {
        *by_label.entry(info.label.clone()).or_default() += 1;
    }
    let mut by_label: Vec<(String, usize)> = by_label.into_iter().collect();
    by_label.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (spawned, exited, crashed) = node.lifecycle_counts();
    SystemStats {
        uptime: node.uptime(),
        processes: processes.len(),
        by_label,
        spawned,
        exited,
        crashed,
        memory_rss: resident_memory(),
        schedulers: node.schedulers(),
        schedulers_online: node.schedulers_online(),
        utilization,
        guest_utilization,
        modules: sandbox.modules(),
    }
}

/// The calls of `module` so far (zeros if it is not loaded).
pub fn module_counts(sandbox: &Sandbox, module: &str) -> CallCounts {
    sandbox
        .modules()
        .into_iter()
        .find(|m| m.name == module)
        .map(|m| m.calls)
        .unwrap_or_default()
}

/// Kills every process running any version of `module` (the talk's
/// `kill_math()`); returns how many.
pub fn kill_all(node: &Node, sandbox: &Sandbox, module: &str) -> usize {
    sandbox
        .running(module)
        .iter()
        .filter(|pid| node.kill(pid))
        .count()
}

/// Resident set size from `/proc/self/statm` (Linux); 0 elsewhere.
pub fn resident_memory() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}
