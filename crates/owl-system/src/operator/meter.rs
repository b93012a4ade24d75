//! One utilization meter for every view of the node: the system page, the
//! load page, `/metrics` and the console's `stats` all measure the same way.

use owl_runtime::{Node, SchedulerSample, Utilization};
use owl_sandbox::Sandbox;

/// Busy shares over one sampling window.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The busy share of the cores the node computes on (0.0–1.0): native
    /// schedulers and guest threads together — a runaway guest shows here,
    /// as a runaway process does on the BEAM.
    pub total: f64,
    /// Each scheduler thread's busy fraction.
    pub per_scheduler: Vec<f64>,
    /// The guest threads' busy share of their own threads (0.0–1.0).
    pub guests: f64,
    /// Guest threads.
    pub guest_threads: usize,
}

/// Measures utilization between calls of [`sample`](Self::sample).
///
/// ```
/// use owl_runtime::Runtime;
/// use owl_sandbox::{Sandbox, SandboxConfig};
/// use owl_system::math::{MathConfig, MathService};
/// use owl_system::operator::Operator;
///
/// let rt = Runtime::new(Default::default()).unwrap();
/// let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
/// let math = MathService::new(sandbox.clone(), MathConfig::default()).unwrap();
/// let operator = Operator::new(rt.node(), sandbox, math);
/// let mut meter = operator.meter();
/// std::thread::sleep(std::time::Duration::from_millis(20));
/// let sample = meter.sample();
/// assert!((0.0..=1.0).contains(&sample.total));
/// ```
#[derive(Debug)]
pub struct Meter {
    node: Node,
    sandbox: Sandbox,
    last: SchedulerSample,
    last_guests: SchedulerSample,
}

impl Meter {
    pub(super) fn new(node: Node, sandbox: Sandbox) -> Meter {
        Meter {
            last: node.scheduler_sample(),
            last_guests: sandbox.guest_sample(),
            node,
            sandbox,
        }
    }

    /// Utilization since the previous sample (or since the meter was made).
    pub fn sample(&mut self) -> Sample {
        let now = self.node.scheduler_sample();
        let guests_now = self.sandbox.guest_sample();
        let u: Utilization = now.utilization_since(&self.last);
        let g = guests_now.utilization_since(&self.last_guests);
        self.last = now;
        self.last_guests = guests_now;
        Sample {
            total: u.total,
            per_scheduler: u.per_scheduler,
            guests: g.total,
            guest_threads: g.per_scheduler.len(),
        }
    }
}
