//! Process lists sorted by work, for the console's `ps` and the process
//! dashboard alike.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use owl_runtime::{Node, PidId, ProcessInfo};

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
/// Sorting by CPU or reductions without a filter picks the top from the
/// lock-free work counters and reads the full info of those rows only, so a
/// dashboard refreshing every second stays cheap next to 100,000 jobs.
///
/// ```
/// use owl_runtime::Runtime;
/// use owl_system::operator::{list, SortKey};
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
    let recent_of = |pid: PidId| recent.map(|r| r.get(&pid).copied().unwrap_or_default());
    let infos: Vec<ProcessInfo> =
        if filter.is_empty() && matches!(sort, SortKey::Cpu | SortKey::Reductions) {
            let mut samples = node.process_samples();
            let key = |s: &owl_runtime::ProcessSample| match sort {
                SortKey::Cpu => recent_of(s.pid.id()).unwrap_or(s.cpu_time).as_nanos(),
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
                .filter(|info| matches(info, filter))
                .collect()
        };
    let mut rows: Vec<ProcessRow> = infos
        .into_iter()
        .map(|info| ProcessRow {
            recent_cpu: recent_of(info.pid.id()),
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
#[derive(Default, Debug)]
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
        for sort in [SortKey::Cpu, SortKey::Reductions] {
            let rows = list(&node, sort, 5, "", None);
            assert_eq!(rows.len(), 5);
            assert_eq!(rows[0].info.pid, busy, "sorted by {}", sort.name());
        }
        // A filter takes the full scan and still finds it.
        let rows = list(&node, SortKey::Cpu, 5, &busy.to_string(), None);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].info.pid, busy);
        let total: usize = node.label_counts().iter().map(|(_, n)| n).sum();
        assert_eq!(total, node.process_count());
    }
}
