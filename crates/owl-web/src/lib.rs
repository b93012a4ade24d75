//! # owl-web
//!
//! The web side of the demo system, on axum: live pages whose state lives in
//! a runtime process per connected page ([`live`]), the pages themselves
//! ([`pages`]: the sum page, the process and system dashboards), the JSON API
//! ([`api`]), Prometheus metrics ([`metrics`]), access rules ([`auth`]),
//! embedded assets ([`assets`]), and the
//! web endpoint that serves them as a supervised process ([`endpoint`]).
//!
//! [`application`] assembles the whole system's supervision tree, so the
//! `owl` binary and the tests start exactly the same thing.
//!
//! ```no_run
//! use owl_runtime::Runtime;
//! use owl_runtime::supervisor::Supervisor;
//! use owl_sandbox::{Sandbox, SandboxConfig};
//! use owl_system::math::MathService;
//! use owl_web::{App, application};
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let math = MathService::new(Sandbox::new(SandboxConfig::default()).unwrap(), 1000).unwrap();
//! let auth = owl_web::Auth::new("a-long-admin-token", false).unwrap();
//! let app = App::new(rt.node(), math, auth);
//! let listener = std::net::TcpListener::bind("127.0.0.1:4000").unwrap();
//! rt.block_on(async move {
//!     let root = Supervisor::start(&app.node, application(&app, listener)).await.unwrap();
//!     // … serve until asked to stop, then:
//!     root.shutdown(std::time::Duration::from_secs(30)).await;
//! });
//! ```

pub mod api;
pub mod assets;
pub mod auth;
pub mod endpoint;
pub mod layout;
pub mod live;
pub mod metrics;
pub mod pages;

use std::sync::Arc;

use owl_runtime::supervisor::{Strategy, SupervisorSpec};
use owl_runtime::{Node, SchedulerSample};
use owl_system::math::MathService;

pub use auth::Auth;
pub use endpoint::router;

/// What every request handler and session can reach. Cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The node everything runs on.
    pub node: Node,
    /// Calculations.
    pub math: MathService,
    /// Who may look at dashboards and act on the node.
    pub auth: Arc<Auth>,
    /// The scheduler sample of the previous `/metrics` scrape.
    pub(crate) metrics_sample: Arc<parking_lot::Mutex<Option<(SchedulerSample, SchedulerSample)>>>,
}

impl App {
    /// The application state over `node`.
    pub fn new(node: Node, math: MathService, auth: Auth) -> App {
        App {
            node,
            math,
            auth: Arc::new(auth),
            metrics_sample: Default::default(),
        }
    }
}

/// The registered name of the application's root supervisor.
pub const ROOT: &str = "owl_root";

/// The supervision tree of the whole system: a one_for_one root over the
/// math supervisor, the live session supervisor and the web endpoint, in
/// that start order (and the reverse stop order: first no new requests,
/// then the pages, then the calculations).
pub fn application(app: &App, listener: std::net::TcpListener) -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
        .name(ROOT)
        .label("root supervisor")
        .child(app.math.supervisor_spec())
        .child(live::supervisor_spec())
        .child(endpoint::child_spec(app.clone(), listener))
}
