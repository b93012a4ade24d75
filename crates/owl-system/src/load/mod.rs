//! Load control: the talk's background jobs, as many as the operator asks
//! for — up to ten million — each a supervised process.
//!
//! A job waits a random 0–1 s, then once a second computes ∑(1..100) and
//! counts a success. The operator sets one figure, the target; a manager
//! process starts workers in batches until they are that many, and surplus
//! workers stop themselves at their next wake-up (no mass kill through the
//! supervisor). A sampler records jobs per second and utilization ten times
//! a second for the load page's charts.
//!
//! In a cluster the target is one figure for all nodes, a replicated
//! setting (last writer wins); each node runs its [`share_of`] it — the
//! target divided by the nodes that are up, the remainder to the first by
//! name — and recomputes it whenever a node comes up or goes down. A share
//! shrinks at once; it grows for a node that went down only once that node
//! has stayed down for [`TAKEOVER_GRACE`], so a peer that answers late for
//! a moment never doubles this node's load.
//!
//! ```text
//! load_sup (rest_for_one)
//! ├── load_workers   dynamic supervisor: one transient child per job
//! └── load_manager   starts workers up to the target; owns the sampler
//! ```
//!
//! ```
//! use std::time::Duration;
//! use owl_runtime::Runtime;
//! use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
//! use owl_system::load::LoadControl;
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let node = rt.node();
//! let load = LoadControl::new(0);
//! let spec = SupervisorSpec::new(Strategy::OneForOne).child(load.child_spec(|| || 0.0));
//! rt.block_on(async {
//!     let root = Supervisor::start(&node, spec).await.unwrap();
//!     load.set_target(1_000).unwrap();
//!     while load.workers() < 1_000 {
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!     }
//!     load.set_target(0).unwrap();
//!     // Surplus workers leave at their next wake-up, within about a second.
//!     while load.workers() > 0 {
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!     }
//!     root.shutdown(Duration::from_secs(5)).await;
//! });
//! ```

mod sampler;
mod takeover;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use owl_cluster::{Cluster, MemberState};
use owl_runtime::supervisor::{
    ChildSpec, Restart, Shutdown, Strategy, SupervisorRef, SupervisorSpec,
};
use owl_runtime::{Priority, Process, SpawnOptions};
use parking_lot::Mutex;

pub use sampler::{Lateness, Point};
pub use takeover::TAKEOVER_GRACE;
use takeover::{Takeover, Verdict};

/// The registered name of the load subtree's supervisor.
pub const SUPERVISOR: &str = "load_sup";
/// The registered name of the workers' supervisor.
pub const WORKERS: &str = "load_workers";
/// The registered name of the manager.
pub const MANAGER: &str = "load_manager";
/// The label of every worker in the process table.
pub const WORKER_LABEL: &str = "load worker";
/// The most jobs the target may name.
pub const MAX_TARGET: u64 = 10_000_000;
/// The process group that gets every sample ([`Point`]) as a message.
pub const TICKS: &str = "load ticks";
/// Samples kept: 60 s at 10 per second.
pub const HISTORY: usize = 600;
/// Time between samples.
pub const TICK: Duration = Duration::from_millis(100);

/// Workers started per request to the workers' supervisor: small enough
/// that one request never holds a (background) scheduler for long — about
/// a millisecond.
const BATCH: usize = 500;
/// How often the manager checks the count even without a change of target.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// The cluster setting that holds the cluster-wide target.
pub const TARGET_SETTING: &str = "load.target";
/// What each node publishes of its load, for the others' pages.
const PUBLISHED_WORKERS: &str = "load.workers";
const PUBLISHED_JOBS: &str = "load.jobs_per_s";
const PUBLISHED_SHARE: &str = "load.share";

/// A node's deterministic share of a cluster-wide `target`: the target
/// divided by the nodes up, the remainder one each to the first nodes by
/// name. `up` is sorted; a node not in it runs nothing.
///
/// ```
/// use owl_system::load::share_of;
/// let up = ["a".to_string(), "b".to_string(), "c".to_string()];
/// assert_eq!(share_of(30_000, &up, "b"), 10_000);
/// assert_eq!(share_of(10, &up, "a"), 4);
/// assert_eq!(share_of(10, &up, "c"), 3);
/// assert_eq!(share_of(10, &up, "z"), 0);
/// ```
pub fn share_of(target: u64, up: &[String], me: &str) -> u64 {
    let Some(index) = up.iter().position(|n| n == me) else {
        return 0;
    };
    let n = up.len() as u64;
    target / n + u64::from((index as u64) < target % n)
}

/// Whether a node is up, as the load views say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its peers hear from it.
    Up,
    /// Its peers declared it dead.
    Down,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Up => "up",
            NodeState::Down => "down",
        })
    }
}

/// One node's load, as the load page, `GET /api/load` and the console
/// list it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeLoad {
    /// The node's name.
    pub name: String,
    /// Up or down.
    pub state: NodeState,
    /// True for the node answering.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Its share of the target.
    pub share: u64,
    /// Workers running there.
    pub workers: u64,
    /// Its successful jobs per second.
    pub jobs_per_s: f64,
}

/// Why a target was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTarget(pub String);

impl std::fmt::Display for InvalidTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for InvalidTarget {}

/// Reads a target as typed: an integer from 0 to [`MAX_TARGET`]
/// (`100000` or `100_000`).
///
/// ```
/// use owl_system::load::parse_target;
/// assert_eq!(parse_target("100_000"), Ok(100_000));
/// assert!(parse_target("-1").is_err());
/// assert!(parse_target("10000001").is_err());
/// assert!(parse_target("abc").is_err());
/// ```
pub fn parse_target(text: &str) -> Result<u64, InvalidTarget> {
    let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
    let invalid = || {
        InvalidTarget(format!(
            "the target must be a whole number of jobs from 0 to {MAX_TARGET}, not {:?}",
            text.chars().take(40).collect::<String>()
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    if n > MAX_TARGET {
        return Err(invalid());
    }
    Ok(n)
}

/// A change of load control's two knobs, as the load page and
/// `PUT /api/load` ask for it: either or both. It is checked whole before
/// anything changes ([`Operator::change_load`](crate::operator::Operator::change_load)),
/// so a request with one bad knob changes nothing.
///
/// ```
/// use owl_system::load::LoadChange;
/// let both = LoadChange::parse("100_000", "1").unwrap();
/// assert_eq!((both.target, both.schedulers), (Some(100_000), Some(1)));
/// assert_eq!(LoadChange::parse("", " ").unwrap(), LoadChange::default());
/// assert!(LoadChange::parse("5", "two").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadChange {
    /// The new target, if it changes.
    pub target: Option<u64>,
    /// The new number of schedulers online, if it changes.
    pub schedulers: Option<usize>,
}

impl LoadChange {
    /// Reads the knobs as a form sends them; an empty field changes nothing.
    pub fn parse(target: &str, schedulers: &str) -> Result<LoadChange, InvalidTarget> {
        let target = match target.trim() {
            "" => None,
            text => Some(parse_target(text)?),
        };
        let schedulers = match schedulers.trim() {
            "" => None,
            text => Some(
                text.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        InvalidTarget(format!(
                            "schedulers must be a whole number from 1 up, not {:?}",
                            text.chars().take(20).collect::<String>()
                        ))
                    })?,
            ),
        };
        Ok(LoadChange { target, schedulers })
    }
}

pub(crate) struct Shared {
    /// What this node runs: the whole target alone, its share in a cluster.
    target: AtomicU64,
    /// Workers alive (counted from their start until they end).
    running: AtomicU64,
    /// Successful jobs since start.
    jobs: AtomicU64,
    /// Wakes the manager when the target changes.
    changed: tokio::sync::Notify,
    samples: Mutex<sampler::Samples>,
    /// Damps taking over the share of nodes that went down.
    takeover: Mutex<Takeover>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target)
            .field("running", &self.running)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// The load control service. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LoadControl {
    shared: Arc<Shared>,
    cluster: Option<Cluster>,
}

impl LoadControl {
    /// A load control that starts with `target` jobs.
    pub fn new(target: u64) -> LoadControl {
        LoadControl {
            shared: Arc::new(Shared {
                target: AtomicU64::new(target.min(MAX_TARGET)),
                running: AtomicU64::new(0),
                jobs: AtomicU64::new(0),
                changed: tokio::sync::Notify::new(),
                samples: Mutex::new(sampler::Samples::default()),
                takeover: Mutex::new(Takeover::default()),
            }),
            cluster: None,
        }
    }

    /// A load control whose target is the cluster's: this node runs its
    /// [`share_of`] it. `target` is this node's start-up default, used only
    /// if the cluster has no target yet.
    pub fn clustered(target: u64, cluster: Cluster) -> LoadControl {
        if target > 0 {
            cluster.put_default_setting(TARGET_SETTING, target.min(MAX_TARGET));
        }
        LoadControl {
            cluster: Some(cluster),
            ..LoadControl::new(0)
        }
    }

    /// The load subtree for the application's tree. `meter` makes, for each
    /// (re)start of the sampler, a function that tells the node's busy share
    /// (0.0–1.0) since its previous call.
    pub fn child_spec<M>(&self, meter: impl Fn() -> M + Send + Sync + 'static) -> ChildSpec
    where
        M: FnMut() -> f64 + Send + 'static,
    {
        let workers = SupervisorSpec::dynamic()
            .name(WORKERS)
            .label("load worker supervisor")
            // Workers are killed from the console or by chaos tests now and
            // then; only a storm of deaths should make the subtree give up.
            .intensity(10_000, Duration::from_secs(10));
        let this = self.clone();
        let manager = ChildSpec::worker(MANAGER, move |args| {
            let (this, utilization) = (this.clone(), meter());
            let opts = SpawnOptions::new().label("load manager");
            let pid = args.spawn_link_opts(opts, move |p| manage(p, this, utilization));
            async move { Ok(pid) }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
        ChildSpec::supervisor(
            SUPERVISOR,
            SupervisorSpec::new(Strategy::RestForOne)
                .name(SUPERVISOR)
                .label("load supervisor")
                // The jobs and their supervisor run on the background
                // schedulers: pages, sessions and the console come first.
                .child(ChildSpec::supervisor(WORKERS, workers).priority(Priority::Low))
                .child(manager),
        )
    }

    /// The target: how many jobs should run (in a cluster, on all nodes
    /// together).
    pub fn target(&self) -> u64 {
        match &self.cluster {
            Some(cluster) => cluster_target(cluster),
            None => self.shared.target.load(Ordering::Relaxed),
        }
    }

    /// True if the target is a cluster's.
    pub fn in_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// How many jobs this node runs: the target alone, its share of it in
    /// a cluster.
    pub fn share(&self) -> u64 {
        self.shared.target.load(Ordering::Relaxed)
    }

    /// Sets the target (0 ..= [`MAX_TARGET`]); in a cluster, for every node.
    pub fn set_target(&self, target: u64) -> Result<(), InvalidTarget> {
        if target > MAX_TARGET {
            return Err(InvalidTarget(format!(
                "the target must be from 0 to {MAX_TARGET} jobs, not {target}"
            )));
        }
        let before = self.target();
        if before != target {
            tracing::info!(target: "owl::load", from = before, to = target, "load target changed");
        }
        match &self.cluster {
            Some(cluster) => {
                cluster.put_setting(TARGET_SETTING, target);
                self.apply_share(cluster);
            }
            None => self.shared.target.store(target, Ordering::Relaxed),
        }
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Every node's load: this node alone, or each node of the cluster
    /// (as last published), up ones first.
    pub fn nodes(&self) -> Vec<NodeLoad> {
        let latest = self.latest();
        let Some(cluster) = &self.cluster else {
            return vec![NodeLoad {
                name: "owl".to_string(),
                state: NodeState::Up,
                is_self: true,
                share: self.share(),
                workers: self.workers(),
                jobs_per_s: latest.jobs_per_s,
            }];
        };
        let target = cluster_target(cluster);
        let up = cluster.live_names();
        let mut nodes: Vec<NodeLoad> = cluster
            .members()
            .into_iter()
            .map(|m| {
                let figure = |key: &str| m.values.get(key).and_then(|v| v.parse::<f64>().ok());
                let (workers, jobs_per_s) = if m.is_self {
                    (self.workers(), latest.jobs_per_s)
                } else if m.state == MemberState::Down {
                    // What a down node last said is no longer true.
                    (0, 0.0)
                } else {
                    (
                        figure(PUBLISHED_WORKERS).unwrap_or(0.0) as u64,
                        figure(PUBLISHED_JOBS).unwrap_or(0.0),
                    )
                };
                NodeLoad {
                    share: share_of(target, &up, &m.name),
                    state: match m.state {
                        MemberState::Up => NodeState::Up,
                        MemberState::Down => NodeState::Down,
                    },
                    is_self: m.is_self,
                    name: m.name,
                    workers,
                    jobs_per_s,
                }
            })
            .collect();
        nodes.sort_by(|a, b| {
            (a.state != NodeState::Up, &a.name).cmp(&(b.state != NodeState::Up, &b.name))
        });
        nodes
    }

    /// Recomputes this node's share from the cluster's target and the
    /// nodes up, taking over a lost node's share only after
    /// [`TAKEOVER_GRACE`]. Returns when to look again if a takeover waits.
    fn apply_share(&self, cluster: &Cluster) -> Option<std::time::Instant> {
        // Until the node knows who is up it takes no share; nor does a
        // node whose name another node held first (that one runs it).
        let up = cluster.live_names();
        let wanted = if cluster.is_settled() && cluster.name_taken_by().is_none() {
            share_of(cluster_target(cluster), &up, cluster.node_name())
        } else {
            0
        };
        let current = self.shared.target.load(Ordering::Relaxed);
        let verdict =
            self.shared
                .takeover
                .lock()
                .decide(current, wanted, &up, std::time::Instant::now());
        let share = match verdict {
            Verdict::Apply(share) => share,
            Verdict::Wait { until, started } => {
                if started {
                    tracing::info!(target: "owl::load", nodes_up = up.len(),
                        grace_ms = TAKEOVER_GRACE.as_millis() as u64,
                        "a node is down; its share moves here if it stays down");
                }
                return Some(until);
            }
        };
        let before = self.shared.target.swap(share, Ordering::Relaxed);
        if before != share {
            tracing::info!(target: "owl::load", from = before, to = share, "this node's share of the load changed");
        }
        None
    }

    /// Workers running now.
    pub fn workers(&self) -> u64 {
        self.shared.running.load(Ordering::Relaxed)
    }

    /// Successful jobs since start.
    pub fn jobs(&self) -> u64 {
        self.shared.jobs.load(Ordering::Relaxed)
    }

    /// The latest sample (zeros before the first).
    pub fn latest(&self) -> Point {
        self.shared.samples.lock().latest()
    }

    /// The last [`HISTORY`] samples, oldest first.
    pub fn history(&self) -> Vec<Point> {
        self.shared.samples.lock().history()
    }

    /// How late the sampler has been on its ticks, since start.
    pub fn lateness(&self) -> Lateness {
        self.shared.samples.lock().lateness()
    }
}

/// The jobs per second the other nodes up last published.
fn others_jobs_per_s(cluster: &Cluster) -> f64 {
    cluster
        .members()
        .iter()
        .filter(|m| !m.is_self && m.state == MemberState::Up)
        .filter_map(|m| m.values.get(PUBLISHED_JOBS)?.parse::<f64>().ok())
        .sum()
}

fn cluster_target(cluster: &Cluster) -> u64 {
    cluster
        .setting(TARGET_SETTING)
        .and_then(|s| s.value.parse::<u64>().ok())
        .map_or(0, |t| t.min(MAX_TARGET))
}

/// The manager: starts workers (in batches, through the workers'
/// supervisor) until they are as many as the target; owns the sampler. In
/// a cluster it also follows the node's share and publishes its figures.
async fn manage(p: Process, load: LoadControl, utilization: impl FnMut() -> f64 + Send + 'static) {
    let shared = load.shared.clone();
    let cluster = load.cluster.clone();
    let others = move || cluster.as_ref().map(others_jobs_per_s);
    let _sampler = sampler::start(p.node().clone(), shared.clone(), utilization, others);
    let spec = worker::child_spec(shared.clone()).restart(Restart::Transient);
    let mut cluster_changes = load.cluster.as_ref().map(Cluster::changes);
    loop {
        let mut takeover_at = None;
        if let Some(cluster) = &load.cluster {
            takeover_at = load.apply_share(cluster);
            let latest = load.latest();
            cluster.publish(PUBLISHED_WORKERS, shared.running.load(Ordering::Relaxed));
            cluster.publish(PUBLISHED_JOBS, latest.jobs_per_s.round());
            cluster.publish(PUBLISHED_SHARE, shared.target.load(Ordering::Relaxed));
        }
        let target = shared.target.load(Ordering::Relaxed);
        let running = shared.running.load(Ordering::Relaxed);
        if running < target {
            p.set_activity(format!("starting workers: {running} of {target}"));
            let Some(workers) = p.node().whereis(WORKERS) else {
                tokio::time::sleep(RECONCILE_EVERY).await;
                continue;
            };
            let want = ((target - running) as usize).min(BATCH);
            let started = SupervisorRef::from_pid(workers)
                .start_children(spec.clone(), want, Duration::from_secs(10))
                .await;
            let stopped = match started {
                Ok(batch) => batch.stopped_by.map(|why| why.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = stopped {
                tracing::warn!(target: "owl::load", error = %why, "could not start every load worker");
                tokio::time::sleep(RECONCILE_EVERY).await;
            }
            // Let pages and other processes in between batches.
            tokio::task::yield_now().await;
            continue;
        }
        p.set_activity(format!("{running} workers for a target of {target}"));
        let membership_changed = async {
            match &mut cluster_changes {
                Some(changes) => {
                    let _ = changes.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        // A waiting takeover is looked at again the moment its grace ends.
        let look_again = takeover_at.map_or(RECONCILE_EVERY, |at| {
            at.saturating_duration_since(std::time::Instant::now())
                .min(RECONCILE_EVERY)
        });
        tokio::select! {
            () = shared.changed.notified() => {}
            () = membership_changed => {}
            () = tokio::time::sleep(look_again) => {}
        }
    }
}
