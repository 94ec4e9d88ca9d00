//! Which initramfs format boots fastest: none, zstd or lz4 (init stripped
//! of DWARF), and uncompressed with the DWARF kept. Boots this
//! example (as its own init) `KTSTR_BOOTS` rounds on QEMU TCG, the three
//! formats interleaved within each round so host load drifts hit all
//! alike, and prints the median time from starting the VM to the guest's
//! `SysReady` (image building is timed separately; the cache is warm).
//!
//! `KTSTR_KERNEL=... cargo run [--release] -p ktstr-harness --example initramfs_compression`

use std::time::Duration;

use anyhow::Context;
use ktstr_harness::{Compression, GuestExit, Session, SessionConfig};

/// (format, strip the init's DWARF)
const FORMATS: [(Compression, bool); 4] = [
    (Compression::None, true),
    (Compression::Zstd, true),
    (Compression::Lz4, true),
    (Compression::None, false),
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let kernel = std::env::var("KTSTR_KERNEL").context("set KTSTR_KERNEL")?;
    let rounds: usize = std::env::var("KTSTR_BOOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let cache = tempfile::tempdir()?;
    let mut boots = vec![Vec::new(); FORMATS.len()];
    let mut images = vec![Vec::new(); FORMATS.len()];
    let mut sizes = vec![0u64; FORMATS.len()];
    for round in 0..=rounds {
        for (i, &(compression, strip)) in FORMATS.iter().enumerate() {
            let mut cfg = SessionConfig::new(&kernel);
            cfg.compression = compression;
            cfg.strip_debug = strip;
            cfg.cache_dir = cache.path().to_owned();
            cfg.deadline = Duration::from_secs(300);
            let s = Session::boot(&cfg)?;
            let t = s.timings();
            sizes[i] = s.image().size;
            let end = s.shutdown()?;
            anyhow::ensure!(end.exit == GuestExit::Exited(0), "{:?}", end.exit);
            // Round 0 builds the cache; it is not counted.
            if round > 0 {
                boots[i].push(t.boot);
                images[i].push(t.image);
            }
        }
    }
    for (i, (c, strip)) in FORMATS.iter().enumerate() {
        println!(
            "{c:?} strip_debug={strip}: {:.1} MiB; cached image step median {:.2?}; VM start→SysReady median {:.2?} (n={rounds}: {:.2?})",
            sizes[i] as f64 / (1 << 20) as f64,
            median(images[i].clone()),
            median(boots[i].clone()),
            boots[i],
        );
    }
    Ok(())
}
