//! The node's side of the console: a supervised listener process on a Unix
//! socket in the data directory, and one process per connected console.
//!
//! Protocol: newline-delimited JSON. A request is
//! `{"words": ["kill", "<0.42.0>"], "cwd": "/home/me"}`; the answer is
//! `{"ok": true, "text": "…", "json": {…}}` or `{"ok": false, "error": "…"}`.
//! The socket's file mode (0600, in a 0700 directory) is its only guard:
//! whoever may open it runs the node's user anyway.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{ExitReason, Process, SpawnOptions};
use owl_system::at::At;
use owl_system::console::{self, Origin, Parsed};
use owl_system::{Services, listener};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The socket's file name inside the data directory.
pub(crate) const SOCKET: &str = "console.sock";
/// The registered name of the listener process.
pub(crate) const NAME: &str = "console";
/// The longest request line a console may send.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// How long the listener pauses after a failed accept (out of file
/// descriptors, say) instead of spinning on it.
const BACK_OFF: Duration = Duration::from_millis(100);

/// Binds the console socket in `data_dir`, replacing a stale one left by a
/// node that did not stop cleanly; refuses if a live node answers on it.
pub(crate) fn bind(data_dir: &Path) -> Result<(std::os::unix::net::UnixListener, PathBuf), String> {
    let path = data_dir.join(SOCKET);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(format!(
                "another owl node is running with data directory {} (its console answers on {})",
                data_dir.display(),
                path.display()
            ));
        }
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .map_err(|e| format!("cannot create the console socket {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok((listener, path))
}

/// The console listener as a child of the root supervisor; a restarted
/// listener accepts on the same socket.
pub(crate) fn child_spec(
    services: Services,
    socket: std::os::unix::net::UnixListener,
) -> ChildSpec {
    listener::child_spec(NAME, "console listener", socket, move |p, socket| {
        listen(p, services.clone(), socket)
    })
}

async fn listen(
    mut p: Process,
    services: Services,
    socket: std::os::unix::net::UnixListener,
) -> ExitReason {
    let socket = match socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(socket))
    {
        Ok(l) => l,
        Err(e) => return ExitReason::error(format!("cannot accept on the console socket: {e}")),
    };
    let mut last_error_logged: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => {
                    let services = services.clone();
                    // Linked: consoles end with their listener.
                    let opts = SpawnOptions::new()
                        .label("console session")
                        .link_to(p.pid().clone())
                        .parent(p.pid().clone());
                    p.spawn_opts(opts, move |s| session(s, services, stream));
                }
                Err(e) => {
                    if last_error_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
                        last_error_logged = Some(std::time::Instant::now());
                        tracing::warn!(error = %e, "console accept failed; backing off");
                    }
                    tokio::time::sleep(BACK_OFF).await;
                }
            },
            reason = listener::stopped(&mut p) => return reason,
        }
    }
}

async fn session(
    p: Process,
    services: Services,
    stream: tokio::net::UnixStream,
) -> Result<(), ExitReason> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        p.set_activity("waiting for a command");
        let mut line = Vec::new();
        let n = (&mut read)
            .take(MAX_REQUEST_BYTES + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(ExitReason::error)?;
        if n == 0 {
            return Ok(());
        }
        let too_long = line.len() as u64 > MAX_REQUEST_BYTES;
        let answer = if too_long {
            json!({"ok": false, "error": "request too long (at most 64 KiB)"})
        } else {
            p.set_activity("running a command");
            answer(&services, &line, p.pid()).await
        };
        let mut out = answer.to_string();
        out.push('\n');
        write
            .write_all(out.as_bytes())
            .await
            .map_err(ExitReason::error)?;
        if too_long {
            // The rest of that line cannot be told apart from the next request.
            return Ok(());
        }
    }
}

async fn answer(services: &Services, line: &[u8], caller: &owl_runtime::Pid) -> Value {
    #[derive(serde::Deserialize)]
    struct Request {
        words: Vec<String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
    }
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "error": format!("bad request: {e}")}),
    };
    let shown: String = request.words.join(" ").chars().take(200).collect();
    tracing::info!(target: "owl::console", command = shown, "console command");
    let command = match console::parse(&request.words) {
        Ok(Parsed::Command(command)) => command,
        Ok(Parsed::Help(help)) => return json!({"ok": true, "text": help, "json": {"help": help}}),
        Err(error) => return json!({"ok": false, "error": error}),
    };
    let origin = Origin {
        cwd: request.cwd.unwrap_or_else(|| PathBuf::from("/")),
        caller: caller.clone(),
    };
    match services.at(At::Local).console(command, &origin).await {
        Ok(a) => json!({"ok": true, "text": a.to_string(), "json": a.to_json()}),
        Err(error) => json!({"ok": false, "error": error.to_string()}),
    }
}
