//! Servers, like OTP's `gen_server`: a process that owns some state and
//! answers requests, one at a time.
//!
//! A server is a type implementing [`Server`] (start-up, other messages,
//! clean-up — every method has a default) and [`Handle<M>`] once per kind
//! of request `M` it answers, each with its own reply type: no reply enum
//! to match on ([`HandleLater<M>`] for a reply that comes later).
//! [`ServerRef::call`] sends a request and waits for the reply (always
//! within its timeout); [`ServerRef::cast`] sends one without waiting.
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

mod reply;

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::message::{Exit, Message};
use crate::node::Node;
use crate::pid::Pid;
use crate::process::{Process, SendError, SpawnOptions};
use crate::supervisor::StartArgs;

use crate::call::{self, Kind, request};
pub use crate::call::{CallError, PendingReply};
pub use crate::lifecycle::StartError;
use crate::lifecycle::{is_from_parent, register_or_holder};
use reply::Envelope;
pub use reply::{Answers, Handle, HandleLater, Later, Now, ReplyTo};

/// A server's view of its own process while it handles something: the
/// [`Process`] (through `Deref`), and the ways to stop after this request
/// or to continue with more work before the next one.
#[derive(Debug)]
pub struct Ctx<'a> {
    process: &'a mut Process,
    stop: Option<ExitReason>,
    next: Option<Message>,
}

impl Ctx<'_> {
    /// Stops the server once the current request is answered (after
    /// [`Server::terminate`]), with `reason` as its exit reason.
    pub fn stop(&mut self, reason: ExitReason) {
        self.stop = Some(reason);
    }

    /// Runs [`Server::handle_continue`] with `work` right after the current
    /// callback, before any other message is taken — OTP's
    /// `{continue, Term}`: finish an `init` or a request in steps without
    /// letting other requests in between. A second call replaces the first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Cache { warm: bool }
    /// struct Warm;
    /// impl Server for Cache {
    ///     // Start quickly; warm up before the first request is served.
    ///     async fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), ExitReason> {
    ///         ctx.continue_with(Warm);
    ///         Ok(())
    ///     }
    ///     async fn handle_continue(&mut self, work: Message, _: &mut Ctx<'_>) {
    ///         if work.is::<Warm>() { self.warm = true; }
    ///     }
    /// }
    /// struct IsWarm;
    /// impl Handle<IsWarm> for Cache {
    ///     type Reply = bool;
    ///     async fn handle(&mut self, _: IsWarm, _: &mut Ctx<'_>) -> bool { self.warm }
    /// }
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// let warm = rt.block_on(async move {
    ///     let cache = server::start(&node, Cache::default(), SpawnOptions::new()).await.unwrap();
    ///     cache.call(IsWarm, Duration::from_secs(1)).await.unwrap()
    /// });
    /// assert!(warm, "the continuation ran before the first request");
    /// ```
    pub fn continue_with<W: Send + 'static>(&mut self, work: W) {
        self.next = Some(Message::new(work));
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
/// requests it answers are its [`Handle`] and [`HandleLater`]
/// implementations.
///
/// `terminate` runs when the server stops on purpose: a handler called
/// [`Ctx::stop`], someone called [`ServerRef::stop`], or its parent (a
/// supervisor stopping it) sent it an exit signal. Like OTP, a server that
/// does not trap exits is simply killed by any other exit signal, without
/// `terminate`; one that traps them ([`SpawnOptions::trap_exit`]) gets
/// them from others as [`Exit`] messages in `handle_info`.
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

    /// Runs the work a callback asked for with [`Ctx::continue_with`],
    /// before the next message. The default drops it with a warning.
    fn handle_continue(
        &mut self,
        work: Message,
        ctx: &mut Ctx<'_>,
    ) -> impl Future<Output = ()> + Send {
        tracing::warn!(target: "owl::server", server = %ctx.pid(),
            work_type = work.type_name(), "continue_with without handle_continue: dropped");
        async {}
    }

    /// Runs when the server stops on purpose (see the trait's docs).
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Ctx<'_>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// Marks a process as a server of type `S`, for typed lookups.
fn kind_of<S: 'static>() -> Kind {
    Kind(Some((TypeId::of::<fn(S)>(), "server of this type")))
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

/// Asks a server to stop with a reason (see [`ServerRef::stop`]).
struct StopRequest(ExitReason);

impl<S: Server> ServerRef<S> {
    /// The server's pid.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Wraps a pid known to run `S`, unchecked: a pid of another kind makes
    /// every call fail at once with [`CallError::WrongKind`]. Prefer
    /// [`try_from_pid`](Self::try_from_pid) or [`whereis`](Self::whereis).
    pub fn from_pid(pid: Pid) -> Self {
        ServerRef {
            pid,
            _server: PhantomData,
        }
    }

    /// Wraps `pid` if it runs a server of type `S`.
    pub fn try_from_pid(pid: Pid) -> Option<Self> {
        call::check_target(&pid, kind_of::<S>())
            .ok()
            .map(|()| ServerRef::from_pid(pid))
    }

    /// The server of type `S` registered as `name`, if there is one now.
    pub fn whereis(node: &Node, name: &str) -> Option<Self> {
        Self::try_from_pid(node.whereis(name)?)
    }

    /// A handle that finds the server by `name` at every request — OTP's
    /// `gen_server:call(Name, …)` — so it never goes stale when a
    /// supervisor restarts the server under the same name.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::prelude::*;
    ///
    /// struct Greeter;
    /// impl Server for Greeter {}
    /// impl Handle<&'static str> for Greeter {
    ///     type Reply = String;
    ///     async fn handle(&mut self, who: &'static str, _: &mut Ctx<'_>) -> String {
    ///         format!("hello, {who}")
    ///     }
    /// }
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// rt.block_on(async move {
    ///     let greeter = ServerRef::<Greeter>::named(&node, "greeter");
    ///     let t = Duration::from_secs(1);
    ///     assert_eq!(greeter.call("Ada", t).await, Err(CallError::NoProcess), "not started yet");
    ///     let first = server::start_named(&node, "greeter", Greeter, SpawnOptions::new()).await.unwrap();
    ///     assert_eq!(greeter.call("Ada", t).await.unwrap(), "hello, Ada");
    ///     first.stop(ExitReason::Normal, t).await.unwrap();
    ///     server::start_named(&node, "greeter", Greeter, SpawnOptions::new()).await.unwrap();
    ///     assert_eq!(greeter.call("Bo", t).await.unwrap(), "hello, Bo", "the new one");
    /// });
    /// ```
    pub fn named(node: &Node, name: &str) -> Named<S> {
        Named {
            node: node.clone(),
            name: name.into(),
            _server: PhantomData,
        }
    }

    /// Sends `msg` and waits for the reply, at most `timeout`. Fails fast:
    /// a full bounded mailbox is [`CallError::Full`] and a dead server
    /// [`CallError::NoProcess`] at once; [`call_wait`](Self::call_wait)
    /// waits for room instead.
    pub async fn call<M, How>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<<S as Answers<M, How>>::Reply, CallError>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        request(
            &self.pid,
            kind_of::<S>(),
            |reply| S::envelope(msg, Some(reply)),
            timeout,
            false,
        )
        .await
    }

    /// Like [`call`](Self::call), but waits for room while the server's
    /// bounded mailbox is full (back pressure), within the same timeout. A
    /// server that ends meanwhile fails the call with its exit reason.
    pub async fn call_wait<M, How>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<<S as Answers<M, How>>::Reply, CallError>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        request(
            &self.pid,
            kind_of::<S>(),
            |reply| S::envelope(msg, Some(reply)),
            timeout,
            true,
        )
        .await
    }

    /// Sends `msg` now and returns at once; the reply is collected later
    /// with [`PendingReply::receive`] (OTP's `send_request` and
    /// `receive_response`). Fails fast like [`call`](Self::call).
    pub fn send_request<M, How>(
        &self,
        msg: M,
    ) -> Result<PendingReply<<S as Answers<M, How>>::Reply>, CallError>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        call::try_send(&self.pid, kind_of::<S>(), |reply| {
            S::envelope(msg, Some(reply))
        })
    }

    /// Sends `msg` without waiting (its reply, if any, is dropped). `Ok`
    /// means it is in the server's mailbox; otherwise the message comes
    /// back: [`SendError::Full`] for a full bounded mailbox,
    /// [`SendError::NoProcess`] for a server that is gone.
    pub fn cast<M, How>(&self, msg: M) -> Result<(), SendError<M>>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        let Some(cell) = self.pid.cell() else {
            return Err(SendError::NoProcess(msg));
        };
        // The check for room and the push are one step: no race can
        // lose a message that was answered `Ok`.
        cell.deliver_with(msg, |msg| Message::new(S::envelope(msg, None)), true)
    }

    /// Stops the server with `reason` and waits (at most `timeout`) until
    /// it has: it finishes the request it is handling and those already in
    /// its mailbox, runs [`Server::terminate`], then exits with `reason` —
    /// OTP's `gen_server:stop/3`. `Ok` once it exited with `reason`;
    /// [`CallError::Exited`] if it ended otherwise (`terminate` crashed).
    pub async fn stop(&self, reason: ExitReason, timeout: Duration) -> Result<(), CallError> {
        call::check_target(&self.pid, kind_of::<S>())?;
        let exited = self.pid.wait_exit();
        // A stop request is the runtime's own message: never refused for room.
        if self.pid.send_reply(StopRequest(reason.clone())).is_err() {
            return Err(CallError::NoProcess);
        }
        match tokio::time::timeout(timeout, exited).await {
            Err(_) => Err(CallError::Timeout),
            Ok(ExitReason::NoProc) => Err(CallError::NoProcess),
            Ok(ended) if ended == reason => Ok(()),
            Ok(other) => Err(CallError::Exited(other)),
        }
    }
}

/// A server found by its registered name at every request (see
/// [`ServerRef::named`]). A name that is not registered is
/// [`CallError::NoProcess`]; one held by another kind of process,
/// [`CallError::WrongKind`].
pub struct Named<S> {
    node: Node,
    name: std::sync::Arc<str>,
    _server: PhantomData<fn() -> S>,
}

impl<S> Clone for Named<S> {
    fn clone(&self) -> Self {
        Named {
            node: self.node.clone(),
            name: self.name.clone(),
            _server: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for Named<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Named({:?})", self.name)
    }
}

impl<S: Server> Named<S> {
    /// The server registered under the name now.
    pub fn resolve(&self) -> Result<ServerRef<S>, CallError> {
        let pid = self.node.whereis(&self.name).ok_or(CallError::NoProcess)?;
        call::check_target(&pid, kind_of::<S>())?;
        Ok(ServerRef::from_pid(pid))
    }

    /// [`ServerRef::call`] on the server registered under the name now.
    pub async fn call<M, How>(
        &self,
        msg: M,
        timeout: Duration,
    ) -> Result<<S as Answers<M, How>>::Reply, CallError>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        self.resolve()?.call(msg, timeout).await
    }

    /// [`ServerRef::cast`] on the server registered under the name now.
    pub fn cast<M, How>(&self, msg: M) -> Result<(), SendError<M>>
    where
        S: Answers<M, How>,
        M: Send + 'static,
    {
        match self.resolve() {
            Ok(server) => server.cast(msg),
            Err(_) => Err(SendError::NoProcess(msg)),
        }
    }
}

/// Starts a server (not linked to the caller) and waits for its `init`.
pub async fn start<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
) -> Result<ServerRef<S>, StartError> {
    start_opts(node, server, opts, None, None).await
}

/// Starts a server registered as `name` (before its `init` runs). A name
/// already taken is [`StartError::AlreadyStarted`] with the holder's pid.
pub async fn start_named<S: Server>(
    node: &Node,
    name: &str,
    server: S,
    opts: SpawnOptions,
) -> Result<ServerRef<S>, StartError> {
    start_opts(node, server, opts, None, Some(name.to_string())).await
}

/// Starts a server linked to a supervisor, answering as a child start
/// function does (`Result<Pid, ExitReason>`): a refused start is its
/// reason, and leaves no exit signal with the supervisor.
pub async fn start_link<S: Server>(
    args: &StartArgs,
    server: S,
    opts: SpawnOptions,
) -> Result<Pid, ExitReason> {
    start_link_named(args, None, server, opts).await
}

/// [`start_link`] registered as `name` when given; a name already taken is
/// the reason `already started as <pid>` (the refused process ended
/// `normal`, without a crash report).
pub async fn start_link_named<S: Server>(
    args: &StartArgs,
    name: Option<&str>,
    server: S,
    opts: SpawnOptions,
) -> Result<Pid, ExitReason> {
    let opts = args.child_options(opts);
    let parent = Some(args.supervisor.clone());
    start_opts(&args.node, server, opts, parent, name.map(str::to_string))
        .await
        .map(|s| s.pid)
        .map_err(ExitReason::from)
}

async fn start_opts<S: Server>(
    node: &Node,
    server: S,
    opts: SpawnOptions,
    parent: Option<Pid>,
    name: Option<String>,
) -> Result<ServerRef<S>, StartError> {
    let opts = if opts.label.is_none() {
        opts.label(short_type_name::<S>())
    } else {
        opts
    };
    let (ack_tx, ack_rx) = oneshot::channel::<Result<(), StartError>>();
    let linked = parent.clone();
    let (pid, exited) = node.spawn_watched(opts, move |p| serve(p, server, linked, name, ack_tx));
    let refused = match ack_rx.await {
        Ok(Ok(())) => return Ok(ServerRef::from_pid(pid)),
        Ok(Err(refused)) => Some(refused),
        // It crashed before answering (a panic in `init`).
        Err(_) => None,
    };
    // Return only once the failed process is gone, so the caller sees a
    // clean slate…
    let reason = exited.await.unwrap_or(ExitReason::NoProc);
    // …and no exit signal of it waiting in the parent's mailbox (OTP 26's
    // `proc_lib` consumes it too). An orderly refusal unlinked itself
    // first; a crash could not.
    if let Some(cell) = parent.as_ref().and_then(Pid::cell) {
        while crate::process::receive::take_first::<Exit>(&cell, &mut |e| e.from == pid).is_some() {
        }
    }
    Err(refused.unwrap_or(StartError::Failed(reason)))
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
    ack: oneshot::Sender<Result<(), StartError>>,
) -> ExitReason {
    p.cell.state.lock().extras().server_kind = kind_of::<S>().0.map(|(id, _)| id);
    p.stops_with_parent();
    if let Some(name) = &name
        && let Err(holder) = register_or_holder(&p, name)
    {
        // Not a crash: nothing started. No report, no signal to the parent.
        if let Some(parent) = &parent {
            p.unlink(parent);
        }
        let _ = ack.send(Err(StartError::AlreadyStarted(holder)));
        return ExitReason::Normal;
    }
    let mut ctx = Ctx {
        process: &mut p,
        stop: None,
        next: None,
    };
    if let Err(reason) = server.init(&mut ctx).await {
        if let Some(parent) = &parent {
            ctx.process.unlink(parent);
        }
        let _ = ack.send(Err(StartError::Failed(reason.clone())));
        return reason;
    }
    let _ = ack.send(Ok(()));
    loop {
        // Work a callback asked for runs before the next message.
        while ctx.stop.is_none()
            && let Some(work) = ctx.next.take()
        {
            server.handle_continue(work, &mut ctx).await;
        }
        if let Some(reason) = ctx.stop.take() {
            // Ending for good: a replacement may take the name while
            // `terminate` still runs.
            ctx.process.release_own_name();
            server.terminate(&reason, &mut ctx).await;
            return reason;
        }
        let msg = ctx.process.recv_any().await;
        let msg = match msg.downcast::<Envelope<S>>() {
            Ok(Envelope(handle)) => {
                handle(&mut server, &mut ctx).await;
                continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<StopRequest>() {
            Ok(StopRequest(reason)) => {
                ctx.stop = Some(reason);
                continue;
            }
            Err(msg) => msg,
        };
        match msg.downcast::<Exit>() {
            Ok(exit) if is_from_parent(&exit.from, parent.as_ref()) => ctx.stop = Some(exit.reason),
            Ok(exit) => server.handle_info(Message::new(exit), &mut ctx).await,
            Err(msg) => server.handle_info(msg, &mut ctx).await,
        }
    }
}
