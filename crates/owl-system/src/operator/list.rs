//! Process lists sorted by work, for the console's `ps` and the process
//! dashboard alike.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use owl_runtime::{Node, PidId, ProcessInfo};
use serde::{Deserialize, Serialize};

use super::views::{ListQuery, ProcessRow};

/// How a process list is ordered (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    /// CPU over the last sampling window.
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

/// A process's row, from its info and its CPU over the window.
pub(crate) fn row_of(info: &ProcessInfo, recent: Duration, window: Duration) -> ProcessRow {
    ProcessRow {
        id: info.pid.id().0,
        name: info.name.clone(),
        label: info.label.clone(),
        state: info.status.into(),
        priority: info.priority.into(),
        cpu_pct: recent.as_secs_f64() / window.as_secs_f64().max(1e-3) * 100.0,
        cpu_total_us: info.cpu_time.as_micros() as u64,
        reductions: info.reductions,
        memory_bytes: info.memory_bytes as u64,
        queue: info.message_queue_len,
        activity: info.current_activity.clone(),
    }
}

/// The processes matching `query`, ordered by its key, with CPU shares
/// over `window` from `recent` (CPU per pid over that window).
///
/// Sorting by CPU or reductions without a filter picks the top from the
/// lock-free work counters and reads the full info of those rows only, so a
/// dashboard refreshing every second stays cheap next to 100,000 jobs.
pub(crate) fn list(
    node: &Node,
    query: &ListQuery,
    recent: &HashMap<PidId, Duration>,
    window: Duration,
) -> Vec<ProcessRow> {
    let recent_of = |pid: PidId| recent.get(&pid).copied().unwrap_or_default();
    let limit = query.limit;
    let infos: Vec<ProcessInfo> =
        if query.filter.is_empty() && matches!(query.sort, SortKey::Cpu | SortKey::Reductions) {
            let mut samples = node.process_samples();
            let key = |s: &owl_runtime::ProcessSample| match query.sort {
                SortKey::Cpu => recent_of(s.pid.id()).as_nanos(),
                _ => u128::from(s.reductions),
            };
            // Only the top `limit` need to be found; the rows are sorted below.
            if limit > 0 && samples.len() > limit {
                samples.select_nth_unstable_by(limit - 1, |a, b| {
                    key(b).cmp(&key(a)).then(a.pid.id().cmp(&b.pid.id()))
                });
            }
            samples
                .iter()
                .take(limit)
                .filter_map(|s| node.info(&s.pid))
                .collect()
        } else {
            node.processes()
                .into_iter()
                .filter(|info| matches(info, &query.filter))
                .collect()
        };
    let mut rows: Vec<ProcessRow> = infos
        .iter()
        .map(|info| row_of(info, recent_of(info.pid.id()), window))
        .collect();
    let key = |row: &ProcessRow| -> u128 {
        match query.sort {
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

/// CPU time per process between two looks, for "CPU over the last interval".
#[derive(Default, Debug)]
pub(crate) struct RecentCpu {
    last: HashMap<PidId, Duration>,
    at: Option<std::time::Instant>,
}

impl RecentCpu {
    /// Takes a new look at every process; returns each one's CPU time since
    /// the previous look (all of it for processes new since then) and the
    /// time between the two looks.
    pub(crate) fn update(&mut self, node: &Node) -> (HashMap<PidId, Duration>, Duration) {
        let now_at = std::time::Instant::now();
        let elapsed = self.at.map_or(node.uptime(), |at| now_at - at);
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

#[cfg(test)]
mod tests {
    use super::*;
    use owl_runtime::Runtime;

    #[test]
    fn the_busiest_process_tops_the_list_among_many_idle_ones() {
        let rt = Runtime::new(Default::default()).unwrap();
        let node = rt.node();
        for _ in 0..500 {
            node.spawn(|mut p| async move { p.recv::<()>().await });
        }
        let mut recent = RecentCpu::default();
        recent.update(&node);
        // Busy in slices between messages: most CPU time and most reductions.
        let busy = node.spawn(|mut p| async move {
            for _ in 0..20 {
                let t = std::time::Instant::now();
                while t.elapsed() < Duration::from_millis(2) {}
                p.pid().send(1u8).unwrap();
                p.recv::<u8>().await;
            }
            p.recv::<()>().await
        });
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
        let (cpu, window) = recent.update(&node);
        for sort in [SortKey::Cpu, SortKey::Reductions] {
            let query = ListQuery {
                sort,
                filter: String::new(),
                limit: 5,
            };
            let rows = list(&node, &query, &cpu, window);
            assert_eq!(rows.len(), 5);
            assert_eq!(rows[0].id, busy.id().0, "sorted by {}", sort.name());
        }
        assert!(
            list(
                &node,
                &ListQuery {
                    limit: 1,
                    ..ListQuery::default()
                },
                &cpu,
                window
            )[0]
            .cpu_pct
                > 5.0
        );
        // A filter takes the full scan and still finds it.
        let query = ListQuery {
            sort: SortKey::Cpu,
            filter: busy.to_string(),
            limit: 5,
        };
        let rows = list(&node, &query, &cpu, window);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, busy.id().0);
        let total: usize = node.label_counts().iter().map(|(_, n)| n).sum();
        assert_eq!(total, node.process_count());
    }
}
