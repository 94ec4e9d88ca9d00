//! virtio-console with `VIRTIO_CONSOLE_F_MULTIPORT`: port 0 is the console
//! (`hvc0`), port 1 is named `ktstr.bulk` (the guest's `/dev/vport0p1`).
//!
//! The guest is untrusted. Every buffer goes through vm-memory (bounds
//! checked), chains are walked by virtio-queue (bounded by the queue size, so
//! loops end), descriptors of the wrong direction are skipped and counted.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::{F_VERSION_1, INT_VRING, Interrupt, VirtioDevice};
use crate::devices::bus::DeviceStateError;
use crate::snapshot::codec::{Reader, Writer};

pub const DEVICE_TYPE_CONSOLE: u32 = 3;
const F_MULTIPORT: u64 = 1 << 1;
pub const PORT_CONSOLE: u32 = 0;
pub const PORT_BULK: u32 = 1;
const PORTS: usize = 2;
const QUEUE_SIZE: u16 = 256;
/// Queue order with MULTIPORT: port0 rx/tx, control rx/tx, port1 rx/tx.
const CONTROL_RX: usize = 2;
const CONTROL_TX: usize = 3;
/// Host bytes queued for a guest port beyond this are dropped (and counted).
const MAX_PENDING: usize = 64 << 20;
/// Bytes taken from one transmit chain; a longer claim is a hostile driver
/// asking the VMM to allocate for it, so the excess descriptors are skipped.
const MAX_TX_CHAIN: usize = 1 << 20;

const DEVICE_READY: u16 = 0;
const DEVICE_ADD: u16 = 1;
const PORT_READY: u16 = 3;
const CONSOLE_PORT: u16 = 4;
const PORT_OPEN: u16 = 6;
const PORT_NAME: u16 = 7;

fn rx_queue(port: usize) -> usize {
    if port == 0 { 0 } else { 2 + 2 * port }
}

fn tx_queue(port: usize) -> usize {
    rx_queue(port) + 1
}

/// Counters of what the guest got wrong; visible to tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleStats {
    pub bad_descriptors: u64,
    pub dropped_host_bytes: u64,
    pub bad_control: u64,
}

struct Live {
    mem: GuestMemoryMmap,
    queues: Vec<Queue>,
    interrupt: Interrupt,
}

pub struct Console {
    live: Option<Live>,
    /// `None` once the VM ended ([`VmEnd`]): the host's receivers disconnect.
    outputs: Option<[Sender<Vec<u8>>; PORTS]>,
    pending_rx: [VecDeque<u8>; PORTS],
    pending_control: VecDeque<Vec<u8>>,
    guest_open: [bool; PORTS],
    guest_ready: [bool; PORTS],
    stats: ConsoleStats,
}

/// The host's side of the console: what the guest wrote, per port, and a
/// way to send it bytes at any time (buffered until the guest is ready).
pub struct ConsoleHost {
    pub console_output: Receiver<Vec<u8>>,
    pub bulk_output: Receiver<Vec<u8>>,
    pub sender: ConsoleSender,
}

/// Sends bytes to a guest port; cloneable, usable from any thread.
#[derive(Clone)]
pub struct ConsoleSender(Arc<Mutex<Console>>);

fn lock(c: &Mutex<Console>) -> MutexGuard<'_, Console> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConsoleSender {
    /// Queues `bytes` for `port` and delivers what the guest has room for.
    pub fn send(&self, port: u32, bytes: &[u8]) {
        lock(&self.0).host_send(port as usize, bytes);
    }

    pub fn guest_opened(&self, port: u32) -> bool {
        lock(&self.0)
            .guest_open
            .get(port as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The guest driver set the port up (`PORT_READY`).
    pub fn guest_ready(&self, port: u32) -> bool {
        lock(&self.0)
            .guest_ready
            .get(port as usize)
            .copied()
            .unwrap_or(false)
    }

    pub fn stats(&self) -> ConsoleStats {
        lock(&self.0).stats
    }

    pub(crate) fn device(&self) -> Arc<Mutex<Console>> {
        self.0.clone()
    }

    /// A guard for the VM this console is attached to: see [`VmEnd`].
    pub(crate) fn ends_with_vm(&self) -> VmEnd {
        VmEnd(self.0.clone())
    }

    /// The device itself, for tests that drive it without a VM.
    #[doc(hidden)]
    pub fn device_for_tests(&self) -> Arc<Mutex<Console>> {
        self.0.clone()
    }
}

/// Owned by the VM the console is attached to. The device lives as long as
/// any host [`ConsoleSender`] clone, so without this the host's receivers
/// would never disconnect and a host waiting on them could not tell that the
/// VM ended. Dropped with the VM, it closes them (after the bytes already
/// sent, which stay readable) and releases the device's hold on guest memory.
pub(crate) struct VmEnd(Arc<Mutex<Console>>);

impl Drop for VmEnd {
    fn drop(&mut self) {
        let mut console = lock(&self.0);
        console.outputs = None;
        console.live = None;
    }
}

/// Creates the device and its host side.
pub fn console() -> ConsoleHost {
    let (console_tx, console_output) = channel();
    let (bulk_tx, bulk_output) = channel();
    let device = Console {
        live: None,
        outputs: Some([console_tx, bulk_tx]),
        pending_rx: Default::default(),
        pending_control: VecDeque::new(),
        guest_open: [false; PORTS],
        guest_ready: [false; PORTS],
        stats: ConsoleStats::default(),
    };
    ConsoleHost {
        console_output,
        bulk_output,
        sender: ConsoleSender(Arc::new(Mutex::new(device))),
    }
}

fn control_message(port: u32, event: u16, value: u16, tail: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + tail.len());
    m.extend_from_slice(&port.to_le_bytes());
    m.extend_from_slice(&event.to_le_bytes());
    m.extend_from_slice(&value.to_le_bytes());
    m.extend_from_slice(tail);
    m
}

impl Console {
    fn host_send(&mut self, port: usize, bytes: &[u8]) {
        let Some(pending) = self.pending_rx.get_mut(port) else {
            return;
        };
        let room = MAX_PENDING.saturating_sub(pending.len());
        pending.extend(&bytes[..bytes.len().min(room)]);
        self.stats.dropped_host_bytes += bytes.len().saturating_sub(room) as u64;
        self.fill_rx(port);
    }

    /// Moves pending host bytes into the guest's receive buffers for `port`.
    fn fill_rx(&mut self, port: usize) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let Some(queue) = live.queues.get_mut(rx_queue(port)) else {
            return;
        };
        let pending = &mut self.pending_rx[port];
        let mut used = false;
        while !pending.is_empty() {
            let Some(chain) = queue.pop_descriptor_chain(&live.mem) else {
                break;
            };
            let head = chain.head_index();
            let mut written = 0u32;
            for desc in chain {
                if !desc.is_write_only() {
                    self.stats.bad_descriptors += 1;
                    continue;
                }
                let n = (desc.len() as usize).min(pending.len());
                let (a, b) = pending.as_slices();
                let chunk: Vec<u8> = a.iter().chain(b).take(n).copied().collect();
                if live.mem.write_slice(&chunk, desc.addr()).is_err() {
                    self.stats.bad_descriptors += 1;
                    continue;
                }
                pending.drain(..n);
                written += n as u32;
                if pending.is_empty() {
                    break;
                }
            }
            if queue.add_used(&live.mem, head, written).is_err() {
                self.stats.bad_descriptors += 1;
            }
            used = true;
        }
        if used {
            notify_if_needed(live, rx_queue(port));
        }
    }

    /// Reads every chain the guest queued on `index`, returning the bytes of each.
    fn drain_tx(&mut self, index: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Some(live) = self.live.as_mut() else {
            return out;
        };
        let Some(queue) = live.queues.get_mut(index) else {
            return out;
        };
        while let Some(chain) = queue.pop_descriptor_chain(&live.mem) {
            let head = chain.head_index();
            let mut bytes = Vec::new();
            for desc in chain {
                if desc.is_write_only() || bytes.len() + desc.len() as usize > MAX_TX_CHAIN {
                    self.stats.bad_descriptors += 1;
                    continue;
                }
                let start = bytes.len();
                bytes.resize(start + desc.len() as usize, 0);
                if live
                    .mem
                    .read_slice(&mut bytes[start..], desc.addr())
                    .is_err()
                {
                    bytes.truncate(start);
                    self.stats.bad_descriptors += 1;
                }
            }
            if queue.add_used(&live.mem, head, 0).is_err() {
                self.stats.bad_descriptors += 1;
            }
            out.push(bytes);
        }
        if !out.is_empty() {
            notify_if_needed(live, index);
        }
        out
    }

    fn handle_control(&mut self, msg: &[u8]) {
        let (Some(id), Some(event), Some(value)) = (msg.get(0..4), msg.get(4..6), msg.get(6..8))
        else {
            self.stats.bad_control += 1;
            return;
        };
        let id = u32::from_le_bytes([id[0], id[1], id[2], id[3]]);
        let (event, value) = (
            u16::from_le_bytes([event[0], event[1]]),
            u16::from_le_bytes([value[0], value[1]]),
        );
        match (event, id) {
            (DEVICE_READY, _) if value == 1 => {
                for port in 0..PORTS as u32 {
                    self.pending_control
                        .push_back(control_message(port, DEVICE_ADD, 0, &[]));
                }
            }
            (PORT_READY, PORT_CONSOLE) if value == 1 => {
                self.guest_ready[0] = true;
                self.pending_control
                    .push_back(control_message(PORT_CONSOLE, CONSOLE_PORT, 1, &[]));
                self.pending_control
                    .push_back(control_message(PORT_CONSOLE, PORT_OPEN, 1, &[]));
            }
            (PORT_READY, PORT_BULK) if value == 1 => {
                self.guest_ready[1] = true;
                self.pending_control.push_back(control_message(
                    PORT_BULK,
                    PORT_NAME,
                    0,
                    ktstr_wire::BULK_PORT_NAME.as_bytes(),
                ));
                self.pending_control
                    .push_back(control_message(PORT_BULK, PORT_OPEN, 1, &[]));
            }
            (PORT_OPEN, port) if (port as usize) < PORTS => {
                self.guest_open[port as usize] = value == 1;
                self.fill_rx(port as usize);
            }
            _ => self.stats.bad_control += u64::from(event > PORT_NAME),
        }
    }

    fn flush_control(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let Some(queue) = live.queues.get_mut(CONTROL_RX) else {
            return;
        };
        let mut used = false;
        while let Some(msg) = self.pending_control.front() {
            let Some(chain) = queue.pop_descriptor_chain(&live.mem) else {
                break;
            };
            let head = chain.head_index();
            let written = match chain
                .filter(|d| d.is_write_only())
                .find(|d| d.len() as usize >= msg.len())
            {
                Some(desc) if live.mem.write_slice(msg, desc.addr()).is_ok() => msg.len() as u32,
                _ => {
                    self.stats.bad_descriptors += 1;
                    0
                }
            };
            if queue.add_used(&live.mem, head, written).is_err() {
                self.stats.bad_descriptors += 1;
            }
            if written > 0 {
                self.pending_control.pop_front();
            }
            used = true;
        }
        if used {
            notify_if_needed(live, CONTROL_RX);
        }
    }
}

fn notify_if_needed(live: &mut Live, index: usize) {
    let Some(queue) = live.queues.get_mut(index) else {
        return;
    };
    if queue.needs_notification(&live.mem).unwrap_or(true) {
        live.interrupt.signal(INT_VRING);
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        DEVICE_TYPE_CONSOLE
    }

    fn features(&self) -> u64 {
        F_VERSION_1 | F_MULTIPORT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; 2 + 2 * PORTS]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // struct virtio_console_config { cols u16, rows u16, max_nr_ports u32, emerg_wr u32 }
        let mut config = [0u8; 12];
        config[4..8].copy_from_slice(&(PORTS as u32).to_le_bytes());
        for (i, b) in data.iter_mut().enumerate() {
            *b = config.get(offset as usize + i).copied().unwrap_or(0);
        }
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Interrupt,
        _acked: u64,
    ) {
        self.live = Some(Live {
            mem,
            queues,
            interrupt,
        });
    }

    fn queue_notify(&mut self, index: u32) {
        let index = index as usize;
        match index {
            CONTROL_TX => {
                for msg in self.drain_tx(CONTROL_TX) {
                    self.handle_control(&msg);
                }
                self.flush_control();
            }
            CONTROL_RX => self.flush_control(),
            _ => {
                if let Some(port) = (0..PORTS).find(|&p| rx_queue(p) == index) {
                    self.fill_rx(port);
                } else if let Some(port) = (0..PORTS).find(|&p| tx_queue(p) == index) {
                    for bytes in self.drain_tx(index) {
                        if let Some(out) = self.outputs.as_ref().and_then(|o| o.get(port)) {
                            let _ = out.send(bytes); // a dropped receiver just discards output
                        }
                    }
                }
            }
        }
    }

    fn reset(&mut self) {
        self.live = None;
        self.pending_control.clear();
        self.guest_open = [false; PORTS];
        self.guest_ready = [false; PORTS];
    }

    fn queue_states(&self) -> Vec<virtio_queue::QueueState> {
        self.live
            .as_ref()
            .map(|l| l.queues.iter().map(|q| q.state()).collect())
            .unwrap_or_default()
    }

    /// Host bytes not yet delivered, control messages not yet taken, port
    /// flags and counters. The host-side receivers are the restorer's own.
    fn save_state(&self) -> Option<Vec<u8>> {
        let mut w = Writer::default();
        for pending in &self.pending_rx {
            w.bytes(&pending.iter().copied().collect::<Vec<u8>>());
        }
        w.u64(self.pending_control.len() as u64);
        for msg in &self.pending_control {
            w.bytes(msg);
        }
        for flag in self.guest_open.iter().chain(self.guest_ready.iter()) {
            w.u8(u8::from(*flag));
        }
        w.u64(self.stats.bad_descriptors);
        w.u64(self.stats.dropped_host_bytes);
        w.u64(self.stats.bad_control);
        Some(w.buf)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), DeviceStateError> {
        let mut r = Reader::new(state, "virtio-console");
        let mut pending_rx: [VecDeque<u8>; PORTS] = Default::default();
        for pending in pending_rx.iter_mut() {
            pending.extend(r.bytes()?);
        }
        let n = r.len()?;
        let pending_control = (0..n)
            .map(|_| r.bytes().map(<[u8]>::to_vec))
            .collect::<Result<VecDeque<_>, _>>()?;
        let mut flags = [false; 2 * PORTS];
        for f in flags.iter_mut() {
            *f = r.u8()? != 0;
        }
        let stats = ConsoleStats {
            bad_descriptors: r.u64()?,
            dropped_host_bytes: r.u64()?,
            bad_control: r.u64()?,
        };
        r.finish()?;
        self.pending_rx = pending_rx;
        self.pending_control = pending_control;
        self.guest_open.copy_from_slice(&flags[..PORTS]);
        self.guest_ready.copy_from_slice(&flags[PORTS..]);
        self.stats = stats;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_layout_follows_the_multiport_spec() {
        assert_eq!((rx_queue(0), tx_queue(0)), (0, 1));
        assert_eq!((rx_queue(1), tx_queue(1)), (4, 5));
    }

    #[test]
    fn config_space_reports_two_ports() {
        let host = console();
        let device = host.sender.device();
        let mut data = [0u8; 4];
        lock(&device).read_config(4, &mut data);
        assert_eq!(u32::from_le_bytes(data), 2);
        lock(&device).read_config(200, &mut data);
        assert_eq!(data, [0; 4], "out-of-range config reads are zero");
    }
}
