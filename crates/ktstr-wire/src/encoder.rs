//! Frame encoding: header + payload + CRC into caller memory or a `Vec`.

use zerocopy::IntoBytes;

use crate::crc::crc32c;
use crate::error::EncodeError;
use crate::header::{CRC_RANGE, FrameHeader, HEADER_LEN};
use crate::kind::Kind;
use crate::message::Message;

/// Total frame size for `msg` (header + payload).
pub fn encoded_len(msg: &Message<'_>) -> usize {
    HEADER_LEN.saturating_add(msg.payload_len())
}

/// Encode `msg` as one frame at the start of `buf`; returns the frame length.
///
/// On error nothing meaningful has been written. Flags are zero.
pub fn encode_into(buf: &mut [u8], seq: u64, msg: &Message<'_>) -> Result<usize, EncodeError> {
    let payload_len = msg.payload_len();
    let frame = frame_slot(buf, payload_len)?;
    let (head, body) = frame.split_at_mut(HEADER_LEN);
    msg.write_payload(body)?;
    head.copy_from_slice(FrameHeader::new(msg.kind(), 0, seq, len_u32(payload_len)?).as_bytes());
    Ok(stamp_crc(frame))
}

/// Encode a frame from a raw kind, flags and payload (relays, tests, and
/// kinds this crate does not model).
pub fn encode_raw_into(
    buf: &mut [u8],
    seq: u64,
    kind: Kind,
    flags: u16,
    payload: &[u8],
) -> Result<usize, EncodeError> {
    let frame = frame_slot(buf, payload.len())?;
    let (head, body) = frame.split_at_mut(HEADER_LEN);
    body.copy_from_slice(payload);
    head.copy_from_slice(FrameHeader::new(kind, flags, seq, len_u32(payload.len())?).as_bytes());
    Ok(stamp_crc(frame))
}

fn len_u32(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLarge { len })
}

/// The exact-size slice of `buf` a frame with this payload occupies.
fn frame_slot(buf: &mut [u8], payload_len: usize) -> Result<&mut [u8], EncodeError> {
    len_u32(payload_len)?;
    let needed = HEADER_LEN.saturating_add(payload_len);
    let available = buf.len();
    buf.get_mut(..needed)
        .ok_or(EncodeError::BufferTooSmall { needed, available })
}

/// Fill in the CRC of a complete frame whose CRC field is still zero (which
/// is exactly what the CRC covers); returns the frame length.
fn stamp_crc(frame: &mut [u8]) -> usize {
    let crc = crc32c(frame);
    if let Some(field) = frame.get_mut(CRC_RANGE) {
        field.copy_from_slice(&crc.to_le_bytes());
    }
    frame.len()
}

/// Encode `msg` as a new `Vec`. Fails only for payloads over `u32::MAX` bytes.
#[cfg(feature = "alloc")]
pub fn encode(seq: u64, msg: &Message<'_>) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut out = alloc::vec::Vec::new();
    encode_append(&mut out, seq, msg)?;
    Ok(out)
}

/// Append one frame for `msg` to `out`; returns the frame length. On error
/// `out` is left as it was.
#[cfg(feature = "alloc")]
pub fn encode_append(
    out: &mut alloc::vec::Vec<u8>,
    seq: u64,
    msg: &Message<'_>,
) -> Result<usize, EncodeError> {
    len_u32(msg.payload_len())?;
    let start = out.len();
    out.resize(start.saturating_add(encoded_len(msg)), 0);
    let result = encode_into(&mut out[start..], seq, msg);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Stamps consecutive sequence numbers, starting at 0 (or [`Encoder::starting_at`]).
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    next_seq: u64,
}

impl Encoder {
    /// An encoder whose first frame gets sequence number 0.
    pub const fn new() -> Self {
        Self { next_seq: 0 }
    }

    /// An encoder whose first frame gets `seq`.
    pub const fn starting_at(seq: u64) -> Self {
        Self { next_seq: seq }
    }

    /// Sequence number the next frame will carry.
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// [`encode_into`] with the next sequence number; the number is consumed
    /// only on success.
    pub fn encode_into(&mut self, buf: &mut [u8], msg: &Message<'_>) -> Result<usize, EncodeError> {
        let n = encode_into(buf, self.next_seq, msg)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(n)
    }

    /// [`encode_append`] with the next sequence number.
    #[cfg(feature = "alloc")]
    pub fn encode_append(
        &mut self,
        out: &mut alloc::vec::Vec<u8>,
        msg: &Message<'_>,
    ) -> Result<usize, EncodeError> {
        let n = encode_append(out, self.next_seq, msg)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(n)
    }
}
