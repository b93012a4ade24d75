//! The operator's facade: everything the person running the node does —
//! find processes, look inside them, kill them, upgrade code, read the
//! node's figures — as one set of calls. The console, the dashboards and
//! `/metrics` are thin skins over these (as Phoenix's web layer calls
//! contexts, never the repository).

mod chaos;
mod history;
mod list;
mod meter;
mod observer;
mod trace;
mod upgrade;
mod views;

use std::sync::Arc;
use std::time::Duration;

use owl_runtime::supervisor::{ChildKind, SupervisorRef, TreeNode};
use owl_runtime::{ExitReason, Node, Pid, PidId, ProcessInfo, TopEntry};
use owl_sandbox::{ModuleInfo, Sandbox, StackError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::math::MathService;

pub use chaos::{ChaosPlan, ChaosReport};
pub use history::{HISTORY_POINTS, POINT_EVERY, SystemHistory, SystemPoint};
pub use list::SortKey;
pub use meter::{Meter, Sample};
pub use trace::{FunctionShare, GuestEntry, Trace};
pub use upgrade::Upgraded;
pub use views::{
    CallCounts, LabelCount, ListQuery, ModuleView, Neighbour, Priority, ProcessDetail, ProcessList,
    ProcessRow, RunState, Stack, SystemStats, VersionCount,
};

/// The registered name of the application's root supervisor.
pub const ROOT: &str = "owl_root";

/// Candidates ranked right in the caller's process; more go to a blocking
/// thread (a broad search), so a scheduler is never held for long.
const RANK_ON_SCHEDULER: usize = 2_000;

/// How long the operator waits for a guest's stack (its next epoch tick).
const STACK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long supervisors get to answer while the tree is read.
const TREE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an operator's request did nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorError {
    /// No such process (by pid or name), or it has ended.
    NoProcess(String),
    /// No such guest module.
    NoModule(String),
    /// The request is not allowed or not valid; the text says why.
    Refused(String),
    /// A module file could not be read or loaded.
    Upgrade(String),
    /// Another node could not be asked, or did not answer.
    Node(String),
}

impl std::fmt::Display for OperatorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperatorError::NoProcess(what) => f.write_str(what),
            OperatorError::NoModule(m) => {
                write!(f, "no module named {m:?} is loaded (see `modules`)")
            }
            OperatorError::Refused(why)
            | OperatorError::Upgrade(why)
            | OperatorError::Node(why) => f.write_str(why),
        }
    }
}
impl std::error::Error for OperatorError {}

/// The one rule for pid `<0.0.0>`: it names the node itself, which no
/// operator's kill may end (stop the node with Ctrl-C or SIGTERM).
pub fn refuse_the_node(id: PidId) -> Result<(), OperatorError> {
    if id.0 == 0 {
        return Err(OperatorError::Refused(
            "<0.0.0> is the node itself; stop it with Ctrl-C or SIGTERM".into(),
        ));
    }
    Ok(())
}

/// The operator's view of a running system. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Operator {
    node: Node,
    sandbox: Sandbox,
    math: MathService,
    /// The look at the node every viewer shares.
    observer: Arc<Mutex<observer::Observer>>,
    /// What the process lists remember between refreshes.
    lists: Arc<Mutex<list::ListMemory>>,
    /// The node's figures of the last five minutes.
    history: SystemHistory,
}

impl Operator {
    /// The facade over a node, its sandbox and its calculations.
    pub fn new(node: Node, sandbox: Sandbox, math: MathService) -> Operator {
        Operator {
            observer: Arc::new(Mutex::new(observer::Observer::new(
                node.clone(),
                sandbox.clone(),
            ))),
            lists: Arc::default(),
            history: SystemHistory::default(),
            node,
            sandbox,
            math,
        }
    }

    /// The node's figures of the last five minutes, a point a second (kept
    /// while the tree runs the sampler: see [`history_spec`](Self::history_spec)).
    pub fn history(&self) -> &SystemHistory {
        &self.history
    }

    /// The worker that keeps [`history`](Self::history); `board_memory`
    /// reads the memory the board's store holds.
    pub fn history_spec(
        &self,
        board_memory: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> owl_runtime::supervisor::ChildSpec {
        history::sampler_spec(self.clone(), board_memory)
    }

    /// Utilization over the latest window (the look every viewer shares).
    pub(crate) fn utilization(&self) -> Sample {
        self.observer.lock().utilization()
    }

    /// The sandbox.
    pub(crate) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The calculations' service (counts for metrics).
    pub fn math(&self) -> &MathService {
        &self.math
    }

    /// Finds a process by pid text (`<0.42.0>`, `42`) or registered name.
    pub fn resolve(&self, target: &str) -> Result<Pid, OperatorError> {
        self.node.resolve(target).ok_or_else(|| {
            OperatorError::NoProcess(format!(
                "no process {:?} (give a pid like <0.42.0> or a registered name)",
                target.chars().take(64).collect::<String>()
            ))
        })
    }

    /// Everything the process table knows about `pid`.
    pub fn info(&self, pid: &Pid) -> Result<ProcessInfo, OperatorError> {
        self.node
            .info(pid)
            .ok_or_else(|| OperatorError::NoProcess(format!("{pid} has ended")))
    }

    /// The live process with pid number `id`, with its info.
    pub fn lookup(&self, id: PidId) -> Option<ProcessInfo> {
        self.node.lookup(id).and_then(|pid| self.node.info(&pid))
    }

    /// The processes `query` asks for, with their share of a scheduler
    /// over the last second. Its cost does not grow with the node: the rows
    /// are ranked among the processes the profiler saw busy, those whose
    /// mailbox or memory grew large, and the ones shown last time (see the
    /// `list` module); only a search reads every process, off the
    /// schedulers, once every five seconds at most.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    /// use owl_sandbox::{Sandbox, SandboxConfig};
    /// use owl_system::math::{MathConfig, MathService};
    /// use owl_system::operator::{ListQuery, Operator, SortKey};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    /// let math = MathService::new(sandbox.clone(), MathConfig::default()).unwrap();
    /// let operator = Operator::new(node.clone(), sandbox, math);
    /// for _ in 0..50 {
    ///     node.spawn(|mut p| async move { p.recv::<()>().await });
    /// }
    /// let stuck = node.spawn(|mut p| async move { p.recv::<()>().await });
    /// for _ in 0..100 {
    ///     stuck.send(7u64).unwrap(); // not the `()` it waits for: the queue grows
    /// }
    /// let query = ListQuery { sort: SortKey::Mailbox, filter: String::new(), limit: 5 };
    /// let list = rt.block_on(operator.processes(&query));
    /// assert_eq!(list.processes[0].id, stuck.id().0);
    /// assert_eq!(list.processes[0].queue, 100);
    /// assert_eq!(list.total, 51);
    /// ```
    pub async fn processes(&self, query: &ListQuery) -> ProcessList {
        let busy = observer::Busy::of(&self.node);
        let filter = query.filter.trim();
        let candidates: Vec<Pid> = if filter.is_empty() {
            let mut candidates: Vec<Pid> =
                busy.pids().filter_map(|id| self.node.lookup(id)).collect();
            candidates.extend(self.node.notable_processes());
            candidates.extend(self.lists.lock().shown(query.sort));
            candidates.extend(self.node.some_processes(query.limit));
            candidates
        } else {
            self.search(filter).await.to_vec()
        };
        let rows = if candidates.len() <= RANK_ON_SCHEDULER {
            list::rank(&self.node, candidates, query.sort, query.limit, &busy)
        } else {
            // Many matches: rank them off the schedulers too.
            let (node, sort, limit, seen) =
                (self.node.clone(), query.sort, query.limit, busy.clone());
            tokio::task::spawn_blocking(move || list::rank(&node, candidates, sort, limit, &seen))
                .await
                .unwrap_or_default()
        };
        self.lists
            .lock()
            .remember_shown(query.sort, &rows, &self.node);
        ProcessList {
            total: self.node.process_count(),
            window_ms: busy.window.as_millis() as u64,
            processes: rows,
        }
    }

    /// The processes matching `text` (see [`Node::search`]): a scan of the
    /// whole table on a blocking thread, kept for a few seconds.
    async fn search(&self, text: &str) -> Arc<Vec<Pid>> {
        if let Some(found) = self.lists.lock().search(text) {
            return found;
        }
        let (node, wanted) = (self.node.clone(), text.to_string());
        let found = tokio::task::spawn_blocking(move || node.search(&wanted, list::SEARCH_CAP))
            .await
            .map(Arc::new)
            .unwrap_or_default();
        self.lists.lock().remember_search(text, found.clone());
        found
    }

    /// Everything about process `<0.id.0>`, its stack included.
    pub async fn process(&self, id: PidId) -> Result<ProcessDetail, OperatorError> {
        let info = self.lookup(id).ok_or_else(|| {
            OperatorError::NoProcess(format!("{id} has ended (or never existed)"))
        })?;
        let busy = observer::Busy::of(&self.node);
        let stack = self.stack(&info.pid).await?;
        let neighbour = |id: PidId| Neighbour {
            id: id.0,
            label: self.lookup(id).map(|i| i.name.unwrap_or(i.label)),
        };
        let neighbours = |pids: &[Pid]| pids.iter().map(|p| neighbour(p.id())).collect();
        Ok(ProcessDetail {
            row: list::row_of(&info, busy.cpu_pct(id)),
            parent: info.parent.map(neighbour),
            uptime_ms: info
                .started_at
                .elapsed()
                .map_or(0, |d| d.as_millis() as u64),
            memory_limit_bytes: info.memory_limit.map(|b| b as u64),
            mailbox_capacity: info.mailbox_capacity,
            trap_exit: info.trap_exit,
            long_polls: info.long_polls,
            links: neighbours(&info.links),
            monitors: neighbours(&info.monitors),
            monitored_by: neighbours(&info.monitored_by),
            stack,
        })
    }

    /// The `limit` busiest processes over `interval` (the talk's `top`).
    ///
    /// It asks the runtime's sampling profiler, not every process: its cost
    /// does not grow with the node. A process's reductions count from the
    /// first time it was seen busy during the interval.
    pub async fn top(&self, interval: Duration, limit: usize) -> Vec<TopEntry> {
        let started = std::time::Instant::now();
        let mut first_seen: std::collections::HashMap<PidId, u64> = Default::default();
        let mut note = |busiest: &owl_runtime::Busiest| {
            for (id, _) in &busiest.processes {
                first_seen.entry(*id).or_insert_with(|| {
                    self.node
                        .lookup(*id)
                        .and_then(|pid| self.node.info(&pid))
                        .map_or(0, |i| i.reductions)
                });
            }
        };
        // At least one full window of samples, however short the interval.
        let wait = interval.max(observer::WINDOW + Duration::from_millis(100));
        loop {
            note(&self.node.busiest());
            if started.elapsed() >= wait {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let busiest = self.node.busiest();
        note(&busiest);
        let window = busiest.window.max(Duration::from_millis(1));
        busiest
            .processes
            .iter()
            .filter_map(|(id, share)| {
                let info = self.node.info(&self.node.lookup(*id)?)?;
                Some(TopEntry {
                    cpu_time: window.mul_f64(share / 100.0),
                    cpu_share: *share,
                    reductions: info.reductions.saturating_sub(first_seen[id]),
                    name: info.name,
                    label: info.label,
                    priority: info.priority,
                    pid: info.pid,
                })
            })
            .take(limit)
            .collect()
    }

    /// A sandboxed process's call stack, or a native one's activity.
    pub async fn stack(&self, pid: &Pid) -> Result<Stack, OperatorError> {
        match self.sandbox.stack(pid, STACK_TIMEOUT).await {
            Ok(frames) => Ok(Stack::Guest(frames)),
            Err(StackError::NoAnswer) => Ok(Stack::GuestBusy),
            Err(_) => Ok(Stack::Native(self.info(pid)?.current_activity)),
        }
    }

    /// What `pid` does for `duration`: the guest functions it enters, or
    /// the messages a native process receives and sends (at most 50 events).
    pub async fn trace(&self, pid: &Pid, duration: Duration) -> Result<Trace, OperatorError> {
        if !matches!(
            self.sandbox.stack(pid, STACK_TIMEOUT).await,
            Err(StackError::NotAGuest)
        ) {
            return Ok(trace::guest(&self.sandbox, pid, duration).await);
        }
        self.info(pid)?;
        let events = self.node.trace(pid, duration, trace::MAX_EVENTS).await;
        Ok(Trace::Messages(events))
    }

    /// Sends `reason` as an exit signal to `pid` (`Kill` is untrappable).
    /// The node itself (`<0.0.0>`) cannot be killed this way.
    pub fn kill(&self, pid: &Pid, reason: ExitReason) -> Result<(), OperatorError> {
        refuse_the_node(pid.id())?;
        if !pid.is_alive() {
            return Err(OperatorError::NoProcess(format!("{pid} has ended")));
        }
        tracing::warn!(target: "owl::operator", pid = %pid, %reason, "operator sent an exit signal");
        self.node.exit(pid, reason);
        Ok(())
    }

    /// Kills every process running any version of `module` (the talk's
    /// `kill_math()`); returns how many.
    pub fn kill_all(&self, module: &str) -> Result<usize, OperatorError> {
        self.module(module)?;
        let killed = self.sandbox.kill_all(&self.node, module);
        tracing::warn!(target: "owl::operator", module, killed, "operator killed a module's processes");
        Ok(killed)
    }

    /// Loaded guest modules: versions, running processes, calls, CPU budget.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        self.sandbox.modules()
    }

    fn module(&self, name: &str) -> Result<ModuleInfo, OperatorError> {
        self.modules()
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| OperatorError::NoModule(name.chars().take(64).collect()))
    }

    /// Sets (or with `None` removes) the CPU-time budget of each process of
    /// `module`: past it, a process ends with `cpu_limit` — runaways heal by
    /// themselves. It applies to running processes and survives upgrades.
    pub fn set_budget(&self, module: &str, budget: Option<Duration>) -> Result<(), OperatorError> {
        if budget.is_some_and(|b| b.is_zero()) {
            return Err(OperatorError::Refused(
                "a CPU budget must be longer than zero (or `off`)".into(),
            ));
        }
        if !self.sandbox.set_cpu_budget(module, budget) {
            return Err(OperatorError::NoModule(module.chars().take(64).collect()));
        }
        tracing::warn!(target: "owl::operator", module, budget_s = budget.map(|b| b.as_secs_f64()),
            "CPU budget changed");
        Ok(())
    }

    /// Loads a new version of `module` from the file at `path` (read off the
    /// schedulers, at most [`owl_sandbox::MAX_SOURCE_BYTES`], regular files
    /// only), tries it out, and makes it current; `purge` also kills the
    /// processes still running older versions.
    pub async fn upgrade(
        &self,
        module: &str,
        path: &std::path::Path,
        purge: bool,
    ) -> Result<Upgraded, OperatorError> {
        let source = upgrade::read_module_file(path).await?;
        self.upgrade_source(module, source, purge).await
    }

    /// [`upgrade`](Self::upgrade) from the module's bytes.
    pub async fn upgrade_source(
        &self,
        module: &str,
        source: Vec<u8>,
        purge: bool,
    ) -> Result<Upgraded, OperatorError> {
        let canary = (module == crate::math::MODULE).then(crate::math::canary);
        let version = self
            .sandbox
            .upgrade(module, source, canary)
            .await
            .map_err(|e| OperatorError::Upgrade(format!("{module} not upgraded: {e}")))?;
        let killed = if purge {
            self.sandbox.purge(&self.node, module)
        } else {
            0
        };
        let still_old = self.module(module).map_or(0, |m| {
            m.versions
                .iter()
                .filter(|(v, _)| *v != version)
                .map(|(_, n)| n)
                .sum()
        });
        tracing::warn!(target: "owl::operator", module, version, purge, killed, "module upgraded");
        Ok(Upgraded {
            module: module.to_string(),
            version,
            still_old,
            killed,
        })
    }

    /// The supervision tree under the root supervisor.
    pub async fn tree(&self) -> Result<TreeNode, OperatorError> {
        let root = self
            .node
            .resolve(ROOT)
            .ok_or_else(|| OperatorError::NoProcess("the root supervisor is not running".into()))?;
        owl_runtime::supervisor::tree(&SupervisorRef::from_pid(root), TREE_TIMEOUT)
            .await
            .map_err(|e| OperatorError::Refused(format!("could not read the tree: {e}")))
    }

    /// Restarts each supervisor of the tree performed, by child id.
    pub async fn restarts(&self) -> Vec<(String, u64)> {
        let Ok(tree) = self.tree().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![&tree];
        while let Some(node) = stack.pop() {
            if node.kind != ChildKind::Supervisor {
                continue;
            }
            if let Some(pid) = &node.pid
                && let Ok(counts) = SupervisorRef::from_pid(pid.clone())
                    .count_children(TREE_TIMEOUT)
                    .await
            {
                out.push((node.id.clone(), counts.restarts));
            }
            stack.extend(node.children.iter());
        }
        out
    }

    /// Sets how many cores the node computes on (schedulers and guest
    /// threads alike); returns (online, schedulers).
    pub fn set_schedulers(&self, online: usize) -> Result<(usize, usize), OperatorError> {
        self.node
            .set_schedulers_online(online)
            .map_err(|e| OperatorError::Refused(e.to_string()))?;
        tracing::warn!(target: "owl::operator", online, "schedulers online changed");
        Ok(self.schedulers())
    }

    /// Applies a change of load control's knobs, all or nothing: the
    /// schedulers are checked against what the node allows before either
    /// knob changes. Returns what changed, in words (empty: nothing did).
    pub fn change_load(
        &self,
        load: &crate::load::LoadControl,
        change: crate::load::LoadChange,
    ) -> Result<Vec<String>, OperatorError> {
        let max = self.node.max_schedulers_online();
        if let Some(n) = change.schedulers
            && !(1..=max).contains(&n)
        {
            return Err(OperatorError::Refused(format!(
                "schedulers online must be from 1 to {max}, not {n}"
            )));
        }
        let mut done = Vec::new();
        if let Some(n) = change.schedulers
            && n != self.node.schedulers_online()
        {
            self.set_schedulers(n)?;
            done.push(format!("{n} scheduler(s) online"));
        }
        if let Some(n) = change.target {
            load.set_target(n)
                .map_err(|e| OperatorError::Refused(e.to_string()))?;
            done.push(format!("target set to {n} jobs"));
        }
        Ok(done)
    }

    /// (schedulers online, schedulers).
    pub fn schedulers(&self) -> (usize, usize) {
        (self.node.schedulers_online(), self.node.schedulers())
    }

    /// A utilization meter: each call of [`Meter::sample`] measures since
    /// the previous one. Every live page and `/metrics` keeps its own.
    pub fn meter(&self) -> Meter {
        Meter::new(self.node.clone(), self.sandbox.clone())
    }

    /// The node's figures, utilization over the last window (the look
    /// every viewer shares).
    pub fn stats(&self) -> SystemStats {
        let by_label = self.node.label_counts();
        let (spawned, exited, crashed) = self.node.lifecycle_counts();
        let u = self.observer.lock().utilization();
        SystemStats {
            uptime_s: self.node.uptime().as_secs_f64(),
            processes: by_label.iter().map(|(_, n)| n).sum(),
            by_label: by_label
                .into_iter()
                .map(|(label, count)| LabelCount { label, count })
                .collect(),
            spawned,
            exited,
            crashed,
            memory_rss_bytes: owl_runtime::sys::resident_memory(),
            schedulers: self.node.schedulers(),
            schedulers_online: self.node.schedulers_online(),
            utilization: u.total,
            utilization_per_scheduler: u.per_scheduler,
            guest_utilization: u.guests,
            guest_threads: u.guest_threads,
            modules: self.modules().into_iter().map(ModuleView::from).collect(),
            latest: self.history.latest(),
            board: None,
            data_disk: None,
        }
    }

    /// Kills random processes for `plan.duration` at `plan.rate` per second
    /// (never the root supervisor, nor `plan.spare` and its ancestors), then
    /// waits for every registered process to be back and reports.
    pub async fn chaos(&self, plan: ChaosPlan) -> ChaosReport {
        tracing::warn!(target: "owl::chaos", duration_s = plan.duration.as_secs_f64(), rate = plan.rate,
            supervisors = plan.supervisors, "chaos run starts");
        let report = chaos::run(&self.node, plan).await;
        tracing::warn!(target: "owl::chaos", kills = report.kills, missing = ?report.names_missing,
            healed_ms = report.healed_after.map(|d| d.as_millis() as u64), "chaos run ended");
        report
    }

    /// Sandboxed spawns refused by the sandbox's hard limit, since start.
    pub fn sandbox_refused(&self) -> u64 {
        self.sandbox.refused()
    }
}
