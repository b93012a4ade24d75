//! The one place the system is assembled: configuration in, a started
//! supervision tree out. `owl serve`, every test that needs a node, and the
//! console's `tree` all see exactly this tree.
//!
//! ```text
//! owl_root (one_for_one)
//! ├── math_sup       dynamic: one temporary child per calculation
//! ├── math_reaper    (with --reap-orphans) ends calculations whose page is gone
//! ├── cluster_membership  (with --cluster) gossip: who is up, shared settings
//! ├── load_sup       load control: the workers' supervisor and the manager
//! ├── board_sup      the bulletin board: the database's owner, one process per save
//! └── … edges        added by the caller: the web endpoint, the console
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use owl_cluster::{Cluster, ClusterConfig};
use owl_runtime::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorRef, SupervisorSpec};
use owl_runtime::{ExitReason, Node, Runtime};
use owl_sandbox::{Sandbox, SandboxConfig};

use crate::access::{AdminToken, LoginLinks, TokenSource};
use crate::board::{Board, BoardConfig};
use crate::load::LoadControl;
use crate::math::{MathConfig, MathService};
use crate::operator::{Operator, ROOT};
use crate::visitors::VisitorKey;

/// Restarts of the root's children tolerated within 10 s.
pub const ROOT_INTENSITY: u32 = 50;

/// How to run the system. `Config::default()` is `owl serve` without flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// Data directory (created, mode 0700): admin token, console socket, database.
    pub data_dir: PathBuf,
    /// Scheduler threads; 0 means one per CPU.
    pub schedulers: usize,
    /// Cores the node computes on at start (default: all of them).
    pub schedulers_online: Option<usize>,
    /// Calculations that may run at once, all visitors together.
    pub max_calculations: usize,
    /// Calculations the visitors of one address may run at once (`None`:
    /// half of `max_calculations`).
    pub max_calculations_per_address: Option<usize>,
    /// End a page's calculation this long after the page went away
    /// (`None`: never; default 10 s).
    pub reap_orphans: Option<Duration>,
    /// CPU-time budgets per guest module (runaways end as `cpu_limit`).
    pub cpu_budgets: Vec<(String, Duration)>,
    /// Where the admin token comes from.
    pub admin_token: TokenSource,
    /// Background jobs at start (load control's target).
    pub load_target: u64,
    /// Posts one client may make per `post_window` on the board.
    pub post_limit: usize,
    /// Posts all the clients of one address may make per `post_window`.
    pub post_limit_per_address: usize,
    /// See `post_limit`.
    pub post_window: Duration,
    /// The cluster to join; `None` runs the node alone.
    pub cluster: Option<ClusterConfig>,
    /// PostgreSQL for the board (shared by the nodes that use it); `None`:
    /// SQLite in the data directory.
    pub database_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./owl-data"),
            schedulers: 0,
            schedulers_online: None,
            max_calculations: 1000,
            max_calculations_per_address: None,
            reap_orphans: Some(crate::math::DEFAULT_ORPHAN_GRACE),
            cpu_budgets: Vec::new(),
            admin_token: TokenSource::DataDir,
            load_target: 0,
            post_limit: 5,
            post_limit_per_address: 100,
            post_window: Duration::from_secs(10),
            cluster: None,
            database_url: None,
        }
    }
}

/// What the edges of the system (web, console) work with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    /// The node.
    pub node: Node,
    /// Calculations.
    pub math: MathService,
    /// The operator's facade.
    pub operator: Operator,
    /// Load control.
    pub load: LoadControl,
    /// The bulletin board.
    pub board: Board,
    /// The cluster, when the node is in one.
    pub cluster: Option<Cluster>,
    /// Distribution to the other nodes of the cluster, when in one.
    pub dist: Option<owl_cluster::dist::Dist>,
    /// The admin token.
    pub token: AdminToken,
    /// Signs and checks visitor cookies.
    pub visitors: VisitorKey,
    /// One-time login links the console hands out.
    pub login_links: LoginLinks,
    /// The data directory.
    pub data_dir: PathBuf,
}

type Edge = Box<dyn FnOnce(&Services) -> Result<ChildSpec, String>>;

/// Builds a [`System`]: the domain's children, then the edges in the order
/// given (started last, stopped first).
pub struct Builder {
    config: Config,
    edges: Vec<Edge>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("edges", &self.edges.len())
            .finish()
    }
}

impl Builder {
    /// Adds an edge child (the web endpoint, the console server) built from
    /// the services.
    pub fn edge(
        mut self,
        edge: impl FnOnce(&Services) -> Result<ChildSpec, String> + 'static,
    ) -> Self {
        self.edges.push(Box::new(edge));
        self
    }

    /// Starts the runtime, the sandbox and the tree.
    pub fn start(self) -> Result<System, String> {
        let config = self.config;
        create_private_dir(&config.data_dir)?;
        let token = AdminToken::load(&config.admin_token, &config.data_dir)?;
        let mut rt_config = owl_runtime::Config::default().schedulers(config.schedulers);
        if let Some(online) = config.schedulers_online {
            rt_config = rt_config.schedulers_online(online);
        }
        let runtime =
            Runtime::new(rt_config).map_err(|e| format!("cannot start the runtime: {e}"))?;
        let node = runtime.node();
        // Guest execution runs on the same cores as the schedulers (one
        // guest thread per scheduler), so "schedulers online" is all of it.
        let sandbox = Sandbox::new(SandboxConfig {
            max_processes: config.max_calculations,
            guest_threads: node.schedulers(),
            ..SandboxConfig::default()
        })
        .map_err(|e| e.to_string())?;
        for thread in sandbox.guest_threads() {
            node.adopt_thread(thread);
        }
        let math = MathService::new(
            sandbox.clone(),
            MathConfig {
                max_running: config.max_calculations,
                max_per_address: config.max_calculations_per_address,
                reap_orphans: config.reap_orphans,
            },
        )
        .map_err(|e| format!("the math guest does not load: {e}"))?;
        for (module, budget) in &config.cpu_budgets {
            if !sandbox.set_cpu_budget(module, Some(*budget)) {
                return Err(format!("--cpu-budget: no module named {module:?}"));
            }
        }
        let operator = Operator::new(node.clone(), sandbox, math.clone());
        let cluster = config
            .cluster
            .clone()
            .map(Cluster::new)
            .transpose()
            .map_err(|e| e.to_string())?;
        let dist = match &cluster {
            Some(cluster) => Some(crate::node_service::dist_for(&node, cluster)?),
            None => None,
        };
        let load = match &cluster {
            Some(cluster) => LoadControl::clustered(config.load_target, cluster.clone()),
            None => LoadControl::new(config.load_target),
        };
        let board = Board::new(BoardConfig {
            database: config.data_dir.join("owl.db"),
            database_url: config.database_url.clone(),
            rate_posts: config.post_limit.max(1),
            rate_posts_per_address: config.post_limit_per_address.max(1),
            rate_window: config.post_window,
        });
        let visitors =
            VisitorKey::load(&config.data_dir, config.cluster.as_ref().map(|c| &c.secret))?;
        let services = Services {
            visitors,
            login_links: LoginLinks::default(),
            cluster: cluster.clone(),
            dist: dist.clone(),
            board: board.clone(),
            node: node.clone(),
            math: math.clone(),
            operator: operator.clone(),
            load: load.clone(),
            token,
            data_dir: config.data_dir.clone(),
        };
        // The root restarts a failed part up to 50 times in 10 s (chaos at
        // several kills a second heals); past that the node cannot serve, the
        // root ends and `owl serve` exits for its service manager to restart.
        let mut spec = SupervisorSpec::new(Strategy::OneForOne)
            .name(ROOT)
            .label("root supervisor")
            .intensity(ROOT_INTENSITY, Duration::from_secs(10));
        for child in math.child_specs() {
            spec = spec.child(child);
        }
        if let Some(cluster) = &cluster {
            spec = spec.child(cluster.child_spec());
        }
        if let (Some(cluster), Some(dist)) = (&cluster, &dist) {
            spec = spec
                .child(dist.child_spec())
                .child(crate::node_service::child_spec(
                    services.clone(),
                    |services, request| {
                        Box::pin(async move { crate::at::serve(&services, request).await })
                    },
                ))
                .child(crate::node_service::peers_spec(
                    cluster.clone(),
                    dist.clone(),
                ));
        }
        spec = spec.child(load.child_spec(move || {
            let mut meter = operator.meter();
            move || meter.sample().total
        }));
        spec = spec.child(board.child_spec());
        let board_figures = board.clone();
        spec = spec.child(
            services
                .operator
                .history_spec(move || board_figures.memory_bytes()),
        );
        for edge in self.edges {
            spec = spec.child(edge(&services)?);
        }
        let root = runtime
            .block_on(Supervisor::start(&node, spec))
            .map_err(|e| format!("the application failed to start: {e}"))?;
        Ok(System {
            runtime: Some(runtime),
            services,
            root,
        })
    }
}

/// A running system: the runtime, its services and its supervision tree.
/// Dropping it stops the tree and the runtime.
#[derive(Debug)]
pub struct System {
    runtime: Option<Runtime>,
    services: Services,
    root: SupervisorRef,
}

impl System {
    /// A builder for `config`.
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            edges: Vec::new(),
        }
    }

    /// The services the edges use.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.services.node
    }

    /// The root supervisor.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// Runs a future on the node's executor, from outside it.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// The tokio handle the node runs on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime().handle()
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the system runs")
    }

    /// Resolves with the root supervisor's exit reason when it ends.
    pub fn root_exit(&self) -> impl Future<Output = ExitReason> + Send + 'static {
        self.root.pid().wait_exit()
    }

    /// Stops the tree in reverse start order (waiting up to `timeout`),
    /// then the runtime; returns the root's exit reason.
    pub fn shutdown(mut self, timeout: Duration) -> Option<ExitReason> {
        let runtime = self.runtime.take()?;
        let root = self.root.clone();
        let reason = runtime.block_on(async move { root.shutdown(timeout).await });
        drop(runtime);
        reason
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let root = self.root.clone();
            runtime.block_on(async move { root.shutdown(Duration::from_secs(10)).await });
        }
    }
}

/// Creates the data directory readable by this user only (mode 0700): it
/// holds the admin token, the console socket and the database. A directory
/// that exists already keeps its mode — it may be shared on purpose, and
/// changing it could lock others out — but a warning says when others can
/// read it.
pub fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(target: "owl::node", dir = %dir.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the data directory is open to other users; it holds the admin token: chmod 700 it");
    }
    Ok(())
}
