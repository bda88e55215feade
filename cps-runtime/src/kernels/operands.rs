//! Where the operands of the two small products lie: `A` and `B` with
//! contiguous rows, and the output `C`.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Raw views of `A`, `B` and `C`, each a pointer to its first element and
/// the distance between its rows (the columns are contiguous), with the
/// product's dimensions: `C` is `m × n` and `k` is the inner dimension.
/// What `A` and `B` hold depends on the product (each kernel says).
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub(crate) a: *const f32,
    pub(crate) lda: usize,
    pub(crate) b: *const f32,
    pub(crate) ldb: usize,
    pub(crate) c: *mut f32,
    pub(crate) ldc: usize,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

impl Operands {
    /// The operands of `c`'s product of `a` and `b` with inner dimension
    /// `k`, if every one has contiguous, non-overlapping rows. The pointers
    /// are valid only while the views are: the caller runs its kernel at
    /// once.
    pub(crate) fn of(
        a: &ArrayView2<'_, f32>,
        b: &ArrayView2<'_, f32>,
        c: &mut ArrayViewMut2<'_, f32>,
        k: usize,
    ) -> Option<Self> {
        let (m, n) = c.dim();
        Some(Operands {
            lda: row_stride(a.dim(), a.strides())?,
            ldb: row_stride(b.dim(), b.strides())?,
            ldc: row_stride((m, n), c.strides())?,
            a: a.as_ptr(),
            b: b.as_ptr(),
            c: c.as_mut_ptr(),
            m,
            n,
            k,
        })
    }
}

/// The distance between rows of a matrix whose rows are contiguous (every
/// matrix of at most one row or column counts), if they are and do not
/// overlap.
pub(crate) fn row_stride(shape: (usize, usize), strides: &[isize]) -> Option<usize> {
    let (rows, cols) = shape;
    if cols > 1 && strides[1] != 1 {
        return None;
    }
    if rows <= 1 {
        return Some(cols);
    }
    usize::try_from(strides[0]).ok().filter(|&s| s >= cols)
}
