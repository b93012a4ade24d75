//! What waits to go to one peer: a queue per lane, taken in turn.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::wire::{CHUNK, put_chunk_header};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is gone.
    Closed,
    /// The peer is not keeping up: the queue holds its limit in bytes.
    Full,
}

/// The frames waiting for one connection, by lane.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// Tells this connection apart from earlier and later ones to the
    /// same peer (what a watch or call was sent on).
    pub(crate) generation: u32,
    limit: usize,
    lanes: Mutex<Lanes>,
    wake: Notify,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Lanes {
    queues: HashMap<u64, VecDeque<Queued>>,
    /// Lanes with something to send, in the order they get their turn.
    ready: VecDeque<u64>,
    bytes: usize,
}

#[derive(Debug)]
struct Queued {
    frame: Vec<u8>,
    sent: usize,
}

impl Outbound {
    pub(crate) fn new(generation: u32, limit: usize) -> Outbound {
        Outbound {
            generation,
            limit,
            lanes: Mutex::new(Lanes::default()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Queues `frame` on `lane`. Never waits: a full queue refuses.
    pub(crate) fn push(&self, lane: u64, frame: Vec<u8>) -> Result<(), Refused> {
        if self.is_closed() {
            return Err(Refused::Closed);
        }
        {
            let mut lanes = self.lanes.lock();
            // One frame may always wait, however large (the limit on a
            // single message is checked before), so a big message to an
            // idle peer is never refused.
            if lanes.bytes > 0 && lanes.bytes + frame.len() > self.limit {
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
        self.wake.notify_one();
        Ok(())
    }

    /// Moves chunks into `batch`, one per lane in turn, until it holds
    /// about `max` bytes or nothing is left.
    pub(crate) fn fill(&self, batch: &mut Vec<u8>, max: usize) {
        let mut lanes = self.lanes.lock();
        while batch.len() < max {
            let Some(lane) = lanes.ready.pop_front() else {
                break;
            };
            let Lanes {
                queues,
                ready,
                bytes,
            } = &mut *lanes;
            let queue = queues.get_mut(&lane).expect("a ready lane has a queue");
            let head = queue.front_mut().expect("a ready lane is not empty");
            let len = (head.frame.len() - head.sent).min(CHUNK);
            let last = head.sent + len == head.frame.len();
            put_chunk_header(batch, len, lane, last);
            batch.extend_from_slice(&head.frame[head.sent..head.sent + len]);
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
    pub(crate) fn queued_bytes(&self) -> usize {
        self.lanes.lock().bytes
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
        self.wake.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::{CHUNK_HEADER, read_chunk_header};
    use super::*;

    fn chunks(batch: &[u8]) -> Vec<(u64, usize, bool)> {
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

    #[test]
    fn a_big_frame_takes_turns_with_a_small_one_on_another_lane() {
        let out = Outbound::new(1, usize::MAX);
        out.push(3, vec![1; 3 * CHUNK]).unwrap();
        out.push(5, vec![2; 10]).unwrap();
        let mut batch = Vec::new();
        out.fill(&mut batch, CHUNK + CHUNK_HEADER + 1);
        // The big frame's first chunk, then the small frame whole: it does
        // not wait for the other two chunks.
        assert_eq!(chunks(&batch), vec![(3, CHUNK, false), (5, 10, true)]);
        batch.clear();
        out.fill(&mut batch, usize::MAX);
        assert_eq!(chunks(&batch), vec![(3, CHUNK, false), (3, CHUNK, true)]);
        assert_eq!(out.queued_bytes(), 0);
    }

    #[test]
    fn frames_on_one_lane_keep_their_order() {
        let out = Outbound::new(1, usize::MAX);
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
        let out = Outbound::new(1, 100);
        out.push(1, vec![0; 80]).unwrap();
        assert_eq!(out.push(1, vec![0; 30]), Err(Refused::Full));
        out.push(1, vec![0; 20]).unwrap();
        out.close();
        assert_eq!(out.push(1, vec![0; 1]), Err(Refused::Closed));
        assert_eq!(out.queued_bytes(), 0);
    }
}
