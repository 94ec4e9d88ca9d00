//! Prints what one monitor sample costs on a booted guest: boots the test
//! kernel (`KTSTR_KERNEL`, a vmlinux) with N vCPUs (first argument,
//! default 2) through ktstr-harness, then times back-to-back samples.
//! This executable is the guest's `/init` too (ktstr-harness packs it).
//!
//! `cargo run -p ktstr-monitor --example sample_cost -- 2`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ktstr_harness::{Session, SessionConfig};
use ktstr_monitor::{GuestMemoryReader, MemoryError, Monitor, Placement, Vmlinux};

struct SessionMemory<'a>(&'a Session);

impl GuestMemoryReader for SessionMemory<'_> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let len = buf.len();
        self.0
            .read_guest_memory(addr, buf)
            .map_err(|e| MemoryError {
                addr,
                len,
                source: Box::new(e),
            })
    }
}

const SAMPLES: usize = 500;

fn main() -> anyhow::Result<()> {
    let vcpus: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("vCPU count")?,
        None => 2,
    };
    let kernel = ktstr_testenv::find_kernel().map_err(|m| anyhow::anyhow!("{m}"))?;
    let cache = tempfile::tempdir()?;
    let mut cfg = SessionConfig::new(&kernel);
    cfg.vcpus = vcpus;
    cfg.cache_dir = cache.path().to_owned();
    cfg.snapshots = false;

    let t = Instant::now();
    let vmlinux = Arc::new(Vmlinux::load(&kernel)?);
    let load = t.elapsed();
    let s = Session::boot(&cfg)?;
    let sys = s.sys_info();
    let placement = Placement {
        text: sys.kernel_text,
        phys_base: sys.kernel_phys_base,
    };
    let mem = SessionMemory(&s);
    let t = Instant::now();
    let mon = Monitor::attach(vmlinux, placement, &mem)?;
    let attach = t.elapsed();

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
        "{} CPUs on {:?}: vmlinux load {load:.2?}, attach {attach:.1?}; one sample: \
         median {:.1?}, mean {mean:.1?}, p99 {:.1?}, max {:.1?} over {SAMPLES} \
         (at most {:.0} samples/s from one thread)",
        mon.cpus(),
        cfg.backend,
        times[SAMPLES / 2],
        times[SAMPLES * 99 / 100],
        times[SAMPLES - 1],
        1.0 / mean.as_secs_f64(),
    );
    s.shutdown()?;
    Ok(())
}
