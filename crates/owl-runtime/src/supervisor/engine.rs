//! The supervisor process: starts children in order, restarts them by
//! strategy within the restart intensity, answers requests, and stops
//! children in reverse order.
//!
//! Like OTP's `supervisor`, a restart that fails is not retried in a loop:
//! the child is marked *restarting* and a retry is queued in the
//! supervisor's own mailbox, so requests (`which_children`,
//! `terminate_child`) and a shutdown are still served between tries, and
//! every try counts against the restart intensity. Unlike OTP, the retry
//! waits a little, doubling from 1 ms up to 1 s: a restart that fails
//! because the old child's subtree is still shutting down (its registered
//! names still taken) succeeds once it is gone, instead of burning the
//! restart intensity in a microsecond loop.

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::oneshot;

use super::children::{Child, ChildView, Children, Serial};
use super::intensity::Intensity;
use super::{
    AutoShutdown, Batch, ChildCounts, ChildError, ChildInfo, ChildKind, ChildRef, ChildSpec,
    DynamicLimits, Request, Restart, Shutdown, StartArgs, Started, Strategy, SupervisorSpec,
};
use crate::exit::ExitReason;
use crate::lifecycle::{StartError, is_from_parent};
use crate::log_limit::unobserved;
use crate::message::{Down, Exit};
use crate::node::Node;
use crate::pid::{MonitorRef, Pid, PidId};
use crate::priority::Priority;
use crate::process::{Process, SpawnOptions};

pub(super) async fn start(
    node: &Node,
    spec: SupervisorSpec,
    parent: Option<Pid>,
    priority: Priority,
) -> Result<Pid, StartError> {
    spec.validate()
        .map_err(|why| StartError::Failed(ExitReason::error(why.to_string())))?;
    let mut opts = SpawnOptions::new()
        .label(spec.label.clone())
        .trap_exit(true)
        .priority(priority);
    if let Some(parent) = &parent {
        opts = opts.link_to(parent.clone()).parent(parent.clone());
    }
    let (ack_tx, ack_rx) = oneshot::channel();
    let linked = parent.clone();
    let (pid, exited) = node.spawn_watched(opts, move |p| run(p, spec, linked, ack_tx));
    let refused = match ack_rx.await {
        Ok(Ok(())) => return Ok(pid),
        Ok(Err(refused)) => Some(refused),
        Err(_) => None,
    };
    // Return only once the failed supervisor is gone, with no exit signal
    // of it left in the parent's mailbox.
    let reason = exited.await.unwrap_or(ExitReason::NoProc);
    if let Some(cell) = parent.as_ref().and_then(Pid::cell) {
        while crate::process::receive::take_first::<Exit>(&cell, &mut |e| e.from == pid).is_some() {
        }
    }
    Err(refused.unwrap_or(StartError::Failed(reason)))
}

/// A queued retry of a child whose restart failed.
struct TryAgain(Serial);

/// The pause before the first retry of a failed restart; it doubles with
/// every failure in a row, up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_secs(1);

struct Sup {
    p: Process,
    args: StartArgs,
    children: Children,
    strategy: Strategy,
    intensity: Intensity,
    dynamic: Option<DynamicLimits>,
    auto_shutdown: AutoShutdown,
    restarts: u64,
}

async fn run(
    mut p: Process,
    spec: SupervisorSpec,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), StartError>>,
) -> ExitReason {
    p.stops_with_parent();
    p.cell.state.lock().extras().server_kind = super::supervisor_kind().0.map(|(id, _)| id);
    if let Some(name) = &spec.name
        && let Err(holder) = crate::lifecycle::register_or_holder(&p, name)
    {
        // Not a crash: nothing started (OTP's `already_started`).
        if let Some(parent) = &parent {
            p.unlink(parent);
        }
        let _ = ack.send(Err(StartError::AlreadyStarted(holder)));
        return ExitReason::Normal;
    }
    let args = StartArgs {
        node: p.node().clone(),
        supervisor: p.pid().clone(),
        priority: Priority::Normal,
    };
    let mut sup = Sup {
        p,
        args,
        children: Children::new(spec.dynamic.is_some()),
        strategy: spec.strategy,
        intensity: Intensity::new(spec.max_restarts, spec.max_seconds),
        dynamic: spec.dynamic,
        auto_shutdown: spec.auto_shutdown,
        restarts: 0,
    };
    for (i, child) in spec.children.into_iter().enumerate() {
        // Starting thousands of children is one long loop of quick starts:
        // let the scheduler run others now and then.
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
        let id = child.id.clone();
        let serial = sup.children.push(Child::new(child), true);
        if let Err(reason) = sup.start_at(serial).await {
            sup.terminate_all().await;
            // OTP: {shutdown, {failed_to_start_child, Id, Reason}} — an
            // orderly stop that names the child, not a crash of its own.
            let reason =
                ExitReason::shutdown_with(format!("failed to start child {id:?}: {reason}"));
            if let Some(parent) = &parent {
                sup.p.unlink(parent);
            }
            let _ = ack.send(Err(StartError::Failed(reason.clone())));
            return reason;
        }
    }
    let _ = ack.send(Ok(()));
    loop {
        let msg = sup.p.recv_any().await;
        let msg = match msg.downcast::<Exit>() {
            Ok(exit) if is_from_parent(&exit.from, parent.as_ref()) => {
                sup.terminate_all().await;
                return exit.reason;
            }
            Ok(exit) => {
                if let Some(reason) = sup.child_exited(&exit.from, exit.reason).await {
                    return reason;
                }
                continue;
            }
            Err(msg) => msg,
        };
        let msg = match msg.downcast::<Request>() {
            Ok(request) => {
                sup.handle(request).await;
                continue;
            }
            Err(msg) => msg,
        };
        match msg.downcast::<TryAgain>() {
            Ok(TryAgain(serial)) => {
                if let Some(reason) = sup.try_again(serial).await {
                    return reason;
                }
            }
            Err(other) => tracing::warn!(supervisor = %sup.p.pid(), message = ?other,
                "supervisor ignored an unexpected message"),
        }
    }
}

impl Sup {
    /// What `spec`'s start function gets: this supervisor, at the spec's
    /// priority.
    fn args_for(&self, spec: &ChildSpec) -> StartArgs {
        StartArgs {
            priority: spec.priority,
            ..self.args.clone()
        }
    }

    /// A pid from its number: the live process's, or — ended, its exit
    /// not yet handled here — one that prints the same and reaches nothing.
    fn resolve(&self, id: PidId) -> Pid {
        self.p.node().lookup(id).unwrap_or_else(|| Pid::gone(id))
    }

    /// The running child's pid.
    fn pid_of(&self, child: ChildView<'_>) -> Option<Pid> {
        child.pid().map(|id| self.resolve(id))
    }

    /// What `which_children` says of `child`.
    fn info_of(&self, child: ChildView<'_>) -> ChildInfo {
        ChildInfo {
            id: self.child_id(child),
            pid: self.pid_of(child),
            kind: child.spec.kind,
            status: child.status(),
        }
    }

    fn child_id(&self, child: ChildView<'_>) -> String {
        match (&self.dynamic, child.pid()) {
            (Some(_), Some(pid)) => pid.to_string(),
            _ => child.spec.id.clone(),
        }
    }

    /// Runs a child's start function and records what it started; returns
    /// the child's key from now on (a dynamic child's is its new pid).
    async fn start_at(&mut self, serial: Serial) -> Result<Serial, ExitReason> {
        let Some(child) = self.children.get(serial) else {
            return Ok(serial);
        };
        if child.is_running() {
            return Ok(serial);
        }
        let start = child.spec.start.clone();
        let args = self.args_for(child.spec);
        Ok(match start(args).await? {
            Started::Pid(pid) => self.children.set_pid(serial, Some(pid)),
            Started::Ignore => self.children.set_pid(serial, None),
        })
    }

    /// Handles the exit of a child; `Some(reason)` means the supervisor itself
    /// must now exit (restart intensity exceeded, or auto shutdown).
    async fn child_exited(&mut self, from: &Pid, reason: ExitReason) -> Option<ExitReason> {
        let serial = self.children.by_pid(from)?;
        let serial = self.children.set_pid(serial, None);
        let child = self.children.get(serial)?;
        let (restart_type, significant) = (child.spec.restart, child.spec.significant);
        let restart = match restart_type {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        let allowed = restart && self.intensity.allow_restart();
        if reason.is_abnormal() {
            let action = match (restart, allowed) {
                (false, _) => "none",
                (true, true) => "restart",
                (true, false) => "shut down the supervisor (restart intensity reached)",
            };
            let kind = format!("{}\u{0}{}\u{0}{reason}", self.p.pid(), child.spec.id);
            if let Some(node) = self.p.cell.node.upgrade()
                && let crate::log_limit::Verdict::Write { left_out } = node.log_limiter.check(&kind)
                && !unobserved(|| {
                    format!(
                        "supervisor report: {} ({}): child {:?} {from} terminated: {reason}; action: {action}",
                        self.p.pid(),
                        self.p.cell.label,
                        child.spec.id
                    )
                })
            {
                tracing::warn!(target: "owl::supervisor", supervisor = %self.p.pid(),
                    child = %child.spec.id, pid = %from, %reason, action, left_out, "child terminated");
            }
        }
        if !restart {
            if restart_type == Restart::Temporary || self.dynamic.is_some() {
                self.children.remove(serial);
            }
            if significant && self.auto_shutdown_due() {
                tracing::info!(target: "owl::supervisor", supervisor = %self.p.pid(),
                    "significant children ended; shutting down (auto_shutdown)");
                self.terminate_all().await;
                return Some(ExitReason::Shutdown);
            }
            return None;
        }
        if !allowed {
            return Some(self.give_up().await);
        }
        self.restarts += 1;
        self.restart(serial).await;
        None
    }

    /// Whether the significant children that ended make the supervisor end.
    fn auto_shutdown_due(&self) -> bool {
        match self.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self
                .children
                .iter()
                .any(|(_, c)| c.spec.significant && (c.is_running() || c.restarting)),
        }
    }

    /// A queued retry: counts as a restart, then restarts by strategy.
    async fn try_again(&mut self, serial: Serial) -> Option<ExitReason> {
        // Terminated or deleted since the failed try: nothing to retry.
        if !self.children.get(serial).is_some_and(|c| c.restarting) {
            return None;
        }
        if !self.intensity.allow_restart() {
            return Some(self.give_up().await);
        }
        self.restarts += 1;
        self.restart(serial).await;
        None
    }

    /// Restarts `serial` (and, by strategy, its siblings). A start that fails
    /// marks that child restarting and queues a retry.
    async fn restart(&mut self, serial: Serial) {
        let group = match (self.strategy, &self.dynamic) {
            (Strategy::OneForOne, _) | (_, Some(_)) => vec![serial],
            (Strategy::OneForAll, None) => self.children.serials_from(None),
            (Strategy::RestForOne, None) => self.children.serials_from(Some(serial)),
        };
        for &s in group.iter().rev() {
            if s != serial {
                self.stop_child(s).await;
            }
        }
        for &s in &group {
            // Temporary children stopped by the strategy are not restarted.
            let temporary = self
                .children
                .get(s)
                .is_some_and(|c| c.spec.restart == Restart::Temporary);
            if s != serial && temporary {
                self.children.remove(s);
                continue;
            }
            if let Err(reason) = self.start_at(s).await {
                let id = self.children.get(s).map(|c| c.spec.id.clone());
                let id = id.as_deref().unwrap_or("?");
                if !unobserved(|| {
                    format!(
                        "supervisor report: {} ({}): child {id:?} failed to restart: {reason}; trying again",
                        self.p.pid(),
                        self.p.cell.label
                    )
                }) {
                    tracing::error!(target: "owl::supervisor", supervisor = %self.p.pid(),
                        child = id, %reason, "child failed to restart; trying again");
                }
                let tries = self.children.restart_failed(s);
                let pause = RETRY_FIRST * 2u32.saturating_pow(tries.saturating_sub(1).min(10));
                self.p
                    .node()
                    .send_after(self.p.pid(), pause.min(RETRY_MAX), TryAgain(s));
                return;
            }
        }
    }

    async fn give_up(&mut self) -> ExitReason {
        if !unobserved(|| {
            format!(
                "supervisor report: {} ({}): reached maximum restart intensity; shutting down",
                self.p.pid(),
                self.p.cell.label
            )
        }) {
            tracing::error!(target: "owl::supervisor", supervisor = %self.p.pid(), label = %self.p.cell.label,
                "reached maximum restart intensity; shutting down");
        }
        self.terminate_all().await;
        ExitReason::Shutdown
    }

    /// Stops a running child (or cancels its pending restart); returns its
    /// key from now on.
    async fn stop_child(&mut self, serial: Serial) -> Serial {
        let Some(child) = self.children.get(serial) else {
            return serial;
        };
        let shutdown = child.spec.shutdown;
        let Some(pid) = child.pid() else {
            self.children.cancel_retry(serial);
            return serial;
        };
        let pid = self.resolve(pid);
        let serial = self.children.set_pid(serial, None);
        shutdown_one(&mut self.p, &pid, shutdown).await;
        serial
    }

    /// Stops every child in reverse start order (dynamic: all at once).
    /// Only called on the way out: the supervisor's name is free from the
    /// start, as stopping thousands of children takes a while and a parent
    /// restarting this subtree must be able to register the new one.
    async fn terminate_all(&mut self) {
        self.p.release_own_name();
        if self.dynamic.is_some() {
            let running: Vec<(Pid, Shutdown)> = self
                .children
                .iter()
                .filter_map(|(_, c)| Some((self.pid_of(c)?, c.spec.shutdown)))
                .collect();
            shutdown_many(&mut self.p, running).await;
            self.children.clear();
            return;
        }
        for serial in self.children.serials_from(None).into_iter().rev() {
            // A static child's key stays.
            let _ = self.stop_child(serial).await;
        }
    }

    fn find(&self, child: &ChildRef) -> Option<Serial> {
        match child {
            ChildRef::Id(_) if self.dynamic.is_some() => None,
            ChildRef::Id(id) => self.children.by_id(id),
            ChildRef::Pid(pid) => self.children.by_pid(pid),
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::WhichChildren(reply) => {
                // In start order. A dynamic supervisor's are kept in no
                // order, by pid number: sorted here by it, they come in the
                // order they (re)started, any waiting for a retry last.
                let mut children: Vec<_> = self.children.iter().collect();
                if self.dynamic.is_some() {
                    children.sort_unstable_by_key(|(serial, _)| *serial);
                }
                let list = children.into_iter().map(|(_, c)| self.info_of(c)).collect();
                let _ = reply.send(Ok(list));
            }
            Request::FirstChildren(limit, reply) => {
                let children = self
                    .children
                    .iter()
                    .take(limit)
                    .map(|(_, c)| self.info_of(c))
                    .collect();
                let total = self.children.len();
                let _ = reply.send(Ok(super::ChildrenPage { children, total }));
            }
            Request::CountChildren(reply) => {
                let mut counts = ChildCounts {
                    specs: self.children.len(),
                    restarts: self.restarts,
                    ..Default::default()
                };
                for (_, c) in self.children.iter() {
                    counts.active += c.is_running() as usize;
                    match c.spec.kind {
                        ChildKind::Supervisor => counts.supervisors += 1,
                        ChildKind::Worker => counts.workers += 1,
                    }
                }
                let _ = reply.send(Ok(counts));
            }
            Request::StartChild(spec, reply) => {
                let _ = reply.send(Ok(self.start_child(spec).await));
            }
            Request::StartChildren(spec, count, reply) => {
                let _ = reply.send(Ok(self.start_children(spec, count).await));
            }
            Request::TerminateChild(child, reply) => {
                let _ = reply.send(Ok(self.terminate_child(child).await));
            }
            Request::RestartChild(id, reply) => {
                let result = match self
                    .find(&ChildRef::Id(id))
                    .map(|s| (s, self.children.get(s)))
                {
                    Some((serial, Some(c))) => match c.status() {
                        super::ChildStatus::Running => Err(ChildError::Running),
                        super::ChildStatus::Restarting => Err(ChildError::Restarting),
                        super::ChildStatus::Stopped => match self.start_at(serial).await {
                            Ok(serial) => self
                                .children
                                .get(serial)
                                .and_then(|c| self.pid_of(c))
                                .ok_or(ChildError::Ignored),
                            Err(reason) => Err(ChildError::StartFailed(reason)),
                        },
                    },
                    _ => Err(ChildError::NotFound),
                };
                let _ = reply.send(Ok(result));
            }
            Request::DeleteChild(id, reply) => {
                let result = match self
                    .find(&ChildRef::Id(id))
                    .map(|s| (s, self.children.get(s)))
                {
                    Some((serial, Some(c))) => match c.status() {
                        super::ChildStatus::Running => Err(ChildError::Running),
                        super::ChildStatus::Restarting => Err(ChildError::Restarting),
                        super::ChildStatus::Stopped => {
                            self.children.remove(serial);
                            Ok(())
                        }
                    },
                    _ => Err(ChildError::NotFound),
                };
                let _ = reply.send(Ok(result));
            }
            Request::GetChildSpec(child, reply) => {
                let spec = self
                    .find(&child)
                    .and_then(|s| self.children.get(s))
                    .map(|c| ChildSpec::clone(c.spec))
                    .ok_or(ChildError::NotFound);
                let _ = reply.send(Ok(spec));
            }
        }
    }

    async fn terminate_child(&mut self, child: ChildRef) -> Result<(), ChildError> {
        let Some(serial) = self.find(&child) else {
            // OTP: stopping a dynamic child that already ended is not an
            // error — a stop racing a crash has nothing left to do.
            return match child {
                ChildRef::Pid(pid) if self.dynamic.is_some() && !pid.is_alive() => Ok(()),
                _ => Err(ChildError::NotFound),
            };
        };
        let serial = self.stop_child(serial).await;
        let temporary = self
            .children
            .get(serial)
            .is_some_and(|c| c.spec.restart == Restart::Temporary);
        if self.dynamic.is_some() || temporary {
            self.children.remove(serial);
        }
        Ok(())
    }

    /// A dynamic supervisor's batch: `count` children of one spec, sharing
    /// it; stops early at `max_children` or a failed start, and says so.
    async fn start_children(&mut self, spec: ChildSpec, count: usize) -> Result<Batch, ChildError> {
        if self.dynamic.is_none() {
            return Err(ChildError::InvalidSpec(
                "only a dynamic supervisor starts children in batches".into(),
            ));
        }
        if spec.significant && spec.restart == Restart::Permanent {
            return Err(ChildError::InvalidSpec(
                "a permanent child cannot be significant".into(),
            ));
        }
        let max = self
            .dynamic
            .as_ref()
            .and_then(|d| d.max_children)
            .unwrap_or(usize::MAX);
        let spec = std::sync::Arc::new(spec);
        let mut batch = Batch {
            requested: count,
            started: 0,
            stopped_by: None,
        };
        while batch.started < count {
            // A batch is a long run of quick starts, and the children's
            // maps grow one shard at a time in between: yield now and then,
            // so a batch never holds the scheduler for long.
            if batch.started % 256 == 255 {
                tokio::task::yield_now().await;
            }
            if self.children.len() >= max {
                batch.stopped_by = Some(ChildError::MaxChildren);
                break;
            }
            match (spec.start)(self.args_for(&spec)).await {
                Ok(Started::Pid(pid)) => {
                    self.children
                        .push(Child::running(spec.clone(), &pid), false);
                    batch.started += 1;
                }
                Ok(Started::Ignore) => batch.started += 1,
                Err(reason) => {
                    batch.stopped_by = Some(ChildError::StartFailed(reason));
                    break;
                }
            }
        }
        Ok(batch)
    }

    async fn start_child(&mut self, spec: ChildSpec) -> Result<Pid, ChildError> {
        if spec.significant && spec.restart == Restart::Permanent {
            return Err(ChildError::InvalidSpec(
                "a permanent child cannot be significant".into(),
            ));
        }
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
                if let Some(existing) = self
                    .children
                    .by_id(&spec.id)
                    .and_then(|s| self.children.get(s))
                {
                    return Err(match self.pid_of(existing) {
                        Some(pid) => ChildError::AlreadyStarted(pid),
                        None => ChildError::AlreadyPresent(spec.id),
                    });
                }
            }
        }
        let started = (spec.start)(self.args_for(&spec))
            .await
            .map_err(ChildError::StartFailed)?;
        let keyed = self.dynamic.is_none();
        match started {
            Started::Pid(pid) => {
                self.children.push(Child::running(spec, &pid), keyed);
                Ok(pid)
            }
            Started::Ignore => {
                // A static child is kept, not running (OTP: `{ok, undefined}`).
                if keyed {
                    self.children.push(Child::new(spec), true);
                }
                Err(ChildError::Ignored)
            }
        }
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
                    if !unobserved(|| {
                        format!(
                            "supervisor report: {}: child {pid} did not stop within {} ms; killing it",
                            p.pid(),
                            limit.as_millis()
                        )
                    }) {
                        tracing::warn!(target: "owl::supervisor", child = %pid,
                            timeout_ms = limit.as_millis() as u64, "child did not stop in time; killing it");
                    }
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
    for (i, (pid, shutdown)) in children.into_iter().enumerate() {
        if i % 256 == 255 {
            tokio::task::yield_now().await;
        }
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
