//! Matrix-vector kernels on contiguous row-major matrices: the two
//! products every dense layer of a dynamic model runs once per node,
//! `y = M·v` (forward) and `y += Mᵀ·g` (the input's gradient).
//!
//! A node-at-a-time model cannot batch them, and a matrix larger than the
//! L2 cache (the Tree-LSTM's 900 KB `U`) is streamed from L3 at every call,
//! so what matters is reading the matrix once, at full width: four rows at
//! a time, eight lanes per row. `f32` runs hand-written AVX2/FMA code when
//! the processor has it (checked once at run time, so the crate needs no
//! `target-cpu` flag); `f64` (used for gradient checks) and other
//! processors run portable code with the same summation order per lane.
//!
//! Two small matrix products live here too, for the shapes a tree at a
//! time produces, where a general GEMM spends much of its time packing:
//! a weight gradient from a few deferred rows (`transposed_products.rs`)
//! and a few rows through a weight (`times_transposed.rs`); any other
//! small product runs on the first, its operands copied into place
//! (`copied_operands.rs`). All give ndarray's `general_mat_mul`'s bits, so
//! choosing them changes no result.

use ndarray::{ArrayView2, ArrayViewMut2};
use smallvec::SmallVec;

mod dual;
pub(crate) mod pool;
pub(crate) mod simd;
pub(crate) mod vector_math;

#[cfg(all(test, target_arch = "x86_64"))]
mod bit_identity_tests;
#[cfg(target_arch = "x86_64")]
mod copied_operands;
#[cfg(target_arch = "x86_64")]
pub(crate) mod operands;
#[cfg(target_arch = "x86_64")]
mod times_transposed;
#[cfg(target_arch = "x86_64")]
pub(crate) mod transposed_products;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vector;

/// Runs `body` once for every vector width the `f32` kernels can run at
/// on this processor (held through `simd::Level::each`), naming it; once,
/// as "portable", where there are no such kernels.
#[cfg(test)]
pub(crate) fn each_kernel_width(mut body: impl FnMut(&str)) {
    let kernels = crate::kernels::simd::avx2_available();
    crate::kernels::simd::Level::each(|level| match level {
        crate::kernels::simd::Level::Baseline if kernels => {}
        crate::kernels::simd::Level::Baseline => body("portable"),
        #[cfg(target_arch = "x86_64")]
        level => body(&format!("{level:?}")),
    });
}

/// The longest inner dimension given to the weight-gradient kernel of
/// [`MatVecKernels::small_product`]: beyond it `V` no longer stays in L1
/// while a block of rows is made, and a packing GEMM is faster; up to it
/// this kernel is at least as fast, the more so the shorter `k`
/// (measurements in `docs/performance.md`). Up to it the kernel also
/// spares the allocator a packing buffer per product (see
/// [`BATCH_ROWS`]): a tree of SST has at most 55 internal nodes, whose
/// rows make `U_int`'s gradient.
pub(crate) const SHORT_INNER: usize = 64;

/// The longest inner dimension matrixmultiply's `f32` GEMM sums in one
/// panel (its `kc`): up to it, every element of its product is one chain
/// of fused multiply-adds from zero, as the weight-gradient kernel makes
/// it; longer ones it sums panel by panel, each panel's chain added to
/// the output.
const PANEL: usize = 256;

/// The most multiply-adds (`m·n·k`) of a product of any shape whose
/// operands are copied into place for the weight-gradient kernel when no
/// other kernel takes it (a classifier over a tree's nodes: 111 × 150 × 5
/// = 83,250 at most on SST). Copying costs `k·(m + n)` elements, small
/// beside the product only while it is small or has few rows.
const SMALL_PRODUCT: usize = 1 << 17;

/// The most rows of a product (a batch through a weight, such as a level
/// of a tree) given to the weight-gradient kernel with its operands copied
/// into place, however large the rest: matrixmultiply's own block of rows
/// (its `mc`), so that the kernel reads the weight no more often than a
/// packing GEMM reads its packed copy per panel. On the Tree-LSTM's
/// products it is faster than matrixmultiply for the gradient through
/// `U_int` at every batch size measured up to this one and for the
/// classifier's backward products, even on the leaf gates (`W_leaf`
/// copied first), and slower only on the classifier's forward product,
/// whose five outputs fill five of sixteen lanes (measurements in
/// `docs/performance.md`). Unlike matrixmultiply, it allocates nothing:
/// matrixmultiply's buffers, sized to each batch, come from the
/// allocator's heap at every call, and one of up to 512 KiB placed
/// somewhere new touches new pages of the heap, so that resident memory
/// creeps up epoch after epoch.
const BATCH_ROWS: usize = 64;

/// The most rows of `X` given to the few-rows kernel of
/// [`MatVecKernels::small_product`]: it reads `W` once per 24 rows, where
/// a packing GEMM reads it once and copies it. The fewer the rows, the
/// more that copy weighs: at this many the kernel is still faster, at 56
/// the GEMM is (measurements in `docs/performance.md`).
const FEW_INPUTS: usize = 40;

/// The fewest rows of `W` worth the few-rows kernel of
/// [`MatVecKernels::small_product`]: with fewer (20, say) the packing GEMM
/// is faster (see `docs/performance.md`).
const MANY_OUTPUTS: usize = 32;

/// `y = alpha·M·v + beta·y` for a row-major `M` of `y.len()` rows and
/// `v.len()` columns. `beta = 0` overwrites `y` (even if it holds NaN).
/// Also the two small products above, where a type has kernels for them.
///
/// Implemented for the [`Element`] types, and sealed with
/// them: the trait is public only so that `Element` can require it.
pub trait MatVecKernels: num_traits::Float {
    /// `y = alpha·M·v + beta·y`, `M` row-major with `v.len()` columns.
    fn mat_vec(alpha: Self, m: &[Self], v: &[Self], beta: Self, y: &mut [Self]);
    /// `y = alpha·Mᵀ·g + beta·y`, `M` row-major with `g.len()` rows and
    /// `y.len()` columns: scaled additions of `M`'s rows.
    fn mat_t_vec(alpha: Self, m: &[Self], g: &[Self], beta: Self, y: &mut [Self]);
    /// `ys[k][at..at + rows] = alpha·M·xs[k] + beta·ys[k][at..at + rows]`
    /// for every input `k`: several products with one block of rows of
    /// `M`, each element of `M` loaded once for all of them. The results
    /// equal [`mat_vec`](MatVecKernels::mat_vec)'s, bit for bit.
    fn mat_vec_many(
        alpha: Self,
        m: &[Self],
        xs: &[&[Self]],
        beta: Self,
        ys: &mut [&mut [Self]],
        at: usize,
    ) {
        one_at_a_time(alpha, m, xs, beta, ys, at);
    }
    /// `dxs[k] = alpha·Mᵀ·gs[k][at..at + rows] + beta·dxs[k]` for every
    /// input `k`, `M` row-major with `rows` rows and `dxs[k].len()`
    /// columns: several transposed products with one block of rows of
    /// `M`, each element of `M` loaded once for all of them. The results
    /// equal [`mat_t_vec`](MatVecKernels::mat_t_vec)'s, bit for bit.
    fn mat_t_vec_many(
        alpha: Self,
        m: &[Self],
        gs: &[&[Self]],
        beta: Self,
        dxs: &mut [&mut [Self]],
        at: usize,
    ) {
        transposed_one_at_a_time(alpha, m, gs, beta, dxs, at);
    }
    /// `C = A·B + beta·C` on one of this type's small-product kernels,
    /// when one fits: a weight gradient from deferred rows (`A` the
    /// transpose of a row-major `U` with a short inner dimension, `B`
    /// row-major) or a few rows through a weight (`A` row-major, `B` the
    /// transpose of a row-major `W`), with `beta` 0 or 1. Returns `false`,
    /// leaving `C` alone, when none fits. The results equal ndarray's
    /// `general_mat_mul`'s, bit for bit.
    fn small_product(
        a: ArrayView2<'_, Self>,
        b: ArrayView2<'_, Self>,
        beta: Self,
        c: &mut ArrayViewMut2<'_, Self>,
        scratch: &Scratch<Self>,
    ) -> bool {
        let _ = (a, b, beta, c, scratch);
        false
    }
}

/// [`MatVecKernels::mat_vec_many`] as one [`MatVecKernels::mat_vec`] per input.
fn one_at_a_time<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    xs: &[&[A]],
    beta: A,
    ys: &mut [&mut [A]],
    at: usize,
) {
    for (x, y) in xs.iter().zip(ys.iter_mut()) {
        let rows = m.len() / x.len().max(1);
        A::mat_vec(alpha, m, x, beta, &mut y[at..at + rows]);
    }
}

/// [`MatVecKernels::mat_t_vec_many`] as one [`MatVecKernels::mat_t_vec`]
/// per input.
fn transposed_one_at_a_time<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    gs: &[&[A]],
    beta: A,
    dxs: &mut [&mut [A]],
    at: usize,
) {
    for (g, dx) in gs.iter().zip(dxs.iter_mut()) {
        let rows = m.len() / dx.len().max(1);
        A::mat_t_vec(alpha, m, &g[at..at + rows], beta, dx);
    }
}

/// Where a kernel that copies or packs an operand gets its buffers, and
/// gives them back: the caller's, so that kernels keep no memory of their
/// own.
pub struct Scratch<A> {
    /// A buffer of at least `len` elements, of any contents.
    pub take: fn(len: usize) -> Vec<A>,
    /// Takes a buffer back once the kernel is done with it.
    pub give: fn(Vec<A>),
}

impl<A: Clone + Default> Scratch<A> {
    /// Scratch straight from the allocator, for tests of the kernels alone.
    #[cfg(test)]
    pub(crate) fn allocating() -> Self {
        fn take<A: Clone + Default>(len: usize) -> Vec<A> {
            vec![A::default(); len]
        }
        Scratch { take, give: drop }
    }
}

/// Checks the slice lengths every kernel relies on.
#[inline]
fn check_lengths(m: usize, rows: usize, cols: usize) {
    assert_eq!(
        m,
        rows * cols,
        "matrix-vector kernel: a {rows}×{cols} matrix needs {} elements, got {m}",
        rows * cols
    );
}

/// The portable kernels, generic over the element type.
mod portable {
    use num_traits::Float;

    const LANES: usize = 8;

    #[inline(always)]
    fn dot<A: Float>(row: &[A], v: &[A]) -> A {
        let mut lanes = [A::zero(); LANES];
        let (row_body, row_tail) = row.split_at(row.len() - row.len() % LANES);
        let (v_body, v_tail) = v.split_at(row_body.len());
        for (r, x) in row_body.chunks_exact(LANES).zip(v_body.chunks_exact(LANES)) {
            for lane in 0..LANES {
                lanes[lane] = lanes[lane] + r[lane] * x[lane];
            }
        }
        let mut sum = lanes.iter().fold(A::zero(), |s, &l| s + l);
        for (&r, &x) in row_tail.iter().zip(v_tail) {
            sum = sum + r * x;
        }
        sum
    }

    pub(super) fn mat_vec<A: Float>(alpha: A, m: &[A], v: &[A], beta: A, y: &mut [A]) {
        let cols = v.len();
        super::check_lengths(m.len(), y.len(), cols);
        if cols == 0 {
            scale(beta, y);
            return;
        }
        for (out, row) in y.iter_mut().zip(m.chunks_exact(cols)) {
            let product = alpha * dot(row, v);
            *out = if beta.is_zero() {
                product
            } else {
                product + beta * *out
            };
        }
    }

    pub(super) fn mat_t_vec<A: Float>(alpha: A, m: &[A], g: &[A], beta: A, y: &mut [A]) {
        let cols = y.len();
        super::check_lengths(m.len(), g.len(), cols);
        scale(beta, y);
        if cols == 0 {
            return;
        }
        for (&scale, row) in g.iter().zip(m.chunks_exact(cols)) {
            let scale = alpha * scale;
            for (out, &r) in y.iter_mut().zip(row) {
                *out = *out + scale * r;
            }
        }
    }

    /// `y = beta·y`, where `beta = 0` clears.
    pub(super) fn scale<A: Float>(beta: A, y: &mut [A]) {
        if beta.is_zero() {
            y.fill(A::zero());
        } else if beta != A::one() {
            for out in y {
                *out = *out * beta;
            }
        }
    }
}

/// AVX2/FMA kernels for `f32`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    fn horizontal_sum(v: __m256) -> f32 {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
    }

    /// `y = alpha·M·v + beta·y`, four rows at a time.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA; `m` must
    /// hold `y.len() * v.len()` elements (checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mat_vec(alpha: f32, m: &[f32], v: &[f32], beta: f32, y: &mut [f32]) {
        let (rows, cols) = (y.len(), v.len());
        debug_assert_eq!(m.len(), rows * cols);
        let body = cols - cols % 8;
        let finish = |sum: f32, out: &mut f32| {
            *out = if beta == 0.0 {
                alpha * sum
            } else {
                alpha * sum + beta * *out
            };
        };
        let vp = v.as_ptr();
        let mut r = 0;
        while r + 4 <= rows {
            // SAFETY: rows r..r+4 lie inside `m` (r + 4 <= rows and
            // m.len() == rows * cols); every load below reads
            // [i, i + 8) with i + 8 <= body <= cols. Prefetches address
            // rows r+4..r+8, only when r + 8 <= rows.
            unsafe {
                let p = m.as_ptr().add(r * cols);
                let (p0, p1, p2, p3) = (p, p.add(cols), p.add(2 * cols), p.add(3 * cols));
                let mut a0 = _mm256_setzero_ps();
                let mut a1 = _mm256_setzero_ps();
                let mut a2 = _mm256_setzero_ps();
                let mut a3 = _mm256_setzero_ps();
                let mut i = 0;
                // The next four rows are requested while these are summed:
                // one prefetch per 64-byte line of each, so that a matrix
                // streamed from L3 (the Tree-LSTM's `U_int`) arrives
                // before it is needed (see `docs/performance.md`).
                let ahead = 4 * cols;
                while i < body {
                    if i % 16 == 0 && r + 8 <= rows {
                        _mm_prefetch::<_MM_HINT_T0>(p0.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p1.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p2.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p3.add(i + ahead) as *const i8);
                    }
                    let x = _mm256_loadu_ps(vp.add(i));
                    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(i)), x, a0);
                    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(i)), x, a1);
                    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(i)), x, a2);
                    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(i)), x, a3);
                    i += 8;
                }
                let mut sums = [
                    horizontal_sum(a0),
                    horizontal_sum(a1),
                    horizontal_sum(a2),
                    horizontal_sum(a3),
                ];
                for i in body..cols {
                    let x = *vp.add(i);
                    sums[0] += *p0.add(i) * x;
                    sums[1] += *p1.add(i) * x;
                    sums[2] += *p2.add(i) * x;
                    sums[3] += *p3.add(i) * x;
                }
                for (k, sum) in sums.into_iter().enumerate() {
                    finish(sum, &mut y[r + k]);
                }
            }
            r += 4;
        }
        while r < rows {
            // SAFETY: row r lies inside `m`; loads as above.
            unsafe {
                let p = m.as_ptr().add(r * cols);
                let mut a = _mm256_setzero_ps();
                let mut i = 0;
                while i < body {
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(vp.add(i)), a);
                    i += 8;
                }
                let mut sum = horizontal_sum(a);
                for i in body..cols {
                    sum += *p.add(i) * *vp.add(i);
                }
                finish(sum, &mut y[r]);
            }
            r += 1;
        }
    }

    /// [`MatVecKernels::mat_vec_many`](super::MatVecKernels::mat_vec_many)
    /// for `K` inputs, `R` rows of `M` at a time (then one at a time):
    /// `R·K` accumulators, and each loaded vector of `M` serves all `K`
    /// inputs. Every (row, input) pair is summed in [`mat_vec`]'s order
    /// (eight lanes, then the horizontal sum, then the tail), so the
    /// results are the same bits whatever `K` and `R` are.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA; `m` must hold a whole
    /// number of rows of `xs[k].len()` columns for every `k`, and each
    /// `ys[k]` at least `at` plus that many elements (checked by the
    /// caller).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mat_vec_group<const K: usize, const R: usize>(
        alpha: f32,
        m: &[f32],
        xs: [&[f32]; K],
        beta: f32,
        ys: &mut [&mut [f32]],
        at: usize,
    ) {
        let cols = xs[0].len();
        let rows = m.len() / cols;
        let mut r = 0;
        while r + R <= rows {
            // SAFETY: rows r..r+R lie inside `m`; as required of the caller.
            unsafe { group_rows::<K, R>(alpha, m, &xs, beta, ys, at, r) };
            r += R;
        }
        while r < rows {
            // SAFETY: row r lies inside `m`; as required of the caller.
            unsafe { group_rows::<K, 1>(alpha, m, &xs, beta, ys, at, r) };
            r += 1;
        }
    }

    /// Rows `r..r + N` of [`mat_vec_group`], for all `K` inputs.
    ///
    /// # Safety
    /// As [`mat_vec_group`], and rows `r..r + N` lie inside `m`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn group_rows<const K: usize, const N: usize>(
        alpha: f32,
        m: &[f32],
        xs: &[&[f32]; K],
        beta: f32,
        ys: &mut [&mut [f32]],
        at: usize,
        r: usize,
    ) {
        let cols = xs[0].len();
        let body = cols - cols % 8;
        let finish = |sum: f32, out: &mut f32| {
            *out = if beta == 0.0 {
                alpha * sum
            } else {
                alpha * sum + beta * *out
            };
        };
        // SAFETY: rows r..r+N lie inside `m` (the caller's contract), and
        // every load reads [i, i + 8) with i + 8 <= body <= cols, from a
        // row of `m` or an input of `cols` elements.
        unsafe {
            let p: [*const f32; N] = std::array::from_fn(|j| m.as_ptr().add((r + j) * cols));
            let mut acc = [[_mm256_setzero_ps(); K]; N];
            let mut i = 0;
            // The next N rows are requested while these are summed, one
            // prefetch per 64-byte line, as in `mat_vec` (see
            // `docs/performance.md`).
            let ahead = N * cols;
            let prefetch = r + 2 * N <= m.len() / cols;
            while i < body {
                if prefetch && i % 16 == 0 {
                    for row in p {
                        _mm_prefetch::<_MM_HINT_T0>(row.add(i + ahead) as *const i8);
                    }
                }
                let rows: [__m256; N] = std::array::from_fn(|j| _mm256_loadu_ps(p[j].add(i)));
                for k in 0..K {
                    let x = _mm256_loadu_ps(xs[k].as_ptr().add(i));
                    for j in 0..N {
                        acc[j][k] = _mm256_fmadd_ps(rows[j], x, acc[j][k]);
                    }
                }
                i += 8;
            }
            for k in 0..K {
                for j in 0..N {
                    let mut sum = horizontal_sum(acc[j][k]);
                    for i in body..cols {
                        sum += *p[j].add(i) * *xs[k].get_unchecked(i);
                    }
                    finish(sum, &mut ys[k][at + r + j]);
                }
            }
        }
    }

    /// `y = alpha·Mᵀ·g + beta·y`: `y` is updated with four rows of `M` at
    /// a time, so it is loaded and stored once per four rows. The group
    /// kernel with one input, so that one product per input and a group
    /// are the same arithmetic by construction.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA; `m` must
    /// hold `g.len() * y.len()` elements (checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mat_t_vec(alpha: f32, m: &[f32], g: &[f32], beta: f32, y: &mut [f32]) {
        // SAFETY: as required of the caller, with `g` and `y` the group's
        // only gradient and output.
        unsafe { mat_t_vec_group::<1>(alpha, m, [g], beta, &mut [y]) }
    }

    /// [`MatVecKernels::mat_t_vec_many`](super::MatVecKernels::mat_t_vec_many)
    /// for `K` inputs: each vector of four rows of `M` is loaded once and
    /// added to all `K` outputs. Every output element receives the same
    /// operations in the same order whatever `K` is (four fused
    /// multiply-adds per four rows, the same sums in the column tail, then
    /// one row at a time), and [`mat_t_vec`] is this kernel with `K = 1`,
    /// so grouping inputs does not change a bit of the results.
    ///
    /// # Safety
    /// The processor must support AVX2 and FMA; every `gs[k]` must have
    /// `rows` elements, `dxs` at least `K` outputs of `cols` elements, and
    /// `m` must hold `rows * cols` elements (checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn mat_t_vec_group<const K: usize>(
        alpha: f32,
        m: &[f32],
        gs: [&[f32]; K],
        beta: f32,
        dxs: &mut [&mut [f32]],
    ) {
        let (rows, cols) = (gs[0].len(), dxs[0].len());
        debug_assert_eq!(m.len(), rows * cols);
        for y in &mut dxs[..K] {
            debug_assert_eq!(y.len(), cols);
            super::portable::scale(beta, y);
        }
        let body = cols - cols % 8;
        let ys: [*mut f32; K] = std::array::from_fn(|k| dxs[k].as_mut_ptr());
        let mut r = 0;
        while r + 4 <= rows {
            let s: [[f32; 4]; K] =
                std::array::from_fn(|k| std::array::from_fn(|j| alpha * gs[k][r + j]));
            // SAFETY: rows r..r+4 lie inside `m`; every access reads or
            // writes [i, i + 8) with i + 8 <= body <= cols, or a single
            // index below cols, of a row of `m` or of an output of `cols`
            // elements (the outputs are distinct `&mut` slices). Prefetches
            // address rows r+4..r+8, only when r + 8 <= rows.
            unsafe {
                let p = m.as_ptr().add(r * cols);
                let (p0, p1, p2, p3) = (p, p.add(cols), p.add(2 * cols), p.add(3 * cols));
                let mut scales = [[_mm256_setzero_ps(); 4]; K];
                for k in 0..K {
                    for j in 0..4 {
                        scales[k][j] = _mm256_set1_ps(s[k][j]);
                    }
                }
                let mut i = 0;
                // The next four rows are requested ahead, as in `mat_vec`
                // (`U_intᵀ·g` streams `U_int` from L3).
                let ahead = 4 * cols;
                while i < body {
                    if i % 16 == 0 && r + 8 <= rows {
                        _mm_prefetch::<_MM_HINT_T0>(p0.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p1.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p2.add(i + ahead) as *const i8);
                        _mm_prefetch::<_MM_HINT_T0>(p3.add(i + ahead) as *const i8);
                    }
                    let m0 = _mm256_loadu_ps(p0.add(i));
                    let m1 = _mm256_loadu_ps(p1.add(i));
                    let m2 = _mm256_loadu_ps(p2.add(i));
                    let m3 = _mm256_loadu_ps(p3.add(i));
                    for k in 0..K {
                        let y = ys[k].add(i);
                        let mut acc = _mm256_loadu_ps(y);
                        acc = _mm256_fmadd_ps(m0, scales[k][0], acc);
                        acc = _mm256_fmadd_ps(m1, scales[k][1], acc);
                        acc = _mm256_fmadd_ps(m2, scales[k][2], acc);
                        acc = _mm256_fmadd_ps(m3, scales[k][3], acc);
                        _mm256_storeu_ps(y, acc);
                    }
                    i += 8;
                }
                for i in body..cols {
                    for k in 0..K {
                        let s = &s[k];
                        *ys[k].add(i) += s[0] * *p0.add(i)
                            + s[1] * *p1.add(i)
                            + s[2] * *p2.add(i)
                            + s[3] * *p3.add(i);
                    }
                }
            }
            r += 4;
        }
        while r < rows {
            let s: [f32; K] = std::array::from_fn(|k| alpha * gs[k][r]);
            // SAFETY: row r lies inside `m`; accesses as above.
            unsafe {
                let p = m.as_ptr().add(r * cols);
                let mut scales = [_mm256_setzero_ps(); K];
                for k in 0..K {
                    scales[k] = _mm256_set1_ps(s[k]);
                }
                let mut i = 0;
                while i < body {
                    let row = _mm256_loadu_ps(p.add(i));
                    for k in 0..K {
                        let y = ys[k].add(i);
                        _mm256_storeu_ps(y, _mm256_fmadd_ps(row, scales[k], _mm256_loadu_ps(y)));
                    }
                    i += 8;
                }
                for i in body..cols {
                    for k in 0..K {
                        *ys[k].add(i) += s[k] * *p.add(i);
                    }
                }
            }
            r += 1;
        }
    }
}

impl MatVecKernels for f32 {
    fn mat_vec(alpha: f32, m: &[f32], v: &[f32], beta: f32, y: &mut [f32]) {
        check_lengths(m.len(), y.len(), v.len());
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::avx2_available() {
            // SAFETY: the processor supports AVX2 and FMA; lengths checked.
            return unsafe { avx2::mat_vec(alpha, m, v, beta, y) };
        }
        portable::mat_vec(alpha, m, v, beta, y)
    }

    fn mat_t_vec(alpha: f32, m: &[f32], g: &[f32], beta: f32, y: &mut [f32]) {
        check_lengths(m.len(), g.len(), y.len());
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::avx2_available() {
            // SAFETY: the processor supports AVX2 and FMA; lengths checked.
            return unsafe { avx2::mat_t_vec(alpha, m, g, beta, y) };
        }
        portable::mat_t_vec(alpha, m, g, beta, y)
    }

    fn mat_vec_many(
        alpha: f32,
        m: &[f32],
        xs: &[&[f32]],
        beta: f32,
        ys: &mut [&mut [f32]],
        at: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::avx2_available() && xs.first().is_some_and(|x| !x.is_empty()) {
            let cols = xs[0].len();
            let rows = m.len() / cols;
            assert!(
                m.len() == rows * cols
                    && xs.iter().all(|x| x.len() == cols)
                    && ys.len() >= xs.len()
                    && ys.iter().all(|y| y.len() >= at + rows),
                "mat_vec_many: inconsistent lengths"
            );
            // Four inputs at a time, then the rest: each vector of `M`
            // loaded serves a whole group, which beats one product per
            // input. Two inputs take four rows at a time, so that eight
            // sums are in flight as well; three and four inputs take three
            // rows (nine and twelve sums). Both are faster than two rows.
            // Twelve sums, three rows and an input fill the sixteen
            // registers; more would spill. (Measurements in
            // `docs/performance.md`.)
            let mut k = 0;
            while k < xs.len() {
                let ys = &mut ys[k..];
                // SAFETY: the processor supports AVX2 and FMA; lengths
                // checked above.
                unsafe {
                    match xs.len() - k {
                        // One input: the four-row kernel keeps more sums
                        // in flight than a group of one would.
                        1 => one_at_a_time(alpha, m, &xs[k..], beta, ys, at),
                        2 => {
                            avx2::mat_vec_group::<2, 4>(alpha, m, [xs[k], xs[k + 1]], beta, ys, at)
                        }
                        3 => avx2::mat_vec_group::<3, 3>(
                            alpha,
                            m,
                            [xs[k], xs[k + 1], xs[k + 2]],
                            beta,
                            ys,
                            at,
                        ),
                        _ => avx2::mat_vec_group::<4, 3>(
                            alpha,
                            m,
                            [xs[k], xs[k + 1], xs[k + 2], xs[k + 3]],
                            beta,
                            ys,
                            at,
                        ),
                    }
                }
                k += 4;
            }
            return;
        }
        one_at_a_time(alpha, m, xs, beta, ys, at);
    }

    fn mat_t_vec_many(
        alpha: f32,
        m: &[f32],
        gs: &[&[f32]],
        beta: f32,
        dxs: &mut [&mut [f32]],
        at: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::avx2_available() && dxs.first().is_some_and(|dx| !dx.is_empty()) {
            let cols = dxs[0].len();
            let rows = m.len() / cols;
            assert!(
                m.len() == rows * cols
                    && gs.iter().all(|g| g.len() >= at + rows)
                    && dxs.len() >= gs.len()
                    && dxs.iter().all(|dx| dx.len() == cols),
                "mat_t_vec_many: inconsistent lengths"
            );
            // Four inputs at a time, then the rest, as in `mat_vec_many`:
            // faster than one product per input for two inputs and more
            // (measurements in `docs/performance.md`).
            let g = |k: usize| &gs[k][at..at + rows];
            let mut k = 0;
            while k < gs.len() {
                let dxs = &mut dxs[k..];
                // SAFETY: the processor supports AVX2 and FMA; lengths
                // checked above.
                unsafe {
                    match gs.len() - k {
                        1 => avx2::mat_t_vec(alpha, m, g(k), beta, dxs[0]),
                        2 => avx2::mat_t_vec_group::<2>(alpha, m, [g(k), g(k + 1)], beta, dxs),
                        3 => avx2::mat_t_vec_group::<3>(
                            alpha,
                            m,
                            [g(k), g(k + 1), g(k + 2)],
                            beta,
                            dxs,
                        ),
                        _ => avx2::mat_t_vec_group::<4>(
                            alpha,
                            m,
                            [g(k), g(k + 1), g(k + 2), g(k + 3)],
                            beta,
                            dxs,
                        ),
                    }
                }
                k += 4;
            }
            return;
        }
        transposed_one_at_a_time(alpha, m, gs, beta, dxs, at);
    }

    fn small_product(
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: &mut ArrayViewMut2<'_, f32>,
        scratch: &Scratch<f32>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let ((m, k), n) = (a.dim(), b.ncols());
            let fits = crate::kernels::simd::avx2_available()
                && (beta == 0.0 || beta == 1.0)
                && m > 0
                && n > 0
                && k > 0
                && b.nrows() == k
                && c.dim() == (m, n);
            let accumulate = beta == 1.0;
            // A weight gradient from deferred rows: `U = Aᵀ`, `V = B`.
            if fits
                && k <= SHORT_INNER
                && let Some(operands) = operands::Operands::of(&a.t(), &b, c, k)
            {
                // SAFETY: the processor supports AVX2 and FMA, and
                // AVX-512F where `widest` says sixteen lanes; the views
                // have the extents and row strides given, and `c` is a
                // unique borrow, so it overlaps neither input.
                unsafe {
                    transposed_products::transposed_product(
                        operands,
                        accumulate,
                        vector::Width::widest(),
                    )
                };
                return true;
            }
            // A few rows through a weight: `X = A`, `W = Bᵀ`.
            if fits
                && m <= FEW_INPUTS
                && n >= MANY_OUTPUTS
                && let Some(operands) = operands::Operands::of(&a, &b.t(), c, k)
            {
                let mut packed = (scratch.take)(times_transposed::packed_len(m, k));
                // SAFETY: as above.
                unsafe { times_transposed::times_transposed(operands, accumulate, &mut packed) };
                (scratch.give)(packed);
                return true;
            }
            // Any other product of a batch of rows, or any small one:
            // `U = Aᵀ` and `V = B` copied into row-major buffers where
            // they are not already.
            if fits && (m <= BATCH_ROWS || m * n * k <= SMALL_PRODUCT) {
                // SAFETY: the processor supports AVX2 and FMA, and
                // AVX-512F where `widest` says sixteen lanes; `c` is
                // `m × n`.
                return unsafe { copied_operands::product_of_copies(a, b, accumulate, c, scratch) };
            }
        }
        let _ = (a, b, beta, c, scratch);
        false
    }
}

impl MatVecKernels for f64 {
    fn mat_vec(alpha: f64, m: &[f64], v: &[f64], beta: f64, y: &mut [f64]) {
        portable::mat_vec(alpha, m, v, beta, y)
    }

    fn mat_t_vec(alpha: f64, m: &[f64], g: &[f64], beta: f64, y: &mut [f64]) {
        portable::mat_t_vec(alpha, m, g, beta, y)
    }
}

/// Inputs that [`MatVecKernels::mat_vec_many`] and
/// [`MatVecKernels::mat_t_vec_many`] take in one pass over `M`; more are
/// taken a block of `M` at a time.
const GROUP: usize = 4;

/// Rows of `M` per block in [`mat_vecs`] and [`mat_t_vecs`]: a block of
/// about 16 KB stays in the L1 cache while every input passes over it.
fn block_rows(cols: usize) -> usize {
    (4096 / cols.max(1)).max(4) / 4 * 4
}

/// [`mat_vecs`] on one core: every block of [`block_rows`] rows of `M`
/// serves all the inputs ([`MatVecKernels::mat_vec_many`]).
pub(crate) fn blocked_mat_vecs<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    xs: ArrayView2<'_, A>,
    beta: A,
    mut ys: ArrayViewMut2<'_, A>,
) {
    let cols = xs.ncols();
    if cols == 0 {
        ys.map_inplace(|y| *y = if beta.is_zero() { A::zero() } else { beta * *y });
        return;
    }
    let inputs: RowSlices<'_, A> = xs
        .rows()
        .into_iter()
        .map(|x| x.to_slice().expect("inputs with contiguous rows"))
        .collect();
    let mut outputs: RowSlicesMut<'_, A> = ys
        .rows_mut()
        .into_iter()
        .map(|y| y.into_slice().expect("outputs with contiguous rows"))
        .collect();
    mat_vec_batch(alpha, m, &inputs, beta, &mut outputs);
}

/// The rows of a few-row product's inputs, as slices: inline up to eight
/// of them (the most `gemm` hands these kernels), so that a product
/// allocates nothing.
type RowSlices<'a, A> = SmallVec<[&'a [A]; 8]>;

/// The rows of a few-row product's outputs (see [`RowSlices`]).
type RowSlicesMut<'a, A> = SmallVec<[&'a mut [A]; 8]>;

/// `ys[k] = alpha·M·xs[k] + beta·ys[k]` for inputs and outputs anywhere in
/// memory, `M` row-major with `ys[k].len()` rows of `xs[k].len()`
/// columns (the same for every `k`, and at least one column): every block
/// of [`block_rows`] rows of `M` serves all the inputs while it is in L1.
/// Each result equals [`mat_vec`]'s on its own, bit for bit.
pub(crate) fn mat_vec_batch<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    xs: &[&[A]],
    beta: A,
    ys: &mut [&mut [A]],
) {
    let Some(cols) = xs.first().map(|x| x.len()) else {
        return;
    };
    if xs.len() <= GROUP {
        // One group serves every input: a single pass, prefetched ahead.
        return A::mat_vec_many(alpha, m, xs, beta, ys, 0);
    }
    let block = block_rows(cols);
    for (b, m_block) in m.chunks(block * cols).enumerate() {
        A::mat_vec_many(alpha, m_block, xs, beta, ys, b * block);
    }
}

/// [`mat_t_vecs`] on one core: `DX` is scaled by `beta` first, then every
/// block of [`block_rows`] rows of `M` adds its part for all the inputs
/// ([`MatVecKernels::mat_t_vec_many`]).
pub(crate) fn blocked_mat_t_vecs<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    gs: ArrayView2<'_, A>,
    beta: A,
    mut dxs: ArrayViewMut2<'_, A>,
) {
    let cols = dxs.ncols();
    dxs.map_inplace(|d| *d = if beta.is_zero() { A::zero() } else { beta * *d });
    if cols == 0 {
        return;
    }
    let gradients: RowSlices<'_, A> = gs
        .rows()
        .into_iter()
        .map(|g| g.to_slice().expect("gradients with contiguous rows"))
        .collect();
    let mut outputs: RowSlicesMut<'_, A> = dxs
        .rows_mut()
        .into_iter()
        .map(|dx| dx.into_slice().expect("outputs with contiguous rows"))
        .collect();
    add_mat_t_vec_batch(alpha, m, &gradients, &mut outputs);
}

/// `dxs[k] += alpha·Mᵀ·gs[k]` for gradients and outputs anywhere in
/// memory, `M` row-major with `gs[k].len()` rows of `dxs[k].len()`
/// columns (the same for every `k`, and at least one column), read once
/// as [`mat_vec_batch`] does. Each result equals [`mat_t_vec`]'s with
/// `beta = 1`, bit for bit.
pub(crate) fn add_mat_t_vec_batch<A: MatVecKernels>(
    alpha: A,
    m: &[A],
    gs: &[&[A]],
    dxs: &mut [&mut [A]],
) {
    let Some(cols) = dxs.first().map(|dx| dx.len()) else {
        return;
    };
    if gs.len() <= GROUP {
        return A::mat_t_vec_many(alpha, m, gs, A::one(), dxs, 0);
    }
    let block = block_rows(cols);
    for (b, m_block) in m.chunks(block * cols).enumerate() {
        A::mat_t_vec_many(alpha, m_block, gs, A::one(), dxs, b * block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The products by their definition, in f64.
    fn reference(m: &[f32], rows: usize, cols: usize, v: &[f32], transpose: bool) -> Vec<f64> {
        let at = |r: usize, c: usize| f64::from(m[r * cols + c]);
        if transpose {
            (0..cols)
                .map(|c| (0..rows).map(|r| at(r, c) * f64::from(v[r])).sum())
                .collect()
        } else {
            (0..rows)
                .map(|r| (0..cols).map(|c| at(r, c) * f64::from(v[c])).sum())
                .collect()
        }
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0)
            .collect()
    }

    /// Every row and column remainder of the four-row, eight-lane blocks,
    /// with `alpha` and `beta`, against the definition.
    #[test]
    fn f32_kernels_match_the_definition_for_all_block_remainders() {
        for rows in [0, 1, 3, 4, 5, 8, 13] {
            for cols in [0, 1, 7, 8, 9, 16, 23] {
                let m = values(rows * cols, 1);
                let (v, g) = (values(cols, 2), values(rows, 3));
                let (alpha, beta) = (1.5f32, 0.5f32);
                let y0 = values(rows, 4);
                let mut y = y0.clone();
                f32::mat_vec(alpha, &m, &v, beta, &mut y);
                for (k, want) in reference(&m, rows, cols, &v, false).iter().enumerate() {
                    let want = f64::from(alpha) * want + f64::from(beta) * f64::from(y0[k]);
                    assert!(
                        (f64::from(y[k]) - want).abs() < 1e-4,
                        "mat_vec {rows}x{cols} [{k}]"
                    );
                }
                let x0 = values(cols, 5);
                let mut x = x0.clone();
                f32::mat_t_vec(alpha, &m, &g, beta, &mut x);
                for (k, want) in reference(&m, rows, cols, &g, true).iter().enumerate() {
                    let want = f64::from(alpha) * want + f64::from(beta) * f64::from(x0[k]);
                    assert!(
                        (f64::from(x[k]) - want).abs() < 1e-4,
                        "mat_t_vec {rows}x{cols} [{k}]"
                    );
                }
            }
        }
    }

    /// Several inputs through one block of rows give exactly (bit for bit)
    /// what one matrix-vector product per input gives, for every count of
    /// inputs (groups of four and their remainders), odd and even row
    /// counts, column remainders and an offset into the outputs.
    #[test]
    fn many_inputs_equal_one_at_a_time_bit_for_bit() {
        for inputs in 1..=9 {
            for (rows, cols) in [(1, 1), (2, 8), (3, 9), (7, 23), (12, 300)] {
                let m = values(rows * cols, 1);
                let xs: Vec<Vec<f32>> = (0..inputs).map(|k| values(cols, 10 + k)).collect();
                let x_slices: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
                for beta in [0.0f32, 0.75] {
                    let at = 3;
                    let fresh = |k: usize| {
                        let mut y = values(at + rows + 2, 20 + k);
                        y[0] = f32::NAN; // outside the written range
                        y
                    };
                    let mut many: Vec<Vec<f32>> = (0..inputs).map(fresh).collect();
                    let mut one: Vec<Vec<f32>> = (0..inputs).map(fresh).collect();
                    let mut outputs: Vec<&mut [f32]> =
                        many.iter_mut().map(Vec::as_mut_slice).collect();
                    f32::mat_vec_many(1.25, &m, &x_slices, beta, &mut outputs, at);
                    for (k, y) in one.iter_mut().enumerate() {
                        f32::mat_vec(1.25, &m, &xs[k], beta, &mut y[at..at + rows]);
                    }
                    for k in 0..inputs {
                        let same = many[k]
                            .iter()
                            .zip(&one[k])
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(
                            same,
                            "{inputs} inputs, {rows}x{cols}, beta {beta}: input {k}"
                        );
                    }
                }
            }
        }
    }

    /// Whether two slices hold the same bits.
    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Several gradients through one block of rows, and a few rows of `G`
    /// through [`mat_t_vecs`] (block by block), give exactly (bit for bit)
    /// what one [`MatVecKernels::mat_t_vec`] per input over the whole
    /// matrix gives: for every count of inputs (groups of four and their
    /// remainders), every row remainder of four within and across blocks,
    /// column remainders of eight, and `alpha`, `beta` other than one.
    #[test]
    fn many_transposed_inputs_equal_one_at_a_time_bit_for_bit() {
        use ndarray::Array2;
        let alpha = 1.25f32;
        for inputs in 1..=9 {
            for cols in [0, 1, 7, 8, 9, 16, 23, 300] {
                let block = block_rows(cols);
                let row_counts = (0..=8).chain([block - 1, block, block + 1, block + 2, block + 3]);
                for rows in row_counts.chain([2 * block + 5]) {
                    let m = values(rows * cols, 1);
                    let gs = Array2::from_shape_vec((inputs, rows), values(inputs * rows, 2))
                        .expect("k × rows values");
                    for beta in [0.0f32, 0.75] {
                        let fresh = |k: usize| {
                            let mut dx = values(cols, 30 + k);
                            if beta == 0.0 && cols > 2 {
                                dx[cols / 2] = f32::NAN;
                            }
                            dx
                        };
                        let one: Vec<Vec<f32>> = (0..inputs)
                            .map(|k| {
                                let mut dx = fresh(k);
                                let g = gs.row(k).to_vec();
                                f32::mat_t_vec(alpha, &m, &g, beta, &mut dx);
                                dx
                            })
                            .collect();
                        let case = format!("{inputs} inputs, {rows}x{cols}, beta {beta}");

                        let mut dxs = Array2::from_shape_fn((inputs, cols), |(k, c)| fresh(k)[c]);
                        blocked_mat_t_vecs(alpha, &m, gs.view(), beta, dxs.view_mut());
                        for (k, dx) in dxs.rows().into_iter().enumerate() {
                            let dx = dx.to_slice().expect("a contiguous row");
                            assert!(same_bits(dx, &one[k]), "mat_t_vecs {case}: input {k}");
                        }

                        // Directly, with the gradients read from an offset
                        // (the values around it are NaN, so reading
                        // outside `at..at + rows` shows).
                        let at = 3;
                        let padded: Vec<Vec<f32>> = (0..inputs)
                            .map(|k| {
                                let mut g = vec![f32::NAN; at];
                                g.extend(gs.row(k));
                                g.push(f32::NAN);
                                g
                            })
                            .collect();
                        let g_slices: Vec<&[f32]> = padded.iter().map(Vec::as_slice).collect();
                        let mut many: Vec<Vec<f32>> = (0..inputs).map(fresh).collect();
                        let mut outputs: Vec<&mut [f32]> =
                            many.iter_mut().map(Vec::as_mut_slice).collect();
                        f32::mat_t_vec_many(alpha, &m, &g_slices, beta, &mut outputs, at);
                        for k in 0..inputs {
                            assert!(same_bits(&many[k], &one[k]), "many {case}: input {k}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let m = values(12, 1);
        let mut y = vec![f32::NAN; 3];
        f32::mat_vec(1.0, &m, &values(4, 2), 0.0, &mut y);
        assert!(y.iter().all(|v| v.is_finite()));
        let mut x = vec![f64::NAN; 4];
        f64::mat_t_vec(1.0, &[1.0; 12], &[1.0; 3], 0.0, &mut x);
        assert_eq!(x, vec![3.0; 4]);
        // A few rows of `G` at once: every group size of the f32 kernels,
        // row and column remainders included.
        for inputs in 1..=5 {
            let (rows, cols) = (7, 11);
            let gs = ndarray::Array2::from_shape_vec((inputs, rows), values(inputs * rows, 3))
                .expect("k × rows values");
            let mut dxs = ndarray::Array2::from_elem((inputs, cols), f32::NAN);
            blocked_mat_t_vecs(1.0, &values(rows * cols, 1), gs.view(), 0.0, dxs.view_mut());
            assert!(dxs.iter().all(|v| v.is_finite()), "{inputs} inputs");
        }
    }

    #[test]
    #[should_panic(expected = "a 2×3 matrix needs 6 elements, got 5")]
    fn wrong_matrix_length_panics_with_the_shapes() {
        f32::mat_vec(1.0, &[0.0; 5], &[0.0; 3], 0.0, &mut [0.0; 2]);
    }
}
