//! What a worker measures about itself while it works, and the report it
//! sends when it stops. Clock values are CLOCK_MONOTONIC ns.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// CLOCK_MONOTONIC in ns: the one clock workers and runner share.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).ok()
}

/// Wake-up latency summary, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Samples taken (all of them, even past the kept window).
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Maximum.
    pub max_ns: u64,
}

impl LatencyStats {
    /// Summarise samples (sorted in place).
    pub fn from_samples(samples: &mut [u64], total: u64, max_ns: u64) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |pct: usize| samples[(samples.len() - 1) * pct / 100];
        Some(Self {
            samples: total,
            p50_ns: at(50),
            p99_ns: at(99),
            max_ns,
        })
    }
}

/// What a worker measured about itself (clock values are CLOCK_MONOTONIC ns).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    /// Worker pid.
    pub pid: u32,
    /// When it started working.
    pub start_ns: u64,
    /// When it saw the stop flag.
    pub end_ns: u64,
    /// Its own CPU time.
    pub cpu_time_ns: u64,
    /// CPU time of its reaped children (fork churn, payload).
    pub children_cpu_ns: u64,
    /// Time spent runnable but waiting for a CPU (`/proc/self/schedstat`
    /// field 2; None without CONFIG_SCHED_INFO).
    pub run_delay_ns: Option<u64>,
    /// Loop turns completed.
    pub work_units: u64,
    /// Voluntary context switches.
    pub voluntary_csw: u64,
    /// Involuntary context switches.
    pub involuntary_csw: u64,
    /// CPU changes seen between consecutive work units.
    pub migrations: u64,
    /// Migrations the kernel counted (`se.nr_migrations` in
    /// `/proc/self/sched`; None without CONFIG_SCHED_DEBUG).
    pub kernel_migrations: Option<u64>,
    /// CPUs it was seen on.
    pub cpus_used: Vec<u32>,
    /// CPU it was last seen on.
    pub last_cpu: Option<u32>,
    /// Whether gaps are meaningful (false for payloads).
    pub tracks_progress: bool,
    /// Longest time without a work unit (intentional sleeps excluded).
    pub max_gap_ns: u64,
    /// When that gap began.
    pub max_gap_start_ns: u64,
    /// CPU it was last seen on before that gap.
    pub max_gap_cpu: Option<u32>,
    /// Wake-up latency (ping-pong: token send to receipt; timers: lateness).
    pub wake_latency: Option<LatencyStats>,
    /// Children forked.
    pub forks: u64,
    /// Payload runs that ended on their own, and the last exit status.
    pub payload_exits: u64,
    /// Last payload wait status, if any ended.
    pub payload_last_status: Option<i32>,
    /// What went wrong inside the worker, if anything.
    pub error: Option<String>,
}

const MAX_LAT_SAMPLES: usize = 1 << 16;
const NO_CPU: u32 = u32::MAX;

/// Per-worker measurements, updated at every work unit.
pub(super) struct Telemetry {
    start_ns: u64,
    last_ns: u64,
    max_gap_ns: u64,
    max_gap_start_ns: u64,
    max_gap_cpu: u32,
    units: u64,
    last_cpu: u32,
    migrations: u64,
    cpus: BTreeSet<u32>,
    lat: Vec<u64>,
    lat_total: u64,
    lat_max: u64,
    pub(super) forks: u64,
}

impl Telemetry {
    pub(super) fn new() -> Self {
        let now = mono_ns();
        let cpu = current_cpu().unwrap_or(NO_CPU);
        let mut cpus = BTreeSet::new();
        if cpu != NO_CPU {
            cpus.insert(cpu);
        }
        Self {
            start_ns: now,
            last_ns: now,
            max_gap_ns: 0,
            max_gap_start_ns: now,
            max_gap_cpu: cpu,
            units: 0,
            last_cpu: cpu,
            migrations: 0,
            cpus,
            lat: Vec::with_capacity(MAX_LAT_SAMPLES),
            lat_total: 0,
            lat_max: 0,
            forks: 0,
        }
    }

    fn gap_to(&mut self, now: u64) {
        let gap = now.saturating_sub(self.last_ns);
        if gap > self.max_gap_ns {
            self.max_gap_ns = gap;
            self.max_gap_start_ns = self.last_ns;
            self.max_gap_cpu = self.last_cpu;
        }
    }

    /// One work unit done.
    pub(super) fn progress(&mut self) {
        let now = mono_ns();
        self.gap_to(now);
        if let Some(cpu) = current_cpu() {
            if cpu != self.last_cpu {
                if self.last_cpu != NO_CPU {
                    self.migrations += 1;
                }
                self.cpus.insert(cpu);
                self.last_cpu = cpu;
            }
        }
        self.last_ns = now;
        self.units += 1;
    }

    /// The worker chose to be idle until `t`: that time is not a gap.
    pub(super) fn excuse_until(&mut self, t: u64) {
        self.last_ns = self.last_ns.max(t);
    }

    pub(super) fn latency(&mut self, ns: u64) {
        if self.lat.len() < MAX_LAT_SAMPLES {
            self.lat.push(ns);
        } else {
            // Keep a rolling window once full; the max stays exact.
            let i = (self.lat_total as usize) % MAX_LAT_SAMPLES;
            self.lat[i] = ns;
        }
        self.lat_total += 1;
        self.lat_max = self.lat_max.max(ns);
    }

    pub(super) fn finish(mut self, tracks_progress: bool) -> ChildReport {
        let end = mono_ns();
        if tracks_progress {
            self.gap_to(end);
        }
        // SAFETY: zeroed rusage is a valid out-buffer.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid out-pointer.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        // SAFETY: zeroed rusage is a valid out-buffer.
        let mut ch: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ch is a valid out-pointer.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ch) };
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
        let total = self.lat_total;
        let max = self.lat_max;
        ChildReport {
            pid: std::process::id(),
            start_ns: self.start_ns,
            end_ns: end,
            cpu_time_ns: cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
            children_cpu_ns: tv(ch.ru_utime) + tv(ch.ru_stime),
            run_delay_ns: run_delay_ns(),
            kernel_migrations: kernel_migrations(),
            work_units: self.units,
            voluntary_csw: ru.ru_nvcsw as u64,
            involuntary_csw: ru.ru_nivcsw as u64,
            migrations: self.migrations,
            cpus_used: self.cpus.into_iter().collect(),
            last_cpu: (self.last_cpu != NO_CPU).then_some(self.last_cpu),
            tracks_progress,
            max_gap_ns: if tracks_progress { self.max_gap_ns } else { 0 },
            max_gap_start_ns: self.max_gap_start_ns,
            max_gap_cpu: (self.max_gap_cpu != NO_CPU).then_some(self.max_gap_cpu),
            wake_latency: LatencyStats::from_samples(&mut self.lat, total, max),
            forks: self.forks,
            ..ChildReport::default()
        }
    }
}

fn run_delay_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn kernel_migrations() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/sched").ok()?;
    text.lines()
        .find(|l| l.trim_start().starts_with("se.nr_migrations"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let l = LatencyStats::from_samples(&mut s, 100, 100).unwrap();
        assert_eq!(
            (l.p50_ns, l.p99_ns, l.max_ns, l.samples),
            (50, 99, 100, 100)
        );
        assert_eq!(LatencyStats::from_samples(&mut [], 0, 0), None);
    }
}
