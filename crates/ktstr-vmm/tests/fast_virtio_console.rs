//! Fast tier: the virtio-mmio console driven from the test the way a guest
//! driver drives it: registers over MMIO, descriptor tables and rings written
//! into guest memory, notifications, interrupts observed on the irqfd. Also
//! hostile drivers: loops, out-of-range buffers, wrong directions, zero
//! lengths and bogus ring indices must neither panic nor hang the VMM.
//! No KVM needed: the device runs on plain guest memory.

use std::time::Duration;

use ktstr_vmm::devices::virtio::mmio::MmioTransport;
use ktstr_vmm::devices::virtio::{Interrupt, console};
use ktstr_vmm::{IoDevice, PORT_BULK, PORT_CONSOLE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const QSIZE: u16 = 16;
const VIRTQ_DESC_F_NEXT: u16 = 1;
const VIRTQ_DESC_F_WRITE: u16 = 2;
const QUEUES: usize = 6;
/// Each queue gets a 64 KiB area: desc table, avail ring, used ring.
const RING_AREA: u64 = 0x10_0000;
const BUF_AREA: u64 = 0x20_0000;

struct Driver {
    mem: GuestMemoryMmap,
    dev: MmioTransport<console::Console>,
    irq: EventFd,
    avail_idx: [u16; QUEUES],
    used_seen: [u16; QUEUES],
    next_buf: u64,
}

fn desc_table(q: usize) -> u64 {
    RING_AREA + q as u64 * 0x1_0000
}
fn avail_ring(q: usize) -> u64 {
    desc_table(q) + 0x1000
}
fn used_ring(q: usize) -> u64 {
    desc_table(q) + 0x2000
}

impl Driver {
    fn new() -> (Self, console::ConsoleHost) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).expect("memory");
        let host = console::console();
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let dev = MmioTransport::new(
            host.sender.device_for_tests(),
            mem.clone(),
            Interrupt::new(irq.try_clone().expect("clone")),
        );
        (
            Self {
                mem,
                dev,
                irq,
                avail_idx: [0; QUEUES],
                used_seen: [0; QUEUES],
                next_buf: BUF_AREA,
            },
            host,
        )
    }

    fn read32(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn write32(&mut self, off: u64, v: u32) {
        self.dev.write(off, &v.to_le_bytes());
    }

    /// The Linux driver's probe, in order (VIRTIO 1.2 section 3.1.1).
    fn probe(&mut self) {
        assert_eq!(self.read32(0x000), 0x7472_6976, "magic");
        assert_eq!(self.read32(0x004), 2, "modern transport");
        assert_eq!(self.read32(0x008), 3, "console");
        self.write32(0x070, 0); // reset
        self.write32(0x070, 1); // ACKNOWLEDGE
        self.write32(0x070, 1 | 2); // DRIVER
        self.write32(0x014, 0);
        let low = self.read32(0x010);
        self.write32(0x014, 1);
        let high = self.read32(0x010);
        assert_ne!(low & 2, 0, "MULTIPORT offered");
        assert_ne!(high & 1, 0, "VERSION_1 offered");
        self.write32(0x024, 0);
        self.write32(0x020, low);
        self.write32(0x024, 1);
        self.write32(0x020, high);
        self.write32(0x070, 1 | 2 | 8); // FEATURES_OK
        assert_ne!(self.read32(0x070) & 8, 0, "FEATURES_OK accepted");
        let mut ports = [0u8; 4];
        self.dev.read(0x100 + 4, &mut ports);
        assert_eq!(u32::from_le_bytes(ports), 2, "max_nr_ports");
        for q in 0..QUEUES {
            self.write32(0x030, q as u32);
            assert!(self.read32(0x034) >= u32::from(QSIZE));
            self.write32(0x038, u32::from(QSIZE));
            for (reg, addr) in [
                (0x080, desc_table(q)),
                (0x090, avail_ring(q)),
                (0x0a0, used_ring(q)),
            ] {
                self.write32(reg, addr as u32);
                self.write32(reg + 4, (addr >> 32) as u32);
            }
            self.write32(0x044, 1);
        }
        self.write32(0x070, 1 | 2 | 8 | 4); // DRIVER_OK
        assert_eq!(self.read32(0x070) & 0x80, 0, "not FAILED");
    }

    fn alloc(&mut self, len: u64) -> u64 {
        let a = self.next_buf;
        self.next_buf += len.max(1).next_multiple_of(64);
        a
    }

    /// Writes a chain of (addr, len, flags) at descriptor slot `first` and makes it available.
    fn post_chain(&mut self, q: usize, first: u16, descs: &[(u64, u32, u16)]) {
        for (i, (addr, len, flags)) in descs.iter().enumerate() {
            let slot = first + i as u16;
            let next = if i + 1 < descs.len() {
                (slot + 1) % QSIZE
            } else {
                0
            };
            let flags = if i + 1 < descs.len() {
                flags | VIRTQ_DESC_F_NEXT
            } else {
                *flags
            };
            self.write_desc(q, slot, *addr, *len, flags, next);
        }
        self.make_available(q, first);
    }

    fn write_desc(&mut self, q: usize, slot: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = desc_table(q) + u64::from(slot) * 16;
        self.mem.write_obj(addr, GuestAddress(d)).expect("desc");
        self.mem.write_obj(len, GuestAddress(d + 8)).expect("desc");
        self.mem
            .write_obj(flags, GuestAddress(d + 12))
            .expect("desc");
        self.mem
            .write_obj(next, GuestAddress(d + 14))
            .expect("desc");
    }

    fn make_available(&mut self, q: usize, head: u16) {
        let idx = self.avail_idx[q];
        self.mem
            .write_obj(
                head,
                GuestAddress(avail_ring(q) + 4 + u64::from(idx % QSIZE) * 2),
            )
            .expect("ring");
        self.avail_idx[q] = idx.wrapping_add(1);
        self.mem
            .write_obj(self.avail_idx[q], GuestAddress(avail_ring(q) + 2))
            .expect("idx");
    }

    fn notify(&mut self, q: usize) {
        self.write32(0x050, q as u32);
    }

    /// Used elements published since the last call: (head, len).
    fn take_used(&mut self, q: usize) -> Vec<(u32, u32)> {
        let idx: u16 = self
            .mem
            .read_obj(GuestAddress(used_ring(q) + 2))
            .expect("used idx");
        let mut out = Vec::new();
        while self.used_seen[q] != idx {
            let e = used_ring(q) + 4 + u64::from(self.used_seen[q] % QSIZE) * 8;
            out.push((
                self.mem.read_obj(GuestAddress(e)).expect("id"),
                self.mem.read_obj(GuestAddress(e + 4)).expect("len"),
            ));
            self.used_seen[q] = self.used_seen[q].wrapping_add(1);
        }
        out
    }

    fn interrupts(&mut self) -> u64 {
        self.irq.read().unwrap_or(0)
    }

    fn control(&mut self, port: u32, event: u16, value: u16) {
        let a = self.alloc(8);
        let mut m = port.to_le_bytes().to_vec();
        m.extend_from_slice(&event.to_le_bytes());
        m.extend_from_slice(&value.to_le_bytes());
        self.mem.write_slice(&m, GuestAddress(a)).expect("control");
        let slot = self.avail_idx[3] % QSIZE;
        self.post_chain(3, slot, &[(a, 8, 0)]);
        self.notify(3);
    }

    /// Offers `n` writable 64-byte buffers on queue `q`; returns their addresses.
    fn offer_rx(&mut self, q: usize, n: u16) -> Vec<u64> {
        (0..n)
            .map(|_| {
                let a = self.alloc(64);
                let slot = self.avail_idx[q] % QSIZE;
                self.post_chain(q, slot, &[(a, 64, VIRTQ_DESC_F_WRITE)]);
                a
            })
            .collect()
    }

    /// Control messages the device sent: (port, event, value, tail).
    fn control_messages(&mut self, bufs: &[u64]) -> Vec<(u32, u16, u16, Vec<u8>)> {
        self.take_used(2)
            .into_iter()
            .map(|(head, len)| {
                let mut m = vec![0u8; len as usize];
                self.mem
                    .read_slice(&mut m, GuestAddress(bufs[head as usize]))
                    .expect("read");
                let port = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
                (
                    port,
                    u16::from_le_bytes([m[4], m[5]]),
                    u16::from_le_bytes([m[6], m[7]]),
                    m[8..].to_vec(),
                )
            })
            .collect()
    }

    /// Full multiport bring-up; returns once both ports are announced.
    fn bring_up(&mut self) {
        self.probe();
        let bufs = self.offer_rx(2, QSIZE);
        self.notify(2);
        self.control(0, 0, 1); // DEVICE_READY
        let adds = self.control_messages(&bufs);
        assert_eq!(
            adds.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
            vec![(0, 1), (1, 1)],
            "DEVICE_ADD per port"
        );
        self.control(0, 3, 1); // PORT_READY 0
        self.control(1, 3, 1); // PORT_READY 1
        let msgs = self.control_messages(&bufs);
        assert!(
            msgs.contains(&(0, 4, 1, vec![])),
            "port 0 is the console: {msgs:?}"
        );
        assert!(
            msgs.contains(&(1, 7, 0, b"ktstr.bulk".to_vec())),
            "port 1 is named ktstr.bulk: {msgs:?}"
        );
        assert!(
            msgs.contains(&(1, 6, 1, vec![])),
            "host side of port 1 is open"
        );
        assert!(
            self.interrupts() > 0,
            "control messages raised the interrupt"
        );
    }
}

#[test]
fn multiport_bring_up_names_the_bulk_port() {
    let (mut d, host) = Driver::new();
    d.bring_up();
    assert!(host.sender.guest_ready(PORT_CONSOLE) && host.sender.guest_ready(PORT_BULK));
    d.control(1, 6, 1); // the guest opens /dev/vport0p1
    assert!(host.sender.guest_opened(PORT_BULK));
    assert_eq!(host.sender.stats(), Default::default());
}

#[test]
fn guest_to_host_on_both_ports() {
    let (mut d, host) = Driver::new();
    d.bring_up();
    for (port, txq, text) in [
        (PORT_CONSOLE, 1usize, &b"console says hi"[..]),
        (PORT_BULK, 5, &b"bulk frame bytes"[..]),
    ] {
        // A two-descriptor readable chain: the device must join it.
        let (a, b) = (d.alloc(8), d.alloc(64));
        d.mem.write_slice(&text[..5], GuestAddress(a)).expect("w");
        d.mem.write_slice(&text[5..], GuestAddress(b)).expect("w");
        let slot = d.avail_idx[txq] % QSIZE;
        d.post_chain(txq, slot, &[(a, 5, 0), (b, (text.len() - 5) as u32, 0)]);
        d.interrupts();
        d.notify(txq);
        let rx = if port == PORT_CONSOLE {
            &host.console_output
        } else {
            &host.bulk_output
        };
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).expect("output"),
            text
        );
        assert_eq!(d.take_used(txq), vec![(u32::from(slot), 0)]);
        assert!(d.interrupts() > 0);
    }
}

#[test]
fn host_to_guest_on_both_ports_buffered_until_the_guest_has_room() {
    let (mut d, host) = Driver::new();
    host.sender
        .send(PORT_BULK, b"early: before the driver exists");
    d.bring_up();
    for (port, rxq) in [(PORT_CONSOLE, 0usize), (PORT_BULK, 4)] {
        let bufs = d.offer_rx(rxq, 1);
        d.notify(rxq);
        let msg: &[u8] = if port == PORT_BULK {
            b"early: before the driver exists"
        } else {
            b"to the console"
        };
        if port == PORT_CONSOLE {
            host.sender.send(port, msg);
        }
        let used = d.take_used(rxq);
        assert_eq!(used.len(), 1, "{used:?}");
        let mut got = vec![0u8; used[0].1 as usize];
        d.mem
            .read_slice(&mut got, GuestAddress(bufs[0]))
            .expect("r");
        assert_eq!(got, msg);
    }
    // More than one buffer's worth spans buffers in order.
    let bufs = d.offer_rx(4, 3);
    let big: Vec<u8> = (0..150u8).collect();
    host.sender.send(PORT_BULK, &big);
    let used = d.take_used(4);
    let mut got = Vec::new();
    for (i, (_, len)) in used.iter().enumerate() {
        let mut part = vec![0u8; *len as usize];
        d.mem
            .read_slice(&mut part, GuestAddress(bufs[i]))
            .expect("r");
        got.extend(part);
    }
    assert_eq!(got, big);
}

#[test]
fn hostile_chains_neither_panic_nor_hang() {
    let (mut d, host) = Driver::new();
    d.bring_up();
    let good = d.alloc(4);
    d.mem.write_slice(b"good", GuestAddress(good)).expect("w");
    // 1. A descriptor loop: 0 -> 1 -> 0 -> ...
    d.write_desc(5, 0, good, 4, VIRTQ_DESC_F_NEXT, 1);
    d.write_desc(5, 1, good, 4, VIRTQ_DESC_F_NEXT, 0);
    d.make_available(5, 0);
    // 2. An address far outside guest memory.
    d.post_chain(5, 2, &[(0xdead_0000_0000, 4096, 0)]);
    // 3. Wrong direction on a transmit queue (write-only descriptor).
    d.post_chain(5, 3, &[(good, 4, VIRTQ_DESC_F_WRITE)]);
    // 4. Zero length.
    d.post_chain(5, 4, &[(good, 0, 0)]);
    // 5. A length that runs past the end of memory.
    d.post_chain(5, 5, &[((16 << 20) - 2, 64, 0)]);
    // 6. A next index beyond the queue size.
    d.write_desc(5, 6, good, 4, VIRTQ_DESC_F_NEXT, 999);
    d.make_available(5, 6);
    // 7. A length claiming 4 GiB: must not make the VMM allocate it.
    d.post_chain(5, 7, &[(good, u32::MAX, 0)]);
    // 8. A head index beyond the queue size.
    d.make_available(5, 0xffff);
    d.notify(5);
    let used = d.take_used(5);
    assert!(used.len() >= 7, "every sane head is returned: {used:?}");
    assert!(
        host.sender.stats().bad_descriptors >= 3,
        "{:?}",
        host.sender.stats()
    );
    // Receive side: a read-only descriptor where a writable one is required.
    let ro = d.alloc(64);
    d.post_chain(4, 0, &[(ro, 64, 0)]);
    d.notify(4);
    host.sender.send(PORT_BULK, b"x");
    // A wildly wrong avail index, then a notify on a queue that does not exist.
    d.mem
        .write_obj(0x7fffu16, GuestAddress(avail_ring(5) + 2))
        .expect("w");
    d.notify(5);
    d.notify(99);
    // Garbage control messages.
    d.control(77, 0xffff, 3);
    d.control(1, 6, 1);
    // The device still works afterwards on another port.
    let a = d.alloc(16);
    d.mem
        .write_slice(b"still alive", GuestAddress(a))
        .expect("w");
    let slot = d.avail_idx[1] % QSIZE;
    d.post_chain(1, slot, &[(a, 11, 0)]);
    d.notify(1);
    let out: Vec<u8> = std::iter::from_fn(|| host.console_output.try_recv().ok())
        .flatten()
        .collect();
    assert_eq!(out, b"still alive");
}

#[test]
fn reset_and_invalid_queues_are_handled() {
    let (mut d, _host) = Driver::new();
    d.probe();
    d.write32(0x070, 0);
    assert_eq!(d.read32(0x070), 0, "reset clears status");
    // DRIVER_OK with a queue whose rings lie outside memory must fail cleanly.
    d.write32(0x070, 1 | 2);
    d.write32(0x024, 1);
    d.write32(0x020, 1);
    d.write32(0x070, 1 | 2 | 8);
    d.write32(0x030, 0);
    d.write32(0x038, 16);
    d.write32(0x080, 0);
    d.write32(0x084, 0xffff);
    d.write32(0x044, 1);
    d.write32(0x070, 1 | 2 | 8 | 4);
    assert_ne!(d.read32(0x070) & 0x80, 0, "FAILED set");
    d.notify(0);
    // Odd access sizes are ignored.
    d.dev.write(0x070, &[1]);
    let mut two = [0u8; 2];
    d.dev.read(0x000, &mut two);
    assert_eq!(two, [0, 0]);
}

/// Snapshot support: the transport's registers, the live queues' indices and
/// the console's undelivered bytes move to a new transport over a copy of
/// guest memory (what a restore does), and the driver carries on there.
#[test]
fn transport_and_console_state_move_to_a_restored_device() {
    let (mut d, _old_host) = Driver::new();
    d.bring_up();
    d.control(1, 6, 1); // the guest opened the bulk port
    _old_host
        .sender
        .send(PORT_BULK, b"pending across the snapshot");
    let state = d.dev.save_state().expect("the console can be snapshotted");

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).expect("memory");
    let mut bytes = vec![0u8; 16 << 20];
    d.mem.read_slice(&mut bytes, GuestAddress(0)).expect("read");
    mem.write_slice(&bytes, GuestAddress(0)).expect("write");
    let host = console::console();
    let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
    let mut dev = MmioTransport::new(
        host.sender.device_for_tests(),
        mem.clone(),
        Interrupt::new(irq.try_clone().expect("clone")),
    );
    dev.restore_state(&state).expect("restore");
    let (avail_idx, used_seen, next_buf) = (d.avail_idx, d.used_seen, d.next_buf);
    let mut d = Driver {
        mem,
        dev,
        irq,
        avail_idx,
        used_seen,
        next_buf,
    };
    assert_eq!(d.read32(0x070), 1 | 2 | 8 | 4, "still DRIVER_OK");
    assert!(host.sender.guest_ready(PORT_BULK) && host.sender.guest_opened(PORT_BULK));

    // The bytes queued before the snapshot reach the restored guest.
    let bufs = d.offer_rx(4, 1);
    d.notify(4);
    let used = d.take_used(4);
    assert_eq!(used.len(), 1, "{used:?}");
    let mut got = vec![0u8; used[0].1 as usize];
    d.mem
        .read_slice(&mut got, GuestAddress(bufs[0]))
        .expect("r");
    assert_eq!(got, b"pending across the snapshot");

    // Guest output after the restore goes to the new host side.
    let a = d.alloc(16);
    d.mem
        .write_slice(b"after restore", GuestAddress(a))
        .expect("w");
    let slot = d.avail_idx[1] % QSIZE;
    d.post_chain(1, slot, &[(a, 13, 0)]);
    d.notify(1);
    assert_eq!(
        host.console_output
            .recv_timeout(Duration::from_secs(1))
            .expect("output"),
        b"after restore"
    );
    assert_eq!(d.take_used(1), vec![(u32::from(slot), 0)]);
}
