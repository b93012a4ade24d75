//! Tracing a process: the guest functions a sandboxed process enters
//! (sampled from its stack), or the messages a native one exchanges.

use std::time::{Duration, Instant};

use owl_runtime::Pid;
use owl_runtime::trace::TraceEvent;
use owl_sandbox::{Sandbox, StackError};

/// Events a trace reports at most (like the reference's `trace(pid)`).
pub(super) const MAX_EVENTS: usize = 50;
/// How often a guest's stack is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
const STACK_TIMEOUT: Duration = Duration::from_secs(1);

/// A guest function entered during a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestEntry {
    /// Since the trace started.
    pub at: Duration,
    /// Depth in the call stack (0: outermost).
    pub depth: usize,
    /// `module!function`.
    pub function: String,
}

/// Where a guest's time went during a trace: how many stack samples
/// found a function running (innermost) and how many found it on the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionShare {
    /// `module!function`.
    pub function: String,
    /// Samples with it innermost: running its own code.
    pub running: u32,
    /// Samples with it anywhere on the stack.
    pub on_stack: u32,
}

/// What a trace saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trace {
    /// A sandboxed process: function entries seen between stack samples
    /// (calls shorter than a sample are not seen).
    Guest {
        /// Stack samples taken.
        samples: u32,
        /// Functions entered, at most 50.
        entries: Vec<GuestEntry>,
        /// Every function seen, the most samples running first: what a
        /// runaway does over the window, even when it enters nothing new.
        profile: Vec<FunctionShare>,
    },
    /// A native process: messages in and out, at most 50.
    Messages(Vec<TraceEvent>),
}

/// Samples `pid`'s stack every few milliseconds for `duration` and reports
/// each function entry seen (a frame that was not on the previous sample).
pub(super) async fn guest(sandbox: &Sandbox, pid: &Pid, duration: Duration) -> Trace {
    let start = Instant::now();
    let mut previous: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    let mut samples = 0u32;
    let mut profile: Vec<FunctionShare> = Vec::new();
    // The window is watched whole: entries stop at 50, the profile does not.
    while start.elapsed() < duration {
        let stack = match sandbox.stack(pid, STACK_TIMEOUT).await {
            Ok(stack) => stack,
            // Busy guest threads: this sample is skipped, not the trace.
            Err(StackError::NoAnswer) => continue,
            Err(_) => break,
        };
        samples += 1;
        for (i, function) in stack.iter().enumerate() {
            // A recursive function counts once per sample.
            if stack[..i].contains(function) {
                continue;
            }
            let share = match profile.iter_mut().find(|s| s.function == *function) {
                Some(share) => share,
                None => {
                    profile.push(FunctionShare {
                        function: function.clone(),
                        running: 0,
                        on_stack: 0,
                    });
                    profile.last_mut().expect("just pushed")
                }
            };
            share.on_stack += 1;
            if i == 0 {
                share.running += 1;
            }
        }
        // Frames are innermost first; compare from the outermost.
        let outer_first: Vec<&String> = stack.iter().rev().collect();
        let common = outer_first
            .iter()
            .zip(previous.iter().rev())
            .take_while(|(a, b)| **a == *b)
            .count();
        for (depth, function) in outer_first.iter().enumerate().skip(common) {
            if entries.len() < MAX_EVENTS {
                entries.push(GuestEntry {
                    at: start.elapsed(),
                    depth,
                    function: (*function).clone(),
                });
            }
        }
        previous = stack;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    profile.sort_by(|a, b| {
        (b.running, b.on_stack)
            .cmp(&(a.running, a.on_stack))
            .then_with(|| a.function.cmp(&b.function))
    });
    Trace::Guest {
        samples,
        entries,
        profile,
    }
}
