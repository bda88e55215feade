//! Sparsity patterns: which outputs of a function may depend on which
//! inputs, the structure graph colouring exploits.

/// Where a Jacobian (outputs by inputs, `rows × cols`) may be nonzero:
/// each column lists the rows (outputs) its input may change.
///
/// ```
/// use cps_runtime::ops::blackbox::SparsityPattern;
///
/// // A tridiagonal 4 × 4 pattern: output i depends on inputs i-1, i, i+1.
/// let p = SparsityPattern::banded(4, 1, 1);
/// assert_eq!(p.column(0), [0, 1]);
/// assert_eq!(p.column(2), [1, 2, 3]);
/// assert_eq!(p.nonzeros(), 10);
/// assert!(p.contains(3, 2) && !p.contains(3, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparsityPattern {
    rows: usize,
    /// For each column, its rows, ascending and without repeats.
    columns: Vec<Vec<usize>>,
}

impl SparsityPattern {
    /// The pattern of `rows × cols` with the given `(row, column)`
    /// positions (repeats are fine).
    ///
    /// # Panics
    /// When a position is outside the matrix.
    #[track_caller]
    pub fn new(
        rows: usize,
        cols: usize,
        positions: impl IntoIterator<Item = (usize, usize)>,
    ) -> Self {
        let mut columns = vec![Vec::new(); cols];
        for (r, c) in positions {
            assert!(
                r < rows && c < cols,
                "SparsityPattern: position ({r}, {c}) is outside a {rows} × {cols} matrix"
            );
            columns[c].push(r);
        }
        for column in &mut columns {
            column.sort_unstable();
            column.dedup();
        }
        SparsityPattern { rows, columns }
    }

    /// The pattern of `rows × cols` whose nonzeros are where `nonzero(row,
    /// column)` holds.
    pub fn from_fn(rows: usize, cols: usize, nonzero: impl Fn(usize, usize) -> bool) -> Self {
        let columns = (0..cols)
            .map(|c| (0..rows).filter(|&r| nonzero(r, c)).collect())
            .collect();
        SparsityPattern { rows, columns }
    }

    /// The banded `n × n` pattern with `below` diagonals under the main one
    /// and `above` over it: output `i` depends on inputs `i - below ..= i +
    /// above`.
    pub fn banded(n: usize, below: usize, above: usize) -> Self {
        SparsityPattern::from_fn(n, n, |r, c| c <= r + above && r <= c + below)
    }

    /// The dense pattern: every output may depend on every input.
    pub fn dense(rows: usize, cols: usize) -> Self {
        SparsityPattern::from_fn(rows, cols, |_, _| true)
    }

    /// The number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.columns.len()
    }

    /// The rows column `c` may be nonzero in, ascending.
    ///
    /// # Panics
    /// When `c` is not below [`cols`](SparsityPattern::cols).
    pub fn column(&self, c: usize) -> &[usize] {
        &self.columns[c]
    }

    /// Whether element `(r, c)` may be nonzero.
    pub fn contains(&self, r: usize, c: usize) -> bool {
        self.columns
            .get(c)
            .is_some_and(|rows| rows.binary_search(&r).is_ok())
    }

    /// The number of positions that may be nonzero.
    pub fn nonzeros(&self) -> usize {
        self.columns.iter().map(Vec::len).sum()
    }

    /// For each row, the columns that may be nonzero in it, ascending.
    pub(crate) fn rows_to_columns(&self) -> Vec<Vec<usize>> {
        let mut rows = vec![Vec::new(); self.rows];
        for (c, column) in self.columns.iter().enumerate() {
            for &r in column {
                rows[r].push(c);
            }
        }
        rows
    }
}
