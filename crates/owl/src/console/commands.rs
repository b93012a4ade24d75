//! The console's commands: parsed with clap from one line, run against the
//! node, answered as text for people and as JSON for scripts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use owl_runtime::supervisor::{ChildKind, SupervisorRef, TreeNode};
use owl_runtime::{ExitReason, Node, Pid, ProcessInfo};
use owl_system::math::MathService;
use owl_system::observe::{self, SortKey};
use serde_json::{Value, json};

/// What a command answers: text for the shell, JSON for `--json`.
pub struct Answer {
    pub text: String,
    pub json: Value,
}

/// What the commands work on.
#[derive(Clone)]
pub struct Context {
    pub node: Node,
    pub math: MathService,
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
    /// Load a new version of a guest module from a .wat or .wasm file
    Upgrade {
        module: String,
        file: PathBuf,
        /// Also kill the processes still running older versions
        #[arg(long)]
        purge: bool,
    },
    /// Show or set the schedulers online
    Schedulers { n: Option<usize> },
    /// Uptime, processes, memory, scheduler utilization
    Stats,
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

/// The events a trace reports at most (like the reference's `trace(pid)`).
const TRACE_EVENTS: usize = 50;
/// How long a stack capture waits for the guest's next tick.
const STACK_TIMEOUT: Duration = Duration::from_secs(1);

/// The help text, as `help` prints it.
pub fn help() -> String {
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
pub async fn run(ctx: &Context, words: Vec<String>, cwd: &Path) -> Result<Answer, String> {
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
        Command::Schedulers { n } => schedulers(ctx, n),
        Command::Stats => Ok(stats(ctx).await),
    }
}

fn resolve(ctx: &Context, target: &str) -> Result<Pid, String> {
    ctx.node.resolve(target).ok_or_else(|| {
        format!("no process {target:?} (give a pid like <0.42.0> or a registered name)")
    })
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
        "status": format!("{:?}", i.status).to_lowercase(),
        "cpu_ms": ms(i.cpu_time),
        "reductions": i.reductions,
        "message_queue_len": i.message_queue_len,
        "mailbox_capacity": i.mailbox_capacity,
        "memory_bytes": i.memory_bytes,
        "links": pids(&i.links),
        "monitors": pids(&i.monitors),
        "monitored_by": pids(&i.monitored_by),
        "trap_exit": i.trap_exit,
        "current_activity": i.current_activity,
        "long_polls": i.long_polls,
        "uptime_ms": i.started_at.elapsed().map(ms).unwrap_or(0.0),
    })
}

fn ps(ctx: &Context, sort: SortKey, limit: usize, filter: &str) -> Answer {
    let rows = observe::list(&ctx.node, sort, limit, filter, None);
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

async fn top(ctx: &Context, seconds: f64) -> Answer {
    let entries = ctx.node.top(Duration::from_secs_f64(seconds), 10).await;
    let mut text = format!(
        "top over {seconds} s (CPU share in % of one scheduler)\n{:<14} {:>7} {:>12}  {:<24} {}\n",
        "PID", "CPU %", "REDUCTIONS", "NAME/LABEL", "ACTIVITY"
    );
    let mut list = Vec::new();
    for e in &entries {
        let info = ctx.node.info(&e.pid);
        let (label, activity) = info
            .as_ref()
            .map_or(("(ended)".to_string(), String::new()), |i| {
                (
                    i.name.clone().unwrap_or_else(|| i.label.clone()),
                    i.current_activity.clone(),
                )
            });
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

fn info(ctx: &Context, target: &str) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    let info = ctx
        .node
        .info(&pid)
        .ok_or_else(|| format!("{pid} has ended"))?;
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

async fn stack(ctx: &Context, target: &str) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    if let Some(frames) = ctx.math.sandbox().stack(&pid, STACK_TIMEOUT).await {
        let text = frames
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{i:>3}  {f}\n"))
            .collect();
        return Ok(Answer {
            text,
            json: json!({"pid": pid.to_string(), "kind": "sandboxed", "stack": frames}),
        });
    }
    let info = ctx
        .node
        .info(&pid)
        .ok_or_else(|| format!("{pid} has ended"))?;
    Ok(Answer {
        text: format!(
            "{pid} is a native process (no stack to capture); current activity: {}\n",
            info.current_activity
        ),
        json: json!({"pid": pid.to_string(), "kind": "native", "current_activity": info.current_activity}),
    })
}

async fn trace(ctx: &Context, target: &str, seconds: f64) -> Result<Answer, String> {
    let pid = resolve(ctx, target)?;
    let duration = Duration::from_secs_f64(seconds);
    let sandbox = ctx.math.sandbox();
    if sandbox.stack(&pid, STACK_TIMEOUT).await.is_some() {
        return Ok(trace_guest(ctx, &pid, duration).await);
    }
    let events = ctx.node.trace(&pid, duration, TRACE_EVENTS).await;
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
    Ok(Answer {
        text,
        json: json!({"pid": pid.to_string(), "kind": "native", "events": list}),
    })
}

/// Samples a guest's stack every few milliseconds and reports each function
/// entry seen (a frame that was not on the previous sample), at most 50.
async fn trace_guest(ctx: &Context, pid: &Pid, duration: Duration) -> Answer {
    let sandbox = ctx.math.sandbox();
    let start = std::time::Instant::now();
    let mut previous: Vec<String> = Vec::new();
    let mut events = Vec::new();
    let mut samples = 0u32;
    while start.elapsed() < duration && events.len() < TRACE_EVENTS {
        let Some(stack) = sandbox.stack(pid, STACK_TIMEOUT).await else {
            break;
        };
        samples += 1;
        // Frames are innermost first; compare from the outermost.
        let outer_first: Vec<&String> = stack.iter().rev().collect();
        let common = outer_first
            .iter()
            .zip(previous.iter().rev())
            .take_while(|(a, b)| **a == *b)
            .count();
        for (depth, function) in outer_first.iter().enumerate().skip(common) {
            if events.len() < TRACE_EVENTS {
                events.push((start.elapsed(), depth, (*function).clone()));
            }
        }
        previous = stack;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut text = format!(
        "{pid}: guest function entries over {:.2} s ({samples} stack samples; calls shorter than a sample are not seen)\n",
        duration.as_secs_f64()
    );
    for (at, depth, f) in &events {
        text.push_str(&format!(
            "{:>9.3} ms  {}{f}\n",
            ms(*at),
            "  ".repeat(*depth)
        ));
    }
    Answer {
        text,
        json: json!({
            "pid": pid.to_string(),
            "kind": "sandboxed",
            "samples": samples,
            "events": events.iter().map(|(at, depth, f)| json!({"at_ms": ms(*at), "depth": depth, "function": f})).collect::<Vec<_>>(),
        }),
    }
}

fn kill(ctx: &Context, target: &str, reason: Option<&str>) -> Result<Answer, String> {
    if target.parse::<owl_runtime::PidId>() == Ok(owl_runtime::PidId(0)) {
        return Err("<0.0.0> is the node itself; stop it with Ctrl-C or SIGTERM".into());
    }
    let pid = resolve(ctx, target)?;
    let reason = match reason.unwrap_or("kill") {
        "kill" => ExitReason::Kill,
        "shutdown" => ExitReason::Shutdown,
        "normal" => ExitReason::Normal,
        "" => return Err("--reason must not be empty".into()),
        other => ExitReason::error(other),
    };
    let shown = reason.to_string();
    ctx.node.exit(&pid, reason);
    Ok(Answer {
        text: format!("sent exit signal {shown} to {pid}\n"),
        json: json!({"pid": pid.to_string(), "reason": shown}),
    })
}

fn kill_all(ctx: &Context, module: &str) -> Result<Answer, String> {
    let sandbox = ctx.math.sandbox();
    if !sandbox.modules().iter().any(|m| m.name == module) {
        return Err(format!(
            "no module named {module:?} is loaded (see `modules`)"
        ));
    }
    let killed = observe::kill_all(&ctx.node, sandbox, module);
    Ok(Answer {
        text: format!("killed {killed} process(es) of {module}\n"),
        json: json!({"module": module, "killed": killed}),
    })
}

async fn tree(ctx: &Context) -> Result<Answer, String> {
    let root = ctx
        .node
        .resolve(owl_web::ROOT)
        .ok_or("the root supervisor is not running")?;
    let tree =
        owl_runtime::supervisor::tree(&SupervisorRef::from_pid(root), Duration::from_secs(5))
            .await
            .map_err(|e| format!("could not read the tree: {e}"))?;
    let mut text = String::new();
    render_tree(&tree, "", &mut text, ctx, true);
    Ok(Answer {
        text,
        json: tree_json(&tree),
    })
}

/// Children of a supervisor shown one by one before they are summarised
/// (the math supervisor may hold a thousand calculations).
const TREE_CHILDREN_SHOWN: usize = 20;

fn render_tree(node: &TreeNode, indent: &str, out: &mut String, ctx: &Context, last: bool) {
    let pid = node.pid.as_ref().map_or("-".to_string(), |p| p.to_string());
    let label = node
        .pid
        .as_ref()
        .and_then(|p| ctx.node.info(p))
        .map(|i| i.label)
        .unwrap_or_default();
    let kind = if node.kind == ChildKind::Supervisor {
        "supervisor"
    } else {
        "worker"
    };
    let branch = if indent.is_empty() {
        ""
    } else if last {
        "└── "
    } else {
        "├── "
    };
    out.push_str(&format!(
        "{indent}{branch}{} {pid} ({kind}, {label})\n",
        node.id
    ));
    let child_indent = if indent.is_empty() && branch.is_empty() {
        " ".to_string()
    } else {
        format!("{indent}{}", if last { "    " } else { "│   " })
    };
    let n = node.children.len();
    for (i, child) in node.children.iter().enumerate().take(TREE_CHILDREN_SHOWN) {
        render_tree(child, &child_indent, out, ctx, i + 1 == n);
    }
    if n > TREE_CHILDREN_SHOWN {
        out.push_str(&format!(
            "{child_indent}└── … {} more\n",
            n - TREE_CHILDREN_SHOWN
        ));
    }
}

fn tree_json(node: &TreeNode) -> Value {
    json!({
        "id": node.id,
        "pid": node.pid.as_ref().map(|p| p.to_string()),
        "kind": if node.kind == ChildKind::Supervisor { "supervisor" } else { "worker" },
        "children": node.children.iter().map(tree_json).collect::<Vec<_>>(),
    })
}

fn modules(ctx: &Context) -> Answer {
    let modules = ctx.math.sandbox().modules();
    let mut text = String::new();
    let mut list = Vec::new();
    for m in &modules {
        let versions: Vec<String> = m
            .versions
            .iter()
            .map(|(v, n)| format!("v{v}: {n} running"))
            .collect();
        text.push_str(&format!(
            "{}  current v{}  [{}]  calls: {} started, {} returned, {} crashed, {} killed\n    exports: {}\n",
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
        }));
    }
    Answer {
        text,
        json: json!({"modules": list}),
    }
}

/// Module sources larger than this are refused before reading.
const MAX_MODULE_BYTES: u64 = 16 << 20;

async fn upgrade(ctx: &Context, module: &str, file: &Path, purge: bool) -> Result<Answer, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .len();
    if size > MAX_MODULE_BYTES {
        return Err(format!(
            "{} is {size} bytes; modules of at most 16 MiB are taken",
            file.display()
        ));
    }
    let source = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let sandbox = ctx.math.sandbox();
    let version = sandbox
        .load_async(module, source)
        .await
        .map_err(|e| format!("{module} not upgraded: {e}"))?;
    let killed = if purge {
        sandbox.purge(&ctx.node, module)
    } else {
        0
    };
    let old: usize = sandbox
        .modules()
        .iter()
        .find(|m| m.name == module)
        .map(|m| {
            m.versions
                .iter()
                .filter(|(v, _)| *v != version)
                .map(|(_, n)| n)
                .sum()
        })
        .unwrap_or(0);
    let text = if purge {
        format!(
            "{module}: version {version} loaded from {}; purged older versions, killing {killed} process(es)\n",
            file.display()
        )
    } else {
        format!(
            "{module}: version {version} loaded from {}; new processes use it, {old} process(es) still run older versions\n",
            file.display()
        )
    };
    Ok(Answer {
        text,
        json: json!({"module": module, "version": version, "old_running": old, "purged": purge, "killed": killed}),
    })
}

fn schedulers(ctx: &Context, n: Option<usize>) -> Result<Answer, String> {
    if let Some(n) = n {
        ctx.node.set_schedulers_online(n)?;
    }
    let (online, total) = (ctx.node.schedulers_online(), ctx.node.schedulers());
    Ok(Answer {
        text: format!("schedulers online: {online} of {total}\n"),
        json: json!({"online": online, "schedulers": total}),
    })
}

async fn stats(ctx: &Context) -> Answer {
    let s = observe::system_stats(&ctx.node, ctx.math.sandbox(), Duration::from_millis(250)).await;
    let per: Vec<String> = s
        .utilization
        .per_scheduler
        .iter()
        .map(|u| format!("{:.0}%", u * 100.0))
        .collect();
    let mut text = format!(
        "uptime        {:.1} s\nprocesses     {} (spawned {}, exited {}, crashed {})\nmemory (RSS)  {:.1} MiB\nschedulers    {} online of {}; utilization {:.0}% [{}]\nguest threads {} thread(s); utilization {:.0}%\n",
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
        s.guest_utilization.per_scheduler.len(),
        s.guest_utilization.total * 100.0
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
            "guest_utilization": s.guest_utilization.total,
        }),
    }
}
