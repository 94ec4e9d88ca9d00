//! Guest profiler: each vCPU's RIP sampled at an interval while the guest
//! runs, mapped to kernel symbols, and binned into time windows. Used to
//! find where boot time goes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use object::{Object, ObjectSymbol, SymbolKind};

use crate::error::{ImageError, Result};

/// `__START_KERNEL_map`: where x86_64 Linux maps its image (physical 0).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Time since the vCPUs started.
    pub at: Duration,
    pub vcpu: usize,
    pub rip: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Profile {
    pub interval: Duration,
    pub samples: Vec<Sample>,
}

/// Function symbols of a kernel image, sorted by address.
pub struct Symbolizer {
    symbols: Vec<(u64, u64, String)>,
}

impl Symbolizer {
    /// Reads the symbol table of an ELF `vmlinux`.
    pub fn from_vmlinux(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| ImageError::KernelUnreadable {
            path: path.to_path_buf(),
            source,
        })?;
        let file = object::File::parse(&*data).map_err(|e| ImageError::NotAKernel {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let symbols = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .collect();
        Ok(Self::from_symbols(symbols))
    }

    pub fn from_symbols(mut symbols: Vec<(u64, u64, String)>) -> Self {
        symbols.sort_by_key(|s| s.0);
        Self { symbols }
    }

    /// The function containing `rip`. Early-boot physical RIPs are mapped
    /// through `__START_KERNEL_map`; addresses in no function are `None`.
    pub fn lookup(&self, rip: u64) -> Option<&str> {
        let find = |addr: u64| {
            let at = self
                .symbols
                .partition_point(|s| s.0 <= addr)
                .checked_sub(1)?;
            let (start, size, name) = &self.symbols[at];
            (*size == 0 || addr < start + size).then_some(name.as_str())
        };
        find(rip).or_else(|| {
            (rip < 1 << 32)
                .then(|| find(rip + START_KERNEL_MAP))
                .flatten()
        })
    }
}

/// The busiest functions in one time window.
#[derive(Clone, Debug)]
pub struct Window {
    pub start: Duration,
    pub samples: usize,
    pub top: Vec<(String, usize)>,
}

impl Profile {
    /// Bins samples into `window`-long windows with each window's `top_n` functions.
    pub fn histogram(&self, symbols: &Symbolizer, window: Duration, top_n: usize) -> Vec<Window> {
        let width = window.as_nanos().max(1);
        let mut bins: Vec<HashMap<String, usize>> = Vec::new();
        for s in &self.samples {
            let bin = (s.at.as_nanos() / width) as usize;
            if bins.len() <= bin {
                bins.resize_with(bin + 1, HashMap::new);
            }
            let name = symbols
                .lookup(s.rip)
                .map_or_else(|| format!("{:#x}", s.rip), str::to_string);
            *bins[bin].entry(name).or_default() += 1;
        }
        bins.into_iter()
            .enumerate()
            .map(|(i, counts)| {
                let samples = counts.values().sum();
                let mut top: Vec<_> = counts.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                top.truncate(top_n);
                Window {
                    start: window * i as u32,
                    samples,
                    top,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbolizer() -> Symbolizer {
        Symbolizer::from_symbols(vec![
            (0xffff_ffff_8100_0000, 0x100, "startup_64".into()),
            (0xffff_ffff_8100_1000, 0x10, "do_idle".into()),
        ])
    }

    #[test]
    fn lookup_by_virtual_and_physical_rip() {
        let s = symbolizer();
        assert_eq!(s.lookup(0xffff_ffff_8100_0010), Some("startup_64"));
        assert_eq!(s.lookup(0x0100_0010), Some("startup_64"), "physical alias");
        assert_eq!(
            s.lookup(0xffff_ffff_8100_0200),
            None,
            "past the symbol's size"
        );
    }

    #[test]
    fn histogram_bins_by_window() {
        let at = |ms| Duration::from_millis(ms);
        let p = Profile {
            interval: at(10),
            samples: vec![
                Sample {
                    at: at(1),
                    vcpu: 0,
                    rip: 0xffff_ffff_8100_1004,
                },
                Sample {
                    at: at(2),
                    vcpu: 0,
                    rip: 0xffff_ffff_8100_1004,
                },
                Sample {
                    at: at(3),
                    vcpu: 1,
                    rip: 0xffff_ffff_8100_0004,
                },
                Sample {
                    at: at(1500),
                    vcpu: 0,
                    rip: 0x42,
                },
            ],
        };
        let w = p.histogram(&symbolizer(), Duration::from_secs(1), 5);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].top[0], ("do_idle".to_string(), 2));
        assert_eq!(w[1].top[0], ("0x42".to_string(), 1));
        assert_eq!(w[1].start, Duration::from_secs(1));
    }
}
