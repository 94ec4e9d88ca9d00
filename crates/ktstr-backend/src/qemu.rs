//! The QEMU backend: a ktstr-qemu `RunningVm` behind the [`Guest`] interface.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use ktstr_qemu::{
    Accel, AfterSnapshot, ExitKind, GuestMemoryView, KillHandle, PortSender, QemuBuilder, RunningVm,
};

use crate::{BackendError, PhysMemory};

use crate::guest::{BootSpec, Exit, Guest, Outcome};

pub(crate) fn boot(spec: &BootSpec, accel: Accel) -> Result<Box<dyn Guest>, BackendError> {
    let vcpus = u32::try_from(spec.vcpus).unwrap_or(u32::MAX);
    let mut builder = QemuBuilder::new(&spec.kernel);
    if let Some(t) = &spec.topology {
        builder = builder.topology(t.clone());
    }
    let mut builder = builder
        .cmdline(&spec.cmdline)
        .vcpus(vcpus)
        .memory_mib(spec.memory_mib)
        .deadline(spec.deadline)
        .accel(accel);
    if let Some(initramfs) = &spec.initramfs {
        builder = builder.initramfs(initramfs);
    }
    if let Some(dir) = &spec.restore_from {
        let key = ktstr_qemu::snapshot_key(builder.config())?;
        let snapshot = ktstr_qemu::QemuSnapshot::open(dir, &key).map_err(|e| match e {
            ktstr_qemu::Error::SnapshotKeyMismatch { dir } => {
                BackendError::SnapshotKeyMismatch { dir }
            }
            other => other.into(),
        })?;
        builder = builder.restore(snapshot);
    }
    let mut vm = builder.spawn()?;
    Ok(Box::new(QemuGuest {
        bulk_rx: vm.take_bulk_receiver(),
        bulk: vm.bulk_sender(),
        kill: vm.kill_handle(),
        memory: vm.memory(),
        vm: Some(vm),
        cmdline: spec.cmdline.clone(),
    }))
}

/// A QEMU child process.
pub struct QemuGuest {
    /// `None` once waited for.
    vm: Option<RunningVm>,
    bulk_rx: Option<Receiver<Vec<u8>>>,
    bulk: Option<PortSender>,
    kill: KillHandle,
    memory: GuestMemoryView,
    /// The classifier reads `rdinit=` from it to explain an init that never ran.
    cmdline: String,
}

impl QemuGuest {
    fn reap(&mut self) -> Result<Outcome, BackendError> {
        let vm = self.vm.take().ok_or(BackendError::Lost)?;
        Ok(classify(vm.wait()?, &self.cmdline))
    }
}

/// The one mapping of a QEMU outcome (ktstr-qemu already saw any panic on
/// COM1; [`crate::GuestDeath::classify`] says what it was).
fn classify(outcome: ktstr_qemu::Outcome, cmdline: &str) -> Outcome {
    let exit = match outcome.exit {
        ExitKind::Reboot => Exit::Reboot,
        ExitKind::Shutdown => Exit::Shutdown,
        ExitKind::GuestPanic => Exit::GuestPanic,
        ExitKind::Killed => Exit::Killed,
        ExitKind::DeadlineExceeded => Exit::DeadlineExceeded,
        other => Exit::Failed(format!("{other:?}: {}", outcome.stderr)),
    };
    Outcome::classified(
        exit,
        outcome.com1,
        outcome.com2,
        outcome.timings.total,
        cmdline,
    )
}

impl Guest for QemuGuest {
    fn take_bulk_receiver(&mut self) -> Option<Receiver<Vec<u8>>> {
        self.bulk_rx.take()
    }

    fn send_bulk(&self, bytes: &[u8]) {
        if let Some(port) = &self.bulk {
            if let Err(e) = port.send(bytes) {
                tracing::warn!("bulk port send: {e}");
            }
        }
    }

    fn kill(&self) {
        self.kill.kill();
    }

    fn memory(&self) -> Arc<dyn PhysMemory> {
        Arc::new(self.memory.clone())
    }

    fn snapshot(&self, dir: &Path) -> Result<(), BackendError> {
        let vm = self.vm.as_ref().ok_or(BackendError::Lost)?;
        vm.snapshot(dir, AfterSnapshot::Continue)?;
        Ok(())
    }

    fn wait(mut self: Box<Self>) -> Result<Outcome, BackendError> {
        self.reap()
    }
}

impl Drop for QemuGuest {
    fn drop(&mut self) {
        if self.vm.is_some() {
            self.kill.kill();
            let _ = self.reap();
        }
    }
}
