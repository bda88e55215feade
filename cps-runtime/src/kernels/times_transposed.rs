//! `C = X·Wᵀ + beta·C` for a few rows of `X` (`m × k`) and a row-major
//! weight `W` (`n × k`): a dense layer applied to the handful of inputs of
//! one tree (its words, or the nodes of one level).
//!
//! A general GEMM copies ("packs") the whole of `W` before every product;
//! for a 450×300 weight and 19 rows that copy costs as much as the
//! arithmetic. Here only `X` is packed (transposed, a few KB), and `W` is
//! read once per block of up to 24 rows where it lies: the sums of a block
//! lie across the lanes (eight rows of `X` per vector), each step loading
//! those vectors and broadcasting one element of each of a few rows of
//! `W`. Every element is summed exactly as matrixmultiply (ndarray's
//! `general_mat_mul`) sums it: fused multiply-adds from zero in ascending
//! `k` within each panel of 256, and each panel's sum added to `C` (or
//! stored, for the first panel with `beta = 0`). So the results are the
//! same bits.
//!
//! Which products it takes ([`FEW_INPUTS`](super::FEW_INPUTS) rows of `X`
//! at most, [`MANY_OUTPUTS`](super::MANY_OUTPUTS) rows of `W` at least),
//! and the measurements behind those bounds, are in
//! `docs/performance.md`.

use std::arch::x86_64::*;

use super::operands::Operands;

/// matrixmultiply's panel of the inner dimension for `f32` (`S_KC`, its
/// default; a build of it that sets `MATMUL_SGEMM_KC` otherwise would
/// differ from this kernel in the last bits of products with `k` above
/// both panels).
const PANEL: usize = 256;

/// Rows of `X` per block: three vectors of sums per row of `W`.
const BLOCK_ROWS: usize = 24;

/// The room [`times_transposed`] needs for `m` rows of `X` of `k` columns
/// transposed (one block at a time, padded to whole vectors).
pub(crate) fn packed_len(m: usize, k: usize) -> usize {
    m.min(BLOCK_ROWS).div_ceil(8) * 8 * k
}

/// `C = X·Wᵀ + C` (`accumulate`) or `C = X·Wᵀ`, where `A` is `X` (`m`
/// rows of `k`) and `B` is `W` (`n` rows of `k`), with `packed` as room
/// for `X` transposed.
///
/// # Safety
/// The processor must support AVX2 and FMA; the operands must describe
/// valid memory of the stated extents, `C` writable and overlapping
/// neither input.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn times_transposed(at: Operands, accumulate: bool, packed: &mut Vec<f32>) {
    let mut i = 0;
    while i < at.m {
        let rows = (at.m - i).min(BLOCK_ROWS);
        let lanes = rows.div_ceil(8) * 8;
        // SAFETY: rows i..i+rows of `X`, as the caller guarantees.
        unsafe { pack_transposed(at, i, rows, lanes, packed) };
        let mut start = 0;
        while start < at.k {
            let end = (start + PANEL).min(at.k);
            let block = Block {
                at,
                packed: packed.as_ptr(),
                lanes,
                first: i,
                rows,
                steps: start..end,
                accumulate: accumulate || start > 0,
            };
            // SAFETY: `packed` holds `k` steps of `lanes` values; the
            // block's rows and steps lie inside the operands.
            unsafe {
                match lanes / 8 {
                    1 => block.run::<1, 8>(),
                    2 => block.run::<2, 6>(),
                    // Nine sums, three vectors and a broadcast fit the
                    // sixteen registers; twelve sums would spill one.
                    _ => block.run::<3, 3>(),
                }
            }
            start = end;
        }
        i += rows;
    }
}

/// Rows `first..first + rows` of `X`, transposed: step `kk`'s values at
/// `packed[kk * lanes..]`, zero past `rows`.
///
/// # Safety
/// Those rows lie inside `X`.
unsafe fn pack_transposed(
    at: Operands,
    first: usize,
    rows: usize,
    lanes: usize,
    packed: &mut Vec<f32>,
) {
    packed.clear();
    packed.resize(at.k * lanes, 0.0);
    for r in 0..rows {
        // SAFETY: row first + r of `X` has `k` elements (the caller's
        // contract).
        let row = unsafe { std::slice::from_raw_parts(at.a.add((first + r) * at.lda), at.k) };
        for (kk, &value) in row.iter().enumerate() {
            packed[kk * lanes + r] = value;
        }
    }
}

/// One block of rows of `X` over one panel of steps.
struct Block {
    at: Operands,
    packed: *const f32,
    lanes: usize,
    first: usize,
    rows: usize,
    steps: std::ops::Range<usize>,
    accumulate: bool,
}

impl Block {
    /// Every row of `W`, `R` at a time (then one at a time), with `V`
    /// vectors of sums (`8·V` = `lanes`).
    ///
    /// # Safety
    /// As [`times_transposed`], with the block inside the operands.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const V: usize, const R: usize>(&self) {
        let mut j = 0;
        // SAFETY: rows j..j+R (or j) of `W` lie below `n`.
        unsafe {
            while j + R <= self.at.n {
                self.rows_of_w::<V, R>(j);
                j += R;
            }
            while j < self.at.n {
                self.rows_of_w::<V, 1>(j);
                j += 1;
            }
        }
    }

    /// Columns `j..j + R` of the block's rows of `C`.
    ///
    /// # Safety
    /// As [`Block::run`], with `j + R <= n`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_of_w<const V: usize, const R: usize>(&self, j: usize) {
        let at = self.at;
        let mut sums = [[_mm256_setzero_ps(); V]; R];
        // SAFETY: step kk < k of the packed rows has `lanes` = 8·V values;
        // row j + r < n of `W` has `k` elements; row first + i < m of `C`
        // has column j + r < n.
        unsafe {
            for kk in self.steps.clone() {
                let column = self.packed.add(kk * self.lanes);
                let x: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(column.add(8 * v)));
                for (r, row_sums) in sums.iter_mut().enumerate() {
                    let w = _mm256_broadcast_ss(&*at.b.add((j + r) * at.ldb + kk));
                    for v in 0..V {
                        row_sums[v] = _mm256_fmadd_ps(x[v], w, row_sums[v]);
                    }
                }
            }
            for (r, row_sums) in sums.iter().enumerate() {
                let mut lanes = [0.0f32; BLOCK_ROWS];
                for (v, &sum) in row_sums.iter().enumerate() {
                    _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * v), sum);
                }
                for (i, &sum) in lanes.iter().take(self.rows).enumerate() {
                    let out = at.c.add((self.first + i) * at.ldc + j + r);
                    *out = if self.accumulate { sum + *out } else { sum };
                }
            }
        }
    }
}
