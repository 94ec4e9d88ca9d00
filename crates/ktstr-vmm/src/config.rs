//! What a VM is made of: the builder callers use, and the checks that run
//! before any KVM object exists.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use ktstr_topology::NumaTopology;

use crate::compat::CompatMode;
use crate::devices::bus::{IoDevice, IoSpace};
use crate::devices::virtio::console::ConsoleSender;
use crate::error::{ConfigError, Result};
use crate::layout;
use crate::snapshot::{SnapshotPlan, SnapshotTrigger};
use crate::vm::Vm;

/// Default guest memory when the caller sets none.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// Sampling faster than this would keep the vCPUs out of the guest.
pub const MIN_PROFILE_INTERVAL: Duration = Duration::from_millis(1);
/// Default wall-clock budget of one run.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Arguments every Linux guest gets before the caller's own: serial console,
/// reboot through the i8042 (fast, and what the VMM models), and no PCI/ACPI
/// probing because the VM has neither.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off acpi=off nomodule io_delay=none i8042.noaux i8042.nomux i8042.dumbkbd";

/// What the vCPUs execute.
#[derive(Clone, Debug)]
pub enum GuestImage {
    /// A Linux kernel: uncompressed ELF `vmlinux` or `bzImage`, entered in
    /// 64-bit mode through the Linux 64-bit boot protocol.
    Kernel(PathBuf),
    /// Flat 64-bit code copied to `load_addr`; every vCPU starts at
    /// `load_addr` in long mode with `rdi` = its index and its own stack.
    Raw { code: Vec<u8>, load_addr: u64 },
}

/// Plain-data description of a VM. Built with [`VmBuilder`].
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub image: Option<GuestImage>,
    pub initramfs: Option<PathBuf>,
    /// Appended to [`DEFAULT_CMDLINE`] (and to any host-compat arguments).
    pub cmdline_extra: String,
    pub memory_mib: u64,
    pub vcpus: usize,
    pub deadline: Duration,
    pub kvm_path: PathBuf,
    pub compat: CompatMode,
    /// Sample every vCPU's RIP at this interval (see [`crate::profile`]).
    pub profile_interval: Option<Duration>,
    /// With the compat layer active, also pass its boot-time cuts
    /// ([`crate::compat::SLOW_HOST_BOOT_CMDLINE`]). On by default.
    pub slow_host_boot_cuts: bool,
    /// CPU/NUMA shape: the guest gets ACPI tables (MADT, SRAT, SLIT) and
    /// per-vCPU CPUID for it. `None` boots `vcpus` flat CPUs with an MP table.
    pub topology: Option<NumaTopology>,
    /// Take a snapshot during the run (see [`crate::snapshot`]).
    pub snapshot: Option<SnapshotPlan>,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            image: None,
            initramfs: None,
            cmdline_extra: String::new(),
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: 1,
            deadline: DEFAULT_DEADLINE,
            kvm_path: PathBuf::from("/dev/kvm"),
            compat: CompatMode::Auto,
            profile_interval: None,
            slow_host_boot_cuts: true,
            topology: None,
            snapshot: None,
        }
    }
}

impl VmConfig {
    /// Checks that need no KVM and no files: counts, sizes, durations.
    pub fn validate(&self) -> Result<()> {
        if self.vcpus == 0 {
            return Err(ConfigError::NoVcpus.into());
        }
        if self.deadline.is_zero() {
            return Err(ConfigError::ZeroDeadline.into());
        }
        if let Some(interval) = self.profile_interval.filter(|i| *i < MIN_PROFILE_INTERVAL) {
            return Err(ConfigError::ProfileIntervalTooShort {
                interval,
                min: MIN_PROFILE_INTERVAL,
            }
            .into());
        }
        if self.memory_mib < layout::MIN_MEMORY_MIB {
            return Err(ConfigError::MemoryTooSmall {
                mib: self.memory_mib,
                needed_mib: layout::MIN_MEMORY_MIB,
                what: "the boot structures and a kernel",
            }
            .into());
        }
        if self.memory_mib > layout::MAX_MEMORY_MIB {
            return Err(ConfigError::MemoryTooLarge {
                mib: self.memory_mib,
                max_mib: layout::MAX_MEMORY_MIB,
            }
            .into());
        }
        if self.image.is_none() {
            return Err(ConfigError::NoKernel.into());
        }
        if let Some(topo) = &self.topology {
            topo.check()?;
            if topo.vcpus() as usize != self.vcpus {
                return Err(ConfigError::TopologyVcpus {
                    vcpus: self.vcpus,
                    topology: topo.vcpus(),
                }
                .into());
            }
            topo.node_memory_mib(self.memory_mib)?;
        }
        if let Some(SnapshotPlan {
            trigger: SnapshotTrigger::Com1Marker(m),
            ..
        }) = &self.snapshot
        {
            if m.is_empty() {
                return Err(ConfigError::EmptySnapshotMarker.into());
            }
        }
        Ok(())
    }
}

/// A device the caller plugs into the port-I/O or MMIO bus.
pub struct ExtraDevice {
    pub space: IoSpace,
    pub base: u64,
    pub len: u64,
    pub device: Box<dyn IoDevice>,
}

/// Host-side things attached to a VM that are not plain configuration.
#[derive(Default)]
pub(crate) struct Attachments {
    pub com1_sink: Option<Box<dyn Write + Send>>,
    pub com2_sink: Option<Box<dyn Write + Send>>,
    pub extra_devices: Vec<ExtraDevice>,
    pub console: Option<ConsoleSender>,
}

/// Builds a [`Vm`]: `VmBuilder::new().kernel(path).vcpus(2).build()?.run()?`.
#[derive(Default)]
pub struct VmBuilder {
    config: VmConfig,
    attachments: Attachments,
}

impl VmBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_config(config: VmConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn kernel(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.image = Some(GuestImage::Kernel(path.into()));
        self
    }

    pub fn raw_image(mut self, code: Vec<u8>, load_addr: u64) -> Self {
        self.config.image = Some(GuestImage::Raw { code, load_addr });
        self
    }

    pub fn initramfs(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.initramfs = Some(path.into());
        self
    }

    /// Appends `args` to the kernel command line.
    pub fn cmdline(mut self, args: &str) -> Self {
        if !self.config.cmdline_extra.is_empty() {
            self.config.cmdline_extra.push(' ');
        }
        self.config.cmdline_extra.push_str(args);
        self
    }

    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.config.memory_mib = mib;
        self
    }

    /// The guest's CPU/NUMA shape; also sets the vCPU count.
    pub fn topology(mut self, topology: NumaTopology) -> Self {
        self.config.vcpus = topology.vcpus() as usize;
        self.config.topology = Some(topology);
        self
    }

    pub fn vcpus(mut self, n: usize) -> Self {
        self.config.vcpus = n;
        self
    }

    pub fn deadline(mut self, d: Duration) -> Self {
        self.config.deadline = d;
        self
    }

    pub fn kvm_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.kvm_path = path.into();
        self
    }

    pub fn compat(mut self, mode: CompatMode) -> Self {
        self.config.compat = mode;
        self
    }

    pub fn slow_host_boot_cuts(mut self, on: bool) -> Self {
        self.config.slow_host_boot_cuts = on;
        self
    }

    /// Takes a snapshot to `plan.path` when `plan.trigger` fires.
    pub fn snapshot(mut self, plan: SnapshotPlan) -> Self {
        self.config.snapshot = Some(plan);
        self
    }

    pub fn profile(mut self, interval: Duration) -> Self {
        self.config.profile_interval = Some(interval);
        self
    }

    /// Streams COM1 output live to `sink` (it is captured in the outcome too).
    pub fn com1_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.attachments.com1_sink = Some(sink);
        self
    }

    /// Streams COM2 output live to `sink` (it is captured in the outcome too).
    pub fn com2_sink(mut self, sink: Box<dyn Write + Send>) -> Self {
        self.attachments.com2_sink = Some(sink);
        self
    }

    /// Adds a caller-provided device at `base..base+len` on the given bus.
    pub fn device(
        mut self,
        space: IoSpace,
        base: u64,
        len: u64,
        device: Box<dyn IoDevice>,
    ) -> Self {
        self.attachments.extra_devices.push(ExtraDevice {
            space,
            base,
            len,
            device,
        });
        self
    }

    /// Adds the virtio-console (hvc0 + `ktstr.bulk`) whose host side is
    /// `console` (from [`crate::virtio_console`]), at [`layout::VIRTIO_MMIO_BASE`].
    pub fn virtio_console(mut self, console: &ConsoleSender) -> Self {
        self.attachments.console = Some(console.clone());
        self
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Validates, opens KVM, creates the VM and loads the guest.
    pub fn build(self) -> Result<Vm> {
        self.config.validate()?;
        Vm::create(self.config, self.attachments)
    }
}
