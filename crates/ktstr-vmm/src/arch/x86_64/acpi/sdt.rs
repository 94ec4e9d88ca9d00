//! The common System Description Table header, checksums, RSDP and XSDT.

use zerocopy::{Immutable, IntoBytes, KnownLayout};

pub const OEM_ID: [u8; 6] = *b"KTSTR ";
pub const OEM_TABLE_ID: [u8; 8] = *b"KTSTRVMM";
pub const CREATOR_ID: [u8; 4] = *b"KTST";

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct Header {
    signature: [u8; 4],
    length: u32,
    revision: u8,
    checksum: u8,
    oem_id: [u8; 6],
    oem_table_id: [u8; 8],
    oem_revision: u32,
    creator_id: [u8; 4],
    creator_revision: u32,
}

#[derive(IntoBytes, Immutable, KnownLayout, Default)]
#[repr(C, packed)]
struct Rsdp {
    signature: [u8; 8],
    checksum: u8,
    oem_id: [u8; 6],
    revision: u8,
    rsdt_addr: u32,
    length: u32,
    xsdt_addr: u64,
    ext_checksum: u8,
    reserved: [u8; 3],
}

pub const HEADER_LEN: usize = 36;
pub const RSDP_LEN: usize = 36;
const RSDP_V1_LEN: usize = 20;
const _: () = assert!(size_of::<Header>() == HEADER_LEN && size_of::<Rsdp>() == RSDP_LEN);

/// The byte that makes `bytes` sum to zero (ACPI tables and the MP table alike).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

/// A complete table: header (length and checksum filled in) then `body`.
/// Tables here are a few KiB, so the length always fits u32.
pub fn table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let header = Header {
        signature: *signature,
        length: (HEADER_LEN + body.len()) as u32,
        revision,
        oem_id: OEM_ID,
        oem_table_id: OEM_TABLE_ID,
        oem_revision: 1,
        creator_id: CREATOR_ID,
        creator_revision: 1,
        ..Default::default()
    };
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(body);
    // Checksum is byte 9 of the header.
    out[9] = checksum(&out);
    out
}

/// XSDT listing `tables` by guest address.
pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|a| a.to_le_bytes()).collect();
    table(b"XSDT", 1, &body)
}

/// ACPI 2.0+ RSDP pointing at the XSDT only.
pub fn rsdp(xsdt_addr: u64) -> Vec<u8> {
    let mut r = Rsdp {
        signature: *b"RSD PTR ",
        oem_id: OEM_ID,
        revision: 2,
        length: RSDP_LEN as u32,
        xsdt_addr,
        ..Default::default()
    };
    r.checksum = checksum(&r.as_bytes()[..RSDP_V1_LEN]);
    r.ext_checksum = checksum(r.as_bytes());
    r.as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_zero_the_sum() {
        let t = table(b"TEST", 1, &[1, 2, 3]);
        assert_eq!((t.len(), sum(&t)), (39, 0));
        assert_eq!(u32::from_le_bytes([t[4], t[5], t[6], t[7]]), 39);
        let r = rsdp(0xe0040);
        assert_eq!((sum(&r[..20]), sum(&r)), (0, 0));
    }
}
