//! # owl-bench
//!
//! The workloads behind `owl bench NAME`: runtime benchmarks, each optionally
//! run on the BEAM too (`--compare-beam`, with the Erlang scripts embedded
//! from `bench/beam/`). Not product code: the `owl` binary only parses the
//! command line into [`BenchArgs`] and calls [`run`].

mod beam;
mod dist;
mod fairness;
mod load_control;
mod observe;
mod report;
mod ring;
mod spawn;
mod spawn_calc;
mod stalls;
mod supervisor;

use clap::{Args, Subcommand};
use owl_runtime::{Config, Runtime};

pub use report::Report;

/// `owl bench`'s arguments.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    which: Bench,
    /// Schedulers (worker threads) for owl, and `+S N` for the BEAM.
    #[arg(long, global = true, default_value_t = 1)]
    schedulers: usize,
    /// Print one JSON object per line instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Also run the same workload on the BEAM (needs `escript` on the PATH).
    #[arg(long, global = true)]
    compare_beam: bool,
}

#[derive(Subcommand, Debug, Clone)]
enum Bench {
    /// Spawn N idle processes (each waiting in receive), then stop them.
    Spawn {
        #[arg(long, default_value_t = 1_000_000)]
        processes: usize,
    },
    /// Pass a token around a ring of P processes M times.
    Ring {
        #[arg(long, default_value_t = 10_000)]
        processes: usize,
        #[arg(long, default_value_t = 100)]
        rounds: usize,
    },
    /// Spawn, compute sum(1..100), reply, exit — N times.
    SpawnCalc {
        #[arg(long, default_value_t = 1_000_000)]
        processes: usize,
        /// Each process is a sandboxed guest call (the math module's sum).
        #[arg(long)]
        sandboxed: bool,
    },
    /// Fresh sandboxed calculations next to K runaway guests and the load workload.
    Fairness {
        #[arg(long, default_value_t = 10)]
        runaway: usize,
        #[arg(long, default_value_t = 100_000)]
        workers: usize,
    },
    /// Start and stop N static and N dynamic children of one supervisor.
    Supervisor {
        #[arg(long, default_value_t = 100_000)]
        children: usize,
    },
    /// What watching costs: N load workers, then V process dashboards
    /// refreshing every second, then one search of every process.
    Observe {
        #[arg(long, default_value_t = 1_000_000)]
        workers: usize,
        #[arg(long, default_value_t = 3)]
        viewers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Two nodes on loopback (the second a child process): ping-pong,
    /// streaming, latency next to a stream and next to 10 MB messages,
    /// and `noconnection` after kill -9 and SIGSTOP at M remote monitors.
    Dist {
        #[arg(long, default_value_t = 100_000)]
        pings: u32,
        #[arg(long, default_value_t = 100)]
        senders: u32,
        #[arg(long, default_value_t = 20_000)]
        each: u32,
        #[arg(long, default_value_t = 10_000)]
        monitors: u32,
    },
    /// The peer node of `owl bench dist` (started by it).
    #[command(hide = true)]
    DistPeer {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// The load-control workload: N workers, each summing 1..100 once a second.
    Load {
        #[arg(long, default_value_t = 100_000)]
        workers: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

/// Runs the benchmark `args` name and prints its report(s).
pub fn run(args: BenchArgs) -> Result<(), String> {
    if args.schedulers == 0 {
        return Err("--schedulers must be at least 1".into());
    }
    let rt =
        Runtime::new(Config::default().schedulers(args.schedulers)).map_err(|e| e.to_string())?;
    let node = rt.node();
    // A p99 of a few microseconds is only read right next to how often the
    // machine stalls a running thread (see `stalls`).
    let stalls_matter = matches!(args.which, Bench::Fairness { .. });
    let stalls_before_owl = stalls_matter.then(stalls::Stalls::measure);
    let report = match args.which.clone() {
        Bench::Spawn { processes } => rt.block_on(spawn::run(&node, processes)),
        Bench::Ring { processes, rounds } => rt.block_on(ring::run(&node, processes, rounds)),
        Bench::SpawnCalc {
            processes,
            sandboxed: false,
        } => rt.block_on(spawn_calc::run(&node, processes)),
        Bench::SpawnCalc {
            processes,
            sandboxed: true,
        } => {
            let sandbox = math_sandbox(&node)?;
            rt.block_on(spawn_calc::run_sandboxed(&node, &sandbox, processes))
        }
        Bench::Fairness { runaway, workers } => {
            let sandbox = math_sandbox(&node)?;
            rt.block_on(fairness::run(&node, &sandbox, runaway, workers))
        }
        Bench::Load { workers, seconds } => rt.block_on(load_control::run(&node, workers, seconds)),
        Bench::Supervisor { children } => rt.block_on(supervisor::run(&node, children)),
        Bench::Dist {
            pings,
            senders,
            each,
            monitors,
        } => rt.block_on(dist::run(&node, pings, senders, each, monitors)),
        Bench::DistPeer { listen } => {
            rt.block_on(dist::peer(&node, listen))?;
            return Ok(());
        }
        Bench::Observe {
            workers,
            viewers,
            seconds,
        } => {
            let sandbox = math_sandbox(&node)?;
            rt.block_on(observe::run(&node, &sandbox, workers, viewers, seconds))
        }
    }?;
    drop(rt);
    let report = stalls::Stalls::add(stalls_before_owl, report);
    let mut reports = vec![report.with("schedulers", args.schedulers as f64)];
    if args.compare_beam {
        let stalls = stalls_matter.then(stalls::Stalls::measure);
        match beam::run(&args.which, args.schedulers) {
            Ok(r) => reports
                .push(stalls::Stalls::add(stalls, r).with("schedulers", args.schedulers as f64)),
            Err(e) => eprintln!("beam column skipped: {e}"),
        }
    }
    report::print(&reports, args.json);
    Ok(())
}

/// A sandbox with version 1 of the math guest (the talk's, bugs included),
/// its guest threads on the node's cores as in `owl serve`: with
/// `--schedulers 1`, everything runs on one core.
fn math_sandbox(node: &owl_runtime::Node) -> Result<owl_sandbox::Sandbox, String> {
    let config = owl_sandbox::SandboxConfig {
        max_processes: 4096,
        guest_threads: node.schedulers(),
        ..Default::default()
    };
    let sandbox = owl_sandbox::Sandbox::new(config).map_err(|e| e.to_string())?;
    for thread in sandbox.guest_threads() {
        node.adopt_thread(thread);
    }
    sandbox
        .load("math", include_bytes!("../../../guests/math.wat"))
        .map_err(|e| e.to_string())?;
    Ok(sandbox)
}

/// Resident set size of this OS process, in bytes.
pub fn rss_bytes() -> u64 {
    owl_runtime::sys::resident_memory()
}

/// CPU time (user + system) this OS process has used.
pub fn cpu_time() -> std::time::Duration {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the call to fill.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return std::time::Duration::ZERO;
    }
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
