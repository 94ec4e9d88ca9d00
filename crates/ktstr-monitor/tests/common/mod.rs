//! Shared by the monitor's kernel-tier tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ktstr_harness::test::BackendMemory;
use ktstr_harness::{Session, SessionConfig};
use ktstr_monitor::{Monitor, Placement, Vmlinux};

/// The ELF vmlinux of the test kernel.
pub fn vmlinux_path() -> PathBuf {
    let kernel = ktstr_testenv::test_env().kernel;
    Vmlinux::find_for(&kernel).unwrap_or_else(|e| panic!("{e}"))
}

/// A booted guest with the monitor attached to it.
pub struct Watched {
    pub session: Session,
    pub monitor: Monitor,
    /// The session's initramfs cache, removed with it.
    _cache: tempfile::TempDir,
}

impl Watched {
    /// The guest's memory, for [`Monitor::sample`] or a sampler thread.
    pub fn memory(&self) -> BackendMemory {
        BackendMemory(self.session.guest_memory().expect("the guest runs"))
    }
}

/// Boots the test kernel with `vcpus` and `schedulers` packed (no
/// snapshot), and attaches the monitor from what the guest reported.
pub fn boot_watched(vcpus: usize, schedulers: Vec<PathBuf>) -> anyhow::Result<Watched> {
    let cache = tempfile::Builder::new()
        .prefix("ktstr-monitor-cache-")
        .tempdir()?;
    let mut cfg = SessionConfig::new(ktstr_testenv::test_env().kernel);
    cfg.vcpus = vcpus;
    // Single-threaded TCG boots one vCPU after another: ~2.5 s each here.
    cfg.boot_timeout = Duration::from_secs(120 + 8 * vcpus as u64);
    cfg.deadline = cfg.boot_timeout + Duration::from_secs(600);
    cfg.cache_dir = cache.path().to_owned();
    cfg.snapshots = false;
    cfg.schedulers = schedulers;
    let session = Session::boot(&cfg)?;
    let sys = session.sys_info();
    let vmlinux = Arc::new(Vmlinux::load(&vmlinux_path())?);
    let placement = Placement {
        text: sys.kernel_text,
        phys_base: sys.kernel_phys_base,
    };
    let memory = BackendMemory(
        session
            .guest_memory()
            .ok_or_else(|| anyhow::anyhow!("the guest ended at boot"))?,
    );
    let monitor = Monitor::attach(vmlinux, placement, &memory)?;
    anyhow::ensure!(
        monitor.cpus() == sys.online_cpus as usize,
        "the monitor sees {} CPUs, the guest {}",
        monitor.cpus(),
        sys.online_cpus
    );
    Ok(Watched {
        session,
        monitor,
        _cache: cache,
    })
}
