//! What to run: kernel, initramfs, command line, CPUs, memory, accelerator, limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ktstr_topology::NumaTopology;

use crate::error::{Error, Result};
use crate::topology::{self, Machine, ShapeError};

/// Largest guest RAM accepted: microvm maps RAM from 0 up to the 3 GiB PCI/MMIO hole, and
/// [`crate::GuestMemoryView`] assumes RAM is flat from guest physical address 0.
pub const MAX_MEMORY_MIB: u64 = 3 * 1024;

/// q35 keeps RAM below 4 GiB in one piece only while it is under 2.75 GiB; 2 GiB leaves
/// room and keeps the flat-RAM invariant of [`crate::GuestMemoryView`].
pub const Q35_MAX_MEMORY_MIB: u64 = 2 * 1024;

/// QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Full-system emulation; works everywhere, guest user space included.
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// How TCG runs the guest's vCPUs. Ignored under KVM.
///
/// The default is [`TcgThreads::Single`]; [`TcgThreads::from_env`] reads the opt-in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcgThreads {
    /// One host thread runs every vCPU in turn (`-accel tcg,thread=single`). Correct for
    /// code the guest kernel patches at run time. On a 2-core host it boots as fast as
    /// [`TcgThreads::Multi`] up to 4 vCPUs (docs/performance.md) but never uses more
    /// than one host core, so large shapes are slow.
    #[default]
    Single,
    /// One host thread per vCPU (`thread=multi`, QEMU's own default). **Risk**: QEMU 7.2's
    /// multi-threaded TCG mishandles cross-modifying code: a vCPU can execute the
    /// temporary `int3` of a static-key patch (`text_poke_bp`) after the kernel finished
    /// it, and the guest dies with `Oops: int3` (seen after repeated sched_ext
    /// attach/detach at 2 vCPUs, and during boot at 64). A red test under this mode
    /// may not be the scheduler's fault. Faster only with more vCPUs than about 4.
    Multi,
}

/// Environment variable that opts in to multi-threaded TCG: `KTSTR_TCG_THREADS=multi`.
pub const TCG_THREADS_ENV: &str = "KTSTR_TCG_THREADS";

impl TcgThreads {
    /// The mode [`TCG_THREADS_ENV`] asks for; unset, empty or unknown is `Single`
    /// (an unknown value is logged): the only place the variable is read.
    pub fn from_env() -> Self {
        let value = std::env::var(TCG_THREADS_ENV).unwrap_or_default();
        Self::from_value(&value).unwrap_or_else(|| {
            tracing::warn!(
                "{TCG_THREADS_ENV}={value:?} is neither `single` nor `multi`; using single"
            );
            TcgThreads::Single
        })
    }

    /// Pure decision behind [`TcgThreads::from_env`]: `None` for an unknown value.
    pub fn from_value(value: &str) -> Option<Self> {
        match value {
            "" | "single" => Some(TcgThreads::Single),
            "multi" => Some(TcgThreads::Multi),
            _ => None,
        }
    }

    /// The `-accel` value.
    pub fn accel_arg(self) -> &'static str {
        match self {
            TcgThreads::Single => "tcg,thread=single",
            TcgThreads::Multi => "tcg,thread=multi",
        }
    }
}

/// The accelerator [`recommended_accel`] picked and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// What the host's `/dev/kvm` is. ktstr-qemu does not probe for it: the
/// caller passes what the one probe (`ktstr_vmm::compat::detect_host`, via
/// `ktstr_backend::host_kvm`) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvmKind {
    /// No `/dev/kvm`.
    Absent,
    /// Software KVM (e.g. kvm-pvm), named by its kernel module: it cannot
    /// run guest user space.
    Software {
        /// The kernel module, e.g. `kvm_pvm`.
        module: &'static str,
    },
    /// KVM with hardware virtualisation.
    Hardware,
}

impl KvmKind {
    /// The software KVM module, or `None` (no KVM, or hardware KVM).
    pub fn software_module(self) -> Option<&'static str> {
        match self {
            KvmKind::Software { module } => Some(module),
            KvmKind::Absent | KvmKind::Hardware => None,
        }
    }
}

/// Picks KVM only where it can run guest user space; honours `KTSTR_BACKEND=qemu-tcg|qemu-kvm`.
pub fn recommended_accel(kvm: KvmKind) -> AccelChoice {
    let env = std::env::var("KTSTR_BACKEND").ok();
    choose_accel(env.as_deref(), kvm)
}

/// Pure decision behind [`recommended_accel`].
pub fn choose_accel(env: Option<&str>, kvm: KvmKind) -> AccelChoice {
    let choice = |accel, reason: String| AccelChoice { accel, reason };
    let mut note = String::new();
    match env {
        Some("qemu-tcg") => return choice(Accel::Tcg, "KTSTR_BACKEND=qemu-tcg".into()),
        Some("qemu-kvm") => return choice(Accel::Kvm, "KTSTR_BACKEND=qemu-kvm".into()),
        Some(other) if !other.is_empty() => {
            note = format!(" (KTSTR_BACKEND={other} names no QEMU accelerator, ignored)");
        }
        _ => {}
    }
    match kvm {
        KvmKind::Absent => choice(Accel::Tcg, format!("/dev/kvm does not exist{note}")),
        KvmKind::Software { module } => choice(
            Accel::Tcg,
            format!("/dev/kvm is software KVM ({module}): it cannot run guest user space{note}"),
        ),
        KvmKind::Hardware => choice(Accel::Kvm, format!("/dev/kvm is hardware KVM{note}")),
    }
}

/// Host TSC frequency in kHz from the first `cpu MHz` line of /proc/cpuinfo.
///
/// TCG's guest TSC runs at the host TSC rate, and passing it as `tsc_early_khz` skips PIT
/// calibration, which hangs about one boot in four under TCG. `cpu MHz` is the current
/// clock, not the TSC, but on constant-TSC hosts it matches "tsc: Detected" to ~0.01%.
pub fn host_tsc_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_mhz_khz(&text)
}

pub(crate) fn parse_cpu_mhz_khz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz.is_finite() && mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

/// Plain data describing one run; see [`crate::QemuBuilder`] for the fluent API.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    /// Appended to the default `console=ttyS0 reboot=t panic=-1 tsc_early_khz=...`.
    pub cmdline_extra: String,
    pub vcpus: u32,
    /// Overrides `vcpus` with an explicit shape.
    pub topology: Option<NumaTopology>,
    pub memory_mib: u64,
    /// From spawn; `None` runs until the guest exits or is killed.
    pub deadline: Option<Duration>,
    pub accel: Accel,
    /// TCG's vCPU threading; the default is [`TcgThreads::from_env`]. Not part of the
    /// snapshot key: it changes how QEMU executes the guest, not the machine's state.
    pub tcg_threads: TcgThreads,
    /// `None` searches PATH for `qemu-system-x86_64`.
    pub qemu_binary: Option<PathBuf>,
    /// `None` reads the host TSC from /proc/cpuinfo; `Some(0)` omits `tsc_early_khz`.
    pub tsc_khz: Option<u64>,
    /// Limit for QEMU to connect its sockets and answer QMP.
    pub startup_timeout: Duration,
    /// SIGTERM → SIGKILL grace when killing.
    pub kill_grace: Duration,
    /// Appended verbatim to QEMU's argv (escape hatch, e.g. extra devices).
    pub extra_qemu_args: Vec<String>,
    /// Resume this snapshot instead of booting (see [`crate::snapshot`]).
    pub restore_from: Option<crate::snapshot::QemuSnapshot>,
}

impl QemuConfig {
    pub fn new(kernel: impl Into<PathBuf>) -> Self {
        QemuConfig {
            kernel: kernel.into(),
            initramfs: None,
            cmdline_extra: String::new(),
            vcpus: 1,
            topology: None,
            memory_mib: 256,
            deadline: None,
            accel: Accel::Tcg,
            tcg_threads: TcgThreads::from_env(),
            qemu_binary: None,
            tsc_khz: None,
            startup_timeout: Duration::from_secs(20),
            kill_grace: Duration::from_millis(500),
            extra_qemu_args: Vec::new(),
            restore_from: None,
        }
    }

    /// vCPU count after applying the topology; validates the topology.
    pub fn effective_vcpus(&self) -> Result<u32> {
        match &self.topology {
            Some(t) => Ok(topology::validate(t)?),
            None if self.vcpus == 0 => Err(Error::InvalidConfig("vcpus must be at least 1".into())),
            None => Ok(topology::check_vcpus(u64::from(self.vcpus))?),
        }
    }

    /// The machine type: microvm unless the topology needs dies or NUMA nodes.
    pub fn machine(&self) -> Machine {
        self.topology
            .as_ref()
            .map_or(Machine::Microvm, topology::machine)
    }

    /// Sizes of the guest RAM backing files, in guest-physical order: one per NUMA node,
    /// or one for all of RAM.
    pub fn memory_segments_mib(&self) -> Result<Vec<u64>> {
        match self.topology.as_ref().filter(|t| t.nodes.len() > 1) {
            Some(t) => t
                .node_memory_mib(self.memory_mib)
                .map_err(|e| ShapeError::from(e).into()),
            None => Ok(vec![self.memory_mib]),
        }
    }

    /// Largest guest RAM for [`QemuConfig::machine`].
    pub fn max_memory_mib(&self) -> u64 {
        match self.machine() {
            Machine::Microvm => MAX_MEMORY_MIB,
            Machine::Q35 => Q35_MAX_MEMORY_MIB,
        }
    }

    /// Everything checkable without launching QEMU.
    pub fn validate(&self) -> Result<()> {
        self.effective_vcpus()?;
        if let Some(t) = &self.topology {
            self.validate_topology_here(t)?;
        }
        if !self.kernel.is_file() {
            return Err(Error::KernelMissing {
                path: self.kernel.clone(),
            });
        }
        if let Some(p) = &self.initramfs {
            if !p.is_file() {
                return Err(Error::InitramfsMissing { path: p.clone() });
            }
        }
        if self.memory_mib == 0 {
            return Err(Error::InvalidConfig("memory_mib must be at least 1".into()));
        }
        if self.memory_mib > self.max_memory_mib() {
            return Err(Error::MemoryTooLarge {
                mib: self.memory_mib,
                max_mib: self.max_memory_mib(),
            });
        }
        if self.cmdline_extra.contains('\n') {
            return Err(Error::InvalidConfig(
                "kernel command line contains a newline".into(),
            ));
        }
        Ok(())
    }

    /// Topology checks that depend on the rest of the config and on the host.
    fn validate_topology_here(&self, t: &NumaTopology) -> Result<()> {
        self.memory_segments_mib()?;
        let dies = topology::dies(t);
        if dies > 1 && self.accel == Accel::Kvm && host_vendor_is_amd() {
            return Err(ShapeError::DiesOnAmdKvm { dies }.into());
        }
        Ok(())
    }

    /// The QEMU binary to run: the configured path, or `qemu-system-x86_64` on PATH.
    pub fn resolve_qemu(&self) -> Result<PathBuf> {
        match &self.qemu_binary {
            Some(p) if is_executable(p) => Ok(p.clone()),
            Some(p) => Err(Error::QemuBinaryMissing { path: p.clone() }),
            None => which::which("qemu-system-x86_64").map_err(|_| Error::QemuNotFound),
        }
    }
}

/// `-accel kvm -cpu host` passes the host vendor through; QEMU's AMD cache model differs.
fn host_vendor_is_amd() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("vendor_id"))
            .is_some_and(|l| l.contains("AuthenticAMD"))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accel_choice() {
        let pvm = KvmKind::Software { module: "kvm_pvm" };
        assert_eq!(choose_accel(None, KvmKind::Hardware).accel, Accel::Kvm);
        let c = choose_accel(None, pvm);
        assert_eq!(c.accel, Accel::Tcg);
        assert!(c.reason.contains("kvm_pvm"), "{}", c.reason);
        assert_eq!(choose_accel(None, KvmKind::Absent).accel, Accel::Tcg);
        assert_eq!(choose_accel(Some("qemu-kvm"), pvm).accel, Accel::Kvm);
        assert_eq!(
            choose_accel(Some("qemu-tcg"), KvmKind::Hardware).accel,
            Accel::Tcg
        );
        let c = choose_accel(Some("native"), KvmKind::Hardware);
        assert_eq!(c.accel, Accel::Kvm);
        assert!(c.reason.contains("ignored"), "{}", c.reason);
    }

    #[test]
    fn tcg_threads_default_to_single_and_multi_is_opt_in() {
        assert_eq!(TcgThreads::default(), TcgThreads::Single);
        assert_eq!(TcgThreads::from_value(""), Some(TcgThreads::Single));
        assert_eq!(TcgThreads::from_value("single"), Some(TcgThreads::Single));
        assert_eq!(TcgThreads::from_value("multi"), Some(TcgThreads::Multi));
        assert_eq!(TcgThreads::from_value("Multi"), None);
        assert_eq!(TcgThreads::Single.accel_arg(), "tcg,thread=single");
        assert_eq!(TcgThreads::Multi.accel_arg(), "tcg,thread=multi");
    }

    #[test]
    fn cpu_mhz_parse() {
        let info = "processor\t: 0\ncpu MHz\t\t: 2445.406\ncpu MHz\t\t: 1.0\n";
        assert_eq!(parse_cpu_mhz_khz(info), Some(2_445_406));
        assert_eq!(parse_cpu_mhz_khz("cpu MHz : nan\n"), None);
        assert_eq!(parse_cpu_mhz_khz("nothing"), None);
    }

    #[test]
    fn validation_before_launch() {
        let mut c = QemuConfig::new("/nonexistent/kernel");
        assert!(matches!(c.validate(), Err(Error::KernelMissing { .. })));
        c.vcpus = 0;
        assert!(matches!(c.validate(), Err(Error::InvalidConfig(_))));
        c.qemu_binary = Some("/nonexistent/qemu".into());
        let e = c.resolve_qemu().unwrap_err();
        assert!(e.to_string().contains("qemu-system-x86"), "{e}");
    }
}
