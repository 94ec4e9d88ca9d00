//! A decoded, CRC-checked frame.

use crate::bytes::ByteStr;
use crate::error::ParseError;
use crate::header::FrameHeader;
use crate::kind::Kind;
use crate::message::Message;

/// A CRC-checked frame whose payload borrows from the decoder's buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub(crate) header: FrameHeader,
    pub(crate) payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The header as received.
    pub fn header(&self) -> &FrameHeader {
        &self.header
    }

    /// Message kind.
    pub fn kind(&self) -> Kind {
        self.header.kind()
    }

    /// Sequence number.
    pub fn seq(&self) -> u64 {
        self.header.seq()
    }

    /// Frame flags.
    pub fn flags(&self) -> u16 {
        self.header.flags()
    }

    /// The raw payload.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Parse the payload as a typed message (zero-copy). Unknown kinds yield
    /// [`Message::Unknown`].
    pub fn message(&self) -> Result<Message<'a>, ParseError> {
        Message::parse(self.kind(), self.payload)
    }

    /// Copy the frame out of the decoder's buffer.
    #[cfg(feature = "alloc")]
    pub fn to_owned_frame(&self) -> OwnedFrame {
        OwnedFrame {
            header: self.header,
            payload: self.payload.to_vec(),
        }
    }
}

impl core::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Frame")
            .field("kind", &self.kind())
            .field("seq", &self.seq())
            .field("flags", &self.flags())
            .field("payload", &ByteStr(self.payload))
            .finish()
    }
}

/// A frame that owns its payload, for keeping past the next decoder call.
#[cfg(feature = "alloc")]
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// The header as received.
    pub header: FrameHeader,
    /// The payload.
    pub payload: alloc::vec::Vec<u8>,
}

#[cfg(feature = "alloc")]
impl core::fmt::Debug for OwnedFrame {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&self.as_frame(), f)
    }
}

#[cfg(feature = "alloc")]
impl OwnedFrame {
    /// Borrow as a [`Frame`].
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            header: self.header,
            payload: &self.payload,
        }
    }

    /// Parse the payload as a typed message borrowing from `self`.
    pub fn message(&self) -> Result<Message<'_>, ParseError> {
        self.as_frame().message()
    }
}
