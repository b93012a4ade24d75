//! A server behaviour like OTP's `gen_server`: state plus callbacks for
//! synchronous calls, asynchronous casts and other messages, with `init` and
//! `terminate`.
//!
//! Calls carry their own reply channel, so a reply never depends on the order
//! of other messages in the caller's mailbox, and a caller outside any
//! process (an HTTP handler) can call too.

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::message::{Exit, Message};
use crate::node::Node;
use crate::pid::Pid;
use crate::process::{Process, SendError, SpawnOptions};
use crate::supervisor::StartArgs;

/// What a callback wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Stop with this reason (after `terminate`).
    Stop(ExitReason),
}

/// The answer of [`Server::handle_call`].
#[derive(Debug)]
pub enum Reply<R> {
    /// Reply and keep serving.
    Reply(R),
    /// Reply, then stop with the reason.
    Stop(ExitReason, R),
}

/// A stateful process answering calls and casts.
///
/// ```
/// use owl_runtime::{Runtime, Process, server::{Server, Reply, Flow}};
/// use std::time::Duration;
///
/// struct Counter(u64);
///
/// impl Server for Counter {
///     type Call = ();          // "what is the count?"
///     type Reply = u64;
///     type Cast = u64;         // "add this"
///     async fn handle_call(&mut self, _: (), _: &mut Process) -> Reply<u64> {
///         Reply::Reply(self.0)
///     }
///     async fn handle_cast(&mut self, n: u64, _: &mut Process) -> Flow {
///         self.0 += n;
///         Flow::Continue
///     }
/// }
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let count = rt.block_on(async move {
///     let counter = owl_runtime::server::start(&node, Counter(0), Default::default()).await.unwrap();
///     counter.cast(2).unwrap();
///     counter.cast(3).unwrap();
///     counter.call((), Duration::from_secs(1)).await.unwrap()
/// });
/// assert_eq!(count, 5);
/// ```
pub trait Server: Send + Sized + 'static {
    /// Requests answered by [`handle_call`](Self::handle_call).
    type Call: Send + 'static;
    /// Answers to calls.
    type Reply: Send + 'static;
    /// Fire-and-forget requests.
    type Cast: Send + 'static;

    /// Runs in the new process before [`start`] returns; an error stops it and
    /// is returned to the starter.
    fn init(
        &mut self,
        process: &mut Process,
    ) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = process;
        async { Ok(()) }
    }

    /// Answers a call.
    fn handle_call(
        &mut self,
        request: Self::Call,
        process: &mut Process,
    ) -> impl Future<Output = Reply<Self::Reply>> + Send;

    /// Handles a cast.
    fn handle_cast(
        &mut self,
        msg: Self::Cast,
        process: &mut Process,
    ) -> impl Future<Output = Flow> + Send {
        let _ = (msg, process);
        async { Flow::Continue }
    }

    /// Handles any other message (timers, `Down`, `Exit` from non-parents).
    /// The default logs the message as unexpected and drops it, like OTP's
    /// `gen_server`; a call in it then fails at once with
    /// [`CallError::NoReply`] instead of waiting for its timeout.
    fn handle_info(
        &mut self,
        msg: Message,
        process: &mut Process,
    ) -> impl Future<Output = Flow> + Send {
        tracing::warn!(target: "owl::server", server = %process.pid(),
            message_type = msg.type_name(), "unexpected message dropped");
        async { Flow::Continue }
    }

    /// Runs when the server stops through a callback's `Stop`, or — if it
    /// traps exits — when its parent (supervisor) tells it to.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        process: &mut Process,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, process);
        async {}
    }
}

/// A typed handle on a running [`Server`].
pub struct ServerRef<S> {
    pid: Pid,
    _server: PhantomData<fn() -> S>,
}

impl<S> Clone for ServerRef<S> {
    fn clone(&self) -> Self {
        ServerRef {
            pid: self.pid.clone(),
            _server: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for ServerRef<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerRef({})", self.pid)
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the timeout (the server may still be working on it).
    Timeout,
    /// The server ended before answering.
    Exited(ExitReason),
    /// The server was not alive.
    NoProcess,
    /// The server dropped the request without answering: it does not handle
    /// requests of this kind (a pid of another kind of server, say).
    NoReply,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Exited(r) => write!(f, "server exited: {r}"),
            CallError::NoProcess => f.write_str("no such process"),
            CallError::NoReply => f.write_str("the process dropped the request without answering"),
        }
    }
}
impl std::error::Error for CallError {}

/// How long a call whose request was dropped waits to learn whether the
/// target crashed (its exit follows within microseconds) before answering
/// [`CallError::NoReply`].
const CRASH_GRACE: Duration = Duration::from_millis(100);

/// Sends a request built around a fresh reply channel and waits for the reply,
/// the target's exit, or the timeout — whichever comes first. It always
/// ends within `timeout`, however the target behaves.
pub(crate) async fn request<Req, Rep>(
    target: &Pid,
    make: impl FnOnce(oneshot::Sender<Rep>) -> Req,
    timeout: Duration,
) -> Result<Rep, CallError>
where
    Req: Send + 'static,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let exited_reason = |reason| match reason {
        ExitReason::NoProc => CallError::NoProcess,
        r => CallError::Exited(r),
    };
    let mut exited = std::pin::pin!(target.wait_exit());
    let (tx, rx) = oneshot::channel();
    // Back pressure from a bounded mailbox counts against the timeout too.
    match tokio::time::timeout_at(deadline, target.send_wait(make(tx))).await {
        Err(_) => return Err(CallError::Timeout),
        Ok(Err(SendError::NoProcess(_))) => return Err(CallError::NoProcess),
        Ok(_) => {}
    }
    let reply = tokio::select! {
        biased;
        reply = rx => reply,
        reason = &mut exited => return Err(exited_reason(reason)),
        _ = tokio::time::sleep_until(deadline) => return Err(CallError::Timeout),
    };
    match reply {
        Ok(r) => Ok(r),
        // The reply channel was dropped. A target that crashed while handling
        // the request dropped it as it unwound, and its exit follows at once:
        // report how it ended. One that lives on dropped the request itself:
        // it does not handle requests of this kind.
        Err(_) => {
            let grace = (tokio::time::Instant::now() + CRASH_GRACE).min(deadline);
            match tokio::time::timeout_at(grace, exited).await {
                Ok(reason) => Err(exited_reason(reason)),
                Err(_) => Err(CallError::NoReply),
            }
        }
    }
}

struct CallMsg<S: Server> {
    request: S::Call,
    reply: oneshot::Sender<S::Reply>,
}

struct CastMsg<S: Server>(S::Cast);

impl<S: Server> ServerRef<S> {
    /// The server's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Wraps a pid known to run `S` (e.g. found by name).
    pub fn from_pid(pid: Pid) -> Self {
        ServerRef {
            pid,
            _server: PhantomData,
        }
    }

    /// Calls the server and waits for its reply. A bounded mailbox makes the
    /// caller wait for room first (back pressure).
    pub async fn call(&self, req: S::Call, timeout: Duration) -> Result<S::Reply, CallError> {
        request(
            &self.pid,
            |reply| CallMsg::<S> {
                request: req,
                reply,
            },
            timeout,
        )
        .await
    }

    /// Sends a cast; never waits (a full bounded mailbox reports `Full`).
    pub fn cast(&self, msg: S::Cast) -> Result<(), SendError<S::Cast>> {
        self.pid.send(CastMsg::<S>(msg)).map_err(|e| match e {
            SendError::Full(m) => SendError::Full(m.0),
            SendError::NoProcess(m) => SendError::NoProcess(m.0),
        })
    }
}

/// Starts a server (not linked to the caller) and waits for its `init`.
pub async fn start<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
) -> Result<ServerRef<S>, ExitReason> {
    start_opts(node, server, opts, None).await
}

/// Starts a server linked to a supervisor, as a child start function does.
pub async fn start_link<S: Server>(
    args: &StartArgs,
    server: S,
    opts: SpawnOptions,
) -> Result<Pid, ExitReason> {
    let opts = opts
        .link_to(args.supervisor.clone())
        .parent(args.supervisor.clone());
    let parent = Some(args.supervisor.clone());
    start_opts(&args.node, server, opts, parent)
        .await
        .map(|s| s.pid)
}

async fn start_opts<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
    parent: Option<Pid>,
) -> Result<ServerRef<S>, ExitReason> {
    let opts = if opts.label.is_none() {
        opts.label(short_type_name::<S>())
    } else {
        opts
    };
    let (ack_tx, ack_rx) = oneshot::channel::<Result<(), ExitReason>>();
    let (pid, exited) = node.spawn_watched(opts, move |p| serve(p, server, parent, ack_tx));
    match ack_rx.await {
        Ok(Ok(())) => Ok(ServerRef::from_pid(pid)),
        // Return only once the failed process is gone, so the caller sees a clean slate.
        Ok(Err(_)) | Err(_) => Err(exited.await.unwrap_or(ExitReason::NoProc)),
    }
}

fn short_type_name<S>() -> String {
    let full = std::any::type_name::<S>();
    full.rsplit("::").next().unwrap_or(full).to_string()
}

async fn serve<S: Server>(
    mut p: Process,
    mut server: S,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), ExitReason>>,
) -> ExitReason {
    if let Err(reason) = server.init(&mut p).await {
        let _ = ack.send(Err(reason.clone()));
        return reason;
    }
    let _ = ack.send(Ok(()));
    loop {
        let msg = p.recv_any().await;
        let flow = match msg.downcast::<CallMsg<S>>() {
            Ok(call) => match server.handle_call(call.request, &mut p).await {
                Reply::Reply(r) => {
                    let _ = call.reply.send(r);
                    Flow::Continue
                }
                Reply::Stop(reason, r) => {
                    let _ = call.reply.send(r);
                    Flow::Stop(reason)
                }
            },
            Err(msg) => match msg.downcast::<CastMsg<S>>() {
                Ok(cast) => server.handle_cast(cast.0, &mut p).await,
                Err(msg) => match msg.downcast::<Exit>() {
                    Ok(exit) if is_from_parent(&exit.from, parent.as_ref()) => {
                        Flow::Stop(exit.reason)
                    }
                    Ok(exit) => server.handle_info(Message::new(exit), &mut p).await,
                    Err(msg) => server.handle_info(msg, &mut p).await,
                },
            },
        };
        if let Flow::Stop(reason) = flow {
            server.terminate(&reason, &mut p).await;
            return reason;
        }
    }
}

/// An exit signal from the parent (or from the node itself, `<0.0.0>`) means
/// "stop now" to a trapping server or supervisor.
pub(crate) fn is_from_parent(from: &Pid, parent: Option<&Pid>) -> bool {
    from.id().0 == 0 || parent == Some(from)
}
