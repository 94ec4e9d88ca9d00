//! Unframed "console noise" written between frames to prove the host skips
//! and counts it. Invariant: never contains 0xF5, the first magic byte, so
//! it cannot start a false frame.

use ktstr_wire::MAGIC_BYTES;

/// Noise burst number `n`: a console-like text line plus 64 pseudo-random bytes.
pub fn burst(n: u64) -> Vec<u8> {
    let mut out = format!("[ktstr-guest] console noise #{n}\r\n").into_bytes();
    let mut x = n.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    for _ in 0..64 {
        // xorshift64: deterministic, good enough for filler.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = (x >> 24) as u8;
        out.push(if b == MAGIC_BYTES[0] { 0 } else { b });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_contains_magic_start() {
        for n in 0..10_000 {
            assert!(!burst(n).contains(&MAGIC_BYTES[0]), "burst {n}");
        }
    }
}
