//! Messages in a mailbox: any `Send + 'static` value, plus the runtime's own
//! [`Exit`] and [`Down`] notifications.

use std::any::{Any, TypeId};
use std::fmt;

use crate::exit::ExitReason;
use crate::pid::{MonitorRef, Pid};

/// Type-erased payload that still knows its type's name (for tracing and
/// introspection) and its size (for the memory estimate).
trait Payload: Any + Send {
    fn type_name(&self) -> &'static str;
    /// The payload's `TypeId` in one virtual call (matching runs on every receive).
    fn payload_type(&self) -> TypeId;
    fn size(&self) -> usize;
}

impl<T: Any + Send> Payload for T {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn payload_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn size(&self) -> usize {
        std::mem::size_of::<T>()
    }
}

/// One message of any type, as it sits in a mailbox.
///
/// Most code receives typed values with [`Process::recv`](crate::Process::recv);
/// `Message` is what [`Process::recv_any`](crate::Process::recv_any) hands out
/// when a process takes whatever comes next.
///
/// ```
/// use owl_runtime::Message;
///
/// let msg = Message::new(7u32);
/// assert!(msg.is::<u32>());
/// assert_eq!(msg.downcast::<u32>().ok(), Some(7));
/// ```
pub struct Message(Box<dyn Payload>);

impl Message {
    /// Wraps a value.
    pub fn new<T: Any + Send>(value: T) -> Message {
        Message(Box::new(value))
    }

    /// Whether the payload is a `T`.
    #[inline]
    pub fn is<T: Any>(&self) -> bool {
        self.payload_type() == TypeId::of::<T>()
    }

    /// The payload's `TypeId`.
    #[inline]
    pub fn payload_type(&self) -> TypeId {
        (*self.0).payload_type()
    }

    /// A reference to the payload if it is a `T`.
    #[inline]
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<T>()
    }

    /// Takes the payload out if it is a `T`, or gives the message back.
    #[inline]
    pub fn downcast<T: Any>(self) -> Result<T, Message> {
        if !self.is::<T>() {
            return Err(self);
        }
        let any: Box<dyn Any + Send> = self.0;
        Ok(*any.downcast::<T>().expect("the type was checked"))
    }

    /// The payload's Rust type name, e.g. `owl_runtime::message::Down`.
    pub fn type_name(&self) -> &'static str {
        (*self.0).type_name()
    }

    /// Bytes the payload occupies inline (heap data it points to is not counted).
    pub fn size_estimate(&self) -> usize {
        (*self.0).size() + std::mem::size_of::<Message>()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(exit) = self.downcast_ref::<Exit>() {
            return exit.fmt(f);
        }
        if let Some(down) = self.downcast_ref::<Down>() {
            return down.fmt(f);
        }
        write!(f, "Message<{}>", self.type_name())
    }
}

/// An exit signal turned into a message, for a process that traps exits.
///
/// ```
/// use owl_runtime::{Runtime, Exit, ExitReason};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let exit = rt.block_on(async move {
///     let (tx, rx) = tokio::sync::oneshot::channel();
///     node.spawn(|mut p| async move {
///         p.trap_exit(true);
///         let child = p.spawn_link(|_| async { Err::<(), _>("boom") });
///         let exit: Exit = p.recv().await;
///         assert_eq!(exit.from, child);
///         tx.send(exit.reason).unwrap(); // the trapping parent lives on
///     });
///     rx.await.unwrap()
/// });
/// assert_eq!(exit, ExitReason::error("boom"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Who sent the signal (the linked process that exited, or the caller of `exit`).
    pub from: Pid,
    /// The reason it carries.
    pub reason: ExitReason,
}

/// Sent to the owner of a monitor when the monitored process ends (once).
///
/// ```
/// use owl_runtime::{Runtime, Down, ExitReason};
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let down = rt.block_on(async move {
///     let (tx, rx) = tokio::sync::oneshot::channel();
///     node.spawn(|mut p| async move {
///         let (child, mref) = p.spawn_monitor(|_| async { panic!("13 is unlucky") });
///         let down: Down = p.recv().await;
///         assert_eq!((down.pid, down.monitor), (child, mref));
///         tx.send(down.reason).unwrap();
///     });
///     rx.await.unwrap()
/// });
/// assert!(matches!(down, ExitReason::Panic(m) if m.contains("13 is unlucky")));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The monitor that fired.
    pub monitor: MonitorRef,
    /// The process that ended.
    pub pid: Pid,
    /// Why it ended (`NoProc` if it was already gone when the monitor was set).
    pub reason: ExitReason,
}
