//! Requests for running guests' call stacks. A guest cannot be asked
//! anything while it runs; it answers at its next epoch tick, where it
//! looks for a request filed under its pid.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

/// Requests for running guests' call stacks, by pid number: a guest
/// answers its own at its next epoch tick. Shared by all the processes of a
/// module, so a call costs nothing here unless someone asks.
#[derive(Default)]
pub(crate) struct StackRequests {
    /// How many wait: a guest looks for its own only when some do.
    waiting: AtomicUsize,
    replies: parking_lot::Mutex<FxHashMap<u64, oneshot::Sender<Vec<String>>>>,
}

impl StackRequests {
    /// Asks process `pid` for its stack (a newer request replaces an older
    /// one, whose waiter then hears nothing).
    pub(crate) fn request(&self, pid: u64) -> oneshot::Receiver<Vec<String>> {
        let (tx, rx) = oneshot::channel();
        let mut replies = self.replies.lock();
        replies.insert(pid, tx);
        self.waiting.store(replies.len(), Ordering::Release);
        rx
    }

    /// Where to send `pid`'s stack, if someone asked for it.
    pub(crate) fn take(&self, pid: u64) -> Option<oneshot::Sender<Vec<String>>> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut replies = self.replies.lock();
        let reply = replies.remove(&pid);
        self.waiting.store(replies.len(), Ordering::Release);
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reaches_its_own_process_once_and_no_other() {
        let requests = StackRequests::default();
        assert!(requests.take(7).is_none(), "nothing asked yet");
        let mut answer = requests.request(7);
        assert!(requests.take(8).is_none(), "not for another process");
        let reply = requests.take(7).expect("the request for 7");
        assert!(requests.take(7).is_none(), "answered once");
        reply.send(vec!["math!sum".into()]).unwrap();
        assert_eq!(answer.try_recv().unwrap(), vec!["math!sum".to_string()]);
    }

    #[test]
    fn a_request_dropped_unanswered_tells_its_waiter() {
        let requests = StackRequests::default();
        let mut answer = requests.request(3);
        drop(requests.take(3));
        assert!(answer.try_recv().is_err());
    }
}
