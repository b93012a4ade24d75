//! What travels between two nodes, and how it is cut up.
//!
//! A *frame* is one message, call, reply or signal: a small header
//! (postcard), then its body (the user's value, postcard too). On the
//! connection a frame travels as one or more *chunks* of at most
//! [`CHUNK`] bytes, each tagged with its *lane* — the process (or name) it
//! is for — and its [`Place`] in the frame (the first of several announces
//! the frame's length, see [`assembly`](super::assembly)). The writer takes
//! chunks from the lanes in turn, so a large message to one process is
//! interleaved with, not ahead of, a small one to another; and one lane is
//! one queue, so what one process sends another arrives in the order sent.
//! Frames of [`BULK_FRAME`] bytes or more go on
//! the bulk connection instead, an empty frame (a *marker*) in their place.

use serde::{Deserialize, Serialize};

use super::splice::{self, Frame};

/// The most bytes of a frame in one chunk.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A chunk's header: its length (u32), its lane (u64), its place in its
/// frame ([`Place`], u8).
pub(crate) const CHUNK_HEADER: usize = 13;

/// The frame's whole length (u32) at the start of the first of its chunks,
/// when it has several: the receiver takes a buffer of that size at once
/// rather than growing one (and copying it again at every doubling).
pub(crate) const FIRST_PREFIX: usize = 4;

/// Where a chunk stands in its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// More of the frame follows.
    Middle = 0,
    /// The frame ends with this chunk (or is all in it).
    Last = 1,
    /// The first of several: [`FIRST_PREFIX`] bytes of the frame's length,
    /// then its start.
    First = 2,
}

/// Frames of this many bytes or more travel on the bulk connection: on
/// the main one each would hold a small frame behind it for about a
/// quarter of a millisecond of encryption and decryption, or more.
pub(crate) const BULK_FRAME: usize = 256 * 1024;

/// The first byte a bulk connection's dialer sends, before TLS (whose
/// first byte is never this).
pub(crate) const PREAMBLE: u8 = b'B';

/// The lane of frames that belong to no process (handshake, ticks).
pub(crate) const CONTROL_LANE: u64 = 0;

/// The protocol version in the handshake: nodes that disagree refuse each
/// other with a reason rather than misread each other. 3: large frames
/// travel on a bulk connection, markers in their place (see
/// [`bulk`](super::bulk)).
pub(crate) const VERSION: u32 = 3;

/// Where a frame is going on the receiving node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Target<'a> {
    /// A process, by number and node incarnation.
    Pid { id: u64, creation: u32 },
    /// Whatever process is registered under the name when it arrives.
    Name(&'a str),
}

/// The lane of the process numbered `id` on the receiving node (for frames
/// that answer it: the incarnation plays no part in the lane).
pub(crate) fn pid_lane(id: u64) -> u64 {
    Target::Pid { id, creation: 0 }.lane()
}

impl Target<'_> {
    /// The lane the frame travels on: one per receiving process or name.
    pub(crate) fn lane(&self) -> u64 {
        match self {
            Target::Pid { id, .. } => id.wrapping_mul(2) | 1,
            // Even lanes for names; 0 stays the control lane.
            Target::Name(name) => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in name.bytes() {
                    h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
                }
                (h << 1).max(2)
            }
        }
    }
}

/// Why a remote call failed, as it crosses the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CallFailure<'a> {
    Timeout,
    Exited(&'a str),
    NoProcess,
    Full,
    NoReply,
    WrongKind,
    /// The receiving node does not serve calls of this kind.
    NotServed,
}

/// A frame's header; the body, if any, follows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Head<'a> {
    /// The dialer's first frame.
    Hello {
        node: &'a str,
        creation: u32,
        version: u32,
    },
    /// The acceptor takes the connection.
    Welcome { creation: u32 },
    /// The acceptor refuses it, saying why.
    Refused { why: &'a str },
    /// Nothing to send for a while: "I am alive".
    Tick,
    /// A message; the body is the value, of the type registered as `tag`.
    Send { to: Target<'a>, tag: &'a str },
    /// A call; the body is the request.
    Call {
        id: u64,
        to: Target<'a>,
        tag: &'a str,
        timeout_ms: u64,
    },
    /// A call's answer: the body is the reply when `failure` is `None`.
    Reply {
        id: u64,
        failure: Option<CallFailure<'a>>,
    },
    /// Start watching `target` for the process `watcher` of the sending
    /// node: a monitor, or the remote half of a link.
    Watch {
        reference: u64,
        watcher: u64,
        target: Target<'a>,
        link: bool,
    },
    /// Stop the watch `reference` (a demonitor, or its watcher ended
    /// normally without a link).
    Unwatch { reference: u64 },
    /// The watched process ended (or was never there): `reason` as text.
    Down {
        reference: u64,
        pid: u64,
        reason: &'a str,
    },
    /// The linked process on the sending node ended: the link's other end
    /// gets an exit signal with `reason`.
    LinkExit { reference: u64, reason: &'a str },
    /// A process of the sending node took a cluster-wide name.
    GlobalAdd { name: &'a str, id: u64 },
    /// It let go of it (or ended).
    GlobalRemove { name: &'a str, id: u64 },
    /// A process of the sending node joined a group.
    PgJoin { group: &'a str, id: u64 },
    /// It left it (or ended).
    PgLeave { group: &'a str, id: u64 },
    /// Everything the sending node holds, on a new connection.
    Sync {
        #[serde(borrow)]
        names: Vec<(&'a str, u64)>,
        #[serde(borrow)]
        groups: Vec<(&'a str, Vec<u64>)>,
    },
    /// Start a process with the start function registered as `name`; the
    /// body holds its arguments. Answered with a `Reply` (body: the pid).
    Spawn { id: u64, name: &'a str },
    /// The dialer's first frame on a bulk connection (see
    /// [`bulk`](super::bulk)): it pairs with the main connection between
    /// the same two incarnations. Answered with `Welcome` or `Refused`.
    BulkHello {
        node: &'a str,
        creation: u32,
        /// The incarnation of the acceptor this node's main connection is to.
        peer_creation: u32,
        version: u32,
    },
}

/// A malformed frame or chunk: the connection it came on is closed.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed frame: {}", self.0)
    }
}

/// A frame: `head`, then `body` encoded after it (`None`: no body). A
/// large [`Bytes`](super::Bytes) in the body is shared, not copied
/// ([`splice`](super::splice)).
pub(crate) fn encode<B: Serialize + ?Sized>(
    head: &Head<'_>,
    body: Option<&B>,
) -> Result<Frame, postcard::Error> {
    // Sized first (cheap: a byte string's size is its length), so that a
    // big message is copied once, not again at every doubling.
    let size = 2
        + postcard::experimental::serialized_size(head)?
        + body.map_or(Ok(0), |b| splice::inline_size(b))?;
    let mut frame = Frame::with_capacity(size);
    frame.extend_from_slice(&[0, 0]);
    frame = splice::encode_into(head, frame)?;
    let head_len = frame.len() - 2;
    let head_len = u16::try_from(head_len).map_err(|_| postcard::Error::SerializeBufferFull)?;
    frame.patch(0, &head_len.to_le_bytes());
    if let Some(body) = body {
        frame = splice::encode_into(body, frame)?;
    }
    Ok(frame)
}

/// A frame's head and the bytes of its body.
pub(crate) fn decode(frame: &[u8]) -> Result<(Head<'_>, &[u8]), Malformed> {
    let Some((len, rest)) = frame.split_first_chunk::<2>() else {
        return Err(Malformed("shorter than its header length".into()));
    };
    let len = u16::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(Malformed("header longer than the frame".into()));
    }
    let (head, body) = rest.split_at(len);
    let head = postcard::from_bytes(head).map_err(|e| Malformed(e.to_string()))?;
    Ok((head, body))
}

/// Appends a chunk header.
pub(crate) fn put_chunk_header(out: &mut Vec<u8>, len: usize, lane: u64, place: Place) {
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&lane.to_le_bytes());
    out.push(place as u8);
}

/// Reads a chunk header: length, lane, place.
pub(crate) fn read_chunk_header(
    header: &[u8; CHUNK_HEADER],
) -> Result<(usize, u64, Place), Malformed> {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let lane = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
    let place = match header[12] {
        0 => Place::Middle,
        1 => Place::Last,
        2 => Place::First,
        other => return Err(Malformed(format!("chunk flag {other}"))),
    };
    if len > CHUNK {
        return Err(Malformed(format!("chunk of {len} bytes (at most {CHUNK})")));
    }
    if place == Place::First && len <= FIRST_PREFIX {
        return Err(Malformed("a first chunk without its frame's length".into()));
    }
    Ok((len, lane, place))
}

/// One whole frame as a single chunk (handshake frames, never spliced).
pub(crate) fn single_chunk(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_HEADER + frame.len());
    put_chunk_header(&mut out, frame.len(), CONTROL_LANE, Place::Last);
    frame.copy_to(0, frame.len(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_decodes_to_what_was_encoded() {
        let head = Head::Send {
            to: Target::Name("pong"),
            tag: "ping",
        };
        let frame = encode(&head, Some(&(7u32, "seven".to_string()))).unwrap();
        let (got, body) = decode(frame.contiguous().unwrap()).unwrap();
        assert_eq!(got, head);
        let value: (u32, String) = postcard::from_bytes(body).unwrap();
        assert_eq!(value, (7, "seven".to_string()));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [&[][..], &[5, 0, 1], &[2, 0, 200, 200], &[255, 255]] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let mut header = [0u8; CHUNK_HEADER];
        header[..4].copy_from_slice(&(CHUNK as u32 + 1).to_le_bytes());
        header[12] = 1;
        assert!(read_chunk_header(&header).is_err());
        header[..4].copy_from_slice(&1u32.to_le_bytes());
        header[12] = 7;
        assert!(read_chunk_header(&header).is_err());
        header[12] = Place::First as u8;
        header[..4].copy_from_slice(&(FIRST_PREFIX as u32).to_le_bytes());
        assert!(read_chunk_header(&header).is_err());
    }

    #[test]
    fn lanes_of_processes_and_names_never_meet_the_control_lane() {
        assert_ne!(Target::Pid { id: 0, creation: 1 }.lane(), CONTROL_LANE);
        assert_ne!(Target::Name("").lane(), CONTROL_LANE);
        assert_ne!(
            Target::Pid { id: 3, creation: 1 }.lane(),
            Target::Pid { id: 4, creation: 1 }.lane()
        );
    }
}
