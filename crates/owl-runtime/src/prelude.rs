//! What nearly every program on owl-runtime needs, in one import:
//!
//! ```
//! use owl_runtime::prelude::*;
//!
//! let rt = Runtime::new(Config::default()).unwrap();
//! let node: Node = rt.node();
//! let pid: Pid = node.spawn(|mut p: Process| async move { p.recv::<()>().await });
//! node.kill(&pid);
//! ```

pub use crate::exit::ExitReason;
pub use crate::message::{Down, Exit, Message};
pub use crate::node::{Config, Node, Runtime};
pub use crate::pid::Pid;
pub use crate::process::{Process, SendError, SpawnOptions};
pub use crate::server::{
    self, CallError, Ctx, Handle, HandleLater, ReplyTo, Server, ServerRef, StartError,
};
pub use crate::supervisor::{
    ChildError, ChildSpec, Restart, Shutdown, StartArgs, Strategy, Supervisor, SupervisorRef,
    SupervisorSpec, TreeNode, tree,
};
pub use crate::task::Task;
