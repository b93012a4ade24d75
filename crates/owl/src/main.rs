//! `owl`: one binary for the whole system — `owl serve` runs the node,
//! `owl console` talks to a running one, `owl bench` measures the runtime
//! (optionally next to the BEAM).

mod console;
mod load_test;
mod serve;

use clap::{Parser, Subcommand};

/// Processes are small and short-lived: allocation speed matters (spawn is
/// about twice as fast with mimalloc as with glibc's allocator here).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "owl", version, about = "A let-it-crash system in Rust")]
struct Cli {
    /// Log lines as text (coloured on a terminal only) or as JSON objects,
    /// one per line, for log shippers. `OWL_LOG` filters them (e.g. `warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OWL_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the owl node.
    Serve(Box<serve::ServeArgs>),
    /// Talk to a running node: inspect, trace, kill, upgrade.
    Console(console::client::ConsoleArgs),
    /// Run a runtime benchmark (spawn, ring, spawn-calc, load, …).
    Bench(owl_bench::BenchArgs),
    /// The talk's load test against a running node: virtual users on the
    /// sum page (or the API, or the board), with probes and a report.
    Load(load_test::LoadArgs),
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Console(args) => console::client::run(args),
        Command::Bench(args) => owl_bench::run(args),
        Command::Load(args) => load_test::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("owl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("OWL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        // Colour codes only where a person reads them, never in a file or pipe.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A node may hold millions of small processes: let the allocator commit its
/// arenas eagerly and back them with transparent huge pages, which cuts the
/// page faults of a fresh million-process spawn several times over here.
/// `MIMALLOC_*` environment variables still override these defaults.
fn tune_allocator() {
    use libmimalloc_sys::{mi_option_large_os_pages, mi_option_set, mi_option_t};
    /// `mi_option_arena_eager_commit`, the fifth of mimalloc's `mi_option_e`
    /// (libmimalloc-sys names no constant for it).
    const MI_OPTION_ARENA_EAGER_COMMIT: mi_option_t = 4;
    let options: [(mi_option_t, &str); 2] = [
        (MI_OPTION_ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"),
        (mi_option_large_os_pages, "MIMALLOC_ALLOW_LARGE_OS_PAGES"),
    ];
    for (option, env) in options {
        if std::env::var_os(env).is_none() {
            // SAFETY: a plain option setter of the C allocator, called before any thread starts.
            unsafe { mi_option_set(option, 1) };
        }
    }
}
