//! The NUMA distance matrix as the SLIT carries it: 10 on the diagonal,
//! symmetric, remote distances in 11..=255.

use crate::TopologyError;

pub const LOCAL_DISTANCE: u8 = 10;
pub const REMOTE_DISTANCE: u8 = 20;

/// A validated square matrix; `get(a, b)` is the distance from node a to b.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistanceMatrix {
    nodes: usize,
    cells: Vec<u8>,
}

impl DistanceMatrix {
    /// 10 local, 20 remote.
    pub fn uniform(nodes: usize) -> Self {
        let cells = (0..nodes * nodes)
            .map(|i| {
                if i / nodes == i % nodes {
                    LOCAL_DISTANCE
                } else {
                    REMOTE_DISTANCE
                }
            })
            .collect();
        Self { nodes, cells }
    }

    /// Validates rows taken from a caller (u32 so out-of-range values are
    /// reported rather than truncated).
    pub fn from_rows(rows: &[Vec<u32>]) -> Result<Self, TopologyError> {
        let n = rows.len();
        for (row, r) in rows.iter().enumerate() {
            if r.len() != n {
                return Err(TopologyError::MatrixNotSquare {
                    row,
                    len: r.len(),
                    rows: n,
                });
            }
        }
        let mut cells = Vec::with_capacity(n * n);
        for (a, r) in rows.iter().enumerate() {
            for (b, &value) in r.iter().enumerate() {
                if a == b && value != u32::from(LOCAL_DISTANCE) {
                    return Err(TopologyError::LocalDistance { node: a, value });
                }
                if a != b && (value <= u32::from(LOCAL_DISTANCE) || value > 255) {
                    return Err(TopologyError::RemoteDistance {
                        from: a,
                        to: b,
                        value,
                    });
                }
                let ba = rows[b][a];
                if ba != value {
                    return Err(TopologyError::Asymmetric {
                        a,
                        b,
                        ab: value,
                        ba,
                    });
                }
                // In range: checked above.
                cells.push(value as u8);
            }
        }
        Ok(Self { nodes: n, cells })
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Distance from `a` to `b`; 0 when either is out of range.
    pub fn get(&self, a: usize, b: usize) -> u8 {
        if a < self.nodes && b < self.nodes {
            self.cells[a * self.nodes + b]
        } else {
            0
        }
    }

    /// Row-major cells, the SLIT entry order.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_custom_matrices() {
        let d = DistanceMatrix::uniform(2);
        assert_eq!(d.cells(), &[10, 20, 20, 10]);
        let ok = DistanceMatrix::from_rows(&[vec![10, 30], vec![30, 10]]).expect("valid");
        assert_eq!(ok.get(0, 1), 30);
    }

    #[test]
    fn invalid_matrices_are_rejected() {
        let e = |rows: &[Vec<u32>]| DistanceMatrix::from_rows(rows).unwrap_err();
        assert!(matches!(
            e(&[vec![10, 20], vec![21, 10]]),
            TopologyError::Asymmetric { .. }
        ));
        assert!(matches!(
            e(&[vec![11, 20], vec![20, 10]]),
            TopologyError::LocalDistance { node: 0, .. }
        ));
        assert!(matches!(
            e(&[vec![10, 10], vec![10, 10]]),
            TopologyError::RemoteDistance { .. }
        ));
        assert!(matches!(
            e(&[vec![10, 256], vec![256, 10]]),
            TopologyError::RemoteDistance { value: 256, .. }
        ));
        assert!(matches!(
            e(&[vec![10, 20], vec![20]]),
            TopologyError::MatrixNotSquare { row: 1, .. }
        ));
    }
}
