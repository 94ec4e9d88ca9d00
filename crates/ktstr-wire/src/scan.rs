//! The decoder's core: one decision about the front of the buffered bytes.
//!
//! Pure function of the buffered window, so the slice- and `Vec`-backed
//! decoders share it and chunk boundaries cannot change its outcome.

use zerocopy::FromBytes;

use crate::crc::frame_crc;
use crate::error::DecodeError;
use crate::header::{FrameHeader, HEADER_LEN, MAGIC_BYTES, VERSION_MAJOR};

/// What to do with the front of the window.
#[derive(Debug)]
pub(crate) enum Step {
    /// The window holds (the start of) a frame that needs more bytes.
    NeedMore,
    /// Drop this many bytes: nothing in them can start a frame.
    Skip(usize),
    /// A valid frame occupies the first `total` bytes.
    Frame { header: FrameHeader, total: usize },
    /// The candidate frame at the front is bad. Only its first byte is
    /// dropped: a real frame may start inside the rejected span, and the
    /// magic search resumes right after the rejected magic.
    Reject(DecodeError),
}

/// Bytes a rejected candidate drops before the magic search resumes.
pub(crate) const REJECT_SKIP: usize = 1;

/// Decide on the front of `window`. `eof` means no more bytes will come, so
/// an incomplete frame is reported as truncated instead of waited for.
pub(crate) fn scan(window: &[u8], max_payload: u32, eof: bool) -> Step {
    let Some(at) = find_magic(window) else {
        // Keep a tail that could be the first bytes of a split magic.
        let keep = if eof { 0 } else { partial_magic_suffix(window) };
        return match window.len() - keep {
            0 => Step::NeedMore,
            n => Step::Skip(n),
        };
    };
    if at > 0 {
        return Step::Skip(at);
    }
    let Ok((header, _)) = FrameHeader::read_from_prefix(window) else {
        return incomplete(window, HEADER_LEN, eof);
    };
    // Check the version first: another major may lay the header out
    // differently, so none of the other fields can be trusted.
    if header.version_major != VERSION_MAJOR {
        return Step::Reject(DecodeError::UnsupportedVersion {
            major: header.version_major,
            minor: header.version_minor,
        });
    }
    // Trust no field (the length above all) before the header CRC checks out.
    let computed = header.expected_header_crc();
    if computed != header.header_crc.get() {
        return Step::Reject(DecodeError::BadHeaderCrc {
            expected: header.header_crc.get(),
            computed,
        });
    }
    let payload_len = header.payload_len.get();
    // Checked before waiting for the payload: a large length must not make
    // us buffer (or wait for) more than the configured maximum.
    let total = usize::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN));
    let Some(total) = total.filter(|_| payload_len <= max_payload) else {
        return Step::Reject(DecodeError::Oversize {
            kind: header.kind(),
            payload_len,
            max_payload,
        });
    };
    let Some(payload) = window.get(HEADER_LEN..total) else {
        return incomplete(window, total, eof);
    };
    let computed = frame_crc(&header, payload);
    if computed != header.crc.get() {
        return Step::Reject(DecodeError::BadCrc {
            kind: header.kind(),
            seq: header.seq(),
            expected: header.crc.get(),
            computed,
        });
    }
    Step::Frame { header, total }
}

fn incomplete(window: &[u8], needed: usize, eof: bool) -> Step {
    if eof {
        Step::Reject(DecodeError::Truncated {
            needed,
            available: window.len(),
        })
    } else {
        Step::NeedMore
    }
}

/// Offset of the first complete magic in `window`.
fn find_magic(window: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(rest) = window.get(from..) {
        let at = from + rest.iter().position(|&b| b == MAGIC_BYTES[0])?;
        if window.get(at..at + MAGIC_BYTES.len())? == MAGIC_BYTES {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Length of the longest proper prefix of the magic that ends `window`.
fn partial_magic_suffix(window: &[u8]) -> usize {
    (1..MAGIC_BYTES.len())
        .rev()
        .find(|&k| window.ends_with(&MAGIC_BYTES[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_magic_positions() {
        assert_eq!(find_magic(b""), None);
        assert_eq!(find_magic(&MAGIC_BYTES), Some(0));
        let mut v = [0xF5, 0xF5, b'K', b'T', b'W', 0];
        assert_eq!(find_magic(&v), Some(1));
        v[4] = 0;
        assert_eq!(find_magic(&v), None);
    }

    #[test]
    fn partial_suffix() {
        assert_eq!(partial_magic_suffix(b"abc"), 0);
        assert_eq!(partial_magic_suffix(&[1, 0xF5]), 1);
        assert_eq!(partial_magic_suffix(&[1, 0xF5, b'K']), 2);
        assert_eq!(partial_magic_suffix(&[0xF5, b'K', b'T']), 3);
    }

    #[test]
    fn garbage_keeps_split_magic_until_eof() {
        let w = [1, 2, 3, 0xF5, b'K'];
        assert!(matches!(scan(&w, 64, false), Step::Skip(3)));
        assert!(matches!(scan(&w[3..], 64, false), Step::NeedMore));
        assert!(matches!(scan(&w[3..], 64, true), Step::Skip(2)));
    }
}
