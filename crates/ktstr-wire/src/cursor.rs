//! Bounds-checked payload reader and writer.
//!
//! Variable-length fields are a little-endian `u32` length followed by that
//! many bytes. Every access is checked, so malformed input yields an error,
//! never a panic.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{EncodeError, ParseError};
use crate::kind::Kind;

/// Size of a length prefix.
pub(crate) const LEN_PREFIX: usize = 4;

/// Encoded size of a length-prefixed field.
pub(crate) const fn lp_len(field: &[u8]) -> usize {
    LEN_PREFIX.saturating_add(field.len())
}

/// Reads a payload front to back, borrowing from it.
pub(crate) struct Reader<'a> {
    kind: Kind,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(kind: Kind, payload: &'a [u8]) -> Self {
        Self {
            kind,
            rest: payload,
        }
    }

    fn truncated(&self, field: &'static str, needed: usize) -> ParseError {
        ParseError::Truncated {
            kind: self.kind,
            field,
            needed,
            available: self.rest.len(),
        }
    }

    /// Take exactly `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ParseError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(self.truncated(field, n)),
        }
    }

    /// Read a fixed-size wire struct (copied out; they are small).
    pub(crate) fn fixed<T>(&mut self, field: &'static str) -> Result<T, ParseError>
    where
        T: FromBytes + KnownLayout + Immutable + Unaligned,
    {
        match T::read_from_prefix(self.rest) {
            Ok((value, tail)) => {
                self.rest = tail;
                Ok(value)
            }
            Err(_) => Err(self.truncated(field, size_of::<T>())),
        }
    }

    /// Read a length-prefixed byte field, borrowing it.
    pub(crate) fn lp(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let prefix = self.take(LEN_PREFIX, field)?;
        let mut len = [0u8; LEN_PREFIX];
        len.copy_from_slice(prefix);
        // A length that does not fit usize cannot fit the payload either.
        let n = usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX);
        self.take(n, field)
    }
}

/// Writes a payload front to back into a caller-provided slice.
pub(crate) struct Writer<'b> {
    out: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    pub(crate) fn new(out: &'b mut [u8]) -> Self {
        Self { out, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.pos
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.pos.saturating_add(bytes.len());
        let available = self.out.len();
        let dst = self
            .out
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall {
                needed: end,
                available,
            })?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn fixed<T: IntoBytes + Immutable>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.put(value.as_bytes())
    }

    pub(crate) fn lp(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let len =
            u32::try_from(bytes.len()).map_err(|_| EncodeError::TooLarge { len: bytes.len() })?;
        self.put(&len.to_le_bytes())?;
        self.put(bytes)
    }
}
