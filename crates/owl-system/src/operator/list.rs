//! Process lists sorted by work, for the console's `ps` and the process
//! dashboard alike — without reading every process of the node.
//!
//! A list is ranked among *candidates*: the processes the profiler saw
//! busy over the last second, those whose mailbox or memory grew large
//! (the runtime notes them as it happens), the rows this sort key showed
//! last time, and a few more to fill an idle node's page. A million quiet
//! load workers are none of these, so a dashboard's refresh costs what
//! changed. A search is the exception — it must look at every process —
//! so it runs off the schedulers, once, and its matches serve the next
//! five seconds of refreshes.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use owl_runtime::{Node, Pid, ProcessInfo};
use serde::{Deserialize, Serialize};

use super::observer::Busy;
use super::views::ProcessRow;

/// How a process list is ordered (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// Share of a scheduler over the last second, sampled.
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

/// A process's row, from its info and its sampled share of a scheduler.
pub(crate) fn row_of(info: &ProcessInfo, cpu_pct: f64) -> ProcessRow {
    ProcessRow {
        id: info.pid.id().0,
        name: info.name.clone(),
        label: info.label.clone(),
        state: info.status.into(),
        priority: info.priority.into(),
        cpu_pct,
        cpu_total_us: info.cpu_time.as_micros() as u64,
        reductions: info.reductions,
        memory_bytes: info.memory_bytes as u64,
        queue: info.message_queue_len,
        activity: info.current_activity.clone(),
    }
}

/// The rows for `candidates`, ordered by `sort`, the first `limit`.
pub(crate) fn rank(
    node: &Node,
    candidates: impl IntoIterator<Item = Pid>,
    sort: SortKey,
    limit: usize,
    busy: &Busy,
) -> Vec<ProcessRow> {
    let mut seen = std::collections::HashSet::new();
    let mut rows: Vec<ProcessRow> = candidates
        .into_iter()
        .filter(|pid| seen.insert(pid.id()))
        .filter_map(|pid| node.info(&pid))
        .map(|info| row_of(&info, busy.cpu_pct(info.pid.id())))
        .collect();
    let key = |row: &ProcessRow| -> u128 {
        match sort {
            SortKey::Cpu => (row.cpu_pct * 1e6) as u128,
            SortKey::Reductions => u128::from(row.reductions),
            SortKey::Memory => u128::from(row.memory_bytes),
            SortKey::Mailbox => row.queue as u128,
        }
    };
    rows.sort_by(|a, b| key(b).cmp(&key(a)).then(a.id.cmp(&b.id)));
    rows.truncate(limit);
    rows
}

/// Matches kept per search, at most: a search that matches more (every
/// load worker) ranks the first ones only.
pub(crate) const SEARCH_CAP: usize = 100_000;
/// How long a search's matches serve before it runs again.
const SEARCH_FRESH: Duration = Duration::from_secs(5);
/// Searches remembered (a few viewers, a few texts each).
const SEARCHES_KEPT: usize = 8;

/// What the lists remember between refreshes.
#[derive(Debug, Default)]
pub(crate) struct ListMemory {
    /// The rows each sort key showed last.
    shown: HashMap<SortKey, Vec<Pid>>,
    /// Recent searches, newest last.
    searches: VecDeque<(String, Instant, Arc<Vec<Pid>>)>,
}

impl ListMemory {
    pub(crate) fn shown(&self, sort: SortKey) -> Vec<Pid> {
        self.shown.get(&sort).cloned().unwrap_or_default()
    }

    pub(crate) fn remember_shown(&mut self, sort: SortKey, rows: &[ProcessRow], node: &Node) {
        let pids = rows
            .iter()
            .filter_map(|r| node.lookup(owl_runtime::PidId(r.id)))
            .collect();
        self.shown.insert(sort, pids);
    }

    /// The matches of a search for `text` made in the last five seconds.
    pub(crate) fn search(&self, text: &str) -> Option<Arc<Vec<Pid>>> {
        self.searches
            .iter()
            .rev()
            .find(|(t, at, _)| t == text && at.elapsed() < SEARCH_FRESH)
            .map(|(_, _, found)| found.clone())
    }

    pub(crate) fn remember_search(&mut self, text: &str, found: Arc<Vec<Pid>>) {
        self.searches.retain(|(t, _, _)| t != text);
        if self.searches.len() == SEARCHES_KEPT {
            self.searches.pop_front();
        }
        self.searches
            .push_back((text.to_string(), Instant::now(), found));
    }
}
