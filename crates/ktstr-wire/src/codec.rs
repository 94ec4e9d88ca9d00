//! The payload codec every message type implements.

use crate::cursor::{Reader, Writer};
use crate::error::{EncodeError, ParseError};
use crate::fixed::{Exit, Lifecycle, Ping, Pong, SysReady, WorkerReport};

/// Encode/decode of one message's payload.
///
/// Readers ignore bytes after the last field they know: a later minor version
/// may append fields, and older receivers must still accept the message.
pub(crate) trait Codec<'a>: Sized {
    /// Exact number of payload bytes `write` produces.
    fn payload_len(&self) -> usize;
    fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError>;
}

macro_rules! fixed_codec {
    ($($ty:ident),* $(,)?) => {$(
        impl<'a> Codec<'a> for $ty {
            fn payload_len(&self) -> usize {
                size_of::<$ty>()
            }
            fn write(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                w.fixed(self)
            }
            fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
                r.fixed(stringify!($ty))
            }
        }
    )*};
}

fixed_codec!(SysReady, Lifecycle, WorkerReport, Exit, Ping, Pong);
