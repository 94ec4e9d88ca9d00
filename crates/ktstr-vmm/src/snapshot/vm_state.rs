//! VM-wide in-kernel device state: the two PICs, the IOAPIC, the PIT and the
//! KVM clock. The clock is restored to the captured value so the guest sees
//! time continue from the snapshot instead of jumping by the time on disk.

use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, kvm_clock_data, kvm_irqchip,
    kvm_pit_state2,
};
use kvm_ioctls::VmFd;

use super::SnapshotError;
use super::codec::{Reader, Writer};

#[derive(Clone)]
pub struct VmState {
    /// PIC master, PIC slave, IOAPIC, in that order.
    pub irqchips: [kvm_irqchip; 3],
    pub pit: kvm_pit_state2,
    pub clock: kvm_clock_data,
}

const CHIPS: [u32; 3] = [
    KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQCHIP_IOAPIC,
];

fn kvm_err(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> SnapshotError {
    move |source| SnapshotError::Kvm { op, source }
}

/// The PIT with its channels' load timestamps cleared: they are host
/// monotonic times that KVM re-bases when the state is set.
fn pit_without_timestamps(pit: &kvm_pit_state2) -> kvm_pit_state2 {
    let mut pit = *pit;
    for ch in pit.channels.iter_mut() {
        ch.count_load_time = 0;
    }
    pit
}

impl PartialEq for VmState {
    /// Byte comparison of guest-visible state; the running clock and the
    /// PIT's host timestamps are excluded.
    fn eq(&self, other: &Self) -> bool {
        use zerocopy::IntoBytes;
        self.irqchips
            .iter()
            .zip(other.irqchips.iter())
            .all(|(a, b)| a.as_bytes() == b.as_bytes())
            && pit_without_timestamps(&self.pit) == pit_without_timestamps(&other.pit)
    }
}

impl std::fmt::Debug for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmState")
            .field("pit", &self.pit)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl VmState {
    pub(crate) fn capture(vm: &VmFd) -> Result<Self, SnapshotError> {
        let mut irqchips = [kvm_irqchip::default(); 3];
        for (chip, id) in irqchips.iter_mut().zip(CHIPS) {
            chip.chip_id = id;
            vm.get_irqchip(chip).map_err(kvm_err("KVM_GET_IRQCHIP"))?;
        }
        let pit = vm.get_pit2().map_err(kvm_err("KVM_GET_PIT2"))?;
        let clock = vm.get_clock().map_err(kvm_err("KVM_GET_CLOCK"))?;
        Ok(Self {
            irqchips,
            pit,
            clock,
        })
    }

    /// Applies to a VM that already has its irqchip and PIT created.
    pub(crate) fn apply(&self, vm: &VmFd) -> Result<(), SnapshotError> {
        vm.set_pit2(&self.pit).map_err(kvm_err("KVM_SET_PIT2"))?;
        // Only the clock value: flags like TSC_STABLE/REALTIME are outputs of
        // GET and would ask KVM to advance the clock by wall time.
        let clock = kvm_clock_data {
            clock: self.clock.clock,
            ..Default::default()
        };
        vm.set_clock(&clock).map_err(kvm_err("KVM_SET_CLOCK"))?;
        for chip in &self.irqchips {
            vm.set_irqchip(chip).map_err(kvm_err("KVM_SET_IRQCHIP"))?;
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        for chip in &self.irqchips {
            w.pod(chip);
        }
        w.pod(&self.pit);
        w.pod(&self.clock);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, SnapshotError> {
        let irqchips = [r.pod()?, r.pod()?, r.pod()?];
        for (chip, id) in irqchips.iter().zip(CHIPS) {
            let chip: &kvm_irqchip = chip;
            if chip.chip_id != id {
                return Err(SnapshotError::Malformed(format!(
                    "irqchip {} where {id} was expected",
                    chip.chip_id
                )));
            }
        }
        Ok(Self {
            irqchips,
            pit: r.pod()?,
            clock: r.pod()?,
        })
    }
}
