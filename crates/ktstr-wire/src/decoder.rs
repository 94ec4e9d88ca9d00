//! Streaming decoder over a caller-provided buffer (no allocation).

use crate::error::{BufferTooSmall, DecodeError};
use crate::frame::Frame;
use crate::header::HEADER_LEN;
use crate::scan::{REJECT_SKIP, Step, scan};

/// Running totals. Every byte fed ends up in exactly one of `frame_bytes`,
/// `garbage_bytes`, or the decoder's still-buffered bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Valid frames returned.
    pub frames: u64,
    /// Bytes of those frames (headers included).
    pub frame_bytes: u64,
    /// Bytes skipped: noise between frames and the remains of rejected frames.
    pub garbage_bytes: u64,
    /// Errors returned.
    pub errors: u64,
}

/// Read position and policy shared by the slice- and `Vec`-backed decoders.
#[derive(Clone, Debug)]
pub(crate) struct Cursor {
    /// Start of the unconsumed bytes in the buffer.
    pub(crate) start: usize,
    pub(crate) max_payload: u32,
    pub(crate) eof: bool,
    pub(crate) stats: DecoderStats,
}

impl Cursor {
    pub(crate) fn new(max_payload: u32) -> Self {
        Self {
            start: 0,
            max_payload,
            eof: false,
            stats: DecoderStats::default(),
        }
    }

    /// Next item from `filled` (all buffered bytes, consumed ones included).
    pub(crate) fn next<'b>(&mut self, filled: &'b [u8]) -> Option<Result<Frame<'b>, DecodeError>> {
        loop {
            let window = filled.get(self.start..)?;
            match scan(window, self.max_payload, self.eof) {
                Step::NeedMore => {
                    if window.is_empty() {
                        // Drained after finish(): ready for a new stream.
                        self.eof = false;
                    }
                    return None;
                }
                Step::Skip(n) => {
                    self.start += n;
                    self.stats.garbage_bytes += n as u64;
                }
                Step::Reject(err) => {
                    self.start += REJECT_SKIP;
                    self.stats.garbage_bytes += REJECT_SKIP as u64;
                    self.stats.errors += 1;
                    return Some(Err(err));
                }
                Step::Frame { header, total } => {
                    let payload = window.get(HEADER_LEN..total)?;
                    self.start += total;
                    self.stats.frames += 1;
                    self.stats.frame_bytes += total as u64;
                    return Some(Ok(Frame { header, payload }));
                }
            }
        }
    }
}

/// Largest payload a buffer of `len` bytes can hold.
pub(crate) fn max_payload_for(len: usize) -> u32 {
    u32::try_from(len.saturating_sub(HEADER_LEN)).unwrap_or(u32::MAX)
}

/// Streaming decoder over a caller-provided buffer; never allocates.
///
/// Feed arbitrary chunks with [`feed`](Self::feed) and drain with
/// [`next_frame`](Self::next_frame) until it returns `None`, or let
/// [`push`](Self::push) do both. Garbage between frames is skipped and
/// counted; errors are returned after the decoder has already resynchronised.
/// At end of stream call [`finish`](Self::finish) and drain again.
///
/// The buffer must hold a header plus the largest accepted payload; a frame
/// announcing more is rejected as [`DecodeError::Oversize`].
pub struct Decoder<'buf> {
    buf: &'buf mut [u8],
    /// Bytes of `buf` holding received data.
    filled: usize,
    cursor: Cursor,
}

// Not derived: printing the whole buffer would be noise.
impl core::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Decoder")
            .field("capacity", &self.buf.len())
            .field("buffered", &self.buffered())
            .field("max_payload", &self.cursor.max_payload)
            .field("eof", &self.cursor.eof)
            .field("stats", &self.cursor.stats)
            .finish()
    }
}

impl<'buf> Decoder<'buf> {
    /// Decoder accepting payloads up to `buf.len() - HEADER_LEN` bytes.
    pub fn new(buf: &'buf mut [u8]) -> Result<Self, BufferTooSmall> {
        let max = max_payload_for(buf.len());
        Self::with_max_payload(buf, max)
    }

    /// Decoder accepting payloads up to `max_payload`; `buf` must hold
    /// `HEADER_LEN + max_payload` bytes.
    pub fn with_max_payload(buf: &'buf mut [u8], max_payload: u32) -> Result<Self, BufferTooSmall> {
        let needed = usize::try_from(max_payload)
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN);
        if buf.len() < needed {
            return Err(BufferTooSmall {
                needed,
                available: buf.len(),
            });
        }
        Ok(Self {
            buf,
            filled: 0,
            cursor: Cursor::new(max_payload),
        })
    }

    /// Copy as much of `input` as fits; returns the bytes taken.
    ///
    /// Once [`next_frame`](Self::next_frame) has returned `None` there is room
    /// for at least one byte, so feed/drain loops always make progress.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        self.compact();
        let Some(room) = self.buf.get_mut(self.filled..) else {
            return 0;
        };
        let n = room.len().min(input.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), input.get(..n)) {
            dst.copy_from_slice(src);
            self.filled += n;
            n
        } else {
            0
        }
    }

    /// The next frame or error, or `None` when more input is needed (or,
    /// after [`finish`](Self::finish), when everything has been drained).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, DecodeError>> {
        let filled = self.buf.get(..self.filled)?;
        self.cursor.next(filled)
    }

    /// Feed all of `input`, handing every frame and error to `on_item`.
    pub fn push(&mut self, input: &[u8], on_item: impl FnMut(Result<Frame<'_>, DecodeError>)) {
        push_all(self, input, on_item);
    }

    /// Mark end of stream. Drain with [`next_frame`](Self::next_frame): a
    /// frame cut short is reported as [`DecodeError::Truncated`], and frames
    /// hidden behind a bogus length are still recovered. Once drained, the
    /// decoder is ready for a new stream.
    pub fn finish(&mut self) {
        self.cursor.eof = true;
    }

    /// Forget buffered bytes and the end-of-stream mark; keep stats.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.cursor.start = 0;
        self.cursor.eof = false;
    }

    /// Running totals.
    pub fn stats(&self) -> DecoderStats {
        self.cursor.stats
    }

    /// Bytes received but not yet returned or skipped.
    pub fn buffered(&self) -> usize {
        self.filled - self.cursor.start
    }

    /// Largest payload accepted.
    pub fn max_payload(&self) -> u32 {
        self.cursor.max_payload
    }

    /// Move unconsumed bytes to the front so `feed` has maximal room.
    fn compact(&mut self) {
        let start = self.cursor.start;
        if start > 0 {
            self.buf.copy_within(start..self.filled, 0);
            self.filled -= start;
            self.cursor.start = 0;
        }
    }
}

/// What [`push_all`] needs from a decoder, so both decoders share the loop.
pub(crate) trait FeedFrames {
    fn feed_bytes(&mut self, input: &[u8]) -> usize;
    fn next_item(&mut self) -> Option<Result<Frame<'_>, DecodeError>>;
}

impl FeedFrames for Decoder<'_> {
    fn feed_bytes(&mut self, input: &[u8]) -> usize {
        self.feed(input)
    }
    fn next_item(&mut self) -> Option<Result<Frame<'_>, DecodeError>> {
        self.next_frame()
    }
}

/// Feeds all of `input`, handing every frame and error to `on_item`.
/// Invariant: `feed` takes at least one byte whenever the buffer was
/// drained, so the loop ends; the `n == 0` guard only makes that certain.
pub(crate) fn push_all<D: FeedFrames>(
    decoder: &mut D,
    mut input: &[u8],
    mut on_item: impl FnMut(Result<Frame<'_>, DecodeError>),
) {
    while !input.is_empty() {
        let n = decoder.feed_bytes(input);
        input = input.get(n..).unwrap_or_default();
        while let Some(item) = decoder.next_item() {
            on_item(item);
        }
        if n == 0 {
            break;
        }
    }
}
