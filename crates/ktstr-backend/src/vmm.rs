//! The ktstr-vmm backend: the VM runs on its own thread; its virtio-console
//! bulk port, interrupt handle and guest memory back the [`Guest`].
//!
//! A snapshot is one ktstr-vmm snapshot file in the directory, keyed by the
//! [`BootSpec`] (kernel and initramfs contents, command line, shape, memory):
//! a restore with another spec fails with
//! [`BackendError::SnapshotKeyMismatch`] before anything is applied.
//! Cold boot and restore attach the same devices; a restore gets a fresh
//! virtio-console host side, wired to the restored device state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use ktstr_vmm::snapshot::cache::CacheKey;
use ktstr_vmm::{
    ConsoleHost, ConsoleSender, ExitKind, InterruptHandle, PORT_BULK, RestoreOptions, Vm,
    VmBuilder, VmmError,
};
use vm_memory::GuestMemoryMmap;

use crate::{BackendError, PhysMemory};

use crate::guest::{BootSpec, Exit, Guest, Outcome};

/// The snapshot file inside a snapshot directory.
const SNAPSHOT_FILE: &str = "machine.snap";

/// What, besides the VM config, shapes a backend snapshot (see [`CacheKey::for_config`]).
const KEY_EXTRA: &str = "ktstr-backend:virtio-console";

/// The builder for `spec`, without the devices.
fn builder(spec: &BootSpec) -> VmBuilder {
    let mut builder = VmBuilder::new()
        .kernel(&spec.kernel)
        .cmdline(&spec.cmdline)
        .vcpus(spec.vcpus)
        .memory_mib(spec.memory_mib)
        .deadline(spec.deadline);
    if let Some(topology) = &spec.topology {
        builder = builder.topology(topology.clone());
    }
    if let Some(initramfs) = &spec.initramfs {
        builder = builder.initramfs(initramfs);
    }
    builder
}

/// The key a snapshot of a guest booted from `spec` carries.
pub fn snapshot_key(spec: &BootSpec) -> Result<String, BackendError> {
    let key = CacheKey::for_config(builder(spec).config(), KEY_EXTRA).map_err(VmmError::from)?;
    Ok(key.material)
}

pub(crate) fn boot(spec: &BootSpec) -> Result<Box<dyn Guest>, BackendError> {
    let console = ktstr_vmm::virtio_console();
    let vm = match &spec.restore_from {
        Some(dir) => Vm::restore(
            dir.join(SNAPSHOT_FILE),
            RestoreOptions {
                deadline: spec.deadline,
                expect_key: Some(snapshot_key(spec)?),
                virtio_console: Some(console.sender.clone()),
                ..RestoreOptions::default()
            },
        )
        .map_err(|e| match e {
            VmmError::Snapshot(ktstr_vmm::SnapshotError::KeyMismatch) => {
                BackendError::SnapshotKeyMismatch { dir: dir.clone() }
            }
            other => other.into(),
        })?,
        None => builder(spec).virtio_console(&console.sender).build()?,
    };
    Ok(Box::new(VmmGuest::start(vm, console, spec)?))
}

/// A ktstr-vmm VM running on its own thread.
pub struct VmmGuest {
    /// `None` once waited for.
    runner: Option<JoinHandle<Result<ktstr_vmm::Outcome, VmmError>>>,
    handle: InterruptHandle,
    console: ConsoleSender,
    bulk_rx: Option<Receiver<Vec<u8>>>,
    memory: GuestMemoryMmap,
    /// What this guest's snapshots are keyed by (read when one is taken).
    spec: BootSpec,
}

impl VmmGuest {
    /// Runs `vm` (booted or restored) with `console` attached to it; the
    /// snapshots it takes restore with `BootSpec { restore_from, ..spec }`.
    pub fn start(vm: Vm, console: ConsoleHost, spec: &BootSpec) -> Result<Self, BackendError> {
        let memory = vm.memory().clone();
        let handle = vm.interrupt_handle();
        let runner = std::thread::Builder::new()
            .name("ktstr-vm".into())
            .spawn(move || vm.run())
            .map_err(|e| VmmError::from(ktstr_vmm::RunError::Thread(e)))?;
        Ok(VmmGuest {
            runner: Some(runner),
            handle,
            console: console.sender,
            bulk_rx: Some(console.bulk_output),
            memory,
            spec: BootSpec {
                restore_from: None,
                ..spec.clone()
            },
        })
    }

    /// The snapshot file [`Guest::snapshot`] writes into `dir`.
    pub fn snapshot_file(dir: &Path) -> PathBuf {
        dir.join(SNAPSHOT_FILE)
    }

    fn join(&mut self) -> Result<Outcome, BackendError> {
        let runner = self.runner.take().ok_or(BackendError::Lost)?;
        let outcome = runner.join().map_err(|_| BackendError::Lost)??;
        Ok(classify(outcome, &self.spec.cmdline))
    }
}

/// The one mapping of a ktstr-vmm outcome. ktstr-vmm does not look for
/// kernel panics, so the consoles decide between a reboot and a panic here
/// ([`crate::GuestDeath::classify`], which reads `rdinit=` from `cmdline`).
fn classify(outcome: ktstr_vmm::Outcome, cmdline: &str) -> Outcome {
    let exit = match outcome.exit {
        ExitKind::Reboot => Exit::Reboot,
        ExitKind::Shutdown => Exit::Shutdown,
        ExitKind::Killed => Exit::Killed,
        ExitKind::DeadlineExceeded => Exit::DeadlineExceeded,
        other => Exit::Failed(format!("{other:?}")),
    };
    Outcome::classified(
        exit,
        outcome.com1,
        outcome.com2,
        outcome.timings.run,
        cmdline,
    )
}

impl Guest for VmmGuest {
    fn take_bulk_receiver(&mut self) -> Option<Receiver<Vec<u8>>> {
        self.bulk_rx.take()
    }

    fn send_bulk(&self, bytes: &[u8]) {
        self.console.send(PORT_BULK, bytes);
    }

    fn kill(&self) {
        self.handle.kill();
    }

    fn memory(&self) -> Arc<dyn PhysMemory> {
        Arc::new(self.memory.clone())
    }

    fn vcpu_msr(&self, vcpu: usize, index: u32) -> Result<Option<u64>, BackendError> {
        Ok(Some(self.handle.read_msr(vcpu, index)?))
    }

    fn snapshot(&self, dir: &Path) -> Result<(), BackendError> {
        std::fs::create_dir_all(dir).map_err(|source| {
            VmmError::from(ktstr_vmm::SnapshotError::Io {
                path: dir.to_path_buf(),
                source,
            })
        })?;
        let key = snapshot_key(&self.spec)?;
        let info = self
            .handle
            .snapshot(Self::snapshot_file(dir), &key)
            .map_err(VmmError::from)?;
        tracing::info!(dir = %dir.display(), bytes = info.disk_bytes, save = ?info.save_time, "ktstr-vmm snapshot");
        Ok(())
    }

    fn wait(mut self: Box<Self>) -> Result<Outcome, BackendError> {
        self.join()
    }
}

impl Drop for VmmGuest {
    fn drop(&mut self) {
        if self.runner.is_some() {
            self.handle.kill();
            let _ = self.join();
        }
    }
}
