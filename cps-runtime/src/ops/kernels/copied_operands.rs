//! Any small product `C = A·B` (or `C = A·B + C`) on the weight-gradient
//! kernel of `transposed_products.rs`, which computes `Uᵀ·V` from
//! row-major `U` and `V`: here `U = Aᵀ` and `V = B`, each copied into a
//! row-major pooled buffer when it does not already lie that way.
//!
//! It serves the products a batch makes through a layer with few outputs,
//! such as a classifier over all of a tree's nodes: `H·Wᵀ` forward,
//! `G·W` and `Gᵀ·H` backward, none of which the other kernels take. A
//! general GEMM would copy its operands too, into a buffer it allocates at
//! every call in a size that follows the batch; these copies come from
//! the pool instead. The sums are the kernel's, so the results are
//! matrixmultiply's bits for an inner dimension of one panel.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix2};

use super::operands::{Operands, row_stride};
use super::transposed_products::transposed_product;
use super::vector::Width;
use crate::var::pool;

/// `C = A·B`, plus `C` when `accumulate`, where `A` is `m × k` and `B` is
/// `k × n` in any layout. Returns `false`, touching nothing, when `C`'s
/// rows are not contiguous.
///
/// # Safety
/// The processor must support AVX2 and FMA (and AVX-512F where
/// [`Width::widest`] says sixteen lanes); `c` is `m × n`.
pub(super) unsafe fn product_of_copies(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    accumulate: bool,
    c: &mut ArrayViewMut2<'_, f32>,
) -> bool {
    if row_stride(c.dim(), c.strides()).is_none() {
        return false;
    }
    let k = a.ncols();
    let u_copy = row_major_copy(a.t());
    let v_copy = row_major_copy(b);
    let u = u_copy.as_ref().map_or(a.t(), |u| u.view());
    let v = v_copy.as_ref().map_or(b, |v| v.view());
    let operands = Operands::of(&u, &v, c, k).expect("row-major operands");
    // SAFETY: as required of the caller; `u` and `v` are views of `k`
    // rows of `m` and `n` elements with contiguous rows, and `c` is a
    // unique borrow, so it overlaps neither.
    unsafe { transposed_product(operands, accumulate, Width::widest()) };
    for copy in [u_copy, v_copy].into_iter().flatten() {
        pool::recycle(copy.into_dyn());
    }
    true
}

/// A row-major copy of `matrix` in a pooled buffer, or `None` when its
/// rows are already contiguous.
fn row_major_copy(matrix: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
    if row_stride(matrix.dim(), matrix.strides()).is_some() {
        return None;
    }
    let mut copy = pool::scratch(Ix2(matrix.nrows(), matrix.ncols()));
    copy.assign(&matrix);
    Some(copy)
}
