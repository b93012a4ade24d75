//! What every viewer shares: utilization, measured at most once per window
//! however many dashboards, scrapes and consoles ask, and which processes
//! kept the schedulers busy over the last second (the runtime's sampling
//! profiler, asked only by the views that sort by it). Neither depends on
//! how many processes the node holds: a look at a million processes costs
//! what a look at a hundred does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use owl_runtime::{Node, PidId};
use owl_sandbox::Sandbox;

use super::meter::{Meter, Sample};

/// How long one measurement serves: the dashboards refresh once a second.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// Which processes were busy over the last window.
#[derive(Clone, Debug)]
pub(crate) struct Busy {
    /// Each process sampled running: its share of one scheduler, in %.
    shares: HashMap<PidId, f64>,
    /// The window the shares cover.
    pub window: Duration,
}

impl Busy {
    /// The profiler's latest window (it starts sampling on the first ask).
    pub(crate) fn of(node: &Node) -> Busy {
        let busiest = node.busiest();
        Busy {
            shares: busiest.processes.into_iter().collect(),
            window: if busiest.window.is_zero() {
                WINDOW
            } else {
                busiest.window
            },
        }
    }

    /// `pid`'s share of one scheduler over the window, in % (0 if it was
    /// never sampled running).
    pub(crate) fn cpu_pct(&self, pid: PidId) -> f64 {
        self.shares.get(&pid).copied().unwrap_or(0.0)
    }

    /// The processes sampled running.
    pub(crate) fn pids(&self) -> impl Iterator<Item = PidId> + '_ {
        self.shares.keys().copied()
    }
}

#[derive(Debug)]
pub(crate) struct Observer {
    meter: Meter,
    latest: Option<(Instant, Sample)>,
}

impl Observer {
    pub(crate) fn new(node: Node, sandbox: Sandbox) -> Observer {
        Observer {
            meter: Meter::new(node, sandbox),
            latest: None,
        }
    }

    /// Utilization over the latest window, measured anew if it is older
    /// than [`WINDOW`].
    pub(crate) fn utilization(&mut self) -> Sample {
        if let Some((at, sample)) = &self.latest
            && at.elapsed() < WINDOW
        {
            return sample.clone();
        }
        let sample = self.meter.sample();
        self.latest = Some((Instant::now(), sample.clone()));
        sample
    }
}
