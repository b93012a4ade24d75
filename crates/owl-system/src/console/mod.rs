//! The console's command set, in the domain: each command is data
//! ([`Command`], read from words by [`parse`]), runs against the node's
//! services ([`run`]) and answers data ([`Answer`]: text for people, JSON
//! for scripts). The `owl console` client and the node's socket are the
//! binary's; the same commands reach another node of the cluster through
//! [`crate::at`].
//!
//! ```no_run
//! # async fn example(services: owl_system::Services) {
//! use owl_system::console::{self, Origin, Parsed};
//! let words: Vec<String> = ["kill-all", "math"].map(String::from).into();
//! if let Ok(Parsed::Command(command)) = console::parse(&words) {
//!     let answer = console::run(&services, command, &Origin::default()).await;
//!     println!("{}", answer.unwrap());
//! }
//! # }
//! ```

mod answer;
mod command;

use std::path::PathBuf;
use std::time::Duration;

use owl_runtime::{ExitReason, Pid};
use serde::{Deserialize, Serialize};

pub use answer::{
    Answer, BoardView, BudgetView, ChaosView, FunctionShareView, Help, Killed, KilledAll, Kind,
    LoadView, LoginLink, Modules, NodeRow, Nodes, OnNode, PostView, Processes, Schedulers,
    StackView, Top, TopRow, TopicCount, TraceEventView, TraceView, TreeView, Upgraded,
};
pub use command::{BoardAction, Budget, Command, Parsed, help, parse};

use crate::Services;
use crate::operator::{ListQuery, Operator, Trace};

/// Why a command did nothing: said to whoever typed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleError(pub String);

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConsoleError {}

/// The errors of the services a command calls read the same in a console.
macro_rules! said_as_is {
    ($($error:ty),*) => {$(
        impl From<$error> for ConsoleError {
            fn from(e: $error) -> ConsoleError {
                ConsoleError(e.to_string())
            }
        }
    )*};
}

said_as_is!(
    crate::operator::OperatorError,
    crate::board::StoreError,
    crate::load::InvalidTarget,
    String
);

/// Where a command comes from: the directory relative file names start
/// from (the console's, not the node's), and the process that asked (which
/// `chaos` spares).
#[derive(Clone, Debug)]
pub struct Origin {
    /// Relative file names start here.
    pub cwd: PathBuf,
    /// The process running the command for the console.
    pub caller: Pid,
}

impl Default for Origin {
    /// A command from another node: files from the node's root, no
    /// caller to spare.
    fn default() -> Self {
        Origin {
            cwd: PathBuf::from("/"),
            caller: Pid::system(),
        }
    }
}

fn no(text: impl Into<String>) -> ConsoleError {
    ConsoleError(text.into())
}

fn resolve(ctx: &Operator, target: &str) -> Result<Pid, ConsoleError> {
    ctx.resolve(target).map_err(|e| no(e.to_string()))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Runs `command` on this node. (`on NODE …` goes through
/// [`crate::at::NodeHandle::console`], which sends the inner command on.)
pub async fn run(
    services: &Services,
    command: Command,
    origin: &Origin,
) -> Result<Answer, ConsoleError> {
    let ctx = &services.operator;
    Ok(match command {
        Command::Ps {
            sort,
            limit,
            filter,
        } => Answer::Processes(Processes {
            sort,
            list: ctx
                .processes(&ListQuery {
                    sort,
                    filter,
                    limit,
                })
                .await,
        }),
        Command::Top { seconds, .. } => top(ctx, seconds).await,
        Command::Info { target } => {
            let pid = resolve(ctx, &target)?;
            Answer::Info(ctx.process(pid.id()).await?)
        }
        Command::Stack { target } => {
            let pid = resolve(ctx, &target)?;
            Answer::Stack(StackView {
                id: pid.id().0,
                stack: ctx.stack(&pid).await?,
            })
        }
        Command::Trace { target, seconds } => trace(ctx, &target, seconds).await?,
        Command::Kill { target, reason } => kill(ctx, &target, reason.as_deref())?,
        Command::KillAll { module } => Answer::KilledAll(KilledAll {
            killed: ctx.kill_all(&module)?,
            module,
        }),
        Command::Tree => Answer::Tree(TreeView::from(&ctx.tree().await?)),
        Command::Modules => Answer::Modules(Modules {
            modules: ctx.modules().into_iter().map(Into::into).collect(),
        }),
        Command::Upgrade {
            module,
            file,
            purge,
        } => {
            let path = origin.cwd.join(&file);
            let done = ctx.upgrade(&module, &path, purge).await?;
            Answer::Upgraded(Upgraded {
                module,
                file: path.display().to_string(),
                version: done.version,
                old_running: done.still_old,
                purged: purge,
                killed: done.killed,
            })
        }
        Command::Budget { module, budget } => {
            match budget {
                Some(Budget::Set(d)) => ctx.set_budget(&module, Some(d))?,
                Some(Budget::Off) => ctx.set_budget(&module, None)?,
                None => {}
            }
            let current = ctx
                .modules()
                .into_iter()
                .find(|m| m.name == module)
                .ok_or_else(|| {
                    no(format!(
                        "no module named {module:?} is loaded (see `modules`)"
                    ))
                })?
                .cpu_budget;
            Answer::Budget(BudgetView {
                module,
                cpu_budget_s: current.map(|b| b.as_secs_f64()),
            })
        }
        Command::Schedulers { n } => {
            let (online, schedulers) = match n {
                Some(n) => ctx.set_schedulers(n)?,
                None => ctx.schedulers(),
            };
            Answer::Schedulers(Schedulers { online, schedulers })
        }
        Command::Load { target } => {
            let load = &services.load;
            if let Some(text) = target {
                let n = crate::load::parse_target(&text)?;
                load.set_target(n)?;
            }
            let latest = load.latest();
            Answer::Load(LoadView {
                target: load.target(),
                share: load.share(),
                clustered: services.cluster.is_some(),
                workers: load.workers(),
                jobs_per_s: latest.jobs_per_s.round(),
                utilization: latest.utilization,
            })
        }
        Command::Nodes => nodes(services),
        Command::On { .. } => {
            return Err(no(
                "`on` is sent on by the node's handle, not run here (a node never forwards twice)",
            ));
        }
        Command::Chaos {
            duration,
            rate,
            supervisors,
        } => {
            let report = ctx
                .chaos(crate::operator::ChaosPlan {
                    duration,
                    rate,
                    supervisors,
                    spare: vec![origin.caller.clone()],
                })
                .await;
            Answer::Chaos(ChaosView {
                seconds: duration.as_secs_f64(),
                rate,
                kills: report.kills,
                by_label: report.by_label,
                healed: report.healed_after.is_some(),
                healed_ms: report.healed_after.map(|d| d.as_secs_f64() * 1e3),
                names_missing: report.names_missing,
                workers_before: report.workers_before,
                workers_after: report.workers_after,
                processes_before: report.processes_before,
                processes_after: report.processes_after,
            })
        }
        Command::Board { action } => Answer::Board(board(services, action).await?),
        Command::Stats => Answer::Stats(ctx.stats()),
        Command::LoginLink => {
            let secret = services.login_links.issue()?;
            Answer::LoginLink(LoginLink {
                path: format!("/login?once={secret}"),
                valid_s: crate::access::LOGIN_LINK_LIFETIME.as_secs(),
            })
        }
    })
}

async fn top(ctx: &Operator, seconds: f64) -> Answer {
    let entries = ctx.top(Duration::from_secs_f64(seconds), 10).await;
    let top = entries
        .into_iter()
        .map(|e| {
            let label = e.name.clone().unwrap_or_else(|| e.label.clone());
            TopRow {
                id: e.pid.id().0,
                cpu_share: (e.cpu_share * 10.0).round() / 10.0,
                cpu_ms: ms(e.cpu_time),
                reductions: e.reductions,
                priority: e.priority.into(),
                label: if label.is_empty() {
                    "(ended)".into()
                } else {
                    label
                },
                current_activity: ctx
                    .info(&e.pid)
                    .map(|i| i.current_activity)
                    .unwrap_or_default(),
            }
        })
        .collect();
    Answer::Top(Top { seconds, top })
}

async fn trace(ctx: &Operator, target: &str, seconds: f64) -> Result<Answer, ConsoleError> {
    let pid = resolve(ctx, target)?;
    let id = pid.id().0;
    Ok(Answer::Trace(
        match ctx.trace(&pid, Duration::from_secs_f64(seconds)).await? {
            Trace::Messages(events) => TraceView {
                id,
                kind: Kind::Native,
                seconds,
                samples: None,
                events: events
                    .iter()
                    .map(|e| TraceEventView {
                        at_ms: ms(e.at),
                        direction: Some(
                            match e.direction {
                                owl_runtime::trace::Direction::In => "in",
                                owl_runtime::trace::Direction::Out => "out",
                            }
                            .into(),
                        ),
                        peer: Some(e.peer.map_or("outside".to_string(), |p| p.to_string())),
                        message_type: Some(e.message_type.to_string()),
                        depth: None,
                        function: None,
                    })
                    .collect(),
                profile: Vec::new(),
            },
            Trace::Guest {
                samples,
                entries,
                profile,
            } => TraceView {
                id,
                kind: Kind::Sandboxed,
                seconds,
                samples: Some(samples),
                events: entries
                    .iter()
                    .map(|e| TraceEventView {
                        at_ms: ms(e.at),
                        direction: None,
                        peer: None,
                        message_type: None,
                        depth: Some(e.depth),
                        function: Some(e.function.clone()),
                    })
                    .collect(),
                profile: profile
                    .into_iter()
                    .map(|p| FunctionShareView {
                        function: p.function,
                        running: p.running,
                        on_stack: p.on_stack,
                    })
                    .collect(),
            },
        },
    ))
}

fn kill(ctx: &Operator, target: &str, reason: Option<&str>) -> Result<Answer, ConsoleError> {
    if let Ok(id) = target.parse::<owl_runtime::PidId>() {
        crate::operator::refuse_the_node(id)?;
    }
    let pid = resolve(ctx, target)?;
    let reason = match reason.unwrap_or("kill") {
        "" => return Err(no("--reason must not be empty")),
        text => text
            .parse::<ExitReason>()
            .unwrap_or_else(|never| match never {}),
    };
    let shown = reason.to_string();
    ctx.kill(&pid, reason)?;
    Ok(Answer::Killed(Killed {
        id: pid.id().0,
        reason: shown,
    }))
}

fn nodes(services: &Services) -> Answer {
    let nodes = services
        .load
        .nodes()
        .into_iter()
        .map(|load| {
            let member = services.cluster.as_ref().and_then(|c| c.member(&load.name));
            NodeRow {
                gossip: member.as_ref().map(|m| m.gossip_addr.to_string()),
                http: member.and_then(|m| m.values.get(owl_cluster::HTTP_KEY).cloned()),
                load,
            }
        })
        .collect();
    Answer::Nodes(Nodes {
        cluster: services
            .cluster
            .as_ref()
            .map(|c| c.secret().cluster_id().to_string()),
        target: services.load.target(),
        nodes,
    })
}

async fn board(services: &Services, action: BoardAction) -> Result<BoardView, ConsoleError> {
    let board = &services.board;
    Ok(match action {
        BoardAction::List { topic: None } => BoardView::Topics(
            board
                .counts()
                .await?
                .into_iter()
                .map(|(topic, posts)| TopicCount {
                    topic: topic.into(),
                    posts,
                })
                .collect(),
        ),
        BoardAction::List { topic: Some(topic) } => {
            if crate::board::Board::topic(&topic).is_none() {
                return Err(no(format!("no topic {topic:?}; `board list` lists them")));
            }
            let posts = board
                .list(&topic, None, 50)
                .await?
                .into_iter()
                .map(|p| PostView {
                    id: p.id,
                    author: p.author,
                    text: p.text,
                    inserted_at_ms: p.inserted_at,
                })
                .collect();
            BoardView::Posts { topic, posts }
        }
        BoardAction::Delete { id } => {
            if !board.delete(&services.node, None, id).await? {
                return Err(no(format!("no post #{id}")));
            }
            BoardView::Deleted(id)
        }
        BoardAction::Reset { topic } => {
            let removed = board.reset(&services.node, &topic).await?;
            BoardView::Reset { topic, removed }
        }
        BoardAction::Readonly { state } => {
            let on = state == "on";
            board.set_read_only(on).await?;
            BoardView::ReadOnly(on)
        }
    })
}
