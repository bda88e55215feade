//! Greedy colouring of the column-intersection graph (Curtis, Powell and
//! Reid, 1974): columns of a Jacobian that share no row can be perturbed
//! together, because each output then sees the change of at most one of
//! them. A colouring puts columns that do share a row in different groups,
//! and one call per group recovers every nonzero.

use super::sparsity::SparsityPattern;

/// The order in which the greedy colouring visits the columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColumnOrder {
    /// First to last, as Curtis, Powell and Reid do: optimal on banded
    /// patterns (one colour per column of the band).
    #[default]
    Natural,
    /// The columns that intersect the most others first (Welsh and
    /// Powell), which often needs fewer colours on irregular patterns.
    LargestFirst,
}

/// An assignment of a colour (a group number) to each column of a
/// sparsity pattern, such that no two columns of a colour share a row.
///
/// ```
/// use cps_runtime::ops::blackbox::{Colouring, SparsityPattern};
///
/// // A tridiagonal pattern needs three colours, whatever its size:
/// // columns j and j + 3 never share a row.
/// let pattern = SparsityPattern::banded(100, 1, 1);
/// let colouring = Colouring::greedy(&pattern);
/// assert_eq!(colouring.count(), 3);
/// assert_eq!(colouring.groups()[1][..3], [1, 4, 7]);
/// assert!(colouring.is_valid_for(&pattern));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Colouring {
    colours: Vec<usize>,
    count: usize,
}

impl Colouring {
    /// The greedy colouring in the natural order of the columns (see
    /// [`ColumnOrder::Natural`]).
    pub fn greedy(pattern: &SparsityPattern) -> Self {
        Colouring::greedy_in(pattern, ColumnOrder::Natural)
    }

    /// The greedy colouring visiting the columns in `order`: each column
    /// takes the smallest colour none of the columns it shares a row with
    /// has taken yet.
    pub fn greedy_in(pattern: &SparsityPattern, order: ColumnOrder) -> Self {
        let rows = pattern.rows_to_columns();
        let cols = pattern.cols();
        let neighbours = |c: usize| {
            pattern
                .column(c)
                .iter()
                .flat_map(|&r| rows[r].iter().copied())
                .filter(move |&other| other != c)
        };
        let mut visit: Vec<usize> = (0..cols).collect();
        if order == ColumnOrder::LargestFirst {
            let degree: Vec<usize> = (0..cols)
                .map(|c| {
                    let mut n: Vec<usize> = neighbours(c).collect();
                    n.sort_unstable();
                    n.dedup();
                    n.len()
                })
                .collect();
            // Stable: ties keep the natural order.
            visit.sort_by_key(|&c| std::cmp::Reverse(degree[c]));
        }
        const NONE: usize = usize::MAX;
        let mut colours = vec![NONE; cols];
        // `taken[k] == c` marks colour k as used by a neighbour of column c.
        let mut taken: Vec<usize> = Vec::new();
        let mut count = 0;
        for &c in &visit {
            for other in neighbours(c) {
                let k = colours[other];
                if k != NONE {
                    taken[k] = c;
                }
            }
            let colour = (0..count).find(|&k| taken[k] != c).unwrap_or(count);
            if colour == count {
                count += 1;
                taken.push(NONE);
            }
            colours[c] = colour;
        }
        Colouring { colours, count }
    }

    /// The number of colours: the calls that recover the Jacobian.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The colour of column `c`.
    ///
    /// # Panics
    /// When `c` is not a column of the pattern coloured.
    pub fn colour(&self, c: usize) -> usize {
        self.colours[c]
    }

    /// The columns of each colour, ascending.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let mut groups = vec![Vec::new(); self.count];
        for (c, &k) in self.colours.iter().enumerate() {
            groups[k].push(c);
        }
        groups
    }

    /// Whether this colouring fits `pattern`: one colour per column, and
    /// no two columns of a colour share a row.
    pub fn is_valid_for(&self, pattern: &SparsityPattern) -> bool {
        if self.colours.len() != pattern.cols() {
            return false;
        }
        pattern.rows_to_columns().iter().all(|columns| {
            let mut seen: Vec<usize> = columns.iter().map(|&c| self.colours[c]).collect();
            let len = seen.len();
            seen.sort_unstable();
            seen.dedup();
            seen.len() == len
        })
    }
}
