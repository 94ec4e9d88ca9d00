//! virtio over MMIO: the transport (`mmio`), the device interface it drives,
//! and the multiport console (`console`).

pub mod console;
pub mod mmio;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::devices::bus::DeviceStateError;
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// InterruptStatus bit: a queue has new used buffers.
pub const INT_VRING: u32 = 1;
/// InterruptStatus bit: the configuration space changed.
pub const INT_CONFIG: u32 = 2;
/// `VIRTIO_F_VERSION_1`: the modern (non-legacy) interface.
pub const F_VERSION_1: u64 = 1 << 32;

/// Raises the device's interrupt: sets InterruptStatus, then kicks the irqfd.
#[derive(Clone)]
pub struct Interrupt {
    status: Arc<AtomicU32>,
    irqfd: Arc<EventFd>,
}

impl Interrupt {
    pub fn new(irqfd: EventFd) -> Self {
        Self {
            status: Arc::default(),
            irqfd: Arc::new(irqfd),
        }
    }

    pub fn signal(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        if let Err(e) = self.irqfd.write(1) {
            tracing::warn!("virtio interrupt: {e}");
        }
    }

    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Sets InterruptStatus to a restored value (the line itself is in the IOAPIC state).
    pub fn set_status(&self, bits: u32) {
        self.status.store(bits, Ordering::SeqCst);
    }
}

/// What a virtio device implements; the transport owns everything else.
pub trait VirtioDevice: Send {
    fn device_type(&self) -> u32;
    /// Offered feature bits, including [`F_VERSION_1`].
    fn features(&self) -> u64;
    fn queue_max_sizes(&self) -> &[u16];
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver set DRIVER_OK: the device takes the configured queues.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Interrupt,
        acked_features: u64,
    );
    /// The driver notified queue `index`.
    fn queue_notify(&mut self, index: u32);
    /// The driver wrote 0 to Status: drop all queue state.
    fn reset(&mut self);

    /// The live queues' state (empty before activation), for a snapshot.
    fn queue_states(&self) -> Vec<virtio_queue::QueueState> {
        Vec::new()
    }

    /// The device's own state beyond its queues; `None`: not snapshottable.
    fn save_state(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores [`VirtioDevice::save_state`]'s bytes, after `activate` if it was live.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), DeviceStateError> {
        Err(DeviceStateError::NotRestorable)
    }
}

/// Puts the virtio-console's mmio transport at its fixed address with its irqfd, the same
/// on a cold boot and a restore; the returned irqfd must live as long as the VM.
pub(crate) fn attach_console(
    vm_fd: &kvm_ioctls::VmFd,
    mmio: &mut crate::devices::bus::Bus,
    console: &console::ConsoleSender,
    memory: &vm_memory::GuestMemoryMmap,
) -> crate::error::Result<vmm_sys_util::eventfd::EventFd> {
    use vmm_sys_util::eventfd::EventFd;
    let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)?;
    vm_fd
        .register_irqfd(&evt, crate::layout::VIRTIO_CONSOLE_IRQ)
        .map_err(crate::error::kvm_op("KVM_IRQFD"))?;
    let transport = mmio::MmioTransport::new(
        console.device(),
        memory.clone(),
        Interrupt::new(evt.try_clone()?),
    );
    mmio.insert(
        crate::layout::VIRTIO_MMIO_BASE,
        mmio::MMIO_LEN,
        Box::new(transport),
    )?;
    Ok(evt)
}
