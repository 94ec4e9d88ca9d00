//! [`ByteStr`]: a borrowed byte string with readable `Debug`.

use core::fmt::{self, Write as _};
use core::ops::Deref;

/// Borrowed bytes from a payload: text that is usually, but not necessarily,
/// UTF-8 (kernel logs, process output, names). `Debug` prints it as an
/// escaped string instead of a list of numbers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteStr<'a>(pub &'a [u8]);

impl<'a> ByteStr<'a> {
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The bytes as `&str`, if they are valid UTF-8.
    pub fn to_str(&self) -> Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(self.0)
    }
}

impl Deref for ByteStr<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

impl<'a> From<&'a [u8]> for ByteStr<'a> {
    fn from(b: &'a [u8]) -> Self {
        ByteStr(b)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for ByteStr<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        ByteStr(b)
    }
}

impl<'a> From<&'a str> for ByteStr<'a> {
    fn from(s: &'a str) -> Self {
        ByteStr(s.as_bytes())
    }
}

impl fmt::Debug for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                // escape_debug also escapes `'`, which is noise inside "..."
                if c == '\'' {
                    f.write_char(c)?;
                } else {
                    write!(f, "{}", c.escape_debug())?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_char('"')
    }
}

/// Lossy display: invalid UTF-8 becomes U+FFFD.
impl fmt::Display for ByteStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}
