//! How a server answers: now, from the handler ([`Handle`]), or later,
//! from wherever the reply handle goes ([`HandleLater`], [`ReplyTo`]).

use std::future::Future;
use std::pin::Pin;

use super::{Ctx, Server};
use crate::call::{Dropped, ReplySender};

/// One kind of request a server answers at once: the handler's result is
/// the reply. A server implements it once per kind of request, each with
/// its own reply type; a cast is a request whose reply nobody waits for.
///
/// ```
/// use owl_runtime::prelude::*;
/// struct Counter(u64);
/// impl Server for Counter {}
/// struct Get;
/// impl Handle<Get> for Counter {
///     type Reply = u64;
///     async fn handle(&mut self, _: Get, _: &mut Ctx<'_>) -> u64 {
///         self.0
///     }
/// }
/// ```
pub trait Handle<M: Send + 'static>: Server {
    /// What the request answers.
    type Reply: Send + 'static;

    /// Answers `msg`.
    fn handle(&mut self, msg: M, ctx: &mut Ctx<'_>) -> impl Future<Output = Self::Reply> + Send;
}

/// One kind of request a server answers when it is ready — OTP's
/// `{noreply, State}` and `gen_server:reply/2`, kameo's delegated reply.
/// The handler gets the caller's [`ReplyTo`] and may answer at once, keep
/// it (and go on serving other requests), or hand it to another process.
/// The caller's timeout holds throughout; a handle dropped unanswered ends
/// the call at once with [`CallError::NoReply`](super::CallError::NoReply).
///
/// Callers do not see the difference: [`ServerRef::call`](super::ServerRef::call)
/// works the same for both kinds of handler.
///
/// ```
/// use std::collections::VecDeque;
/// use std::time::Duration;
/// use owl_runtime::prelude::*;
/// use owl_runtime::server::{HandleLater, ReplyTo};
///
/// /// Hands out tickets; a caller waits until one is released.
/// struct Tickets { free: u32, waiting: VecDeque<ReplyTo<u32>> }
/// impl Server for Tickets {}
///
/// struct Take;
/// impl HandleLater<Take> for Tickets {
///     type Reply = u32;
///     async fn handle_later(&mut self, _: Take, reply: ReplyTo<u32>, _: &mut Ctx<'_>) {
///         if self.free > 0 {
///             self.free -= 1;
///             reply.send(self.free);
///         } else {
///             self.waiting.push_back(reply); // answered by a later `Release`
///         }
///     }
/// }
///
/// struct Release;
/// impl Handle<Release> for Tickets {
///     type Reply = ();
///     async fn handle(&mut self, _: Release, _: &mut Ctx<'_>) {
///         match self.waiting.pop_front() {
///             Some(next) => { next.send(0); }
///             None => self.free += 1,
///         }
///     }
/// }
///
/// let rt = Runtime::new(Config::default()).unwrap();
/// let node = rt.node();
/// rt.block_on(async move {
///     let tickets = server::start(&node, Tickets { free: 0, waiting: VecDeque::new() }, SpawnOptions::new())
///         .await
///         .unwrap();
///     let t = Duration::from_secs(5);
///     let waiter = { let tickets = tickets.clone(); tokio::spawn(async move { tickets.call(Take, t).await }) };
///     // The server keeps serving while the first caller waits.
///     tickets.call(Release, t).await.unwrap();
///     assert_eq!(waiter.await.unwrap(), Ok(0));
/// });
/// ```
pub trait HandleLater<M: Send + 'static>: Server {
    /// What the request is eventually answered with.
    type Reply: Send + 'static;

    /// Takes `msg` and the handle to answer it with.
    fn handle_later(
        &mut self,
        msg: M,
        reply: ReplyTo<Self::Reply>,
        ctx: &mut Ctx<'_>,
    ) -> impl Future<Output = ()> + Send;
}

/// The way back to one caller: answer it once with [`send`](Self::send),
/// now or later, from this process or another one (it can be sent in a
/// message). Dropped without an answer, it tells the caller so at once
/// ([`CallError::NoReply`](super::CallError::NoReply)) — unless the drop
/// is a crash unwinding, when the caller learns the crash's reason instead.
#[must_use = "a caller waits for this reply; drop it only to refuse one"]
pub struct ReplyTo<T: Send + 'static> {
    tx: Option<ReplySender<T>>,
}

impl<T: Send + 'static> std::fmt::Debug for ReplyTo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyTo")
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

impl<T: Send + 'static> ReplyTo<T> {
    pub(crate) fn new(tx: Option<ReplySender<T>>) -> Self {
        ReplyTo { tx }
    }

    /// Answers the caller; false if it no longer waits (it timed out, or
    /// the request was a cast).
    pub fn send(mut self, value: T) -> bool {
        self.tx.take().is_some_and(|tx| tx.send(Ok(value)).is_ok())
    }

    /// Whether the caller still waits for this reply.
    pub fn is_waiting(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

impl<T: Send + 'static> Drop for ReplyTo<T> {
    fn drop(&mut self) {
        // A crash unwinding drops the handle: the caller then learns the
        // exit reason (the channel simply closes), not "no reply".
        if let Some(tx) = self.tx.take()
            && !std::thread::panicking()
        {
            let _ = tx.send(Err(Dropped));
        }
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How a request is handled once it reaches a server of type `S`.
type Handler<S> = dyn for<'a> FnOnce(&'a mut S, &'a mut Ctx<'_>) -> BoxFuture<'a> + Send;

/// A request on its way to a server of type `S`.
pub(crate) struct Envelope<S>(pub(crate) Box<Handler<S>>);

/// The reply comes from the handler's result ([`Handle`]).
#[derive(Debug)]
pub enum Now {}

/// The reply comes through a [`ReplyTo`] ([`HandleLater`]).
#[derive(Debug)]
pub enum Later {}

mod sealed {
    pub trait Sealed<M, How> {}
}

/// A server that answers requests of type `M`, either [`Now`] (it
/// implements [`Handle<M>`]) or [`Later`] ([`HandleLater<M>`]). Callers
/// never name `How`: the compiler infers it from the one the server
/// implements. Implemented by the runtime only.
pub trait Answers<M: Send + 'static, How>: Server + sealed::Sealed<M, How> {
    /// What the request answers.
    type Reply: Send + 'static;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn envelope(msg: M, reply: Option<ReplySender<Self::Reply>>) -> Envelope<Self>;
}

impl<S: Handle<M>, M: Send + 'static> sealed::Sealed<M, Now> for S {}
impl<S: HandleLater<M>, M: Send + 'static> sealed::Sealed<M, Later> for S {}

impl<S: Handle<M>, M: Send + 'static> Answers<M, Now> for S {
    type Reply = <S as Handle<M>>::Reply;

    #[allow(private_interfaces)]
    fn envelope(msg: M, reply: Option<ReplySender<Self::Reply>>) -> Envelope<S> {
        Envelope(Box::new(move |server, ctx| {
            Box::pin(async move {
                let answer = server.handle(msg, ctx).await;
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(answer));
                }
            })
        }))
    }
}

impl<S: HandleLater<M>, M: Send + 'static> Answers<M, Later> for S {
    type Reply = <S as HandleLater<M>>::Reply;

    #[allow(private_interfaces)]
    fn envelope(msg: M, reply: Option<ReplySender<Self::Reply>>) -> Envelope<S> {
        Envelope(Box::new(move |server, ctx| {
            Box::pin(server.handle_later(msg, ReplyTo::new(reply), ctx))
        }))
    }
}
