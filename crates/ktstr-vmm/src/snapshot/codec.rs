//! A tiny length-checked binary codec for the state section. KVM structs are
//! plain old data (zerocopy via kvm-bindings' `serde` feature), so they are
//! stored as their exact bytes; every read is bounds-checked.

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::SnapshotError;

#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// A KVM struct, as its exact in-memory bytes (length-prefixed so a
    /// struct whose size changed between builds is refused, not misread).
    pub fn pod<T: IntoBytes + Immutable>(&mut self, v: &T) {
        self.bytes(v.as_bytes());
    }
    pub fn pods<T: IntoBytes + Immutable>(&mut self, v: &[T]) {
        self.u64(v.len() as u64);
        for item in v {
            self.pod(item);
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if n > self.buf.len() {
            return Err(SnapshotError::Malformed(format!(
                "{}: needs {n} more bytes, {} left",
                self.what,
                self.buf.len()
            )));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// A count or length, refused if it exceeds what is left (no huge allocations).
    pub fn len(&mut self) -> Result<usize, SnapshotError> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.buf.len())
            .ok_or_else(|| SnapshotError::Malformed(format!("{}: length {n} too large", self.what)))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.len()?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| SnapshotError::Malformed(format!("{}: string is not UTF-8", self.what)))
    }
    pub fn pod<T: FromBytes>(&mut self) -> Result<T, SnapshotError> {
        let b = self.bytes()?;
        T::read_from_bytes(b).map_err(|_| {
            SnapshotError::Malformed(format!(
                "{}: {} has {} bytes, expected {}",
                self.what,
                std::any::type_name::<T>(),
                b.len(),
                std::mem::size_of::<T>()
            ))
        })
    }
    pub fn pods<T: FromBytes>(&mut self) -> Result<Vec<T>, SnapshotError> {
        let n = self.len()?;
        (0..n).map(|_| self.pod()).collect()
    }
    pub fn finish(self) -> Result<(), SnapshotError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Malformed(format!(
                "{}: {} trailing bytes",
                self.what,
                self.buf.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_short_input_is_refused() {
        let mut w = Writer::default();
        w.u32(7);
        w.str("hi");
        w.pod(&kvm_bindings::kvm_mp_state { mp_state: 3 });
        let mut r = Reader::new(&w.buf, "test");
        assert_eq!(r.u32().ok(), Some(7));
        assert_eq!(r.string().ok().as_deref(), Some("hi"));
        let mp: kvm_bindings::kvm_mp_state = r.pod().expect("pod");
        assert_eq!(mp.mp_state, 3);
        r.finish().expect("consumed");
        let mut short = Reader::new(&w.buf[..w.buf.len() - 1], "test");
        short.u32().expect("u32");
        short.string().expect("str");
        assert!(matches!(
            short.pod::<kvm_bindings::kvm_mp_state>(),
            Err(SnapshotError::Malformed(_))
        ));
    }
}
