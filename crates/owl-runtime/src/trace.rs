//! Message tracing: what one process receives and sends for a while, like
//! Erlang's `dbg:p(Pid, [m])` — bounded in time and in events, and free for
//! every untraced process (one relaxed atomic load per send while any trace
//! runs anywhere, nothing otherwise).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::node::Node;
use crate::pid::{Pid, PidId};

/// Traces running in this OS process; when 0, sends skip every trace check.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The pid number of the process being polled on this thread (0: none),
    /// so a delivery knows its sender.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn set_current(pid: u64) {
    CURRENT.set(pid);
}

/// The pid number of the process this thread is polling now (0: none).
pub(crate) fn current() -> u64 {
    CURRENT.get()
}

/// Which way a traced message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Delivered to the traced process.
    In,
    /// Sent by the traced process.
    Out,
}

/// One traced message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Time since the trace started.
    pub at: Duration,
    /// Received or sent.
    pub direction: Direction,
    /// The other side: the sender of a received message (if it was sent
    /// from inside a process), the receiver of a sent one.
    pub peer: Option<PidId>,
    /// The message's Rust type, e.g. `owl_sandbox::GuestReply`.
    pub message_type: &'static str,
}

pub(crate) struct Tracer {
    pub pid: u64,
    started: Instant,
    max: usize,
    events: Mutex<Vec<TraceEvent>>,
}

impl Tracer {
    fn record(&self, direction: Direction, peer: Option<u64>, message_type: &'static str) {
        let mut events = self.events.lock();
        if events.len() < self.max {
            events.push(TraceEvent {
                at: self.started.elapsed(),
                direction,
                peer: peer.map(PidId),
                message_type,
            });
        }
    }
}

/// Called on every delivery: records it if the receiver or the sender is traced.
#[inline]
pub(crate) fn on_deliver(
    node: &std::sync::Weak<crate::node::NodeInner>,
    to: u64,
    msg: &crate::message::Message,
) {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return;
    }
    let message_type = msg.type_name();
    let Some(node) = node.upgrade() else { return };
    let from = CURRENT.get();
    let tracers = node.tracers.lock();
    for tracer in tracers.iter() {
        if tracer.pid == to {
            tracer.record(Direction::In, (from != 0).then_some(from), message_type);
        } else if tracer.pid == from {
            tracer.record(Direction::Out, Some(to), message_type);
        }
    }
}

impl Node {
    /// Records the messages `pid` receives and sends for `duration`, at most
    /// `max_events` of them, oldest first. Several traces may run at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use owl_runtime::{Runtime, trace::Direction};
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let echo = node.spawn(|mut p| async move {
    ///     loop {
    ///         let (from, n): (owl_runtime::Pid, u32) = p.recv().await;
    ///         let _ = from.send(n + 1);
    ///     }
    /// });
    /// let events = rt.block_on(async {
    ///     let trace = node.trace(&echo, Duration::from_millis(200), 50);
    ///     let asker = node.spawn_task(move |mut p| async move {
    ///         echo.send((p.pid().clone(), 1u32)).unwrap();
    ///         p.recv::<u32>().await
    ///     });
    ///     assert_eq!(asker.join().await, Ok(2));
    ///     trace.await
    /// });
    /// let directions: Vec<Direction> = events.iter().map(|e| e.direction).collect();
    /// assert_eq!(directions, [Direction::In, Direction::Out]);
    /// ```
    pub fn trace(
        &self,
        pid: &Pid,
        duration: Duration,
        max_events: usize,
    ) -> impl std::future::Future<Output = Vec<TraceEvent>> + Send + 'static {
        let tracer = Arc::new(Tracer {
            pid: pid.id().0,
            started: Instant::now(),
            max: max_events,
            events: Mutex::new(Vec::new()),
        });
        self.inner.tracers.lock().push(tracer.clone());
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        let guard = TraceGuard {
            node: self.clone(),
            tracer,
        };
        let exited = pid.wait_exit();
        async move {
            // A process that ends has nothing more to trace.
            let _ = tokio::time::timeout(duration, exited).await;
            let events = std::mem::take(&mut *guard.tracer.events.lock());
            drop(guard);
            events
        }
    }
}

/// Removes the tracer however the trace future ends (even dropped early).
struct TraceGuard {
    node: Node,
    tracer: Arc<Tracer>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.node
            .inner
            .tracers
            .lock()
            .retain(|t| !Arc::ptr_eq(t, &self.tracer));
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
