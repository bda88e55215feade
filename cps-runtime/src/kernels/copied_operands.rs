//! A product `C = A·B` (or `C = A·B + C`) that no other small-product
//! kernel takes, on the weight-gradient kernel of `transposed_products.rs`,
//! which computes `Uᵀ·V` from row-major `U` and `V`: here `U = Aᵀ` and
//! `V = B`, each copied into a row-major scratch buffer when it does not
//! already lie that way.
//!
//! It serves the products a batch makes through a layer: a classifier
//! over all of a tree's nodes (`H·Wᵀ`, `G·W`, `Gᵀ·H`), a level of a tree
//! of more rows than the few-row kernels take, in either direction. A
//! general GEMM copies its operands too, into a buffer it allocates at
//! every call in a size that follows the batch; these copies come from
//! the caller's scratch buffers instead.
//!
//! The inner dimension is taken in panels of [`PANEL`] steps, as
//! matrixmultiply takes it: each element of each panel is one chain of
//! fused multiply-adds from zero, added to `C` (the first panel over it
//! when `C` is not accumulated into). So the results are its bits.
//!
//! The products it takes (up to [`BATCH_ROWS`](super::BATCH_ROWS) rows,
//! or [`SMALL_PRODUCT`](super::SMALL_PRODUCT) multiply-adds) and the
//! measurements behind them are in `docs/performance.md`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Dimension, Ix2, s};

use super::PANEL;
use super::Scratch;
use super::operands::{Operands, row_stride};
use super::transposed_products::transposed_product;
use super::vector::Width;

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
    scratch: &Scratch<f32>,
) -> bool {
    if row_stride(c.dim(), c.strides()).is_none() {
        return false;
    }
    let k = a.ncols();
    let u_copy = row_major_copy(a.t(), scratch);
    let v_copy = row_major_copy(b, scratch);
    let u = u_copy.as_ref().map_or(a.t(), |u| u.view());
    let v = v_copy.as_ref().map_or(b, |v| v.view());
    let mut start = 0;
    while start < k {
        let end = (start + PANEL).min(k);
        let (u_panel, v_panel) = (u.slice(s![start..end, ..]), v.slice(s![start..end, ..]));
        let operands =
            Operands::of(&u_panel, &v_panel, c, end - start).expect("row-major operands");
        // SAFETY: as required of the caller; the panels are views of
        // `end - start` rows of `m` and `n` elements with contiguous rows,
        // and `c` is a unique borrow, so it overlaps neither.
        unsafe { transposed_product(operands, accumulate || start > 0, Width::widest()) };
        start = end;
    }
    for copy in [u_copy, v_copy].into_iter().flatten() {
        (scratch.give)(copy.into_raw_vec_and_offset().0);
    }
    true
}

/// A row-major copy of `matrix` in a scratch buffer, or `None` when its
/// rows are already contiguous.
fn row_major_copy(matrix: ArrayView2<'_, f32>, scratch: &Scratch<f32>) -> Option<Array2<f32>> {
    if row_stride(matrix.dim(), matrix.strides()).is_some() {
        return None;
    }
    let shape = Ix2(matrix.nrows(), matrix.ncols());
    let mut data = (scratch.take)(shape.size());
    data.truncate(shape.size());
    // SAFETY: `data` has exactly as many elements as the shape (a buffer
    // from `take` has at least that many), in standard layout.
    let mut copy = unsafe { Array2::from_shape_vec_unchecked(shape, data) };
    copy.assign(&matrix);
    Some(copy)
}
