//! Servers, like OTP's `gen_server`: a process that owns some state and
//! answers requests, one at a time.
//!
//! A server is a type implementing [`Server`] (start-up, other messages,
//! clean-up — every method has a default) and [`Handle<M>`] once per kind
//! of request `M` it answers, each with its own reply type: no reply enum
//! to match on. [`ServerRef::call`] sends a request and waits for the reply
//! (always within its timeout); [`ServerRef::cast`] sends one without
//! waiting.
//!
//! ```
//! use std::time::Duration;
//! use owl_runtime::prelude::*;
//!
//! #[derive(Default)]
//! struct Counter(u64);
//! impl Server for Counter {}
//!
//! struct Add(u64);
//! impl Handle<Add> for Counter {
//!     type Reply = ();
//!     async fn handle(&mut self, Add(n): Add, _: &mut Ctx<'_>) {
//!         self.0 += n;
//!     }
//! }
//!
//! struct Get;
//! impl Handle<Get> for Counter {
//!     type Reply = u64;
//!     async fn handle(&mut self, _: Get, _: &mut Ctx<'_>) -> u64 {
//!         self.0
//!     }
//! }
//!
//! let rt = Runtime::new(Config::default()).unwrap();
//! let node = rt.node();
//! let count = rt.block_on(async move {
//!     let counter = server::start_named(&node, "counter", Counter::default(), SpawnOptions::new()).await.unwrap();
//!     counter.cast(Add(2)).unwrap();
//!     counter.cast(Add(3)).unwrap();
//!     // Found by name, typed: a name of another kind of process is `None`.
//!     let found = ServerRef::<Counter>::whereis(&node, "counter").unwrap();
//!     found.call(Get, Duration::from_secs(1)).await.unwrap()
//! });
//! assert_eq!(count, 5);
//! ```
//!
//! Calls carry their own reply channel, so a reply never depends on the
//! order of other messages in the caller's mailbox, and a caller outside
//! any process (an HTTP handler) can call too.

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::message::{Exit, Message};
use crate::node::Node;
use crate::pid::Pid;
use crate::process::{Process, SendError, SpawnOptions};
use crate::supervisor::StartArgs;

/// A server's view of its own process while it handles something: the
/// [`Process`] (through `Deref`), and the way to stop after this request.
#[derive(Debug)]
pub struct Ctx<'a> {
    process: &'a mut Process,
    stop: Option<ExitReason>,
}

impl Ctx<'_> {
    /// Stops the server once the current request is answered (after
    /// [`Server::terminate`]), with `reason` as its exit reason.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }
}

impl Deref for Ctx<'_> {
    type Target = Process;
    fn deref(&self) -> &Process {
        self.process
    }
}

impl DerefMut for Ctx<'_> {
    fn deref_mut(&mut self) -> &mut Process {
        self.process
    }
}

/// A stateful process answering requests. Every method has a default; the
/// requests it answers are its [`Handle`] implementations.
pub trait Server: Send + Sized + 'static {
    /// Runs in the new process before [`start`] returns; an error stops it
    /// and is returned to the starter.
    fn init(&mut self, ctx: &mut Ctx<'_>) -> impl Future<Output = Result<(), ExitReason>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles any other message (timers, `Down`, `Exit` from non-parents,
    /// requests of a kind it does not handle). The default logs the message
    /// as unexpected and drops it, like OTP's `gen_server`; a call in it
    /// fails at once with [`CallError::NoReply`] instead of waiting for its
    /// timeout.
    fn handle_info(&mut self, msg: Message, ctx: &mut Ctx<'_>) -> impl Future<Output = ()> + Send {
        tracing::warn!(target: "owl::server", server = %ctx.pid(),
            message_type = msg.type_name(), "unexpected message dropped");
        async {}
    }

    /// Runs when the server stops: a handler called [`Ctx::stop`], or — if
    /// it traps exits — its parent (supervisor) told it to.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<'_>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// One kind of request a server answers, with its own reply type. A server
/// implements it once per kind; a cast is a request whose reply nobody waits for.
pub trait Handle<M: Send + 'static>: Server {
    /// What the request answers.
    type Reply: Send + 'static;

    /// Answers `msg`.
    fn handle(&mut self, msg: M, ctx: &mut Ctx<'_>) -> impl Future<Output = Self::Reply> + Send;
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How a request is handled once it reaches a server of type `S`.
type Handler<S> = dyn for<'a> FnOnce(&'a mut S, &'a mut Ctx<'_>) -> BoxFuture<'a> + Send;

/// A request on its way to a server of type `S`.
struct Envelope<S>(Box<Handler<S>>);

/// Marks a process as a server of type `S`, for typed lookups.
fn kind_of<S: 'static>() -> TypeId {
    TypeId::of::<fn(S)>()
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

impl<S: Server> ServerRef<S> {
    /// The server's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Wraps a pid known to run `S`, unchecked (a pid of another kind makes
    /// every call fail with [`CallError::NoReply`]); prefer
    /// [`try_from_pid`](Self::try_from_pid) or [`whereis`](Self::whereis).
    pub fn from_pid(pid: Pid) -> Self {
        ServerRef {
            pid,
            _server: PhantomData,
        }
    }

    /// Wraps `pid` if it runs a server of type `S`.
    pub fn try_from_pid(pid: Pid) -> Option<Self> {
        let cell = pid.cell()?;
        let kind = cell
            .state
            .lock()
            .extras
            .as_ref()
            .and_then(|e| e.server_kind);
        (kind == Some(kind_of::<S>())).then(|| ServerRef::from_pid(pid))
    }

    /// The server of type `S` registered as `name`, if there is one.
    pub fn whereis(node: &Node, name: &str) -> Option<Self> {
        Self::try_from_pid(node.whereis(name)?)
    }

    /// Sends `msg` and waits for the reply, at most `timeout`. A bounded
    /// mailbox makes the caller wait for room first (back pressure), within
    /// the same timeout.
    pub async fn call<M>(&self, msg: M, timeout: Duration) -> Result<S::Reply, CallError>
    where
        S: Handle<M>,
        M: Send + 'static,
    {
        request(
            &self.pid,
            |reply: oneshot::Sender<S::Reply>| {
                Envelope::<S>(Box::new(move |server, ctx| {
                    Box::pin(async move {
                        let answer = server.handle(msg, ctx).await;
                        let _ = reply.send(answer);
                    })
                }))
            },
            timeout,
        )
        .await
    }

    /// Sends `msg` without waiting (its reply is dropped); a full bounded
    /// mailbox reports `Full`.
    pub fn cast<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        S: Handle<M>,
        M: Send + 'static,
    {
        let Some(cell) = self.pid.cell() else {
            return Err(SendError::NoProcess(msg));
        };
        // Checked first, so the message can be given back on failure.
        if cell.has_exited() {
            return Err(SendError::NoProcess(msg));
        }
        if let Some(b) = &cell.bounded
            && cell.state.lock().mailbox.len() >= b.capacity
        {
            return Err(SendError::Full(msg));
        }
        let envelope = Envelope::<S>(Box::new(move |server, ctx| {
            Box::pin(async move {
                let _ = server.handle(msg, ctx).await;
            })
        }));
        match self.pid.send(envelope) {
            Ok(()) => Ok(()),
            // Raced with an exit or a fill-up: the message is in the
            // envelope; say what happened without it.
            Err(SendError::Full(_)) | Err(SendError::NoProcess(_)) => {
                tracing::debug!(target: "owl::server", server = %self.pid, "cast lost in a race");
                Ok(())
            }
        }
    }
}

/// Starts a server (not linked to the caller) and waits for its `init`.
pub async fn start<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
) -> Result<ServerRef<S>, ExitReason> {
    start_opts(node, server, opts, None, None).await
}

/// Starts a server registered as `name` (before its `init` runs; a name
/// already taken fails the start).
pub async fn start_named<S: Server>(
    node: &Node,
    name: &str,
    server: S,
    opts: SpawnOptions,
) -> Result<ServerRef<S>, ExitReason> {
    start_opts(node, server, opts, None, Some(name.to_string())).await
}

/// Starts a server linked to a supervisor, as a child start function does.
pub async fn start_link<S: Server>(
    args: &StartArgs,
    server: S,
    opts: SpawnOptions,
) -> Result<Pid, ExitReason> {
    start_link_named(args, None, server, opts).await
}

/// [`start_link`] registered as `name` when given.
pub async fn start_link_named<S: Server>(
    args: &StartArgs,
    name: Option<&str>,
    server: S,
    opts: SpawnOptions,
) -> Result<Pid, ExitReason> {
    let opts = opts
        .link_to(args.supervisor.clone())
        .parent(args.supervisor.clone());
    let parent = Some(args.supervisor.clone());
    start_opts(&args.node, server, opts, parent, name.map(str::to_string))
        .await
        .map(|s| s.pid)
}

async fn start_opts<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
    parent: Option<Pid>,
    name: Option<String>,
) -> Result<ServerRef<S>, ExitReason> {
    let opts = if opts.label.is_none() {
        opts.label(short_type_name::<S>())
    } else {
        opts
    };
    let (ack_tx, ack_rx) = oneshot::channel::<Result<(), ExitReason>>();
    let (pid, exited) = node.spawn_watched(opts, move |p| serve(p, server, parent, name, ack_tx));
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
    name: Option<String>,
    ack: oneshot::Sender<Result<(), ExitReason>>,
) -> ExitReason {
    p.cell.state.lock().extras().server_kind = Some(kind_of::<S>());
    p.stops_with_parent();
    if let Some(name) = &name
        && let Err(e) = p.register(name)
    {
        let reason = ExitReason::error(format!("cannot register as {name:?}: {e}"));
        let _ = ack.send(Err(reason.clone()));
        return reason;
    }
    let mut ctx = Ctx {
        process: &mut p,
        stop: None,
    };
    if let Err(reason) = server.init(&mut ctx).await {
        let _ = ack.send(Err(reason.clone()));
        return reason;
    }
    let _ = ack.send(Ok(()));
    loop {
        let msg = ctx.process.recv_any().await;
        match msg.downcast::<Envelope<S>>() {
            Ok(Envelope(handle)) => handle(&mut server, &mut ctx).await,
            Err(msg) => match msg.downcast::<Exit>() {
                Ok(exit) if is_from_parent(&exit.from, parent.as_ref()) => {
                    ctx.stop = Some(exit.reason)
                }
                Ok(exit) => server.handle_info(Message::new(exit), &mut ctx).await,
                Err(msg) => server.handle_info(msg, &mut ctx).await,
            },
        }
        if let Some(reason) = ctx.stop.take() {
            // Ending for good: a replacement may take the name while
            // `terminate` still runs.
            ctx.process.release_own_name();
            server.terminate(&reason, &mut ctx).await;
            return reason;
        }
    }
}

/// An exit signal from the parent (or from the node itself, `<0.0.0>`) means
/// "stop now" to a trapping server or supervisor.
pub(crate) fn is_from_parent(from: &Pid, parent: Option<&Pid>) -> bool {
    from.id().0 == 0 || parent == Some(from)
}
