//! Process groups: named sets of processes, usable as a local pubsub.
//! A process leaves all its groups when it exits.

use std::sync::Arc;

use dashmap::DashMap;

use crate::node::Node;
use crate::pid::Pid;

#[derive(Default)]
pub(crate) struct Groups {
    members: DashMap<Arc<str>, Vec<Pid>>,
}

impl Groups {
    pub(crate) fn remove_member(&self, group: &str, pid: &Pid) {
        if let Some(mut members) = self.members.get_mut(group) {
            members.retain(|p| p != pid);
        }
        self.members.remove_if(group, |_, m| m.is_empty());
    }
}

impl Node {
    /// Adds `pid` to `group` (once; joining twice is a no-op). Returns false if
    /// the process is not alive.
    ///
    /// ```
    /// use owl_runtime::Runtime;
    ///
    /// let rt = Runtime::new(Default::default()).unwrap();
    /// let node = rt.node();
    /// let a = node.spawn(|mut p| async move { p.recv::<String>().await; });
    /// let b = node.spawn(|mut p| async move { p.recv::<String>().await; });
    /// node.join("news", &a);
    /// node.join("news", &b);
    /// assert_eq!(node.members("news").len(), 2);
    /// let (a_done, b_done) = (a.wait_exit(), b.wait_exit());
    /// assert_eq!(node.broadcast("news", "hello".to_string()), 2);
    /// rt.block_on(async { a_done.await; b_done.await });
    /// assert!(node.members("news").is_empty());
    /// ```
    pub fn join(&self, group: &str, pid: &Pid) -> bool {
        let Some(cell) = pid.cell() else {
            return false;
        };
        let mut st = cell.state.lock();
        if st.exited {
            return false;
        }
        let ex = st.extras();
        if ex.groups.iter().any(|g| &**g == group) {
            return true;
        }
        let group: Arc<str> = group.into();
        ex.groups.push(group.clone());
        self.inner
            .groups
            .members
            .entry(group)
            .or_default()
            .push(pid.clone());
        true
    }

    /// Removes `pid` from `group`.
    pub fn leave(&self, group: &str, pid: &Pid) {
        if let Some(cell) = pid.cell()
            && let Some(ex) = cell.state.lock().extras.as_mut()
        {
            ex.groups.retain(|g| &**g != group);
        }
        self.inner.groups.remove_member(group, pid);
    }

    /// The members of `group`, in joining order.
    pub fn members(&self, group: &str) -> Vec<Pid> {
        self.inner
            .groups
            .members
            .get(group)
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// The names of all groups that have members, sorted.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .groups
            .members
            .iter()
            .map(|e| e.key().to_string())
            .collect();
        names.sort();
        names
    }

    /// Sends a clone of `msg` to every member; returns how many took it
    /// (members with a full bounded mailbox miss it, as with [`Pid::send`]).
    pub fn broadcast<M: Clone + Send + 'static>(&self, group: &str, msg: M) -> usize {
        self.members(group)
            .iter()
            .filter(|p| p.send(msg.clone()).is_ok())
            .count()
    }
}
