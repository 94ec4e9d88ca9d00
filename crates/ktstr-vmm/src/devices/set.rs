//! Every device a ktstr VM has, attached one way for a cold boot and for a
//! restore (which then loads the saved state into them): the legacy PC
//! devices, the control port, the virtio-console when the caller gave one,
//! and the caller's own devices. One set-up, so a restored VM's buses hold
//! the same devices at the same addresses as the VM that was snapshotted.

use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::bus::{Bus, IoSpace};
use super::virtio::console::{ConsoleSender, VmEnd};
use super::{control, legacy, serial, virtio};
use crate::config::ExtraDevice;
use crate::error::Result;

pub(crate) struct DeviceSet {
    pub com1: serial::Capture,
    pub com2: serial::Capture,
    pub control: control::Control,
    pub console: Option<ConsoleSender>,
    pub extra: Vec<ExtraDevice>,
}

/// The buses with every device inserted, and what the VM keeps of them.
pub(crate) struct Attached {
    pub pio: Bus,
    pub mmio: Bus,
    pub com1: Arc<Mutex<Vec<u8>>>,
    pub com2: Arc<Mutex<Vec<u8>>>,
    /// The devices' irqfds: they must live as long as the VM.
    pub irqfds: Vec<EventFd>,
    /// Closes the virtio-console's host receivers when the VM is dropped
    /// (at the end of its run), so the host notices the end at once.
    pub console_end: Option<VmEnd>,
}

impl DeviceSet {
    pub fn attach(self, vm_fd: &VmFd, memory: &GuestMemoryMmap) -> Result<Attached> {
        let mut pio = Bus::default();
        let mut mmio = Bus::default();
        let (com1, com2) = (self.com1.bytes.clone(), self.com2.bytes.clone());
        let mut irqfds = legacy::attach(vm_fd, &mut pio, self.com1, self.com2)?;
        let console_end = self.console.as_ref().map(ConsoleSender::ends_with_vm);
        pio.insert(control::BASE, control::LEN, Box::new(self.control))?;
        if let Some(console) = &self.console {
            irqfds.push(virtio::attach_console(vm_fd, &mut mmio, console, memory)?);
        }
        for dev in self.extra {
            let bus = if dev.space == IoSpace::Pio {
                &mut pio
            } else {
                &mut mmio
            };
            bus.insert(dev.base, dev.len, dev.device)?;
        }
        Ok(Attached {
            pio,
            mmio,
            com1,
            com2,
            irqfds,
            console_end,
        })
    }
}
