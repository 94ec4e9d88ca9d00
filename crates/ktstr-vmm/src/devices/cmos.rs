//! A read-only MC146818 RTC/CMOS: the host's UTC time in BCD, never busy.
//! Without it Linux's RTC probe reads 0xff and spins for thousands of exits.

use super::bus::{IoAction, IoDevice};
use crate::devices::bus::DeviceStateError;

pub const BASE: u64 = 0x70;
pub const LEN: u64 = 2;

const REG_STATUS_A: u8 = 0x0a;
const REG_STATUS_B: u8 = 0x0b;
const REG_STATUS_D: u8 = 0x0d;
const STATUS_B_24H: u8 = 0x02;
const STATUS_D_VALID: u8 = 0x80;
/// Divider bits of a 32.768 kHz time base; the update-in-progress bit is 0.
const STATUS_A_DIVIDER: u8 = 0x26;

#[derive(Default)]
pub struct Cmos {
    index: u8,
}

fn bcd(v: i32) -> u8 {
    let v = v.clamp(0, 99) as u8;
    ((v / 10) << 4) | (v % 10)
}

/// Current UTC as (sec, min, hour, weekday, mday, month, year%100, century).
fn now_utc() -> [u8; 8] {
    // SAFETY: time(NULL) has no preconditions.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain old data, so all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers reference live locals for the duration of the call.
    unsafe { libc::gmtime_r(&t, &mut tm) };
    let year = tm.tm_year + 1900;
    [
        bcd(tm.tm_sec),
        bcd(tm.tm_min),
        bcd(tm.tm_hour),
        bcd(tm.tm_wday + 1),
        bcd(tm.tm_mday),
        bcd(tm.tm_mon + 1),
        bcd(year % 100),
        bcd(year / 100),
    ]
}

impl Cmos {
    fn register(&self) -> u8 {
        let now = now_utc();
        match self.index {
            0x00 => now[0],
            0x02 => now[1],
            0x04 => now[2],
            0x06 => now[3],
            0x07 => now[4],
            0x08 => now[5],
            0x09 => now[6],
            0x32 => now[7],
            REG_STATUS_A => STATUS_A_DIVIDER,
            REG_STATUS_B => STATUS_B_24H,
            REG_STATUS_D => STATUS_D_VALID,
            _ => 0,
        }
    }
}

impl IoDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (1, Some(first)) = (offset, data.first_mut()) {
            *first = self.register();
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        if let (0, Some(&v)) = (offset, data.first()) {
            self.index = v & 0x7f; // bit 7 is the NMI mask
        }
        IoAction::Continue
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        Some(vec![self.index])
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), DeviceStateError> {
        match state {
            [index] => {
                self.index = index & 0x7f;
                Ok(())
            }
            _ => Err(DeviceStateError::Length {
                device: "CMOS",
                expected: "1",
                got: state.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_reg(cmos: &mut Cmos, reg: u8) -> u8 {
        cmos.write(0, &[reg | 0x80]);
        let mut b = [0u8];
        cmos.read(1, &mut b);
        b[0]
    }

    #[test]
    fn reports_bcd_time_and_no_update_in_progress() {
        let mut cmos = Cmos::default();
        assert_eq!(read_reg(&mut cmos, REG_STATUS_A) & 0x80, 0);
        assert_eq!(read_reg(&mut cmos, REG_STATUS_D), STATUS_D_VALID);
        assert_eq!(read_reg(&mut cmos, 0x32), 0x20, "21st century");
        let month = read_reg(&mut cmos, 0x08);
        assert!((0x01..=0x12).contains(&month) && month & 0xf <= 9);
    }
}
