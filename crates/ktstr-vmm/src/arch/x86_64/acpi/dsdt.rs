//! The DSDT: the devices whose interrupts Linux must route itself.
//!
//! The FADT is hardware-reduced, and Linux then runs without a legacy PIC
//! (`acpi_reduced_hw_init`: `legacy_pic = &null_legacy_pic`): ISA IRQs
//! 0-15 are *not* pre-mapped to IOAPIC pins, and an IRQ number that no
//! firmware table describes (such as the `:5` of `virtio_mmio.device=`) has
//! no interrupt descriptor, so `request_irq` fails with -EINVAL ("Error -22
//! initializing vqs"). So every interrupting device is described here with
//! its GSI, which Linux maps through `acpi_register_gsi`: the UARTs
//! (`PNP0501`, claimed by 8250_pnp) and each virtio-mmio device
//! (`LNRO0005`, virtio_mmio's ACPI id; the kernel command line must not
//! declare it a second time).

use super::sdt;
use crate::devices::serial::{COM1_BASE, COM1_IRQ, COM2_BASE, COM2_IRQ};

/// Revision 2 makes AML integers 64-bit.
const DSDT_REVISION: u8 = 2;
/// A virtio-mmio register window (virtio 1.x, one page).
const VIRTIO_MMIO_LEN: u32 = 0x1000;
/// A 16550 UART's eight I/O ports.
const UART_PORTS: u8 = 8;

/// A virtio-mmio device: its register window and the GSI (IOAPIC pin) it
/// interrupts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Guest-physical base of its registers.
    pub base: u64,
    /// IOAPIC pin, edge-triggered, active high (what an irqfd raises).
    pub gsi: u32,
}

/// The DSDT for the UARTs plus `virtio`.
pub fn dsdt(virtio: &[VirtioMmioDevice]) -> Vec<u8> {
    let mut devices = Vec::new();
    for (name, base, irq) in [
        (*b"COM1", COM1_BASE, COM1_IRQ),
        (*b"COM2", COM2_BASE, COM2_IRQ),
    ] {
        devices.extend(uart(name, base as u16, irq as u8));
    }
    for (i, v) in virtio.iter().enumerate() {
        devices.extend(virtio_mmio(i as u8, v));
    }
    // Scope (\_SB) { devices }
    let mut scope = b"\\_SB_".to_vec();
    scope.extend(devices);
    sdt::table(b"DSDT", DSDT_REVISION, &package(&[0x10], &scope))
}

/// Device (COMn) { _HID "PNP0501", _UID n, _CRS { IO, IRQNoFlags } }
fn uart(name: [u8; 4], base: u16, irq: u8) -> Vec<u8> {
    let [lo, hi] = base.to_le_bytes();
    let mask = (1u16 << irq).to_le_bytes();
    // IO (Decode16, base, base, 1, 8); IRQNoFlags () {irq} (edge, active high).
    let crs = [
        0x47, 0x01, lo, hi, lo, hi, 0x01, UART_PORTS, 0x22, mask[0], mask[1],
    ];
    device(name, "PNP0501", name[3] - b'0', &crs)
}

/// Device (VRnn) { _HID "LNRO0005", _UID n, _CRS { Memory32Fixed, Interrupt } }
fn virtio_mmio(index: u8, v: &VirtioMmioDevice) -> Vec<u8> {
    let mut crs = vec![0x86, 0x09, 0x00, 0x01]; // Memory32Fixed (ReadWrite, ...)
    crs.extend((v.base as u32).to_le_bytes());
    crs.extend(VIRTIO_MMIO_LEN.to_le_bytes());
    // Extended Interrupt: consumer, edge, active high, exclusive; one GSI.
    crs.extend([0x89, 0x06, 0x00, 0x03, 0x01]);
    crs.extend(v.gsi.to_le_bytes());
    let name = [b'V', b'R', b'0' + index / 10, b'0' + index % 10];
    device(name, "LNRO0005", index, &crs)
}

/// Device (name) { Name (_HID, hid) Name (_UID, uid) Name (_CRS, Buffer) }
/// with `resources` closed by an end tag.
fn device(name: [u8; 4], hid: &str, uid: u8, resources: &[u8]) -> Vec<u8> {
    let mut body = name.to_vec();
    body.extend(b"\x08_HID\x0d");
    body.extend(hid.as_bytes());
    body.push(0);
    body.extend(b"\x08_UID\x0a");
    body.push(uid);
    let mut template = resources.to_vec();
    template.extend([0x79, 0x00]); // End tag; checksum 0 = "not checked".
    // Buffer (ByteConst size) { template }
    let mut buffer = vec![0x0a, template.len() as u8];
    buffer.extend(template);
    body.extend(b"\x08_CRS");
    body.extend(package(&[0x11], &buffer));
    package(&[0x5b, 0x82], &body)
}

/// `op`, the AML PkgLength of `content`, then `content`.
fn package(op: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = op.to_vec();
    out.extend(pkg_length(content.len()));
    out.extend(content);
    out
}

/// AML PkgLength (ACPI 6.3 section 20.2.4): the length counts its own
/// encoding; one byte below 64, else a lead byte with the low nibble and
/// the byte count in bits 6-7, then the remaining bits 8 at a time.
fn pkg_length(content: usize) -> Vec<u8> {
    if content + 1 < 0x40 {
        return vec![(content + 1) as u8];
    }
    let (extra, total) = if content + 2 < 0x1000 {
        (1, content + 2)
    } else {
        (2, content + 3)
    };
    let mut out = vec![((extra as u8) << 6) | (total & 0xf) as u8];
    out.extend((0..extra).map(|i| (total >> (4 + 8 * i)) as u8));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_counts_its_own_bytes() {
        assert_eq!(pkg_length(5), [6]);
        assert_eq!(pkg_length(62), [63]);
        // 63 + 2 = 65 = 0x41: lead 0x40 | 1, then 0x4.
        assert_eq!(pkg_length(63), [0x41, 0x04]);
        assert_eq!(pkg_length(0x1000), [0x83, 0x00, 0x01]);
    }

    #[test]
    fn virtio_mmio_device_carries_its_window_and_gsi() {
        let dev = virtio_mmio(
            0,
            &VirtioMmioDevice {
                base: 0xd000_0000,
                gsi: 5,
            },
        );
        let find = |needle: &[u8]| dev.windows(needle.len()).any(|w| w == needle);
        assert!(find(b"VR00\x08_HID\x0dLNRO0005\x00"), "{dev:x?}");
        assert!(find(&[
            0x86, 0x09, 0x00, 0x01, 0, 0, 0, 0xd0, 0, 0x10, 0, 0
        ]));
        assert!(find(&[0x89, 0x06, 0x00, 0x03, 0x01, 5, 0, 0, 0, 0x79, 0]));
    }
}
