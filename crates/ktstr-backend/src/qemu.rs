//! The QEMU backend: a ktstr-qemu `RunningVm` behind the [`Guest`] interface.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ktstr_qemu::{Accel, AfterSnapshot, ExitKind, NumaNode, QemuBuilder, Topology};
use ktstr_vmm::topology::NumaTopology;

use crate::guest::{BootSpec, Exit, Guest, Outcome, panic_or};
use crate::{BackendError, MemoryReadError};

pub(crate) fn boot(spec: &BootSpec, accel: Accel) -> Result<Guest, BackendError> {
    let vcpus = u32::try_from(spec.vcpus).unwrap_or(u32::MAX);
    let mut builder = QemuBuilder::new(&spec.kernel);
    if let Some(t) = &spec.topology {
        builder = builder.topology(qemu_topology(t, spec.memory_mib)?);
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
            Ok(Outcome {
                exit: panic_or(exit, &outcome.com1),
                run_time: outcome.timings.total,
                com1: outcome.com1,
                com2: outcome.com2,
            })
        })),
    })
}

/// Maps a ktstr topology onto QEMU's: one socket per node, one die per LLC, and `-numa`
/// nodes (with memory and distances) when there is more than one node.
pub(crate) fn qemu_topology(t: &NumaTopology, memory_mib: u64) -> Result<Topology, BackendError> {
    t.check()?;
    let llcs = t.nodes[0].llcs;
    if t.nodes.iter().any(|n| n.llcs != llcs) {
        return Err(BackendError::TopologyUnsupported {
            backend: "QEMU",
            reason: "-smp is uniform, so every NUMA node needs the same number of LLCs".into(),
        });
    }
    let mut q = Topology::new(t.nodes.len() as u32, t.cores_per_llc, t.threads_per_core);
    q.dies = llcs;
    if t.nodes.len() > 1 {
        let memory = t.node_memory_mib(memory_mib)?;
        q.numa_nodes = memory
            .iter()
            .enumerate()
            .map(|(node, &memory_mib)| NumaNode {
                cpus: t
                    .cpus()
                    .enumerate()
                    .filter(|(_, c)| c.node as usize == node)
                    .map(|(i, _)| i as u32)
                    .collect(),
                memory_mib,
            })
            .collect();
        let n = t.nodes.len();
        q.distances = (0..n)
            .map(|a| (0..n).map(|b| t.distances.get(a, b)).collect())
            .collect();
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktstr_vmm::topology::{DistanceMatrix, NodeSpec};

    #[test]
    fn nodes_become_sockets_and_llcs_dies() {
        let t: ktstr_vmm::topology::Topology = "2n4l2c2t".parse().unwrap();
        let q = qemu_topology(&t.to_numa().unwrap(), 512).unwrap();
        assert_eq!((q.sockets, q.dies, q.cores, q.threads), (2, 2, 2, 2));
        assert_eq!(q.numa_nodes[1].cpus, (8..16).collect::<Vec<_>>());
        assert_eq!(q.numa_nodes[0].memory_mib, 256);
        assert_eq!(q.distances, [vec![10, 20], vec![20, 10]]);
        let flat: ktstr_vmm::topology::Topology = "1n1l2c1t".parse().unwrap();
        let q = qemu_topology(&flat.to_numa().unwrap(), 256).unwrap();
        assert!(q.numa_nodes.is_empty());
        assert_eq!(q.validate(), Ok(2));
    }

    #[test]
    fn non_uniform_nodes_are_refused() {
        let t = NumaTopology {
            cores_per_llc: 1,
            threads_per_core: 1,
            nodes: vec![
                NodeSpec {
                    llcs: 1,
                    memory_mib: None,
                },
                NodeSpec {
                    llcs: 2,
                    memory_mib: None,
                },
            ],
            distances: DistanceMatrix::uniform(2),
        };
        assert!(matches!(
            qemu_topology(&t, 256),
            Err(BackendError::TopologyUnsupported { .. })
        ));
    }
}
