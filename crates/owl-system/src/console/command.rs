//! The console's commands as data: read from a line of words (clap), sent
//! to this node or another one of the cluster (serde), run by
//! [`run`](super::run).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::operator::SortKey;

/// One command of the console.
#[derive(Clone, Debug, PartialEq, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
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
        /// How long to watch
        #[arg(long, default_value_t = 1.0, value_parser = seconds(0.05, 60.0))]
        seconds: f64,
        /// Keep watching: a full-screen view, new every `--seconds`, until
        /// Ctrl-C (`owl console` repeats the command; the node answers once)
        #[arg(long)]
        watch: bool,
    },
    /// Everything the process table knows about a process
    Info {
        /// A pid (`<0.42.0>` or `42`) or a registered name
        target: String,
    },
    /// A sandboxed process's call stack; a native one's current activity (also `stacktrace`)
    #[command(alias = "stacktrace")]
    Stack {
        /// A pid or a registered name
        target: String,
    },
    /// What a process does for a while: guest function entries, or messages in and out
    Trace {
        /// A pid or a registered name
        target: String,
        /// How long to watch
        #[arg(long, default_value_t = 1.0, value_parser = seconds(0.05, 60.0))]
        seconds: f64,
    },
    /// Kill a process (reason: kill (default), shutdown, normal, or any text)
    Kill {
        /// A pid or a registered name
        target: String,
        /// The exit reason to send
        #[arg(long)]
        reason: Option<String>,
    },
    /// Kill every running process of a guest module (`kill_math`: of math)
    KillAll {
        /// The guest module, e.g. math
        module: String,
    },
    /// The supervision tree
    Tree,
    /// Loaded guest modules and their versions
    Modules,
    /// Load a new version of a guest module from a .wat or .wasm file (tried out first)
    Upgrade {
        /// The guest module, e.g. math
        module: String,
        /// The file, on the node's machine (relative to the console's directory)
        file: PathBuf,
        /// Also kill the processes still running older versions
        #[arg(long)]
        purge: bool,
    },
    /// Show, set (e.g. 30s, 5m) or remove (off) the CPU budget of each process of a module
    Budget {
        /// The guest module, e.g. math
        module: String,
        /// A duration (30s, 5m) or off
        #[arg(value_parser = budget_value)]
        budget: Option<Budget>,
    },
    /// Show or set the schedulers online (the cores all of owl computes on)
    Schedulers {
        /// How many to have online
        n: Option<usize>,
    },
    /// Show or set the load target: background jobs, 0 to 10,000,000 (in a
    /// cluster, for all nodes together)
    Load {
        /// The new target, e.g. 100000 or 100_000
        target: Option<String>,
    },
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
        /// What to do
        #[command(subcommand)]
        action: BoardAction,
    },
    /// Uptime, processes, memory, scheduler utilization
    Stats,
    /// A one-time link that logs a browser in as the admin (5 minutes, once),
    /// even while the login form is closed by an attack
    LoginLink,
}

/// What `board` does.
#[derive(Clone, Debug, PartialEq, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BoardAction {
    /// Posts per topic, or the newest posts of one topic
    List {
        /// A topic; without one, every topic's count
        topic: Option<String>,
    },
    /// Delete a post (it vanishes from every page at once)
    Delete {
        /// The post's number
        id: i64,
    },
    /// Empty a topic (before a talk)
    Reset {
        /// The topic
        topic: String,
    },
    /// Refuse (on) or accept again (off) new posts at the database
    Readonly {
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// A CPU budget as typed: a duration, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// This much CPU time per process.
    Set(Duration),
    /// No budget.
    Off,
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

/// What a line of words asked for: a command, or help.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// A command to run.
    Command(Command),
    /// Help text to show (`help`, `COMMAND --help`).
    Help(String),
}

/// Reads one console line, as words.
///
/// ```
/// use owl_system::console::{Command, Parsed, parse};
/// use owl_system::operator::SortKey;
/// let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
/// assert_eq!(
///     parse(&words("ps --sort memory --limit 5")),
///     Ok(Parsed::Command(Command::Ps { sort: SortKey::Memory, limit: 5, filter: String::new() }))
/// );
/// assert!(matches!(parse(&words("help")), Ok(Parsed::Help(_))));
/// assert!(parse(&words("frobnicate")).unwrap_err().contains("unknown command"));
/// assert!(parse(&words("top --seconds 99")).unwrap_err().contains("from 0.05 to 60"));
/// // The talk's words work too.
/// assert_eq!(parse(&words("kill_math")), parse(&words("kill-all math")));
/// assert_eq!(parse(&words("stacktrace 42")), parse(&words("stack 42")));
/// ```
pub fn parse(words: &[String]) -> Result<Parsed, String> {
    if words.is_empty() {
        return Err("empty command; try `help`".into());
    }
    if words.len() == 1 && words[0] == "help" {
        return Ok(Parsed::Help(help()));
    }
    // The talk's own word for it: `kill_math` is `kill-all math`.
    let talk;
    let words = match words[0].as_str() {
        "kill_math" => {
            talk = ["kill-all", "math"]
                .into_iter()
                .map(String::from)
                .chain(words[1..].iter().cloned())
                .collect::<Vec<_>>();
            &talk[..]
        }
        _ => words,
    };
    match Line::try_parse_from(words) {
        Ok(line) => Ok(Parsed::Command(line.command)),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Ok(Parsed::Help(e.to_string()))
        }
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => Err(format!(
            "unknown command {:?}; `help` lists the commands",
            words[0]
        )),
        Err(e) => {
            // clap's message without its "error: " prefix and its pointer to
            // `--help` (the shell prints its own prefix).
            let text = e.render().to_string();
            let text = text.trim_start_matches("error: ");
            let text = text
                .split("\n\nFor more information")
                .next()
                .unwrap_or(text);
            Err(format!(
                "{}\n(`{} --help` tells more)",
                text.trim_end(),
                words[0]
            ))
        }
    }
}

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

fn chaos_duration(text: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(text)?;
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

fn budget_value(text: &str) -> Result<Budget, String> {
    if text == "off" {
        return Ok(Budget::Off);
    }
    crate::duration::parse(text).map(Budget::Set)
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
