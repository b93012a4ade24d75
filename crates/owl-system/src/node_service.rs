//! How the nodes of a cluster answer each other's operator calls: a server
//! on every clustered node, called over distribution (`owl_cluster::dist`,
//! TLS keyed by the cluster secret) — the other end of
//! [`NodeHandle`](crate::at::NodeHandle) for another node.
//!
//! A request is a [`NodeRequest`] as JSON text, the answer a [`NodeReply`]
//! as JSON text: the operator's types carry optional fields that only a
//! self-describing format keeps, and their size is dashboard-sized.

use std::net::SocketAddr;
use std::time::Duration;

use owl_cluster::dist::{Dist, DistConfig};
use owl_cluster::{Cluster, MemberState};
use owl_runtime::prelude::*;
use owl_runtime::server::{HandleLater, ReplyTo};
use owl_runtime::supervisor::{ChildSpec, StartArgs};
use serde::{Deserialize, Serialize};

use std::future::Future;
use std::pin::Pin;

use crate::Services;
use crate::console::{Answer, Command};
use crate::operator::{ListQuery, ProcessDetail, ProcessList, SystemPoint, SystemStats};

/// How a node answers a request: `at::serve`, given when the system starts
/// (so that this module, the transport, knows nothing of the handle).
pub type Answerer = fn(Services, NodeRequest) -> Pin<Box<dyn Future<Output = NodeReply> + Send>>;

/// The name the node service is registered under on every node.
pub const NODE_SERVICE: &str = "owl node service";

/// The gossip key under which a node publishes its distribution address.
pub const DIST_KEY: &str = "dist";

/// How long another node may take to answer an operator's call.
pub const NODE_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one node asks of another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRequest {
    /// The process list.
    Processes(ListQuery),
    /// One process, by pid number.
    Process(u64),
    /// Kill one process, by pid number.
    Kill(u64),
    /// The node's figures.
    Stats,
    /// The node's figures of the last five minutes.
    History,
    /// A console command.
    Console(Command),
}

/// What a node answers another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeReply {
    /// The process list.
    Processes(ProcessList),
    /// One process.
    Process(Box<ProcessDetail>),
    /// The process was sent a kill.
    Killed,
    /// The node's figures.
    Stats(Box<SystemStats>),
    /// The node's figures of the last five minutes, oldest first.
    History(Vec<SystemPoint>),
    /// A console command's answer.
    Console(Box<Answer>),
    /// The request did nothing, and why.
    Refused(String),
}

/// One operator call from another node: a [`NodeRequest`] as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeCall(pub String);

/// Answers other nodes' operator calls, each in a process of its own (a
/// console command may take seconds; the next call does not wait for it).
#[derive(Debug)]
pub struct NodeService {
    services: Services,
    answer: Answerer,
}

impl Server for NodeService {}

impl HandleLater<NodeCall> for NodeService {
    type Reply = String;

    async fn handle_later(&mut self, call: NodeCall, reply: ReplyTo<String>, _: &mut Ctx<'_>) {
        let services = self.services.clone();
        let answer = self.answer;
        let opts = SpawnOptions::new().label("node request");
        self.services.node.spawn_opts(opts, move |_| async move {
            let answer = match serde_json::from_str::<NodeRequest>(&call.0) {
                Ok(request) => answer(services, request).await,
                Err(e) => NodeReply::Refused(format!("not a request: {e}")),
            };
            let json = serde_json::to_string(&answer).unwrap_or_else(|e| {
                serde_json::json!({ "refused": format!("cannot say it: {e}") }).to_string()
            });
            let _ = reply.send(json);
        });
    }
}

/// This node's end of distribution, listening on the gossip address's
/// host (any free port, published to the others under [`DIST_KEY`]).
pub(crate) fn dist_for(node: &Node, cluster: &Cluster) -> Result<Dist, String> {
    let config = cluster.config();
    let listen = SocketAddr::new(config.gossip_addr.ip(), 0);
    let dist = DistConfig::new(&config.node, listen, config.secret.clone())
        .serve::<NodeService, NodeCall, _>("owl.node");
    let dist = Dist::new(node, dist).map_err(|e| format!("distribution: {e}"))?;
    cluster.publish(DIST_KEY, dist.local_addr());
    Ok(dist)
}

/// The node service, registered as [`NODE_SERVICE`].
pub(crate) fn child_spec(services: Services, answer: Answerer) -> ChildSpec {
    ChildSpec::worker(NODE_SERVICE, move |args: StartArgs| {
        let service = NodeService {
            services: services.clone(),
            answer,
        };
        async move {
            let opts = SpawnOptions::new().label("node service");
            owl_runtime::server::start_link_named(&args, Some(NODE_SERVICE), service, opts).await
        }
    })
}

/// Connects distribution to every member that is up and has published its
/// address, whenever membership changes.
pub(crate) fn peers_spec(cluster: Cluster, dist: Dist) -> ChildSpec {
    ChildSpec::worker("distribution peers", move |args: StartArgs| {
        let (cluster, dist) = (cluster.clone(), dist.clone());
        async move {
            let opts = SpawnOptions::new().label("distribution peers");
            Ok::<_, ExitReason>(args.spawn_link_opts(opts, move |_| async move {
                let mut changes = cluster.changes();
                loop {
                    for member in cluster.members() {
                        let addr = member.values.get(DIST_KEY).and_then(|a| a.parse().ok());
                        if let (false, MemberState::Up, Some(addr)) =
                            (member.is_self, member.state, addr)
                            && !dist.is_connected(&member.name)
                        {
                            dist.connect(&member.name, addr);
                        }
                    }
                    // A change, or a second: a dial that failed is retried.
                    let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
                }
            }))
        }
    })
}
