//! `C = Uᵀ·V + beta·C` for a short inner dimension: how a weight gradient
//! is made from the rows its products deferred (`U` holds one output
//! gradient per row, `V` the matching input), `k` rows of each for a
//! `m × n` weight.
//!
//! A general GEMM copies ("packs") its operands into panels first; with
//! `k` around 20 (one tree's nodes) the panels are small, but its 8×8
//! kernel permutes a vector of `U` three times per step and reaches half
//! to two thirds of the processor's peak on these shapes. Here `U`'s and `V`'s rows are read
//! where they lie: a tile of six rows by sixteen columns of `C` keeps
//! twelve sums in registers, each step loading two vectors of `V` and
//! broadcasting six elements of `U`. Every element is summed exactly as
//! matrixmultiply (ndarray's `general_mat_mul`) sums it: fused
//! multiply-adds from zero in ascending `k` (one panel, as `k` is at most
//! its 256), then one addition to `C` (none for `beta = 0`: matrixmultiply
//! adds zero, which changes nothing, as a sum from +0 is never -0). So the
//! results are the same bits, and a model trains the same either way.

use std::arch::x86_64::*;

use super::operands::Operands;

/// Rows of `C` per tile.
const TILE_ROWS: usize = 6;

/// `C = Uᵀ·V + C` (`accumulate`) or `C = Uᵀ·V`, where `A` is `U` (`k`
/// rows of `m`) and `B` is `V` (`k` rows of `n`).
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
            let v_row = at.b.add(kk * at.ldb + j);
            let v: [__m256; W] = std::array::from_fn(|w| load(v_row, w));
            let u_row = at.a.add(kk * at.lda + i);
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
                let new = if accumulate {
                    _mm256_add_ps(sum, load(out, w))
                } else {
                    sum
                };
                if w + 1 == W {
                    _mm256_maskstore_ps(out.add(8 * w), mask, new);
                } else {
                    _mm256_storeu_ps(out.add(8 * w), new);
                }
            }
        }
    }
}
