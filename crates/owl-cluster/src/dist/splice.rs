//! Large byte strings that cross without being copied: [`Bytes`], and how
//! a frame carries one by reference.
//!
//! A [`Bytes`] of [`SPLICE_AT`] bytes or more is copied neither into the
//! frame that carries it nor out of the frame it arrives in:
//!
//! - **Sending**: the frame is encoded with the [`Splicing`] flavor. A
//!   large `Bytes` *offers* itself (a thread-local slot) just before it
//!   hands its bytes to the serializer; the flavor, handed those very bytes
//!   (same address, same length), keeps a shared reference at that offset
//!   of the frame ([`Frame`]) instead of copying them. The connection's
//!   writer copies them a chunk at a time, on its own thread, as it sends.
//! - **Receiving**: a frame that came in several chunks is one shared
//!   buffer. While its body decodes ([`receiving`]), a large byte string
//!   inside that buffer becomes a slice of it.
//!
//! So a process that sends a 10 MB message, and the scheduler that
//! delivers one, spend microseconds on it, not the milliseconds a copy
//! (and the page faults of a fresh 10 MB buffer) cost — time in which no
//! other process of theirs would run.
//!
//! Serde gives a serializer no way to tell a shared buffer from any other
//! `&[u8]`, hence the hand-over beside it. The address check makes an
//! offer that is not taken harmless: it is dropped at the end of the
//! encoding, and bytes that are not the offered ones are copied as usual.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// The smallest byte string worth sharing rather than copying.
pub(crate) const SPLICE_AT: usize = 32 * 1024;

/// A byte string that crosses between nodes as one block, and, from
/// 32 KiB up, without a copy at either end: a clone shares the bytes, the
/// sending node queues them as they are, and the receiving process gets a
/// slice of the buffer they arrived in.
///
/// The slice keeps the whole buffer of the message it came in, which goes
/// back to the node's pool for the next large message only once every
/// slice of it is dropped: copy out what you keep for long.
///
/// (Serde writes a `Vec<u8>` element by element, which for a 10 MB
/// message costs milliseconds at both ends.)
///
/// ```
/// use owl_cluster::dist::Bytes;
///
/// let blob = Bytes::from(vec![7u8; 1 << 20]);
/// let again = blob.clone(); // shares the megabyte
/// assert_eq!(again.as_ptr(), blob.as_ptr());
/// let json = serde_json::to_vec(&blob).unwrap();
/// assert_eq!(serde_json::from_slice::<Bytes>(&json).unwrap(), blob);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub bytes::Bytes);

impl Bytes {
    /// The bytes as one shared buffer.
    pub fn into_inner(self) -> bytes::Bytes {
        self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len() > 64 {
            write!(f, "Bytes({} bytes)", self.len())
        } else {
            write!(f, "Bytes({:?})", self.0)
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        Bytes(v.into())
    }
}

impl From<bytes::Bytes> for Bytes {
    fn from(b: bytes::Bytes) -> Bytes {
        Bytes(b)
    }
}

impl From<&'static [u8]> for Bytes {
    fn from(b: &'static [u8]) -> Bytes {
        Bytes(bytes::Bytes::from_static(b))
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        offer(&self.0);
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(slice_received(v)
                    .unwrap_or_else(|| bytes::Bytes::copy_from_slice(v))
                    .into())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(v.into())
            }
            // Formats without a bytes type (JSON) write a sequence.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out.into())
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

thread_local! {
    /// Whether a frame is being encoded on this thread with [`Splicing`].
    static ENCODING: Cell<bool> = const { Cell::new(false) };
    /// The byte string about to be handed to the serializer.
    static OFFERED: RefCell<Option<bytes::Bytes>> = const { RefCell::new(None) };
    /// The frame whose body is being decoded on this thread.
    static RECEIVED: RefCell<Option<bytes::Bytes>> = const { RefCell::new(None) };
}

/// Offers `bytes` to the frame being encoded, if any and if large enough.
fn offer(bytes: &bytes::Bytes) {
    if bytes.len() >= SPLICE_AT && ENCODING.get() {
        OFFERED.set(Some(bytes.clone()));
    }
}

/// The offered byte string, if `data` is exactly it.
fn take_offer(data: &[u8]) -> Option<bytes::Bytes> {
    if data.len() < SPLICE_AT {
        return None;
    }
    OFFERED.with_borrow_mut(|offered| {
        let same = offered
            .as_ref()
            .is_some_and(|b| b.as_ptr() == data.as_ptr() && b.len() == data.len());
        if same { offered.take() } else { None }
    })
}

/// Runs `encode` with offers taken (and leaves none behind).
fn encoding<R>(encode: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ENCODING.set(self.0);
            OFFERED.set(None);
        }
    }
    let _restore = Restore(ENCODING.replace(true));
    encode()
}

/// Runs `decode` with `frame` as the buffer large byte strings are sliced
/// from.
pub(crate) fn receiving<R>(frame: &bytes::Bytes, decode: impl FnOnce() -> R) -> R {
    struct Restore(Option<bytes::Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECEIVED.set(self.0.take());
        }
    }
    let _restore = Restore(RECEIVED.replace(Some(frame.clone())));
    decode()
}

/// Decodes a value kept as a shared buffer (a call's request or reply),
/// lending its large byte strings as slices of that buffer.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &bytes::Bytes) -> postcard::Result<T> {
    receiving(body, || postcard::from_bytes(body))
}

/// `v`, a part of the frame being received, as a shared slice of that
/// frame when it is one of several chunks, else copied (a body kept for
/// later decoding: a call's request or reply).
pub(crate) fn share_or_copy(v: &[u8]) -> bytes::Bytes {
    RECEIVED
        .with_borrow(|frame| frame.as_ref().and_then(|f| inside(f, v)))
        .unwrap_or_else(|| bytes::Bytes::copy_from_slice(v))
}

/// `v` as a slice of `frame`, if it lies inside it.
fn inside(frame: &bytes::Bytes, v: &[u8]) -> Option<bytes::Bytes> {
    let (outer, inner) = (frame.as_ptr_range(), v.as_ptr_range());
    // Addresses compared as numbers: `v` may come from anywhere.
    let inside =
        outer.start as usize <= inner.start as usize && inner.end as usize <= outer.end as usize;
    inside.then(|| frame.slice_ref(v))
}

/// A shared slice of the frame being decoded, when `v` is large and lies
/// inside it.
fn slice_received(v: &[u8]) -> Option<bytes::Bytes> {
    if v.len() < SPLICE_AT {
        return None;
    }
    RECEIVED.with_borrow(|frame| inside(frame.as_ref()?, v))
}

/// A frame ready to send: its bytes, less the large byte strings, which
/// stay where they are and are spliced in as the frame is cut into chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    inline: Vec<u8>,
    /// What goes in at which offset of `inline`, offsets ascending.
    spliced: Vec<(usize, bytes::Bytes)>,
    len: usize,
}

impl From<Vec<u8>> for Frame {
    fn from(inline: Vec<u8>) -> Frame {
        Frame {
            len: inline.len(),
            inline,
            spliced: Vec::new(),
        }
    }
}

impl Frame {
    pub(crate) fn with_capacity(inline: usize) -> Frame {
        Vec::with_capacity(inline).into()
    }

    /// Its length on the wire.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The frame as one slice, when nothing is spliced in.
    pub(crate) fn contiguous(&self) -> Option<&[u8]> {
        self.spliced.is_empty().then_some(&self.inline[..])
    }

    /// Appends `data`, copied.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) {
        self.inline.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends `other`, its spliced byte strings still shared.
    pub(crate) fn append(&mut self, other: Frame) {
        let at = self.inline.len();
        self.inline.extend_from_slice(&other.inline);
        self.spliced.extend(
            other
                .spliced
                .into_iter()
                .map(|(offset, b)| (at + offset, b)),
        );
        self.len += other.len;
    }

    /// Overwrites bytes already written (before anything was spliced).
    pub(crate) fn patch(&mut self, at: usize, data: &[u8]) {
        self.inline[at..at + data.len()].copy_from_slice(data);
    }

    fn splice(&mut self, shared: bytes::Bytes) {
        self.len += shared.len();
        self.spliced.push((self.inline.len(), shared));
    }

    /// Appends `len` bytes of the frame from `start` on to `out`.
    pub(crate) fn copy_to(&self, start: usize, len: usize, out: &mut Vec<u8>) {
        let (mut skip, mut left) = (start, len);
        let mut copy = |piece: &[u8]| {
            if skip >= piece.len() {
                skip -= piece.len();
                return left == 0;
            }
            let take = (piece.len() - skip).min(left);
            out.extend_from_slice(&piece[skip..skip + take]);
            skip = 0;
            left -= take;
            left == 0
        };
        let mut at = 0;
        for (offset, shared) in &self.spliced {
            if copy(&self.inline[at..*offset]) || copy(shared) {
                return;
            }
            at = *offset;
        }
        copy(&self.inline[at..]);
    }
}

/// Encodes `value` at the end of `frame`, splicing large [`Bytes`] in.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    frame: Frame,
) -> postcard::Result<Frame> {
    encoding(|| postcard::serialize_with_flavor(value, Splicing(frame)))
}

/// The bytes `value` writes into a frame itself, spliced byte strings left
/// out (so that what is copied is copied once, into a buffer of its size).
pub(crate) fn inline_size<T: Serialize + ?Sized>(value: &T) -> postcard::Result<usize> {
    encoding(|| postcard::serialize_with_flavor(value, InlineSize(0)))
}

/// A postcard flavor that writes into a [`Frame`], splicing what is offered.
struct Splicing(Frame);

impl postcard::ser_flavors::Flavor for Splicing {
    type Output = Frame;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match take_offer(data) {
            Some(shared) => self.0.splice(shared),
            None => self.0.extend_from_slice(data),
        }
        Ok(())
    }

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.inline.push(byte);
        self.0.len += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Frame> {
        Ok(self.0)
    }
}

/// A postcard flavor that counts what [`Splicing`] would copy.
struct InlineSize(usize);

impl postcard::ser_flavors::Flavor for InlineSize {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if take_offer(data).is_none() {
            self.0 += data.len();
        }
        Ok(())
    }

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Message {
        before: String,
        big: Bytes,
        small: Bytes,
        after: u32,
    }

    fn message() -> Message {
        Message {
            before: "head".into(),
            big: Bytes::from(vec![9u8; 5 * SPLICE_AT]),
            small: Bytes::from(vec![1u8; 10]),
            after: 77,
        }
    }

    fn flat(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.copy_to(0, frame.len(), &mut out);
        out
    }

    #[test]
    fn a_large_byte_string_is_shared_not_copied_and_the_frame_reads_the_same() {
        let m = message();
        let frame = encode_into(&m, Frame::default()).unwrap();
        assert!(frame.contiguous().is_none(), "the big bytes are spliced");
        assert_eq!(frame.spliced.len(), 1);
        assert_eq!(frame.spliced[0].1.as_ptr(), m.big.as_ptr());
        assert!(frame.inline.len() < 64, "{}", frame.inline.len());
        assert_eq!(inline_size(&m).unwrap(), frame.inline.len());
        // Byte for byte what plain postcard writes.
        let plain = postcard::to_allocvec(&m).unwrap();
        assert_eq!(flat(&frame), plain);
        // Any window of it, as the writer cuts chunks.
        for (start, len) in [(0, 3), (5, 40_000), (100_000, 63_000), (plain.len() - 9, 9)] {
            let mut out = Vec::new();
            frame.copy_to(start, len, &mut out);
            assert_eq!(out, plain[start..start + len], "{start}+{len}");
        }
        // Nothing is left offered once encoding ends.
        assert!(OFFERED.with_borrow(Option::is_none));
    }

    #[test]
    fn a_frame_appended_to_another_keeps_its_shared_bytes_in_place() {
        let m = message();
        let mut frame = Frame::from(vec![1, 2, 3]);
        frame.append(encode_into(&m, Frame::default()).unwrap());
        assert_eq!(frame.spliced.len(), 1, "still shared");
        let mut expected = vec![1, 2, 3];
        expected.extend(postcard::to_allocvec(&m).unwrap());
        assert_eq!(frame.len(), expected.len());
        assert_eq!(flat(&frame), expected);
    }

    #[test]
    fn a_received_frame_lends_its_large_byte_strings_and_copies_small_ones() {
        let buffer = bytes::Bytes::from(postcard::to_allocvec(&message()).unwrap());
        let got: Message = receiving(&buffer, || postcard::from_bytes(&buffer).unwrap());
        assert_eq!(got, message());
        let range = buffer.as_ptr_range();
        assert!(
            range.contains(&got.big.as_ptr()),
            "the big bytes are a slice"
        );
        assert!(
            !range.contains(&got.small.as_ptr()),
            "small ones are copied"
        );
        // Outside `receiving`, or from another buffer: a copy.
        let elsewhere: Message = postcard::from_bytes(&buffer).unwrap();
        assert!(!range.contains(&elsewhere.big.as_ptr()));
    }

    #[test]
    fn bytes_written_elsewhere_are_never_spliced() {
        // Serialized outside a frame (no offer is taken): plain copies.
        let m = message();
        let plain = postcard::to_allocvec(&m).unwrap();
        assert_eq!(postcard::from_bytes::<Message>(&plain).unwrap(), m);
        // An equal but different buffer is not the offered one.
        encoding(|| {
            offer(&m.big.0);
            assert!(take_offer(&vec![9u8; 5 * SPLICE_AT]).is_none());
            assert!(take_offer(&m.big).is_some());
        });
    }
}
