//! A listening socket served by a supervised process: the web endpoint and
//! the console server are both one of these.
//!
//! The socket is bound before the tree starts (so a busy port is an error
//! at once), and a restarted server accepts on the same socket: the child
//! spec keeps the bound socket and gives each incarnation a clone of it.

use std::future::Future;
use std::sync::Arc;

use owl_runtime::supervisor::ChildSpec;
use owl_runtime::{Exit, ExitReason, Process, SpawnOptions};

/// A bound socket that can be handed to a new server process.
pub trait Listener: Send + Sync + 'static {
    /// Another handle on the same socket.
    fn try_clone(&self) -> std::io::Result<Self>
    where
        Self: Sized;
}

impl Listener for std::net::TcpListener {
    fn try_clone(&self) -> std::io::Result<Self> {
        std::net::TcpListener::try_clone(self)
    }
}

impl Listener for std::os::unix::net::UnixListener {
    fn try_clone(&self) -> std::io::Result<Self> {
        std::os::unix::net::UnixListener::try_clone(self)
    }
}

/// A child spec for a registered, exit-trapping server process on
/// `listener`: `serve(process, listener)` runs until the supervisor tells
/// it to stop (select on [`stopped`]) or it fails.
///
/// ```
/// use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
/// use owl_runtime::{ExitReason, Runtime};
/// use owl_system::listener;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let spec = listener::child_spec("echo", "echo server", socket, |mut p, socket| async move {
///     socket.set_nonblocking(true).unwrap();
///     let socket = tokio::net::TcpListener::from_std(socket).unwrap();
///     tokio::select! {
///         _ = socket.accept() => ExitReason::Normal,
///         reason = listener::stopped(&mut p) => reason,
///     }
/// });
/// rt.block_on(async move {
///     let sup = Supervisor::start(&node, SupervisorSpec::new(Strategy::OneForOne).child(spec)).await.unwrap();
///     assert!(node.whereis("echo").is_some());
///     sup.shutdown(std::time::Duration::from_secs(1)).await;
/// });
/// ```
pub fn child_spec<L, F, Fut>(
    name: &'static str,
    label: &'static str,
    listener: L,
    serve: F,
) -> ChildSpec
where
    L: Listener,
    F: Fn(Process, L) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ExitReason> + Send + 'static,
{
    let listener = Arc::new(listener);
    let serve = Arc::new(serve);
    ChildSpec::worker(name, move |args| {
        let cloned = listener.try_clone();
        let serve = serve.clone();
        async move {
            let socket = cloned.map_err(|e| ExitReason::error(format!("{label}: {e}")))?;
            let opts = SpawnOptions::new().label(label).trap_exit(true);
            let pid = args.spawn_link_opts(opts, move |p| async move {
                p.set_activity("accept");
                serve(p, socket).await
            });
            // Registered before the start returns: whoever looks the name up
            // once the tree is up finds it.
            if let Err(e) = args.node.register(name, &pid) {
                args.node.kill(&pid);
                return Err(ExitReason::error(format!("{label}: {e}")));
            }
            Ok(pid)
        }
    })
}

/// Resolves with the reason when the server's supervisor (or the node)
/// tells it to stop; exits of the server's own linked helpers are ignored.
pub async fn stopped(p: &mut Process) -> ExitReason {
    let parent = p.node().info(p.pid()).and_then(|i| i.parent);
    loop {
        let exit: Exit = p.recv().await;
        if Some(exit.from.id()) == parent || exit.from.id().0 == 0 {
            return exit.reason;
        }
    }
}
