//! The one thing the monitor needs from a VM backend: reading guest
//! physical memory while the guest runs.

use std::sync::Arc;

use crate::MemoryError;

/// Reads guest-physical memory. Implementations must not pause the guest;
/// the monitor tolerates reads that race with it.
pub trait GuestMemoryReader {
    /// Fills `buf` from guest-physical `addr`.
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;
}

impl<T: GuestMemoryReader + ?Sized> GuestMemoryReader for &T {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read_phys(addr, buf)
    }
}

impl<T: GuestMemoryReader + ?Sized> GuestMemoryReader for Arc<T> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read_phys(addr, buf)
    }
}

/// A little-endian integer of `bytes.len()` (1, 2, 4 or 8) bytes.
pub(crate) fn le_uint(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(b)
}

/// Guest memory in a `Vec`, for unit tests: synthetic page tables and
/// kernel structures at chosen physical addresses.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outside the fake memory")]
    struct OutOfRange;

    pub struct VecMemory(pub Vec<u8>);

    impl VecMemory {
        pub fn new(len: usize) -> Self {
            VecMemory(vec![0; len])
        }

        pub fn put(&mut self, addr: u64, bytes: &[u8]) {
            let a = usize::try_from(addr).expect("small address");
            self.0[a..a + bytes.len()].copy_from_slice(bytes);
        }

        pub fn put_u64(&mut self, addr: u64, v: u64) {
            self.put(addr, &v.to_le_bytes());
        }
    }

    impl GuestMemoryReader for VecMemory {
        fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
            let err = || MemoryError {
                addr,
                len: buf.len(),
                source: Box::new(OutOfRange),
            };
            let start = usize::try_from(addr).map_err(|_| err())?;
            let end = start.checked_add(buf.len()).ok_or_else(err)?;
            let src = self.0.get(start..end).ok_or_else(err)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_uint_reads_each_width() {
        assert_eq!(le_uint(&[0x34, 0x12]), 0x1234);
        assert_eq!(le_uint(&[1, 0, 0, 0x80]), 0x8000_0001);
        assert_eq!(
            le_uint(&0x0102_0304_0506_0708u64.to_le_bytes()),
            0x0102_0304_0506_0708
        );
    }

    #[test]
    fn fake_memory_refuses_reads_past_its_end() {
        let m = fake::VecMemory::new(16);
        let mut b = [0u8; 8];
        assert!(m.read_phys(8, &mut b).is_ok());
        let e = m.read_phys(12, &mut b).unwrap_err();
        assert_eq!((e.addr, e.len), (12, 8));
    }
}
