//! Requests with replies, as servers and supervisors answer them: send a
//! request carrying its own reply channel, then wait for the reply, the
//! target's exit or the timeout — whichever comes first.
//!
//! Every way a call can fail is told apart ([`CallError`]): the target is
//! gone, its mailbox is full, it is another kind of process, the caller
//! is calling itself, the reply is late, or the target dropped the request.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::exit::ExitReason;
use crate::message::Message;
use crate::pid::Pid;
use crate::process::SendError;

/// Why a call got no answer. Each case is a different situation for the
/// caller: retry later (`Full`, `Timeout`), look elsewhere (`NoProcess`,
/// `Exited`), or fix the program (`WrongKind`, `CallingSelf`, `NoReply`).
///
/// ```
/// use owl_runtime::server::CallError;
/// use owl_runtime::ExitReason;
/// assert_eq!(CallError::Exited(ExitReason::error("boom")).to_string(), "the process exited: boom");
/// assert_eq!(CallError::Full.to_string(), "the process's mailbox is full");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// No answer within the timeout (the target may still be working on it).
    Timeout,
    /// The target ended before answering, with this reason.
    Exited(ExitReason),
    /// The target was not alive (or never existed).
    NoProcess,
    /// The target's bounded mailbox is full: the request was not sent.
    Full,
    /// The target dropped the request without answering: it does not
    /// handle requests of this kind, or a deferred reply was dropped.
    NoReply,
    /// The target is another kind of process than the call is for (a
    /// supervisor's request to a worker, say): named here.
    WrongKind(&'static str),
    /// A process called itself: it could never answer (OTP's `calling_self`).
    CallingSelf,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout => f.write_str("the call timed out"),
            CallError::Exited(r) => write!(f, "the process exited: {r}"),
            CallError::NoProcess => f.write_str("no such process"),
            CallError::Full => f.write_str("the process's mailbox is full"),
            CallError::NoReply => f.write_str("the process dropped the request without answering"),
            CallError::WrongKind(kind) => write!(f, "the process is not a {kind}"),
            CallError::CallingSelf => f.write_str("a process called itself"),
        }
    }
}
impl std::error::Error for CallError {}

/// How long a call whose request was dropped waits to learn whether the
/// target crashed (its exit follows within microseconds) before answering
/// [`CallError::NoReply`].
const CRASH_GRACE: Duration = Duration::from_millis(100);

/// What a request expects its target to be: any process, or one of a kind
/// (a server of type `S`, a supervisor), named for errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kind(pub Option<(TypeId, &'static str)>);

/// How a request waits for room in a full bounded mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Not at all: [`CallError::Full`] at once.
    FailFast,
    /// Until the deadline (back pressure).
    WaitUntil(tokio::time::Instant),
}

type Exited = Pin<Box<dyn Future<Output = ExitReason> + Send>>;

/// Sent in place of a reply by a target that will not answer (a deferred
/// reply dropped unanswered): the caller learns it at once.
#[derive(Debug)]
pub(crate) struct Dropped;

/// The reply channel a request carries.
pub(crate) type ReplySender<T> = oneshot::Sender<Result<T, Dropped>>;

/// A request on its way: collect its reply with
/// [`receive`](Self::receive). Made by
/// [`ServerRef::send_request`](crate::server::ServerRef::send_request)
/// (OTP's `gen_server:send_request/2`), so that a process can send several
/// requests first and collect their replies afterwards.
#[must_use = "a request's reply is collected with `receive`"]
pub struct PendingReply<T> {
    rx: oneshot::Receiver<Result<T, Dropped>>,
    exited: Exited,
}

impl<T> std::fmt::Debug for PendingReply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingReply")
    }
}

fn exit_error(reason: ExitReason) -> CallError {
    match reason {
        ExitReason::NoProc => CallError::NoProcess,
        r => CallError::Exited(r),
    }
}

/// Checks that `target` may be sent a request of `kind` from here.
pub(crate) fn check_target(target: &Pid, kind: Kind) -> Result<(), CallError> {
    if target.id().0 != 0 && target.id().0 == crate::trace::current() {
        return Err(CallError::CallingSelf);
    }
    let Some(cell) = target.cell() else {
        return Err(CallError::NoProcess);
    };
    if let Kind(Some((expected, name))) = kind {
        let st = cell.state.lock();
        if st.exited {
            return Err(CallError::NoProcess);
        }
        let actual = st.extras.as_ref().and_then(|e| e.server_kind);
        if actual != Some(expected) {
            return Err(CallError::WrongKind(name));
        }
    }
    Ok(())
}

/// Sends a request now or not at all: a full mailbox is
/// [`CallError::Full`], a dead target [`CallError::NoProcess`], at once.
pub(crate) fn try_send<Req, Rep>(
    target: &Pid,
    kind: Kind,
    make: impl FnOnce(ReplySender<Rep>) -> Req,
) -> Result<PendingReply<Rep>, CallError>
where
    Req: Send + 'static,
{
    check_target(target, kind)?;
    let exited: Exited = Box::pin(target.wait_exit());
    let cell = target.cell().ok_or(CallError::NoProcess)?;
    let (tx, rx) = oneshot::channel();
    match cell.deliver_with(make(tx), Message::new, true) {
        Ok(()) => Ok(PendingReply { rx, exited }),
        Err(SendError::Full(_)) => Err(CallError::Full),
        Err(SendError::NoProcess(_)) => Err(CallError::NoProcess),
    }
}

/// Sends a request built around a fresh reply channel; the reply is then
/// collected from the returned [`PendingReply`].
pub(crate) async fn send_request<Req, Rep>(
    target: &Pid,
    kind: Kind,
    make: impl FnOnce(ReplySender<Rep>) -> Req,
    room: Room,
) -> Result<PendingReply<Rep>, CallError>
where
    Req: Send + 'static,
{
    check_target(target, kind)?;
    // Watch before sending: an exit that follows the send is always seen,
    // with its reason.
    let mut exited: Exited = Box::pin(target.wait_exit());
    let Some(cell) = target.cell() else {
        return Err(CallError::NoProcess);
    };
    let (tx, rx) = oneshot::channel();
    let mut request = make(tx);
    loop {
        let space = cell.bounded.as_ref().map(|b| b.space.notified());
        let mut space = std::pin::pin!(space);
        if let Some(n) = space.as_mut().as_pin_mut() {
            n.enable();
        }
        match cell.deliver_with(request, Message::new, true) {
            Ok(()) => return Ok(PendingReply { rx, exited }),
            Err(SendError::NoProcess(_)) => {
                // Gone before the request got in: how it ended, if it just did.
                let grace = tokio::time::Instant::now() + CRASH_GRACE;
                return Err(match tokio::time::timeout_at(grace, &mut exited).await {
                    Ok(reason) => exit_error(reason),
                    Err(_) => CallError::NoProcess,
                });
            }
            Err(SendError::Full(r)) => request = r,
        }
        let Room::WaitUntil(deadline) = room else {
            return Err(CallError::Full);
        };
        tokio::select! {
            biased;
            // The target ended while the caller waited for room: say how.
            reason = &mut exited => return Err(exit_error(reason)),
            () = async { if let Some(n) = space.as_pin_mut() { n.await } } => {}
            () = tokio::time::sleep_until(deadline) => return Err(CallError::Timeout),
        }
    }
}

impl<T> PendingReply<T> {
    /// Waits for the reply, at most `timeout`: the reply, or why there is
    /// none (the target ended, dropped the request, or is late).
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::prelude::*;
    ///
    /// struct Echo;
    /// impl Server for Echo {}
    /// impl Handle<u32> for Echo {
    ///     type Reply = u32;
    ///     async fn handle(&mut self, n: u32, _: &mut Ctx<'_>) -> u32 { n }
    /// }
    ///
    /// let rt = Runtime::new(Config::default()).unwrap();
    /// let node = rt.node();
    /// let sum = rt.block_on(async move {
    ///     let echo = server::start(&node, Echo, SpawnOptions::new()).await.unwrap();
    ///     // Send both, then collect both.
    ///     let a = echo.send_request(1u32).unwrap();
    ///     let b = echo.send_request(2u32).unwrap();
    ///     let t = Duration::from_secs(1);
    ///     a.receive(t).await.unwrap() + b.receive(t).await.unwrap()
    /// });
    /// assert_eq!(sum, 3);
    /// ```
    pub async fn receive(self, timeout: Duration) -> Result<T, CallError> {
        self.receive_until(tokio::time::Instant::now() + timeout)
            .await
    }

    pub(crate) async fn receive_until(
        self,
        deadline: tokio::time::Instant,
    ) -> Result<T, CallError> {
        let PendingReply { rx, mut exited } = self;
        let reply = tokio::select! {
            biased;
            reply = rx => reply,
            reason = &mut exited => return Err(exit_error(reason)),
            _ = tokio::time::sleep_until(deadline) => return Err(CallError::Timeout),
        };
        match reply {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(Dropped)) => Err(CallError::NoReply),
            // The reply channel was dropped. A target that crashed while
            // handling the request dropped it as it unwound, and its exit
            // follows at once: report how it ended. One that lives on
            // dropped the request itself.
            Err(_) => {
                let grace = (tokio::time::Instant::now() + CRASH_GRACE).min(deadline);
                match tokio::time::timeout_at(grace, exited).await {
                    Ok(reason) => Err(exit_error(reason)),
                    Err(_) => Err(CallError::NoReply),
                }
            }
        }
    }
}

/// Sends a request and waits for its reply, at most `timeout` in all. It
/// always ends within `timeout`, however the target behaves.
pub(crate) async fn request<Req, Rep>(
    target: &Pid,
    kind: Kind,
    make: impl FnOnce(ReplySender<Rep>) -> Req,
    timeout: Duration,
    wait_for_room: bool,
) -> Result<Rep, CallError>
where
    Req: Send + 'static,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let room = if wait_for_room {
        Room::WaitUntil(deadline)
    } else {
        Room::FailFast
    };
    let pending = tokio::time::timeout_at(deadline, send_request(target, kind, make, room))
        .await
        .map_err(|_| CallError::Timeout)??;
    pending.receive_until(deadline).await
}
