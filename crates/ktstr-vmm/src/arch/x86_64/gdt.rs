//! The boot GDT: the selectors the Linux 64-bit boot protocol requires
//! (`__BOOT_CS` = 0x10, `__BOOT_DS` = 0x18) plus a TSS for KVM.

use kvm_bindings::kvm_segment;

pub const CODE_SELECTOR: u16 = 0x10;
pub const DATA_SELECTOR: u16 = 0x18;
pub const TSS_SELECTOR: u16 = 0x20;

/// Access/flag words (bits 40..56 of a descriptor, limit nibble masked out).
const CODE64_FLAGS: u16 = 0xa09b; // G, L, present, DPL0, code exec/read accessed
const DATA_FLAGS: u16 = 0xc093; // G, D/B, present, DPL0, data read/write accessed
const TSS_FLAGS: u16 = 0x808b; // G, present, 64-bit busy TSS

/// The table as written to guest memory: null, null, code, data, tss.
pub fn entries() -> [u64; 5] {
    [
        0,
        0,
        descriptor(CODE64_FLAGS, 0, 0xfffff),
        descriptor(DATA_FLAGS, 0, 0xfffff),
        descriptor(TSS_FLAGS, 0, 0xfffff),
    ]
}

fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (u64::from(flags), u64::from(base), u64::from(limit));
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0xf_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The KVM view of descriptor `entry` loaded with `selector`.
pub fn segment(entry: u64, selector: u16) -> kvm_segment {
    let bits = |shift: u32, width: u32| ((entry >> shift) & ((1 << width) - 1)) as u8;
    let limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let granular = bits(55, 1) == 1;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if granular {
            (limit << 12) | 0xfff
        } else {
            limit
        },
        selector,
        type_: bits(40, 4),
        present: bits(47, 1),
        dpl: bits(45, 2),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g: bits(55, 1),
        avl: bits(52, 1),
        unusable: u8::from(bits(47, 1) == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segment_is_64_bit_ring0() {
        let cs = segment(entries()[2], CODE_SELECTOR);
        assert_eq!(
            (cs.l, cs.db, cs.dpl, cs.present, cs.s, cs.type_),
            (1, 0, 0, 1, 1, 0xb)
        );
        assert_eq!(cs.limit, 0xffff_ffff);
    }

    #[test]
    fn data_and_tss_segments_decode() {
        let ds = segment(entries()[3], DATA_SELECTOR);
        assert_eq!((ds.l, ds.db, ds.type_, ds.g), (0, 1, 3, 1));
        let tss = segment(entries()[4], TSS_SELECTOR);
        assert_eq!((tss.type_, tss.s, tss.present), (0xb, 0, 1));
    }
}
