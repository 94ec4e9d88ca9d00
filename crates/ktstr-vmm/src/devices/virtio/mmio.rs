//! virtio-mmio transport, version 2 (modern), as in the VIRTIO 1.2 spec
//! section 4.2.2. Registers are 32-bit; other access sizes read as zero and
//! are ignored on write. Nothing the driver writes can panic the VMM: queue
//! addresses are only used once the queue validates against guest memory.

use std::sync::{Arc, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;

use super::{Interrupt, VirtioDevice};
use crate::devices::bus::DeviceStateError;
use crate::devices::bus::{IoAction, IoDevice};
use crate::snapshot::codec::{Reader, Writer};

pub const MMIO_LEN: u64 = 0x1000;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x4b54_5354; // "KTST"
const CONFIG_SPACE: u64 = 0x100;

const STATUS_ACKNOWLEDGE: u32 = 1;
const STATUS_DRIVER: u32 = 2;
const STATUS_DRIVER_OK: u32 = 4;
const STATUS_FEATURES_OK: u32 = 8;
const STATUS_FAILED: u32 = 0x80;

pub struct MmioTransport<D: VirtioDevice> {
    device: Arc<Mutex<D>>,
    mem: GuestMemoryMmap,
    interrupt: Interrupt,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    activated: bool,
}

fn lock<D>(d: &Mutex<D>) -> MutexGuard<'_, D> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_queues(sizes: &[u16]) -> Vec<Queue> {
    sizes.iter().filter_map(|&s| Queue::new(s).ok()).collect()
}

impl<D: VirtioDevice> MmioTransport<D> {
    pub fn new(device: Arc<Mutex<D>>, mem: GuestMemoryMmap, interrupt: Interrupt) -> Self {
        let queues = new_queues(lock(&device).queue_max_sizes());
        Self {
            device,
            mem,
            interrupt,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            activated: false,
        }
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        if self.activated {
            return None; // queue registers are read-only once live
        }
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn read_reg(&self, offset: u64) -> u32 {
        let device = lock(&self.device);
        let queue = self.queues.get(self.queue_sel as usize);
        match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => device.device_type(),
            0x00c => VENDOR,
            0x010 => match self.device_features_sel {
                0 => device.features() as u32,
                1 => (device.features() >> 32) as u32,
                _ => 0,
            },
            0x034 => queue.map_or(0, |q| u32::from(q.max_size())),
            0x044 => queue.map_or(0, |q| u32::from(q.ready())),
            0x060 => self.interrupt.status(),
            0x070 => self.status,
            0x0fc => 0, // config generation: the config never changes under the driver
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            0x014 => self.device_features_sel = v,
            0x020 => {
                let offered = lock(&self.device).features();
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
                self.driver_features &= offered;
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 => {
                if let Some(q) = self.selected_queue() {
                    q.set_size(v as u16);
                }
            }
            0x044 => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(v == 1);
                }
            }
            0x050 if self.activated => lock(&self.device).queue_notify(v),
            0x064 => self.interrupt.ack(v),
            0x070 => self.write_status(v),
            0x080 | 0x084 | 0x090 | 0x094 | 0x0a0 | 0x0a4 => {
                let (low, high) = if offset & 4 == 0 {
                    (Some(v), None)
                } else {
                    (None, Some(v))
                };
                if let Some(q) = self.selected_queue() {
                    match offset & !4 {
                        0x080 => q.set_desc_table_address(low, high),
                        0x090 => q.set_avail_ring_address(low, high),
                        _ => q.set_used_ring_address(low, high),
                    }
                }
            }
            _ => {}
        }
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            lock(&self.device).reset();
            self.queues = new_queues(lock(&self.device).queue_max_sizes());
            (self.status, self.activated, self.driver_features) = (0, false, 0);
            self.interrupt.ack(u32::MAX);
            return;
        }
        // FEATURES_OK only sticks when the driver accepted VERSION_1.
        let mut v = v;
        if v & STATUS_FEATURES_OK != 0 && self.driver_features & super::F_VERSION_1 == 0 {
            v &= !STATUS_FEATURES_OK;
        }
        self.status = v;
        let ready = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
        if !self.activated && v & ready == ready {
            let queues = std::mem::take(&mut self.queues);
            if queues
                .iter()
                .filter(|q| q.ready())
                .all(|q| q.is_valid(&self.mem))
            {
                lock(&self.device).activate(
                    self.mem.clone(),
                    queues,
                    self.interrupt.clone(),
                    self.driver_features,
                );
                self.activated = true;
            } else {
                tracing::warn!("virtio-mmio: driver set DRIVER_OK with an invalid queue");
                self.status |= STATUS_FAILED;
                self.queues = new_queues(lock(&self.device).queue_max_sizes());
            }
        }
    }
}

impl<D: VirtioDevice> IoDevice for MmioTransport<D> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= CONFIG_SPACE {
            lock(&self.device).read_config(offset - CONFIG_SPACE, data);
        } else if data.len() == 4 {
            data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> IoAction {
        if offset < CONFIG_SPACE {
            if let Ok(bytes) = <[u8; 4]>::try_from(data) {
                self.write_reg(offset, u32::from_le_bytes(bytes));
            }
        }
        IoAction::Continue
    }

    /// Registers, InterruptStatus, every queue (the transport's before
    /// activation, the device's after) and the device's own state.
    fn save_state(&self) -> Option<Vec<u8>> {
        let device = lock(&self.device);
        let device_state = device.save_state()?;
        let queues = if self.activated {
            device.queue_states()
        } else {
            self.queues.iter().map(|q| q.state()).collect()
        };
        let mut w = Writer::default();
        for v in [
            self.queue_sel,
            self.device_features_sel,
            self.driver_features_sel,
            self.status,
            self.interrupt.status(),
        ] {
            w.u32(v);
        }
        w.u64(self.driver_features);
        w.u8(u8::from(self.activated));
        w.u64(queues.len() as u64);
        for q in &queues {
            for v in [q.max_size, q.next_avail, q.next_used, q.size] {
                w.u32(u32::from(v));
            }
            w.u8(u8::from(q.event_idx_enabled));
            w.u8(u8::from(q.ready));
            for v in [q.desc_table, q.avail_ring, q.used_ring] {
                w.u64(v);
            }
        }
        w.bytes(&device_state);
        Some(w.buf)
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), DeviceStateError> {
        self.restore(state)
    }
}

impl<D: VirtioDevice> MmioTransport<D> {
    fn restore(&mut self, state: &[u8]) -> Result<(), DeviceStateError> {
        let bad = |what: String| crate::SnapshotError::Malformed(format!("virtio-mmio: {what}"));
        let mut r = Reader::new(state, "virtio-mmio");
        let (queue_sel, device_features_sel, driver_features_sel, status, int_status) =
            (r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        let driver_features = r.u64()?;
        let activated = r.u8()? != 0;
        let n = r.len()?;
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            let narrow = |v: u32| u16::try_from(v).map_err(|_| bad(format!("queue field {v}")));
            let q = QueueState {
                max_size: narrow(r.u32()?)?,
                next_avail: narrow(r.u32()?)?,
                next_used: narrow(r.u32()?)?,
                size: narrow(r.u32()?)?,
                event_idx_enabled: r.u8()? != 0,
                ready: r.u8()? != 0,
                desc_table: r.u64()?,
                avail_ring: r.u64()?,
                used_ring: r.u64()?,
            };
            queues.push(Queue::try_from(q).map_err(|e| bad(format!("queue: {e:?}")))?);
        }
        let device_state = r.bytes()?.to_vec();
        r.finish()?;
        if activated
            && !queues
                .iter()
                .filter(|q| q.ready())
                .all(|q| q.is_valid(&self.mem))
        {
            return Err(bad("a live queue does not fit guest memory".into()).into());
        }
        (
            self.queue_sel,
            self.device_features_sel,
            self.driver_features_sel,
        ) = (queue_sel, device_features_sel, driver_features_sel);
        (self.status, self.driver_features, self.activated) = (status, driver_features, activated);
        self.interrupt.set_status(int_status);
        let mut device = lock(&self.device);
        if activated {
            device.activate(
                self.mem.clone(),
                queues,
                self.interrupt.clone(),
                driver_features,
            );
            self.queues = Vec::new();
        } else {
            self.queues = queues;
        }
        device.restore_state(&device_state)
    }
}
