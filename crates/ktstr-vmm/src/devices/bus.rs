//! Port-I/O and MMIO dispatch. Every guest access lands on exactly one
//! device or on nothing: unknown reads return all-ones, unknown writes are
//! dropped and counted. No guest access can make the VMM panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{ConfigError, Result};
use crate::snapshot::SnapshotError;

/// Which address space a device lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSpace {
    Pio,
    Mmio,
}

/// What the VM must do after a device handled a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoAction {
    #[default]
    Continue,
    /// The guest asked for a reset (i8042 0xFE, ...).
    Reboot,
    /// The guest asked to power off.
    Shutdown,
}

/// A device on one of the buses. `offset` is relative to the device base.
pub trait IoDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction;

    /// The device's state for a snapshot. `None` means this device cannot
    /// be snapshotted (the snapshot is refused). Default: stateless.
    fn save_state(&self) -> Option<Vec<u8>> {
        Some(Vec::new())
    }

    /// Restores what [`IoDevice::save_state`] returned; `Err` names what is wrong.
    fn restore_state(&mut self, state: &[u8]) -> std::result::Result<(), DeviceStateError> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(DeviceStateError::Stateless { got: state.len() })
        }
    }
}

/// Why a device could not take back the state it saved.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStateError {
    #[error("a stateless device got {got} bytes of state")]
    Stateless { got: usize },
    #[error("{device} state is {expected} bytes, got {got}")]
    Length {
        device: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("this virtio device cannot be restored")]
    NotRestorable,
    /// The saved bytes do not decode (truncated, trailing bytes, bad field).
    #[error(transparent)]
    Malformed(Box<SnapshotError>),
    #[error("cannot clone the interrupt eventfd: {0}")]
    IrqFd(#[from] std::io::Error),
    #[error("UART registers: {0:?}")]
    Uart(vm_superio::serial::Error<std::io::Error>),
}

impl From<SnapshotError> for DeviceStateError {
    fn from(e: SnapshotError) -> Self {
        Self::Malformed(Box::new(e))
    }
}

/// Why a snapshot's device states do not fit this VM's devices.
#[derive(Debug, thiserror::Error)]
pub enum DeviceMismatchError {
    #[error("snapshot has {saved} devices, this VM {present}")]
    Count { saved: usize, present: usize },
    #[error("no device at {base:#x}")]
    Missing { base: u64 },
    #[error("device at {base:#x}: {source}")]
    State { base: u64, source: DeviceStateError },
}

type SharedDevice = Arc<Mutex<Box<dyn IoDevice>>>;

struct Slot {
    base: u64,
    len: u64,
    device: SharedDevice,
}

/// One address space's devices, sorted by base, never overlapping.
#[derive(Default)]
pub struct Bus {
    slots: Vec<Slot>,
    unhandled: AtomicU64,
}

fn lock(device: &SharedDevice) -> MutexGuard<'_, Box<dyn IoDevice>> {
    // A poisoned lock means a vCPU panicked inside a device; the panic shim
    // is already ending the VM, so the state is only read, never trusted.
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Bus {
    pub fn insert(&mut self, base: u64, len: u64, device: Box<dyn IoDevice>) -> Result<()> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(ConfigError::DeviceOverlap { base, len })?;
        let at = self.slots.partition_point(|s| s.base < base);
        let clashes_prev = at > 0 && self.slots[at - 1].base + self.slots[at - 1].len > base;
        let clashes_next = self.slots.get(at).is_some_and(|s| s.base < end);
        if clashes_prev || clashes_next {
            return Err(ConfigError::DeviceOverlap { base, len }.into());
        }
        self.slots.insert(
            at,
            Slot {
                base,
                len,
                device: Arc::new(Mutex::new(device)),
            },
        );
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(&Slot, u64)> {
        let at = self.slots.partition_point(|s| s.base <= addr);
        let slot = self.slots.get(at.checked_sub(1)?)?;
        let offset = addr - slot.base;
        (offset.checked_add(size as u64)? <= slot.len).then_some((slot, offset))
    }

    pub fn read(&self, addr: u64, data: &mut [u8]) {
        match self.find(addr, data.len()) {
            Some((slot, offset)) => lock(&slot.device).read(offset, data),
            None => {
                self.note_unhandled(addr, "read");
                data.fill(0xff);
            }
        }
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> IoAction {
        match self.find(addr, data.len()) {
            Some((slot, offset)) => lock(&slot.device).write(offset, data),
            None => {
                self.note_unhandled(addr, "write");
                IoAction::Continue
            }
        }
    }

    fn note_unhandled(&self, addr: u64, what: &'static str) {
        if self.unhandled.fetch_add(1, Ordering::Relaxed) < 16 {
            tracing::debug!(
                addr = format_args!("{addr:#x}"),
                what,
                "guest access to no device"
            );
        }
    }

    /// Every device's state by base address; `Err(base)` names the first
    /// device that cannot be snapshotted.
    pub(crate) fn save_states(&self) -> std::result::Result<Vec<(u64, Vec<u8>)>, u64> {
        self.slots
            .iter()
            .map(|s| {
                lock(&s.device)
                    .save_state()
                    .map(|st| (s.base, st))
                    .ok_or(s.base)
            })
            .collect()
    }

    /// Applies saved states; every saved device must exist here and vice versa.
    pub(crate) fn restore_states(
        &self,
        states: &[(u64, Vec<u8>)],
    ) -> std::result::Result<(), DeviceMismatchError> {
        if states.len() != self.slots.len() {
            return Err(DeviceMismatchError::Count {
                saved: states.len(),
                present: self.slots.len(),
            });
        }
        for (base, state) in states {
            let slot = self
                .slots
                .iter()
                .find(|s| s.base == *base)
                .ok_or(DeviceMismatchError::Missing { base: *base })?;
            lock(&slot.device).restore_state(state).map_err(|source| {
                DeviceMismatchError::State {
                    base: *base,
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Accesses that hit no device so far.
    pub fn unhandled(&self) -> u64 {
        self.unhandled.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl IoDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(offset as u8));
        }
        fn write(&mut self, _offset: u64, data: &[u8]) -> IoAction {
            self.0 = data[0];
            IoAction::Continue
        }
    }

    #[test]
    fn dispatches_by_range_and_rejects_overlap() {
        let mut bus = Bus::default();
        bus.insert(0x10, 4, Box::new(Echo(1))).expect("insert");
        bus.insert(0x20, 4, Box::new(Echo(7))).expect("insert");
        assert!(bus.insert(0x12, 4, Box::new(Echo(0))).is_err());
        assert!(bus.insert(0x1e, 4, Box::new(Echo(0))).is_err());
        assert!(bus.insert(0x30, 0, Box::new(Echo(0))).is_err());
        assert!(bus.insert(u64::MAX, 2, Box::new(Echo(0))).is_err());
        let mut b = [0u8; 1];
        bus.read(0x12, &mut b);
        assert_eq!(b, [3]);
        bus.read(0x20, &mut b);
        assert_eq!(b, [7]);
    }

    #[test]
    fn unknown_and_straddling_accesses_are_harmless() {
        let mut bus = Bus::default();
        bus.insert(0x10, 4, Box::new(Echo(1))).expect("insert");
        let mut b = [0u8; 4];
        bus.read(0x13, &mut b); // straddles the end
        assert_eq!(b, [0xff; 4]);
        bus.read(u64::MAX, &mut b);
        assert_eq!(bus.write(0, &[1]), IoAction::Continue);
        assert_eq!(bus.unhandled(), 3);
    }
}
