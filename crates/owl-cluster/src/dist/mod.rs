//! Distribution: processes on different nodes send to, call, link to and
//! monitor each other, over TLS 1.3 keyed by the cluster secret.
//!
//! A [`Dist`] is one node's end. Messages are typed Rust values that cross
//! under the rule in [`DistConfig::message`]; a remote process is a
//! [`NodePid`]; a registered name on a node is a [`Dest::Name`].
//!
//! - **send** ([`Dist::send`]) never waits: `Ok` means delivered (a local
//!   process) or queued for the peer. What one process sends another
//!   arrives in the order sent.
//! - **call** ([`Dist::call`]) asks a [`Server`](owl_runtime::server::Server)
//!   on another node, with a timeout, as [`ServerRef::call`] does locally.
//! - **monitor** ([`Dist::monitor`]) and **link** ([`Dist::link`]) carry a
//!   remote process's real exit reason; a lost node reaches them as
//!   [`ExitReason::NoConnection`] — within [`DistConfig::dead_after`] (1.5 s
//!   by default) of it going silent, at once when its connection breaks.
//! - **node events** ([`Dist::monitor_nodes`]): a [`NodeEvent`] for every
//!   connection up or down.
//!
//! # The transport, and why
//!
//! TCP connections between each node pair, TLS 1.3 (rustls) with a key
//! both ends derive from the cluster secret, and a framed codec of our own
//! on top. TCP rather than QUIC because a dead peer's kernel answers a TCP
//! connection at once (a reset when a node is killed), so `noconnection`
//! follows a `kill -9` in milliseconds; QUIC has only its idle timeout.
//! Head-of-line blocking, TCP's weakness, is handled above it: every
//! message travels on the *lane* of its receiving process, in chunks of
//! 64 KiB, and the writer takes lanes in turn; and a message of 256 KiB or
//! more travels on a second, *bulk* connection, moved by a thread of lower
//! CPU priority, with a marker in its place on the main one (see `bulk`).
//! So a 10 MB message to one process neither sits in the kernel's buffers
//! ahead of a small one to another, nor keeps it from a core.
//!
//! # Back pressure and memory
//!
//! What waits for a peer is bounded ([`DistConfig::max_queued`], 64 MiB on
//! each of its two connections): a send that would pass it fails with
//! [`DistError::Busy`] at once rather than blocking the sender or growing
//! memory. On the receiving side, what waits between the two connections
//! for its place is bounded at twice that. A send to a node with no
//! connection fails with [`DistError::NoConnection`] (and a node whose
//! address is known is dialled in the background). So nothing is lost
//! silently on this side; as on the BEAM, what was queued when a
//! connection breaks is lost with it, and monitors say so.
//!
//! ```
//! use std::time::Duration;
//! use owl_cluster::ClusterSecret;
//! use owl_cluster::dist::{Dest, Dist, DistConfig, RemoteDown};
//! use owl_runtime::{ExitReason, Runtime};
//! use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ping(u32);
//!
//! let secret = ClusterSecret::new("a secret shared by every node").unwrap();
//! let config = |name: &str| {
//!     DistConfig::new(name, "127.0.0.1:0".parse().unwrap(), secret.clone()).message::<Ping>("ping")
//! };
//! let (rt_a, rt_b) = (Runtime::new(Default::default()).unwrap(), Runtime::new(Default::default()).unwrap());
//! let a = Dist::new(&rt_a.node(), config("a")).unwrap();
//! let b = Dist::new(&rt_b.node(), config("b")).unwrap();
//! for (rt, dist) in [(&rt_a, &a), (&rt_b, &b)] {
//!     let spec = SupervisorSpec::new(Strategy::OneForOne).child(dist.child_spec());
//!     std::mem::forget(rt.block_on(Supervisor::start(&rt.node(), spec)).unwrap());
//! }
//! a.connect("b", b.local_addr());
//!
//! // On b, a process registered as "pong" waits for one ping.
//! let node_b = rt_b.node();
//! rt_b.block_on(async {
//!     node_b.spawn(|mut p| async move {
//!         p.register("pong").unwrap();
//!         let Ping(n) = p.recv().await;
//!         assert_eq!(n, 7);
//!     });
//! });
//! // On a, a process monitors it, pings it, and sees it end normally.
//! let node_a = rt_a.node();
//! let reason = rt_a.block_on(async {
//!     let (tx, rx) = tokio::sync::oneshot::channel();
//!     node_a.spawn(move |mut p| async move {
//!         let pong = Dest::named("pong", "b");
//!         a.monitor(&p, &pong);
//!         a.send(&pong, Ping(7)).unwrap();
//!         let down: RemoteDown = p.recv().await;
//!         tx.send(down.reason).unwrap();
//!     });
//!     rx.await.unwrap()
//! });
//! assert_eq!(reason, ExitReason::Normal);
//! ```

mod agent;
mod arrivals;
mod assembly;
mod bulk;
mod command;
mod conn;
mod dispatch;
mod global;
mod local;
mod names;
mod outbound;
mod socket;
mod splice;
mod tls;
mod types;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use owl_runtime::server::{Answers, ServerRef};
use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{CallError, ExitReason, Node, Pid, PidId, Process, SendError};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use global::{GlobalError, NameConflict};
pub use names::{Dest, NodePid};
pub use splice::Bytes;

use crate::{ClusterSecret, NodeEvent};
use outbound::{Outbound, Refused};
use splice::Frame;
use wire::{Head, Target};

/// The process group that gets a [`NodeEvent`] whenever a distribution
/// connection comes up or goes down.
pub const DIST_NODE_EVENTS: &str = "distribution node events";

/// The child id of the distribution agent in a supervision tree.
pub const AGENT: &str = "distribution";

/// How a node takes part in distribution.
#[derive(Clone, Debug)]
pub struct DistConfig {
    node: String,
    listen: SocketAddr,
    secret: ClusterSecret,
    tick: Duration,
    dead_after: Duration,
    max_message: usize,
    max_queued: usize,
    types: types::Types,
}

impl DistConfig {
    /// Node `node`, listening for other nodes on `listen` (port 0: any free
    /// port, see [`Dist::local_addr`]), trusting nodes that hold `secret`.
    pub fn new(node: &str, listen: SocketAddr, secret: ClusterSecret) -> DistConfig {
        DistConfig {
            node: node.to_string(),
            listen,
            secret,
            tick: Duration::from_millis(250),
            dead_after: Duration::from_millis(1500),
            max_message: 64 << 20,
            max_queued: 64 << 20,
            types: types::Types::default(),
        }
    }

    /// Lets values of `M` cross as messages, under `name`.
    ///
    /// The rule for what may cross: `M` is `Serialize + DeserializeOwned +
    /// Send + 'static` (serde; no closures, no handles to local things) and
    /// both nodes register it under the same name. The receiving node
    /// decodes it into its own `M` and delivers a plain value, so the
    /// receiver takes it with `p.recv::<M>()` like a local message. A value
    /// of a type not registered under that name there is dropped and
    /// counted.
    pub fn message<M>(mut self, name: &str) -> DistConfig
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        self.types.add_message::<M>(name);
        self
    }

    /// Lets calls of `M` to a server of type `S` cross, under `name`; the
    /// reply crosses back. Both nodes register it (the calling one to know
    /// the name, the serving one to know the types). Give `How` as `_`:
    /// `.serve::<Counter, Add, _>("counter.add")`.
    pub fn serve<S, M, How>(mut self, name: &str) -> DistConfig
    where
        S: Answers<M, How>,
        M: Serialize + DeserializeOwned + Send + 'static,
        How: 'static,
        <S as Answers<M, How>>::Reply: Serialize + DeserializeOwned,
    {
        self.types.add_call::<S, M, How>(name);
        self
    }

    /// Lets other nodes start processes here with `start`, under `name`
    /// ([`Dist::spawn`]): what crosses is the name and the arguments (`A`,
    /// serde), never a closure.
    pub fn spawner<A>(mut self, name: &str, start: fn(&Node, A) -> Pid) -> DistConfig
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.types.add_spawner::<A>(name, start);
        self
    }

    /// How long a connection may be silent before a tick is sent on it
    /// (250 ms).
    pub fn tick(mut self, tick: Duration) -> DistConfig {
        self.tick = tick;
        self
    }

    /// How long a peer may be silent before it is taken for dead and its
    /// links and monitors fire `noconnection` (1.5 s; at least two ticks).
    pub fn dead_after(mut self, after: Duration) -> DistConfig {
        self.dead_after = after.max(self.tick * 2);
        self
    }

    /// The largest message accepted, sent or received (64 MiB; at most
    /// 4 GiB − 1, the most a frame can announce).
    pub fn max_message(mut self, bytes: usize) -> DistConfig {
        self.max_message = bytes.min(u32::MAX as usize);
        self
    }

    /// The most bytes waiting for one peer's connection before sends fail
    /// with [`DistError::Busy`] (64 MiB; large messages wait on the bulk
    /// connection, which has the same bound).
    pub fn max_queued(mut self, bytes: usize) -> DistConfig {
        self.max_queued = bytes;
        self
    }
}

/// Why a send was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DistError {
    /// The message's type is not registered ([`DistConfig::message`]).
    NotRegistered(&'static str),
    /// No connection to the node, and none can be made now.
    NoConnection(String),
    /// The node is not keeping up: what waits for it is at its limit.
    Busy(String),
    /// The message is larger than [`DistConfig::max_message`].
    TooLarge {
        /// Its size, encoded.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The value could not be encoded.
    Encode(String),
    /// A local destination: no such process.
    NoProcess,
    /// A local destination: its bounded mailbox is full.
    Full,
}

impl std::fmt::Display for DistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DistError::NotRegistered(t) => {
                write!(f, "{t} is not registered to cross between nodes")
            }
            DistError::NoConnection(node) => write!(f, "no connection to node {node}"),
            DistError::Busy(node) => write!(f, "node {node} is not keeping up; not sent"),
            DistError::TooLarge { size, max } => {
                write!(f, "a message of {size} bytes is over the limit of {max}")
            }
            DistError::Encode(e) => write!(f, "the message could not be encoded: {e}"),
            DistError::NoProcess => f.write_str("no such process"),
            DistError::Full => f.write_str("the process's mailbox is full"),
        }
    }
}
impl std::error::Error for DistError {}

/// Why [`Dist::spawn`] started nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// That node has no start function of this name.
    Unknown(String),
    /// The arguments did not decode there (a different type).
    BadArguments,
    /// No connection to the node.
    NoConnection,
    /// No answer within the timeout.
    Timeout,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Unknown(name) => write!(f, "no start function {name:?} on that node"),
            SpawnError::BadArguments => f.write_str("the arguments did not decode on that node"),
            SpawnError::NoConnection => f.write_str("no connection to that node"),
            SpawnError::Timeout => f.write_str("no answer in time"),
        }
    }
}
impl std::error::Error for SpawnError {}

/// A monitor of a process on another node, as [`Dist::monitor`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteRef(pub(crate) u64);

/// Sent to the watcher when a monitored remote process ends, or its node
/// is lost ([`ExitReason::NoConnection`]), once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteDown {
    /// The monitor that fired.
    pub monitor: RemoteRef,
    /// What was monitored.
    pub target: Dest,
    /// The process, where its node said which one it was.
    pub pid: Option<NodePid>,
    /// Why it ended.
    pub reason: ExitReason,
}

/// Sent instead of an exit signal to a process that traps exits when a
/// process it is linked to on another node ends, or that node is lost
/// ([`ExitReason::NoConnection`]): the runtime's [`Exit`](owl_runtime::Exit)
/// names local processes only. A process that does not trap exits gets
/// the runtime's exit signal, as for a local link.
///
/// ```no_run
/// # use owl_cluster::dist::{Dest, Dist, RemoteExit};
/// # fn watch(dist: &Dist, node: &owl_runtime::Node) {
/// let dist = dist.clone();
/// node.spawn(move |mut p| async move {
///     p.trap_exit(true);
///     dist.link(&p, Dest::named("worker", "b"));
///     let exit: RemoteExit = p.recv().await;
///     println!("{} ended: {}", exit.from, exit.reason);
/// });
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteExit {
    /// The linked process: its pid, or its name and node where the link
    /// went by name and the pid was never learned.
    pub from: Dest,
    /// Why it ended.
    pub reason: ExitReason,
}

/// Counters of one node's distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DistStats {
    /// Frames queued for or written to other nodes: messages, calls and
    /// their answers, links' and monitors' signals, liveness ticks.
    pub frames_sent: u64,
    /// Frames received from other nodes (the same kinds).
    pub frames_received: u64,
    /// Frames their senders wrote to the socket at once, without waking
    /// the connection's writer: an answer to what the peer just sent, or
    /// a frame to a connection quiet for a while. The rest were batched.
    pub direct_writes: u64,
    /// Large frames (messages, calls, answers) sent on bulk connections,
    /// with a marker in their place on the main connection.
    pub bulk_frames: u64,
    /// Bulk connections up now (each connected peer has one, unless it
    /// could not be made: large frames then share the main connection).
    pub bulk_connections: u64,
    /// Messages that arrived for no process, or of a type unknown here.
    pub undeliverable: u64,
    /// Connections refused: a bad handshake, another secret, a bad frame.
    pub refused: u64,
    /// Links and monitors local processes hold on remote ones now.
    pub watching: u64,
    /// Links and monitors remote processes hold on local ones now.
    pub watched_here: u64,
    /// Bytes the tables of `watching` take (from their capacities): what
    /// remote monitors and links cost this node, apart from the runtime's
    /// one monitor per watching process.
    pub watch_table_bytes: u64,
}

#[derive(Debug)]
enum PeerState {
    Down,
    Dialing(Arc<Outbound>),
    Up { out: Arc<Outbound>, creation: u32 },
}

#[derive(Debug)]
struct Peer {
    addr: Option<SocketAddr>,
    state: PeerState,
    /// No new dial before this, after one failed.
    retry_at: Option<Instant>,
}

/// A call waiting for its reply.
#[derive(Debug)]
struct PendingCall {
    peer: Arc<str>,
    generation: u32,
    reply: tokio::sync::oneshot::Sender<Result<bytes::Bytes, CallError>>,
}

#[derive(Debug)]
struct Shared {
    name: Arc<str>,
    creation: u32,
    config: DistConfig,
    node: Node,
    tls: tls::TlsConfigs,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    io: tokio::runtime::Handle,
    /// Ends the I/O thread when the last handle goes.
    _io_stop: tokio::sync::oneshot::Sender<()>,
    /// The bulk thread, which moves large frames (see [`bulk`]).
    bulk_io: tokio::runtime::Handle,
    _bulk_stop: tokio::sync::oneshot::Sender<()>,
    peers: RwLock<HashMap<Arc<str>, Peer>>,
    agent: RwLock<Option<Pid>>,
    /// Set when the agent first runs: a later run is a restart.
    agent_started: std::sync::atomic::AtomicBool,
    calls: Mutex<HashMap<u64, PendingCall>>,
    next_generation: AtomicU32,
    next_ref: AtomicU64,
    frames_received: AtomicU64,
    /// Shared with every connection's queue, which counts into it.
    sent: Arc<outbound::SendCounts>,
    undeliverable: AtomicU64,
    refused: AtomicU64,
    bulk_connections: AtomicU64,
    /// Gauges the agent keeps: see [`DistStats`].
    watching: AtomicU64,
    watched_here: AtomicU64,
    watch_table_bytes: AtomicU64,
    /// When a refusal was last logged, and the refusal count then: a
    /// stranger can cause refusals at will, so they are logged in summary.
    refusal_logged: Mutex<Option<(Instant, u64)>>,
    /// Cluster-wide names and groups, as this node knows them.
    registry: Mutex<global::Registry>,
    /// The process that watches local name holders and group members.
    names_process: RwLock<Option<Pid>>,
    /// Watches of this node's own processes, by reference: the process
    /// that keeps each (see `local`).
    local_watches: Mutex<HashMap<u64, Pid>>,
    /// Buffers of large frames received, kept for the next ones.
    frame_buffers: Arc<assembly::BufferPool>,
}

/// How many bytes of large frames' buffers a node keeps for the next ones
/// (see `assembly`): three 10 MB messages' worth.
const FRAME_BUFFERS: usize = 32 << 20;

/// One node's end of distribution. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Dist {
    shared: Arc<Shared>,
}

impl Dist {
    /// Binds the listening socket and starts the I/O thread; nothing is
    /// accepted until the [`child_spec`](Self::child_spec) runs.
    pub fn new(node: &Node, config: DistConfig) -> std::io::Result<Dist> {
        crate::check_node_name(&config.node)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tls::configs(&config.secret).map_err(std::io::Error::other)?;
        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let (io, stop) = socket::start_thread(format!("owl-dist-{}", config.node), || {})?;
        let (bulk_io, bulk_stop) = bulk::start_thread(node, &config.node)?;
        let creation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u32)
            | 1;
        Ok(Dist {
            shared: Arc::new(Shared {
                name: config.node.as_str().into(),
                creation,
                config,
                node: node.clone(),
                tls,
                listener,
                local_addr,
                io,
                _io_stop: stop,
                bulk_io,
                _bulk_stop: bulk_stop,
                peers: RwLock::new(HashMap::new()),
                agent: RwLock::new(None),
                local_watches: Mutex::new(HashMap::new()),
                frame_buffers: assembly::BufferPool::new(FRAME_BUFFERS),
                agent_started: std::sync::atomic::AtomicBool::new(false),
                calls: Mutex::new(HashMap::new()),
                next_generation: AtomicU32::new(1),
                next_ref: AtomicU64::new(1),
                frames_received: AtomicU64::new(0),
                sent: Arc::default(),
                undeliverable: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                bulk_connections: AtomicU64::new(0),
                watching: AtomicU64::new(0),
                watched_here: AtomicU64::new(0),
                watch_table_bytes: AtomicU64::new(0),
                refusal_logged: Mutex::new(None),
                registry: Mutex::new(global::Registry::default()),
                names_process: RwLock::new(None),
            }),
        })
    }

    /// The agent's child spec: it accepts connections and keeps the links
    /// and monitors. If it dies, every connection is dropped (their links
    /// and monitors fire `noconnection`) and its restart starts afresh.
    pub fn child_spec(&self) -> ChildSpec {
        agent::child_spec(self.shared.clone())
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        &self.shared.name
    }

    /// The address other nodes reach this one at.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A local process as other nodes name it.
    pub fn pid_of(&self, pid: &Pid) -> NodePid {
        NodePid::new(&self.shared.name, pid.id(), self.shared.creation)
    }

    /// Tells this node where `node` listens, and connects to it (in the
    /// background) if not connected.
    pub fn connect(&self, node: &str, addr: SocketAddr) {
        if node == &*self.shared.name {
            return;
        }
        let mut peers = self.shared.peers.write();
        let peer = peers.entry(node.into()).or_insert(Peer {
            addr: None,
            state: PeerState::Down,
            retry_at: None,
        });
        peer.addr = Some(addr);
        peer.retry_at = None;
        if matches!(peer.state, PeerState::Down) {
            conn::start_dial(&self.shared, node.into(), peer);
        }
    }

    /// The nodes connected now, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .shared
            .peers
            .read()
            .iter()
            .filter(|(_, p)| matches!(p.state, PeerState::Up { .. }))
            .map(|(n, _)| n.to_string())
            .collect();
        nodes.sort();
        nodes
    }

    /// Whether `node` is connected now.
    pub fn is_connected(&self, node: &str) -> bool {
        self.shared
            .peers
            .read()
            .get(node)
            .is_some_and(|p| matches!(p.state, PeerState::Up { .. }))
    }

    /// Counters since start.
    pub fn stats(&self) -> DistStats {
        let s = &self.shared;
        DistStats {
            frames_sent: s.sent.frames.load(Ordering::Relaxed),
            frames_received: s.frames_received.load(Ordering::Relaxed),
            direct_writes: s.sent.direct.load(Ordering::Relaxed),
            bulk_frames: s.sent.bulk.load(Ordering::Relaxed),
            bulk_connections: s.bulk_connections.load(Ordering::Relaxed),
            undeliverable: s.undeliverable.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            watching: s.watching.load(Ordering::Relaxed),
            watched_here: s.watched_here.load(Ordering::Relaxed),
            watch_table_bytes: s.watch_table_bytes.load(Ordering::Relaxed),
        }
    }

    /// Bytes waiting to go to `node`.
    pub fn queued_bytes(&self, node: &str) -> usize {
        match self.shared.peers.read().get(node).map(|p| &p.state) {
            Some(PeerState::Up { out, .. } | PeerState::Dialing(out)) => out.queued_bytes(),
            _ => 0,
        }
    }

    /// Sends `process` a [`NodeEvent`] whenever a connection to a node
    /// comes up or goes down, until it exits.
    pub fn monitor_nodes(&self, process: &Process) {
        process.node().join(DIST_NODE_EVENTS, process.pid());
    }

    /// Sends `msg` to `to`, without waiting: `Ok` means delivered (a local
    /// process) or queued for its node. See the module docs for what may
    /// cross and what happens when a node does not keep up.
    pub fn send<M>(&self, to: impl Into<Dest>, msg: M) -> Result<(), DistError>
    where
        M: Serialize + Send + 'static,
    {
        let to = to.into();
        if to.node() == &*self.shared.name {
            let pid = self.shared.resolve_local(&to).ok_or(DistError::NoProcess)?;
            return pid.send(msg).map_err(|e| match e {
                SendError::NoProcess(_) => DistError::NoProcess,
                SendError::Full(_) => DistError::Full,
            });
        }
        let tag = self
            .shared
            .config
            .types
            .message_tag::<M>()
            .ok_or(DistError::NotRegistered(std::any::type_name::<M>()))?;
        let target = target_of(&to);
        let frame = wire::encode(
            &Head::Send {
                to: target.clone(),
                tag,
            },
            Some(&msg),
        )
        .map_err(|e| DistError::Encode(e.to_string()))?;
        self.shared
            .push(to.node(), target.lane(), frame)
            .map(|_| ())
    }

    /// Calls the server of type `S` at `to` with `request` and waits for its
    /// reply, at most `timeout` — [`ServerRef::call`] across nodes. A lost
    /// node fails the call with `Exited(NoConnection)`; a node that does not
    /// serve this call with `NoReply`.
    pub async fn call<S, M, How>(
        &self,
        to: impl Into<Dest>,
        request: M,
        timeout: Duration,
    ) -> Result<<S as Answers<M, How>>::Reply, CallError>
    where
        S: Answers<M, How>,
        M: Serialize + Send + 'static,
        How: 'static,
        <S as Answers<M, How>>::Reply: DeserializeOwned,
    {
        let to = to.into();
        let shared = &self.shared;
        if to.node() == &*shared.name {
            let pid = shared.resolve_local(&to).ok_or(CallError::NoProcess)?;
            return ServerRef::<S>::from_pid(pid).call(request, timeout).await;
        }
        let tag = shared
            .config
            .types
            .call_tag::<S, M>()
            .ok_or(CallError::WrongKind(
                "call registered with DistConfig::serve",
            ))?;
        let id = shared.next_ref.fetch_add(1, Ordering::Relaxed);
        let target = target_of(&to);
        let timeout_ms = timeout.as_millis().min(u64::MAX as u128) as u64;
        let frame = wire::encode(
            &Head::Call {
                id,
                to: target.clone(),
                tag,
                timeout_ms,
            },
            Some(&request),
        )
        .map_err(|_| CallError::NoReply)?;
        let answer = self
            .request(to.node(), target.lane(), id, frame, timeout)
            .await?;
        splice::decode(&answer).map_err(|_| CallError::NoReply)
    }

    /// Sends a request frame numbered `id` and waits for its `Reply`.
    async fn request(
        &self,
        peer: &str,
        lane: u64,
        id: u64,
        frame: Frame,
        timeout: Duration,
    ) -> Result<bytes::Bytes, CallError> {
        let shared = &self.shared;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let peer: Arc<str> = peer.into();
        // Registered before it is sent, so that no reply can come first.
        shared.calls.lock().insert(
            id,
            PendingCall {
                peer: peer.clone(),
                generation: 0,
                reply,
            },
        );
        match shared.push(&peer, lane, frame) {
            Ok(generation) => {
                if let Some(call) = shared.calls.lock().get_mut(&id) {
                    call.generation = generation;
                }
                // Lost before the generation was noted: nobody failed it.
                if !shared.is_live(&peer, generation) {
                    shared.calls.lock().remove(&id);
                    return Err(CallError::Exited(ExitReason::NoConnection));
                }
            }
            Err(e) => {
                shared.calls.lock().remove(&id);
                return Err(match e {
                    DistError::Busy(_) => CallError::Full,
                    _ => CallError::Exited(ExitReason::NoConnection),
                });
            }
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::Exited(ExitReason::NoConnection)),
            Err(_) => {
                shared.calls.lock().remove(&id);
                Err(CallError::Timeout)
            }
        }
    }

    /// Starts a process on `node` with the start function it registered as
    /// `name` ([`DistConfig::spawner`]), passing it `args` — Erlang's
    /// `spawn(Node, M, F, A)`, with a name instead of code. Returns its pid.
    pub async fn spawn<A: Serialize>(
        &self,
        node: &str,
        name: &str,
        args: A,
        timeout: Duration,
    ) -> Result<NodePid, SpawnError> {
        let shared = &self.shared;
        let id = shared.next_ref.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&Head::Spawn { id, name }, Some(&args))
            .map_err(|_| SpawnError::BadArguments)?;
        let lane = id.wrapping_mul(2) | 1;
        let body = match self.request(node, lane, id, frame, timeout).await {
            Ok(body) => body,
            Err(CallError::Timeout) => return Err(SpawnError::Timeout),
            Err(CallError::WrongKind(_)) => return Err(SpawnError::Unknown(name.to_string())),
            Err(CallError::NoReply) => return Err(SpawnError::BadArguments),
            Err(_) => return Err(SpawnError::NoConnection),
        };
        let pid: u64 = postcard::from_bytes(&body).map_err(|_| SpawnError::BadArguments)?;
        let creation = shared.creation_of(node).ok_or(SpawnError::NoConnection)?;
        Ok(NodePid::new(node, PidId(pid), creation))
    }

    /// Registers `pid` (a process of this node) under `name` in the whole
    /// cluster; see [`global`](self) rules in docs/distribution.md: a
    /// name another node handed out meanwhile is settled for the node
    /// whose name sorts first, and the loser hears of it by a
    /// [`NameConflict`] message. The name goes when the process ends.
    pub fn register_global(&self, name: &str, pid: &Pid) -> Result<(), GlobalError> {
        self.shared.register_global(name, pid)
    }

    /// Lets go of a cluster-wide name this node holds.
    pub fn unregister_global(&self, name: &str) {
        self.shared.unregister_global(name)
    }

    /// The process holding a cluster-wide name, on whichever node.
    pub fn whereis_global(&self, name: &str) -> Option<NodePid> {
        self.shared.registry.lock().whereis(name)
    }

    /// Adds `pid` (a process of this node) to the cluster-wide `group`
    /// (OTP's `pg:join`); it leaves when it ends, or its node is lost.
    pub fn pg_join(&self, group: &str, pid: &Pid) {
        self.shared.pg_join(group, pid)
    }

    /// Removes `pid` from `group`.
    pub fn pg_leave(&self, group: &str, pid: &Pid) {
        self.shared.pg_leave(group, pid)
    }

    /// Every member of `group` on every connected node, sorted.
    pub fn pg_members(&self, group: &str) -> Vec<NodePid> {
        self.shared.registry.lock().members(group)
    }

    /// Monitors `target` for the calling process: it gets one
    /// [`RemoteDown`] when the target ends (its real reason), when it did
    /// not exist (`NoProc`), or when its node is lost (`NoConnection`).
    pub fn monitor(&self, process: &Process, target: impl Into<Dest>) -> RemoteRef {
        self.watch(process.pid(), target.into(), false)
    }

    /// Removes a monitor; no [`RemoteDown`] comes for it after this
    /// returns unless one was already in the mailbox.
    pub fn demonitor(&self, monitor: RemoteRef) {
        if local::unwatch(&self.shared, monitor.0) {
            return;
        }
        self.shared.to_agent(command::Command::Unwatch {
            reference: monitor.0,
        });
    }

    /// Links the calling process with `target`: when either ends
    /// abnormally the other gets an exit signal with its reason (and dies
    /// unless it traps exits, as with a local link); a lost node is
    /// `NoConnection` for the local end.
    pub fn link(&self, process: &Process, target: impl Into<Dest>) {
        self.watch(process.pid(), target.into(), true);
    }

    /// Queues the watch's frame from the caller itself, so that it goes
    /// ahead of anything the caller sends next (same lane); the agent
    /// then keeps the books.
    fn watch(&self, watcher: &Pid, target: Dest, link: bool) -> RemoteRef {
        let shared = &self.shared;
        let reference = shared.next_ref.fetch_add(1, Ordering::Relaxed);
        if target.node() == &*shared.name {
            local::watch(shared, reference, watcher, target, link);
            return RemoteRef(reference);
        }
        let head = Head::Watch {
            reference,
            watcher: watcher.id().0,
            target: target_of(&target),
            link,
        };
        let lane = target_of(&target).lane();
        let ready = match wire::encode::<()>(&head, None) {
            // A name too long for a frame's header: no process can have it.
            Err(_) => Err(ExitReason::NoProc),
            Ok(frame) => match shared.outbound(target.node()) {
                Ok(out) => Ok((frame, out)),
                Err(_) => Err(ExitReason::NoConnection),
            },
        };
        let (frame, out) = match ready {
            Ok(ready) => ready,
            Err(reason) => {
                agent::fire(&shared.node, reference, watcher, link, target, None, reason);
                return RemoteRef(reference);
            }
        };
        // The agent hears of the watch first: on another scheduler, the
        // answer to its frame could otherwise reach the agent before the
        // watch does, and be dropped as one for a watch it never had.
        shared.to_agent(command::Command::Watch {
            reference,
            watcher: watcher.clone(),
            target: target.clone(),
            link,
            generation: out.generation,
        });
        if shared.push_to(target.node(), &out, lane, frame).is_err() {
            shared.to_agent(command::Command::WatchNotSent { reference });
        }
        RemoteRef(reference)
    }
}

/// The wire target of a destination.
fn target_of(to: &Dest) -> Target<'_> {
    match to {
        Dest::Pid(pid) => Target::Pid {
            id: pid.id().0,
            creation: pid.creation(),
        },
        Dest::Name { name, .. } => Target::Name(name),
    }
}

impl Shared {
    /// A local process named by a destination on this node.
    fn resolve_local(&self, to: &Dest) -> Option<Pid> {
        match to {
            Dest::Pid(pid) if pid.creation() == self.creation => self.node.lookup(pid.id()),
            Dest::Pid(_) => None,
            Dest::Name { name, .. } => self.node.whereis(name),
        }
    }

    /// A process of this node named by a wire target.
    fn resolve_target(&self, target: &Target<'_>) -> Option<Pid> {
        match target {
            Target::Pid { id, creation } if *creation == self.creation => {
                self.node.lookup(PidId(*id))
            }
            Target::Pid { .. } => None,
            Target::Name(name) => self.node.whereis(name),
        }
    }

    /// Queues a frame for `peer`, dialling it if it is down and its address
    /// is known. Returns the generation of the connection it went to.
    fn push(self: &Arc<Self>, peer: &str, lane: u64, frame: Frame) -> Result<u32, DistError> {
        if frame.len() > self.config.max_message {
            return Err(DistError::TooLarge {
                size: frame.len(),
                max: self.config.max_message,
            });
        }
        let out = self.outbound(peer)?;
        self.push_to(peer, &out, lane, frame)
    }

    /// Queues a frame on `out`, the queue of the connection to `peer`.
    fn push_to(
        &self,
        peer: &str,
        out: &Outbound,
        lane: u64,
        frame: Frame,
    ) -> Result<u32, DistError> {
        match out.push(lane, frame) {
            Ok(()) => Ok(out.generation),
            Err(Refused::Full) => Err(DistError::Busy(peer.to_string())),
            Err(Refused::Closed) => Err(DistError::NoConnection(peer.to_string())),
        }
    }

    /// The queue of the connection to `peer`, dialling if needed.
    fn outbound(self: &Arc<Self>, peer: &str) -> Result<Arc<Outbound>, DistError> {
        if let Some(p) = self.peers.read().get(peer) {
            match &p.state {
                PeerState::Up { out, .. } | PeerState::Dialing(out) => return Ok(out.clone()),
                PeerState::Down => {}
            }
        }
        let mut peers = self.peers.write();
        let Some(p) = peers.get_mut(peer) else {
            return Err(DistError::NoConnection(peer.to_string()));
        };
        match &p.state {
            PeerState::Up { out, .. } | PeerState::Dialing(out) => Ok(out.clone()),
            PeerState::Down => {
                let may_dial = p.addr.is_some() && p.retry_at.is_none_or(|at| Instant::now() >= at);
                if !may_dial {
                    return Err(DistError::NoConnection(peer.to_string()));
                }
                Ok(conn::start_dial(self, peer.into(), p))
            }
        }
    }

    /// Hands a command to the agent (dropped if it is not running: then
    /// there are no connections either).
    fn to_agent(&self, command: command::Command) {
        if let Some(agent) = &*self.agent.read() {
            let _ = agent.send(command);
        }
    }

    /// Tells the processes that asked of a node coming up or going down.
    fn node_event(&self, event: NodeEvent) {
        tracing::info!(target: "owl::dist", node = %self.name, ?event, "distribution connection");
        for pid in self.node.members(DIST_NODE_EVENTS) {
            let _ = pid.send(event.clone());
        }
    }

    /// The incarnation of `peer` this node is connected to.
    fn creation_of(&self, peer: &str) -> Option<u32> {
        match self.peers.read().get(peer).map(|p| &p.state) {
            Some(PeerState::Up { creation, .. }) => Some(*creation),
            _ => None,
        }
    }

    /// Whether the connection of `generation` to `peer` is still the
    /// current one.
    fn is_live(&self, peer: &str, generation: u32) -> bool {
        self.outbound_of(peer, generation).is_some()
    }

    /// The queue of connection `generation` to `peer`, if it is still the
    /// current one (what went over an older one is answered on no newer:
    /// the peer fired it already).
    fn outbound_of(&self, peer: &str, generation: u32) -> Option<Arc<Outbound>> {
        match self.peers.read().get(peer).map(|p| &p.state) {
            Some(PeerState::Up { out, .. } | PeerState::Dialing(out))
                if out.generation == generation && !out.is_closed() =>
            {
                Some(out.clone())
            }
            _ => None,
        }
    }

    /// Counts a refused connection and logs it — at most one line per
    /// five seconds, with how many were refused since the last line, so
    /// that no stranger can flood the log.
    fn refuse(&self, why: &str) {
        let count = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.refusal_logged.lock();
        let since = match *logged {
            Some((at, _)) if at.elapsed() < Duration::from_secs(5) => return,
            Some((_, then)) => count - then,
            None => 1,
        };
        *logged = Some((Instant::now(), count));
        drop(logged);
        tracing::warn!(target: "owl::dist", node = %self.name, refused = since, latest = why,
            "distribution connections refused");
    }

    /// The queue of a new connection to a peer.
    fn new_outbound(&self) -> Arc<Outbound> {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        Arc::new(Outbound::new(
            generation,
            self.config.max_queued,
            self.sent.clone(),
        ))
    }
}
