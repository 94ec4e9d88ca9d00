//! Shared by the monitor's kernel-tier tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use ktstr_harness::{Session, SessionConfig};
use ktstr_monitor::{GuestMemoryReader, MemoryError, Monitor, Placement, Vmlinux};

/// The ELF vmlinux of the test kernel.
pub fn vmlinux_path() -> PathBuf {
    let kernel = ktstr_testenv::test_env().kernel;
    Vmlinux::find_for(&kernel).unwrap_or_else(|e| panic!("{e}"))
}

/// The guest's memory through a harness session.
pub struct SessionMemory<'a>(pub &'a Session);

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

/// A booted guest with the monitor attached to it.
pub struct Watched {
    pub session: Session,
    pub monitor: Monitor,
    /// The session's initramfs cache, removed with it.
    _cache: tempfile::TempDir,
}

impl Watched {
    /// The guest's memory, for [`Monitor::sample`].
    pub fn memory(&self) -> SessionMemory<'_> {
        SessionMemory(&self.session)
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
    let monitor = Monitor::attach(vmlinux, placement, &SessionMemory(&session))?;
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
