//! One look at the node shared by every viewer: utilization and each
//! process's CPU over the last window, taken at most once per window
//! however many dashboards, scrapes and consoles ask. A viewer never pays
//! for a look of its own, and three viewers cost what one does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use owl_runtime::{Node, PidId};
use owl_sandbox::Sandbox;

use super::list::RecentCpu;
use super::meter::{Meter, Sample};

/// How long one look serves: the dashboards refresh once a second.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

/// The latest look.
#[derive(Clone, Debug)]
pub(crate) struct Look {
    /// Utilization over the window.
    pub utilization: Sample,
    /// CPU per process over the window.
    pub cpu: std::sync::Arc<HashMap<PidId, Duration>>,
    /// The window's length.
    pub window: Duration,
}

#[derive(Debug)]
pub(crate) struct Observer {
    meter: Meter,
    recent: RecentCpu,
    latest: Option<(Instant, Look)>,
}

impl Observer {
    pub(crate) fn new(node: Node, sandbox: Sandbox) -> Observer {
        Observer {
            meter: Meter::new(node, sandbox),
            recent: RecentCpu::default(),
            latest: None,
        }
    }

    /// The latest look, taken anew if it is older than [`WINDOW`].
    pub(crate) fn look(&mut self, node: &Node) -> Look {
        if let Some((at, look)) = &self.latest
            && at.elapsed() < WINDOW
        {
            return look.clone();
        }
        let (cpu, window) = self.recent.update(node);
        let look = Look {
            utilization: self.meter.sample(),
            cpu: std::sync::Arc::new(cpu),
            window,
        };
        self.latest = Some((Instant::now(), look.clone()));
        look
    }
}
