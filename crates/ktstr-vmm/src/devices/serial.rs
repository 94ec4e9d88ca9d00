//! A 16550 UART (vm-superio) whose output is captured for the outcome and
//! optionally streamed to a caller's sink as it arrives.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_superio::serial::SerialState;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::bus::{IoAction, IoDevice};
use crate::devices::bus::DeviceStateError;

pub const COM1_BASE: u64 = 0x3f8;
pub const COM2_BASE: u64 = 0x2f8;
pub const COM1_IRQ: u32 = 4;
pub const COM2_IRQ: u32 = 3;
pub const PORT_LEN: u64 = 8;
/// Capture stops growing here; later bytes still reach the live sink.
pub const CAPTURE_LIMIT: usize = 64 << 20;

/// Raises the UART's interrupt line through an irqfd.
pub struct IrqFdTrigger(pub EventFd);

impl Trigger for IrqFdTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Everything the UART transmits: kept in memory, copied to the sink.
pub struct Capture {
    pub bytes: Arc<Mutex<Vec<u8>>>,
    sink: Option<Box<dyn Write + Send>>,
    marker: Option<Marker>,
}

/// Calls `on_match` once, when the captured output first contains `pattern`.
pub struct Marker {
    pub pattern: Vec<u8>,
    pub on_match: Box<dyn FnMut() + Send>,
}

impl Capture {
    pub fn new(sink: Option<Box<dyn Write + Send>>) -> Self {
        Self {
            bytes: Arc::default(),
            sink,
            marker: None,
        }
    }

    pub fn with_marker(mut self, marker: Marker) -> Self {
        self.marker = Some(marker);
        self
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        {
            let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
            let room = CAPTURE_LIMIT.saturating_sub(bytes.len());
            bytes.extend_from_slice(&buf[..buf.len().min(room)]);
            if let Some(m) = &self.marker {
                // Only the tail that the new bytes could complete is searched.
                let from = bytes.len().saturating_sub(m.pattern.len() + buf.len());
                if !m.pattern.is_empty()
                    && bytes[from..]
                        .windows(m.pattern.len())
                        .any(|w| w == m.pattern)
                {
                    if let Some(mut m) = self.marker.take() {
                        (m.on_match)();
                    }
                }
            }
        }
        if let Some(sink) = self.sink.as_mut() {
            // A broken sink must not stop the guest; the capture still has it.
            if sink.write_all(buf).is_err() {
                self.sink = None;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.sink.as_mut() {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }
}

pub struct SerialPort(Serial<IrqFdTrigger, vm_superio::serial::NoEvents, Capture>);

impl SerialPort {
    pub fn new(irq: EventFd, capture: Capture) -> Self {
        Self(Serial::new(IrqFdTrigger(irq), capture))
    }
}

impl IoDevice for SerialPort {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = self.0.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        if let Some(&value) = data.first() {
            if let Err(e) = self.0.write(offset as u8, value) {
                tracing::debug!("serial write: {e:?}");
            }
        }
        IoAction::Continue
    }

    fn save_state(&self) -> Option<Vec<u8>> {
        let st = self.0.state();
        let mut out = vec![
            st.baud_divisor_low,
            st.baud_divisor_high,
            st.interrupt_enable,
            st.interrupt_identification,
            st.line_control,
            st.line_status,
            st.modem_control,
            st.modem_status,
            st.scratch,
        ];
        out.extend_from_slice(&st.in_buffer);
        Some(out)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), DeviceStateError> {
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, rest @ ..] = state else {
            return Err(DeviceStateError::Length {
                device: "UART",
                expected: "at least 9",
                got: state.len(),
            });
        };
        let st = SerialState {
            baud_divisor_low: *b0,
            baud_divisor_high: *b1,
            interrupt_enable: *b2,
            interrupt_identification: *b3,
            line_control: *b4,
            line_status: *b5,
            modem_control: *b6,
            modem_status: *b7,
            scratch: *b8,
            in_buffer: rest.to_vec(),
        };
        let irq = self.0.interrupt_evt().0.try_clone()?;
        let placeholder = Serial::new(IrqFdTrigger(irq.try_clone()?), Capture::new(None));
        // The capture (buffer and live sink) moves over; only registers change.
        let capture = std::mem::replace(&mut self.0, placeholder).into_writer();
        self.0 = Serial::from_state(
            &st,
            IrqFdTrigger(irq),
            vm_superio::serial::NoEvents,
            capture,
        )
        .map_err(DeviceStateError::Uart)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmitted_bytes_are_captured_and_streamed() {
        let live = Arc::new(Mutex::new(Vec::new()));
        let capture = Capture::new(Some(Box::new(Shared(live.clone()))));
        let captured = capture.bytes.clone();
        let mut port = SerialPort::new(EventFd::new(0).expect("eventfd"), capture);
        for b in b"hi" {
            port.write(0, &[*b]);
        }
        assert_eq!(&*captured.lock().expect("lock"), b"hi");
        assert_eq!(&*live.lock().expect("lock"), b"hi");
        let mut lsr = [0u8; 1];
        port.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "transmitter holding register empty");
    }
}
