//! Intel MultiProcessor Specification 1.4 table: how a guest without ACPI
//! learns its CPUs, the IOAPIC and ISA interrupt routing.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use super::acpi::sdt::checksum;
use crate::error::{MemoryError, Result, memory_write};
use crate::layout;

/// APIC IDs are 8-bit here and the IOAPIC takes the ID after the last CPU.
pub const MAX_CPUS: usize = 254;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const CPU_STEPPING: u32 = 0x600;
const CPU_FEATURE_APIC: u32 = 0x200;
const CPU_FEATURE_FPU: u32 = 0x001;
const ISA_IRQS: u8 = 16;
const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct FloatingPointer {
    signature: [u8; 4],
    config_table: u32,
    length_paragraphs: u8,
    spec_rev: u8,
    checksum: u8,
    features: [u8; 5],
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct ConfigHeader {
    signature: [u8; 4],
    length: u16,
    spec_rev: u8,
    checksum: u8,
    oem_id: [u8; 8],
    product_id: [u8; 12],
    oem_table: u32,
    oem_table_size: u16,
    entry_count: u16,
    lapic_addr: u32,
    ext_length: u16,
    ext_checksum: u8,
    reserved: u8,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct ProcessorEntry {
    kind: u8,
    apic_id: u8,
    apic_version: u8,
    flags: u8,
    signature: u32,
    features: u32,
    reserved: [u32; 2],
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct BusEntry {
    kind: u8,
    bus_id: u8,
    bus_type: [u8; 6],
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct IoApicEntry {
    kind: u8,
    apic_id: u8,
    version: u8,
    flags: u8,
    addr: u32,
}

/// Both I/O and local interrupt assignment entries share this shape.
#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct InterruptEntry {
    kind: u8,
    irq_type: u8,
    flags: u16,
    src_bus: u8,
    src_irq: u8,
    dst_apic: u8,
    dst_pin: u8,
}

const _: () = assert!(size_of::<FloatingPointer>() == 16);
const _: () = assert!(size_of::<ConfigHeader>() == 44);
const _: () = assert!(size_of::<ProcessorEntry>() == 20);
const _: () = assert!(
    size_of::<BusEntry>() == 8 && size_of::<IoApicEntry>() == 8 && size_of::<InterruptEntry>() == 8
);

/// Builds the table bytes for `cpus` CPUs (APIC IDs 0..cpus) placed at `base`.
pub fn build(cpus: usize, base: u64) -> Result<Vec<u8>> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(MemoryError::MpTableCpus { cpus }.into());
    }
    let ioapic_id = cpus as u8;
    let mut body = Vec::new();
    let mut count = 0u16;
    let mut push = |bytes: &[u8]| {
        body.extend_from_slice(bytes);
        count += 1;
    };
    for cpu in 0..cpus {
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 };
        push(
            ProcessorEntry {
                kind: 0,
                apic_id: cpu as u8,
                apic_version: APIC_VERSION,
                flags,
                signature: CPU_STEPPING,
                features: CPU_FEATURE_APIC | CPU_FEATURE_FPU,
                ..Default::default()
            }
            .as_bytes(),
        );
    }
    push(
        BusEntry {
            kind: 1,
            bus_id: 0,
            bus_type: *b"ISA   ",
        }
        .as_bytes(),
    );
    push(
        IoApicEntry {
            kind: 2,
            apic_id: ioapic_id,
            version: IOAPIC_VERSION,
            flags: 1,
            addr: layout::IOAPIC_ADDR as u32,
        }
        .as_bytes(),
    );
    for irq in 0..ISA_IRQS {
        push(
            InterruptEntry {
                kind: 3,
                irq_type: INT_TYPE_INT,
                src_irq: irq,
                dst_apic: ioapic_id,
                dst_pin: irq,
                ..Default::default()
            }
            .as_bytes(),
        );
    }
    push(
        InterruptEntry {
            kind: 4,
            irq_type: INT_TYPE_EXTINT,
            dst_apic: 0xff,
            dst_pin: 0,
            ..Default::default()
        }
        .as_bytes(),
    );
    push(
        InterruptEntry {
            kind: 4,
            irq_type: INT_TYPE_NMI,
            dst_apic: 0xff,
            dst_pin: 1,
            ..Default::default()
        }
        .as_bytes(),
    );

    let fp_len = size_of::<FloatingPointer>() as u64;
    let mut header = ConfigHeader {
        signature: *b"PCMP",
        length: (size_of::<ConfigHeader>() + body.len()) as u16,
        spec_rev: 4,
        oem_id: *b"KTSTR   ",
        product_id: *b"KTSTR-VMM   ",
        entry_count: count,
        lapic_addr: layout::LAPIC_ADDR as u32,
        ..Default::default()
    };
    let mut table = header.as_bytes().to_vec();
    table.extend_from_slice(&body);
    header.checksum = checksum(&table);
    table[..size_of::<ConfigHeader>()].copy_from_slice(header.as_bytes());

    let mut fp = FloatingPointer {
        signature: *b"_MP_",
        config_table: (base + fp_len) as u32,
        length_paragraphs: 1,
        spec_rev: 4,
        ..Default::default()
    };
    fp.checksum = checksum(fp.as_bytes());
    let mut out = fp.as_bytes().to_vec();
    out.extend_from_slice(&table);
    Ok(out)
}

/// Writes the table at the start of the EBDA, inside the e820 reserved range.
pub fn write(mem: &GuestMemoryMmap, cpus: usize) -> Result<()> {
    let bytes = build(cpus, layout::EBDA_START)?;
    if layout::EBDA_START + bytes.len() as u64 > layout::HIMEM_START {
        return Err(MemoryError::MpTableOverflow { len: bytes.len() }.into());
    }
    mem.write_slice(&bytes, GuestAddress(layout::EBDA_START))
        .map_err(memory_write("MP table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    #[test]
    fn checksums_and_counts_are_valid() {
        for cpus in [1, 2, 64, 254] {
            let t = build(cpus, layout::EBDA_START).expect("table");
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(sum(&t[..16]), 0, "floating pointer checksum");
            let cfg = &t[16..];
            let len = u16::from_le_bytes([cfg[4], cfg[5]]) as usize;
            assert_eq!(len, cfg.len());
            assert_eq!(sum(cfg), 0, "config table checksum");
            assert_eq!(
                u16::from_le_bytes([cfg[34], cfg[35]]) as usize,
                cpus + 2 + 16 + 2
            );
            let pointer = u32::from_le_bytes([t[4], t[5], t[6], t[7]]) as u64;
            assert_eq!(pointer, layout::EBDA_START + 16);
            // The first processor entry is the BSP, the rest are not.
            assert_eq!(cfg[44 + 3], CPU_ENABLED | CPU_BOOTPROCESSOR);
            if cpus > 1 {
                assert_eq!((cfg[44 + 20 + 1], cfg[44 + 20 + 3]), (1, CPU_ENABLED));
            }
        }
    }

    #[test]
    fn impossible_cpu_counts_are_rejected() {
        assert!(build(0, 0).is_err());
        assert!(build(255, 0).is_err());
    }
}
