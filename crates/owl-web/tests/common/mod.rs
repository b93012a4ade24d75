//! A real owl node for tests: the application's whole supervision tree on
//! a loopback port, plus HTTP, WebSocket and browser clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use owl_runtime::supervisor::{Supervisor, SupervisorRef};
use owl_runtime::{Config, Node, Pid, Runtime};
use owl_sandbox::{Sandbox, SandboxConfig};
use owl_system::math::{self, MathService};
use owl_web::App;

pub mod browser;

/// The admin token of test nodes.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Every wait in these tests is bounded by this; reaching it is a failure.
pub const LIMIT: Duration = Duration::from_secs(20);

pub struct TestNode {
    pub addr: SocketAddr,
    pub node: Node,
    pub math: MathService,
    pub root: SupervisorRef,
    rt: Option<Runtime>,
}

impl TestNode {
    /// Starts the application with at most `max_calculations` at once.
    pub fn start(max_calculations: usize) -> TestNode {
        TestNode::start_with(max_calculations, false)
    }

    /// Like [`start`](Self::start), with dashboards public or not.
    pub fn start_with(max_calculations: usize, public_dashboards: bool) -> TestNode {
        let rt = Runtime::new(Config::default().schedulers(2)).unwrap();
        let sandbox = Sandbox::new(SandboxConfig {
            max_processes: max_calculations,
            ..SandboxConfig::default()
        })
        .unwrap();
        let math = MathService::new(sandbox, max_calculations).unwrap();
        let auth = owl_web::Auth::new(ADMIN_TOKEN, public_dashboards).unwrap();
        let app = App::new(rt.node(), math.clone(), auth);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spec = owl_web::application(&app, listener);
        let root = rt.block_on(Supervisor::start(&app.node, spec)).unwrap();
        TestNode {
            addr,
            node: rt.node(),
            math,
            root,
            rt: Some(rt),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Loads the fixed guest as the newest `math` version.
    pub fn upgrade_math(&self) -> u32 {
        self.math
            .sandbox()
            .load(math::MODULE, math::GUEST_FIXED.as_bytes())
            .unwrap()
    }

    /// Kills every running calculation (the talk's `kill_math()`).
    pub fn kill_calculations(&self) {
        for pid in self.math.sandbox().running(math::MODULE) {
            self.node.kill(&pid);
        }
    }

    /// Live session processes, by label.
    pub fn sessions(&self) -> Vec<Pid> {
        self.node
            .processes()
            .into_iter()
            .filter(|i| i.label == "live session /")
            .map(|i| i.pid)
            .collect()
    }
}

/// Polls `check` until it holds; panics naming `what` after [`LIMIT`].
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
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
        if let Some(rt) = self.rt.take() {
            let root = self.root.clone();
            rt.block_on(async move { root.shutdown(Duration::from_secs(5)).await });
        }
    }
}

/// A client-side runtime for reqwest, WebSocket and WebDriver clients.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP client whose every request gives up after [`LIMIT`] (a hang fails).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(LIMIT).build().unwrap()
}
