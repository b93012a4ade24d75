//! Large frames that came on the bulk connection, put back in their place.
//!
//! A frame of [`BULK_FRAME`](super::wire::BULK_FRAME) bytes or more travels
//! on the bulk connection (see [`bulk`](super::bulk)), and in its place on
//! the main connection its sender writes a *marker*: an empty frame on the
//! same lane. Markers keep the order. A lane's frames are handed on in the
//! order of its main frames and markers, each marker replaced by the lane's
//! next bulk frame. So what one process sends another still arrives in the
//! order sent, while a small message to another process never waits behind
//! a large one, in a queue or in the kernel.
//!
//! A marker whose bulk frame has not come yet *parks* its lane: the main
//! frames after it wait here. A bulk frame whose marker has not come yet
//! waits too. What waits is bounded: a peer that sends markers without bulk
//! frames, or the reverse, has its connection closed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::wire::Malformed;

/// The join of one connection's main and bulk frames.
#[derive(Debug)]
pub(crate) struct Arrivals {
    /// Lanes with a marker that waits for its bulk frame. The main reader
    /// hands a frame on without the lock while none is parked: only it
    /// parks lanes, so none can become parked behind its back.
    parked: AtomicUsize,
    waiting: Mutex<Waiting>,
    /// The most bytes held here at once.
    limit: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    lanes: HashMap<u64, Lane>,
    held: usize,
}

#[derive(Debug, Default)]
struct Lane {
    /// What the main connection brought behind a marker, the marker first.
    parked: VecDeque<Held>,
    /// Bulk frames that came before their markers, in order.
    early: VecDeque<bytes::Bytes>,
}

#[derive(Debug)]
enum Held {
    Marker,
    Frame(bytes::Bytes),
}

/// A frame from the main connection.
pub(crate) enum Main<'a> {
    /// A marker: the lane's next bulk frame goes here.
    Marker,
    /// Any other frame.
    Frame(Piece<'a>),
}

/// A whole frame, as it is handed on.
#[derive(Clone, Copy)]
pub(crate) enum Piece<'a> {
    /// In a buffer of the reader's (a frame of one chunk).
    Borrowed(&'a [u8]),
    /// In a buffer of its own, which large byte strings in it may share.
    Shared(&'a bytes::Bytes),
}

impl Piece<'_> {
    fn len(&self) -> usize {
        match self {
            Piece::Borrowed(b) => b.len(),
            Piece::Shared(b) => b.len(),
        }
    }

    /// Runs `f` on the frame's bytes; large byte strings it decodes share
    /// the frame's buffer when it has one of its own (see
    /// [`splice::receiving`](super::splice::receiving)).
    pub(crate) fn read<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Piece::Borrowed(bytes) => f(bytes),
            Piece::Shared(frame) => super::splice::receiving(frame, || f(frame)),
        }
    }

    fn to_bytes(self) -> bytes::Bytes {
        match self {
            Piece::Borrowed(b) => bytes::Bytes::copy_from_slice(b),
            Piece::Shared(b) => b.clone(),
        }
    }
}

impl Arrivals {
    pub(crate) fn new(limit: usize) -> Arrivals {
        Arrivals {
            parked: AtomicUsize::new(0),
            waiting: Mutex::new(Waiting::default()),
            limit,
        }
    }

    /// Takes a frame of `lane` from the main connection: hands it (or, for
    /// a marker, the bulk frame it stands for) to `handle` now, or keeps it
    /// until the bulk frame its lane waits for comes.
    pub(crate) fn take_main(
        &self,
        lane: u64,
        frame: Main<'_>,
        mut handle: impl FnMut(Piece<'_>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        if let Main::Frame(frame) = frame
            && self.parked.load(Ordering::Acquire) == 0
        {
            return handle(frame);
        }
        let mut waiting = self.waiting.lock();
        let Waiting { lanes, held } = &mut *waiting;
        if let Some(entry) = lanes.get_mut(&lane).filter(|l| !l.parked.is_empty()) {
            let kept = match frame {
                Main::Marker => Held::Marker,
                Main::Frame(frame) => {
                    *held += frame.len();
                    Held::Frame(frame.to_bytes())
                }
            };
            entry.parked.push_back(kept);
            return self.check(*held);
        }
        if let Main::Frame(frame) = frame {
            // Nothing of this lane waits here.
            return handle(frame);
        }
        let entry = lanes.entry(lane).or_default();
        match entry.early.pop_front() {
            Some(bulk) => {
                *held -= bulk.len();
                if entry.early.is_empty() {
                    lanes.remove(&lane);
                }
                handle(Piece::Shared(&bulk))
            }
            None => {
                entry.parked.push_back(Held::Marker);
                self.parked.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
        }
    }

    /// Takes a whole frame of `lane` from the bulk connection: hands it to
    /// `handle` if its marker came, then the main frames that waited
    /// behind it; else keeps it for its marker.
    pub(crate) fn take_bulk(
        &self,
        lane: u64,
        frame: bytes::Bytes,
        mut handle: impl FnMut(Piece<'_>) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        let mut waiting = self.waiting.lock();
        let Waiting { lanes, held } = &mut *waiting;
        let entry = lanes.entry(lane).or_default();
        if !matches!(entry.parked.front(), Some(Held::Marker)) {
            *held += frame.len();
            entry.early.push_back(frame);
            return self.check(*held);
        }
        entry.parked.pop_front();
        handle(Piece::Shared(&frame))?;
        // What came behind the marker, up to the next marker (whose bulk
        // frame comes after this one: bulk frames of a lane keep their
        // order too).
        while let Some(Held::Frame(next)) = entry
            .parked
            .pop_front_if(|held| matches!(held, Held::Frame(_)))
        {
            *held -= next.len();
            handle(Piece::Shared(&next))?;
        }
        if entry.parked.is_empty() {
            self.parked.fetch_sub(1, Ordering::AcqRel);
            if entry.early.is_empty() {
                lanes.remove(&lane);
            }
        }
        Ok(())
    }

    fn check(&self, held: usize) -> Result<(), Malformed> {
        if held > self.limit {
            return Err(Malformed(format!(
                "more than {} bytes wait for their place between the main and bulk connections",
                self.limit
            )));
        }
        Ok(())
    }

    /// Bytes held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.waiting.lock().held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what is handed on, as text.
    fn record(log: &mut Vec<String>) -> impl FnMut(Piece<'_>) -> Result<(), Malformed> + '_ {
        |frame| {
            log.push(String::from_utf8_lossy(&frame.to_bytes()).into_owned());
            Ok(())
        }
    }

    fn main(frame: &[u8]) -> Main<'_> {
        Main::Frame(Piece::Borrowed(frame))
    }

    fn bulk(text: &str) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn frames_of_a_lane_keep_their_order_whichever_connection_is_first() {
        let arrivals = Arrivals::new(1 << 20);
        let mut log = Vec::new();
        // Lane 1: the marker first, its bulk frame later.
        arrivals.take_main(1, main(b"a"), record(&mut log)).unwrap();
        arrivals
            .take_main(1, Main::Marker, record(&mut log))
            .unwrap();
        arrivals.take_main(1, main(b"c"), record(&mut log)).unwrap();
        // Another lane is not held up.
        arrivals.take_main(2, main(b"x"), record(&mut log)).unwrap();
        arrivals
            .take_main(1, Main::Marker, record(&mut log))
            .unwrap();
        arrivals.take_main(1, main(b"e"), record(&mut log)).unwrap();
        assert_eq!(log, ["a", "x"]);
        arrivals.take_bulk(1, bulk("B"), record(&mut log)).unwrap();
        assert_eq!(log, ["a", "x", "B", "c"]);
        arrivals.take_bulk(1, bulk("D"), record(&mut log)).unwrap();
        assert_eq!(log, ["a", "x", "B", "c", "D", "e"]);
        // Lane 3: the bulk frames first.
        arrivals.take_bulk(3, bulk("P"), record(&mut log)).unwrap();
        arrivals.take_bulk(3, bulk("Q"), record(&mut log)).unwrap();
        assert_eq!(log.len(), 6);
        arrivals
            .take_main(3, Main::Marker, record(&mut log))
            .unwrap();
        arrivals.take_main(3, main(b"r"), record(&mut log)).unwrap();
        arrivals
            .take_main(3, Main::Marker, record(&mut log))
            .unwrap();
        assert_eq!(&log[6..], ["P", "r", "Q"]);
        assert_eq!(arrivals.held(), 0);
        assert_eq!(arrivals.parked.load(Ordering::Relaxed), 0);
        assert!(arrivals.waiting.lock().lanes.is_empty());
    }

    #[test]
    fn a_peer_cannot_make_a_node_hold_more_than_the_limit() {
        // Markers that never get their bulk frames, then main frames.
        let arrivals = Arrivals::new(100);
        let mut log = Vec::new();
        arrivals
            .take_main(1, Main::Marker, record(&mut log))
            .unwrap();
        arrivals
            .take_main(1, main(&[0; 60]), record(&mut log))
            .unwrap();
        assert!(
            arrivals
                .take_main(1, main(&[0; 60]), record(&mut log))
                .is_err()
        );
        // Bulk frames that never get their markers.
        let arrivals = Arrivals::new(100);
        arrivals
            .take_bulk(5, bytes::Bytes::from(vec![0; 80]), |_| Ok(()))
            .unwrap();
        assert!(
            arrivals
                .take_bulk(6, bytes::Bytes::from(vec![0; 80]), |_| Ok(()))
                .is_err()
        );
        assert!(log.is_empty());
    }
}
