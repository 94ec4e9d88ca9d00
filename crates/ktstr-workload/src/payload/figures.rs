//! Numbers from the output of programs whose format is known, so a
//! benchmark's results land in the report (and JSON) as figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An output format a payload's figures are parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Figures {
    /// `cyclictest -q -h <max µs>` (rt-tests): its latency histogram on
    /// stdout, merged over threads, gives `wakeup_p50_us`, `wakeup_p99_us`,
    /// `wakeup_max_us`, `wakeup_avg_us`, `samples` and `overflows`. A
    /// percentile beyond the histogram's range reads as the maximum.
    Cyclictest,
    /// `stress-ng --metrics-brief`: per stressor `<name>.bogo_ops` and
    /// `<name>.bogo_ops_per_s` (real time).
    StressNg,
}

impl Figures {
    /// The figures in `stdout`/`stderr`, or why there are none.
    pub fn parse(self, stdout: &str, stderr: &str) -> Result<BTreeMap<String, f64>, String> {
        match self {
            Figures::Cyclictest => cyclictest(stdout),
            Figures::StressNg => stress_ng(stderr),
        }
    }
}

fn numbers(text: &str) -> Option<Vec<f64>> {
    text.split_whitespace().map(|t| t.parse().ok()).collect()
}

/// The numbers after `# <label>:` in cyclictest's summary.
fn summary_row(out: &str, label: &str) -> Vec<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix("# ")?.strip_prefix(label)?.strip_prefix(':'))
        .and_then(numbers)
        .unwrap_or_default()
}

fn cyclictest(out: &str) -> Result<BTreeMap<String, f64>, String> {
    // Bucket lines: "<µs> <count thread 0> <count thread 1> ...".
    let buckets: Vec<(f64, f64)> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(numbers)
        .filter(|n| n.len() >= 2)
        .map(|n| (n[0], n[1..].iter().sum()))
        .collect();
    let in_range: f64 = buckets.iter().map(|b| b.1).sum();
    if in_range == 0.0 {
        return Err("no cyclictest histogram in its stdout (run it with -q -h <max us>)".into());
    }
    let overflows: f64 = summary_row(out, "Histogram Overflows").iter().sum();
    let max = summary_row(out, "Max Latencies")
        .into_iter()
        .fold(0.0, f64::max);
    let samples = in_range + overflows;
    let percentile = |q: f64| {
        let rank = (q * samples).ceil().max(1.0);
        let mut seen = 0.0;
        buckets
            .iter()
            .find(|(_, n)| {
                seen += n;
                seen >= rank
            })
            .map_or(max, |b| b.0)
    };
    let avg_by_thread = summary_row(out, "Avg Latencies");
    let totals = summary_row(out, "Total");
    let weighted: f64 = avg_by_thread.iter().zip(&totals).map(|(a, n)| a * n).sum();
    let mut figures = BTreeMap::from([
        ("wakeup_p50_us".to_owned(), percentile(0.50)),
        ("wakeup_p99_us".to_owned(), percentile(0.99)),
        ("wakeup_max_us".to_owned(), max),
        ("samples".to_owned(), samples),
        ("overflows".to_owned(), overflows),
    ]);
    let counted: f64 = totals.iter().sum();
    if counted > 0.0 {
        figures.insert("wakeup_avg_us".to_owned(), weighted / counted);
    }
    Ok(figures)
}

fn stress_ng(err: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut figures = BTreeMap::new();
    for line in err.lines().filter(|l| l.contains(" metrc: ")) {
        // "stress-ng: metrc: [pid] <stressor> <ops> <real s> <usr s> <sys s> <ops/s real> <ops/s cpu>"
        let Some((_, row)) = line.split_once("] ") else {
            continue;
        };
        let mut cols = row.split_whitespace();
        let (Some(name), Some(rest)) = (cols.next(), numbers(&cols.collect::<Vec<_>>().join(" ")))
        else {
            continue;
        };
        if rest.len() == 6 {
            figures.insert(format!("{name}.bogo_ops"), rest[0]);
            figures.insert(format!("{name}.bogo_ops_per_s"), rest[4]);
        }
    }
    if figures.is_empty() {
        return Err("no stress-ng metrics rows in its stderr (run it with --metrics-brief)".into());
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclictest_histogram_gives_percentiles_over_all_threads() {
        let out = "# /dev/cpu_dma_latency set to 0us\n# Histogram\n\
                   000000 000000\t000000\n000001 000050\t000040\n000002 000000\t000008\n\
                   000003 000001\t000000\n\
                   # Total: 000000051 000000048\n# Min Latencies: 00001 00001\n\
                   # Avg Latencies: 00001 00002\n# Max Latencies: 00900 00003\n\
                   # Histogram Overflows: 00001 00000\n";
        let f = Figures::Cyclictest.parse(out, "").unwrap();
        assert_eq!(f["samples"], 100.0);
        assert_eq!(f["wakeup_p50_us"], 1.0);
        // Rank 99 is the last in-range sample (bucket 3); rank 100 overflowed.
        assert_eq!(f["wakeup_p99_us"], 3.0);
        assert_eq!(f["wakeup_max_us"], 900.0);
        assert_eq!(f["overflows"], 1.0);
        assert!((f["wakeup_avg_us"] - (51.0 + 96.0) / 99.0).abs() < 1e-9);
        let e = Figures::Cyclictest.parse("T: 0 Min: 3\n", "").unwrap_err();
        assert!(e.contains("-h"), "{e}");
    }

    #[test]
    fn stress_ng_metrics_rows_give_bogo_ops_per_stressor() {
        let err = "stress-ng: info:  [29912] dispatching hogs: 1 cpu, 1 switch\n\
            stress-ng: metrc: [29912] stressor       bogo ops real time  usr time  sys time   bogo ops/s     bogo ops/s\n\
            stress-ng: metrc: [29912]                           (secs)    (secs)    (secs)   (real time) (usr+sys time)\n\
            stress-ng: metrc: [29912] cpu                1535      3.00      1.06      0.00       511.04        1450.48\n\
            stress-ng: metrc: [29912] switch           523340      3.00      0.15      1.57    174400.43      305350.37\n\
            stress-ng: metrc: [29912] switch              5731.46 nanosecs per context switch (pipe method)\n";
        let f = Figures::StressNg.parse("", err).unwrap();
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f["cpu.bogo_ops"], 1535.0);
        assert_eq!(f["switch.bogo_ops_per_s"], 174400.43);
        assert!(Figures::StressNg.parse("", "stress-ng: info: x\n").is_err());
    }
}
