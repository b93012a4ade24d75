//! What the operator sees of a node, as plain data: every dashboard, the
//! console and `/metrics` render these types, whether the figures come
//! from this node or from another one of the cluster (they serialize), so
//! a view cannot say one thing here and another there.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::SortKey;

/// A process's run state, as the process table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// On a scheduler right now (or, for a sandboxed process, computing
    /// on a guest thread).
    Running,
    /// Woken, waiting for a scheduler.
    Runnable,
    /// Waiting for a message, a timer or I/O.
    Waiting,
    /// Ending.
    Exiting,
}

impl RunState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Runnable => "runnable",
            RunState::Waiting => "waiting",
            RunState::Exiting => "exiting",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which schedulers run a process (see [`owl_runtime::Priority`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Background work: the background schedulers.
    Low,
    /// The default.
    #[default]
    Normal,
}

impl Priority {
    /// Lower-case name.
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

impl From<owl_runtime::Priority> for Priority {
    fn from(p: owl_runtime::Priority) -> Self {
        match p {
            owl_runtime::Priority::Low => Priority::Low,
            owl_runtime::Priority::Normal => Priority::Normal,
        }
    }
}

impl From<owl_runtime::Status> for RunState {
    fn from(s: owl_runtime::Status) -> RunState {
        match s {
            owl_runtime::Status::Running => RunState::Running,
            owl_runtime::Status::Runnable => RunState::Runnable,
            owl_runtime::Status::Waiting => RunState::Waiting,
            owl_runtime::Status::Exiting => RunState::Exiting,
        }
    }
}

/// Which processes a list shows: the order, a search text (pid, name,
/// label or activity) and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// The order (largest first).
    pub sort: SortKey,
    /// A search text; empty shows all.
    #[serde(default)]
    pub filter: String,
    /// Rows at most.
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            sort: SortKey::Cpu,
            filter: String::new(),
            limit: 50,
        }
    }
}

/// One process as a list shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRow {
    /// Its pid number on its node: `<0.ID.0>`.
    pub id: u64,
    /// Its registered name, if any.
    pub name: Option<String>,
    /// Its label (kind).
    pub label: String,
    /// Running, runnable, waiting or exiting.
    pub state: RunState,
    /// Which schedulers run it (older nodes do not say: normal).
    #[serde(default)]
    pub priority: Priority,
    /// CPU over the last sampling window, in % of one scheduler (0–100).
    pub cpu_pct: f64,
    /// CPU time since it started, in microseconds.
    pub cpu_total_us: u64,
    /// Work units since it started.
    pub reductions: u64,
    /// Memory estimate in bytes.
    pub memory_bytes: u64,
    /// Messages waiting in its mailbox.
    pub queue: usize,
    /// What it is doing.
    pub activity: String,
}

impl ProcessRow {
    /// Its name, or its label when it has none.
    pub fn name_or_label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.label)
    }
}

/// A node's process list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessList {
    /// Processes alive on the node.
    pub total: usize,
    /// The window the CPU shares cover, in milliseconds.
    pub window_ms: u64,
    /// The rows asked for, in order.
    pub processes: Vec<ProcessRow>,
}

/// Another process a process is tied to (link, monitor, parent), with its
/// name or label while it lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Its pid number.
    pub id: u64,
    /// Its name or label, `None` once it has ended.
    pub label: Option<String>,
}

/// Everything about one process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessDetail {
    /// What a list shows of it.
    #[serde(flatten)]
    pub row: ProcessRow,
    /// Who spawned it.
    pub parent: Option<Neighbour>,
    /// How long it has run, in milliseconds.
    pub uptime_ms: u64,
    /// Its memory limit (a guest's linear memory), in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Its mailbox bound.
    pub mailbox_capacity: Option<usize>,
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// Polls that blocked its scheduler too long.
    pub long_polls: u32,
    /// Linked processes.
    pub links: Vec<Neighbour>,
    /// Processes it monitors.
    pub monitors: Vec<Neighbour>,
    /// Processes monitoring it.
    pub monitored_by: Vec<Neighbour>,
    /// Its call stack, or what a native process is doing.
    pub stack: Stack,
}

/// What a process is doing, as deep as can be seen from outside.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stack {
    /// A sandboxed process's call stack, innermost function first.
    Guest(Vec<String>),
    /// A sandboxed process whose threads were too busy to show its stack
    /// within a second: ask again.
    GuestBusy,
    /// A native process has no stack to capture; its current activity.
    Native(String),
}

/// How many processes carry one label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    /// The label (kind).
    pub label: String,
    /// Processes alive with it.
    pub count: usize,
}

/// One version of a guest module and the processes running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCount {
    /// The version number.
    pub version: u32,
    /// Processes running it.
    pub running: usize,
}

/// How a guest module's calls ended, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Calls started.
    pub started: u64,
    /// Calls that returned.
    pub returned: u64,
    /// Calls that trapped or crashed.
    pub crashed: u64,
    /// Calls killed.
    pub killed: u64,
}

/// A loaded guest module.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleView {
    /// Its name.
    pub name: String,
    /// The version new processes run.
    pub current: u32,
    /// Versions with processes running them.
    pub versions: Vec<VersionCount>,
    /// The functions it exports.
    pub functions: Vec<String>,
    /// How its calls ended.
    pub calls: CallCounts,
    /// CPU budget per process, in seconds.
    pub cpu_budget_s: Option<f64>,
    /// Whether its calls reuse instances (it declares it and holds no state).
    #[serde(default)]
    pub reuses_instances: bool,
    /// Instances kept for its next calls.
    #[serde(default)]
    pub idle_instances: usize,
}

impl From<owl_sandbox::ModuleInfo> for ModuleView {
    fn from(m: owl_sandbox::ModuleInfo) -> ModuleView {
        ModuleView {
            name: m.name,
            current: m.current,
            versions: m
                .versions
                .into_iter()
                .map(|(version, running)| VersionCount { version, running })
                .collect(),
            functions: m.functions,
            calls: CallCounts {
                started: m.calls.started,
                returned: m.calls.returned,
                crashed: m.calls.crashed,
                killed: m.calls.killed,
            },
            cpu_budget_s: m.cpu_budget.map(|b| b.as_secs_f64()),
            reuses_instances: m.reuses_instances,
            idle_instances: m.idle_instances,
        }
    }
}

/// A node's figures at a glance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStats {
    /// Time since the node started, in seconds.
    pub uptime_s: f64,
    /// Processes alive.
    pub processes: usize,
    /// Processes alive by label, most first.
    pub by_label: Vec<LabelCount>,
    /// Processes spawned since start.
    pub spawned: u64,
    /// Processes ended since start.
    pub exited: u64,
    /// Processes crashed since start.
    pub crashed: u64,
    /// Resident memory of the OS process, in bytes.
    pub memory_rss_bytes: u64,
    /// Scheduler threads.
    pub schedulers: usize,
    /// The cores the node computes on.
    pub schedulers_online: usize,
    /// Busy share of the cores online over the last window (0–1): native
    /// schedulers and guest threads together.
    pub utilization: f64,
    /// Each scheduler's busy share (0–1).
    pub utilization_per_scheduler: Vec<f64>,
    /// The guest threads' busy share of their own threads (0–1).
    pub guest_utilization: f64,
    /// Guest threads.
    pub guest_threads: usize,
    /// Loaded guest modules.
    pub modules: Vec<ModuleView>,
    /// The newest point of the node's history (memory by kind, run queues,
    /// the machine's CPU and memory), once one was taken.
    #[serde(default)]
    pub latest: Option<super::SystemPoint>,
    /// The board's store.
    #[serde(default)]
    pub board: Option<crate::board::BoardFigures>,
    /// The disk the node's data directory is on.
    #[serde(default)]
    pub data_disk: Option<crate::host::Disk>,
}
