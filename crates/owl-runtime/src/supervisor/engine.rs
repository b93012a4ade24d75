//! The supervisor process: starts children in order, restarts them by
//! strategy within the restart intensity, answers requests, and stops
//! children in reverse order.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::oneshot;

use super::intensity::Intensity;
use super::{
    ChildCounts, ChildError, ChildInfo, ChildKind, ChildRef, ChildSpec, DynamicLimits, Request,
    Restart, Shutdown, StartArgs, Strategy, SupervisorSpec,
};
use crate::exit::ExitReason;
use crate::message::{Down, Exit};
use crate::node::Node;
use crate::pid::{MonitorRef, Pid};
use crate::process::{Process, SpawnOptions};
use crate::server::is_from_parent;

pub(super) async fn start(
    node: &Node,
    spec: SupervisorSpec,
    parent: Option<Pid>,
) -> Result<Pid, ExitReason> {
    let mut opts = SpawnOptions::new()
        .label(spec.label.clone())
        .trap_exit(true);
    if let Some(parent) = &parent {
        opts = opts.link_to(parent.clone()).parent(parent.clone());
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    let (pid, exited) = node.spawn_watched(opts, move |p| run(p, spec, parent, ack_tx));
    match ack_rx.await {
        Ok(Ok(())) => Ok(pid),
        // Return only once the failed supervisor is gone.
        Ok(Err(_)) | Err(_) => Err(exited.await.unwrap_or(ExitReason::NoProc)),
    }
}

struct Child {
    spec: ChildSpec,
    pid: Option<Pid>,
}

struct Sup {
    p: Process,
    args: StartArgs,
    children: Vec<Child>,
    strategy: Strategy,
    intensity: Intensity,
    dynamic: Option<DynamicLimits>,
    restarts: u64,
}

async fn run(
    p: Process,
    spec: SupervisorSpec,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), ExitReason>>,
) -> ExitReason {
    if let Some(name) = &spec.name
        && let Err(e) = p.register(name)
    {
        let reason = ExitReason::error(format!("cannot register supervisor as {name:?}: {e}"));
        let _ = ack.send(Err(reason.clone()));
        return reason;
    }
    let args = StartArgs {
        node: p.node().clone(),
        supervisor: p.pid().clone(),
    };
    let mut sup = Sup {
        p,
        args,
        children: Vec::with_capacity(spec.children.len()),
        strategy: spec.strategy,
        intensity: Intensity::new(spec.max_restarts, spec.max_seconds),
        dynamic: spec.dynamic,
        restarts: 0,
    };
    for child in spec.children {
        match sup.start_spec(&child).await {
            Ok(pid) => sup.children.push(Child {
                spec: child,
                pid: Some(pid),
            }),
            Err(reason) => {
                sup.terminate_all().await;
                let reason =
                    ExitReason::error(format!("failed to start child {:?}: {reason}", child.id));
                let _ = ack.send(Err(reason.clone()));
                return reason;
            }
        }
    }
    let _ = ack.send(Ok(()));
    loop {
        let msg = sup.p.recv_any().await;
        match msg.downcast::<Exit>() {
            Ok(exit) if is_from_parent(&exit.from, parent.as_ref()) => {
                sup.terminate_all().await;
                return exit.reason;
            }
            Ok(exit) => {
                if let Some(reason) = sup.child_exited(&exit.from, exit.reason).await {
                    return reason;
                }
            }
            Err(msg) => match msg.downcast::<Request>() {
                Ok(request) => sup.handle(request).await,
                Err(other) => tracing::warn!(supervisor = %sup.p.pid(), message = ?other,
                    "supervisor ignored an unexpected message"),
            },
        }
    }
}

impl Sup {
    async fn start_spec(&self, spec: &ChildSpec) -> Result<Pid, ExitReason> {
        (spec.start)(self.args.clone()).await
    }

    fn child_id(&self, child: &Child) -> String {
        match (&self.dynamic, &child.pid) {
            (Some(_), Some(pid)) => pid.to_string(),
            _ => child.spec.id.clone(),
        }
    }

    /// Handles the exit of a child; `Some(reason)` means the supervisor itself
    /// must now exit (restart intensity exceeded).
    async fn child_exited(&mut self, from: &Pid, reason: ExitReason) -> Option<ExitReason> {
        let idx = self
            .children
            .iter()
            .position(|c| c.pid.as_ref() == Some(from))?;
        let child = &mut self.children[idx];
        child.pid = None;
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if reason.is_abnormal() {
            tracing::warn!(supervisor = %self.p.pid(), child = %child.spec.id, pid = %from, %reason,
                restart, "child terminated");
        }
        if !restart {
            if child.spec.restart == Restart::Temporary || self.dynamic.is_some() {
                self.children.remove(idx);
            }
            return None;
        }
        if !self.intensity.allow_restart() {
            return Some(self.give_up().await);
        }
        self.restarts += 1;
        let restart_from = match self.strategy {
            Strategy::OneForOne => {
                let result = self.start_at(idx).await;
                return result.err();
            }
            Strategy::OneForAll => 0,
            Strategy::RestForOne => idx,
        };
        for i in (restart_from..self.children.len()).rev() {
            if i != idx {
                self.stop_child(i).await;
            }
        }
        // Temporary children stopped by the strategy are not restarted.
        let mut i = restart_from;
        while i < self.children.len() {
            if i != idx && self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            } else {
                i += 1;
            }
        }
        for i in restart_from..self.children.len() {
            if let Err(reason) = self.start_at(i).await {
                return Some(reason);
            }
        }
        None
    }

    /// Starts the stopped child at `idx`, retrying while the intensity allows.
    async fn start_at(&mut self, idx: usize) -> Result<(), ExitReason> {
        if self.children[idx].pid.is_some() {
            return Ok(());
        }
        loop {
            match self.start_spec(&self.children[idx].spec).await {
                Ok(pid) => {
                    self.children[idx].pid = Some(pid);
                    return Ok(());
                }
                Err(reason) => {
                    tracing::error!(supervisor = %self.p.pid(), child = %self.children[idx].spec.id, %reason,
                        "child failed to restart");
                    if !self.intensity.allow_restart() {
                        return Err(self.give_up().await);
                    }
                    self.restarts += 1;
                }
            }
        }
    }

    async fn give_up(&mut self) -> ExitReason {
        tracing::error!(supervisor = %self.p.pid(), label = %self.p.cell.label,
            "reached maximum restart intensity; shutting down");
        self.terminate_all().await;
        ExitReason::Shutdown
    }

    async fn stop_child(&mut self, idx: usize) {
        if let Some(pid) = self.children[idx].pid.take() {
            let shutdown = self.children[idx].spec.shutdown;
            shutdown_one(&mut self.p, &pid, shutdown).await;
        }
    }

    /// Stops every child in reverse start order (dynamic: all at once).
    async fn terminate_all(&mut self) {
        if self.dynamic.is_some() {
            let running: Vec<(Pid, Shutdown)> = self
                .children
                .iter_mut()
                .filter_map(|c| c.pid.take().map(|p| (p, c.spec.shutdown)))
                .collect();
            shutdown_many(&mut self.p, running).await;
            self.children.clear();
            return;
        }
        for i in (0..self.children.len()).rev() {
            self.stop_child(i).await;
        }
    }

    fn find(&self, child: &ChildRef) -> Option<usize> {
        self.children.iter().position(|c| match child {
            ChildRef::Id(id) => self.dynamic.is_none() && &c.spec.id == id,
            ChildRef::Pid(pid) => c.pid.as_ref() == Some(pid),
        })
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::WhichChildren(reply) => {
                let list = self
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        id: self.child_id(c),
                        pid: c.pid.clone(),
                        kind: c.spec.kind,
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Request::CountChildren(reply) => {
                let mut counts = ChildCounts {
                    specs: self.children.len(),
                    restarts: self.restarts,
                    ..Default::default()
                };
                for c in &self.children {
                    counts.active += c.pid.is_some() as usize;
                    match c.spec.kind {
                        ChildKind::Supervisor => counts.supervisors += 1,
                        ChildKind::Worker => counts.workers += 1,
                    }
                }
                let _ = reply.send(counts);
            }
            Request::StartChild(spec, reply) => {
                let _ = reply.send(self.start_child(spec).await);
            }
            Request::TerminateChild(child, reply) => {
                let result = match self.find(&child) {
                    None => Err(ChildError::NotFound),
                    Some(i) => {
                        self.stop_child(i).await;
                        if self.dynamic.is_some()
                            || self.children[i].spec.restart == Restart::Temporary
                        {
                            self.children.remove(i);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Request::RestartChild(id, reply) => {
                let result = match self.find(&ChildRef::Id(id)) {
                    None => Err(ChildError::NotFound),
                    Some(i) if self.children[i].pid.is_some() => Err(ChildError::Running),
                    Some(i) => match self.start_spec(&self.children[i].spec).await {
                        Ok(pid) => {
                            self.children[i].pid = Some(pid.clone());
                            Ok(pid)
                        }
                        Err(reason) => Err(ChildError::StartFailed(reason)),
                    },
                };
                let _ = reply.send(result);
            }
            Request::DeleteChild(id, reply) => {
                let result = match self.find(&ChildRef::Id(id)) {
                    None => Err(ChildError::NotFound),
                    Some(i) if self.children[i].pid.is_some() => Err(ChildError::Running),
                    Some(i) => {
                        self.children.remove(i);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    async fn start_child(&mut self, spec: ChildSpec) -> Result<Pid, ChildError> {
        match &self.dynamic {
            Some(limits) => {
                if limits
                    .max_children
                    .is_some_and(|max| self.children.len() >= max)
                {
                    return Err(ChildError::MaxChildren);
                }
            }
            None => {
                if self.children.iter().any(|c| c.spec.id == spec.id) {
                    return Err(ChildError::AlreadyPresent(spec.id));
                }
            }
        }
        let pid = self
            .start_spec(&spec)
            .await
            .map_err(ChildError::StartFailed)?;
        self.children.push(Child {
            spec,
            pid: Some(pid.clone()),
        });
        Ok(pid)
    }
}

/// Stops one child the OTP way: monitor it, unlink (dropping any `Exit` it
/// already sent), send `shutdown` (or kill), and wait for its `Down` — killing
/// it if the shutdown timeout passes.
async fn shutdown_one(p: &mut Process, pid: &Pid, shutdown: Shutdown) -> ExitReason {
    let mref = p.monitor(pid);
    p.unlink(pid);
    match shutdown {
        Shutdown::BrutalKill => {
            p.exit(pid, ExitReason::Kill);
            wait_down(p, mref).await
        }
        Shutdown::Infinity => {
            p.exit(pid, ExitReason::Shutdown);
            wait_down(p, mref).await
        }
        Shutdown::Timeout(limit) => {
            p.exit(pid, ExitReason::Shutdown);
            match tokio::time::timeout(limit, wait_down(p, mref)).await {
                Ok(reason) => reason,
                Err(_) => {
                    tracing::warn!(child = %pid, timeout_ms = limit.as_millis() as u64,
                        "child did not stop in time; killing it");
                    p.exit(pid, ExitReason::Kill);
                    wait_down(p, mref).await
                }
            }
        }
    }
}

async fn wait_down(p: &mut Process, mref: MonitorRef) -> ExitReason {
    p.recv_match::<Down, _>(move |d| d.monitor == mref)
        .await
        .reason
}

/// Stops many children at once (a dynamic supervisor's shutdown): all get
/// their signal first, then the supervisor waits for every `Down`, killing
/// the ones still alive when the longest timeout has passed.
async fn shutdown_many(p: &mut Process, children: Vec<(Pid, Shutdown)>) {
    let mut pending: HashSet<MonitorRef> = HashSet::with_capacity(children.len());
    let mut by_ref = Vec::with_capacity(children.len());
    let mut wait_limit = Some(Duration::ZERO);
    for (pid, shutdown) in children {
        let mref = p.monitor(&pid);
        p.unlink(&pid);
        match shutdown {
            Shutdown::BrutalKill => p.exit(&pid, ExitReason::Kill),
            Shutdown::Timeout(limit) => {
                p.exit(&pid, ExitReason::Shutdown);
                wait_limit = wait_limit.map(|w| w.max(limit));
            }
            Shutdown::Infinity => {
                p.exit(&pid, ExitReason::Shutdown);
                wait_limit = None;
            }
        }
        pending.insert(mref);
        by_ref.push((mref, pid));
    }
    let deadline = wait_limit.map(|w| tokio::time::Instant::now() + w);
    while !pending.is_empty() {
        let next = p.recv_match::<Down, _>(|d| pending.contains(&d.monitor));
        let down = match deadline {
            None => Some(next.await),
            Some(at) => tokio::time::timeout_at(at, next).await.ok(),
        };
        match down {
            Some(down) => {
                pending.remove(&down.monitor);
            }
            None => break,
        }
    }
    if !pending.is_empty() {
        tracing::warn!(
            remaining = pending.len(),
            "children did not stop in time; killing them"
        );
        for (mref, pid) in &by_ref {
            if pending.contains(mref) {
                p.exit(pid, ExitReason::Kill);
            }
        }
        while !pending.is_empty() {
            let down = p
                .recv_match::<Down, _>(|d| pending.contains(&d.monitor))
                .await;
            pending.remove(&down.monitor);
        }
    }
}
