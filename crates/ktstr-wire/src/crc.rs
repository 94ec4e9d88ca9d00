//! CRC32C (Castagnoli), as used by iSCSI/ext4/btrfs.

use crc::{CRC_32_ISCSI, Crc, Table};
use zerocopy::IntoBytes;
use zerocopy::byteorder::little_endian::U32;

use crate::header::FrameHeader;

// A `static`, not a `const`: the slice-by-16 table is 16 KiB and a `const`
// would be copied to every use site.
static CASTAGNOLI: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    CASTAGNOLI.checksum(data)
}

/// The CRC a frame must carry: header with `crc` zeroed, then the payload.
pub fn frame_crc(header: &FrameHeader, payload: &[u8]) -> u32 {
    let mut zeroed = *header;
    zeroed.crc = U32::ZERO;
    let mut digest = CASTAGNOLI.digest();
    digest.update(zeroed.as_bytes());
    digest.update(payload);
    digest.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_matches_catalogue() {
        // The standard CRC-32C check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
