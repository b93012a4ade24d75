//! # owl-cluster
//!
//! Cluster membership for owl nodes — the part of Distributed Erlang's
//! `net_kernel` that the demo needs, built on chitchat (the gossip library
//! Quickwit runs in production: Scuttlebutt reconciliation, a phi-accrual
//! failure detector) rather than on a protocol of our own:
//!
//! - **who is up**: [`Cluster::members`] lists every node known, up or down;
//! - **node up / node down as messages**: a process that calls
//!   [`Cluster::monitor_nodes`] gets a [`NodeEvent`] whenever a node comes up
//!   or goes down (like `net_kernel:monitor_nodes(true)`);
//! - **replicated settings**: [`Cluster::put_setting`] sets one value for the
//!   whole cluster, last writer wins ([`Setting`]);
//! - **published figures**: [`Cluster::publish`] shows a value of this node
//!   (its load, its HTTP address) to every other node;
//! - **processes across nodes** ([`dist`]): send, call, link, monitor,
//!   cluster-wide names and groups, over TLS keyed by the secret;
//! - **trust**: every datagram is signed with the [`ClusterSecret`]; nodes
//!   with another secret never merge.
//!
//! A membership process ([`Cluster::child_spec`], child id
//! [`MEMBERSHIP`]), a child of the application's tree, owns the
//! chitchat instance; if it dies its supervisor restarts it, and it rejoins
//! as a new generation of the same node. Chitchat itself — the gossip and
//! the failure detector — runs on a thread of its own, so that a node whose
//! schedulers are saturated is never taken for dead.
//!
//! Gossip is for a private network: it is signed, not encrypted.
//!
//! [`dist`] goes further than membership: processes on different nodes
//! send to, call, link to and monitor each other, over TLS 1.3 keyed by the
//! same secret (see its docs and `docs/distribution.md`).
//!
//! ```no_run
//! use std::time::Duration;
//! use owl_cluster::{Cluster, ClusterConfig, ClusterSecret, NodeEvent};
//! use owl_runtime::Runtime;
//! use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let node = rt.node();
//! let secret = ClusterSecret::new("a secret shared by every node").unwrap();
//! let cluster = Cluster::new(
//!     ClusterConfig::new("a", "127.0.0.1:4370".parse().unwrap(), secret)
//!         .join(["127.0.0.1:4371".parse().unwrap()]),
//! )
//! .unwrap();
//! let spec = SupervisorSpec::new(Strategy::OneForOne).child(cluster.child_spec());
//! rt.block_on(async {
//!     let _root = Supervisor::start(&node, spec).await.unwrap();
//!     let watcher = node.spawn({
//!         let cluster = cluster.clone();
//!         move |mut p| async move {
//!             cluster.monitor_nodes(&p);
//!             loop {
//!                 let event = p.recv::<NodeEvent>().await;
//!                 println!("{event:?}");
//!             }
//!         }
//!     });
//!     cluster.put_setting("greeting", "hello");
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     println!("{:?}", cluster.members());
//!     # drop(watcher);
//! });
//! ```

pub mod dist;
mod gossip_thread;
mod membership;
mod secret;
mod setting;
mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use owl_runtime::Process;
use owl_runtime::supervisor::ChildSpec;
use parking_lot::Mutex;

pub use membership::MEMBERSHIP;
pub use secret::{ClusterSecret, MIN_SECRET_LEN, SecretError};
pub use setting::Setting;

/// The key a member publishes its web address under (for links from one
/// node's pages to another's).
pub const HTTP_KEY: &str = "http";

/// The process group that gets every [`NodeEvent`].
pub const NODE_EVENTS: &str = "cluster node events";

/// Gossip rounds per second: five. A dead node is declared so after about
/// twelve missed heartbeat intervals (phi-accrual threshold 12), about two
/// and a half seconds here.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);

/// How to join a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster.
    pub node: String,
    /// The UDP address gossip listens on and that peers reach this node at.
    pub gossip_addr: SocketAddr,
    /// Nodes to contact first (any one that is up will do).
    pub join: Vec<SocketAddr>,
    /// The secret every member shares.
    pub secret: ClusterSecret,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
}

impl ClusterConfig {
    /// A node named `node` gossiping on `gossip_addr`.
    pub fn new(node: &str, gossip_addr: SocketAddr, secret: ClusterSecret) -> ClusterConfig {
        ClusterConfig {
            node: node.to_string(),
            gossip_addr,
            join: Vec::new(),
            secret,
            gossip_interval: GOSSIP_INTERVAL,
        }
    }

    /// Adds seed nodes to contact.
    pub fn join(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> ClusterConfig {
        self.join.extend(seeds);
        self
    }
}

/// A node name that breaks the rule (1 to 64 letters, digits, `.`, `_`,
/// `-` or `@`); it holds the name as given (shortened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidName(pub String);

impl std::fmt::Display for InvalidName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a node name is 1 to 64 letters, digits, '.', '_', '-' or '@', not {:?}",
            self.0
        )
    }
}
impl std::error::Error for InvalidName {}

/// Checks a node name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
///
/// ```
/// use owl_cluster::check_node_name;
/// assert!(check_node_name("node-a@host1").is_ok());
/// assert!(check_node_name("").is_err());
/// assert!(check_node_name("a/b").unwrap_err().to_string().contains("\"a/b\""));
/// ```
pub fn check_node_name(name: &str) -> Result<(), InvalidName> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(InvalidName(name.chars().take(70).collect()))
    }
}

/// A node coming up or going down, sent to every process that called
/// [`Cluster::monitor_nodes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// The named node is up (joined, or back after being down).
    Up(String),
    /// The named node is down (stopped answering gossip).
    Down(String),
}

/// Whether a node is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// The failure detector hears from it.
    Up,
    /// The failure detector has declared it dead.
    Down,
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MemberState::Up => "up",
            MemberState::Down => "down",
        })
    }
}

/// One node as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Up or down.
    pub state: MemberState,
    /// True for this node.
    pub is_self: bool,
    /// Its gossip address.
    pub gossip_addr: SocketAddr,
    /// Its incarnation: a node that restarts comes back with a higher one.
    pub generation: u64,
    /// What it published ([`Cluster::publish`]).
    pub values: BTreeMap<String, String>,
}

/// What the membership process last saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    pub(crate) members: Vec<Member>,
    pub(crate) settings: BTreeMap<String, Setting>,
    pub(crate) rejected: u64,
    /// Another live node with this node's name that was up first.
    pub(crate) name_taken_by: Option<Member>,
}

/// Writes to this node's gossip state, applied by the membership process.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) published: BTreeMap<String, String>,
    pub(crate) settings: BTreeMap<String, Setting>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClusterConfig,
    pub(crate) view: Mutex<View>,
    pub(crate) pending: Mutex<Pending>,
    /// Everything published so far: a restarted membership process starts
    /// its new generation with it.
    pub(crate) published: Mutex<BTreeMap<String, String>>,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// When the membership process first ran.
    pub(crate) joined_at: std::sync::OnceLock<std::time::Instant>,
    /// Where chitchat runs, started with the first membership process and
    /// kept for the life of the cluster handle.
    pub(crate) gossip: std::sync::OnceLock<gossip_thread::GossipThread>,
}

/// A node's handle on its cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

impl Cluster {
    /// A cluster handle for `config`; nothing runs until the
    /// [`child_spec`](Self::child_spec) is started.
    pub fn new(config: ClusterConfig) -> Result<Cluster, InvalidName> {
        check_node_name(&config.node)?;
        let me = Member {
            name: config.node.clone(),
            state: MemberState::Up,
            is_self: true,
            gossip_addr: config.gossip_addr,
            generation: 0,
            values: BTreeMap::new(),
        };
        Ok(Cluster {
            inner: Arc::new(Inner {
                config,
                view: Mutex::new(View {
                    members: vec![me],
                    ..View::default()
                }),
                pending: Mutex::new(Pending::default()),
                published: Mutex::new(BTreeMap::new()),
                wake: tokio::sync::Notify::new(),
                changes: tokio::sync::watch::channel(0).0,
                joined_at: std::sync::OnceLock::new(),
                gossip: std::sync::OnceLock::new(),
            }),
        })
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.inner.config.node
    }

    /// The cluster's secret (for signing node-to-node requests).
    pub fn secret(&self) -> &ClusterSecret {
        &self.inner.config.secret
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The membership process's child spec, for the application's tree.
    pub fn child_spec(&self) -> ChildSpec {
        membership::child_spec(self.clone())
    }

    /// Every node known, by name; this node is always up.
    pub fn members(&self) -> Vec<Member> {
        self.inner.view.lock().members.clone()
    }

    /// The names of the nodes that are up, sorted.
    pub fn live_names(&self) -> Vec<String> {
        self.inner
            .view
            .lock()
            .members
            .iter()
            .filter(|m| m.state == MemberState::Up)
            .map(|m| m.name.clone())
            .collect()
    }

    /// True once this node has gossiped long enough to know who is up: a
    /// node that just joined hears of the others' state one round before
    /// its failure detector counts them as up, and would otherwise believe
    /// for a moment that it is alone (and, say, run the whole cluster's
    /// load). Settled five gossip rounds (at least a second) after joining.
    pub fn is_settled(&self) -> bool {
        let settle = (self.inner.config.gossip_interval * 5).max(Duration::from_secs(1));
        self.inner
            .joined_at
            .get()
            .is_some_and(|at| at.elapsed() >= settle)
    }

    /// The member called `name`, if known.
    pub fn member(&self, name: &str) -> Option<Member> {
        let view = self.inner.view.lock();
        view.members.iter().find(|m| m.name == name).cloned()
    }

    /// Another node that is up under this node's name and was there first
    /// (a second node started with an existing `--node` name). Names are
    /// unique in a cluster: the older node keeps it; a node that finds its
    /// name taken must not act as that node (`owl serve` refuses to start;
    /// load control gives it no share).
    pub fn name_taken_by(&self) -> Option<Member> {
        self.inner.view.lock().name_taken_by.clone()
    }

    /// Gossip datagrams dropped because their signature did not verify.
    pub fn rejected_datagrams(&self) -> u64 {
        self.inner.view.lock().rejected
    }

    /// Shows `value` under `key` to every node (in [`Member::values`]).
    pub fn publish(&self, key: &str, value: impl ToString) {
        let value = value.to_string();
        {
            let mut published = self.inner.published.lock();
            if published.get(key) == Some(&value) {
                return;
            }
            published.insert(key.to_string(), value.clone());
        }
        self.inner
            .pending
            .lock()
            .published
            .insert(key.to_string(), value);
        self.inner.wake.notify_one();
    }

    /// The cluster-wide value of setting `key` (last writer wins).
    pub fn setting(&self, key: &str) -> Option<Setting> {
        self.inner.view.lock().settings.get(key).cloned()
    }

    /// Sets `key` to `value` for the whole cluster. Visible here at once,
    /// on the other nodes after a gossip round or two.
    pub fn put_setting(&self, key: &str, value: impl ToString) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        self.put_setting_at(key, value.to_string(), now, true);
    }

    /// Sets `key` to `value` only if the cluster has no value for it: a
    /// start-up default, which any real write (here or elsewhere) overrides.
    pub fn put_default_setting(&self, key: &str, value: impl ToString) {
        self.put_setting_at(key, value.to_string(), 0, false);
    }

    fn put_setting_at(&self, key: &str, value: String, at: u64, bump: bool) {
        let setting = {
            let mut view = self.inner.view.lock();
            let current = view.settings.get(key);
            let stamp = match current {
                Some(c) if bump => at.max(c.stamp + 1),
                Some(_) => return,
                None => at,
            };
            let setting = Setting {
                value,
                stamp,
                origin: self.inner.config.node.clone(),
            };
            view.settings.insert(key.to_string(), setting.clone());
            setting
        };
        self.inner
            .pending
            .lock()
            .settings
            .insert(key.to_string(), setting);
        self.inner.changes.send_modify(|v| *v += 1);
        self.inner.wake.notify_one();
    }

    /// Sends the calling process a [`NodeEvent`] whenever a node comes up
    /// or goes down, until it exits.
    pub fn monitor_nodes(&self, process: &Process) {
        process.node().join(NODE_EVENTS, process.pid());
    }

    /// A receiver that changes whenever membership or a setting changes
    /// (for a process that recomputes something from them).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}
