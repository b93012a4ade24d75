//! What a node does with a whole frame from a peer, whichever of the two
//! connections it came on: deliver a message, serve a call, answer it, set
//! a watch, apply a registry change, spawn a process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use owl_runtime::{CallError, ExitReason, PidId};

use super::arrivals::Piece;
use super::command::Command;
use super::outbound::Outbound;
use super::splice::{self, Frame};
use super::types::Delivery;
use super::wire::{self, CallFailure, Head, Malformed, Target};
use super::{NodePid, Shared};

/// Acts on one whole frame from `name`, from either connection.
pub(super) fn deliver(
    shared: &Arc<Shared>,
    name: &Arc<str>,
    out: &Arc<Outbound>,
    creation: u32,
    piece: Piece<'_>,
) -> Result<(), Malformed> {
    piece.read(|frame| handle(shared, name, out, creation, frame))
}

/// Acts on one frame from `name`.
fn handle(
    shared: &Arc<Shared>,
    name: &Arc<str>,
    out: &Arc<Outbound>,
    creation: u32,
    frame: &[u8],
) -> Result<(), Malformed> {
    let (head, body) = wire::decode(frame)?;
    shared.frames_received.fetch_add(1, Ordering::Relaxed);
    match head {
        Head::Tick => {}
        Head::Send { to, tag } => {
            let delivered = shared
                .resolve_target(&to)
                .and_then(|pid| shared.config.types.deliver(tag, &pid, body));
            if delivered != Some(Delivery::Delivered) {
                shared.undeliverable.fetch_add(1, Ordering::Relaxed);
            }
        }
        Head::Call {
            id,
            to,
            tag,
            timeout_ms,
        } => serve_call(shared, out, id, &to, tag, timeout_ms, body),
        Head::Reply { id, failure } => {
            if let Some(call) = shared.calls.lock().remove(&id) {
                let _ = call.reply.send(match failure {
                    None => Ok(splice::share_or_copy(body)),
                    Some(f) => Err(call_error(f)),
                });
            }
        }
        Head::Watch {
            reference,
            watcher,
            target,
            link,
        } => {
            let watcher = NodePid::new(name, PidId(watcher), creation);
            watch_here(shared, name, out, reference, watcher, &target, link)
        }
        Head::Unwatch { reference } => shared.to_agent(Command::RemoteUnwatch {
            peer: name.clone(),
            reference,
            exit: None,
        }),
        Head::LinkExit { reference, reason } => shared.to_agent(Command::RemoteUnwatch {
            peer: name.clone(),
            reference,
            exit: Some(reason.parse().unwrap_or(ExitReason::NoProc)),
        }),
        Head::Down {
            reference,
            pid,
            reason,
        } => shared.to_agent(Command::RemoteDown {
            peer: name.clone(),
            reference,
            pid,
            reason: reason.parse().unwrap_or(ExitReason::NoProc),
        }),
        head @ (Head::GlobalAdd { .. }
        | Head::GlobalRemove { .. }
        | Head::PgJoin { .. }
        | Head::PgLeave { .. }
        | Head::Sync { .. }) => shared.apply_registry(name, creation, head),
        Head::Spawn { id, name: start } => {
            let started = match shared.config.types.spawn(start, &shared.node, body) {
                None => Err(CallFailure::NotServed),
                Some(None) => Err(CallFailure::NoReply),
                Some(Some(pid)) => Ok(pid.id().0),
            };
            let (failure, reply) = match started {
                Ok(pid) => (None, postcard::to_allocvec(&pid).unwrap_or_default()),
                Err(f) => (Some(f), Vec::new()),
            };
            if let Ok(mut frame) = wire::encode::<()>(&Head::Reply { id, failure }, None) {
                frame.extend_from_slice(&reply);
                let _ = out.push(id.wrapping_mul(2) | 1, frame);
            }
        }
        Head::Hello { .. }
        | Head::BulkHello { .. }
        | Head::Welcome { .. }
        | Head::Refused { .. } => {
            return Err(Malformed("a handshake frame on a live connection".into()));
        }
    }
    Ok(())
}

fn serve_call(
    shared: &Arc<Shared>,
    out: &Arc<Outbound>,
    id: u64,
    to: &Target<'_>,
    tag: &str,
    timeout_ms: u64,
    body: &[u8],
) {
    let reply_lane = id.wrapping_mul(2) | 1;
    let answer = move |out: &Outbound, result: Result<Frame, CallFailure<'_>>| {
        let (failure, reply) = match result {
            Ok(reply) => (None, reply),
            Err(failure) => (Some(failure), Frame::default()),
        };
        if let Ok(mut frame) = wire::encode::<()>(&Head::Reply { id, failure }, None) {
            frame.append(reply);
            let _ = out.push(reply_lane, frame);
        }
    };
    let Some(target) = shared.resolve_target(to) else {
        return answer(out, Err(CallFailure::NoProcess));
    };
    let timeout = Duration::from_millis(timeout_ms);
    let Some(served) = shared
        .config
        .types
        .serve(tag, target, splice::share_or_copy(body), timeout)
    else {
        return answer(out, Err(CallFailure::NotServed));
    };
    let out = out.clone();
    tokio::spawn(async move {
        let reason;
        let result = match served.await {
            Ok(reply) => Ok(reply),
            Err(CallError::Timeout) => Err(CallFailure::Timeout),
            Err(CallError::Exited(r)) => {
                reason = r.to_string();
                Err(CallFailure::Exited(&reason))
            }
            Err(CallError::NoProcess) => Err(CallFailure::NoProcess),
            Err(CallError::Full) => Err(CallFailure::Full),
            Err(CallError::WrongKind(_)) => Err(CallFailure::WrongKind),
            Err(_) => Err(CallFailure::NoReply),
        };
        answer(&out, result);
    });
}

/// A remote process watches a local one: the monitor is set here, before
/// the next frame on this connection is delivered, so that a message sent
/// right after a monitor cannot overtake it.
fn watch_here(
    shared: &Arc<Shared>,
    name: &Arc<str>,
    out: &Arc<Outbound>,
    reference: u64,
    watcher: NodePid,
    target: &Target<'_>,
    link: bool,
) {
    let agent = shared.agent.read().clone();
    let monitored = shared.resolve_target(target).and_then(|pid| {
        let monitor = shared.node.monitor_for(agent.as_ref()?, &pid)?;
        Some((pid, monitor))
    });
    let Some((pid, monitor)) = monitored else {
        let reason = ExitReason::NoProc.to_string();
        let down = Head::Down {
            reference,
            pid: 0,
            reason: &reason,
        };
        if let Ok(frame) = wire::encode::<()>(&down, None) {
            let _ = out.push(wire::pid_lane(watcher.id().0), frame);
        }
        return;
    };
    shared.to_agent(Command::RemoteWatch {
        peer: name.clone(),
        generation: out.generation,
        reference,
        watcher,
        target: pid,
        monitor,
        link,
    });
}

/// A remote call's failure as the caller sees it.
fn call_error(failure: CallFailure<'_>) -> CallError {
    match failure {
        CallFailure::Timeout => CallError::Timeout,
        CallFailure::Exited(reason) => {
            CallError::Exited(reason.parse().unwrap_or(ExitReason::NoProc))
        }
        CallFailure::NoProcess => CallError::NoProcess,
        CallFailure::Full => CallError::Full,
        CallFailure::WrongKind => CallError::WrongKind("server of the registered type"),
        CallFailure::NoReply => CallError::NoReply,
        CallFailure::NotServed => {
            CallError::WrongKind("served call or start function on that node")
        }
    }
}

/// Counts and logs a connection closed for a malformed frame; returns why.
pub(super) fn refuse(shared: &Shared, e: Malformed) -> String {
    let why = e.to_string();
    shared.refuse(&why);
    why
}
