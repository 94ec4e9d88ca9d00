//! MADT: a Local APIC entry per vCPU whose ID fits xAPIC, a Local x2APIC
//! entry for every vCPU, the IOAPIC and the IRQ0 -> GSI2 override. Linux
//! ignores x2APIC entries below 255 when Local APIC entries are present,
//! so the two sets do not double-count.

use ktstr_topology::{MAX_XAPIC_ID, NumaTopology};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use super::sdt;
use crate::layout;

const MADT_REVISION: u8 = 5;
const PCAT_COMPAT: u32 = 1;
const ENABLED: u32 = 1;
const IOAPIC_ID: u8 = 0;

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct LocalApic {
    kind: u8,
    length: u8,
    uid: u8,
    apic_id: u8,
    flags: u32,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct IoApic {
    kind: u8,
    length: u8,
    id: u8,
    reserved: u8,
    addr: u32,
    gsi_base: u32,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct SourceOverride {
    kind: u8,
    length: u8,
    bus: u8,
    source: u8,
    gsi: u32,
    flags: u16,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct LocalX2Apic {
    kind: u8,
    length: u8,
    reserved: u16,
    x2apic_id: u32,
    flags: u32,
    uid: u32,
}

const _: () = assert!(size_of::<LocalApic>() == 8 && size_of::<IoApic>() == 12);
const _: () = assert!(size_of::<SourceOverride>() == 10 && size_of::<LocalX2Apic>() == 16);

pub fn madt(topo: &NumaTopology) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(layout::LAPIC_ADDR as u32).to_le_bytes());
    body.extend_from_slice(&PCAT_COMPAT.to_le_bytes());
    let ids: Vec<u32> = topo.cpus().map(|c| topo.apic_id_of(&c)).collect();
    for (uid, &id) in ids.iter().enumerate() {
        // IDs grow with the index, so an xAPIC-sized ID has a one-byte UID.
        if let (Ok(apic_id), Ok(uid)) = (u8::try_from(id), u8::try_from(uid))
            && id <= MAX_XAPIC_ID
        {
            body.extend_from_slice(
                LocalApic {
                    kind: 0,
                    length: 8,
                    uid,
                    apic_id,
                    flags: ENABLED,
                }
                .as_bytes(),
            );
        }
    }
    for (uid, &id) in ids.iter().enumerate() {
        body.extend_from_slice(
            LocalX2Apic {
                kind: 9,
                length: 16,
                x2apic_id: id,
                flags: ENABLED,
                uid: uid as u32,
                ..Default::default()
            }
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        IoApic {
            kind: 1,
            length: 12,
            id: IOAPIC_ID,
            addr: layout::IOAPIC_ADDR as u32,
            ..Default::default()
        }
        .as_bytes(),
    );
    // ISA IRQ0 (the PIT) is wired to IOAPIC pin 2; flags 0 = bus defaults.
    body.extend_from_slice(
        SourceOverride {
            kind: 2,
            length: 10,
            bus: 0,
            source: 0,
            gsi: 2,
            flags: 0,
        }
        .as_bytes(),
    );
    sdt::table(b"APIC", MADT_REVISION, &body)
}
