//! The QEMU backend: a ktstr-qemu `RunningVm` behind the [`Guest`] interface.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ktstr_qemu::{Accel, AfterSnapshot, ExitKind, QemuBuilder};

use crate::death::{GuestDeath, exit_after};
use crate::guest::{BootSpec, Exit, Guest, Outcome};
use crate::{BackendError, MemoryReadError};

pub(crate) fn boot(spec: &BootSpec, accel: Accel) -> Result<Guest, BackendError> {
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
        builder = builder.restore(ktstr_qemu::QemuSnapshot::open(dir, &key)?);
    }
    let mut vm = builder.spawn()?;
    let bulk_rx = vm.take_bulk_receiver();
    let bulk = vm.bulk_sender();
    let kill = vm.kill_handle();
    let memory = vm.memory();
    // The VM is shared by the snapshot closure and the one-shot `finish`.
    let vm = Arc::new(Mutex::new(Some(vm)));
    let for_snapshot = vm.clone();
    // The classifier reads `rdinit=` from it to explain an init that never ran.
    let cmdline = spec.cmdline.clone();
    Ok(Guest {
        bulk_rx,
        bulk_tx: Box::new(move |bytes| {
            if let Some(port) = &bulk {
                if let Err(e) = port.send(bytes) {
                    tracing::warn!("bulk port send: {e}");
                }
            }
        }),
        kill: Box::new(move || kill.kill()),
        memory: Box::new(move |addr, buf| memory.read(addr, buf).map_err(MemoryReadError::from)),
        snapshot: Some(Box::new(move |dir: &Path| {
            let guard = for_snapshot.lock().map_err(|_| BackendError::Lost)?;
            let vm = guard.as_ref().ok_or(BackendError::Lost)?;
            vm.snapshot(dir, AfterSnapshot::Continue)?;
            Ok(())
        })),
        finish: Some(Box::new(move || {
            let vm = vm
                .lock()
                .map_err(|_| BackendError::Lost)?
                .take()
                .ok_or(BackendError::Lost)?;
            let outcome = vm.wait()?;
            let exit = match outcome.exit {
                ExitKind::Reboot => Exit::Reboot,
                ExitKind::Shutdown => Exit::Shutdown,
                ExitKind::GuestPanic => Exit::GuestPanic,
                ExitKind::Killed => Exit::Killed,
                ExitKind::DeadlineExceeded => Exit::DeadlineExceeded,
                other => Exit::Failed(format!("{other:?}: {}", outcome.stderr)),
            };
            let death = GuestDeath::classify(&exit, &outcome.com1, &outcome.com2, &cmdline);
            Ok(Outcome {
                exit: exit_after(exit, &death),
                death,
                run_time: outcome.timings.total,
                com1: outcome.com1,
                com2: outcome.com2,
            })
        })),
    })
}
