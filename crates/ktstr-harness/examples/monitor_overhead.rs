//! What the host-side monitor costs a test: runs one `#[ktstr_test]`-style
//! test (EEVDF, 2 CPUs, 4 spinners for 2 s) with the monitor sampling at its
//! default 100 ms and with it off, interleaved `KTSTR_ROUNDS` times (default
//! 3) so host load drifts hit both alike, and prints the median wall time of
//! each and the work the spinners got done (a guest slowed by sampling would
//! do less). The snapshot is taken before the first timed round.
//!
//! `KTSTR_KERNEL=... cargo run -p ktstr-harness --example monitor_overhead`

use std::time::{Duration, Instant};

use ktstr_harness::test::{KtstrTest, MonitorPolicy, MonitorSpec, try_run};
use ktstr_harness::workload::{Scenario, catalogue};

fn steady() -> Scenario {
    catalogue::steady()
}

const fn test(name: &'static str, monitor: MonitorSpec) -> KtstrTest {
    KtstrTest {
        monitor,
        ..KtstrTest::new(name, "1n1l2c1t", steady)
    }
}

const OFF: MonitorSpec = MonitorSpec {
    stall: MonitorPolicy::Off,
    deep_dsq: MonitorPolicy::Off,
    imbalance: MonitorPolicy::Off,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("KTSTR_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let tests = [
        test("monitor_overhead/on", MonitorSpec::DEFAULT),
        test("monitor_overhead/off", OFF),
    ];
    // Warm-up: builds the image and takes the snapshot both runs resume.
    try_run(&tests[1])?;
    let mut wall = [Vec::new(), Vec::new()];
    let mut work = [Vec::new(), Vec::new()];
    let mut samples = Vec::new();
    for _ in 0..rounds {
        for (i, t) in tests.iter().enumerate() {
            let started = Instant::now();
            let o = try_run(t)?;
            wall[i].push(started.elapsed());
            work[i].push(o.report.workers.iter().map(|w| w.work_units).sum::<u64>());
            if i == 0 {
                samples.push(o.monitored.record.samples.len());
            }
        }
    }
    for (i, label) in ["monitor on (100 ms)", "monitor off"].iter().enumerate() {
        println!(
            "{label:>20}: median wall {:.2?} over {rounds} runs {:?}; spinner work units {:?}",
            median(wall[i].clone()),
            wall[i],
            work[i]
        );
    }
    println!("samples per monitored run: {samples:?}");
    Ok(())
}
