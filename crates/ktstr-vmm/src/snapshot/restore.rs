//! Restore: a new VM whose guest memory is the snapshot file mapped
//! copy-on-write (`MAP_PRIVATE`), so N restores share the page cache and each
//! owns only the pages it writes. Devices are attached as on a cold boot
//! (`devices::set`) and given their saved state; output sinks are new.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use super::file::{self, Loaded};
use super::{RestoreOptions, SnapshotError, host};
use crate::compat::CompatProfile;
use crate::config::VmConfig;
use crate::devices::set::DeviceSet;
use crate::devices::{control, serial};
use crate::error::{ConfigError, MemoryError, Result, kvm_op};
use crate::vcpu::state::RunState;
use crate::vm::{Vm, create_vm_fd, register_memory};

fn map_memory(loaded: &Loaded) -> std::result::Result<GuestMemoryMmap, SnapshotError> {
    let mut offset = loaded.header.mem_offset;
    let mut regions = Vec::new();
    for &(start, len) in &loaded.machine.meta.regions {
        let file = loaded
            .file
            .try_clone()
            .map_err(MemoryError::DupSnapshotFile)?;
        let mapping = MmapRegion::build(
            Some(FileOffset::new(file, offset)),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            // Private: guest writes go to anonymous copies, never to the file.
            libc::MAP_PRIVATE | libc::MAP_NORESERVE,
        )
        .map_err(|source| MemoryError::MapSnapshotRegion {
            addr: start,
            source,
        })?;
        let region = GuestRegionMmap::new(mapping, GuestAddress(start))
            .ok_or(MemoryError::RegionOverflows { addr: start })?;
        regions.push(region);
        offset += len;
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| MemoryError::Regions(e).into())
}

impl Vm {
    /// Builds a VM from the snapshot at `path`. Everything is checked
    /// (format, checksums, key, host compatibility) before any state is
    /// applied; a failure returns a typed [`SnapshotError`] in [`VmmError::Snapshot`](crate::VmmError::Snapshot).
    pub fn restore(path: impl AsRef<Path>, options: RestoreOptions) -> Result<Vm> {
        let started = Instant::now();
        let loaded = file::open(path.as_ref(), options.verify_memory)?;
        let machine = &loaded.machine;
        if options
            .expect_key
            .as_ref()
            .is_some_and(|k| *k != machine.meta.key)
        {
            return Err(SnapshotError::KeyMismatch.into());
        }
        let kvm = crate::kvm::open(&options.kvm_path)?;
        host::check(&kvm, machine)?;
        let vcpu_count = machine.vcpus.len();

        let vm_fd = create_vm_fd(&kvm)?;
        let memory = map_memory(&loaded)?;
        register_memory(&vm_fd, &memory)?;

        let state = Arc::new(RunState::new(vcpu_count));
        let mut input = options.input;
        input.truncate(control::INPUT_MAX);
        let devices = DeviceSet {
            com1: serial::Capture::new(options.com1_sink),
            com2: serial::Capture::new(options.com2_sink),
            control: control::Control::new(options.generation, input, state.clone()),
            console: options.virtio_console,
            extra: options.devices,
        }
        .attach(&vm_fd, &memory)?;
        let (pio, mmio) = (devices.pio, devices.mmio);
        pio.restore_states(&machine.pio)
            .and_then(|()| mmio.restore_states(&machine.mmio))
            .map_err(SnapshotError::from)?;

        let mut vcpus = Vec::with_capacity(vcpu_count);
        for index in 0..vcpu_count {
            let vcpu = vm_fd
                .create_vcpu(machine.meta.vcpu_ids.get(index).copied().ok_or_else(|| {
                    SnapshotError::Malformed(format!("no KVM id for vCPU {index}"))
                })?)
                .map_err(kvm_op("KVM_CREATE_VCPU"))?;
            machine.vcpus[index].apply_cpuid(&vcpu)?;
            vcpus.push(vcpu);
        }
        // VM-wide state (clock, PIT, interrupt controllers) before the vCPUs'.
        machine.vm.apply(&vm_fd)?;
        for (vcpu, saved) in vcpus.iter().zip(&machine.vcpus) {
            saved.apply(vcpu)?;
        }

        let config = VmConfig {
            image: None,
            memory_mib: machine.meta.memory_mib,
            vcpus: vcpu_count,
            deadline: options.deadline,
            kvm_path: options.kvm_path,
            profile_interval: options.profile_interval,
            ..VmConfig::default()
        };
        if config.deadline.is_zero() {
            return Err(ConfigError::ZeroDeadline.into());
        }
        let compat = CompatProfile {
            active: machine.meta.compat_active,
            reason: machine
                .meta
                .compat_active
                .then(|| "restored from a snapshot taken with the compat layer".to_string()),
            ..CompatProfile::default()
        };
        let cmdline = machine.meta.cmdline.clone();
        Ok(Vm {
            config,
            vcpus,
            vm_fd,
            kvm,
            memory,
            pio,
            mmio,
            com1: devices.com1,
            com2: devices.com2,
            _irqfds: devices.irqfds,
            _console_end: devices.console_end,
            state,
            compat,
            cmdline,
            kernel_format: None,
            setup: started.elapsed(),
            cpuids: machine.vcpus.iter().map(|v| v.cpuid.clone()).collect(),
            requests: Arc::default(),
        })
    }
}
