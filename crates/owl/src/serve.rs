//! `owl serve`: starts the node and its root supervisor, and stops them in
//! order on Ctrl-C or SIGTERM.

use std::time::Duration;

use clap::Args;
use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
use owl_runtime::{Config, Runtime};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the web interface (arrives with the web system).
    #[arg(long, default_value = "127.0.0.1:4000")]
    bind: String,
    /// Directory for data (created if missing).
    #[arg(long, default_value = "./owl-data")]
    data_dir: std::path::PathBuf,
    /// Schedulers (worker threads); default: one per CPU.
    #[arg(long, default_value_t = 0)]
    schedulers: usize,
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    let rt =
        Runtime::new(Config::default().schedulers(args.schedulers)).map_err(|e| e.to_string())?;
    let node = rt.node();
    rt.block_on(async move {
        // Listen for signals before announcing readiness, so a stop request
        // that follows the announcement is never lost.
        let stop = stop_signal()?;
        let root = Supervisor::start(&node, SupervisorSpec::new(Strategy::OneForOne).name("owl_root").label("root supervisor"))
            .await
            .map_err(|e| format!("root supervisor failed to start: {e}"))?;
        println!(
            "owl node up: {} scheduler(s), root supervisor {}, data in {}",
            node.schedulers(),
            root.pid(),
            args.data_dir.display()
        );
        println!("The web interface for {} arrives with the web system; this build runs the runtime only.", args.bind);
        println!("Press Ctrl-C to stop.");
        stop.await;
        println!("stopping: shutting the supervision tree down");
        root.shutdown(Duration::from_secs(30)).await;
        Ok::<(), String>(())
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
