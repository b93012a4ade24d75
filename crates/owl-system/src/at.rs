//! One handle for any node: the operator's calls — the process list, one
//! process, kill, the node's figures, a console command — made on this
//! node or on another one of the cluster, with the same types either way.
//!
//! ```no_run
//! # async fn example(services: owl_system::Services) {
//! use owl_system::at::At;
//! use owl_system::operator::ListQuery;
//! let here = services.at(At::Local).processes(ListQuery::default()).await.unwrap();
//! let there = services.at(At::node("b")).processes(ListQuery::default()).await.unwrap();
//! // Both are `ProcessList`s: rendered by one piece of code.
//! # let _ = (here, there);
//! # }
//! ```
//!
//! Another node is asked with a [`NodeRequest`] and answers a
//! [`NodeReply`]; how the two travel is the transport's business
//! (distribution, see [`node_service`](crate::node_service)), not the
//! callers'. The node that receives one answers it with
//! [`serve`].

use serde::{Deserialize, Serialize};

use crate::Services;
use crate::console::{self, Answer, Command, ConsoleError, OnNode, Origin, Parsed};
use crate::operator::{
    ListQuery, OperatorError, ProcessDetail, ProcessList, SystemPoint, SystemStats,
};

/// Which node a call is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum At {
    /// The node making the call.
    Local,
    /// Another node of the cluster, by name.
    Node(String),
}

impl At {
    /// The node named `name`.
    pub fn node(name: &str) -> At {
        At::Node(name.to_string())
    }

    /// The node a page or a console names: empty, or this node's own name,
    /// is this node; another name must be a valid node name.
    pub fn choose(services: &Services, name: &str) -> Result<At, OperatorError> {
        let name = name.trim();
        let own = services.cluster.as_ref().map(|c| c.node_name());
        if name.is_empty() || Some(name) == own {
            return Ok(At::Local);
        }
        if services.cluster.is_none() {
            return Err(OperatorError::Node("this node is not in a cluster".into()));
        }
        owl_cluster::check_node_name(name).map_err(|e| OperatorError::Node(e.to_string()))?;
        Ok(At::Node(name.to_string()))
    }

    /// The other node's name, if this is one.
    pub fn name(&self) -> Option<&str> {
        match self {
            At::Local => None,
            At::Node(name) => Some(name),
        }
    }
}

pub use crate::node_service::{NodeReply, NodeRequest};

/// Answers a request another node sent (whatever carried it).
pub async fn serve(services: &Services, request: NodeRequest) -> NodeReply {
    let handle = services.at(At::Local);
    let refused = |e: &dyn std::fmt::Display| NodeReply::Refused(e.to_string());
    match request {
        NodeRequest::Processes(query) => match handle.processes(query).await {
            Ok(list) => NodeReply::Processes(list),
            Err(e) => refused(&e),
        },
        NodeRequest::Process(id) => match handle.process(id).await {
            Ok(detail) => NodeReply::Process(Box::new(detail)),
            Err(e) => refused(&e),
        },
        NodeRequest::Kill(id) => match handle.kill(id).await {
            Ok(()) => NodeReply::Killed,
            Err(e) => refused(&e),
        },
        NodeRequest::Stats => match handle.stats().await {
            Ok(stats) => NodeReply::Stats(Box::new(stats)),
            Err(e) => refused(&e),
        },
        NodeRequest::History => match handle.history().await {
            Ok(points) => NodeReply::History(points),
            Err(e) => refused(&e),
        },
        // A node never sends a command on again.
        NodeRequest::Console(Command::On { .. }) => {
            refused(&"`on` cannot be sent on from another node")
        }
        NodeRequest::Console(command) => {
            let shown = format!("{command:?}").chars().take(200).collect::<String>();
            tracing::info!(target: "owl::console", command = shown, "console command from another node");
            match console::run(services, command, &Origin::default()).await {
                Ok(answer) => NodeReply::Console(Box::new(answer)),
                Err(e) => refused(&e),
            }
        }
    }
}

/// The operator's calls on one node (see [`Services::at`]).
#[derive(Clone, Debug)]
pub struct NodeHandle {
    services: Services,
    at: At,
}

impl Services {
    /// This node's figures, with its newest point of history, its board's
    /// store and the disk its data is on (what [`NodeHandle::stats`]
    /// answers for this node, without waiting for anything).
    pub fn stats(&self) -> SystemStats {
        let mut stats = self.operator.stats();
        stats.board = Some(self.board.figures());
        stats.data_disk = crate::host::Disk::of(&self.data_dir);
        stats
    }

    /// The operator's handle on `at`: this node, or another node of the
    /// cluster — the same calls, the same types.
    pub fn at(&self, at: At) -> NodeHandle {
        NodeHandle {
            services: self.clone(),
            at,
        }
    }
}

impl NodeHandle {
    /// Which node it calls.
    pub fn at(&self) -> &At {
        &self.at
    }

    async fn ask(&self, node: &str, request: NodeRequest) -> Result<NodeReply, OperatorError> {
        use crate::node_service::{NODE_CALL_TIMEOUT, NODE_SERVICE, NodeCall, NodeService};
        // (The node service's module does not import this one: it is given
        // `serve` when the system starts.)
        let dist = self
            .services
            .dist
            .as_ref()
            .ok_or_else(|| OperatorError::Node("this node is not in a cluster".into()))?;
        let member = self.services.cluster.as_ref().and_then(|c| c.member(node));
        let Some(member) = member else {
            return Err(OperatorError::Node(format!(
                "no node named {node:?} in the cluster"
            )));
        };
        if member.state == owl_cluster::MemberState::Down {
            return Err(OperatorError::Node(format!("node {node} is down")));
        }
        if !dist.is_connected(node) {
            // Gossip may know the node a moment before distribution does:
            // dial it now; the call waits in its queue until it is up.
            let addr = member.values.get(crate::node_service::DIST_KEY);
            let Some(addr) = addr.and_then(|a| a.parse().ok()) else {
                return Err(OperatorError::Node(format!(
                    "node {node} has not told its distribution address yet"
                )));
            };
            dist.connect(node, addr);
        }
        let body = serde_json::to_string(&request)
            .map_err(|e| OperatorError::Node(format!("cannot say it: {e}")))?;
        let to = owl_cluster::dist::Dest::named(NODE_SERVICE, node);
        let answer = dist
            .call::<NodeService, _, _>(to, NodeCall(body), NODE_CALL_TIMEOUT)
            .await
            .map_err(|e| match e {
                owl_runtime::CallError::Exited(owl_runtime::ExitReason::NoConnection) => {
                    OperatorError::Node(format!("node {node}: not connected"))
                }
                e => OperatorError::Node(format!("node {node}: {e}")),
            })?;
        let reply: NodeReply = serde_json::from_str(&answer)
            .map_err(|e| OperatorError::Node(format!("node {node} answered unexpectedly: {e}")))?;
        match reply {
            NodeReply::Refused(why) => Err(OperatorError::Node(format!("node {node}: {why}"))),
            reply => Ok(reply),
        }
    }

    fn unexpected(node: &str) -> OperatorError {
        OperatorError::Node(format!("node {node} answered another question"))
    }

    /// The processes `query` asks for.
    pub async fn processes(&self, query: ListQuery) -> Result<ProcessList, OperatorError> {
        match &self.at {
            At::Local => Ok(self.services.operator.processes(&query).await),
            At::Node(node) => match self.ask(node, NodeRequest::Processes(query)).await? {
                NodeReply::Processes(list) => Ok(list),
                _ => Err(Self::unexpected(node)),
            },
        }
    }

    /// Everything about process `<0.id.0>` of that node.
    pub async fn process(&self, id: u64) -> Result<ProcessDetail, OperatorError> {
        match &self.at {
            At::Local => self.services.operator.process(owl_runtime::PidId(id)).await,
            At::Node(node) => match self.ask(node, NodeRequest::Process(id)).await? {
                NodeReply::Process(detail) => Ok(*detail),
                _ => Err(Self::unexpected(node)),
            },
        }
    }

    /// Kills process `<0.id.0>` of that node (untrappable). The node
    /// itself (`<0.0.0>`) cannot be killed this way.
    pub async fn kill(&self, id: u64) -> Result<(), OperatorError> {
        match &self.at {
            At::Local => {
                crate::operator::refuse_the_node(owl_runtime::PidId(id))?;
                let operator = &self.services.operator;
                let pid = operator
                    .node()
                    .lookup(owl_runtime::PidId(id))
                    .ok_or_else(|| {
                        OperatorError::NoProcess(format!(
                            "{} has ended (or never existed)",
                            owl_runtime::PidId(id)
                        ))
                    })?;
                operator.kill(&pid, owl_runtime::ExitReason::Kill)
            }
            At::Node(node) => match self.ask(node, NodeRequest::Kill(id)).await? {
                NodeReply::Killed => Ok(()),
                _ => Err(Self::unexpected(node)),
            },
        }
    }

    /// That node's figures, with its newest point of history, its board's
    /// store and the disk its data is on.
    pub async fn stats(&self) -> Result<SystemStats, OperatorError> {
        match &self.at {
            At::Local => Ok(self.services.stats()),
            At::Node(node) => match self.ask(node, NodeRequest::Stats).await? {
                NodeReply::Stats(stats) => Ok(*stats),
                _ => Err(Self::unexpected(node)),
            },
        }
    }

    /// That node's figures of the last five minutes, a point a second,
    /// oldest first.
    pub async fn history(&self) -> Result<Vec<SystemPoint>, OperatorError> {
        match &self.at {
            At::Local => Ok(self.services.operator.history().points()),
            At::Node(node) => match self.ask(node, NodeRequest::History).await? {
                NodeReply::History(points) => Ok(points),
                _ => Err(Self::unexpected(node)),
            },
        }
    }

    /// Runs a console command on that node. `on NODE …` (typed here) reads
    /// its inner words and sends that command on to the node it names.
    pub async fn console(&self, command: Command, origin: &Origin) -> Result<Answer, ConsoleError> {
        match (&self.at, command) {
            (At::Local, Command::On { node, command }) => {
                let inner = match console::parse(&command).map_err(ConsoleError)? {
                    Parsed::Command(Command::On { .. }) => {
                        return Err(ConsoleError("`on` inside `on` goes nowhere".into()));
                    }
                    Parsed::Command(inner) => inner,
                    Parsed::Help(help) => {
                        return Ok(Answer::Help(console::Help { help }));
                    }
                };
                let at =
                    At::choose(&self.services, &node).map_err(|e| ConsoleError(e.to_string()))?;
                let answer = Box::pin(self.services.at(at).console(inner, origin)).await?;
                Ok(Answer::On(OnNode {
                    node,
                    answer: Box::new(answer),
                }))
            }
            (At::Local, command) => console::run(&self.services, command, origin).await,
            (At::Node(node), command) => {
                match self
                    .ask(node, NodeRequest::Console(command))
                    .await
                    .map_err(|e| ConsoleError(e.to_string()))?
                {
                    NodeReply::Console(answer) => Ok(*answer),
                    _ => Err(ConsoleError(Self::unexpected(node).to_string())),
                }
            }
        }
    }
}
