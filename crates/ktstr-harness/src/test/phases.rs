//! Where a test's wall time goes, phase by phase: recorded by the runner
//! ([`super::try_run`]), written into the test's JSON under `"phases"` and
//! printed by `cargo run --example test_overhead -p ktstr-harness`.
//!
//! Invariant: the phases are consecutive laps of one clock started when the
//! test starts, so they add up to `total` (`process_start` is measured
//! before that clock, from the kernel's record of when the process began).

use std::time::{Duration, Instant};

/// One step of a test, in the order the runner takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Finding the kernel and scheduler, parsing the topology, checking the scenario.
    Inputs,
    /// Waiting for a machine-wide VM slot.
    Slot,
    /// Building the initramfs, or finding it in the cache.
    Image,
    /// Starting the VM: QEMU or ktstr-vmm up and the snapshot loaded (or a cold boot started).
    VmStart,
    /// Cold boot only: from the VM running to the guest init's `SysReady`.
    GuestReady,
    /// Cold boot only: writing the snapshot later sessions resume.
    SnapshotSave,
    /// Attaching the host-side monitor to the guest (waiting for its
    /// vmlinux, loaded meanwhile).
    MonitorStart,
    /// Starting the scheduler until the kernel reports it attached.
    SchedulerAttach,
    /// The scenario, request to report (the guest's own `wall_ms` is inside it).
    Scenario,
    /// Stopping the scheduler until the kernel reports it detached.
    SchedulerStop,
    /// Ending the VM once the results are in.
    Shutdown,
    /// Evaluating the verdict and writing the JSON result.
    Result,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 12] = [
        Phase::Inputs,
        Phase::Slot,
        Phase::Image,
        Phase::VmStart,
        Phase::GuestReady,
        Phase::SnapshotSave,
        Phase::MonitorStart,
        Phase::SchedulerAttach,
        Phase::Scenario,
        Phase::SchedulerStop,
        Phase::Shutdown,
        Phase::Result,
    ];

    /// The key in the JSON and the row in the table.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Inputs => "inputs",
            Phase::Slot => "vm_slot",
            Phase::Image => "image",
            Phase::VmStart => "vm_start",
            Phase::GuestReady => "guest_ready",
            Phase::SnapshotSave => "snapshot_save",
            Phase::MonitorStart => "monitor_start",
            Phase::SchedulerAttach => "scheduler_attach",
            Phase::Scenario => "scenario",
            Phase::SchedulerStop => "scheduler_stop",
            Phase::Shutdown => "shutdown",
            Phase::Result => "result",
        }
    }
}

/// A test's phases, as measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimings {
    /// Process start (exec) to this test starting; `None` where `/proc` cannot say.
    pub process_start: Option<Duration>,
    /// Each phase's duration, indexed like [`Phase::ALL`].
    pub phases: [Duration; Phase::ALL.len()],
    /// The guest resumed a snapshot instead of booting.
    pub restored: bool,
    /// That snapshot had the scheduler attached already.
    pub attach_resumed: bool,
    /// The scenario's own wall time, as the guest measured it.
    pub scenario_wall: Duration,
}

impl PhaseTimings {
    /// The duration of `phase`.
    pub fn get(&self, phase: Phase) -> Duration {
        self.phases[phase as usize]
    }

    /// All phases together: the test's wall time inside the runner.
    pub fn total(&self) -> Duration {
        self.phases.iter().sum()
    }

    /// What the test cost beyond its scenario: `total` minus the guest's `wall_ms`.
    pub fn overhead(&self) -> Duration {
        self.total().saturating_sub(self.scenario_wall)
    }

    /// The `"phases"` object of the JSON result, in milliseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut m = serde_json::Map::new();
        m.insert("restored".into(), self.restored.into());
        m.insert("attach_resumed".into(), self.attach_resumed.into());
        m.insert("process_start_ms".into(), self.process_start.map(ms).into());
        for p in Phase::ALL {
            m.insert(format!("{}_ms", p.name()), ms(self.get(p)).into());
        }
        m.insert("scenario_wall_ms".into(), ms(self.scenario_wall).into());
        m.insert("total_ms".into(), ms(self.total()).into());
        m.insert("overhead_ms".into(), ms(self.overhead()).into());
        serde_json::Value::Object(m)
    }
}

/// Written as [`PhaseTimings::to_json`]'s object.
impl serde::Serialize for PhaseTimings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Laps of one clock: each [`lap`](Self::lap) ends the phase it names.
pub(crate) struct PhaseClock {
    last: Instant,
    timings: PhaseTimings,
}

impl PhaseClock {
    /// Starts the clock as the test starts.
    pub(crate) fn start() -> Self {
        PhaseClock {
            last: Instant::now(),
            timings: PhaseTimings {
                process_start: process_age(),
                ..PhaseTimings::default()
            },
        }
    }

    /// Ends `phase` now: it took the time since the previous lap.
    pub(crate) fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        self.timings.phases[phase as usize] += now - self.last;
        self.last = now;
    }

    /// Splits the time already lapped into `phase` off into `parts`
    /// (measured inside it, e.g. by the session), keeping the sum.
    pub(crate) fn split(&mut self, phase: Phase, parts: &[(Phase, Duration)]) {
        for &(part, d) in parts {
            let whole = &mut self.timings.phases[phase as usize];
            let d = d.min(*whole);
            *whole -= d;
            self.timings.phases[part as usize] += d;
        }
    }

    /// Notes what the guest reported and whether it resumed a snapshot
    /// (and one with the scheduler attached).
    pub(crate) fn note(&mut self, restored: bool, attach_resumed: bool, scenario_wall: Duration) {
        self.timings.restored = restored;
        self.timings.attach_resumed = attach_resumed;
        self.timings.scenario_wall = scenario_wall;
    }

    /// The timings so far.
    pub(crate) fn timings(&self) -> PhaseTimings {
        self.timings
    }
}

/// How long ago this process started: `/proc/uptime` minus the process's
/// start time in `/proc/self/stat` (both in the kernel's 10 ms clock ticks).
fn process_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22, counted after the `(comm)` field, which may hold spaces.
    let after_comm = stat.rsplit_once(')')?.1;
    let start_ticks: f64 = after_comm.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let age = uptime - start_ticks / hz as f64;
    (age >= 0.0).then(|| Duration::from_secs_f64(age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_and_splits_keep_the_sum() {
        let mut c = PhaseClock::start();
        std::thread::sleep(Duration::from_millis(20));
        c.lap(Phase::Inputs);
        std::thread::sleep(Duration::from_millis(30));
        c.lap(Phase::VmStart);
        c.split(Phase::VmStart, &[(Phase::Image, Duration::from_millis(10))]);
        // A part longer than its whole takes the whole, never more.
        c.split(Phase::Inputs, &[(Phase::Slot, Duration::from_secs(9))]);
        c.note(true, false, Duration::from_millis(5));
        let t = c.timings();
        assert_eq!(t.get(Phase::Inputs), Duration::ZERO);
        assert!(t.get(Phase::Slot) >= Duration::from_millis(20));
        assert_eq!(t.get(Phase::Image), Duration::from_millis(10));
        assert!(t.get(Phase::VmStart) >= Duration::from_millis(20));
        assert!(t.total() >= Duration::from_millis(50));
        assert_eq!(t.overhead(), t.total() - Duration::from_millis(5));
        let j = t.to_json();
        assert_eq!(j["restored"], true);
        assert_eq!(j["attach_resumed"], false);
        assert_eq!(j["image_ms"], 10.0);
        assert!(j["process_start_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    }
}
