//! Registered names: a process can be found by a name instead of its pid.
//! A name is released when its process exits.

use std::fmt;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::node::Node;
use crate::pid::{Pid, PidId};

/// Why a name could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Another process holds the name.
    NameTaken(Pid),
    /// The process already has a name.
    AlreadyNamed(String),
    /// The process is not alive.
    NoProcess,
    /// Names must be 1–255 bytes.
    InvalidName,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::NameTaken(pid) => write!(f, "name already registered by {pid}"),
            RegisterError::AlreadyNamed(name) => {
                write!(f, "process is already registered as {name:?}")
            }
            RegisterError::NoProcess => f.write_str("no such process"),
            RegisterError::InvalidName => f.write_str("a name must be 1 to 255 bytes"),
        }
    }
}
impl std::error::Error for RegisterError {}

#[derive(Default)]
pub(crate) struct Registry {
    names: DashMap<Arc<str>, Pid>,
}

impl Registry {
    /// Removes `name` if it still points at `pid` (called when `pid` exits).
    pub(crate) fn release(&self, name: &str, pid: PidId) {
        self.names.remove_if(name, |_, holder| holder.id() == pid);
    }
}

impl Node {
    /// Registers `pid` under `name`, like `erlang:register/2`.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let pid = node.spawn(|mut p| async move { p.recv::<()>().await });
    /// node.register("logger", &pid).unwrap();
    /// assert_eq!(node.whereis("logger"), Some(pid.clone()));
    /// assert!(node.register("logger", &pid).is_err());
    /// let exited = pid.wait_exit();
    /// pid.send(()).unwrap(); // the process ends, the name is released
    /// rt.block_on(exited);
    /// assert_eq!(node.whereis("logger"), None);
    /// ```
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), RegisterError> {
        if name.is_empty() || name.len() > 255 {
            return Err(RegisterError::InvalidName);
        }
        let cell = pid.cell().ok_or(RegisterError::NoProcess)?;
        let mut st = cell.state.lock();
        if st.exited {
            return Err(RegisterError::NoProcess);
        }
        if let Some(existing) = st.extras.as_ref().and_then(|e| e.name.as_ref()) {
            return Err(RegisterError::AlreadyNamed(existing.to_string()));
        }
        let name: Arc<str> = name.into();
        match self.inner.registry.names.entry(name.clone()) {
            Entry::Occupied(e) => return Err(RegisterError::NameTaken(e.get().clone())),
            Entry::Vacant(e) => {
                e.insert(pid.clone());
            }
        }
        st.extras().name = Some(name);
        Ok(())
    }

    /// The process registered under `name`, if any.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.registry.names.get(name).map(|p| p.clone())
    }

    /// Removes a registration; returns whether the name was registered.
    pub fn unregister(&self, name: &str) -> bool {
        let Some((_, pid)) = self.inner.registry.names.remove(name) else {
            return false;
        };
        if let Some(cell) = pid.cell()
            && let Some(ex) = cell.state.lock().extras.as_mut()
        {
            ex.name = None;
        }
        true
    }

    /// All registered names with their processes, sorted by name.
    pub fn registered(&self) -> Vec<(String, Pid)> {
        let mut all: Vec<_> = self
            .inner
            .registry
            .names
            .iter()
            .map(|e| (e.key().to_string(), e.value().clone()))
            .collect();
        all.sort();
        all
    }
}
