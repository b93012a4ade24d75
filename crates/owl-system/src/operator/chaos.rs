//! Chaos: kill random processes for a while, then report what healed and
//! how fast — the "let it crash" promise, tested on the running node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use owl_runtime::{ExitReason, Node, Pid, PidId};

use super::ROOT;

/// What a chaos run did and saw.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosReport {
    /// Processes killed.
    pub kills: u64,
    /// Kills by label (kind).
    pub by_label: BTreeMap<String, u64>,
    /// Registered names alive before the run that were back after it.
    pub names_back: Vec<String>,
    /// Registered names alive before the run and still missing at the end.
    pub names_missing: Vec<String>,
    /// Background job workers alive before the run, and at its end: a
    /// killed worker is restarted by its supervisor, and the tree is not
    /// whole until they all are.
    pub workers_before: usize,
    /// See `workers_before`.
    pub workers_after: usize,
    /// From the last kill until every name and every worker was back, to
    /// stay for 100 ms (None: not within the wait).
    pub healed_after: Option<Duration>,
    /// Processes alive before the run, and after it healed.
    pub processes_before: usize,
    /// See `processes_before`.
    pub processes_after: usize,
}

/// How a chaos run picks its victims.
#[derive(Clone, Debug)]
pub struct ChaosPlan {
    /// How long it kills.
    pub duration: Duration,
    /// Kills per second.
    pub rate: f64,
    /// Also kill supervisors (never the root one).
    pub supervisors: bool,
    /// Never kill these, nor their ancestors (the console session running
    /// the command, so it can report).
    pub spare: Vec<Pid>,
}

/// How long the run waits for the tree to heal after its last kill.
const HEAL_WAIT: Duration = Duration::from_secs(10);

/// How long the tree must stay whole to count as healed: the process killed
/// last is still counted for a moment after the kill, before it is gone and
/// before its restart, so one whole-looking sample can come too early.
const HEAL_STEADY: Duration = Duration::from_millis(100);

fn is_supervisor(label: &str) -> bool {
    label.contains("supervisor")
}

/// Pid numbers not to kill: the root, the spared processes and every
/// ancestor of theirs.
fn protected(node: &Node, spare: &[Pid]) -> Vec<PidId> {
    let mut out: Vec<PidId> = node.whereis(ROOT).map(|p| p.id()).into_iter().collect();
    for pid in spare {
        let mut at = Some(pid.id());
        while let Some(id) = at {
            out.push(id);
            at = node
                .lookup(id)
                .and_then(|p| node.info(&p))
                .and_then(|i| i.parent);
        }
    }
    out
}

/// A small, fast random source (xorshift); chaos needs no more.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

pub(super) async fn run(node: &Node, plan: ChaosPlan) -> ChaosReport {
    let spare = protected(node, &plan.spare);
    let names_before: Vec<String> = node.registered().into_iter().map(|(n, _)| n).collect();
    let processes_before = node.process_count();
    let workers = |node: &Node| node.labelled(crate::load::WORKER_LABEL).len();
    let workers_before = workers(node);
    let mut dice = Dice(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
            | 1,
    );
    let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
    let mut kills = 0u64;
    let every = Duration::from_secs_f64(1.0 / plan.rate.max(0.01));
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < plan.duration {
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        next += every;
        // A kind first, then one of its processes: a hundred thousand
        // workers must not drown the rarer kinds (supervisors, servers).
        let kinds: Vec<String> = node
            .label_counts()
            .into_iter()
            .map(|(label, _)| label)
            .filter(|label| plan.supervisors || !is_supervisor(label))
            .collect();
        if kinds.is_empty() {
            continue;
        }
        let label = kinds[dice.below(kinds.len())].clone();
        let pids: Vec<Pid> = node
            .labelled(&label)
            .into_iter()
            .filter(|p| !spare.contains(&p.id()))
            .collect();
        if pids.is_empty() {
            continue;
        }
        let victim = pids[dice.below(pids.len())].clone();
        tracing::warn!(target: "owl::chaos", pid = %victim, label = %label, "chaos: killing");
        node.exit(&victim, ExitReason::Kill);
        *by_label.entry(label).or_default() += 1;
        kills += 1;
    }
    let last_kill = Instant::now();
    let missing = |node: &Node| -> Vec<String> {
        names_before
            .iter()
            .filter(|n| node.whereis(n).is_none())
            .cloned()
            .collect()
    };
    let mut healed_after = None;
    // Since when the tree has looked whole, without a break.
    let mut whole_since: Option<Duration> = None;
    let (mut names_missing, mut workers_after) = (missing(node), workers(node));
    while last_kill.elapsed() < HEAL_WAIT {
        (names_missing, workers_after) = (missing(node), workers(node));
        if names_missing.is_empty() && workers_after >= workers_before {
            let since = *whole_since.get_or_insert(last_kill.elapsed());
            if last_kill.elapsed() >= since + HEAL_STEADY {
                healed_after = Some(since);
                break;
            }
        } else {
            whole_since = None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ChaosReport {
        kills,
        by_label,
        names_back: names_before
            .iter()
            .filter(|n| !names_missing.contains(n))
            .cloned()
            .collect(),
        names_missing,
        workers_before,
        workers_after,
        healed_after,
        processes_before,
        processes_after: node.process_count(),
    }
}
