//! Which values may cross between nodes: the types a node registered,
//! each under a name that is the same on every node.
//!
//! The rule: a message type crosses if it is `Serialize +
//! DeserializeOwned + Send + 'static` and both nodes registered it under
//! the same name ([`DistConfig::message`](super::DistConfig::message)); a
//! call crosses if both registered the server type and request type
//! ([`DistConfig::serve`](super::DistConfig::serve)). The receiver decodes
//! into the registered Rust type and delivers a plain value, so a process
//! receives a remote message exactly as a local one: `p.recv::<Ping>()`.
//! Names, not Rust type paths, go on the wire, so that two builds of the
//! same program (a rolling upgrade) still understand each other.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use owl_runtime::server::{Answers, ServerRef};
use owl_runtime::{CallError, Node, Pid, SendError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::splice::{self, Frame};

/// What a remote call's handler returns: the encoded reply (large byte
/// strings in it shared, not copied).
pub(crate) type Served = Pin<Box<dyn Future<Output = Result<Frame, CallError>> + Send>>;

type DeliverFn = fn(&Pid, &[u8]) -> Delivery;
type SpawnFn = Arc<dyn Fn(&Node, &[u8]) -> Option<Pid> + Send + Sync>;
type ServeFn = fn(Pid, bytes::Bytes, Duration) -> Served;

/// What became of a message that arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    Delivered,
    /// The process is gone, or its bounded mailbox was full (as with a
    /// local send, the message is dropped).
    Dropped,
    /// The body is not a value of the registered type.
    Undecodable,
}

/// The registered types of one node.
#[derive(Clone, Default)]
pub(crate) struct Types {
    message_tags: HashMap<TypeId, Arc<str>>,
    call_tags: HashMap<TypeId, Arc<str>>,
    messages: HashMap<Arc<str>, DeliverFn>,
    calls: HashMap<Arc<str>, ServeFn>,
    spawners: HashMap<Arc<str>, SpawnFn>,
}

impl std::fmt::Debug for Types {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut messages: Vec<_> = self.messages.keys().collect();
        messages.sort();
        let mut calls: Vec<_> = self.calls.keys().collect();
        calls.sort();
        let mut spawners: Vec<_> = self.spawners.keys().collect();
        spawners.sort();
        f.debug_struct("Types")
            .field("messages", &messages)
            .field("calls", &calls)
            .field("spawners", &spawners)
            .finish()
    }
}

/// The key of a call type: the server and the request together.
fn call_key<S: 'static, M: 'static>() -> TypeId {
    TypeId::of::<(fn(S), M)>()
}

impl Types {
    pub(crate) fn add_message<M>(&mut self, name: &str)
    where
        M: Serialize + DeserializeOwned + Send + 'static,
    {
        let name: Arc<str> = name.into();
        self.message_tags.insert(TypeId::of::<M>(), name.clone());
        self.messages.insert(name, deliver::<M>);
    }

    pub(crate) fn add_call<S, M, How>(&mut self, name: &str)
    where
        S: Answers<M, How>,
        M: Serialize + DeserializeOwned + Send + 'static,
        How: 'static,
        <S as Answers<M, How>>::Reply: Serialize + DeserializeOwned,
    {
        let name: Arc<str> = name.into();
        self.call_tags.insert(call_key::<S, M>(), name.clone());
        self.calls.insert(name, serve::<S, M, How>);
    }

    pub(crate) fn add_spawner<A>(&mut self, name: &str, start: fn(&Node, A) -> Pid)
    where
        A: DeserializeOwned + 'static,
    {
        let spawn = move |node: &Node, body: &[u8]| {
            let args = postcard::from_bytes::<A>(body).ok()?;
            Some(start(node, args))
        };
        self.spawners.insert(name.into(), Arc::new(spawn));
    }

    /// Starts a process with the start function registered as `name`:
    /// `None` if there is none, `Some(None)` if the arguments do not decode.
    pub(crate) fn spawn(&self, name: &str, node: &Node, body: &[u8]) -> Option<Option<Pid>> {
        self.spawners.get(name).map(|spawn| spawn(node, body))
    }

    /// The name `M` was registered under, if it was.
    pub(crate) fn message_tag<M: 'static>(&self) -> Option<&str> {
        self.message_tags.get(&TypeId::of::<M>()).map(|t| &**t)
    }

    /// The name calls of `M` to an `S` were registered under, if they were.
    pub(crate) fn call_tag<S: 'static, M: 'static>(&self) -> Option<&str> {
        self.call_tags.get(&call_key::<S, M>()).map(|t| &**t)
    }

    /// Decodes a message registered as `tag` and delivers it to `to`;
    /// `None` if no type has that name here.
    pub(crate) fn deliver(&self, tag: &str, to: &Pid, body: &[u8]) -> Option<Delivery> {
        self.messages.get(tag).map(|deliver| deliver(to, body))
    }

    /// Runs a call registered as `tag` against `to`; `None` if this node
    /// serves no call of that name.
    pub(crate) fn serve(
        &self,
        tag: &str,
        to: Pid,
        body: bytes::Bytes,
        timeout: Duration,
    ) -> Option<Served> {
        self.calls.get(tag).map(|serve| serve(to, body, timeout))
    }
}

fn deliver<M: DeserializeOwned + Send + 'static>(to: &Pid, body: &[u8]) -> Delivery {
    let Ok(value) = postcard::from_bytes::<M>(body) else {
        return Delivery::Undecodable;
    };
    match to.send(value) {
        Ok(()) => Delivery::Delivered,
        Err(SendError::NoProcess(_) | SendError::Full(_)) => Delivery::Dropped,
    }
}

fn serve<S, M, How>(to: Pid, body: bytes::Bytes, timeout: Duration) -> Served
where
    S: Answers<M, How>,
    M: DeserializeOwned + Send + 'static,
    How: 'static,
    <S as Answers<M, How>>::Reply: Serialize,
{
    Box::pin(async move {
        let request: M = splice::decode(&body).map_err(|_| CallError::NoReply)?;
        let reply = ServerRef::<S>::from_pid(to).call(request, timeout).await?;
        splice::encode_into(&reply, Frame::default()).map_err(|_| CallError::NoReply)
    })
}
