//! A created VM and its single run: spawn one thread per vCPU, wait for the
//! end, the deadline or a kill, join every thread, collect the outcome.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{
    KVM_MP_STATE_RUNNABLE, KVM_PIT_SPEAKER_DUMMY, kvm_mp_state, kvm_pit_config,
    kvm_userspace_memory_region,
};
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::regs::EntryRegs;
use crate::arch::x86_64::{boot_params, cpuid, lapic, mptable, msrs, paging, regs};
use crate::compat::{self, CompatProfile};
use crate::config::{Attachments, DEFAULT_CMDLINE, GuestImage, VmConfig};
use crate::devices::bus::Bus;
use crate::devices::set::DeviceSet;
use crate::devices::{control, serial};
use crate::error::{CmdlineError, ConfigError, HostError, MemoryError, Result, kvm_op};
use crate::layout;
use crate::loader::{self, KernelFormat};
use crate::outcome::{ExitKind, Outcome, ShimUse, Timings};
use crate::platform;
use crate::profile::Profile;
use crate::snapshot::VcpuReadError;
use crate::snapshot::request::HostRequest;
use crate::snapshot::request::HostRequests;
use crate::snapshot::{AfterSnapshot, SnapshotInfo, SnapshotPlan, SnapshotTrigger};
use crate::vcpu::run_loop::{VcpuContext, VcpuReport, run_vcpu};
use crate::vcpu::state::{InterruptHandle, RunState, install_kick_handler};

const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How often the run owner re-kicks vCPUs while the VM is stopping.
const REKICK_INTERVAL: Duration = Duration::from_millis(1);

pub struct Vm {
    pub(crate) config: VmConfig,
    // Field order is drop order: vCPU fds before the VM fd before /dev/kvm.
    pub(crate) vcpus: Vec<VcpuFd>,
    pub(crate) vm_fd: VmFd,
    pub(crate) kvm: Kvm,
    pub(crate) memory: GuestMemoryMmap,
    pub(crate) pio: Bus,
    pub(crate) mmio: Bus,
    pub(crate) com1: Arc<Mutex<Vec<u8>>>,
    pub(crate) com2: Arc<Mutex<Vec<u8>>>,
    pub(crate) _irqfds: Vec<EventFd>,
    /// Closes the virtio-console's host receivers when the VM is dropped
    /// (at the end of [`Vm::run`]), so the host notices the end at once.
    pub(crate) _console_end: Option<crate::devices::virtio::console::VmEnd>,
    pub(crate) state: Arc<RunState>,
    pub(crate) compat: CompatProfile,
    pub(crate) cmdline: String,
    pub(crate) kernel_format: Option<KernelFormat>,
    pub(crate) setup: Duration,
    /// The CPUID each vCPU was given (what its guest sees; KVM_GET_CPUID2
    /// may report more on some hosts).
    pub(crate) cpuids: Vec<Vec<kvm_bindings::kvm_cpuid_entry2>>,
    /// Snapshots asked for through [`InterruptHandle::snapshot`].
    pub(crate) requests: Arc<HostRequests>,
}

/// A VM fd with what every ktstr VM has, booted or restored: TSS and
/// identity-map addresses, the in-kernel irqchip and PIT.
pub(crate) fn create_vm_fd(kvm: &Kvm) -> Result<VmFd> {
    let vm_fd = kvm.create_vm().map_err(kvm_op("KVM_CREATE_VM"))?;
    vm_fd
        .set_tss_address(layout::KVM_TSS_ADDR as usize)
        .map_err(kvm_op("KVM_SET_TSS_ADDR"))?;
    vm_fd
        .set_identity_map_address(layout::KVM_IDENTITY_MAP_ADDR)
        .map_err(kvm_op("KVM_SET_IDENTITY_MAP_ADDR"))?;
    vm_fd
        .create_irq_chip()
        .map_err(kvm_op("KVM_CREATE_IRQCHIP"))?;
    vm_fd
        .create_pit2(kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .map_err(kvm_op("KVM_CREATE_PIT2"))?;
    Ok(vm_fd)
}

impl Vm {
    pub(crate) fn create(config: VmConfig, attachments: Attachments) -> Result<Vm> {
        let Attachments {
            com1_sink,
            com2_sink,
            extra_devices: extra,
            console,
        } = attachments;
        let started = Instant::now();
        let kvm = crate::kvm::open(&config.kvm_path)?;
        let max_vcpus = kvm.get_max_vcpus().min(mptable::MAX_CPUS);
        if config.vcpus > max_vcpus {
            return Err(HostError::TooManyVcpus {
                requested: config.vcpus,
                max: max_vcpus,
            }
            .into());
        }
        let compat = CompatProfile::resolve(
            config.compat,
            &compat::detect_host(),
            config.slow_host_boot_cuts,
        );
        if let Some(reason) = &compat.reason {
            tracing::info!(%reason, cmdline = ?compat.cmdline, "host compatibility layer applied");
        }

        let vm_fd = create_vm_fd(&kvm)?;

        let memory = layout::create_memory(config.memory_mib)?;
        register_memory(&vm_fd, &memory)?;

        let mem_bytes = config.memory_mib * layout::MIB;
        let mut extra_args = config.cmdline_extra.clone();
        // With ACPI (a topology) the DSDT describes the device instead: there
        // the bare IRQ number of this argument has no mapping (see acpi::dsdt).
        if console.is_some() && config.topology.is_none() {
            extra_args = format!(
                "virtio_mmio.device=4K@{:#x}:{} {extra_args}",
                layout::VIRTIO_MMIO_BASE,
                layout::VIRTIO_CONSOLE_IRQ
            );
        }
        let (entry, cmdline, kernel_format) =
            load_image(&config, &memory, &compat, mem_bytes, &extra_args)?;
        paging::write_identity_map(&memory)?;
        regs::write_descriptor_tables(&memory)?;

        let has_console = console.is_some();
        let state = Arc::new(RunState::new(config.vcpus));
        let mut com1 = serial::Capture::new(com1_sink);
        if let Some(SnapshotPlan {
            trigger: SnapshotTrigger::Com1Marker(pattern),
            ..
        }) = &config.snapshot
        {
            let state = state.clone();
            com1 = com1.with_marker(serial::Marker {
                pattern: pattern.clone(),
                on_match: Box::new(move || state.request_pause()),
            });
        }
        let devices = DeviceSet {
            com1,
            com2: serial::Capture::new(com2_sink),
            control: control::Control::new(0, Vec::new(), state.clone()),
            console,
            extra,
        }
        .attach(&vm_fd, &memory)?;

        let base_cpuid = cpuid::supported(&kvm)?;
        let mut vcpus = Vec::with_capacity(config.vcpus);
        let mut cpuids = Vec::with_capacity(config.vcpus);
        for index in 0..config.vcpus {
            let vcpu = vm_fd
                .create_vcpu(platform::vcpu_id(&config, index)?)
                .map_err(kvm_op("KVM_CREATE_VCPU"))?;
            let vcpu_cpuid =
                platform::vcpu_cpuid(&config, &base_cpuid, index, &compat.masked_features)?;
            vcpu.set_cpuid2(&vcpu_cpuid)
                .map_err(kvm_op("KVM_SET_CPUID2"))?;
            cpuids.push(vcpu_cpuid.as_slice().to_vec());
            msrs::set_boot_msrs(&vcpu)?;
            lapic::set_lint(&vcpu)?;
            match &config.image {
                // The boot vCPU enters the kernel; APs wait for the guest's INIT/SIPI.
                Some(GuestImage::Kernel(_)) if index == 0 => regs::enter_long_mode(
                    &vcpu,
                    EntryRegs {
                        rip: entry,
                        rsi: layout::ZERO_PAGE_ADDR,
                        ..Default::default()
                    },
                )?,
                Some(GuestImage::Raw { .. }) => {
                    let rsp = layout::RAW_STACK_TOP - index as u64 * layout::RAW_STACK_SIZE;
                    regs::enter_long_mode(
                        &vcpu,
                        EntryRegs {
                            rip: entry,
                            rsp,
                            rdi: index as u64,
                            ..Default::default()
                        },
                    )?;
                    vcpu.set_mp_state(kvm_mp_state {
                        mp_state: KVM_MP_STATE_RUNNABLE,
                    })
                    .map_err(kvm_op("KVM_SET_MP_STATE"))?;
                }
                _ => {}
            }
            vcpus.push(vcpu);
        }
        if matches!(config.image, Some(GuestImage::Kernel(_))) {
            platform::write_tables(&config, &memory, has_console)?;
        }

        Ok(Vm {
            config,
            vcpus,
            vm_fd,
            kvm,
            memory,
            pio: devices.pio,
            mmio: devices.mmio,
            com1: devices.com1,
            com2: devices.com2,
            _irqfds: devices.irqfds,
            _console_end: devices.console_end,
            state,
            compat,
            cmdline,
            kernel_format,
            setup: started.elapsed(),
            cpuids,
            requests: Arc::default(),
        })
    }

    /// A handle to stop this VM from any thread.
    pub fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle {
            state: self.state.clone(),
            requests: self.requests.clone(),
        }
    }

    /// The full kernel command line the guest receives (empty for raw images).
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    pub fn kernel_format(&self) -> Option<KernelFormat> {
        self.kernel_format
    }

    pub fn compat(&self) -> &CompatProfile {
        &self.compat
    }

    /// Guest memory, for callers that place or inspect data.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    pub fn vm_fd(&self) -> &VmFd {
        &self.vm_fd
    }

    /// Captures this (not running) VM's full state without writing a file,
    /// e.g. to compare a restored VM with the snapshot it came from.
    pub fn machine_state(
        &mut self,
        key: &str,
    ) -> std::result::Result<crate::snapshot::MachineState, crate::SnapshotError> {
        crate::snapshot::capture::capture(self, key)
    }

    /// Runs the guest to its end and returns how it ended. Every vCPU thread
    /// is joined before this returns, on every path.
    pub fn run(mut self) -> Result<Outcome> {
        install_kick_handler();
        let started = Instant::now();
        // A deadline too far to represent is as good as none (~a century).
        let deadline = started
            .checked_add(self.config.deadline)
            .unwrap_or_else(|| started + FAR_FUTURE);
        let state = self.state.clone();
        let mut plan = self.config.snapshot.take();
        let mut snapshot = None;
        let mut reports = Vec::new();
        loop {
            reports.extend(self.run_vcpus(started, deadline));
            if state.has_reason() || !state.pause_requested() {
                break;
            }
            // Every vCPU thread is joined: the machine is quiescent. A host
            // request is served first; the guest always continues after it.
            if let Some(request) = self.requests.take() {
                self.serve(request, started.elapsed());
                self.rearm(&state);
                continue;
            }
            match plan.take() {
                Some(p) => match self.save_snapshot(&p.path, &p.key, started.elapsed()) {
                    Ok(info) => {
                        tracing::info!(path = %info.path.display(), bytes = info.disk_bytes, "snapshot saved");
                        snapshot = Some(info);
                        if p.then == AfterSnapshot::Stop {
                            state.stop(ExitKind::Snapshotted);
                            break;
                        }
                    }
                    Err(e) => {
                        state.stop(ExitKind::InternalError {
                            vcpu: 0,
                            detail: format!("snapshot failed: {e}"),
                        });
                        break;
                    }
                },
                None => tracing::warn!(
                    "snapshot requested but none configured (or already taken); resuming"
                ),
            }
            self.rearm(&state);
        }
        self.requests.close();

        let exit = state.take_reason().unwrap_or(ExitKind::InternalError {
            vcpu: 0,
            detail: "vCPUs ended without a reason".into(),
        });
        let mut samples: Vec<_> = reports
            .iter()
            .flat_map(|r| r.samples.iter().copied())
            .collect();
        samples.sort_by_key(|s| s.at);
        let mut shims: Vec<ShimUse> = Vec::new();
        for (name, count) in reports.iter().flat_map(|r| r.shims.iter()) {
            match shims.iter_mut().find(|s| s.name == *name) {
                Some(s) => s.count += count,
                None => shims.push(ShimUse {
                    name,
                    count: *count,
                }),
            }
        }
        let take = |bytes: &Arc<Mutex<Vec<u8>>>| {
            std::mem::take(&mut *bytes.lock().unwrap_or_else(|p| p.into_inner()))
        };
        Ok(Outcome {
            exit,
            com1: take(&self.com1),
            com2: take(&self.com2),
            timings: Timings {
                setup: self.setup,
                run: started.elapsed(),
            },
            vcpus: self.config.vcpus,
            unhandled_io: self.pio.unhandled() + self.mmio.unhandled(),
            shims,
            profile: self
                .config
                .profile_interval
                .map(|interval| Profile { interval, samples }),
            snapshot,
        })
    }

    /// Runs one set of vCPU threads until they all ended (stop or pause).
    fn run_vcpus(&mut self, started: Instant, deadline: Instant) -> Vec<VcpuReport> {
        let interval = self.config.profile_interval;
        let state = self.state.clone();
        let shims = self.compat.active;
        let (pio, mmio, mem) = (&self.pio, &self.mmio, &self.memory);
        std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for (index, vcpu) in self.vcpus.iter_mut().enumerate() {
                let ctx = VcpuContext {
                    index,
                    state: state.clone(),
                    pio,
                    mmio,
                    mem,
                    shims,
                    started,
                };
                match std::thread::Builder::new()
                    .name(format!("ktstr-vcpu{index}"))
                    .spawn_scoped(scope, move || run_vcpu(ctx, vcpu))
                {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        state.stop(ExitKind::InternalError {
                            vcpu: index,
                            detail: format!("cannot spawn vCPU thread: {e}"),
                        });
                        break;
                    }
                }
            }
            wait_for_end(&state, handles.len(), deadline, interval);
            handles
                .into_iter()
                .enumerate()
                .map(|(index, h)| {
                    h.join().unwrap_or_else(|_| {
                        // The panic shim normally recorded this already; first reason wins.
                        state.stop(ExitKind::VcpuPanicked {
                            vcpu: index,
                            message: "vCPU thread panicked".into(),
                        });
                        VcpuReport::default()
                    })
                })
                .collect()
        })
    }

    /// Serves a host request with every vCPU parked; the caller resumes.
    fn serve(&mut self, request: HostRequest, now: Duration) {
        // The caller may have given up waiting; nothing else to tell.
        match request {
            HostRequest::Snapshot { path, key, reply } => {
                let saved = self.save_snapshot(&path, &key, now);
                match &saved {
                    Ok(info) => {
                        tracing::info!(path = %info.path.display(), bytes = info.disk_bytes, "snapshot saved on request")
                    }
                    Err(e) => tracing::warn!(error = %e, "requested snapshot failed; resuming"),
                }
                let _ = reply.send(saved);
            }
            HostRequest::ReadMsr { vcpu, index, reply } => {
                let _ = reply.send(self.read_msr(vcpu, index));
            }
        }
    }

    /// MSR `index` of the parked vCPU `vcpu`.
    fn read_msr(&self, vcpu: usize, index: u32) -> std::result::Result<u64, VcpuReadError> {
        let fd = self.vcpus.get(vcpu).ok_or(VcpuReadError::NoVcpu { vcpu })?;
        let read = crate::snapshot::vcpu_state::read_msrs(fd, &[index]).map_err(|source| {
            VcpuReadError::Kvm {
                vcpu,
                index,
                source,
            }
        })?;
        match read.first() {
            Some(entry) => Ok(entry.data),
            None => Err(VcpuReadError::Refused { vcpu, index }),
        }
    }

    /// Lets the vCPUs run again after a pause. A host request queued while
    /// this pause was served (its caller got an answer and asked again
    /// before the rearm cleared its pause) keeps the machine paused, or it
    /// would wait, unserved, until the run ended.
    fn rearm(&self, state: &RunState) {
        state.rearm();
        if self.requests.is_pending() {
            state.request_pause();
        }
    }

    /// Captures the parked machine and writes it to `path`, keyed by `key`.
    fn save_snapshot(
        &mut self,
        path: &std::path::Path,
        key: &str,
        taken_at: Duration,
    ) -> std::result::Result<SnapshotInfo, crate::SnapshotError> {
        let begun = Instant::now();
        let machine = crate::snapshot::capture::capture(self, key)?;
        let regions = crate::snapshot::capture::memory_slices(&self.memory)?;
        let header = crate::snapshot::file::write(path, &machine.encode(), &regions)?;
        let meta = std::fs::metadata(path).map_err(|source| crate::SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        use std::os::unix::fs::MetadataExt;
        Ok(SnapshotInfo {
            path: path.to_path_buf(),
            disk_bytes: meta.blocks() * 512,
            file_bytes: header.mem_offset + header.mem_len,
            taken_at,
            save_time: begun.elapsed(),
        })
    }
}

/// Blocks until all `spawned` vCPU threads unregistered, enforcing the
/// deadline, taking profile samples and re-kicking while stopping.
fn wait_for_end(state: &RunState, spawned: usize, deadline: Instant, interval: Option<Duration>) {
    if spawned < state.vcpu_count() {
        // Threads that never started never unregister; count them as gone.
        for _ in spawned..state.vcpu_count() {
            state.unregister_unstarted();
        }
    }
    let mut next_sample = interval.map(|i| Instant::now() + i);
    loop {
        let now = Instant::now();
        if now >= deadline && !state.is_stopping() {
            state.stop(ExitKind::DeadlineExceeded);
        }
        let mut wake = deadline.max(now);
        if state.is_stopping() {
            wake = now + REKICK_INTERVAL;
        }
        if let Some(t) = next_sample {
            wake = wake.min(t);
        }
        if state.wait_all_exited(wake) {
            return;
        }
        if state.is_stopping() {
            state.kick_all();
        } else if let (Some(t), Some(i)) = (next_sample, interval) {
            if Instant::now() >= t {
                state.request_samples();
                next_sample = Some(t + i);
            }
        }
    }
}

pub(crate) fn register_memory(vm_fd: &VmFd, memory: &GuestMemoryMmap) -> Result<()> {
    for (slot, region) in memory.iter().enumerate() {
        let host = memory
            .get_host_address(region.start_addr())
            .map_err(|source| MemoryError::HostAddress {
                addr: region.start_addr().0,
                source,
            })?;
        let region = kvm_userspace_memory_region {
            slot: slot as u32,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
            flags: 0,
        };
        // SAFETY: the mapping belongs to `memory`, which the Vm owns and drops
        // only after the VM fd, so KVM never sees freed host memory.
        unsafe { vm_fd.set_user_memory_region(region) }
            .map_err(kvm_op("KVM_SET_USER_MEMORY_REGION"))?;
    }
    Ok(())
}

/// Loads the configured image; returns (entry RIP, command line, format).
fn load_image(
    config: &VmConfig,
    memory: &GuestMemoryMmap,
    compat: &CompatProfile,
    mem_bytes: u64,
    extra_args: &str,
) -> Result<(u64, String, Option<KernelFormat>)> {
    match &config.image {
        None => Err(ConfigError::NoKernel.into()),
        Some(GuestImage::Raw { code, load_addr }) => {
            loader::load_raw(memory, code, *load_addr)?;
            Ok((*load_addr, String::new(), None))
        }
        Some(GuestImage::Kernel(path)) => {
            let kernel = loader::load_kernel(memory, path)?;
            let cmdline = build_cmdline(compat, extra_args, config.topology.is_some());
            if cmdline.contains('\0') {
                return Err(ConfigError::CmdlineInvalid(CmdlineError::NulByte).into());
            }
            if cmdline.len() > kernel.cmdline_max() {
                return Err(ConfigError::CmdlineTooLong {
                    len: cmdline.len(),
                    max: kernel.cmdline_max(),
                }
                .into());
            }
            let initramfs = match &config.initramfs {
                Some(p) => Some(loader::load_initramfs(memory, p, &kernel, mem_bytes)?),
                None => None,
            };
            boot_params::write_cmdline(memory, &cmdline)?;
            let inputs = boot_params::ZeroPageInputs {
                mem_bytes,
                cmdline_len: cmdline.len(),
                initramfs,
                setup_header: kernel.setup_header,
            };
            boot_params::write_zero_page(memory, &inputs)?;
            Ok((kernel.entry, cmdline, Some(kernel.format)))
        }
    }
}

/// Default arguments, then host-compat arguments, then the caller's (last wins in Linux).
/// `acpi`: the VM carries ACPI tables (a topology), so `acpi=off` is dropped.
pub fn build_cmdline(compat: &CompatProfile, extra: &str, acpi: bool) -> String {
    let mut parts: Vec<&str> = DEFAULT_CMDLINE
        .split(' ')
        .filter(|p| !(acpi && *p == "acpi=off"))
        .collect();
    parts.extend(compat.cmdline.iter().copied());
    if !extra.trim().is_empty() {
        parts.push(extra.trim());
    }
    parts.join(" ")
}
