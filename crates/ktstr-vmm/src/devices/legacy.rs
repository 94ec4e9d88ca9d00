//! The legacy PC devices every VM gets, attached the same way on a cold boot
//! and on a restore: COM1/COM2 (each with its irqfd), the i8042 and CMOS.

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

use super::bus::Bus;
use super::{cmos, i8042, serial};
use crate::error::{Result, kvm_op};

/// Inserts the devices into `pio`; returns the UARTs' irqfds, which must
/// live as long as the VM.
pub(crate) fn attach(
    vm_fd: &VmFd,
    pio: &mut Bus,
    com1: serial::Capture,
    com2: serial::Capture,
) -> Result<Vec<EventFd>> {
    let mut irqfds = Vec::new();
    for (base, irq, capture) in [
        (serial::COM1_BASE, serial::COM1_IRQ, com1),
        (serial::COM2_BASE, serial::COM2_IRQ, com2),
    ] {
        let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
        vm_fd
            .register_irqfd(&evt, irq)
            .map_err(kvm_op("KVM_IRQFD"))?;
        pio.insert(
            base,
            serial::PORT_LEN,
            Box::new(serial::SerialPort::new(evt.try_clone()?, capture)),
        )?;
        irqfds.push(evt);
    }
    pio.insert(i8042::BASE, i8042::LEN, Box::new(i8042::I8042::default()))?;
    pio.insert(cmos::BASE, cmos::LEN, Box::new(cmos::Cmos::default()))?;
    Ok(irqfds)
}
