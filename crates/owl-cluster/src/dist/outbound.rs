//! What waits to go to one peer: a queue per lane, taken in turn, and the
//! sending half of the connection, which a sender may write to itself.
//!
//! A small frame sent while nothing waits for the peer is written by the
//! sending thread at once (encrypted and handed to the kernel without
//! waiting): on a machine where waking another thread costs tens of
//! microseconds, a round trip through the I/O thread's writer would pay
//! that twice. Everything else waits in the lanes for the writer task, and
//! a direct write the socket could not take whole is finished by it.
//!
//! Which small frames go direct: one every `DIRECT_EVERY` at most, so a
//! stream gets batched, and besides that the first one after each frame
//! from the peer, so a conversation (a ping and its pong, a call and its
//! answer) never waits for the writer, however fast it goes.

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsStream;

use super::arrivals::Arrivals;
use super::splice::Frame;
use super::wire::{BULK_FRAME, CHUNK, CHUNK_HEADER, FIRST_PREFIX, Place, put_chunk_header};

/// The sending half of a live connection.
pub(crate) type Wire = WriteHalf<TlsStream<TcpStream>>;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is gone.
    Closed,
    /// The peer is not keeping up: the queue holds its limit in bytes.
    Full,
}

/// The frames waiting for one connection, by lane. `W` is the sending
/// half of the connection: a TLS stream's, but any writer in the tests.
#[derive(Debug)]
pub(crate) struct Outbound<W = Wire> {
    /// Tells this connection apart from earlier and later ones to the
    /// same peer (what a watch or call was sent on).
    pub(crate) generation: u32,
    limit: usize,
    lanes: Mutex<Lanes>,
    /// The connection's sending half once it is up; whoever holds
    /// `Lanes::writing` may use it.
    wire: Mutex<Option<W>>,
    /// Whether `wire` is set, read without taking its lock (a writer may
    /// hold it while it encrypts a batch).
    attached: AtomicBool,
    wake: Notify,
    closed: AtomicBool,
    /// A frame came from the peer since the last direct write: the next
    /// small frame may go direct even if the last went out just now.
    heard: AtomicBool,
    /// The node's counts of what its connections sent.
    counts: Arc<SendCounts>,
    /// Wakes whoever waits for the connection to end.
    closing: Notify,
    /// The queue of this connection's bulk connection, once it is up (see
    /// `bulk`): large frames go there, markers here.
    bulk: OnceLock<Arc<Outbound<W>>>,
    /// Held while a large frame and its marker are queued, so that the
    /// markers of a lane are in the order of its bulk frames.
    bulk_order: Mutex<()>,
    /// What came from the peer, main and bulk frames put back in order.
    pub(crate) arrivals: Arrivals,
    /// Why the connection was closed from this side, if it was for a reason
    /// found elsewhere (its bulk connection broke).
    why_closed: Mutex<Option<String>>,
}

/// What a node's connections sent, counted by their queues (see
/// `DistStats`).
#[derive(Debug, Default)]
pub(crate) struct SendCounts {
    /// Frames queued or written.
    pub(crate) frames: AtomicU64,
    /// Of those, frames their senders wrote at once.
    pub(crate) direct: AtomicU64,
    /// Frames sent on bulk connections.
    pub(crate) bulk: AtomicU64,
}

#[derive(Debug, Default)]
struct Lanes {
    queues: HashMap<u64, VecDeque<Queued>>,
    /// Lanes with something to send, in the order they get their turn.
    ready: VecDeque<u64>,
    bytes: usize,
    /// Someone (the writer task or a sender) is writing to the wire:
    /// nobody else may, or chunks would interleave.
    writing: bool,
    /// What a direct write left: bytes the socket did not take (they go
    /// before anything else), or encrypted bytes still to flush.
    leftover: Vec<u8>,
    unflushed: bool,
    /// When a sender last wrote directly.
    last_direct: Option<Instant>,
}

/// How long after a direct write the next frame waits for the writer task
/// instead: a sender that writes often (a stream) gets its frames batched,
/// one system call for many, while one that sends now and then (a request,
/// a ping) never waits for a thread to wake.
const DIRECT_EVERY: Duration = Duration::from_micros(50);

/// What the writer task gets to write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// `batch` holds bytes; write them, flush, then call [`Outbound::done_writing`].
    Write,
    /// Nothing to write: wait for [`Outbound::wait`].
    Idle,
}

#[derive(Debug)]
struct Queued {
    frame: Frame,
    sent: usize,
}

impl<W: AsyncWrite + Unpin> Outbound<W> {
    pub(crate) fn new(generation: u32, limit: usize, counts: Arc<SendCounts>) -> Self {
        Outbound {
            generation,
            limit,
            lanes: Mutex::new(Lanes::default()),
            wire: Mutex::new(None),
            attached: AtomicBool::new(false),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            counts,
            closing: Notify::new(),
            bulk: OnceLock::new(),
            bulk_order: Mutex::new(()),
            // Whatever may be in flight on both connections at once.
            arrivals: Arrivals::new(limit.saturating_mul(2)),
            why_closed: Mutex::new(None),
        }
    }

    /// Ends the connection, saying why (see [`closed_why`](Self::closed_why)).
    pub(crate) fn close_for(&self, why: String) {
        self.why_closed.lock().get_or_insert(why);
        self.close();
    }

    /// Why the connection was closed from this side.
    pub(crate) fn closed_why(&self) -> String {
        self.why_closed
            .lock()
            .clone()
            .unwrap_or_else(|| "closed here".into())
    }

    /// Gives the connection its bulk connection's queue: from now on large
    /// frames go there. False if it has one already.
    pub(crate) fn attach_bulk(&self, bulk: Arc<Outbound<W>>) -> bool {
        self.bulk.set(bulk).is_ok()
    }

    /// Queues `frame` on `lane`, or writes it at once when nothing waits; a
    /// large frame goes on the bulk connection when it is up, a marker in
    /// its place here. Never waits: a full queue refuses.
    pub(crate) fn push(&self, lane: u64, frame: impl Into<Frame>) -> Result<(), Refused> {
        let frame = frame.into();
        match self.bulk.get() {
            Some(bulk) if frame.len() >= BULK_FRAME => {
                let _order = self.bulk_order.lock();
                if self.is_closed() {
                    return Err(Refused::Closed);
                }
                bulk.push(lane, frame)?;
                self.counts.bulk.fetch_add(1, Ordering::Relaxed);
                // Never refused for room: the bulk frame is queued
                // already, and its marker is empty.
                self.queue(lane, Frame::default(), false)
            }
            _ => self.queue(lane, frame, true),
        }
    }

    /// Notes that a whole frame came from the peer: the next small frame
    /// to it may be an answer, and goes out without waiting (see the
    /// module's doc).
    pub(crate) fn heard(&self) {
        // A load first: a stream of frames in leaves the line shared.
        if !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
        }
    }

    /// Gives the queue its connection's sending half: from now on small
    /// frames to an idle connection are written by their senders.
    pub(crate) fn attach(&self, wire: W) {
        *self.wire.lock() = Some(wire);
        self.attached.store(true, Ordering::Release);
    }

    /// Queues `frame` on this connection, or writes it at once when nothing
    /// waits. `bounded`: refused if the queue holds its limit.
    fn queue(&self, lane: u64, frame: Frame, bounded: bool) -> Result<(), Refused> {
        if self.is_closed() {
            return Err(Refused::Closed);
        }
        {
            let mut lanes = self.lanes.lock();
            // A marker is an empty frame: what waits is told by the lanes.
            let idle =
                !lanes.writing && lanes.bytes == 0 && lanes.ready.is_empty() && !lanes.unflushed;
            let small = frame.contiguous().filter(|f| f.len() <= CHUNK);
            if let Some(small) = small.filter(|_| idle && self.attached.load(Ordering::Acquire)) {
                let now = Instant::now();
                let lately = lanes
                    .last_direct
                    .is_some_and(|at| now.duration_since(at) < DIRECT_EVERY);
                // Taken under the lanes' lock, by any direct write: one
                // answer per frame heard.
                let answer = self.heard.swap(false, Ordering::Relaxed);
                if answer || !lately {
                    lanes.last_direct = Some(now);
                    lanes.writing = true;
                    drop(lanes);
                    self.counts.frames.fetch_add(1, Ordering::Relaxed);
                    self.counts.direct.fetch_add(1, Ordering::Relaxed);
                    self.write_now(lane, small);
                    return Ok(());
                }
            }
            // One frame may always wait, however large (the limit on a
            // single message is checked before), so a big message to an
            // idle peer is never refused.
            if bounded && lanes.bytes > 0 && lanes.bytes + frame.len() > self.limit {
                return Err(Refused::Full);
            }
            lanes.bytes += frame.len();
            let Lanes { queues, ready, .. } = &mut *lanes;
            let queue = queues.entry(lane).or_default();
            if queue.is_empty() {
                ready.push_back(lane);
            }
            queue.push_back(Queued { frame, sent: 0 });
        }
        self.counts.frames.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// Writes one chunk without waiting (the caller holds `writing`).
    /// Whatever the socket does not take now is left to the writer task,
    /// which is woken only then, or when frames queued meanwhile.
    fn write_now(&self, lane: u64, frame: &[u8]) {
        let mut header = Vec::with_capacity(CHUNK_HEADER);
        put_chunk_header(&mut header, frame.len(), lane, Place::Last);
        let total = header.len() + frame.len();
        let mut cx = Context::from_waker(Waker::noop());
        let (taken, flushed) = match self.wire.lock().as_mut() {
            Some(wire) => {
                let mut wire = Pin::new(wire);
                let slices = [IoSlice::new(&header), IoSlice::new(frame)];
                match wire.as_mut().poll_write_vectored(&mut cx, &slices) {
                    Poll::Ready(Ok(n)) => {
                        let flushed = n == total
                            && matches!(wire.as_mut().poll_flush(&mut cx), Poll::Ready(Ok(())));
                        (n, flushed)
                    }
                    // An error is the writer task's to find and report.
                    Poll::Ready(Err(_)) | Poll::Pending => (0, false),
                }
            }
            None => (0, false),
        };
        let mut lanes = self.lanes.lock();
        lanes.writing = false;
        if taken < total {
            let rest = header.iter().chain(frame).skip(taken);
            lanes.leftover.extend(rest);
        }
        let more = !flushed || !lanes.ready.is_empty();
        lanes.unflushed |= !flushed;
        drop(lanes);
        if more {
            self.wake.notify_one();
        }
    }

    /// The writer task's turn: what a direct write left, then chunks from
    /// the lanes. While the writer holds the turn, senders queue.
    pub(crate) fn take_turn(&self, batch: &mut Vec<u8>, max: usize) -> Turn {
        let mut lanes = self.lanes.lock();
        if lanes.writing {
            // A sender is writing; it wakes the writer if it leaves work.
            return Turn::Idle;
        }
        batch.append(&mut lanes.leftover);
        let unflushed = std::mem::take(&mut lanes.unflushed);
        Self::fill_locked(&mut lanes, batch, max);
        if batch.is_empty() && !unflushed {
            return Turn::Idle;
        }
        lanes.writing = true;
        Turn::Write
    }

    /// Ends the writer task's turn.
    pub(crate) fn done_writing(&self) {
        self.lanes.lock().writing = false;
    }

    /// Polls a write of the whole of `buf` and a flush on the wire (the
    /// caller holds the turn).
    pub(crate) fn poll_write_all(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        written: &mut usize,
    ) -> Poll<std::io::Result<()>> {
        let mut guard = self.wire.lock();
        let Some(wire) = guard.as_mut() else {
            return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()));
        };
        let mut wire = Pin::new(wire);
        while *written < buf.len() {
            match wire.as_mut().poll_write(cx, &buf[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        wire.poll_flush(cx)
    }

    /// Moves chunks into `batch`, one per lane in turn, until it holds
    /// about `max` bytes or nothing is left.
    #[cfg(test)]
    fn fill(&self, batch: &mut Vec<u8>, max: usize) {
        Self::fill_locked(&mut self.lanes.lock(), batch, max);
    }

    fn fill_locked(lanes: &mut Lanes, batch: &mut Vec<u8>, max: usize) {
        while batch.len() < max {
            let Some(lane) = lanes.ready.pop_front() else {
                break;
            };
            let Lanes {
                queues,
                ready,
                bytes,
                ..
            } = lanes;
            let queue = queues.get_mut(&lane).expect("a ready lane has a queue");
            let head = queue.front_mut().expect("a ready lane is not empty");
            let total = head.frame.len();
            let first = head.sent == 0 && total > CHUNK;
            let len = if first {
                CHUNK - FIRST_PREFIX
            } else {
                (total - head.sent).min(CHUNK)
            };
            let last = head.sent + len == total;
            if first {
                put_chunk_header(batch, CHUNK, lane, Place::First);
                batch.extend_from_slice(&(total as u32).to_le_bytes());
            } else {
                let place = if last { Place::Last } else { Place::Middle };
                put_chunk_header(batch, len, lane, place);
            }
            head.frame.copy_to(head.sent, len, batch);
            head.sent += len;
            if last {
                *bytes -= head.frame.len();
                queue.pop_front();
            }
            if queue.is_empty() {
                queues.remove(&lane);
            } else {
                ready.push_back(lane);
            }
        }
    }

    /// Bytes waiting.
    /// Bytes waiting here and on the bulk connection.
    pub(crate) fn queued_bytes(&self) -> usize {
        let bulk = self.bulk.get().map_or(0, |b| b.queued_bytes());
        self.lanes.lock().bytes + bulk
    }

    /// Waits until the connection is closed.
    pub(crate) async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closed() {
            return;
        }
        notified.await;
    }

    /// Waits until something is pushed (or the queue is closed).
    pub(crate) async fn wait(&self) {
        self.wake.notified().await
    }

    /// Ends the connection: nothing more is queued, and the writer stops.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let mut lanes = self.lanes.lock();
        *lanes = Lanes::default();
        drop(lanes);
        // The socket closes once its reading half is gone too.
        self.attached.store(false, Ordering::Release);
        self.wire.lock().take();
        self.wake.notify_one();
        self.closing.notify_waiters();
        if let Some(bulk) = self.bulk.get() {
            bulk.close();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{CHUNK_HEADER, read_chunk_header};
    use super::*;

    fn chunks(batch: &[u8]) -> Vec<(u64, usize, Place)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < batch.len() {
            let header: [u8; CHUNK_HEADER] = batch[at..at + CHUNK_HEADER].try_into().unwrap();
            let (len, lane, last) = read_chunk_header(&header).unwrap();
            out.push((lane, len, last));
            at += CHUNK_HEADER + len;
        }
        out
    }

    /// A queue whose connection is not up yet.
    fn queue(limit: usize) -> Outbound {
        Outbound::new(1, limit, Arc::default())
    }

    /// Ends the writer's turn as the writer task would, writing nothing.
    fn drain<W: AsyncWrite + Unpin>(out: &Outbound<W>) {
        let mut batch = Vec::new();
        while out.take_turn(&mut batch, usize::MAX) == Turn::Write {
            out.done_writing();
            batch.clear();
        }
    }

    #[test]
    fn an_answer_is_written_at_once_and_a_stream_is_batched() {
        let counts = Arc::new(SendCounts::default());
        let direct = || counts.direct.load(Ordering::Relaxed);
        let out = Outbound::new(1, usize::MAX, counts.clone());
        // The other end is read by nobody; it holds far more than this test
        // writes, so every write is taken whole.
        let (wire, _peer) = tokio::io::duplex(1 << 20);
        out.attach(wire);

        // `since` is taken before a direct write: when less than
        // `DIRECT_EVERY` has passed since it, less has passed since the
        // write, and the next frame must wait.
        let since = Instant::now();
        out.push(1, vec![1; 10]).unwrap();
        assert_eq!(direct(), 1, "an idle connection");
        assert_eq!(out.queued_bytes(), 0);

        // Right after, with nothing heard: batched.
        out.push(1, vec![2; 10]).unwrap();
        if since.elapsed() < DIRECT_EVERY {
            assert_eq!(direct(), 1, "a stream waits");
            assert_eq!(out.queued_bytes(), 10);
        }
        drain(&out);

        // A frame from the peer: the next one answers it, at once, however
        // recently the last went; the one after that does not.
        for round in 0..3 {
            let before = direct();
            out.heard();
            let since = Instant::now();
            out.push(1, vec![3; 10]).unwrap();
            assert_eq!(direct(), before + 1, "round {round}");
            out.push(1, vec![4; 10]).unwrap();
            if since.elapsed() < DIRECT_EVERY {
                assert_eq!(direct(), before + 1, "round {round}");
            }
            drain(&out);
        }
        // Every frame counts as sent, direct or batched.
        assert_eq!(counts.frames.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_big_frame_takes_turns_with_a_small_one_on_another_lane() {
        let out = queue(usize::MAX);
        out.push(3, vec![1; 3 * CHUNK]).unwrap();
        out.push(5, vec![2; 10]).unwrap();
        let mut batch = Vec::new();
        out.fill(&mut batch, CHUNK + CHUNK_HEADER + 1);
        // The big frame's first chunk (its length, then its start), then
        // the small frame whole: it does not wait for the rest.
        assert_eq!(
            chunks(&batch),
            vec![(3, CHUNK, Place::First), (5, 10, Place::Last)]
        );
        let announced = &batch[CHUNK_HEADER..CHUNK_HEADER + FIRST_PREFIX];
        assert_eq!(announced, (3 * CHUNK as u32).to_le_bytes());
        batch.clear();
        out.fill(&mut batch, usize::MAX);
        assert_eq!(
            chunks(&batch),
            vec![
                (3, CHUNK, Place::Middle),
                (3, CHUNK, Place::Middle),
                (3, FIRST_PREFIX, Place::Last)
            ]
        );
        assert_eq!(out.queued_bytes(), 0);
    }

    #[test]
    fn frames_on_one_lane_keep_their_order() {
        let out = queue(usize::MAX);
        for i in 0..5u8 {
            out.push(7, vec![i; 3]).unwrap();
        }
        let mut batch = Vec::new();
        out.fill(&mut batch, usize::MAX);
        let firsts: Vec<u8> = batch
            .chunks(CHUNK_HEADER + 3)
            .map(|c| c[CHUNK_HEADER])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_too() {
        let out = queue(100);
        out.push(1, vec![0; 80]).unwrap();
        assert_eq!(out.push(1, vec![0; 30]), Err(Refused::Full));
        out.push(1, vec![0; 20]).unwrap();
        out.close();
        assert_eq!(out.push(1, vec![0; 1]), Err(Refused::Closed));
        assert_eq!(out.queued_bytes(), 0);
    }
}
