//! Error types. All are `Copy` and allocation-free so no_std users get them.

use crate::kind::Kind;

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer cannot hold the whole frame.
    #[error("output buffer too small: frame needs {needed} bytes, buffer has {available}")]
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
    /// The payload, or one length-prefixed field, exceeds `u32::MAX` bytes.
    #[error("payload or field of {len} bytes does not fit a u32 length")]
    TooLarge {
        /// Offending length.
        len: usize,
    },
}

/// Why a payload could not be parsed as its kind's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The payload ends before `field` is complete.
    #[error("{kind} payload truncated in `{field}`: need {needed} bytes, have {available}")]
    Truncated {
        /// Kind being parsed.
        kind: Kind,
        /// Field that did not fit.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the payload.
        available: usize,
    },
}

/// A problem the stream decoder found. The decoder has already resynchronised
/// past it; keep calling `next_frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Header and payload did not match the CRC carried in the header.
    #[error(
        "bad CRC on {kind} frame seq {seq}: header says {expected:#010x}, computed {computed:#010x}"
    )]
    BadCrc {
        /// Kind claimed by the (possibly corrupt) header.
        kind: Kind,
        /// Sequence number claimed by the header.
        seq: u64,
        /// CRC carried in the header.
        expected: u32,
        /// CRC computed over the received bytes.
        computed: u32,
    },
    /// The header's own CRC does not match: its fields (length included)
    /// cannot be trusted.
    #[error("bad header CRC: header says {expected:#010x}, computed {computed:#010x}")]
    BadHeaderCrc {
        /// `header_crc` carried in the header.
        expected: u32,
        /// CRC computed over header bytes `0..24`.
        computed: u32,
    },
    /// Header announces a payload above the configured maximum.
    #[error("{kind} frame announces a {payload_len}-byte payload, maximum is {max_payload}")]
    Oversize {
        /// Kind claimed by the header.
        kind: Kind,
        /// Announced payload length.
        payload_len: u32,
        /// Configured maximum.
        max_payload: u32,
    },
    /// Header carries a major version this crate does not speak.
    #[error("unsupported wire format version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version found.
        major: u8,
        /// Minor version found.
        minor: u8,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs (header only, if the header itself is cut).
        needed: usize,
        /// Bytes that were available from the magic on.
        available: usize,
    },
}

/// The buffer given to a decoder cannot hold a header plus the maximum payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decoder buffer of {available} bytes is smaller than the {needed} bytes required")]
pub struct BufferTooSmall {
    /// Bytes required (header + maximum payload).
    pub needed: usize,
    /// Bytes provided.
    pub available: usize,
}
