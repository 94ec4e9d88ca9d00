//! Prints what one monitor sample costs on a booted guest: boots the test
//! kernel (`KTSTR_KERNEL`; `KTSTR_BACKEND` picks the backend) with N vCPUs (first argument,
//! default 2) through ktstr-harness, then times back-to-back samples.
//! Then runs the sampler thread at shorter and shorter periods for
//! `RATE_WINDOW` each and prints the rate it achieved: the highest
//! sustainable rate is where it stops keeping its period.
//! This executable is the guest's `/init` too (ktstr-harness packs it).
//!
//! `cargo run -p ktstr-monitor --example sample_cost -- 2`

// The tests' session helpers: boot, attach, and the memory adapter.
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::Context;

const SAMPLES: usize = 500;
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// Sampler periods to try, µs (0: back to back).
const PERIODS_US: [u64; 5] = [10_000, 1_000, 500, 100, 0];

fn main() -> anyhow::Result<()> {
    let vcpus: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("vCPU count")?,
        None => 2,
    };
    let t = Instant::now();
    let w = common::boot_watched(vcpus, Vec::new())?;
    let boot = t.elapsed();
    let (mon, mem) = (&w.monitor, w.memory());
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            let sample = mon.sample(&mem);
            std::hint::black_box(sample);
            t.elapsed()
        })
        .collect();
    times.sort();
    let mean = times.iter().sum::<Duration>() / SAMPLES as u32;
    println!(
        "{} CPUs: boot and attach {boot:.1?}; one sample: \
         median {:.1?}, mean {mean:.1?}, p99 {:.1?}, max {:.1?} over {SAMPLES} \
         (at most {:.0} samples/s from one thread)",
        mon.cpus(),
        times[SAMPLES / 2],
        times[SAMPLES * 99 / 100],
        times[SAMPLES - 1],
        1.0 / mean.as_secs_f64(),
    );
    for us in PERIODS_US {
        let period = Duration::from_micros(us);
        let sampler = ktstr_monitor::SamplerHandle::spawn(mon.clone(), w.memory(), period)?;
        std::thread::sleep(RATE_WINDOW);
        let rec = sampler.stop()?;
        let span = match (rec.samples.first(), rec.samples.last()) {
            (Some(a), Some(b)) if rec.samples.len() > 1 => b.at - a.at,
            _ => RATE_WINDOW,
        };
        let rate = (rec.samples.len().saturating_sub(1)) as f64 / span.as_secs_f64();
        let kept = if us == 0 {
            "back to back".to_string()
        } else {
            format!("{:.0}% of asked", 100.0 * rate * us as f64 / 1e6)
        };
        println!(
            "period {period:>8.1?}: {rate:>7.0} samples/s achieved ({kept}), {} torn CPU readings of {}",
            rec.torn,
            rec.samples.len() * mon.cpus()
        );
    }
    w.session.shutdown()?;
    Ok(())
}
