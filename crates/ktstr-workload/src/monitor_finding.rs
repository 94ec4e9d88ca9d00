//! What the host-side monitor (ktstr-monitor, reading the guest kernel's
//! run queues) saw, in the verdict's vocabulary: plain data the harness
//! fills in, so this crate needs no monitor and the verdict can rank a
//! finding below a crash or a scheduler exit and above a workload check.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which monitor detector fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorDetector {
    /// A CPU with runnable tasks did not run them.
    Stall,
    /// A CPU's local dispatch queue stayed deep.
    DeepLocalDsq,
    /// Runnable tasks stayed unevenly spread over CPUs.
    Imbalance,
}

impl fmt::Display for MonitorDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MonitorDetector::Stall => "stall",
            MonitorDetector::DeepLocalDsq => "deep local DSQ",
            MonitorDetector::Imbalance => "imbalance",
        })
    }
}

/// One finding of the monitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorFinding {
    /// The detector.
    pub detector: MonitorDetector,
    /// The CPU it is about (`None`: all of them, as for imbalance).
    pub cpu: Option<u32>,
    /// When it began, ms after the monitor attached.
    pub from_ms: u64,
    /// When it began, ms after the scenario started (negative: before,
    /// e.g. as the scheduler attached); `None` if no scenario started.
    #[serde(default)]
    pub from_scenario_ms: Option<i64>,
    /// How long it held, ms (sampled: a multiple of the period).
    pub lasted_ms: u64,
    /// What the monitor saw, e.g. `idle while 2 runnable; current swapper/1[0]`.
    pub detail: String,
}

impl fmt::Display for MonitorFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "monitor: {} on ", self.detector)?;
        match self.cpu {
            Some(cpu) => write!(f, "cpu{cpu}")?,
            None => f.write_str("all cpus")?,
        }
        match self.from_scenario_ms {
            Some(ms) => write!(f, " from scenario {ms:+} ms")?,
            None => write!(f, " from +{} ms", self.from_ms)?,
        }
        write!(f, " for {} ms: {}", self.lasted_ms, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Failure, Verdict};

    fn stall() -> MonitorFinding {
        MonitorFinding {
            detector: MonitorDetector::Stall,
            cpu: Some(1),
            from_ms: 2300,
            from_scenario_ms: None,
            lasted_ms: 2000,
            detail: "idle while 2 runnable; current swapper/1[0]".into(),
        }
    }

    #[test]
    fn a_finding_reads_in_scenario_time_when_the_scenario_started() {
        let mut f = stall();
        assert!(
            f.to_string().contains(" from +2300 ms for 2000 ms: "),
            "{f}"
        );
        f.from_scenario_ms = Some(-300);
        assert!(
            f.to_string()
                .contains(" from scenario -300 ms for 2000 ms: "),
            "{f}"
        );
        f.from_scenario_ms = Some(1200);
        assert!(
            f.to_string()
                .contains(" from scenario +1200 ms for 2000 ms: "),
            "{f}"
        );
    }

    #[test]
    fn a_monitor_failure_ranks_after_a_detach_and_before_workload_checks() {
        let detached = Failure::SchedulerDetached {
            reason: "runnable task stall".into(),
        };
        let stuck = Failure::NoProgress {
            worker: "cg_0/0".into(),
        };
        let v = Verdict::from_failures(
            vec![stuck.clone(), Failure::Monitor(stall()), detached.clone()],
            Vec::new(),
        );
        assert_eq!(v.failures, vec![detached, Failure::Monitor(stall()), stuck]);

        let alone = Verdict::from_failures(vec![Failure::Monitor(stall())], Vec::new());
        assert!(!alone.passed);
        assert_eq!(
            alone.headline("t", "1n1l2c1t eevdf"),
            "t [1n1l2c1t eevdf] failed: monitor: stall on cpu1 from +2300 ms for 2000 ms: \
             idle while 2 runnable; current swapper/1[0]"
        );
    }
}
