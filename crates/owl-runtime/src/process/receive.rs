//! Selective receive: take the first matching message, or wait for one.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::message::Message;
use crate::process::cell::{ProcessCell, Receiving};

/// Whether an exit signal has arrived that will end the process at its
/// next poll. A receive then takes nothing more: signals from one sender
/// arrive in order, so a message sent after a fatal `exit` must never be
/// handled (the BEAM's guarantee), even by a process still inside a poll.
fn exit_pending(cell: &ProcessCell) -> bool {
    cell.exit_pending.load(std::sync::atomic::Ordering::Acquire)
}

/// Removes and returns the first message of type `T` that `pred` accepts.
pub(crate) fn take_first<T: Send + 'static>(
    cell: &ProcessCell,
    pred: &mut dyn FnMut(&T) -> bool,
) -> Option<T> {
    if exit_pending(cell) {
        return None;
    }
    let mut st = cell.state.lock();
    let at = st
        .mailbox
        .position(|m| m.downcast_ref::<T>().is_some_and(&mut *pred))?;
    let msg = st.mailbox.remove(at).expect("position is in range");
    drop(st);
    cell.message_taken();
    Some(msg.downcast::<T>().expect("type was checked"))
}

/// Removes and returns the oldest message, whatever its type.
pub(crate) fn take_oldest(cell: &ProcessCell) -> Option<Message> {
    if exit_pending(cell) {
        return None;
    }
    let msg = cell.state.lock().mailbox.pop_front()?;
    cell.message_taken();
    Some(msg)
}

/// Decides which message a receive takes and what it hands out.
pub trait Matcher {
    /// What the receive resolves to.
    type Output;
    /// Whether this message is the one to take.
    fn matches(&mut self, msg: &Message) -> bool;
    /// Turns the taken message into the output.
    fn extract(msg: Message) -> Self::Output;
}

/// Takes the first message of type `T` accepted by the predicate `P`.
pub struct ByType<T, P>(P, PhantomData<fn() -> T>);

impl<T, P> std::fmt::Debug for ByType<T, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByType<{}>", std::any::type_name::<T>())
    }
}

impl<T: Send + 'static, P: FnMut(&T) -> bool> Matcher for ByType<T, P> {
    type Output = T;
    fn matches(&mut self, msg: &Message) -> bool {
        msg.downcast_ref::<T>().is_some_and(&mut self.0)
    }
    fn extract(msg: Message) -> T {
        msg.downcast::<T>().expect("type was checked")
    }
}

/// Takes whatever message comes first.
#[derive(Debug)]
pub struct AnyMessage;

impl Matcher for AnyMessage {
    type Output = Message;
    fn matches(&mut self, _: &Message) -> bool {
        true
    }
    fn extract(msg: Message) -> Message {
        msg
    }
}

/// The future returned by [`Process::recv`](crate::Process::recv) and friends.
///
/// While it waits, the process shows `receive` as its current activity.
#[derive(Debug)]
pub struct Recv<'a, M> {
    cell: &'a Arc<ProcessCell>,
    matcher: M,
}

impl<'a, T, P> Recv<'a, ByType<T, P>> {
    pub(crate) fn by_type(cell: &'a Arc<ProcessCell>, pred: P) -> Self {
        Recv {
            cell,
            matcher: ByType(pred, PhantomData),
        }
    }
}

impl<'a> Recv<'a, AnyMessage> {
    pub(crate) fn any(cell: &'a Arc<ProcessCell>) -> Self {
        Recv {
            cell,
            matcher: AnyMessage,
        }
    }
}

impl<M: Matcher + Unpin> Future for Recv<'_, M> {
    type Output = M::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<M::Output> {
        let this = &mut *self;
        if exit_pending(this.cell) {
            // The exit is applied when the process task is polled next
            // (the signal woke it); nothing is taken meanwhile.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut st = this.cell.state.lock();
        match st.mailbox.position(|m| this.matcher.matches(m)) {
            Some(at) => {
                let msg = st.mailbox.remove(at).expect("position is in range");
                st.receiving = Receiving::No;
                drop(st);
                this.cell.message_taken();
                Poll::Ready(M::extract(msg))
            }
            None => {
                let on_task = st
                    .task_waker
                    .as_ref()
                    .is_some_and(|t| t.will_wake(cx.waker()));
                st.receiving = if on_task {
                    Receiving::OnTask
                } else {
                    let slot = &mut st.extras().receive_waker;
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                    Receiving::OnOther
                };
                Poll::Pending
            }
        }
    }
}
