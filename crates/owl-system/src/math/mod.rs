//! The talk's calculation, ∑(1..n), as a service.
//!
//! Every calculation is its own sandboxed process of the guest module
//! [`MODULE`], started under the math supervisor (a dynamic supervisor
//! registered as [`SUPERVISOR`], holding at most `max_running` of them) and
//! monitored by whoever asked: the answer arrives as a message, a crash as the
//! monitor's `Down`. So a crash, a runaway or a kill touches that one
//! calculation and nothing else.
//!
//! Admission is fair ([`Client`]): at the limit, a newcomer takes a slot
//! from whoever holds the most, never the other way round.
//!
//! ```
//! use std::time::Duration;
//! use owl_runtime::supervisor::{Strategy, Supervisor, SupervisorSpec};
//! use owl_runtime::Runtime;
//! use owl_sandbox::{Sandbox, SandboxConfig};
//! use owl_system::math::{Client, MathConfig, MathService, Outcome, Settled};
//!
//! let rt = Runtime::new(Default::default()).unwrap();
//! let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
//! let math = MathService::new(sandbox, MathConfig::default()).unwrap();
//! let node = rt.node();
//! let outcome = rt.block_on(async move {
//!     let mut spec = SupervisorSpec::new(Strategy::OneForOne);
//!     for child in math.child_specs() {
//!         spec = spec.child(child);
//!     }
//!     let _root = Supervisor::start(&node, spec).await.unwrap();
//!     let asker = node.spawn_task(move |mut p| async move {
//!         let pid = math.start(&mut p, &100.into(), &Client::named("doc")).await.unwrap();
//!         loop {
//!             match MathService::settle(p.recv_any().await) {
//!                 Ok(Settled { pid: from, outcome }) if from == pid => return outcome,
//!                 _ => continue,
//!             }
//!         }
//!     });
//!     asker.join().await.unwrap()
//! });
//! assert_eq!(outcome, Outcome::Sum("5050".into()));
//! ```

mod admission;
mod input;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use owl_runtime::supervisor::{ChildError, ChildSpec, Restart, SupervisorRef, SupervisorSpec};
use owl_runtime::{Down, ExitReason, Message, Pid, Process, SpawnOptions};
use owl_sandbox::{CallCounts, Canary, GuestOutput, GuestReply, LoadError, Sandbox, SpawnError};

pub use admission::{Client, Refusal, Scope};
pub use input::{Input, InvalidInput, MAX_INPUT_CHARS, MAX_INPUT_DIGITS, parse_input};

/// The guest module that computes the sum.
pub const MODULE: &str = "math";
/// Its function: `sum(n: i64) -> (status: i32, lo: i64, hi: i64)`.
pub const FUNCTION: &str = "sum";
/// Its function for inputs beyond 64 bits, a byte call (see
/// [`Sandbox::spawn_bytes`]): the decimal digits of n in, those of the sum
/// out, `(status: i32, at: i32, len: i32)`.
pub const FUNCTION_DIGITS: &str = "sum_digits";
/// The registered name of the math supervisor.
pub const SUPERVISOR: &str = "math_sup";
/// The registered name of the process that ends calculations whose page
/// has gone (with `--reap-orphans`).
pub const REAPER: &str = "math_reaper";

/// What a candidate version of the guest must answer before it replaces the
/// current one: ∑(1..100) = 5050.
pub fn canary() -> Canary {
    Canary {
        function: FUNCTION.into(),
        args: vec![100],
        expected: vec![0, 5050, 0],
    }
}

/// The reason a calculation ended to make room for another client's.
pub const SQUEEZED: &str =
    "stopped to make room: the server was full and this visitor held the most calculations";

/// Version 1 of the guest, with the talk's three bugs (13 crashes, n < 1
/// loops forever, a naive O(n) loop).
pub const GUEST_V1: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guests/math.wat"
));
/// The fix: negative n is invalid input, 13 is a number, closed form.
pub const GUEST_FIXED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../guests/math_fixed.wat"
));

/// How long a start may wait for the math supervisor.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// How a calculation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// ∑(1..n), exact, in decimal digits.
    Sum(String),
    /// The guest itself refused the input (the fixed version does for n < 0).
    Invalid,
    /// The calculation's process ended without an answer: a crash, a kill,
    /// its CPU budget, or ended by the node (made room for another client,
    /// its page gone).
    Crashed(ExitReason),
}

impl Outcome {
    /// A short description of an ended calculation for a visitor: `error`
    /// (a crash or a kill; the reason goes in a tooltip), `error: CPU limit`
    /// (its budget ended it), or `stopped` (the node ended it on purpose: to
    /// make room, or because its page had gone).
    pub fn summary(reason: &ExitReason) -> &'static str {
        match reason {
            ExitReason::CpuLimit => "error: CPU limit",
            r if r.is_shutdown() => "stopped",
            _ => "error",
        }
    }

    /// Why a calculation ended, in a few words a visitor reads at a glance
    /// on a phone (the page shows it under the line; the full reason stays
    /// in the log and the line's tooltip).
    pub fn explain(reason: &ExitReason) -> String {
        const SHOWN_CHARS: usize = 80;
        let crash = |what: &str| {
            let what = what.trim();
            match what.char_indices().nth(SHOWN_CHARS) {
                Some((cut, _)) => format!("crashed: {}…", &what[..cut]),
                None => format!("crashed: {what}"),
            }
        };
        match reason {
            ExitReason::CpuLimit => "stopped: it used up its CPU budget".to_string(),
            ExitReason::Killed | ExitReason::Kill => "killed by the operator".to_string(),
            ExitReason::ShutdownWith(why) => format!("stopped: {why}"),
            r if r.is_shutdown() => "stopped by the node".to_string(),
            ExitReason::Error(msg) if msg.contains("memory") => {
                "crashed: it ran out of memory".to_string()
            }
            // `trap in math:sum: wasm trap: wasm `unreachable` instruction
            // executed`: the part after the last "trap: " says what happened.
            ExitReason::Error(msg) => crash(msg.rsplit("trap: ").next().unwrap_or(msg)),
            ExitReason::Panic(msg) => crash(msg),
            other => crash(&other.to_string()),
        }
    }
}

impl Outcome {
    /// Reads what the guest answered: `sum`'s `(status, lo, hi)`, or
    /// `sum_digits`'s status and digits.
    pub fn from_output(output: &GuestOutput) -> Outcome {
        match &output.bytes {
            None => Outcome::from_values(&output.values),
            Some(digits) => Outcome::from_digits(&output.values, digits),
        }
    }

    /// Reads `sum`'s `(status, lo, hi)` results.
    pub fn from_values(values: &[i64]) -> Outcome {
        match values {
            [0, lo, hi] => {
                Outcome::Sum(((u128::from(*hi as u64) << 64) | u128::from(*lo as u64)).to_string())
            }
            [1, _, _] => Outcome::Invalid,
            other => Outcome::Crashed(ExitReason::error(format!(
                "math:sum returned {other:?}, not (status 0|1, lo, hi)"
            ))),
        }
    }

    /// Reads `sum_digits`'s status and the digits it answered with.
    fn from_digits(values: &[i64], digits: &[u8]) -> Outcome {
        let decimal = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
        match values.first() {
            Some(0) if decimal => Outcome::Sum(String::from_utf8_lossy(digits).into_owned()),
            Some(1) => Outcome::Invalid,
            _ => Outcome::Crashed(ExitReason::error(format!(
                "math:{FUNCTION_DIGITS} returned {values:?} and {} bytes, not (status 0|1, digits)",
                digits.len()
            ))),
        }
    }
}

/// A calculation that came to an end, read from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The calculation's process.
    pub pid: Pid,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a calculation was not started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The node runs as many calculations as it may, and this client already
    /// holds its fair share of them: one of its own must end first.
    FairShare(Refusal),
    /// The sandbox has no room (its own hard limit); try again soon.
    Overloaded,
    /// The math supervisor or the guest module is not available (restarting,
    /// or a broken deployment): the message says which.
    Unavailable(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::FairShare(r) if r.scope == Scope::Address => write!(
                f,
                "your network address runs {} calculations, as many as one address may \
                 (shared fairly among its visitors); one of them must end first",
                r.cap
            ),
            StartError::FairShare(r) if r.held == 0 => write!(
                f,
                "the server is at its limit of {} calculations, shared fairly among its clients; try again soon",
                r.cap
            ),
            StartError::FairShare(r) => write!(
                f,
                "the server is at its limit of {} calculations and you hold {} of them, your fair share; one of yours must end first",
                r.cap, r.held
            ),
            StartError::Overloaded => f.write_str("overloaded: too many calculations running"),
            StartError::Unavailable(why) => write!(f, "calculations unavailable: {why}"),
        }
    }
}
impl std::error::Error for StartError {}

/// The math service: starts calculations and reads their answers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MathService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sandbox: Sandbox,
    admission: Arc<admission::Admission>,
    reap_orphans: Option<Duration>,
    /// Starts refused at the limit.
    refused: std::sync::atomic::AtomicU64,
    /// Calculations ended to make room for another client.
    squeezed: std::sync::atomic::AtomicU64,
}

/// Settings of the math service.
#[derive(Clone, Debug)]
pub struct MathConfig {
    /// Calculations that may run at once, all clients together.
    pub max_running: usize,
    /// Calculations the clients of one network address may run at once
    /// (`None`: half of `max_running`). A room of phones behind one NAT
    /// shares it; a script from one address cannot take more.
    pub max_per_address: Option<usize>,
    /// End a page's calculation this long after the page went away
    /// (`None`: they outlive their pages, so the operator can find them).
    pub reap_orphans: Option<Duration>,
}

/// How long a page's calculation outlives the page by default: long
/// enough for a phone to reconnect, short enough that runaways of closed
/// pages do not hold slots until an operator acts.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(10);

impl Default for MathConfig {
    fn default() -> Self {
        MathConfig {
            max_running: 1000,
            max_per_address: None,
            reap_orphans: Some(DEFAULT_ORPHAN_GRACE),
        }
    }
}

impl MathService {
    /// The service on `sandbox`, loading version 1 of the guest unless a
    /// `math` module is loaded already.
    pub fn new(sandbox: Sandbox, config: MathConfig) -> Result<MathService, LoadError> {
        if !sandbox.modules().iter().any(|m| m.name == MODULE) {
            sandbox.load(MODULE, GUEST_V1.as_bytes())?;
        }
        Ok(MathService {
            inner: Arc::new(Inner {
                sandbox,
                admission: admission::Admission::new(
                    config.max_running,
                    config
                        .max_per_address
                        .unwrap_or((config.max_running / 2).max(1)),
                ),
                reap_orphans: config.reap_orphans,
                refused: Default::default(),
                squeezed: Default::default(),
            }),
        })
    }

    /// The most calculations that run at once.
    pub fn max_running(&self) -> usize {
        self.inner.admission.cap()
    }

    /// The most calculations the clients of one address run at once.
    pub fn max_per_address(&self) -> usize {
        self.inner.admission.address_cap()
    }

    /// Calculations `client` runs now.
    pub fn held_by(&self, client: &Client) -> usize {
        self.inner.admission.held(client)
    }

    /// The children of the application's tree that belong to the math
    /// service: the math supervisor, and the orphan reaper when enabled.
    pub fn child_specs(&self) -> Vec<ChildSpec> {
        let mut specs = vec![ChildSpec::supervisor(
            SUPERVISOR,
            SupervisorSpec::dynamic()
                .name(SUPERVISOR)
                .label("math supervisor")
                .max_children(self.inner.admission.cap()),
        )];
        if let Some(grace) = self.inner.reap_orphans {
            let admission = self.inner.admission.clone();
            specs.push(ChildSpec::worker(REAPER, move |args| {
                let admission = admission.clone();
                let opts = SpawnOptions::new().label("orphan reaper");
                let pid = args.spawn_link_opts(opts, move |p| reap(p, admission, grace));
                async move { Ok(pid) }
            }));
        }
        specs
    }

    /// The calculations started through this service and not ended yet,
    /// any version of the guest (from the service's own table: the
    /// sandbox lists only calls that outlived their first slice).
    pub fn running(&self) -> Vec<Pid> {
        self.inner.admission.running()
    }

    /// Calculations ended to make room for another client, since start.
    pub fn squeezed(&self) -> u64 {
        self.inner.squeezed.load(Ordering::Relaxed)
    }

    /// Calculations refused because the limit was reached, since start.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// How the calculations ended so far, over every version of the guest.
    pub fn counts(&self) -> CallCounts {
        self.inner
            .sandbox
            .modules()
            .into_iter()
            .find(|m| m.name == MODULE)
            .map(|m| m.calls)
            .unwrap_or_default()
    }

    /// Starts ∑(1..n) for `client` as a child of the math supervisor,
    /// monitored by `ctx`; the answer comes to `ctx`'s mailbox (read it with
    /// [`settle`](Self::settle)). At the limit, fairness decides: room is
    /// made by ending the oldest calculation of the client that holds the
    /// most, or the start is refused if `client` holds its fair share.
    ///
    /// `ctx` is the calculation's page: with orphan reaping on, the
    /// calculation ends a while after `ctx` has gone.
    pub async fn start(
        &self,
        ctx: &mut Process,
        n: &Input,
        client: &Client,
    ) -> Result<Pid, StartError> {
        self.start_as(ctx, n, client, true).await
    }

    /// Like [`start`](Self::start), for a calculation that outlives `ctx`
    /// on purpose (an API request that returns while it still runs): it
    /// is never reaped as an orphan. The per-address ceiling bounds what
    /// such calculations can hold.
    pub async fn start_detached(
        &self,
        ctx: &mut Process,
        n: &Input,
        client: &Client,
    ) -> Result<Pid, StartError> {
        self.start_as(ctx, n, client, false).await
    }

    async fn start_as(
        &self,
        ctx: &mut Process,
        n: &Input,
        client: &Client,
        reapable: bool,
    ) -> Result<Pid, StartError> {
        let node = ctx.node().clone();
        let supervisor = node
            .resolve(SUPERVISOR)
            .ok_or_else(|| StartError::Unavailable("the math supervisor is not running".into()))?;
        let reservation = self.inner.admission.reserve(client).map_err(|refusal| {
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            StartError::FairShare(refusal)
        })?;
        if let Some((victim, _)) = &reservation.victim {
            // Its slot in the sandbox is free once it has ended.
            let ended = victim.wait_exit();
            node.exit(victim, ExitReason::shutdown_with(SQUEEZED));
            self.inner.squeezed.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(START_TIMEOUT, ended).await;
        }
        let (sandbox, reply_to) = (self.inner.sandbox.clone(), ctx.pid().clone());
        // Set in the start function if the sandbox's admission refused.
        let admission_refused = Arc::new(AtomicBool::new(false));
        let refused_in_start = admission_refused.clone();
        // Within 64 bits the number itself; beyond, its digits (copied
        // only then: most calculations are small).
        let call = match n.to_i64() {
            Some(n) => GuestCall::Sum(n),
            None => GuestCall::Digits(n.as_str().as_bytes().to_vec()),
        };
        let spec = ChildSpec::worker("sum", move |args| {
            // The monitor is set before the guest runs, so even a crash
            // in its first microsecond reaches the asker with its reason.
            let opts = SpawnOptions::new()
                .link_to(args.supervisor.clone())
                .parent(args.supervisor.clone())
                .monitored_by(reply_to.clone());
            let (node, reply_to) = (&args.node, reply_to.clone());
            let started = match &call {
                GuestCall::Sum(n) => {
                    sandbox.spawn_reply(node, MODULE, FUNCTION, vec![*n], opts, reply_to)
                }
                GuestCall::Digits(digits) => sandbox.spawn_reply_bytes(
                    node,
                    MODULE,
                    FUNCTION_DIGITS,
                    digits.clone(),
                    opts,
                    reply_to,
                ),
            };
            if matches!(started, Err(SpawnError::Overloaded)) {
                refused_in_start.store(true, Ordering::Relaxed);
            }
            async move { started.map_err(ExitReason::error) }
        })
        .restart(Restart::Temporary);
        let pid = SupervisorRef::from_pid(supervisor)
            .start_child(spec, START_TIMEOUT)
            .await
            .map_err(|e| match e {
                ChildError::MaxChildren => StartError::Overloaded,
                _ if admission_refused.load(Ordering::Relaxed) => StartError::Overloaded,
                other => StartError::Unavailable(other.to_string()),
            })
            .inspect_err(|e| {
                if *e == StartError::Overloaded {
                    self.inner.refused.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        reservation.fill(pid.clone(), ctx.pid().clone(), reapable);
        Ok(pid)
    }

    /// Takes the answers and `Down`s of calculations already waiting in
    /// `ctx`'s mailbox, without waiting (read each with [`settle`](Self::settle)).
    ///
    /// The answers come first in what it returns, then the `Down`s, so an
    /// answer always settles before its own `Down` is read.
    pub fn take_settled(ctx: &mut Process) -> Vec<Message> {
        // The `Down`s first: an answer reaches the mailbox before its
        // `Down`, so every answer of a `Down` taken here is there by the
        // time the answers are taken. (Answers first would miss one that
        // arrives, with its `Down`, between the two passes, and its line
        // would end as a crash.)
        let mut downs = Vec::new();
        while let Some(down) = ctx.try_recv::<Down>() {
            downs.push(Message::new(down));
        }
        let mut taken = Vec::new();
        while let Some(reply) = ctx.try_recv::<GuestReply>() {
            taken.push(Message::new(reply));
        }
        taken.extend(downs);
        taken
    }

    /// Reads a calculation's end from a message: its answer, or the `Down` of
    /// one that ended without answering. Anything else comes back unchanged.
    ///
    /// An answer is followed by a `Down` with reason `normal` for the same
    /// pid; callers forget a pid once it settled, and ignore that `Down`.
    pub fn settle(msg: Message) -> Result<Settled, Message> {
        let msg = match msg.downcast::<GuestReply>() {
            Ok(reply) => {
                return Ok(Settled {
                    pid: reply.from,
                    outcome: Outcome::from_output(&reply.output),
                });
            }
            Err(other) => other,
        };
        let down = msg.downcast::<Down>()?;
        let reason = match down.reason {
            // The answer always comes before a normal exit's `Down`.
            ExitReason::Normal => ExitReason::error("ended without an answer"),
            other => other,
        };
        Ok(Settled {
            pid: down.pid,
            outcome: Outcome::Crashed(reason),
        })
    }
}

/// Which guest function a calculation calls.
enum GuestCall {
    /// `sum(n)`, for n within 64 bits.
    Sum(i64),
    /// `sum_digits`, on n's decimal digits.
    Digits(Vec<u8>),
}

/// The orphan reaper: once a second, ends the calculations whose page has
/// been gone for longer than `grace` (as `shutdown`: on purpose, no crash
/// report).
async fn reap(p: Process, admission: Arc<admission::Admission>, grace: Duration) {
    loop {
        p.sleep(Duration::from_secs(1)).await;
        let orphans = admission.orphans(grace);
        if !orphans.is_empty() {
            tracing::info!(target: "owl::math", count = orphans.len(), grace_s = grace.as_secs_f64(),
                "ending calculations whose page went away");
        }
        let why = ExitReason::shutdown_with(format!(
            "orphaned: the page that asked for it closed more than {} s ago",
            grace.as_secs()
        ));
        for pid in orphans {
            p.node().exit(&pid, why.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visitor_reads_why_a_calculation_ended_in_a_few_words() {
        let trap = ExitReason::error(
            "trap in math:sum: wasm trap: wasm `unreachable` instruction executed",
        );
        assert_eq!(
            Outcome::explain(&trap),
            "crashed: wasm `unreachable` instruction executed"
        );
        assert_eq!(
            Outcome::explain(&ExitReason::CpuLimit),
            "stopped: it used up its CPU budget"
        );
        assert_eq!(
            Outcome::explain(&ExitReason::Killed),
            "killed by the operator"
        );
        let oom = ExitReason::error("trap in math:sum: memory allocation failed (limit 16 MiB)");
        assert_eq!(Outcome::explain(&oom), "crashed: it ran out of memory");
        let long = ExitReason::error("x".repeat(500));
        assert!(Outcome::explain(&long).chars().count() < 100);
        assert_eq!(
            Outcome::explain(&ExitReason::ShutdownWith("its page was closed".into())),
            "stopped: its page was closed"
        );
    }

    #[test]
    fn results_are_read_as_exact_128_bit_sums() {
        let sum = |digits: &str| Outcome::Sum(digits.into());
        assert_eq!(Outcome::from_values(&[0, 15, 0]), sum("15"));
        // ∑(1..9999999999) = 49999999995000000000 = 2 · 2^64 + 13106511847580896768.
        let lo = 13106511847580896768u64 as i64;
        assert_eq!(
            Outcome::from_values(&[0, lo, 2]),
            sum("49999999995000000000")
        );
        assert_eq!(
            Outcome::from_values(&[0, -1, -1]),
            sum(&u128::MAX.to_string()),
            "both halves unsigned"
        );
        assert_eq!(Outcome::from_values(&[1, 0, 0]), Outcome::Invalid);
        assert!(matches!(
            Outcome::from_values(&[7, 0, 0]),
            Outcome::Crashed(ExitReason::Error(_))
        ));
        assert!(matches!(
            Outcome::from_values(&[0]),
            Outcome::Crashed(ExitReason::Error(_))
        ));
    }
}
