//! The i8042 keyboard controller, reduced to what a VM needs: the CPU reset
//! command (0xFE on port 0x64) that `reboot=k` uses, reported as a reboot.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vm_superio::{I8042Device, Trigger};

use super::bus::{IoAction, IoDevice};

pub const BASE: u64 = 0x60;
/// Ports 0x60..=0x64; 0x61 (speaker) is handled by KVM's in-kernel PIT.
pub const LEN: u64 = 5;

#[derive(Clone, Default)]
struct ResetFlag(Arc<AtomicBool>);

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

pub struct I8042 {
    device: I8042Device<ResetFlag>,
    reset: ResetFlag,
}

impl Default for I8042 {
    fn default() -> Self {
        let reset = ResetFlag::default();
        Self {
            device: I8042Device::new(reset.clone()),
            reset,
        }
    }
}

impl IoDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = self.device.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        if let Some(&value) = data.first() {
            let _ = self.device.write(offset as u8, value);
        }
        if self.reset.0.swap(false, Ordering::Relaxed) {
            IoAction::Reboot
        } else {
            IoAction::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_reboots_other_writes_do_not() {
        let mut kbd = I8042::default();
        assert_eq!(
            kbd.write(0, &[0xfe]),
            IoAction::Continue,
            "0xfe on the data port is not a reset"
        );
        assert_eq!(kbd.write(4, &[0xaa]), IoAction::Continue);
        assert_eq!(kbd.write(4, &[0xfe]), IoAction::Reboot);
    }
}
