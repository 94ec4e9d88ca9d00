//! The compact text form `<nodes>n<llcs>l<cores>c<threads>t`, e.g. `1n2l4c2t`
//! (`l` counts LLCs machine-wide).

use std::fmt;
use std::str::FromStr;

use crate::{Topology, TopologyError};

const PARTS: [(char, &str); 4] = [
    ('n', "NUMA node count"),
    ('l', "LLC count"),
    ('c', "cores per LLC"),
    ('t', "threads per core"),
];

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}n{}l{}c{}t",
            self.numa_nodes, self.llcs, self.cores_per_llc, self.threads_per_core
        )
    }
}

impl FromStr for Topology {
    type Err = TopologyError;

    /// Parses and shape-checks ([`Topology::check`]).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |part: &'static str, reason: String| TopologyError::Parse {
            input: input.to_string(),
            part,
            reason,
        };
        let mut rest = input.trim();
        let mut values = [0u32; 4];
        for (slot, (unit, part)) in values.iter_mut().zip(PARTS) {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(digits);
            if number.is_empty() {
                let found = tail
                    .chars()
                    .next()
                    .map_or("end of input".into(), |c| format!("{c:?}"));
                return Err(err(part, format!("expected a number, found {found}")));
            }
            if !tail.starts_with(unit) {
                let found = tail
                    .chars()
                    .next()
                    .map_or("end of input".into(), |c| format!("{c:?}"));
                return Err(err(
                    part,
                    format!("expected '{unit}' after {number}, found {found}"),
                ));
            }
            *slot = number
                .parse()
                .map_err(|e| err(part, format!("{number:?}: {e}")))?;
            rest = &tail[unit.len_utf8()..];
        }
        if !rest.is_empty() {
            return Err(err("suffix", format!("unexpected trailing {rest:?}")));
        }
        let [n, l, c, t] = values;
        let topo = Topology::new(n, l, c, t);
        topo.check()?;
        Ok(topo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in ["1n1l1c1t", "1n2l4c2t", "4n8l2c1t", "2n2l4c2t"] {
            let t: Topology = s.parse().expect(s);
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "2n4l2c1t".parse::<Topology>().expect("parse"),
            Topology::new(2, 4, 2, 1)
        );
    }

    fn part_of(s: &str) -> &'static str {
        match s.parse::<Topology>() {
            Err(TopologyError::Parse { part, .. }) => part,
            other => panic!("{s}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        assert_eq!(part_of(""), "NUMA node count");
        assert_eq!(part_of("1x2l4c2t"), "NUMA node count");
        assert_eq!(part_of("1n2x4c2t"), "LLC count");
        assert_eq!(part_of("1n2lc2t"), "cores per LLC");
        assert_eq!(part_of("1n2l4c"), "threads per core");
        assert_eq!(part_of("1n2l4c99999999999t"), "threads per core");
        assert_eq!(part_of("1n2l4c2tz"), "suffix");
        let msg = "1n2x4c2t".parse::<Topology>().unwrap_err().to_string();
        assert!(msg.contains("LLC count") && msg.contains("'x'"), "{msg}");
        assert!(matches!(
            "1n0l1c1t".parse::<Topology>(),
            Err(TopologyError::Zero { what: "llcs" })
        ));
        assert!(matches!(
            "2n3l1c1t".parse::<Topology>(),
            Err(TopologyError::LlcsNotDivisible { llcs: 3, nodes: 2 })
        ));
    }
}
