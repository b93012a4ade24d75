//! Supervisors with OTP semantics: child specs, restart strategies
//! (`one_for_one`, `one_for_all`, `rest_for_one`), restart intensity with
//! escalation, ordered start and reverse-order shutdown with timeouts or
//! brutal kill — and a dynamic supervisor for children started on demand.
//!
//! ```
//! use owl_runtime::{Runtime, supervisor::{ChildSpec, Supervisor, SupervisorSpec, Strategy}};
//! use std::time::Duration;
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let node = rt.node();
//! rt.block_on(async move {
//!     let spec = SupervisorSpec::new(Strategy::OneForOne)
//!         .child(ChildSpec::worker("pinger", |args| async move {
//!             Ok(args.spawn_link(|mut p| async move { loop { p.recv::<()>().await } }))
//!         }));
//!     let sup = Supervisor::start(&node, spec).await.unwrap();
//!     let children = sup.which_children(Duration::from_secs(1)).await.unwrap();
//!     let first = children[0].pid.clone().unwrap();
//!     node.kill(&first);
//!     // The supervisor restarts it with a new pid.
//!     loop {
//!         let now = sup.which_children(Duration::from_secs(1)).await.unwrap();
//!         if let Some(pid) = &now[0].pid && pid != &first { break; }
//!         tokio::task::yield_now().await;
//!     }
//!     sup.shutdown(Duration::from_secs(1)).await;
//! });
//! ```

mod children;
mod engine;
mod intensity;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::call::{CallError, Kind, ReplySender, request};
use crate::exit::{ExitReason, IntoExitReason};
use crate::lifecycle::StartError;
use crate::node::Node;
use crate::pid::Pid;
use crate::priority::Priority;
use crate::process::{Process, SpawnOptions};

/// Which children restart when one of them ends and is to be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that ended.
    OneForOne,
    /// All children: the others are stopped (in reverse order) and all restarted in order.
    OneForAll,
    /// The child that ended and every child started after it.
    RestForOne,
}

/// When a child that ended is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `normal` or `shutdown`).
    Transient,
    /// Never; the child is forgotten when it ends.
    Temporary,
}

/// How a child is stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once (untrappable).
    BrutalKill,
    /// Sent `shutdown`, then killed if still alive after the timeout.
    Timeout(Duration),
    /// Sent `shutdown` and waited for without limit (the default for supervisors).
    Infinity,
}

/// Whether a child is a worker or a supervisor (for counts and the tree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildKind {
    /// A worker process.
    Worker,
    /// A supervisor (its children appear in the tree).
    Supervisor,
}

/// What a start function gets: the node, the supervisor to link to, and
/// the priority its child spec gives the child.
#[derive(Clone, Debug)]
pub struct StartArgs {
    /// The node to spawn on.
    pub node: Node,
    /// The supervisor starting the child; the child must link to it.
    pub supervisor: Pid,
    /// The child's priority ([`ChildSpec::priority`]): `spawn_link*`,
    /// `server::start_link*` and nested supervisors apply it unless their
    /// own options name one.
    pub priority: Priority,
}

impl StartArgs {
    /// Spawns a child linked to the supervisor (which is recorded as its parent).
    pub fn spawn_link<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        self.spawn_link_opts(SpawnOptions::new(), body)
    }

    /// [`spawn_link`](Self::spawn_link) with options (label, mailbox bound…).
    pub fn spawn_link_opts<F, Fut>(&self, opts: SpawnOptions, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: IntoExitReason,
    {
        let opts = self.child_options(opts);
        self.node.spawn_opts(opts, body)
    }

    /// `opts` linked to the supervisor, which is recorded as the parent, at
    /// the spec's priority unless `opts` names one.
    pub(crate) fn child_options(&self, opts: SpawnOptions) -> SpawnOptions {
        let mut opts = opts
            .link_to(self.supervisor.clone())
            .parent(self.supervisor.clone());
        opts.priority.get_or_insert(self.priority);
        opts
    }
}

/// What a start function achieved: a running child, or — like OTP's
/// `ignore` — nothing to run, which is not an error (the child is kept as
/// not running, and a later `restart_child` may start it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// The child runs as this process, linked to the supervisor.
    Pid(Pid),
    /// The start function chose not to start anything.
    Ignore,
}

/// What a start function may return: `Result<Pid, ExitReason>` (the usual
/// case) or `Result<Started, ExitReason>` (when it may answer
/// [`Started::Ignore`]).
pub trait StartResult: Send + 'static {
    /// The result as the supervisor reads it.
    fn into_started(self) -> Result<Started, ExitReason>;
}

impl StartResult for Result<Pid, ExitReason> {
    fn into_started(self) -> Result<Started, ExitReason> {
        self.map(Started::Pid)
    }
}

impl StartResult for Result<Started, ExitReason> {
    fn into_started(self) -> Result<Started, ExitReason> {
        self
    }
}

type StartFuture = Pin<Box<dyn Future<Output = Result<Started, ExitReason>> + Send>>;
type StartFn = Arc<dyn Fn(StartArgs) -> StartFuture + Send + Sync>;

/// How to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    pub(crate) priority: Priority,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .field("priority", &self.priority)
            .finish()
    }
}

impl ChildSpec {
    /// A permanent worker with a 5 s shutdown timeout. `start` must return a
    /// process linked to `args.supervisor` (use [`StartArgs::spawn_link`] or
    /// [`server::start_link`](crate::server::start_link)), or
    /// [`Started::Ignore`].
    pub fn worker<F, Fut>(id: impl Into<String>, start: F) -> ChildSpec
    where
        F: Fn(StartArgs) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: StartResult,
    {
        let start = Arc::new(start);
        ChildSpec {
            id: id.into(),
            start: Arc::new(move |args| {
                let run = start(args);
                Box::pin(async move { run.await.into_started() })
            }),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
            significant: false,
            priority: Priority::Normal,
        }
    }

    /// A worker for a dynamic supervisor, which knows its children by pid:
    /// no id to invent (its id is its pid).
    ///
    /// ```
    /// use owl_runtime::prelude::*;
    /// use std::time::Duration;
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let jobs = Supervisor::start(&node, SupervisorSpec::dynamic()).await.unwrap();
    ///     let job = ChildSpec::dynamic_worker(|args| async move {
    ///         Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await; }))
    ///     });
    ///     let pid = jobs.start_child(job, Duration::from_secs(1)).await.unwrap();
    ///     let children = jobs.which_children(Duration::from_secs(1)).await.unwrap();
    ///     assert_eq!(children[0].id, pid.to_string());
    ///     jobs.shutdown(Duration::from_secs(1)).await;
    /// });
    /// ```
    pub fn dynamic_worker<F, Fut>(start: F) -> ChildSpec
    where
        F: Fn(StartArgs) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: StartResult,
    {
        ChildSpec::worker("", start)
    }

    /// A permanent child supervisor, stopped with `Shutdown::Infinity`.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> ChildSpec {
        ChildSpec {
            id: id.into(),
            start: Arc::new(move |args| {
                let spec = spec.clone();
                Box::pin(async move { Supervisor::start_link(&args, spec).await.map(Started::Pid) })
            }),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
            significant: false,
            priority: Priority::Normal,
        }
    }

    /// Marks the child *significant* (OTP 24's `significant => true`): with
    /// [`SupervisorSpec::auto_shutdown`], its ending without a restart ends
    /// the supervisor. Only transient and temporary children may be
    /// significant; a supervisor refuses to start with a permanent one.
    ///
    /// ```
    /// use owl_runtime::{Runtime, ExitReason};
    /// use owl_runtime::supervisor::{AutoShutdown, ChildSpec, Restart, Supervisor, SupervisorSpec, Strategy};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let reason = rt.block_on(async move {
    ///     // A job runs once; when it is done, its supervisor is done too.
    ///     let job = ChildSpec::worker("job", |args| async move {
    ///         Ok(args.spawn_link(|mut p| async move { p.recv::<&str>().await; }))
    ///     })
    ///     .restart(Restart::Transient)
    ///     .significant(true);
    ///     let spec = SupervisorSpec::new(Strategy::OneForOne)
    ///         .auto_shutdown(AutoShutdown::AnySignificant)
    ///         .child(job);
    ///     let sup = Supervisor::start(&node, spec).await.unwrap();
    ///     let ended = sup.pid().wait_exit();
    ///     let job = sup.which_children(std::time::Duration::from_secs(1)).await.unwrap()[0].pid.clone().unwrap();
    ///     job.send("done").unwrap();
    ///     ended.await
    /// });
    /// assert_eq!(reason, ExitReason::Shutdown);
    /// ```
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Runs the child at `priority` at every start and restart (its start
    /// function's own [`SpawnOptions::priority`] wins, if it names one).
    /// Background work — a pool of jobs — goes [`Low`](Priority::Low), so
    /// it never delays what users wait for.
    ///
    /// ```
    /// use owl_runtime::prelude::*;
    /// use owl_runtime::Priority;
    /// use std::time::Duration;
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let jobs = Supervisor::start(&node, SupervisorSpec::dynamic()).await.unwrap();
    ///     let job = ChildSpec::dynamic_worker(|args| async move {
    ///         Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await; }))
    ///     })
    ///     .priority(Priority::Low);
    ///     let pid = jobs.start_child(job, Duration::from_secs(1)).await.unwrap();
    ///     assert_eq!(node.info(&pid).unwrap().priority, Priority::Low);
    /// });
    /// ```
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the child is restarted.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }

    /// How the child is stopped.
    pub fn shutdown_type(&self) -> Shutdown {
        self.shutdown
    }

    /// Worker or supervisor.
    pub fn kind(&self) -> ChildKind {
        self.kind
    }

    /// Whether the child is significant (see [`significant`](Self::significant)).
    pub fn is_significant(&self) -> bool {
        self.significant
    }
}

/// When a supervisor ends by itself because its significant children ended
/// (OTP's `auto_shutdown` flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoShutdown {
    /// Never (the default): significant children are ordinary children.
    #[default]
    Never,
    /// As soon as any significant child ends without being restarted.
    AnySignificant,
    /// Once every significant child has ended without being restarted.
    AllSignificant,
}

/// A supervisor's configuration: strategy, restart intensity and children.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) max_seconds: Duration,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) name: Option<String>,
    pub(crate) label: crate::Label,
    pub(crate) dynamic: Option<DynamicLimits>,
    pub(crate) auto_shutdown: AutoShutdown,
    /// Asked for with `max_children`; only a dynamic supervisor takes it.
    pub(crate) max_children: Option<usize>,
}

#[derive(Clone, Debug)]
pub(crate) struct DynamicLimits {
    pub max_children: Option<usize>,
}

impl SupervisorSpec {
    /// A supervisor with the given strategy, at most 3 restarts in 5 seconds.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            max_restarts: 3,
            max_seconds: Duration::from_secs(5),
            children: Vec::new(),
            name: None,
            label: "supervisor".into(),
            dynamic: None,
            auto_shutdown: AutoShutdown::Never,
            max_children: None,
        }
    }

    /// A dynamic supervisor: no children at start, each started on demand
    /// with [`SupervisorRef::start_child`] (one_for_one, children known by pid).
    pub fn dynamic() -> Self {
        SupervisorSpec {
            dynamic: Some(DynamicLimits { max_children: None }),
            label: "dynamic supervisor".into(),
            ..SupervisorSpec::new(Strategy::OneForOne)
        }
    }

    /// Restart intensity: more than `max_restarts` within `within` makes the
    /// supervisor stop its children and exit with `shutdown`, escalating to
    /// its own supervisor. `within` must be positive: a supervisor with a
    /// zero period refuses to start (its limit could never trip).
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = within;
        self
    }

    /// Adds a child, started after the ones added before it.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Registers the supervisor under `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the label shown in the process table.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into().into();
        self
    }

    /// Whether the supervisor ends by itself when its significant children
    /// end (see [`ChildSpec::significant`]).
    pub fn auto_shutdown(mut self, when: AutoShutdown) -> Self {
        self.auto_shutdown = when;
        self
    }

    /// Checks the flags and child specs the way OTP's `supervisor:check_childspecs`
    /// does: a positive restart period, unique child ids, no significant
    /// permanent child, `max_children` only on a dynamic supervisor. A
    /// supervisor refuses to start with an invalid spec.
    ///
    /// ```
    /// use owl_runtime::supervisor::{Strategy, SupervisorSpec};
    /// assert!(SupervisorSpec::dynamic().max_children(10).validate().is_ok());
    /// let err = SupervisorSpec::new(Strategy::OneForOne).max_children(10).validate().unwrap_err();
    /// assert!(err.to_string().contains("dynamic"));
    /// ```
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        if self.max_seconds.is_zero() {
            return Err(InvalidSpec(
                "invalid restart period: it must be longer than zero".into(),
            ));
        }
        if self.dynamic.is_none() && self.max_children.is_some() {
            return Err(InvalidSpec(
                "max_children limits a dynamic supervisor's children; a static supervisor's \
                 children are its child specs"
                    .into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for child in &self.children {
            if self.dynamic.is_none() && !ids.insert(child.id.as_str()) {
                return Err(InvalidSpec(format!("duplicate child id {:?}", child.id)));
            }
            if child.significant && child.restart == Restart::Permanent {
                return Err(InvalidSpec(format!(
                    "child {:?}: a permanent child cannot be significant",
                    child.id
                )));
            }
        }
        Ok(())
    }

    /// For a dynamic supervisor: refuse children beyond `max`. A static
    /// supervisor with it is an invalid spec (it would mean nothing).
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        if let Some(d) = self.dynamic.as_mut() {
            d.max_children = Some(max);
        }
        self
    }
}

/// Why a supervisor spec is refused (see [`SupervisorSpec::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid supervisor spec: {}", self.0)
    }
}
impl std::error::Error for InvalidSpec {}

/// What [`SupervisorRef::start_children`] achieved: how many of the
/// requested children started, and — when fewer than asked — what stopped
/// the batch. A partial start is never hidden.
///
/// ```
/// use owl_runtime::supervisor::{Batch, ChildError};
/// let partial = Batch { requested: 10, started: 4, stopped_by: Some(ChildError::MaxChildren) };
/// assert!(!partial.is_complete());
/// assert_eq!(partial.to_string(), "started 4 of 10 (stopped: max_children reached)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Children asked for.
    pub requested: usize,
    /// Children started (those whose start answered `Ignore` count).
    pub started: usize,
    /// Why the batch stopped early: `MaxChildren` or `StartFailed`.
    pub stopped_by: Option<ChildError>,
}

impl Batch {
    /// Whether every requested child started.
    pub fn is_complete(&self) -> bool {
        self.started == self.requested
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "started {} of {}", self.started, self.requested)?;
        if let Some(why) = &self.stopped_by {
            write!(f, " (stopped: {why})")?;
        }
        Ok(())
    }
}

/// Whether a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// Its process is alive.
    Running,
    /// It ended and its restart failed; the supervisor tries again (OTP
    /// shows such a child as `restarting`).
    Restarting,
    /// Not running: stopped with `terminate_child`, or its start answered
    /// [`Started::Ignore`].
    Stopped,
}

/// One child as reported by [`SupervisorRef::which_children`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's id (a dynamic child's id is its pid).
    pub id: String,
    /// Its process, `None` while it is not running (e.g. a stopped child).
    pub pid: Option<Pid>,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
}

/// Some children of a supervisor (its first, for a static one) and how
/// many it has: what [`SupervisorRef::first_children`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChildrenPage {
    /// The children read: a static supervisor's first, in start order.
    pub children: Vec<ChildInfo>,
    /// All its children, listed or not.
    pub total: usize,
}

/// Child counts, as `supervisor:count_children/1` reports them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs.
    pub specs: usize,
    /// Children running.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
    /// Restarts this supervisor performed since it started.
    pub restarts: u64,
}

/// Refers to a child by id (static supervisors) or pid (either kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildRef {
    /// By child id.
    Id(String),
    /// By pid.
    Pid(Pid),
}

impl From<&str> for ChildRef {
    fn from(id: &str) -> Self {
        ChildRef::Id(id.to_string())
    }
}
impl From<&Pid> for ChildRef {
    fn from(pid: &Pid) -> Self {
        ChildRef::Pid(pid.clone())
    }
}
impl From<Pid> for ChildRef {
    fn from(pid: Pid) -> Self {
        ChildRef::Pid(pid)
    }
}

/// Why a supervisor refused a child operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildError {
    /// The start function failed.
    StartFailed(ExitReason),
    /// A child with this id exists already, not running.
    AlreadyPresent(String),
    /// A child with this id exists already and runs as this process.
    AlreadyStarted(Pid),
    /// The child is between a failed restart and the next try.
    Restarting,
    /// No such child.
    NotFound,
    /// The child is running (delete/restart need a stopped child).
    Running,
    /// A dynamic supervisor is at its `max_children`.
    MaxChildren,
    /// The start function answered [`Started::Ignore`]: nothing runs.
    Ignored,
    /// The child spec is not valid (e.g. a significant permanent child).
    InvalidSpec(String),
    /// The supervisor did not answer.
    Call(CallError),
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::StartFailed(r) => write!(f, "child failed to start: {r}"),
            ChildError::AlreadyPresent(id) => write!(f, "child {id:?} already present"),
            ChildError::AlreadyStarted(pid) => write!(f, "child already started as {pid}"),
            ChildError::Restarting => f.write_str("child is restarting"),
            ChildError::NotFound => f.write_str("no such child"),
            ChildError::Running => f.write_str("child is running"),
            ChildError::MaxChildren => f.write_str("max_children reached"),
            ChildError::Ignored => f.write_str("the start function ignored the start"),
            ChildError::InvalidSpec(why) => write!(f, "invalid child spec: {why}"),
            ChildError::Call(e) => e.fmt(f),
        }
    }
}
impl std::error::Error for ChildError {}

/// Requests a supervisor answers; each carries its reply channel.
pub(crate) enum Request {
    WhichChildren(ReplySender<Vec<ChildInfo>>),
    FirstChildren(usize, ReplySender<ChildrenPage>),
    CountChildren(ReplySender<ChildCounts>),
    StartChild(ChildSpec, ReplySender<Result<Pid, ChildError>>),
    StartChildren(ChildSpec, usize, ReplySender<Result<Batch, ChildError>>),
    TerminateChild(ChildRef, ReplySender<Result<(), ChildError>>),
    RestartChild(String, ReplySender<Result<Pid, ChildError>>),
    DeleteChild(String, ReplySender<Result<(), ChildError>>),
    GetChildSpec(ChildRef, ReplySender<Result<ChildSpec, ChildError>>),
}

/// Marks a process as a supervisor, for typed lookups and requests.
pub(crate) struct SupervisorMarker;

/// What supervisor requests expect their target to be.
pub(crate) fn supervisor_kind() -> Kind {
    Kind(Some((
        std::any::TypeId::of::<SupervisorMarker>(),
        "supervisor",
    )))
}

/// A handle on a running supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisorRef {
    pid: Pid,
}

/// Starting supervisors.
#[derive(Debug)]
pub struct Supervisor;

impl Supervisor {
    /// Starts a top-level supervisor (not linked to the caller) and waits
    /// until all its children have started. A name already registered is
    /// [`StartError::AlreadyStarted`]; an invalid spec or a child that
    /// fails to start, [`StartError::Failed`].
    pub async fn start(node: &Node, spec: SupervisorSpec) -> Result<SupervisorRef, StartError> {
        engine::start(node, spec, None, Priority::Normal)
            .await
            .map(|pid| SupervisorRef { pid })
    }

    /// Starts a supervisor as the child of another one (see
    /// [`ChildSpec::supervisor`]), answering as a child start function
    /// does: a refused start is its reason (a taken name reads
    /// `already started as <pid>`), and leaves no exit signal behind.
    pub async fn start_link(args: &StartArgs, spec: SupervisorSpec) -> Result<Pid, ExitReason> {
        engine::start(
            &args.node,
            spec,
            Some(args.supervisor.clone()),
            args.priority,
        )
        .await
        .map_err(ExitReason::from)
    }
}

impl SupervisorRef {
    /// Wraps the pid of a supervisor, unchecked: requests to a process
    /// that is not one fail at once with [`CallError::WrongKind`]. Prefer
    /// [`try_from_pid`](Self::try_from_pid) or [`whereis`](Self::whereis).
    pub fn from_pid(pid: Pid) -> Self {
        SupervisorRef { pid }
    }

    /// Wraps `pid` if it is a supervisor.
    pub fn try_from_pid(pid: Pid) -> Option<Self> {
        crate::call::check_target(&pid, supervisor_kind())
            .ok()
            .map(|()| SupervisorRef { pid })
    }

    /// The supervisor registered as `name`, if there is one now.
    ///
    /// ```
    /// use owl_runtime::prelude::*;
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let spec = SupervisorSpec::new(Strategy::OneForOne).name("top");
    ///     let top = Supervisor::start(&node, spec).await.unwrap();
    ///     assert_eq!(SupervisorRef::whereis(&node, "top"), Some(top));
    ///     let worker = node.spawn(|mut p| async move { p.recv::<()>().await });
    ///     node.register("worker", &worker).unwrap();
    ///     assert_eq!(SupervisorRef::whereis(&node, "worker"), None, "not a supervisor");
    /// });
    /// ```
    pub fn whereis(node: &Node, name: &str) -> Option<Self> {
        Self::try_from_pid(node.whereis(name)?)
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Children in start order.
    pub async fn which_children(&self, timeout: Duration) -> Result<Vec<ChildInfo>, CallError> {
        request(
            &self.pid,
            supervisor_kind(),
            Request::WhichChildren,
            timeout,
            false,
        )
        .await
    }

    /// `limit` children and how many there are in all: the first in start
    /// order for a static supervisor, any `limit` of them for a dynamic
    /// one. Unlike [`which_children`](Self::which_children), its cost does
    /// not grow with the supervisor: a dynamic supervisor of a million
    /// workers answers as fast as one of ten, so a look at the tree never
    /// holds it (or its scheduler) up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::supervisor::{ChildSpec, Supervisor, SupervisorSpec};
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let sup = Supervisor::start(&node, SupervisorSpec::dynamic()).await.unwrap();
    ///     let worker = ChildSpec::worker("w", |args| {
    ///         let pid = args.spawn_link(|mut p| async move { p.recv::<()>().await });
    ///         async move { Ok(pid) }
    ///     });
    ///     sup.start_children(worker, 50, Duration::from_secs(5)).await.unwrap();
    ///     let page = sup.first_children(10, Duration::from_secs(5)).await.unwrap();
    ///     assert_eq!((page.children.len(), page.total), (10, 50));
    /// });
    /// ```
    pub async fn first_children(
        &self,
        limit: usize,
        timeout: Duration,
    ) -> Result<ChildrenPage, CallError> {
        request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::FirstChildren(limit, tx),
            timeout,
            false,
        )
        .await
    }

    /// Child counts.
    pub async fn count_children(&self, timeout: Duration) -> Result<ChildCounts, CallError> {
        request(
            &self.pid,
            supervisor_kind(),
            Request::CountChildren,
            timeout,
            false,
        )
        .await
    }

    /// Adds and starts a child (static: appended at the end; dynamic: any spec).
    pub async fn start_child(&self, spec: ChildSpec, timeout: Duration) -> Result<Pid, ChildError> {
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::StartChild(spec, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// A dynamic supervisor starts `count` children of `spec` in one
    /// request (they share the spec): far cheaper than `count` calls of
    /// [`start_child`](Self::start_child) when thousands are wanted.
    ///
    /// The rule: once the supervisor has taken the request, the answer is
    /// a [`Batch`] saying how many started, and what stopped it early
    /// (`max_children`, or a start that failed) — even when that is none.
    /// An error means the request itself was refused (not a dynamic
    /// supervisor, an invalid spec) or not answered.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    /// use owl_runtime::supervisor::{ChildSpec, Restart, Supervisor, SupervisorSpec};
    /// use std::time::Duration;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let sup = Supervisor::start(&node, SupervisorSpec::dynamic().max_children(1000)).await.unwrap();
    ///     let worker = ChildSpec::worker("job", |args| async move {
    ///         Ok(args.spawn_link(|mut p| async move { p.recv::<()>().await; }))
    ///     })
    ///     .restart(Restart::Transient);
    ///     let batch = sup.start_children(worker, 5000, Duration::from_secs(5)).await.unwrap();
    ///     assert_eq!(batch.started, 1000, "stops at max_children");
    ///     assert_eq!(batch.stopped_by, Some(owl_runtime::supervisor::ChildError::MaxChildren));
    ///     sup.shutdown(Duration::from_secs(5)).await;
    /// });
    /// ```
    pub async fn start_children(
        &self,
        spec: ChildSpec,
        count: usize,
        timeout: Duration,
    ) -> Result<Batch, ChildError> {
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::StartChildren(spec, count, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// Stops a child. A static child's spec stays (restart it with
    /// [`restart_child`](Self::restart_child)); a dynamic child is forgotten.
    pub async fn terminate_child(
        &self,
        child: impl Into<ChildRef>,
        timeout: Duration,
    ) -> Result<(), ChildError> {
        let child = child.into();
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::TerminateChild(child, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// Starts a stopped static child again.
    pub async fn restart_child(&self, id: &str, timeout: Duration) -> Result<Pid, ChildError> {
        let id = id.to_string();
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::RestartChild(id, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// Removes a stopped static child's spec.
    pub async fn delete_child(&self, id: &str, timeout: Duration) -> Result<(), ChildError> {
        let id = id.to_string();
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::DeleteChild(id, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// The spec of a static child, as the supervisor holds it (OTP's
    /// `get_childspec/2`).
    pub async fn get_childspec(
        &self,
        child: impl Into<ChildRef>,
        timeout: Duration,
    ) -> Result<ChildSpec, ChildError> {
        let child = child.into();
        let r = request(
            &self.pid,
            supervisor_kind(),
            |tx| Request::GetChildSpec(child, tx),
            timeout,
            false,
        )
        .await;
        r.map_err(ChildError::Call)?
    }

    /// Stops the supervisor: its children in reverse start order, then itself.
    /// Waits up to `timeout` for it to end; returns its exit reason.
    pub async fn shutdown(&self, timeout: Duration) -> Option<ExitReason> {
        let exited = self.pid.wait_exit();
        self.pid.exit_from_node(ExitReason::Shutdown);
        tokio::time::timeout(timeout, exited).await.ok()
    }
}

/// One node of the supervision tree, as returned by [`tree`]. It prints as
/// an indented tree, at most [`TreeNode::SHOWN_CHILDREN`] children per
/// supervisor (a dynamic supervisor may hold thousands).
///
/// ```
/// use owl_runtime::Runtime;
/// use owl_runtime::supervisor::{tree, ChildSpec, Strategy, Supervisor, SupervisorSpec};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let text = rt.block_on(async move {
///     let worker = ChildSpec::worker("worker", |args| async move {
///         Ok(args.spawn_link(|mut p| async move { loop { p.recv_any().await; } }))
///     });
///     let spec = SupervisorSpec::new(Strategy::OneForOne).label("top").child(worker);
///     let sup = Supervisor::start(&node, spec).await.unwrap();
///     tree(&sup, std::time::Duration::from_secs(1)).await.unwrap().to_string()
/// });
/// assert!(text.starts_with("top <0.1.0> (supervisor)\n└── worker <0.2.0> (worker, process)"), "{text}");
/// ```
#[derive(Clone, Debug)]
pub struct TreeNode {
    /// The child id (the root's is its label).
    pub id: String,
    /// The process, if running.
    pub pid: Option<Pid>,
    /// Its label in the process table (empty when not running).
    pub label: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Children, for supervisors: the first [`TreeNode::READ_CHILDREN`].
    pub children: Vec<TreeNode>,
    /// A supervisor's children beyond those in `children`, not read.
    pub unlisted: usize,
}

impl TreeNode {
    /// Children a supervisor shows one by one before summarising the rest.
    pub const SHOWN_CHILDREN: usize = 20;
    /// Children [`tree`] reads of each supervisor (the rest are counted in
    /// `unlisted`), so that reading the tree costs the same beside a
    /// supervisor of a million workers as beside one of ten.
    pub const READ_CHILDREN: usize = 1_000;

    /// All its children, read or not.
    pub fn child_count(&self) -> usize {
        self.children.len() + self.unlisted
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, indent: &str, branch: &str) -> fmt::Result {
        let pid = match &self.pid {
            // A dynamic child's id is its pid: say it once.
            Some(p) if p.to_string() == self.id => String::new(),
            Some(p) => format!(" {p}"),
            None => " -".to_string(),
        };
        let kind = match self.kind {
            ChildKind::Supervisor => "supervisor".to_string(),
            ChildKind::Worker if self.label.is_empty() => "worker".to_string(),
            ChildKind::Worker => format!("worker, {}", self.label),
        };
        writeln!(f, "{indent}{branch}{}{pid} ({kind})", self.id)?;
        let inner = match branch {
            "" => indent.to_string(),
            "└── " => format!("{indent}    "),
            _ => format!("{indent}│   "),
        };
        let n = self.child_count();
        let shown = self.children.len().min(Self::SHOWN_CHILDREN);
        for (i, child) in self.children.iter().take(shown).enumerate() {
            let last = i + 1 == n;
            child.write(f, &inner, if last { "└── " } else { "├── " })?;
        }
        if n > shown {
            writeln!(f, "{inner}└── … {} more", n - shown)?;
        }
        Ok(())
    }
}

impl fmt::Display for TreeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, "", "")
    }
}

fn label_of(pid: &Pid) -> String {
    pid.cell().map(|c| c.label.to_string()).unwrap_or_default()
}

/// The supervision tree below `root`, asking every supervisor for its
/// first [`TreeNode::READ_CHILDREN`] children (like `which_children`
/// applied recursively, at a bounded cost per supervisor).
pub async fn tree(root: &SupervisorRef, timeout: Duration) -> Result<TreeNode, CallError> {
    let label = label_of(&root.pid);
    let mut top = TreeNode {
        id: if label.is_empty() {
            "supervisor".into()
        } else {
            label.clone()
        },
        pid: Some(root.pid.clone()),
        label,
        kind: ChildKind::Supervisor,
        children: Vec::new(),
        unlisted: 0,
    };
    // Iterative walk: a stack of (path to node, supervisor to ask).
    let mut stack = vec![(Vec::<usize>::new(), root.clone())];
    while let Some((path, sup)) = stack.pop() {
        let page = match sup.first_children(TreeNode::READ_CHILDREN, timeout).await {
            Ok(page) => page,
            Err(_) if !path.is_empty() => continue, // a child supervisor that just went away
            Err(e) => return Err(e),
        };
        let mut here = &mut top;
        for &i in &path {
            here = &mut here.children[i];
        }
        here.unlisted = page.total.saturating_sub(page.children.len());
        for (i, c) in page.children.into_iter().enumerate() {
            if c.kind == ChildKind::Supervisor
                && let Some(pid) = &c.pid
            {
                let mut child_path = path.clone();
                child_path.push(i);
                stack.push((child_path, SupervisorRef::from_pid(pid.clone())));
            }
            here.children.push(TreeNode {
                label: c.pid.as_ref().map(label_of).unwrap_or_default(),
                id: c.id,
                pid: c.pid,
                kind: c.kind,
                children: Vec::new(),
                unlisted: 0,
            });
        }
    }
    Ok(top)
}
