//! `C = Uᵀ·V + beta·C` for a short inner dimension: how a weight gradient
//! is made from the rows its products deferred (`U` holds one output
//! gradient per row, `V` the matching input), `k` rows of each for a
//! `m × n` weight.
//!
//! A general GEMM copies ("packs") its operands into panels first; with
//! `k` around 20 (one tree's nodes) the panels are small, but its 8×8
//! kernel shuffles a vector of `U` three times per step and reaches about
//! two thirds of the processor's peak. Here `U`'s and `V`'s rows are read
//! where they lie: a tile of six rows by sixteen columns of `C` keeps
//! twelve sums in registers, each step loading two vectors of `V` and
//! broadcasting six elements of `U`. Every element is summed exactly as
//! matrixmultiply (ndarray's `general_mat_mul`) sums it: fused
//! multiply-adds from zero in ascending `k` (one panel, as `k` is at most
//! its 256), then one addition to `C` (or to zero for `beta = 0`). So the
//! results are the same bits, and a model trains the same either way.

use std::arch::x86_64::*;

/// Rows of `C` per tile.
const TILE_ROWS: usize = 6;

/// Where the operands lie: `k` rows of `U` (`m` used columns, row stride
/// `lda`), `k` rows of `V` (`n` used columns, row stride `ldb`), `m` rows
/// of `C` (`n` used columns, row stride `ldc`).
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub(crate) u: *const f32,
    pub(crate) lda: usize,
    pub(crate) v: *const f32,
    pub(crate) ldb: usize,
    pub(crate) c: *mut f32,
    pub(crate) ldc: usize,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

/// `C = Uᵀ·V + C` (`accumulate`) or `C = Uᵀ·V`.
///
/// # Safety
/// The processor must support AVX2 and FMA; the operands must describe
/// valid, non-overlapping memory of the stated extents, `C` writable.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn transposed_product(at: Operands, accumulate: bool) {
    let mut i = 0;
    // SAFETY (all calls): rows i..i+R lie inside `C` and columns of `U`;
    // as required of the caller.
    unsafe {
        while i + TILE_ROWS <= at.m {
            row_block::<TILE_ROWS>(at, accumulate, i);
            i += TILE_ROWS;
        }
        match at.m - i {
            5 => row_block::<5>(at, accumulate, i),
            4 => row_block::<4>(at, accumulate, i),
            3 => row_block::<3>(at, accumulate, i),
            2 => row_block::<2>(at, accumulate, i),
            1 => row_block::<1>(at, accumulate, i),
            _ => {}
        }
    }
}

/// Rows `i..i + R` of `C`, sixteen columns at a time, then eight, then
/// the last few with masked loads and stores.
///
/// # Safety
/// As [`transposed_product`], with `i + R <= m`.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_block<const R: usize>(at: Operands, accumulate: bool, i: usize) {
    let all = _mm256_set1_epi32(-1);
    let mut j = 0;
    // SAFETY: each tile covers columns j..j+16, j..j+8 or, masked,
    // j..n, all below `n`; rows as the caller guarantees.
    unsafe {
        while j + 16 <= at.n {
            tile::<R, 2>(at, accumulate, i, j, all);
            j += 16;
        }
        if j + 8 <= at.n {
            tile::<R, 1>(at, accumulate, i, j, all);
            j += 8;
        }
        if j < at.n {
            let left = _mm256_set1_epi32((at.n - j) as i32);
            let mask = _mm256_cmpgt_epi32(left, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            tile::<R, 1>(at, accumulate, i, j, mask);
        }
    }
}

/// One tile: rows `i..i + R`, `W` vectors of columns from `j`, the last
/// vector under `mask` (all lanes but at the right edge).
///
/// # Safety
/// As [`row_block`], with the tile's unmasked lanes inside `C` and `V`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const W: usize>(
    at: Operands,
    accumulate: bool,
    i: usize,
    j: usize,
    mask: __m256i,
) {
    // SAFETY: every load and store addresses row kk < k of `U` or `V`, or
    // row i + r < m of `C`, at columns inside the tile (masked lanes are
    // neither read nor written).
    unsafe {
        let load = |p: *const f32, w: usize| {
            if w + 1 == W {
                _mm256_maskload_ps(p.add(8 * w), mask)
            } else {
                _mm256_loadu_ps(p.add(8 * w))
            }
        };
        let mut sums = [[_mm256_setzero_ps(); W]; R];
        if accumulate {
            // The tile after this one is requested while this one sums
            // (the gradient streams from L3; ~3% in a micro-benchmark).
            for r in 0..R {
                let ahead = at.c.wrapping_add((i + r) * at.ldc + j + 32);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
        }
        for kk in 0..at.k {
            let v_row = at.v.add(kk * at.ldb + j);
            let v: [__m256; W] = std::array::from_fn(|w| load(v_row, w));
            let u_row = at.u.add(kk * at.lda + i);
            for (r, row_sums) in sums.iter_mut().enumerate() {
                let u = _mm256_broadcast_ss(&*u_row.add(r));
                for w in 0..W {
                    row_sums[w] = _mm256_fmadd_ps(u, v[w], row_sums[w]);
                }
            }
        }
        for (r, row_sums) in sums.iter().enumerate() {
            let out = at.c.add((i + r) * at.ldc + j);
            for (w, &sum) in row_sums.iter().enumerate() {
                // `+ 0` as matrixmultiply does for `beta = 0` (it turns
                // a sum of -0 into +0).
                let old = if accumulate {
                    load(out, w)
                } else {
                    _mm256_setzero_ps()
                };
                let new = _mm256_add_ps(sum, old);
                if w + 1 == W {
                    _mm256_maskstore_ps(out.add(8 * w), mask, new);
                } else {
                    _mm256_storeu_ps(out.add(8 * w), new);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::linalg::general_mat_mul;
    use ndarray::{Array2, s};
    use proptest::prelude::*;

    use crate::ops::kernels::{MatVecKernels, SHORT_INNER};

    /// A matrix of `rows × cols` values from `seed`, with a sign mix and
    /// some exact zeros (so that -0 and +0 sums occur).
    fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        Array2::from_shape_fn((rows, cols), |_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bits = (state >> 40) as u32;
            if bits % 11 == 0 {
                -0.0
            } else {
                (bits % 20_000) as f32 / 5_000.0 - 2.0
            }
        })
    }

    fn same_bits(a: &Array2<f32>, b: &Array2<f32>) -> bool {
        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    proptest! {
        /// On every shape, edge and row stride, the kernel's product
        /// equals ndarray's GEMM bit for bit, with `beta` 0 and 1.
        #[test]
        fn equals_the_general_product_bit_for_bit(
            m in 1usize..40,
            n in 1usize..70,
            k in 1usize..=SHORT_INNER,
            padding in 0usize..5,
            accumulate in any::<bool>(),
            seed in any::<u64>(),
        ) {
            if !crate::simd::avx2_available() {
                return Ok(());
            }
            // Operands inside wider matrices, so that their rows are
            // `padding` elements apart from being contiguous.
            let wide_u = matrix(k, m + padding, seed);
            let wide_v = matrix(k, n + padding, seed ^ 1);
            let (u, v) = (wide_u.slice(s![.., ..m]), wide_v.slice(s![.., ..n]));
            let start = matrix(m, n + padding, seed ^ 2);
            let beta = if accumulate { 1.0 } else { 0.0 };

            let mut expected = start.clone();
            general_mat_mul(1.0, &u.t(), &v, beta, &mut expected.slice_mut(s![.., ..n]));
            let mut got = start.clone();
            let handled =
                f32::transposed_product(u, v, beta, &mut got.slice_mut(s![.., ..n]));
            prop_assert!(handled);
            prop_assert!(same_bits(&expected, &got), "{m}×{n}, k = {k}");
        }
    }

    #[test]
    fn other_cases_are_left_to_the_general_product() {
        let (u, v) = (matrix(4, 9, 1), matrix(4, 10, 2));
        let mut c = matrix(9, 10, 3);
        let before = c.clone();
        // A `beta` other than 0 or 1, and a long inner dimension.
        assert!(!f32::transposed_product(
            u.view(),
            v.view(),
            0.5,
            &mut c.view_mut()
        ));
        let (long_u, long_v) = (
            matrix(SHORT_INNER + 1, 9, 4),
            matrix(SHORT_INNER + 1, 10, 5),
        );
        assert!(!f32::transposed_product(
            long_u.view(),
            long_v.view(),
            1.0,
            &mut c.view_mut()
        ));
        // Columns that are not contiguous.
        let wide = matrix(4, 20, 6);
        let strided = wide.slice(s![.., ..;2]);
        assert!(!f32::transposed_product(
            u.view(),
            strided,
            1.0,
            &mut c.view_mut()
        ));
        // f64 has no such kernel.
        let mut c64 = c.mapv(f64::from);
        assert!(!f64::transposed_product(
            u.mapv(f64::from).view(),
            v.mapv(f64::from).view(),
            1.0,
            &mut c64.view_mut()
        ));
        assert!(same_bits(&before, &c));
    }
}
