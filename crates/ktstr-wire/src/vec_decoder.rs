//! Streaming decoder with a growable, capped `Vec` buffer.

use alloc::vec::Vec;

use crate::decoder::{Cursor, DecoderStats, FeedFrames, push_all};
use crate::error::DecodeError;
use crate::frame::Frame;
use crate::header::HEADER_LEN;

/// Default payload cap for [`VecDecoder::default`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: u32 = 1 << 20;

/// [`Decoder`](crate::Decoder) semantics with an owned buffer that grows on
/// demand and never beyond `HEADER_LEN + max_payload` bytes.
#[derive(Clone)]
pub struct VecDecoder {
    /// Received bytes; `len()` is the filled part.
    buf: Vec<u8>,
    /// Hard cap on `buf.len()` and on the capacity we request.
    cap: usize,
    cursor: Cursor,
}

// Not derived: printing the whole buffer would be noise.
impl core::fmt::Debug for VecDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VecDecoder")
            .field("capacity", &self.buf.capacity())
            .field("buffered", &self.buffered())
            .field("max_payload", &self.cursor.max_payload)
            .field("eof", &self.cursor.eof)
            .field("stats", &self.cursor.stats)
            .finish()
    }
}

impl Default for VecDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PAYLOAD)
    }
}

impl VecDecoder {
    /// Decoder accepting payloads up to `max_payload` bytes. Allocates lazily.
    pub fn new(max_payload: u32) -> Self {
        let cap = usize::try_from(max_payload)
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN);
        Self {
            buf: Vec::new(),
            cap,
            cursor: Cursor::new(max_payload),
        }
    }

    /// Buffer as much of `input` as the cap allows; returns the bytes taken.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        self.compact();
        let n = self.cap.saturating_sub(self.buf.len()).min(input.len());
        let Some(src) = input.get(..n) else {
            return 0;
        };
        self.reserve(n);
        self.buf.extend_from_slice(src);
        n
    }

    /// The next frame or error, or `None` when more input is needed (or,
    /// after [`finish`](Self::finish), when everything has been drained).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, DecodeError>> {
        self.cursor.next(&self.buf)
    }

    /// Feed all of `input`, handing every frame and error to `on_item`.
    pub fn push(&mut self, input: &[u8], on_item: impl FnMut(Result<Frame<'_>, DecodeError>)) {
        push_all(self, input, on_item);
    }

    /// Mark end of stream; see [`Decoder::finish`](crate::Decoder::finish).
    pub fn finish(&mut self) {
        self.cursor.eof = true;
    }

    /// Forget buffered bytes and the end-of-stream mark; keep stats.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.cursor.start = 0;
        self.cursor.eof = false;
    }

    /// Running totals.
    pub fn stats(&self) -> DecoderStats {
        self.cursor.stats
    }

    /// Bytes received but not yet returned or skipped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.cursor.start
    }

    /// Largest payload accepted.
    pub fn max_payload(&self) -> u32 {
        self.cursor.max_payload
    }

    /// Current allocation, never above `HEADER_LEN + max_payload` (modulo the
    /// allocator's own rounding).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn compact(&mut self) {
        let start = self.cursor.start;
        if start > 0 {
            self.buf.drain(..start);
            self.cursor.start = 0;
        }
    }

    /// Make room for `n` more bytes: grow geometrically for amortised O(1)
    /// feeds, but clamp to the cap (reserve_exact, so `Vec` never doubles
    /// past it).
    fn reserve(&mut self, n: usize) {
        let needed = self.buf.len().saturating_add(n);
        if needed <= self.buf.capacity() {
            return;
        }
        let target = needed
            .max(self.buf.capacity().saturating_mul(2))
            .min(self.cap)
            .max(needed);
        self.buf.reserve_exact(target - self.buf.len());
    }
}

impl FeedFrames for VecDecoder {
    fn feed_bytes(&mut self, input: &[u8]) -> usize {
        self.feed(input)
    }
    fn next_item(&mut self) -> Option<Result<Frame<'_>, DecodeError>> {
        self.next_frame()
    }
}
