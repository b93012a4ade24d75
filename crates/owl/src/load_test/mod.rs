//! `owl load`: the talk's load test, built in. Virtual users ramp up over
//! `--ramp`; in `live` mode each one loads the sum page, opens its live
//! connection exactly as a browser does (the page's cookie included),
//! submits the input and checks that its line appears; in `api` mode each
//! posts it to `/api/sum`; in `board` mode each posts to the board as fast as
//! it is acknowledged. Meanwhile a prober measures the node every 100 ms: a
//! page load, a fresh live sum(7), an API sum(7). At the end, a report:
//! users connected, submissions, errors by kind, latencies, refusals.
//!
//! It stops by itself (users and duration are bounded) and only goes where
//! it is told (`--url`, loopback by default).

mod client;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use report::{Latencies, Tally};

#[derive(Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// The node to load.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    url: String,
    /// Virtual users at the peak (at most 10,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    users: u32,
    /// How long it takes to reach them all (e.g. 2m, 30s).
    #[arg(long, default_value = "2m", value_parser = owl_system::duration::parse)]
    ramp: Duration,
    /// How long to hold the peak afterwards.
    #[arg(long, default_value = "0s", value_parser = parse_hold)]
    hold: Duration,
    /// What each user submits (`-1` runs away: it is taken as a value, not
    /// as a flag).
    #[arg(long, default_value = "9999999999", allow_hyphen_values = true)]
    input: String,
    /// How users reach the node.
    #[arg(long, value_enum, default_value_t = Mode::Live)]
    mode: Mode,
    /// Also keep this many idle viewers on the board topic, and measure how
    /// long a post takes to reach them (board mode).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    viewers: u32,
    /// In board mode, each user posts once per this interval (e.g. 500ms)
    /// instead of again as soon as a post is acknowledged.
    #[arg(long, value_parser = owl_system::duration::parse)]
    every: Option<Duration>,
    /// Send every user from one address (as behind one NAT). By default,
    /// against a node on loopback, each user has a source address of its
    /// own (127.1.x.y), as each phone on a conference network has.
    #[arg(long)]
    same_address: bool,
    /// Print one JSON object at the end instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_hold(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" || text.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    owl_system::duration::parse(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The sum page's live connection, as a browser drives it.
    Live,
    /// `POST /api/sum`.
    Api,
    /// `POST /api/board/building-blocks`, again and again.
    Board,
}

/// Everything the users and the prober record.
#[derive(Default)]
struct Shared {
    tally: Tally,
    page: Latencies,
    live_sum: Latencies,
    api_sum: Latencies,
    submit: Latencies,
    board_reach: Latencies,
}

pub(crate) fn run(args: LoadArgs) -> Result<(), String> {
    let target = client::Target::parse(&args.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(drive(args.clone(), target))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

async fn drive(args: LoadArgs, target: client::Target) -> Result<report::Report, String> {
    // The node must answer before the test starts.
    client::get(&target, "/api/health")
        .await
        .map_err(|e| format!("{} does not answer: {e}", args.url))?;
    let shared = Arc::new(Shared::default());
    let total = args.ramp + args.hold;
    let end = Instant::now() + total;
    let progress = indicatif::ProgressBar::new(total.as_secs().max(1));
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    if args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let target = Arc::new(target);
    let mut users = Vec::new();
    let mut viewers = Vec::new();
    for v in 0..args.viewers {
        viewers.push(tokio::spawn(client::board_viewer(
            target.clone(),
            shared.clone(),
            end,
            v,
        )));
    }
    let prober = tokio::spawn(client::probe(target.clone(), shared.clone(), end));
    let started = Instant::now();
    for user in 0..args.users {
        // Users arrive evenly over the ramp.
        let at = started + args.ramp.mul_f64(f64::from(user) / f64::from(args.users));
        while Instant::now() < at {
            tokio::time::sleep(Duration::from_millis(20).min(at - Instant::now())).await;
            tick(&progress, started, &shared);
        }
        let peer = target.user(user, !args.same_address)?;
        let (target, shared, input) = (target.clone(), shared.clone(), args.input.clone());
        users.push(tokio::spawn(match args.mode {
            Mode::Live => client::live_user(target, peer, shared, input, end).boxed(),
            Mode::Api => client::api_user(target, peer, shared, input, end).boxed(),
            Mode::Board => client::board_user(target, peer, shared, end, user, args.every).boxed(),
        }));
    }
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tick(&progress, started, &shared);
    }
    for handle in users.into_iter().chain(viewers) {
        let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
    }
    let _ = prober.await;
    progress.finish_and_clear();
    Ok(report::Report::new(&args, &shared, started.elapsed()))
}

fn tick(progress: &indicatif::ProgressBar, started: Instant, shared: &Shared) {
    progress.set_position(started.elapsed().as_secs());
    progress.set_message(shared.tally.summary());
}

/// Boxes a user's future so the three kinds fit one `Vec`.
trait Boxed: std::future::Future<Output = ()> + Send + Sized + 'static {
    fn boxed(self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(self)
    }
}
impl<F: std::future::Future<Output = ()> + Send + 'static> Boxed for F {}
