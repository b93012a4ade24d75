//! `owl serve`: starts the system (owl-system's one assembly) with the web
//! endpoint and the console as its edges, and stops it in order on Ctrl-C or
//! SIGTERM. If the root supervisor itself ends, the node can no longer
//! serve: it says why and exits non-zero, so a service manager restarts it.

use std::time::Duration;

use clap::Args;
use owl_cluster::{ClusterConfig, ClusterSecret};
use owl_runtime::ExitReason;
use owl_system::access::TokenSource;
use owl_system::{Config, System};
use owl_web::WebConfig;

use crate::console;

/// Prints a status line; a closed stdout (`owl serve | head`) must not stop
/// the node, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Address for the web interface.
    #[arg(long, default_value = "127.0.0.1:4000")]
    bind: String,
    /// Directory for data (created if missing).
    #[arg(long, default_value = "./owl-data")]
    data_dir: std::path::PathBuf,
    /// Schedulers online at start (the cores all of owl computes on,
    /// guest threads included); default: one per CPU. There is always one
    /// scheduler per CPU to bring online later, from /load or the console.
    #[arg(long, default_value_t = 0)]
    schedulers: usize,
    /// Calculations that may run at once, all visitors together; at the
    /// limit, the visitor holding the most gives one up to a newcomer.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_calculations: u32,
    /// Calculations the visitors of one network address may run at once
    /// (default: half of --max-calculations). A room of phones behind one
    /// NAT shares it; a script from one address cannot take the node.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_calculations_per_address: Option<u32>,
    /// End a page's calculation this long after the page went away (e.g.
    /// `30s`, `5m`), or `off` to let calculations outlive their pages.
    #[arg(long, default_value = "10s", value_parser = parse_grace)]
    reap_orphans: Grace,
    /// A CPU-time budget per process of a guest module, e.g. `math=30s`:
    /// runaways past it end by themselves (repeatable).
    #[arg(long, value_parser = parse_budget)]
    cpu_budget: Vec<(String, Duration)>,
    /// Let anyone look at the dashboards and /metrics (acting still needs
    /// the admin token). Off by default.
    #[arg(long)]
    public_dashboards: bool,
    /// The admin token (at least 16 characters). Visible in the process
    /// list: prefer --admin-token-file or OWL_ADMIN_TOKEN. Default: the one
    /// in DATA_DIR/admin-token, generated at first start.
    #[arg(long, env = "OWL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Read the admin token from this file.
    #[arg(long, conflicts_with = "admin_token")]
    admin_token_file: Option<std::path::PathBuf>,
    /// Background jobs at start (load control's target, 0 to 10,000,000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    load: u64,
    /// The address phones reach this node at, which the board's QR codes
    /// encode (e.g. `http://192.168.1.20:4000`); default: the bound address.
    #[arg(long)]
    public_url: Option<String>,
    /// Posts one visitor may make on the board per 10 seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    post_limit: u32,
    /// Posts all the visitors of one network address may make per 10
    /// seconds together.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    post_limit_per_address: u32,
    /// Live pages one network address may keep open at once.
    #[arg(long, default_value_t = 2_500, value_parser = clap::value_parser!(u32).range(1..=9_936))]
    max_live_per_address: u32,
    /// Connections served at once (default: from the file limit).
    #[arg(long)]
    max_connections: Option<usize>,
    /// A reverse proxy in front of the node (repeatable): for requests from
    /// it, the client's address is taken from X-Forwarded-For, so that
    /// per-address limits apply per client, not to the proxy.
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Join a cluster, gossiping on this UDP address (e.g. 127.0.0.1:4370).
    /// Gossip is signed, not encrypted: use a private network.
    #[arg(long, value_name = "ADDR:PORT")]
    cluster: Option<std::net::SocketAddr>,
    /// Nodes of the cluster to contact first (their --cluster addresses).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        value_delimiter = ',',
        requires = "cluster"
    )]
    join: Vec<std::net::SocketAddr>,
    /// This node's name in the cluster (default: owl-PORT, PORT the gossip
    /// port).
    #[arg(long, requires = "cluster")]
    node: Option<String>,
    /// The web address other nodes reach this one at (e.g.
    /// http://10.0.0.5:4000). Default: the bound address, or — bound to a
    /// wildcard like 0.0.0.0 — the --cluster address's host with the web port.
    #[arg(long, value_name = "URL", requires = "cluster")]
    advertise: Option<String>,
    /// The secret every node of the cluster shares (at least 16
    /// characters). Visible in the process list: prefer
    /// --cluster-secret-file or OWL_CLUSTER_SECRET. Default: the one in
    /// DATA_DIR/cluster-secret.
    #[arg(long, env = "OWL_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// Read the cluster secret from this file.
    #[arg(long, conflicts_with = "cluster_secret")]
    cluster_secret_file: Option<std::path::PathBuf>,
    /// Keep the board's posts in PostgreSQL (postgres://user:pass@host:port/db),
    /// shared live by every node that uses it. Default: SQLite in DATA_DIR.
    #[arg(long, env = "OWL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl ServeArgs {
    fn cluster_config(&self) -> Result<Option<ClusterConfig>, String> {
        let Some(gossip) = self.cluster else {
            return Ok(None);
        };
        // Peers reach the node at this very address: 0.0.0.0 means nothing
        // to them.
        if gossip.ip().is_unspecified() || gossip.port() == 0 {
            return Err(format!(
                "--cluster {gossip}: give the address and port other nodes reach this one at \
                 (e.g. 10.0.0.5:4370), not a wildcard"
            ));
        }
        let name = match &self.node {
            Some(name) => name.clone(),
            None => format!("owl-{}", gossip.port()),
        };
        owl_cluster::check_node_name(&name).map_err(|e| format!("--node: {e}"))?;
        let given = match &self.cluster_secret_file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the cluster secret from {}: {e}",
                    path.display()
                )
            })?),
            None => self.cluster_secret.clone(),
        };
        let secret =
            ClusterSecret::load(given.as_deref(), &self.data_dir).map_err(|e| e.to_string())?;
        Ok(Some(
            ClusterConfig::new(&name, gossip, secret).join(self.join.iter().copied()),
        ))
    }
}

/// How long a page's calculation outlives the page, or never ended.
#[derive(Clone, Copy, Debug)]
struct Grace(Option<Duration>);

fn parse_grace(text: &str) -> Result<Grace, String> {
    match text.trim() {
        "off" | "never" => Ok(Grace(None)),
        other => owl_system::duration::parse(other).map(|d| Grace(Some(d))),
    }
}

/// The web address other nodes reach this one at: `--advertise`, else the
/// bound address — with a wildcard host replaced by the gossip address's
/// host, which peers reach by definition (a node that published
/// `0.0.0.0` once sent another node's requests to itself).
fn advertised_url(
    given: Option<&str>,
    bound: std::net::SocketAddr,
    gossip: std::net::SocketAddr,
) -> Result<String, String> {
    if let Some(url) = given {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--advertise {url:?}: give an http:// URL"))?;
        let host = rest.trim_end_matches('/');
        let unspecified = host
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.ip().is_unspecified());
        if host.is_empty() || unspecified {
            return Err(format!(
                "--advertise {url:?}: give the address other nodes reach this one at"
            ));
        }
        return Ok(url.trim_end_matches('/').to_string());
    }
    let host = if bound.ip().is_unspecified() {
        gossip.ip()
    } else {
        bound.ip()
    };
    Ok(format!(
        "http://{}",
        std::net::SocketAddr::new(host, bound.port())
    ))
}

/// Says when a secret was given on the command line, where every user of
/// the machine can read it (`/proc/PID/cmdline`, `ps`).
fn warn_about_secrets_in_arguments() {
    for arg in std::env::args() {
        for (flag, instead) in [
            ("--admin-token", "--admin-token-file or OWL_ADMIN_TOKEN"),
            (
                "--cluster-secret",
                "--cluster-secret-file or OWL_CLUSTER_SECRET",
            ),
        ] {
            if arg == flag || arg.starts_with(&format!("{flag}=")) {
                tracing::warn!(target: "owl::node",
                    "{flag} on the command line is readable by every user of this machine; use {instead}");
            }
        }
        if (arg.starts_with("postgres://") || arg.starts_with("postgresql://"))
            && arg
                .split('@')
                .next()
                .is_some_and(|creds| creds.matches(':').count() >= 2)
        {
            tracing::warn!(target: "owl::node",
                "--database-url with a password on the command line is readable by every user of this machine; use OWL_DATABASE_URL");
        }
    }
}

fn parse_budget(text: &str) -> Result<(String, Duration), String> {
    let (module, duration) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected MODULE=DURATION, e.g. math=30s"))?;
    Ok((module.to_string(), owl_system::duration::parse(duration)?))
}

pub(crate) fn run(args: ServeArgs) -> Result<(), String> {
    // Everything the node writes (database, console history, tokens) is
    // this user's alone, whatever umask the shell had.
    // SAFETY: umask only swaps the process's file-mode mask; no memory involved.
    unsafe {
        libc::umask(0o077);
    }
    // A node may hold thousands of connections; the web side keeps a
    // reserve below this limit for the console and files.
    if let Err(e) = owl_runtime::sys::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    // Bind first: a busy port is an error before anything starts.
    let listener = std::net::TcpListener::bind(&args.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let cluster = args.cluster_config()?;
    let advertised = match &cluster {
        Some(config) => Some(advertised_url(
            args.advertise.as_deref(),
            addr,
            config.gossip_addr,
        )?),
        None => None,
    };
    warn_about_secrets_in_arguments();
    let config = Config {
        cluster: cluster.clone(),
        database_url: args.database_url.clone(),
        data_dir: args.data_dir.clone(),
        // The talk's `--schedulers 1` starts on one core and can still be
        // raised live: the maximum is one per CPU (or N, if more).
        schedulers: match args.schedulers {
            0 => 0,
            n => n.max(std::thread::available_parallelism().map_or(1, |c| c.get())),
        },
        schedulers_online: (args.schedulers > 0).then_some(args.schedulers),
        max_calculations: args.max_calculations as usize,
        max_calculations_per_address: args.max_calculations_per_address.map(|n| n as usize),
        reap_orphans: args.reap_orphans.0,
        cpu_budgets: args.cpu_budget.clone(),
        load_target: args.load,
        post_limit: args.post_limit as usize,
        post_limit_per_address: args.post_limit_per_address as usize,
        admin_token: match (&args.admin_token, &args.admin_token_file) {
            (Some(token), _) => TokenSource::Given(token.clone()),
            (None, Some(path)) => TokenSource::File(path.clone()),
            (None, None) => TokenSource::DataDir,
        },
        ..Config::default()
    };
    // The console socket lives in the data directory, which the system
    // creates; bind it after checking the directory can be made.
    owl_system::system::create_private_dir(&args.data_dir)?;
    let (console_listener, console_path) = console::socket::bind(&args.data_dir)?;
    let web = WebConfig {
        public_dashboards: args.public_dashboards,
        max_connections: args.max_connections,
        public_url: args.public_url.clone(),
        trusted_proxies: args.trusted_proxy.clone(),
        max_live_per_address: args.max_live_per_address as usize,
        ..WebConfig::default()
    };
    let system = System::builder(config)
        .edge(owl_web::endpoint(web, listener))
        .edge(move |services| {
            Ok(console::socket::child_spec(
                services.clone(),
                console_listener,
            ))
        })
        .start()?;
    let node = system.node().clone();
    // Listen for signals before announcing readiness, so a stop request
    // that follows the announcement is never lost.
    let stop = {
        let _runtime = system.handle().enter();
        stop_signal()?
    };
    say!(
        "owl node up: {} of {} scheduler(s) online, root supervisor {}, data in {}",
        node.schedulers_online(),
        node.schedulers(),
        system.root().pid(),
        args.data_dir.display()
    );
    // A wildcard address is no place to open: show one that works here.
    let local = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    say!(
        "open http://{local}/  (JSON API: POST http://{local}/api/sum){}",
        if addr.ip().is_unspecified() {
            " — listening on every address of this machine"
        } else {
            ""
        }
    );
    say!(
        "remote console: owl console --data-dir {}",
        args.data_dir.display()
    );
    match (
        &args.admin_token,
        &args.admin_token_file,
        args.public_dashboards,
    ) {
        (Some(_), _, _) => say!("admin token: from --admin-token / OWL_ADMIN_TOKEN"),
        (None, Some(path), _) => say!("admin token: from {}", path.display()),
        (None, None, public) => say!(
            "dashboards{}; the admin token is in {}",
            if public {
                " are public, acting needs the admin token"
            } else {
                " need the admin token"
            },
            args.data_dir.join("admin-token").display()
        ),
    }
    if let (Some(config), Some(cluster), Some(advertised)) =
        (&cluster, &system.services().cluster, &advertised)
    {
        // Other nodes' dashboards reach this one here.
        cluster.publish(owl_cluster::HTTP_KEY, advertised);
        say!(
            "cluster: node {} gossiping on {} (cluster {}){}",
            config.node,
            config.gossip_addr,
            config.secret.cluster_id(),
            if config.join.is_empty() {
                String::new()
            } else {
                format!(
                    ", joining {}",
                    config
                        .join
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        say!("cluster: other nodes reach this one's web side at {advertised}");
        if let Some(dist) = &system.services().dist {
            say!(
                "cluster: distribution (TLS keyed by the cluster secret) on {}",
                dist.local_addr()
            );
        }
        // Names are unique: a node whose name another node already holds
        // must not run as it (both would run that name's share).
        let settled = std::time::Instant::now();
        while !cluster.is_settled() && settled.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(other) = cluster.name_taken_by() {
            let why = format!(
                "a node named {} is already up in this cluster (gossiping at {}); \
                 give this one another --node name",
                config.node, other.gossip_addr
            );
            tracing::error!(target: "owl::node", "{why}");
            system.shutdown(Duration::from_secs(5));
            let _ = std::fs::remove_file(&console_path);
            return Err(why);
        }
        if !system.services().board.is_shared() {
            say!(
                "cluster: this node's bulletin board is its own ({}); posts are not shared \
                 with other nodes (--database-url postgres://… shares them)",
                system.services().board.location()
            );
        }
    }
    say!("board: posts in {}", system.services().board.location());
    say!("Press Ctrl-C to stop.");
    let root_exit = system.root_exit();
    let ended: Option<ExitReason> = system.block_on(async move {
        tokio::select! {
            () = stop => None,
            reason = root_exit => Some(reason),
        }
    });
    let result = match ended {
        None => {
            say!("stopping: shutting the supervision tree down");
            system.shutdown(Duration::from_secs(30));
            Ok(())
        }
        Some(reason) => {
            tracing::error!(target: "owl::node", %reason,
                "the root supervisor ended; the node can no longer serve and exits");
            drop(system);
            Err(format!("the root supervisor ended ({reason}); exiting"))
        }
    };
    let _ = std::fs::remove_file(&console_path);
    result
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
