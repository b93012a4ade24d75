//! `owl serve`: starts the node and the application's supervision tree (web
//! endpoint included), and stops them in order on Ctrl-C or SIGTERM.

use std::time::Duration;

use clap::Args;
use owl_runtime::supervisor::Supervisor;
use owl_runtime::{Config, Runtime};
use owl_sandbox::{Sandbox, SandboxConfig};
use owl_system::math::MathService;
use owl_web::{App, Auth};

use crate::console;

/// Prints a status line; a closed stdout (`owl serve | head`) must not stop
/// the node, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the web interface.
    #[arg(long, default_value = "127.0.0.1:4000")]
    bind: String,
    /// Directory for data (created if missing).
    #[arg(long, default_value = "./owl-data")]
    data_dir: std::path::PathBuf,
    /// Schedulers (worker threads); default: one per CPU.
    #[arg(long, default_value_t = 0)]
    schedulers: usize,
    /// Calculations that may run at once, all visitors together; more are
    /// answered "overloaded".
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_calculations: u32,
    /// Let anyone look at the dashboards and /metrics (killing still needs
    /// the admin token). Off by default.
    #[arg(long)]
    public_dashboards: bool,
    /// The admin token (at least 16 characters); default: the one in
    /// DATA_DIR/admin-token, generated at first start.
    #[arg(long)]
    admin_token: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    create_private_dir(&args.data_dir)?;
    // Bind first: a busy port is an error before anything starts.
    let listener = std::net::TcpListener::bind(&args.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (console_listener, console_path) = console::server::bind(&args.data_dir)?;
    let rt =
        Runtime::new(Config::default().schedulers(args.schedulers)).map_err(|e| e.to_string())?;
    let max = args.max_calculations as usize;
    let sandbox = Sandbox::new(SandboxConfig {
        max_processes: max,
        ..SandboxConfig::default()
    })?;
    let math = MathService::new(sandbox, max).map_err(|e| format!("math guest: {e}"))?;
    let token_file = args.data_dir.join("admin-token");
    let auth = match &args.admin_token {
        Some(token) if token.len() >= 16 => {
            Auth::new(token.clone(), args.public_dashboards).map_err(|e| e.to_string())?
        }
        Some(_) => return Err("--admin-token must have at least 16 characters".into()),
        None => Auth::load_or_create(&token_file, args.public_dashboards)?,
    };
    let app = App::new(rt.node(), math, auth);
    rt.block_on(async move {
        // Listen for signals before announcing readiness, so a stop request
        // that follows the announcement is never lost.
        let stop = stop_signal()?;
        let console = console::commands::Context {
            node: app.node.clone(),
            math: app.math.clone(),
        };
        let tree = owl_web::application(&app, listener)
            .child(console::server::child_spec(console, console_listener));
        let root = Supervisor::start(&app.node, tree)
            .await
            .map_err(|e| format!("the application failed to start: {e}"))?;
        say!(
            "owl node up: {} scheduler(s), root supervisor {}, data in {}",
            app.node.schedulers(),
            root.pid(),
            args.data_dir.display()
        );
        say!("open http://{addr}/  (JSON API: POST http://{addr}/api/sum)");
        say!(
            "remote console: owl console --data-dir {}",
            args.data_dir.display()
        );
        match (&args.admin_token, args.public_dashboards) {
            (Some(_), _) => say!("dashboards: admin token from --admin-token"),
            (None, public) => say!(
                "dashboards{}: admin token in {}",
                if public {
                    " are public; killing needs the"
                } else {
                    " need the"
                },
                token_file.display()
            ),
        }
        say!("Press Ctrl-C to stop.");
        stop.await;
        say!("stopping: shutting the supervision tree down");
        root.shutdown(Duration::from_secs(30)).await;
        let _ = std::fs::remove_file(&console_path);
        Ok::<(), String>(())
    })
}

/// Creates the data directory readable by this user only: it holds the
/// console socket and, later, the admin token and the database.
fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))
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
