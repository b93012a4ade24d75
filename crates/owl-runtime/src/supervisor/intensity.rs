//! Restart intensity: at most `max_restarts` restarts within a sliding period.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub(crate) struct Intensity {
    max_restarts: u32,
    period: Duration,
    recent: VecDeque<Instant>,
}

impl Intensity {
    pub(super) fn new(max_restarts: u32, period: Duration) -> Self {
        Intensity {
            max_restarts,
            period,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart now; false if it exceeds the allowed intensity.
    pub(super) fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        self.recent.push_back(now);
        while let Some(&oldest) = self.recent.front() {
            if now.duration_since(oldest) > self.period {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() <= self.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_restarts_then_refuses() {
        let mut i = Intensity::new(2, Duration::from_secs(60));
        assert!(i.allow_restart());
        assert!(i.allow_restart());
        assert!(!i.allow_restart());
    }

    #[test]
    fn zero_restarts_refuses_the_first() {
        assert!(!Intensity::new(0, Duration::from_secs(1)).allow_restart());
    }

    #[test]
    fn old_restarts_slide_out_of_the_period() {
        let mut i = Intensity::new(1, Duration::from_millis(1));
        assert!(i.allow_restart());
        std::thread::sleep(Duration::from_millis(3));
        assert!(i.allow_restart());
    }
}
