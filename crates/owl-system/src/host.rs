//! The machine the node runs on, as its OS reports it: how busy its CPUs
//! are, its memory, and the disk the node keeps its data on. Read from
//! `/proc` and `statvfs`; on a system without them the figures are absent,
//! never made up.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// CPU time of the whole machine since boot, in clock ticks: (busy, all).
/// Two readings give the busy share between them
/// ([`CpuTimes::busy_since`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    all: u64,
}

impl CpuTimes {
    /// Reads the machine's CPU times (`/proc/stat`).
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        CpuTimes::parse(&stat)
    }

    /// The `cpu` line of `/proc/stat`: user, nice, system, idle, iowait,
    /// irq, softirq, steal (guest time is already inside user and nice).
    fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let all: u64 = ticks.iter().sum();
        let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
        Some(CpuTimes {
            busy: all - idle,
            all,
        })
    }

    /// The busy share of all the machine's CPUs between `earlier` and
    /// this reading (0–1; `None` if no time passed).
    pub fn busy_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let all = self.all.checked_sub(earlier.all).filter(|&t| t > 0)?;
        let busy = self.busy.saturating_sub(earlier.busy);
        Some((busy as f64 / all as f64).min(1.0))
    }
}

/// The machine's memory (`/proc/meminfo`), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMemory {
    /// All of it.
    pub total: u64,
    /// What programs could still get without swapping (`MemAvailable`).
    pub available: u64,
}

impl HostMemory {
    /// Reads it now.
    pub fn now() -> Option<HostMemory> {
        HostMemory::parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    fn parse(meminfo: &str) -> Option<HostMemory> {
        let field = |name: &str| -> Option<u64> {
            let line = meminfo.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some(HostMemory {
            total: field("MemTotal:")?,
            available: field("MemAvailable:")?,
        })
    }

    /// The share in use (0–1).
    pub fn used_share(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        1.0 - self.available as f64 / self.total as f64
    }
}

/// The file system holding a path, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Its size.
    pub total: u64,
    /// What an unprivileged program may still write.
    pub available: u64,
}

impl Disk {
    /// The file system `path` is on.
    pub fn of(path: &Path) -> Option<Disk> {
        let stat = rustix::fs::statvfs(path).ok()?;
        let unit = if stat.f_frsize > 0 {
            stat.f_frsize
        } else {
            stat.f_bsize
        };
        Some(Disk {
            total: stat.f_blocks.saturating_mul(unit),
            available: stat.f_bavail.saturating_mul(unit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_busy_share_comes_from_two_readings() {
        let earlier = CpuTimes::parse("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let later = CpuTimes::parse("cpu  250 0 150 900 100 0 0 0 0 0\n").unwrap();
        // 200 more busy ticks of 400 more in all.
        assert_eq!(later.busy_since(&earlier), Some(0.5));
        assert_eq!(later.busy_since(&later), None);
        assert_eq!(CpuTimes::parse("intr 1 2 3"), None);
    }

    #[test]
    fn memory_is_read_in_bytes_and_its_use_as_a_share() {
        let memory = HostMemory::parse(
            "MemTotal:       8000 kB\nMemFree:         100 kB\nMemAvailable:    2000 kB\n",
        )
        .unwrap();
        assert_eq!(memory.total, 8000 * 1024);
        assert_eq!(memory.used_share(), 0.75);
        assert_eq!(HostMemory::parse("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn this_machine_reports_its_figures() {
        let (cpu, memory) = (CpuTimes::now(), HostMemory::now());
        let disk = Disk::of(Path::new("."));
        assert!(cpu.is_some() && memory.is_some() && disk.is_some());
        let disk = disk.unwrap();
        assert!(disk.total > 0 && disk.available <= disk.total);
    }
}
