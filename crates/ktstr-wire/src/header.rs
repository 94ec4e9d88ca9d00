//! The fixed 32-byte frame header and the format constants.

use core::mem::{offset_of, size_of};

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::kind::Kind;

/// Frame magic as it appears on the wire: `F5 'K' 'T' 'W'`.
///
/// `0xF5` can never occur in valid UTF-8, so the magic never shows up inside
/// console text that shares the channel; this keeps resynchronisation cheap.
pub const MAGIC_BYTES: [u8; 4] = [0xF5, b'K', b'T', b'W'];

/// [`MAGIC_BYTES`] read as a little-endian `u32` (the header's `magic` field).
pub const MAGIC: u32 = u32::from_le_bytes(MAGIC_BYTES);

/// Format major version. A receiver rejects frames with any other major.
pub const VERSION_MAJOR: u8 = 1;

/// Format minor version. Receivers accept any minor (see the crate docs).
pub const VERSION_MINOR: u8 = 0;

/// Size of [`FrameHeader`] on the wire.
pub const HEADER_LEN: usize = 32;

/// Frame header, little-endian on the wire regardless of host endianness.
///
/// Two CRC32Cs protect a frame:
/// * `header_crc` covers header bytes `0..24` (magic through `seq`), so a
///   receiver can trust `payload_len` before waiting for the payload: a
///   corrupted length is rejected at once instead of stalling the stream.
/// * `crc` covers the whole header (with `crc` itself zeroed) followed by the
///   payload.
///
/// `reserved0` is sent as zero and ignored on receipt, so a later minor
/// version may give it a meaning.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct FrameHeader {
    /// Always [`MAGIC`].
    pub magic: U32,
    /// Format major version ([`VERSION_MAJOR`]).
    pub version_major: u8,
    /// Format minor version ([`VERSION_MINOR`] when sent by this crate).
    pub version_minor: u8,
    /// Message kind, see [`Kind`].
    pub kind: U16,
    /// Frame flags. None are defined in 1.0; unknown bits are ignored.
    pub flags: U16,
    /// Sent as zero, ignored on receipt.
    pub reserved0: U16,
    /// Payload length in bytes (the header is not included).
    pub payload_len: U32,
    /// Sender-assigned sequence number (monotonic per sender by convention).
    pub seq: U64,
    /// CRC32C (Castagnoli) over header-with-crc-zeroed + payload.
    pub crc: U32,
    /// CRC32C over header bytes `0..24` ([`HEADER_CRC_COVERS`]).
    pub header_crc: U32,
}

// The wire layout is the contract: pin every offset so a field reorder or a
// type change fails the build instead of silently breaking peers.
const _: () = assert!(size_of::<FrameHeader>() == HEADER_LEN);
const _: () = assert!(offset_of!(FrameHeader, magic) == 0);
const _: () = assert!(offset_of!(FrameHeader, version_major) == 4);
const _: () = assert!(offset_of!(FrameHeader, version_minor) == 5);
const _: () = assert!(offset_of!(FrameHeader, kind) == 6);
const _: () = assert!(offset_of!(FrameHeader, flags) == 8);
const _: () = assert!(offset_of!(FrameHeader, reserved0) == 10);
const _: () = assert!(offset_of!(FrameHeader, payload_len) == 12);
const _: () = assert!(offset_of!(FrameHeader, seq) == 16);
const _: () = assert!(offset_of!(FrameHeader, crc) == 24);
const _: () = assert!(offset_of!(FrameHeader, header_crc) == 28);
const _: () = assert!(core::mem::align_of::<FrameHeader>() == 1);

/// Byte range of the `crc` field inside the header.
pub(crate) const CRC_RANGE: core::ops::Range<usize> = 24..28;
const _: () = assert!(CRC_RANGE.start == offset_of!(FrameHeader, crc));

/// Header bytes covered by `header_crc`: everything before the two CRCs.
pub const HEADER_CRC_COVERS: core::ops::Range<usize> = 0..24;
const _: () = assert!(HEADER_CRC_COVERS.end == offset_of!(FrameHeader, crc));

impl FrameHeader {
    /// A header for the current format version, `header_crc` filled in and
    /// `crc` zero (the encoder sets it once the payload is known).
    pub fn new(kind: Kind, flags: u16, seq: u64, payload_len: u32) -> Self {
        let mut h = Self {
            magic: U32::new(MAGIC),
            version_major: VERSION_MAJOR,
            version_minor: VERSION_MINOR,
            kind: U16::new(kind.0),
            flags: U16::new(flags),
            reserved0: U16::ZERO,
            payload_len: U32::new(payload_len),
            seq: U64::new(seq),
            crc: U32::ZERO,
            header_crc: U32::ZERO,
        };
        h.seal_header();
        h
    }

    /// Recompute `header_crc` after editing fields in `0..24`.
    pub fn seal_header(&mut self) {
        self.header_crc = U32::new(self.expected_header_crc());
    }

    /// The `header_crc` these header fields call for.
    pub fn expected_header_crc(&self) -> u32 {
        crate::crc::crc32c(self.as_bytes().get(HEADER_CRC_COVERS).unwrap_or_default())
    }

    /// Message kind.
    pub fn kind(&self) -> Kind {
        Kind(self.kind.get())
    }

    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.seq.get()
    }

    /// Frame flags.
    pub fn flags(&self) -> u16 {
        self.flags.get()
    }

    /// `(major, minor)` format version.
    pub fn version(&self) -> (u8, u8) {
        (self.version_major, self.version_minor)
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> u32 {
        self.payload_len.get()
    }

    /// The CRC carried in the header.
    pub fn crc(&self) -> u32 {
        self.crc.get()
    }
}
