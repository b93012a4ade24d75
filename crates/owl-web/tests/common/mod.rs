//! A real owl node for tests: the application's whole supervision tree on
//! a loopback port, plus HTTP, WebSocket and browser clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use owl_runtime::supervisor::SupervisorRef;
use owl_runtime::{Node, Pid};
use owl_system::access::TokenSource;
use owl_system::math::{self, MathService};
use owl_system::operator::Operator;
use owl_system::{Config, System};
use owl_web::WebConfig;

pub(crate) mod browser;
pub(crate) mod postgres;
pub(crate) mod ws;

/// The admin token of test nodes.
pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Every wait in these tests is bounded by this; reaching it is a failure.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// The whole system (owl-system's one assembly) with the web endpoint on
/// a loopback port and a data directory of its own.
pub(crate) struct TestNode {
    pub addr: SocketAddr,
    pub node: Node,
    pub math: MathService,
    pub operator: Operator,
    pub board: owl_system::board::Board,
    pub root: SupervisorRef,
    pub cluster: Option<owl_cluster::Cluster>,
    data_dir: std::path::PathBuf,
    system: Option<System>,
}

/// Options of a test node beyond the defaults.
#[derive(Clone, Default)]
pub(crate) struct Options {
    pub max_calculations: Option<usize>,
    pub public_dashboards: bool,
    pub reap_orphans: Option<Duration>,
    pub max_connections: Option<usize>,
    pub header_timeout: Option<Duration>,
    pub schedulers: Option<usize>,
    pub public_url: Option<String>,
    /// Reuse a data directory (a restart); default: a fresh one.
    pub data_dir: Option<std::path::PathBuf>,
    /// Join this cluster (the node publishes its web address to it).
    pub cluster: Option<owl_cluster::ClusterConfig>,
    /// Keep the board in this PostgreSQL database.
    pub database_url: Option<String>,
    /// Board posts one visitor may make per 10 s.
    pub post_limit: Option<usize>,
    /// Board posts one address may make per 10 s.
    pub post_limit_per_address: Option<usize>,
    /// Live pages one address may keep open.
    pub max_live_per_address: Option<usize>,
    /// Calculations one address may run.
    pub max_calculations_per_address: Option<usize>,
}

impl TestNode {
    /// Starts the application with at most `max_calculations` at once.
    pub(crate) fn start(max_calculations: usize) -> TestNode {
        TestNode::with(Options {
            max_calculations: Some(max_calculations),
            ..Options::default()
        })
    }

    /// Like [`start`](Self::start), with dashboards public or not.
    pub(crate) fn start_with(max_calculations: usize, public_dashboards: bool) -> TestNode {
        TestNode::with(Options {
            max_calculations: Some(max_calculations),
            public_dashboards,
            ..Options::default()
        })
    }

    pub(crate) fn with(options: Options) -> TestNode {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let data_dir = options.data_dir.clone().unwrap_or_else(|| {
            let fresh = std::env::temp_dir().join(format!(
                "owl-web-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&fresh);
            fresh
        });
        let config = Config {
            data_dir: data_dir.clone(),
            schedulers: options.schedulers.unwrap_or(2),
            max_calculations: options.max_calculations.unwrap_or(1000),
            reap_orphans: options.reap_orphans.or(Config::default().reap_orphans),
            // Tests speak from one loopback address: unless a test is about
            // the address ceiling, it is the node's cap.
            max_calculations_per_address: options
                .max_calculations_per_address
                .or(options.max_calculations),
            admin_token: TokenSource::Given(ADMIN_TOKEN.into()),
            cluster: options.cluster.clone(),
            database_url: options.database_url.clone(),
            post_limit: options.post_limit.unwrap_or(5),
            post_limit_per_address: options.post_limit_per_address.unwrap_or(100),
            ..Config::default()
        };
        let web = WebConfig {
            public_dashboards: options.public_dashboards,
            max_connections: options.max_connections,
            header_timeout: options.header_timeout.unwrap_or(Duration::from_secs(10)),
            public_url: options.public_url.clone(),
            max_live_per_address: options
                .max_live_per_address
                .unwrap_or(WebConfig::default().max_live_per_address),
            ..WebConfig::default()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let system = System::builder(config)
            .edge(owl_web::endpoint(web, listener))
            .start()
            .unwrap();
        let services = system.services().clone();
        if let Some(cluster) = &services.cluster {
            cluster.publish(owl_cluster::HTTP_KEY, format!("http://{addr}"));
        }
        TestNode {
            cluster: services.cluster.clone(),
            addr,
            node: services.node.clone(),
            math: services.math.clone(),
            operator: services.operator.clone(),
            board: services.board.clone(),
            root: system.root().clone(),
            data_dir,
            system: Some(system),
        }
    }

    /// The node's services (the operator's handle, the console…).
    pub(crate) fn services(&self) -> &owl_system::Services {
        self.system.as_ref().unwrap().services()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs a future on the node's executor (from a thread of its own, so
    /// that tests may call it from inside their client runtime).
    pub(crate) fn block_on<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        let handle = self.system.as_ref().unwrap().handle().clone();
        std::thread::scope(|s| s.spawn(move || handle.block_on(f)).join().unwrap())
    }

    /// Loads the fixed guest as the newest `math` version (after its trial run).
    pub(crate) fn upgrade_math(&self) -> u32 {
        let operator = self.operator.clone();
        self.block_on(async move {
            operator
                .upgrade_source(math::MODULE, math::GUEST_FIXED.as_bytes().to_vec(), false)
                .await
                .unwrap()
                .version
        })
    }

    /// Kills every running calculation (the talk's `kill_math()`).
    pub(crate) fn kill_calculations(&self) {
        let _ = self.operator.kill_all(math::MODULE);
    }

    /// Live session processes, by label.
    pub(crate) fn sessions(&self) -> Vec<Pid> {
        self.node
            .processes()
            .into_iter()
            .filter(|i| i.label == "live session /")
            .map(|i| i.pid)
            .collect()
    }
}

/// Polls `check` until it holds; panics naming `what` after [`LIMIT`].
pub(crate) async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill_calculations();
        if let Some(system) = self.system.take() {
            system.shutdown(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A client-side runtime for reqwest, WebSocket and WebDriver clients.
pub(crate) fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP client whose every request gives up after [`LIMIT`] (a hang fails).
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(LIMIT).build().unwrap()
}

/// A visitor cookie the node signed (`owl_client=…`), as a browser gets it
/// from the first page it loads: each call, another visitor.
pub(crate) async fn visitor_cookie(server: &TestNode) -> String {
    let page = http().get(server.url("/")).send().await.unwrap();
    let set = page.headers()["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("owl_client="), "{set}");
    cookie
}

/// `GET path`, read as JSON.
pub(crate) async fn get_json(server: &TestNode, path: &str) -> serde_json::Value {
    let text = get_text(server, path).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
}

/// `GET path`, the answer's text.
pub(crate) async fn get_text(server: &TestNode, path: &str) -> String {
    text_of(http().get(server.url(path))).await
}

/// `GET path` as the operator (the admin token as a bearer), the answer's text.
pub(crate) async fn get_admin_text(server: &TestNode, path: &str) -> String {
    text_of(http().get(server.url(path)).bearer_auth(ADMIN_TOKEN)).await
}

async fn text_of(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// `POST path` with a JSON body, the answer read as JSON.
pub(crate) async fn post_json(
    server: &TestNode,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    http()
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Logs in with the admin token; returns the session cookie (`owl_admin=…`).
pub(crate) async fn admin_cookie(server: &TestNode) -> String {
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.url("/login"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let set = login.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}
