//! Links and monitors made through the distribution whose target is on
//! this node. Code written for "some node" works the same when the target
//! turns out to be here: a small process keeps each such watch with the
//! runtime's own monitors and speaks the distribution's messages
//! ([`RemoteDown`](super::RemoteDown), [`RemoteExit`](super::RemoteExit)).

use std::sync::Arc;

use owl_runtime::{Down, ExitReason, MonitorRef, Pid};

use super::agent::{exit_signal, fire};
use super::{Dest, NodePid, Shared, target_of};

/// Asks the watching process to end without firing.
struct Unwatch;

/// The keeper's two monitors, set for it before `watch` returns.
struct Monitors {
    on_target: MonitorRef,
    on_watcher: MonitorRef,
}

/// Starts keeping a watch of `target`, a process of this node. Its
/// monitors are in place when this returns, as a remote watch's are
/// before the caller's next message: a target that ends right after
/// reports its real reason, and so does a watcher.
pub(super) fn watch(shared: &Arc<Shared>, reference: u64, watcher: &Pid, target: Dest, link: bool) {
    let node = &shared.node;
    let Some(pid) = shared.resolve_target(&target_of(&target)) else {
        return fire(
            node,
            reference,
            watcher,
            link,
            target,
            None,
            ExitReason::NoProc,
        );
    };
    let this_node = |p: &Pid| NodePid::new(&shared.name, p.id(), shared.creation);
    let (target_pid, watcher_pid) = (this_node(&pid), this_node(watcher));
    let (keeper_shared, keeper_watcher, keeper_target) =
        (shared.clone(), watcher.clone(), pid.clone());
    let keeper = node.spawn(move |mut p| async move {
        let (shared, watcher, pid) = (keeper_shared, keeper_watcher, keeper_target);
        let node = shared.node.clone();
        let Monitors {
            on_target,
            on_watcher,
        } = p.recv().await;
        loop {
            let message = p.recv_any().await;
            let Ok(down) = message.downcast::<Down>() else {
                // An `Unwatch`: the watcher took the watch back.
                break;
            };
            if down.monitor == on_target {
                let pid = Some(target_pid);
                fire(&node, reference, &watcher, link, target, pid, down.reason);
                break;
            }
            if down.monitor == on_watcher {
                if link {
                    exit_signal(&node, &pid, watcher_pid.into(), down.reason);
                }
                break;
            }
        }
        shared.local_watches.lock().remove(&reference);
    });
    let monitors = node
        .monitor_for(&keeper, &pid)
        .zip(node.monitor_for(&keeper, watcher));
    if let Some((on_target, on_watcher)) = monitors {
        shared
            .local_watches
            .lock()
            .insert(reference, keeper.clone());
        let _ = keeper.send(Monitors {
            on_target,
            on_watcher,
        });
    }
}

/// Takes back a watch of a local process; whether `reference` was one.
pub(super) fn unwatch(shared: &Shared, reference: u64) -> bool {
    let Some(keeper) = shared.local_watches.lock().remove(&reference) else {
        return false;
    };
    let _ = keeper.send(Unwatch);
    true
}
