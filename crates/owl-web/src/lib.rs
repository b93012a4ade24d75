//! # owl-web
//!
//! The web side of the demo system, on axum — a thin skin over
//! `owl-system`: pages call the domain's services and the operator's
//! facade, never the runtime's internals or the sandbox.
//!
//! - [`endpoint`] serves every route from a supervised process, behind a
//!   connection cap and header timeouts;
//! - live pages keep their state in a runtime process per connected page;
//! - the sum page, the process and system dashboards, `/metrics`, the JSON
//!   API, login, embedded assets.
//!
//! ```no_run
//! use owl_system::{Config, System};
//! use owl_web::WebConfig;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:4000").unwrap();
//! let system = System::builder(Config::default())
//!     .edge(owl_web::endpoint(WebConfig::default(), listener))
//!     .start()
//!     .unwrap();
//! // … serve until asked to stop, then:
//! system.shutdown(std::time::Duration::from_secs(30));
//! ```

mod accept;
mod api;
mod assets;
mod auth;
mod endpoint;
mod error;
mod guards;
mod layout;
mod live;
mod metrics;
mod pages;
mod throttle;
mod topic;
mod visitor;

use std::sync::Arc;
use std::time::Duration;

use owl_system::Services;

pub use endpoint::{ENDPOINT, SUPERVISOR, endpoint};
pub use live::{MAX_FRAME_BYTES, SESSIONS};

/// The largest request body any route reads (forms, the JSON API,
/// node-to-node requests).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// How the web side runs.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Let anyone look at the dashboards and `/metrics` (acting still needs
    /// the admin token).
    pub public_dashboards: bool,
    /// Connections served at once; beyond, new ones get a short 503 and are
    /// closed. `None`: derived from the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers — and how long
    /// an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// The address phones reach the node at (`https://talk.example`), which
    /// the board's QR codes encode; default: the bound address.
    pub public_url: Option<String>,
    /// Reverse proxies in front of the node: for requests from them, the
    /// client's address is taken from `X-Forwarded-For`.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Live pages one address may keep open at once.
    pub max_live_per_address: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            public_dashboards: false,
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            public_url: None,
            trusted_proxies: Vec::new(),
            max_live_per_address: live::DEFAULT_PER_ADDRESS,
        }
    }
}

/// What every request handler and live session can reach. Cheap to clone.
#[derive(Clone)]
struct Web {
    services: Services,
    auth: Arc<auth::Auth>,
    /// Where phones reach the node, without a trailing slash.
    public_url: Arc<str>,
    /// Cookies only over HTTPS (`--public-url https://…`).
    secure_cookies: bool,
    /// Live pages open per address.
    live: Arc<live::LiveAdmission>,
    /// HTTP connections open now.
    connections: Arc<accept::Open>,
}
