//! Where a dense product runs: which kernel takes it, and whether its
//! rows are split with the [second core](crate::SecondCore).
//!
//! Operations ask here for `C = alpha·A·B + beta·C` ([`gemm`]) and for
//! the slice forms of the matrix-vector products; the kernels below
//! compute on the slices they are given and know nothing of threads or
//! pools. A split hands the first half of the rows to the partner thread
//! (see `second_core.rs`) and keeps the second.

use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

use super::second_core;
use crate::element::Element;
use crate::kernels::{self, MatVecKernels, Scratch};
use crate::memory;

/// The pool's buffers, for the kernels that copy or pack an operand.
fn scratch<A: Element>() -> Scratch<A> {
    Scratch {
        take: memory::stale,
        give: memory::give,
    }
}

/// `y = alpha·M·v + beta·y` ([`MatVecKernels::mat_vec`]), with the first
/// half of `M`'s rows on the [second core](crate::SecondCore) when one is
/// active.
pub(crate) fn mat_vec<A: Element>(alpha: A, m: &[A], v: &[A], beta: A, y: &mut [A]) {
    let cols = v.len();
    match second_core::split_point(y.len(), m.len()) {
        Some(half) => {
            let (m_first, m_second) = m.split_at(half * cols);
            let (y_first, y_second) = y.split_at_mut(half);
            second_core::split_with_partner(
                || MatVecKernels::mat_vec(alpha, m_first, v, beta, y_first),
                || MatVecKernels::mat_vec(alpha, m_second, v, beta, y_second),
            )
        }
        None => MatVecKernels::mat_vec(alpha, m, v, beta, y),
    }
}

/// `y = alpha·Mᵀ·g + beta·y` ([`MatVecKernels::mat_t_vec`]), with the
/// first half of `M`'s rows on the [second core](crate::SecondCore) when
/// one is active: each core sums its rows, and the partner's partial sum
/// is added last.
pub(crate) fn mat_t_vec<A: Element>(alpha: A, m: &[A], g: &[A], beta: A, y: &mut [A]) {
    let cols = y.len();
    match second_core::split_point(g.len(), m.len()) {
        Some(half) => {
            let (m_first, m_second) = m.split_at(half * cols);
            let (g_first, g_second) = g.split_at(half);
            let mut partial = vec![A::zero(); cols];
            second_core::split_with_partner(
                || MatVecKernels::mat_t_vec(alpha, m_first, g_first, A::zero(), &mut partial),
                || MatVecKernels::mat_t_vec(alpha, m_second, g_second, beta, y),
            );
            for (out, p) in y.iter_mut().zip(partial) {
                *out += p;
            }
        }
        None => MatVecKernels::mat_t_vec(alpha, m, g, beta, y),
    }
}

/// `Y = alpha·X·Mᵀ + beta·Y` for a few inputs (the rows of `X`, `k × c`)
/// and a row-major `M` (`rows × c`): the product of a small batch with a
/// weight matrix. `M` is read from memory once, block by block, and each
/// block serves every input while it is in L1, so a batch of `k` costs
/// little more than one matrix-vector product. `X` and `Y` need
/// contiguous rows.
pub(crate) fn mat_vecs<A: Element>(
    alpha: A,
    m: &[A],
    xs: ArrayView2<'_, A>,
    beta: A,
    ys: ArrayViewMut2<'_, A>,
) {
    let cols = xs.ncols();
    match second_core::split_point(ys.ncols(), m.len()) {
        Some(half) => {
            let (m_first, m_second) = m.split_at(half * cols);
            let (y_first, y_second) = ys.split_at(Axis(1), half);
            second_core::split_with_partner(
                || kernels::blocked_mat_vecs(alpha, m_first, xs, beta, y_first),
                || kernels::blocked_mat_vecs(alpha, m_second, xs, beta, y_second),
            )
        }
        None => kernels::blocked_mat_vecs(alpha, m, xs, beta, ys),
    }
}

/// `DX = alpha·G·M + beta·DX` for a few rows of `G` (`k × rows`) and a
/// row-major `M` (`rows × c`): a small batch's gradient through a weight
/// matrix, reading `M` once as [`mat_vecs`] does. With a second core,
/// each core sums its half of `M`'s rows and the partner's partial sums
/// are added last.
pub(crate) fn mat_t_vecs<A: Element>(
    alpha: A,
    m: &[A],
    gs: ArrayView2<'_, A>,
    beta: A,
    mut dxs: ArrayViewMut2<'_, A>,
) {
    let cols = dxs.ncols();
    match second_core::split_point(gs.ncols(), m.len()) {
        Some(half) => {
            let (m_first, m_second) = m.split_at(half * cols);
            let (g_first, g_second) = gs.split_at(Axis(1), half);
            let mut partial = Array2::zeros(dxs.raw_dim());
            second_core::split_with_partner(
                || {
                    kernels::blocked_mat_t_vecs(
                        alpha,
                        m_first,
                        g_first,
                        A::zero(),
                        partial.view_mut(),
                    )
                },
                || kernels::blocked_mat_t_vecs(alpha, m_second, g_second, beta, dxs.view_mut()),
            );
            dxs += &partial;
        }
        None => kernels::blocked_mat_t_vecs(alpha, m, gs, beta, dxs),
    }
}

/// `y = alpha·m·v + beta·y`. A matrix stored row-major, or the transpose
/// of one (a gradient's `Wᵀ·g`), runs on the crate's matrix-vector kernels
/// (see `kernels/mod.rs`); other layouts on ndarray's general product.
fn matrix_times_vector<A: Element>(
    alpha: A,
    m: ArrayView2<'_, A>,
    v: ArrayView1<'_, A>,
    beta: A,
    mut y: ArrayViewMut1<'_, A>,
) {
    if let (Some(v), Some(y)) = (v.as_slice(), y.as_slice_mut()) {
        if let Some(rows) = m.as_slice() {
            return mat_vec(alpha, rows, v, beta, y);
        }
        if let Some(columns) = m.t().as_slice() {
            return mat_t_vec(alpha, columns, v, beta, y);
        }
    }
    general_mat_vec_mul(alpha, &m, &v, beta, &mut y);
}

/// `c = alpha·a·b + beta·c`. Products with a single output row or column
/// (the vector forms, and a batch of one) are matrix-vector products:
/// a general GEMM would spend more time packing its operands than
/// multiplying them.
///
/// With a [second core](crate::SecondCore), a large product splits its
/// rows: the partner computes the first half of `c`'s rows (from the first
/// half of `a`'s), the caller the rest.
///
/// With `beta = 0`, every path writes `c` without reading it, so its old
/// values (stale, even NaN) do not matter: results are made in
/// [`memory::scratch`] buffers.
pub(crate) fn gemm<A: Element>(
    alpha: A,
    a: ArrayView2<'_, A>,
    b: ArrayView2<'_, A>,
    beta: A,
    mut c: ArrayViewMut2<'_, A>,
) {
    if c.nrows() == 1 {
        // c[0, :] = b^T · a[0, :]
        matrix_times_vector(alpha, b.t(), a.row(0), beta, c.row_mut(0));
    } else if c.ncols() == 1 {
        matrix_times_vector(alpha, a, b.column(0), beta, c.column_mut(0));
    } else if let Some(kernel) = few_rows_kernel(&a, &b, &c) {
        match kernel {
            FewRows::TimesTransposed(m) => mat_vecs(alpha, m, a, beta, c),
            FewRows::Times(m) => mat_t_vecs(alpha, m, a, beta, c),
        }
    } else if let Some(half) = second_core::split_point(c.nrows(), a.len() + c.len()) {
        let (a_first, a_second) = a.split_at(Axis(0), half);
        let (mut c_first, mut c_second) = c.split_at(Axis(0), half);
        second_core::split_with_partner(
            || general_product(alpha, a_first, b, beta, &mut c_first),
            || general_product(alpha, a_second, b, beta, &mut c_second),
        );
    } else {
        general_product(alpha, a, b, beta, &mut c);
    }
}

/// Whether [`gemm`] computes a parameter's weight gradient from `k`
/// deferred rows (`Uᵀ·V` into a `rows × cols` standard-layout buffer) with
/// the small-product kernels, on one core: not as a vector product, not
/// as a few-row product, not split with the second core. Then a kernel
/// that runs the same tiles (Adagrad's fused step) gives the same bits.
pub(crate) fn deferred_product_uses_tiles(rows: usize, cols: usize, k: usize) -> bool {
    // `Uᵀ` has contiguous rows (so a few-row product) only when k <= 1.
    k >= 2
        && rows >= 2
        && cols >= 2
        && second_core::split_point(rows, rows * k + rows * cols).is_none()
}

/// `c = alpha·a·b + beta·c` by ndarray's GEMM or, with the same bits and
/// without allocating, by a small-product kernel
/// ([`small_product`](kernels::MatVecKernels::small_product)): a weight
/// gradient made from deferred rows, a few rows through a weight, or any
/// other batch of up to 64 rows or small product.
fn general_product<A: Element>(
    alpha: A,
    a: ArrayView2<'_, A>,
    b: ArrayView2<'_, A>,
    beta: A,
    c: &mut ArrayViewMut2<'_, A>,
) {
    if alpha == A::one() && A::small_product(a, b, beta, c, &scratch()) {
        return;
    }
    general_mat_mul(alpha, &a, &b, beta, c);
}

/// Products with at most this many output rows (a small batch through a
/// weight matrix) run on the blocked matrix-vector kernels, which read the
/// matrix once; a general GEMM would copy ("pack") the whole matrix first.
const FEW_ROWS: usize = 8;

/// How a product of a few rows with a row-major matrix `M` is computed.
enum FewRows<'m, A> {
    /// `c = a·Mᵀ`: `b` is the transpose of `M`.
    TimesTransposed(&'m [A]),
    /// `c = a·M`.
    Times(&'m [A]),
}

/// The kernel for `c = a·b` when `c` has at most [`FEW_ROWS`] rows, `a`
/// and `c` have contiguous rows and `b` is a row-major matrix or the
/// transpose of one.
fn few_rows_kernel<'m, A: Element>(
    a: &ArrayView2<'_, A>,
    b: &ArrayView2<'m, A>,
    c: &ArrayViewMut2<'_, A>,
) -> Option<FewRows<'m, A>> {
    let rows_contiguous = |strides: &[isize], ncols: usize| ncols <= 1 || strides[1] == 1;
    if c.nrows() > FEW_ROWS
        || !rows_contiguous(a.strides(), a.ncols())
        || !rows_contiguous(c.strides(), c.ncols())
    {
        return None;
    }
    if let Some(m) = (*b).reversed_axes().to_slice() {
        return Some(FewRows::TimesTransposed(m));
    }
    b.to_slice().map(FewRows::Times)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 8.0)
            .collect()
    }

    /// The blocked few-rows kernels against the definition, over block
    /// remainders, alone and with the second core splitting the matrix.
    #[test]
    fn few_rows_kernels_match_the_definition() {
        use ndarray::Array2;
        for with_second_core in [false, true] {
            let _core = with_second_core.then(crate::SecondCore::start);
            for (k, rows, cols) in [(1, 5, 3), (3, 37, 300), (8, 150, 61), (2, 751, 300)] {
                let m = values(rows * cols, 1);
                let m2 = Array2::from_shape_vec((rows, cols), m.clone()).unwrap();
                let xs = Array2::from_shape_vec((k, cols), values(k * cols, 2)).unwrap();
                let gs = Array2::from_shape_vec((k, rows), values(k * rows, 3)).unwrap();
                let (alpha, beta) = (0.5f32, 2.0f32);

                let y0 = Array2::from_shape_vec((k, rows), values(k * rows, 4)).unwrap();
                let mut ys = y0.clone();
                mat_vecs(alpha, &m, xs.view(), beta, ys.view_mut());
                let want = xs.dot(&m2.t()) * alpha + &y0 * beta;
                let worst = (&ys - &want).iter().fold(0.0f32, |w, d| w.max(d.abs()));
                assert!(worst < 1e-3, "mat_vecs {k}x{rows}x{cols}: {worst}");

                let d0 = Array2::from_shape_vec((k, cols), values(k * cols, 5)).unwrap();
                let mut ds = d0.clone();
                mat_t_vecs(alpha, &m, gs.view(), beta, ds.view_mut());
                let want = gs.dot(&m2) * alpha + &d0 * beta;
                let worst = (&ds - &want).iter().fold(0.0f32, |w, d| w.max(d.abs()));
                assert!(worst < 1e-3, "mat_t_vecs {k}x{rows}x{cols}: {worst}");
            }
        }
    }
}
