//! One module per subcommand, and what several of them share: parsing a
//! topology, checking the backend can run, and finding (or building) the
//! kernel and a scheduler.

pub mod doctor;
pub mod fuzz;
pub mod kernel;
pub mod run;
pub mod scenarios;
pub mod sched;
pub mod shell;
pub mod topo;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ktstr_backend::BackendKind;
use ktstr_topology::NumaTopology;

use crate::build::{self, sched::SCHEDULERS};

/// `text` (a preset name or a shape like `1n2l4c2t`) and the VM's memory:
/// `memory_mib`, else the preset's own, else 512 MiB. The error names the
/// expected forms, or the memory a preset fixes.
pub fn parse_topology(text: &str, memory_mib: Option<u64>) -> anyhow::Result<(NumaTopology, u64)> {
    let shape = ktstr_topology::resolve(text)?;
    let memory = shape.memory_mib(memory_mib, 512)?;
    Ok((shape.topology, memory))
}

/// The backend that will run, checked against this host: a KVM backend
/// without `/dev/kvm` is an error naming the fix.
pub fn backend() -> anyhow::Result<BackendKind> {
    let choice = ktstr_backend::choose()
        .context("bad KTSTR_BACKEND (use kvm, qemu-tcg, qemu-kvm or auto)")?;
    let needs_kvm = matches!(choice.kind, BackendKind::Vmm | BackendKind::QemuKvm);
    if needs_kvm && !Path::new("/dev/kvm").exists() {
        bail!(
            "no /dev/kvm, which {} needs: load kvm_intel or kvm_amd, or set KTSTR_BACKEND=qemu-tcg",
            choice.reason
        );
    }
    Ok(choice.kind)
}

/// `ktstr_testenv::find_kernel`; when nothing is found and `may_build`,
/// builds Debian's linux-source-6.12 into the cache first.
pub fn kernel(may_build: bool) -> anyhow::Result<PathBuf> {
    let missing = match ktstr_testenv::find_kernel() {
        Ok(k) => return Ok(k),
        Err(m) => m,
    };
    let explicit = std::env::var_os("KTSTR_KERNEL").is_some_and(|k| !k.is_empty());
    if !may_build || explicit {
        bail!("{missing}");
    }
    eprintln!("ktstr: no test kernel yet; building one (pass --no-build to stop instead)");
    kernel::build_and_report(&build::kernel::Request {
        source: None,
        slow_kvm: false,
        jobs: jobs(None),
    })?;
    ktstr_testenv::find_kernel().map_err(|m| anyhow::anyhow!("{m}"))
}

/// Fails at once for a scheduler that is neither found nor buildable, so
/// bad input is reported before a kernel is looked for (or built).
pub fn check_scheduler(name: &str) -> anyhow::Result<()> {
    match ktstr_testenv::find_scheduler(name) {
        Ok(_) => Ok(()),
        Err(_) if SCHEDULERS.contains(&name) => Ok(()),
        Err(missing) if name.contains('/') => bail!("{missing}"),
        Err(_) => bail!(
            "unknown scheduler {name}: give a path, or one of {} (built by `ktstr sched build`)",
            SCHEDULERS.join(", ")
        ),
    }
}

/// `ktstr_testenv::find_scheduler`; a missing example scheduler is built
/// when `may_build`. An unknown name is an error listing the known ones.
pub fn scheduler(name: &str, may_build: bool) -> anyhow::Result<PathBuf> {
    check_scheduler(name)?;
    let missing = match ktstr_testenv::find_scheduler(name) {
        Ok(p) => return Ok(p),
        Err(m) => m,
    };
    if !may_build || !SCHEDULERS.contains(&name) {
        bail!("{missing}");
    }
    eprintln!("ktstr: scheduler {name} not built yet; building it");
    sched::build_and_report(&[name])?;
    ktstr_testenv::find_scheduler(name).map_err(|m| anyhow::anyhow!("{m}"))
}

/// The scheduler name that means "none": the kernel's EEVDF.
pub const EEVDF: &str = "eevdf";

/// What a command that runs a scenario needs, checked in the order that
/// reports bad input first: the scheduler name, the backend, the kernel
/// (built when `may_build`: building a scheduler needs it), then the
/// scheduler's path; `None` for [`EEVDF`].
pub fn prepare(scheduler_name: &str, may_build: bool) -> anyhow::Result<Option<PathBuf>> {
    if scheduler_name != EEVDF {
        check_scheduler(scheduler_name)?;
    }
    backend()?;
    kernel(may_build)?;
    (scheduler_name != EEVDF)
        .then(|| scheduler(scheduler_name, may_build))
        .transpose()
}

/// `--jobs`, else all CPUs.
pub fn jobs(requested: Option<usize>) -> usize {
    requested
        .filter(|&j| j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
