//! The ktstr-vmm backend: the VM runs on its own thread; its virtio-console
//! bulk port, interrupt handle and guest memory back the [`Guest`].

use ktstr_vmm::{ExitKind, PORT_BULK, VmBuilder};
use vm_memory::{Bytes, GuestAddress};

use crate::death::{GuestDeath, exit_after};
use crate::guest::{BootSpec, Exit, Guest, Outcome};
use crate::{BackendError, MemoryReadError};

pub(crate) fn boot(spec: &BootSpec) -> Result<Guest, BackendError> {
    if spec.restore_from.is_some() {
        return Err(BackendError::SnapshotUnsupported {
            backend: "ktstr-vmm",
            reason: "restore ktstr-vmm snapshots with ktstr_vmm::Vm::restore".into(),
        });
    }
    let console = ktstr_vmm::virtio_console();
    let mut builder = VmBuilder::new()
        .kernel(&spec.kernel)
        .cmdline(&spec.cmdline)
        .vcpus(spec.vcpus)
        .memory_mib(spec.memory_mib)
        .deadline(spec.deadline)
        .virtio_console(&console.sender);
    if let Some(topology) = &spec.topology {
        builder = builder.topology(topology.clone());
    }
    if let Some(initramfs) = &spec.initramfs {
        builder = builder.initramfs(initramfs);
    }
    let vm = builder.build()?;
    let memory = vm.memory().clone();
    let handle = vm.interrupt_handle();
    let runner = std::thread::Builder::new()
        .name("ktstr-vm".into())
        .spawn(move || vm.run())
        .map_err(|e| ktstr_vmm::VmmError::from(ktstr_vmm::RunError::Thread(e)))?;
    let sender = console.sender.clone();
    // The classifier reads `rdinit=` from it to explain an init that never ran.
    let cmdline = spec.cmdline.clone();
    Ok(Guest {
        bulk_rx: Some(console.bulk_output),
        bulk_tx: Box::new(move |bytes| sender.send(PORT_BULK, bytes)),
        kill: Box::new(move || handle.kill()),
        memory: Box::new(move |addr, buf| {
            memory
                .read_slice(buf, GuestAddress(addr))
                .map_err(MemoryReadError::from)
        }),
        snapshot: None,
        finish: Some(Box::new(move || {
            let outcome = runner.join().map_err(|_| BackendError::Lost)??;
            let exit = match outcome.exit {
                ExitKind::Reboot => Exit::Reboot,
                ExitKind::Shutdown => Exit::Shutdown,
                ExitKind::Killed => Exit::Killed,
                ExitKind::DeadlineExceeded => Exit::DeadlineExceeded,
                other => Exit::Failed(format!("{other:?}")),
            };
            let death = GuestDeath::classify(&exit, &outcome.com1, &outcome.com2, &cmdline);
            Ok(Outcome {
                exit: exit_after(exit, &death),
                death,
                run_time: outcome.timings.run,
                com1: outcome.com1,
                com2: outcome.com2,
            })
        })),
    })
}
