//! Deterministic payload bytes: a pure function of (sequence number, offset),
//! so the host verifies every byte without a copy of what was sent.

/// SplitMix64 finaliser: cheap, and every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fill `buf` with the pattern for frame `seq`.
pub fn fill(seq: u64, buf: &mut [u8]) {
    let base = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for (i, chunk) in (0u64..).zip(buf.chunks_mut(8)) {
        let word = mix(base ^ i).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Offset of the first byte of `data` that differs from the pattern for
/// `seq`, or `None` if all match.
pub fn first_mismatch(seq: u64, data: &[u8]) -> Option<usize> {
    let mut want = vec![0u8; data.len()];
    fill(seq, &mut want);
    data.iter().zip(&want).position(|(a, b)| a != b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_seq_and_offset() {
        let (mut a, mut b) = ([0u8; 61], [0u8; 61]);
        fill(1, &mut a);
        fill(2, &mut b);
        assert_ne!(a, b);
        assert_eq!(first_mismatch(1, &a), None);
        a[60] ^= 1;
        assert_eq!(first_mismatch(1, &a), Some(60));
    }
}
