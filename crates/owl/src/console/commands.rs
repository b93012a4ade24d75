//! The console's commands: parsed with clap from one line, run against the
//! node, answered as text for people and as JSON for scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use owl_runtime::supervisor::{ChildKind, TreeNode};
use owl_runtime::{ExitReason, Pid, ProcessInfo};
use owl_system::Services;
use owl_system::operator::{Operator, SortKey, Stack, Trace};
use serde_json::{Value, json};

/// What a command answers: text for the shell, JSON for `--json`.
pub(crate) struct Answer {
    pub text: String,
    pub json: Value,
}

#[derive(Parser)]
#[command(
    name = "owl console",
    no_binary_name = true,
    disable_version_flag = true,
    help_template = "{all-args}"
)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List processes, most work first
    Ps {
        /// Order: cpu, reductions, memory or mailbox
        #[arg(long, default_value = "cpu")]
        sort: SortKey,
        /// Show at most this many
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only processes whose pid, name, label or activity contains this
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// The 10 processes that did the most work over the last seconds, with their CPU share
    Top {
        #[arg(long, default_value_t = 1.0, value_parser = seconds(0.05, 60.0))]
        seconds: f64,
    },
    /// Everything the process table knows about a process
    Info { target: String },
    /// A sandboxed process's call stack; a native one's current activity
    Stack { target: String },
    /// What a process does for a while: guest function entries, or messages in and out
    Trace {
        target: String,
        #[arg(long, default_value_t = 1.0, value_parser = seconds(0.05, 60.0))]
        seconds: f64,
    },
    /// Kill a process (reason: kill (default), shutdown, normal, or any text)
    Kill {
        target: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Kill every running process of a guest module
    KillAll { module: String },
    /// The supervision tree
    Tree,
    /// Loaded guest modules and their versions
    Modules,
    /// Load a new version of a guest module from a .wat or .wasm file (tried out first)
    Upgrade {
        module: String,
        file: PathBuf,
        /// Also kill the processes still running older versions
        #[arg(long)]
        purge: bool,
    },
    /// Show, set (e.g. 30s, 5m) or remove (off) the CPU budget of each process of a module
    Budget {
        module: String,
        #[arg(value_parser = budget_value)]
        budget: Option<Budget>,
    },
    /// Show or set the schedulers online (the cores all of owl computes on)
    Schedulers { n: Option<usize> },
    /// Show or set the load target: background jobs, 0 to 10,000,000 (in a
    /// cluster, for all nodes together)
    Load { target: Option<String> },
    /// The cluster's nodes: up or down, their share of the load, workers, jobs/s
    Nodes,
    /// Run a command on another node of the cluster, e.g. `on b kill <0.45.0>`
    On {
        /// The node's name (see `nodes`)
        node: String,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Kill random processes for a while (never the root or this console), then report what healed
    Chaos {
        /// How long, e.g. 60s
        #[arg(long, default_value = "10s", value_parser = chaos_duration)]
        duration: Duration,
        /// Kills per second, e.g. 5/s or 5
        #[arg(long, default_value = "5/s", value_parser = chaos_rate)]
        rate: f64,
        /// Also kill supervisors
        #[arg(long)]
        supervisors: bool,
    },
    /// The bulletin board: list posts, delete one, reset a topic, pause writes
    Board {
        #[command(subcommand)]
        action: BoardAction,
    },
    /// Uptime, processes, memory, scheduler utilization
    Stats,
    /// A one-time link that logs a browser in as the admin (5 minutes, once),
    /// even while the login form is closed by an attack
    LoginLink,
}

#[derive(Subcommand)]
enum BoardAction {
    /// Posts per topic, or the newest posts of one topic
    List { topic: Option<String> },
    /// Delete a post (it vanishes from every page at once)
    Delete { id: i64 },
    /// Empty a topic (before a talk)
    Reset { topic: String },
    /// Refuse (on) or accept again (off) new posts at the database
    Readonly {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

fn chaos_duration(text: &str) -> Result<Duration, String> {
    let d = crate::serve::parse_duration(text)?;
    if d > Duration::from_secs(600) {
        return Err("at most 10 minutes".into());
    }
    Ok(d)
}

fn chaos_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    let rate: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate (e.g. 5/s)"))?;
    if !(0.1..=1000.0).contains(&rate) {
        return Err("a rate from 0.1/s to 1000/s".into());
    }
    Ok(rate)
}

/// A budget as typed: a duration, or `off`.
#[derive(Clone, Copy)]
enum Budget {
    Set(Duration),
    Off,
}

fn budget_value(text: &str) -> Result<Budget, String> {
    if text == "off" {
        return Ok(Budget::Off);
    }
    crate::serve::parse_duration(text).map(Budget::Set)
}

fn seconds(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s| {
        let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("must be from {min} to {max}"))
        }
    }
}

/// The help text, as `help` prints it.
pub(crate) fn help() -> String {
    use clap::CommandFactory;
    let mut text = Line::command()
        .help_template("Commands:\n{subcommands}")
        .render_help()
        .to_string();
    text.push_str("\n`COMMAND --help` tells more; `exit` or Ctrl-D leaves the shell.\n");
    text
}

/// Runs one console line. `cwd` resolves relative file names (the client's
/// working directory, not the node's).
pub(crate) async fn run(
    services: &Services,
    words: Vec<String>,
    cwd: &Path,
    caller: &owl_runtime::Pid,
) -> Result<Answer, String> {
    let ctx = &services.operator;
    if words.is_empty() {
        return Err("empty command; try `help`".into());
    }
    if words.len() == 1 && words[0] == "help" {
        let text = help();
        return Ok(Answer {
            json: json!({"help": text}),
            text,
        });
    }
    let line = match Line::try_parse_from(&words) {
        Ok(line) => line,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let text = e.to_string();
            return Ok(Answer {
                json: json!({"help": text}),
                text,
            });
        }
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            return Err(format!(
                "unknown command {:?}; `help` lists the commands",
                words[0]
            ));
        }
        Err(e) => {
            // clap's message without its "error: " prefix and its pointer to
            // `--help` (the shell prints its own prefix).
            let text = e.render().to_string();
            let text = text.trim_start_matches("error: ");
            let text = text
                .split("\n\nFor more information")
                .next()
                .unwrap_or(text);
            return Err(format!(
                "{}\n(`{} --help` tells more)",
                text.trim_end(),
                words[0]
            ));
        }
    };
    match line.command {
        Command::Ps {
            sort,
            limit,
            filter,
        } => Ok(ps(ctx, sort, limit, &filter)),
        Command::Top { seconds } => Ok(top(ctx, seconds).await),
        Command::Info { target } => info(ctx, &target),
        Command::Stack { target } => stack(ctx, &target).await,
        Command::Trace { target, seconds } => trace(ctx, &target, seconds).await,
        Command::Kill { target, reason } => kill(ctx, &target, reason.as_deref()),
        Command::KillAll { module } => kill_all(ctx, &module),
        Command::Tree => tree(ctx).await,
        Command::Modules => Ok(modules(ctx)),
        Command::Upgrade {
            module,
            file,
            purge,
        } => upgrade(ctx, &module, &cwd.join(file), purge).await,
        Command::Budget { module, budget } => module_budget(ctx, &module, budget),
        Command::Schedulers { n } => schedulers(ctx, n),
        Command::Load { target } => load(services, target.as_deref()),
        Command::Nodes => Ok(nodes(services)),
        Command::On { node, command } => on_node(services, &node, command).await,
        Command::Board { action } => board(services, action).await,
        Command::Chaos {
            duration,
            rate,
            supervisors,
        } => Ok(chaos(ctx, duration, rate, supervisors, caller).await),
        Command::Stats => Ok(stats(ctx).await),
        Command::LoginLink => login_link(services),
    }
}

fn login_link(services: &Services) -> Result<Answer, String> {
    let secret = services.login_links.issue()?;
    let path = format!("/login?once={secret}");
    let minutes = owl_system::access::LOGIN_LINK_LIFETIME.as_secs() / 60;
    Ok(Answer {
        text: format!(
            "open this on the node's web address within {minutes} minutes (it works once):\n  {path}\n"
        ),
        json: json!({"path": path, "valid_s": owl_system::access::LOGIN_LINK_LIFETIME.as_secs()}),
    })
}

fn resolve(ctx: &Operator, target: &str) -> Result<Pid, String> {
    ctx.resolve(target).map_err(|e| e.to_string())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn info_json(i: &ProcessInfo) -> Value {
    let pids = |v: &[Pid]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    json!({
        "pid": i.pid.to_string(),
        "name": i.name,
        "label": i.label,
        "parent": i.parent.map(|p| p.to_string()),
        "status": i.status.as_str(),
        "cpu_ms": ms(i.cpu_time),
        "reductions": i.reductions,
        "message_queue_len": i.message_queue_len,
        "mailbox_capacity": i.mailbox_capacity,
        "memory_bytes": i.memory_bytes,
        "memory_limit_bytes": i.memory_limit,
        "links": pids(&i.links),
        "monitors": pids(&i.monitors),
        "monitored_by": pids(&i.monitored_by),
        "trap_exit": i.trap_exit,
        "current_activity": i.current_activity,
        "long_polls": i.long_polls,
        "uptime_ms": i.started_at.elapsed().map(ms).unwrap_or(0.0),
    })
}

fn ps(ctx: &Operator, sort: SortKey, limit: usize, filter: &str) -> Answer {
    let rows = ctx.processes(sort, limit, filter, None);
    let mut text = format!(
        "{:<14} {:<24} {:>10} {:>12} {:>10} {:>6}  {}\n",
        "PID", "NAME/LABEL", "CPU ms", "REDUCTIONS", "MEMORY", "QUEUE", "ACTIVITY"
    );
    for row in &rows {
        let i = &row.info;
        text.push_str(&format!(
            "{:<14} {:<24} {:>10.1} {:>12} {:>10} {:>6}  {}\n",
            i.pid.to_string(),
            clip(i.name.as_deref().unwrap_or(&i.label), 24),
            ms(i.cpu_time),
            i.reductions,
            i.memory_bytes,
            i.message_queue_len,
            i.current_activity
        ));
    }
    Answer {
        text,
        json: json!({"sort": sort.name(), "processes": rows.iter().map(|r| info_json(&r.info)).collect::<Vec<_>>()}),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let head: String = s.chars().take(n - 1).collect();
        format!("{head}…")
    }
}

async fn top(ctx: &Operator, seconds: f64) -> Answer {
    let entries = ctx.top(Duration::from_secs_f64(seconds), 10).await;
    let mut text = format!(
        "top over {seconds} s (CPU share in % of one scheduler)\n{:<14} {:>7} {:>12}  {:<24} {}\n",
        "PID", "CPU %", "REDUCTIONS", "NAME/LABEL", "ACTIVITY"
    );
    let mut list = Vec::new();
    for e in &entries {
        let label = e.name.clone().unwrap_or_else(|| e.label.clone());
        let label = if label.is_empty() {
            "(ended)".to_string()
        } else {
            label
        };
        let activity = ctx
            .info(&e.pid)
            .map(|i| i.current_activity)
            .unwrap_or_default();
        text.push_str(&format!(
            "{:<14} {:>7.1} {:>12}  {:<24} {}\n",
            e.pid.to_string(),
            e.cpu_share,
            e.reductions,
            clip(&label, 24),
            activity
        ));
        list.push(json!({
            "pid": e.pid.to_string(),
            "cpu_share": (e.cpu_share * 10.0).round() / 10.0,
            "cpu_ms": ms(e.cpu_time),
            "reductions": e.reductions,
            "label": label,
            "current_activity": activity,
        }));
    }
    Answer {
        text,
        json: json!({"seconds": seconds, "top": list}),
    }
}

fn info(ctx: &Operator, target: &str) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    let info = ctx.info(&pid).map_err(|e| e.to_string())?;
    let json = info_json(&info);
    let mut text = String::new();
    if let Value::Object(map) = &json {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            text.push_str(&format!("{k:<18} {v}\n"));
        }
    }
    Ok(Answer { text, json })
}

async fn stack(ctx: &Operator, target: &str) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    Ok(match ctx.stack(&pid).await.map_err(|e| e.to_string())? {
        Stack::Guest(frames) => Answer {
            text: frames
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{i:>3}  {f}\n"))
                .collect(),
            json: json!({"pid": pid.to_string(), "kind": "sandboxed", "stack": frames}),
        },
        Stack::Native(activity) => Answer {
            text: format!(
                "{pid} is a native process (no stack to capture); current activity: {activity}\n"
            ),
            json: json!({"pid": pid.to_string(), "kind": "native", "current_activity": activity}),
        },
    })
}

async fn trace(ctx: &Operator, target: &str, seconds: f64) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    let duration = Duration::from_secs_f64(seconds);
    Ok(
        match ctx.trace(&pid, duration).await.map_err(|e| e.to_string())? {
            Trace::Messages(events) => {
                let mut text = format!(
                    "{pid}: messages over {seconds} s ({} events)\n",
                    events.len()
                );
                let mut list = Vec::new();
                for e in &events {
                    let (arrow, dir) = match e.direction {
                        owl_runtime::trace::Direction::In => ("<-", "in"),
                        owl_runtime::trace::Direction::Out => ("->", "out"),
                    };
                    let peer = e.peer.map_or("outside".to_string(), |p| p.to_string());
                    text.push_str(&format!(
                        "{:>9.3} ms  {arrow} {peer:<14} {}\n",
                        ms(e.at),
                        e.message_type
                    ));
                    list.push(json!({"at_ms": ms(e.at), "direction": dir, "peer": peer, "message_type": e.message_type}));
                }
                Answer {
                    text,
                    json: json!({"pid": pid.to_string(), "kind": "native", "events": list}),
                }
            }
            Trace::Guest { samples, entries } => {
                let mut text = format!(
                    "{pid}: guest function entries over {seconds:.2} s ({samples} stack samples; calls shorter than a sample are not seen)\n"
                );
                for e in &entries {
                    text.push_str(&format!(
                        "{:>9.3} ms  {}{}\n",
                        ms(e.at),
                        "  ".repeat(e.depth),
                        e.function
                    ));
                }
                Answer {
                    text,
                    json: json!({
                        "pid": pid.to_string(),
                        "kind": "sandboxed",
                        "samples": samples,
                        "events": entries.iter().map(|e| json!({"at_ms": ms(e.at), "depth": e.depth, "function": e.function})).collect::<Vec<_>>(),
                    }),
                }
            }
        },
    )
}

fn kill(ctx: &Operator, target: &str, reason: Option<&str>) -> Result<Answer, String> {
    if target.parse::<owl_runtime::PidId>() == Ok(owl_runtime::PidId(0)) {
        return Err("<0.0.0> is the node itself; stop it with Ctrl-C or SIGTERM".into());
    }
    let pid = resolve(ctx, target)?;
    let reason = match reason.unwrap_or("kill") {
        "" => return Err("--reason must not be empty".into()),
        text => text
            .parse::<ExitReason>()
            .unwrap_or_else(|never| match never {}),
    };
    let shown = reason.to_string();
    ctx.kill(&pid, reason).map_err(|e| e.to_string())?;
    Ok(Answer {
        text: format!("sent exit signal {shown} to {pid}\n"),
        json: json!({"pid": pid.to_string(), "reason": shown}),
    })
}

fn kill_all(ctx: &Operator, module: &str) -> Result<Answer, String> {
    let killed = ctx.kill_all(module).map_err(|e| e.to_string())?;
    Ok(Answer {
        text: format!("killed {killed} process(es) of {module}\n"),
        json: json!({"module": module, "killed": killed}),
    })
}

async fn tree(ctx: &Operator) -> Result<Answer, String> {
    let tree = ctx.tree().await.map_err(|e| e.to_string())?;
    Ok(Answer {
        text: tree.to_string(),
        json: tree_json(&tree),
    })
}

fn tree_json(node: &TreeNode) -> Value {
    json!({
        "id": node.id,
        "pid": node.pid.as_ref().map(|p| p.to_string()),
        "label": node.label,
        "kind": if node.kind == ChildKind::Supervisor { "supervisor" } else { "worker" },
        "children": node.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

fn modules(ctx: &Operator) -> Answer {
    let modules = ctx.modules();
    let mut text = String::new();
    let mut list = Vec::new();
    for m in &modules {
        let versions: Vec<String> = m
            .versions
            .iter()
            .map(|(v, n)| format!("v{v}: {n} running"))
            .collect();
        let budget = m.cpu_budget.map_or("none".to_string(), |b| {
            format!("{} s per process", b.as_secs_f64())
        });
        text.push_str(&format!(
            "{}  current v{}  [{}]  calls: {} started, {} returned, {} crashed, {} killed\n    exports: {}\n    CPU budget: {budget}\n",
            m.name,
            m.current,
            versions.join(", "),
            m.calls.started,
            m.calls.returned,
            m.calls.crashed,
            m.calls.killed,
            m.functions.join(", ")
        ));
        list.push(json!({
            "name": m.name,
            "current": m.current,
            "versions": m.versions.iter().map(|(v, n)| json!({"version": v, "running": n})).collect::<Vec<_>>(),
            "functions": m.functions,
            "calls": {"started": m.calls.started, "returned": m.calls.returned, "crashed": m.calls.crashed, "killed": m.calls.killed},
            "cpu_budget_s": m.cpu_budget.map(|b| b.as_secs_f64()),
        }));
    }
    Answer {
        text,
        json: json!({"modules": list}),
    }
}

fn module_budget(ctx: &Operator, module: &str, budget: Option<Budget>) -> Result<Answer, String> {
    match budget {
        Some(Budget::Set(d)) => ctx.set_budget(module, Some(d)),
        Some(Budget::Off) => ctx.set_budget(module, None),
        None => Ok(()),
    }
    .map_err(|e| e.to_string())?;
    let current = ctx
        .modules()
        .into_iter()
        .find(|m| m.name == module)
        .ok_or_else(|| format!("no module named {module:?} is loaded (see `modules`)"))?
        .cpu_budget;
    let text = match current {
        Some(b) => format!(
            "{module}: CPU budget {} s per process; past it a process ends with cpu_limit\n",
            b.as_secs_f64()
        ),
        None => format!("{module}: no CPU budget\n"),
    };
    Ok(Answer {
        text,
        json: json!({"module": module, "cpu_budget_s": current.map(|b| b.as_secs_f64())}),
    })
}

async fn upgrade(ctx: &Operator, module: &str, file: &Path, purge: bool) -> Result<Answer, String> {
    let done = ctx
        .upgrade(module, file, purge)
        .await
        .map_err(|e| e.to_string())?;
    let text = if purge {
        format!(
            "{module}: version {} loaded from {}; purged older versions, killing {} process(es)\n",
            done.version,
            file.display(),
            done.killed
        )
    } else {
        format!(
            "{module}: version {} loaded from {}; new processes use it, {} process(es) still run older versions\n",
            done.version,
            file.display(),
            done.still_old
        )
    };
    Ok(Answer {
        text,
        json: json!({"module": module, "version": done.version, "old_running": done.still_old, "purged": purge, "killed": done.killed}),
    })
}

fn load(services: &Services, target: Option<&str>) -> Result<Answer, String> {
    let load = &services.load;
    if let Some(text) = target {
        let n = owl_system::load::parse_target(text).map_err(|e| e.to_string())?;
        load.set_target(n).map_err(|e| e.to_string())?;
    }
    let latest = load.latest();
    let share = if services.cluster.is_some() {
        format!(" for the cluster, {} on this node", load.share())
    } else {
        String::new()
    };
    Ok(Answer {
        text: format!(
            "target {} jobs{share}; {} workers running; {:.0} jobs/s; utilization {:.0}%\n",
            load.target(),
            load.workers(),
            latest.jobs_per_s,
            latest.utilization * 100.0
        ),
        json: json!({
            "target": load.target(),
            "share": load.share(),
            "workers": load.workers(),
            "jobs_per_s": latest.jobs_per_s.round(),
            "utilization": latest.utilization,
        }),
    })
}

/// Sends a command to another node's console over the cluster (signed
/// HTTP); its pids are that node's, shown with its name.
async fn on_node(services: &Services, node: &str, words: Vec<String>) -> Result<Answer, String> {
    let cluster = services
        .cluster
        .as_ref()
        .ok_or("this node is not in a cluster (start it with --cluster)")?;
    if node == cluster.node_name() {
        return Box::pin(run(
            services,
            words,
            Path::new("/"),
            &owl_runtime::Pid::system(),
        ))
        .await;
    }
    let answer = cluster
        .request(node, "/cluster/console", Some(&json!({ "words": words })))
        .await
        .map_err(|e| format!("node {node}: {e}"))?;
    if answer["ok"] != true {
        return Err(format!(
            "node {node}: {}",
            answer["error"].as_str().unwrap_or("the command failed")
        ));
    }
    let text = answer["text"].as_str().unwrap_or_default();
    Ok(Answer {
        text: format!("on node {node}:\n{text}"),
        json: json!({ "node": node, "answer": answer["json"] }),
    })
}

fn nodes(services: &Services) -> Answer {
    let nodes = services.load.nodes();
    let mut text = match &services.cluster {
        Some(cluster) => format!(
            "cluster {}, {} of {} node(s) up, target {} jobs\n",
            cluster.secret().cluster_id(),
            nodes.iter().filter(|n| n.state == "up").count(),
            nodes.len(),
            services.load.target()
        ),
        None => "not in a cluster (start with --cluster ADDR:PORT to join one)\n".to_string(),
    };
    text += &format!(
        "{:<24} {:<5} {:>10} {:>10} {:>10}  {}\n",
        "NODE", "STATE", "SHARE", "WORKERS", "JOBS/S", "GOSSIP"
    );
    let mut rows = Vec::new();
    for n in &nodes {
        let member = services.cluster.as_ref().and_then(|c| c.member(&n.name));
        let gossip = member.as_ref().map(|m| m.gossip_addr.to_string());
        let http = member.and_then(|m| m.values.get("http").cloned());
        text += &format!(
            "{:<24} {:<5} {:>10} {:>10} {:>10.0}  {}\n",
            if n.is_self {
                format!("{} (this)", n.name)
            } else {
                n.name.clone()
            },
            n.state,
            n.share,
            n.workers,
            n.jobs_per_s,
            gossip.as_deref().unwrap_or("-")
        );
        rows.push(json!({
            "name": n.name, "state": n.state, "self": n.is_self, "share": n.share,
            "workers": n.workers, "jobs_per_s": n.jobs_per_s.round(),
            "gossip": gossip, "http": http,
        }));
    }
    Answer {
        text,
        json: json!({
            "cluster": services.cluster.as_ref().map(|c| c.secret().cluster_id().to_string()),
            "target": services.load.target(),
            "nodes": rows,
        }),
    }
}

async fn chaos(
    ctx: &Operator,
    duration: Duration,
    rate: f64,
    supervisors: bool,
    caller: &owl_runtime::Pid,
) -> Answer {
    let report = ctx
        .chaos(owl_system::operator::ChaosPlan {
            duration,
            rate,
            supervisors,
            spare: vec![caller.clone()],
        })
        .await;
    let mut text = format!(
        "chaos for {:.0} s at {rate}/s: {} kill(s)\n",
        duration.as_secs_f64(),
        report.kills
    );
    for (label, n) in &report.by_label {
        text.push_str(&format!("  {n:>6}  {label}\n"));
    }
    text.push_str(&match report.healed_after {
        Some(d) => format!(
            "healed: every registered process back {:.0} ms after the last kill\n",
            d.as_secs_f64() * 1e3
        ),
        None => format!("NOT healed: still missing {:?}\n", report.names_missing),
    });
    text.push_str(&format!(
        "processes: {} before, {} after\n",
        report.processes_before, report.processes_after
    ));
    Answer {
        text,
        json: json!({
            "kills": report.kills,
            "by_label": report.by_label,
            "healed": report.healed_after.is_some(),
            "healed_ms": report.healed_after.map(|d| d.as_secs_f64() * 1e3),
            "names_missing": report.names_missing,
            "processes_before": report.processes_before,
            "processes_after": report.processes_after,
        }),
    }
}

async fn board(services: &Services, action: BoardAction) -> Result<Answer, String> {
    let board = &services.board;
    match action {
        BoardAction::List { topic: None } => {
            let counts = board.counts().await.map_err(|e| e.to_string())?;
            let text = counts
                .iter()
                .map(|(t, n)| format!("{t:<20} {n} post(s)\n"))
                .collect();
            Ok(Answer {
                text,
                json: json!({"topics": counts.iter().map(|(t, n)| json!({"topic": t, "posts": n})).collect::<Vec<_>>()}),
            })
        }
        BoardAction::List { topic: Some(topic) } => {
            if owl_system::board::Board::topic(&topic).is_none() {
                return Err(format!("no topic {topic:?}; `board list` lists them"));
            }
            let posts = board
                .list(&topic, None, 50)
                .await
                .map_err(|e| e.to_string())?;
            let text = posts
                .iter()
                .map(|p| {
                    format!(
                        "#{:<6} {:<20} {}\n",
                        p.id,
                        clip(&p.author, 20),
                        clip(&p.text.replace('\n', " "), 60)
                    )
                })
                .collect();
            Ok(Answer {
                text,
                json: json!({"topic": topic, "posts": posts.iter().map(|p| json!({"id": p.id, "author": p.author, "text": p.text, "inserted_at_ms": p.inserted_at})).collect::<Vec<_>>()}),
            })
        }
        BoardAction::Delete { id } => {
            let deleted = board
                .delete(&services.node, None, id)
                .await
                .map_err(|e| e.to_string())?;
            if !deleted {
                return Err(format!("no post #{id}"));
            }
            Ok(Answer {
                text: format!("post #{id} deleted\n"),
                json: json!({"deleted": id}),
            })
        }
        BoardAction::Reset { topic } => {
            let removed = board
                .reset(&services.node, &topic)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Answer {
                text: format!("{topic}: {removed} post(s) removed\n"),
                json: json!({"topic": topic, "removed": removed}),
            })
        }
        BoardAction::Readonly { state } => {
            let on = state == "on";
            board.set_read_only(on).await.map_err(|e| e.to_string())?;
            Ok(Answer {
                text: format!(
                    "the board {} new posts\n",
                    if on { "refuses" } else { "accepts" }
                ),
                json: json!({"read_only": on}),
            })
        }
    }
}

fn schedulers(ctx: &Operator, n: Option<usize>) -> Result<Answer, String> {
    let (online, total) = match n {
        Some(n) => ctx.set_schedulers(n).map_err(|e| e.to_string())?,
        None => ctx.schedulers(),
    };
    Ok(Answer {
        text: format!(
            "schedulers online: {online} of {total} (the cores all of owl computes on)\n"
        ),
        json: json!({"online": online, "schedulers": total}),
    })
}

async fn stats(ctx: &Operator) -> Answer {
    let s = ctx.stats_over(Duration::from_millis(250)).await;
    let per: Vec<String> = s
        .utilization
        .per_scheduler
        .iter()
        .map(|u| format!("{:.0}%", u * 100.0))
        .collect();
    let mut text = format!(
        "uptime        {:.1} s\nprocesses     {} (spawned {}, exited {}, crashed {})\nmemory (RSS)  {:.1} MiB\nschedulers    {} online of {}; utilization {:.0}% of the cores online [schedulers {}]\nguest threads {} thread(s); utilization {:.0}%\n",
        s.uptime.as_secs_f64(),
        s.processes,
        s.spawned,
        s.exited,
        s.crashed,
        s.memory_rss as f64 / (1 << 20) as f64,
        s.schedulers_online,
        s.schedulers,
        s.utilization.total * 100.0,
        per.join(", "),
        s.utilization.guest_threads,
        s.utilization.guests * 100.0
    );
    text.push_str("by kind:\n");
    for (label, n) in &s.by_label {
        text.push_str(&format!("  {n:>8}  {label}\n"));
    }
    Answer {
        text,
        json: json!({
            "uptime_s": s.uptime.as_secs_f64(),
            "processes": s.processes,
            "by_label": s.by_label.iter().map(|(l, n)| json!({"label": l, "count": n})).collect::<Vec<_>>(),
            "spawned": s.spawned, "exited": s.exited, "crashed": s.crashed,
            "memory_rss_bytes": s.memory_rss,
            "schedulers": s.schedulers, "schedulers_online": s.schedulers_online,
            "utilization": s.utilization.total, "utilization_per_scheduler": s.utilization.per_scheduler,
            "guest_utilization": s.utilization.guests,
        }),
    }
}
