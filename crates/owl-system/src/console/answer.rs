//! What a console command answers, as data: it prints as text for people
//! (`Display`) and serializes for scripts (`--json`, via
//! [`Answer::to_json`]) and for the node that sent the command (`on NODE`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::load::NodeLoad;
use crate::operator::{ModuleView, ProcessDetail, ProcessList, SortKey, Stack, SystemStats};

/// One command's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// `help`, `COMMAND --help`.
    Help(Help),
    /// `ps`.
    Processes(Processes),
    /// `top`.
    Top(Top),
    /// `info`.
    Info(ProcessDetail),
    /// `stack`.
    Stack(StackView),
    /// `trace`.
    Trace(TraceView),
    /// `kill`.
    Killed(Killed),
    /// `kill-all`.
    KilledAll(KilledAll),
    /// `tree`.
    Tree(TreeView),
    /// `modules`.
    Modules(Modules),
    /// `upgrade`.
    Upgraded(Upgraded),
    /// `budget`.
    Budget(BudgetView),
    /// `schedulers`.
    Schedulers(Schedulers),
    /// `load`.
    Load(LoadView),
    /// `nodes`.
    Nodes(Nodes),
    /// `on NODE …`: another node's answer.
    On(OnNode),
    /// `chaos`.
    Chaos(ChaosView),
    /// `board …`.
    Board(BoardView),
    /// `stats`.
    Stats(SystemStats),
    /// `login-link`.
    LoginLink(LoginLink),
}

impl Answer {
    /// The answer as a script reads it: its own fields, without the name
    /// of its kind.
    pub fn to_json(&self) -> serde_json::Value {
        fn value<T: Serialize>(v: &T) -> serde_json::Value {
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
        }
        match self {
            Answer::Help(a) => value(a),
            Answer::Processes(a) => value(a),
            Answer::Top(a) => value(a),
            Answer::Info(a) => value(a),
            Answer::Stack(a) => value(a),
            Answer::Trace(a) => value(a),
            Answer::Killed(a) => value(a),
            Answer::KilledAll(a) => value(a),
            Answer::Tree(a) => value(a),
            Answer::Modules(a) => value(a),
            Answer::Upgraded(a) => value(a),
            Answer::Budget(a) => value(a),
            Answer::Schedulers(a) => value(a),
            Answer::Load(a) => value(a),
            Answer::Nodes(a) => value(a),
            Answer::On(a) => serde_json::json!({"node": a.node, "answer": a.answer.to_json()}),
            Answer::Chaos(a) => value(a),
            Answer::Board(a) => a.to_json(),
            Answer::Stats(a) => value(a),
            Answer::LoginLink(a) => value(a),
        }
    }
}

/// Help text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Help {
    /// The text.
    pub help: String,
}

/// A process list, in an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Processes {
    /// The order.
    pub sort: SortKey,
    /// The list.
    #[serde(flatten)]
    pub list: ProcessList,
}

/// One row of `top`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    /// Its pid number.
    pub id: u64,
    /// CPU share over the interval, in % of one scheduler.
    pub cpu_share: f64,
    /// CPU time over the interval, in milliseconds.
    pub cpu_ms: f64,
    /// Reductions over the interval.
    pub reductions: u64,
    /// Which schedulers run it.
    #[serde(default)]
    pub priority: crate::operator::Priority,
    /// Its name or label (`(ended)` if it ended meanwhile).
    pub label: String,
    /// What it is doing now.
    pub current_activity: String,
}

/// The busiest processes over an interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Top {
    /// The interval, in seconds.
    pub seconds: f64,
    /// Busiest first.
    pub top: Vec<TopRow>,
}

/// Sandboxed (a guest's stack) or native (an activity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A WebAssembly guest.
    Sandboxed,
    /// Native Rust.
    Native,
}

/// A process's stack, or what a native one is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackView {
    /// Its pid number.
    pub id: u64,
    /// What could be seen.
    pub stack: Stack,
}

/// One traced event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceEventView {
    /// When, in milliseconds since the trace started.
    pub at_ms: f64,
    /// A message's direction: `in` or `out` (native processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The other side of a message (`outside` for code outside processes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// A message's Rust type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// A guest function's depth in the stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// A guest function entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// What a process did for a while.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceView {
    /// Its pid number.
    pub id: u64,
    /// Sandboxed (function entries) or native (messages).
    pub kind: Kind,
    /// How long it was watched, in seconds.
    pub seconds: f64,
    /// A guest's stack samples taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<u32>,
    /// What happened, in order.
    pub events: Vec<TraceEventView>,
    /// A guest's functions, the most samples running first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<FunctionShareView>,
}

/// One function of a guest's trace profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionShareView {
    /// `module!function`.
    pub function: String,
    /// Samples with it running (innermost).
    pub running: u32,
    /// Samples with it on the stack.
    pub on_stack: u32,
}

/// An exit signal sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Killed {
    /// The process.
    pub id: u64,
    /// The reason sent.
    pub reason: String,
}

/// A module's processes killed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KilledAll {
    /// The module.
    pub module: String,
    /// How many.
    pub killed: usize,
}

/// One node of the supervision tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeView {
    /// The child id (the root's is its label).
    pub id: String,
    /// Its pid number, while it runs.
    pub pid: Option<u64>,
    /// Its label.
    pub label: String,
    /// `supervisor` or `worker`.
    pub kind: String,
    /// A supervisor's children (the first
    /// [`TreeNode::READ_CHILDREN`](owl_runtime::supervisor::TreeNode::READ_CHILDREN)).
    pub children: Vec<TreeView>,
    /// A supervisor's children beyond those listed, not read.
    #[serde(default)]
    pub unlisted: u64,
}

impl TreeView {
    /// All its children, listed or not.
    pub fn child_count(&self) -> u64 {
        self.children.len() as u64 + self.unlisted
    }
}

impl From<&owl_runtime::supervisor::TreeNode> for TreeView {
    fn from(node: &owl_runtime::supervisor::TreeNode) -> TreeView {
        TreeView {
            id: node.id.clone(),
            pid: node.pid.as_ref().map(|p| p.id().0),
            label: node.label.clone(),
            kind: match node.kind {
                owl_runtime::supervisor::ChildKind::Supervisor => "supervisor",
                owl_runtime::supervisor::ChildKind::Worker => "worker",
            }
            .into(),
            children: node.children.iter().map(TreeView::from).collect(),
            unlisted: node.unlisted as u64,
        }
    }
}

/// Loaded guest modules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Modules {
    /// Each module.
    pub modules: Vec<ModuleView>,
}

/// A module upgraded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgraded {
    /// The module.
    pub module: String,
    /// The file it came from.
    pub file: String,
    /// Its new current version.
    pub version: u32,
    /// Processes still running older versions.
    pub old_running: usize,
    /// Whether older versions were purged.
    pub purged: bool,
    /// Processes killed by the purge.
    pub killed: usize,
}

/// A module's CPU budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// The module.
    pub module: String,
    /// Seconds of CPU per process, if a budget is set.
    pub cpu_budget_s: Option<f64>,
}

/// Schedulers online.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedulers {
    /// Online now.
    pub online: usize,
    /// Scheduler threads.
    pub schedulers: usize,
}

/// Load control's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadView {
    /// The target (the cluster's, in a cluster).
    pub target: u64,
    /// This node's share.
    pub share: u64,
    /// Whether the node is in a cluster.
    pub clustered: bool,
    /// Workers running.
    pub workers: u64,
    /// Successful jobs per second.
    pub jobs_per_s: f64,
    /// Utilization (0–1).
    pub utilization: f64,
}

/// One node as `nodes` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRow {
    /// Its load figures.
    #[serde(flatten)]
    pub load: NodeLoad,
    /// Its gossip address.
    pub gossip: Option<String>,
    /// The web address it advertises.
    pub http: Option<String>,
}

/// The cluster's nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nodes {
    /// The cluster's id, `None` outside a cluster.
    pub cluster: Option<String>,
    /// The load target.
    pub target: u64,
    /// Every node known.
    pub nodes: Vec<NodeRow>,
}

/// Another node's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnNode {
    /// The node.
    pub node: String,
    /// Its answer.
    pub answer: Box<Answer>,
}

/// What a chaos run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChaosView {
    /// How long, in seconds.
    pub seconds: f64,
    /// Kills per second asked for.
    pub rate: f64,
    /// Kills made.
    pub kills: u64,
    /// Kills by label.
    pub by_label: std::collections::BTreeMap<String, u64>,
    /// Whether the tree came back whole.
    pub healed: bool,
    /// How long after the last kill, in milliseconds.
    pub healed_ms: Option<f64>,
    /// Registered processes still missing.
    pub names_missing: Vec<String>,
    /// Background job workers before the run, and at its end.
    #[serde(default)]
    pub workers_before: usize,
    /// See `workers_before`.
    #[serde(default)]
    pub workers_after: usize,
    /// Processes before the run.
    pub processes_before: usize,
    /// Processes after it healed (or gave up waiting).
    pub processes_after: usize,
}

/// A topic's post count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCount {
    /// The topic.
    pub topic: String,
    /// Its posts.
    pub posts: u64,
}

/// A post as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostView {
    /// Its id.
    pub id: i64,
    /// Who wrote it.
    pub author: String,
    /// What it says.
    pub text: String,
    /// When it was committed, Unix milliseconds.
    pub inserted_at_ms: i64,
}

/// What a `board` command did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoardView {
    /// Posts per topic.
    Topics(Vec<TopicCount>),
    /// The newest posts of a topic.
    Posts {
        /// The topic.
        topic: String,
        /// Newest first.
        posts: Vec<PostView>,
    },
    /// A post deleted.
    Deleted(i64),
    /// A topic emptied.
    Reset {
        /// The topic.
        topic: String,
        /// Posts removed.
        removed: usize,
    },
    /// Whether the board refuses writes now.
    ReadOnly(bool),
}

impl BoardView {
    fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            BoardView::Topics(topics) => json!({ "topics": topics }),
            BoardView::Posts { topic, posts } => json!({ "topic": topic, "posts": posts }),
            BoardView::Deleted(id) => json!({ "deleted": id }),
            BoardView::Reset { topic, removed } => json!({ "topic": topic, "removed": removed }),
            BoardView::ReadOnly(on) => json!({ "read_only": on }),
        }
    }
}

/// A one-time login link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLink {
    /// The path to open on the node's web address.
    pub path: String,
    /// How long it is good for, in seconds.
    pub valid_s: u64,
}

/// Text at most `n` characters long, with `…` where it was cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let head: String = s.chars().take(n - 1).collect();
        format!("{head}…")
    }
}

fn pid(id: u64) -> owl_runtime::PidId {
    owl_runtime::PidId(id)
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Help(h) => f.write_str(&h.help),
            Answer::Processes(p) => {
                writeln!(
                    f,
                    "{:<14} {:<24} {:>7} {:>12} {:>10} {:>6}  ACTIVITY",
                    "PID", "NAME/LABEL", "CPU %", "REDUCTIONS", "MEMORY", "QUEUE"
                )?;
                for r in &p.list.processes {
                    writeln!(
                        f,
                        "{:<14} {:<24} {:>7.1} {:>12} {:>10} {:>6}  {}",
                        pid(r.id).to_string(),
                        clip(r.name_or_label(), 24),
                        r.cpu_pct,
                        r.reductions,
                        r.memory_bytes,
                        r.queue,
                        r.activity
                    )?;
                }
                Ok(())
            }
            Answer::Top(t) => {
                writeln!(
                    f,
                    "top over {} s (CPU share in % of one scheduler)",
                    t.seconds
                )?;
                writeln!(
                    f,
                    "{:<14} {:>7} {:>12} {:<8} {:<24} ACTIVITY",
                    "PID", "CPU %", "REDUCTIONS", "PRIORITY", "NAME/LABEL"
                )?;
                for e in &t.top {
                    writeln!(
                        f,
                        "{:<14} {:>7.1} {:>12} {:<8} {:<24} {}",
                        pid(e.id).to_string(),
                        e.cpu_share,
                        e.reductions,
                        e.priority.as_str(),
                        clip(&e.label, 24),
                        e.current_activity
                    )?;
                }
                Ok(())
            }
            Answer::Info(d) => {
                let r = &d.row;
                let list = |v: &[crate::operator::Neighbour]| {
                    v.iter()
                        .map(|n| pid(n.id).to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let rows: [(&str, String); 18] = [
                    ("pid", pid(r.id).to_string()),
                    ("name", r.name.clone().unwrap_or_else(|| "—".into())),
                    ("label", r.label.clone()),
                    ("state", r.state.to_string()),
                    ("priority", r.priority.to_string()),
                    ("current activity", r.activity.clone()),
                    (
                        "parent",
                        d.parent
                            .as_ref()
                            .map_or("—".into(), |p| pid(p.id).to_string()),
                    ),
                    ("uptime", format!("{:.1} s", d.uptime_ms as f64 / 1e3)),
                    ("CPU time", format!("{:.3} ms", r.cpu_total_us as f64 / 1e3)),
                    ("reductions", r.reductions.to_string()),
                    ("memory", format!("{} bytes", r.memory_bytes)),
                    (
                        "memory limit",
                        d.memory_limit_bytes
                            .map_or("—".into(), |b| format!("{b} bytes")),
                    ),
                    ("message queue", r.queue.to_string()),
                    ("traps exits", d.trap_exit.to_string()),
                    ("long polls", d.long_polls.to_string()),
                    ("links", list(&d.links)),
                    ("monitors", list(&d.monitors)),
                    ("monitored by", list(&d.monitored_by)),
                ];
                for (k, v) in rows {
                    writeln!(f, "{k:<18} {v}")?;
                }
                Ok(())
            }
            Answer::Stack(s) => match &s.stack {
                Stack::Guest(frames) => {
                    for (i, frame) in frames.iter().enumerate() {
                        writeln!(f, "{i:>3}  {frame}")?;
                    }
                    Ok(())
                }
                Stack::GuestBusy => writeln!(
                    f,
                    "{} is sandboxed, but its threads were too busy to show its stack \
                     within a second; ask again",
                    pid(s.id)
                ),
                Stack::Native(activity) => writeln!(
                    f,
                    "{} is a native process (no stack to capture); current activity: {activity}",
                    pid(s.id)
                ),
            },
            Answer::Trace(t) => {
                match t.kind {
                    Kind::Native => writeln!(
                        f,
                        "{}: messages over {} s ({} events)",
                        pid(t.id),
                        t.seconds,
                        t.events.len()
                    )?,
                    Kind::Sandboxed => writeln!(
                        f,
                        "{}: guest function entries over {:.2} s ({} stack samples; calls shorter than a sample are not seen)",
                        pid(t.id),
                        t.seconds,
                        t.samples.unwrap_or(0)
                    )?,
                }
                if !t.profile.is_empty() {
                    let samples = t.samples.unwrap_or(0).max(1) as f64;
                    writeln!(f, "where its time went (% of samples):")?;
                    for p in &t.profile {
                        writeln!(
                            f,
                            "  {:>5.1}% running  {:>5.1}% on the stack  {}",
                            100.0 * f64::from(p.running) / samples,
                            100.0 * f64::from(p.on_stack) / samples,
                            p.function
                        )?;
                    }
                    writeln!(f, "function entries seen:")?;
                }
                for e in &t.events {
                    match (&e.function, &e.direction) {
                        (Some(function), _) => writeln!(
                            f,
                            "{:>9.3} ms  {}{function}",
                            e.at_ms,
                            "  ".repeat(e.depth.unwrap_or(0))
                        )?,
                        (None, direction) => writeln!(
                            f,
                            "{:>9.3} ms  {} {:<14} {}",
                            e.at_ms,
                            if direction.as_deref() == Some("in") {
                                "<-"
                            } else {
                                "->"
                            },
                            e.peer.as_deref().unwrap_or(""),
                            e.message_type.as_deref().unwrap_or("")
                        )?,
                    }
                }
                Ok(())
            }
            Answer::Killed(k) => writeln!(f, "sent exit signal {} to {}", k.reason, pid(k.id)),
            Answer::KilledAll(k) => {
                writeln!(f, "killed {} process(es) of {}", k.killed, k.module)
            }
            Answer::Tree(t) => {
                fn walk(
                    f: &mut fmt::Formatter<'_>,
                    node: &TreeView,
                    indent: &str,
                    branch: &str,
                ) -> fmt::Result {
                    let shown_pid = match node.pid {
                        Some(p) if pid(p).to_string() == node.id => String::new(),
                        Some(p) => format!(" {}", pid(p)),
                        None => " -".into(),
                    };
                    let kind = if node.kind == "worker" && !node.label.is_empty() {
                        format!("worker, {}", node.label)
                    } else {
                        node.kind.clone()
                    };
                    writeln!(f, "{indent}{branch}{}{shown_pid} ({kind})", node.id)?;
                    let inner = match branch {
                        "" => indent.to_string(),
                        "└── " => format!("{indent}    "),
                        _ => format!("{indent}│   "),
                    };
                    const SHOWN: usize = owl_runtime::supervisor::TreeNode::SHOWN_CHILDREN;
                    let n = node.child_count() as usize;
                    for (i, child) in node.children.iter().take(SHOWN).enumerate() {
                        walk(
                            f,
                            child,
                            &inner,
                            if i + 1 == n {
                                "└── "
                            } else {
                                "├── "
                            },
                        )?;
                    }
                    if n > SHOWN {
                        writeln!(f, "{inner}└── … {} more", n - SHOWN)?;
                    }
                    Ok(())
                }
                walk(f, t, "", "")
            }
            Answer::Modules(m) => {
                for m in &m.modules {
                    let versions: Vec<String> = m
                        .versions
                        .iter()
                        .map(|v| format!("v{}: {} running", v.version, v.running))
                        .collect();
                    let budget = m
                        .cpu_budget_s
                        .map_or("none".to_string(), |b| format!("{b} s per process"));
                    let instances = match m.reuses_instances {
                        true => format!("reused ({} idle)", m.idle_instances),
                        false => "fresh for each call".to_string(),
                    };
                    writeln!(
                        f,
                        "{}  current v{}  [{}]  calls: {} started, {} returned, {} crashed, {} killed\n    exports: {}\n    CPU budget: {budget}\n    instances: {instances}",
                        m.name,
                        m.current,
                        versions.join(", "),
                        m.calls.started,
                        m.calls.returned,
                        m.calls.crashed,
                        m.calls.killed,
                        m.functions.join(", ")
                    )?;
                }
                Ok(())
            }
            Answer::Upgraded(u) if u.purged => writeln!(
                f,
                "{}: version {} loaded from {}; purged older versions, killing {} process(es)",
                u.module, u.version, u.file, u.killed
            ),
            Answer::Upgraded(u) => writeln!(
                f,
                "{}: version {} loaded from {}; new processes use it, {} process(es) still run older versions",
                u.module, u.version, u.file, u.old_running
            ),
            Answer::Budget(b) => match b.cpu_budget_s {
                Some(s) => writeln!(
                    f,
                    "{}: CPU budget {s} s per process; past it a process ends with cpu_limit",
                    b.module
                ),
                None => writeln!(f, "{}: no CPU budget", b.module),
            },
            Answer::Schedulers(s) => writeln!(
                f,
                "schedulers online: {} of {} (the cores all of owl computes on)",
                s.online, s.schedulers
            ),
            Answer::Load(l) => {
                let share = if l.clustered {
                    format!(" for the cluster, {} on this node", l.share)
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "target {} jobs{share}; {} workers running; {:.0} jobs/s; utilization {:.0}%",
                    l.target,
                    l.workers,
                    l.jobs_per_s,
                    l.utilization * 100.0
                )
            }
            Answer::Nodes(n) => {
                match &n.cluster {
                    Some(id) => writeln!(
                        f,
                        "cluster {id}, {} of {} node(s) up, target {} jobs",
                        n.nodes
                            .iter()
                            .filter(|r| r.load.state == crate::load::NodeState::Up)
                            .count(),
                        n.nodes.len(),
                        n.target
                    )?,
                    None => writeln!(
                        f,
                        "not in a cluster (start with --cluster ADDR:PORT to join one)"
                    )?,
                }
                writeln!(
                    f,
                    "{:<24} {:<5} {:>10} {:>10} {:>10}  GOSSIP",
                    "NODE", "STATE", "SHARE", "WORKERS", "JOBS/S"
                )?;
                for r in &n.nodes {
                    let l = &r.load;
                    let name = if l.is_self {
                        format!("{} (this)", l.name)
                    } else {
                        l.name.clone()
                    };
                    writeln!(
                        f,
                        "{name:<24} {:<5} {:>10} {:>10} {:>10.0}  {}",
                        l.state.to_string(),
                        l.share,
                        l.workers,
                        l.jobs_per_s,
                        r.gossip.as_deref().unwrap_or("-")
                    )?;
                }
                Ok(())
            }
            Answer::On(on) => write!(f, "on node {}:\n{}", on.node, on.answer),
            Answer::Chaos(c) => {
                writeln!(
                    f,
                    "chaos for {:.0} s at {}/s: {} kill(s)",
                    c.seconds, c.rate, c.kills
                )?;
                for (label, n) in &c.by_label {
                    writeln!(f, "  {n:>6}  {label}")?;
                }
                match c.healed_ms {
                    Some(ms) if c.healed => writeln!(
                        f,
                        "healed: every registered process and all {} load workers back {ms:.0} ms after the last kill",
                        c.workers_before
                    )?,
                    _ => {
                        let mut missing: Vec<String> = c.names_missing.clone();
                        if c.workers_after < c.workers_before {
                            missing.push(format!(
                                "{} load worker(s) ({} of {})",
                                c.workers_before - c.workers_after,
                                c.workers_after,
                                c.workers_before
                            ));
                        }
                        writeln!(f, "NOT healed: still missing {}", missing.join(", "))?
                    }
                }
                writeln!(
                    f,
                    "processes: {} before, {} after",
                    c.processes_before, c.processes_after
                )
            }
            Answer::Board(b) => match b {
                BoardView::Topics(topics) => {
                    for t in topics {
                        writeln!(f, "{:<20} {} post(s)", t.topic, t.posts)?;
                    }
                    Ok(())
                }
                BoardView::Posts { posts, .. } => {
                    for p in posts {
                        writeln!(
                            f,
                            "#{:<6} {:<20} {}",
                            p.id,
                            clip(&p.author, 20),
                            clip(&p.text.replace('\n', " "), 60)
                        )?;
                    }
                    Ok(())
                }
                BoardView::Deleted(id) => writeln!(f, "post #{id} deleted"),
                BoardView::Reset { topic, removed } => {
                    writeln!(f, "{topic}: {removed} post(s) removed")
                }
                BoardView::ReadOnly(true) => writeln!(
                    f,
                    "the board refuses new posts (a setting of its database: every node \
                     that shares it, until `board readonly off`)"
                ),
                BoardView::ReadOnly(false) => writeln!(f, "the board accepts new posts"),
            },
            Answer::Stats(s) => {
                let per: Vec<String> = s
                    .utilization_per_scheduler
                    .iter()
                    .map(|u| format!("{:.0}%", u * 100.0))
                    .collect();
                writeln!(f, "uptime        {:.1} s", s.uptime_s)?;
                writeln!(
                    f,
                    "processes     {} (spawned {}, exited {}, crashed {})",
                    s.processes, s.spawned, s.exited, s.crashed
                )?;
                writeln!(
                    f,
                    "memory (RSS)  {:.1} MiB",
                    s.memory_rss_bytes as f64 / (1 << 20) as f64
                )?;
                writeln!(
                    f,
                    "schedulers    {} online of {}; utilization {:.0}% of the cores online [schedulers {}]",
                    s.schedulers_online,
                    s.schedulers,
                    s.utilization * 100.0,
                    per.join(", ")
                )?;
                writeln!(
                    f,
                    "guest threads {} thread(s); utilization {:.0}%",
                    s.guest_threads,
                    s.guest_utilization * 100.0
                )?;
                writeln!(f, "by kind:")?;
                for l in &s.by_label {
                    writeln!(f, "  {:>8}  {}", l.count, l.label)?;
                }
                Ok(())
            }
            Answer::LoginLink(l) => writeln!(
                f,
                "open this on the node's web address within {} minutes (it works once):\n  {}",
                l.valid_s / 60,
                l.path
            ),
        }
    }
}
