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
//!
//! The same tiles can also end in an Adagrad update instead of a store
//! ([`adagrad_from_products`]): each finished vector of the gradient goes
//! straight into the parameter and its sum of squares. The update's square
//! roots and divisions then run beside the next tile's multiply-adds, and
//! the gradient is never written out and read back.

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
    // SAFETY: as required of the caller.
    unsafe { all_tiles(at, &Store { accumulate }) }
}

/// The hyperparameters of one Adagrad step, as `Adagrad::update` applies
/// them: `g += weight_decay·p`, `sum += g·g`,
/// `p -= lr·g / (sqrt(sum) + eps)`.
#[derive(Clone, Copy)]
pub(crate) struct AdagradRule {
    pub(crate) lr: f32,
    pub(crate) weight_decay: f32,
    pub(crate) eps: f32,
}

/// One Adagrad step on a row-major `m × n` parameter whose gradient is
/// `Uᵀ·V`, plus `dense` when the parameter also has a gradient buffer:
/// the same tiles as [`transposed_product`], each finished vector of the
/// gradient applied to `value` and `sum` at once. Every element receives
/// the operations of the product, then of `Adagrad::update`, in their
/// order, so the parameter and its sum are the same bits either way.
///
/// # Safety
/// The processor must support AVX2 and FMA; `at` must describe `U` and
/// `V` as for [`transposed_product`] with `at.ldc == at.n` (its `c` is
/// not used); `value`, `sum` and, if given, `dense` must each point to
/// `m × n` elements, row-major and contiguous, `value` and `sum`
/// writable and no two of them overlapping.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn adagrad_from_products(
    at: Operands,
    dense: Option<*const f32>,
    value: *mut f32,
    sum: *mut f32,
    rule: AdagradRule,
) {
    let update = AdagradUpdate {
        dense,
        value,
        sum,
        lr: _mm256_set1_ps(rule.lr),
        weight_decay: _mm256_set1_ps(rule.weight_decay),
        eps: _mm256_set1_ps(rule.eps),
    };
    // SAFETY: as required of the caller.
    unsafe { all_tiles(at, &update) }
}

/// What becomes of a finished vector of the product.
trait Finish {
    /// Whether the tile after this one should be requested ahead.
    fn prefetch(&self) -> bool;
    /// Takes the sums of row `row` (of `m`), columns `col..col + 8` (the
    /// lanes under `mask`).
    ///
    /// # Safety
    /// AVX2 and FMA; the unmasked lanes lie inside the `m × n` output.
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: __m256, mask: Lanes);
}

/// The lanes of a vector a tile may touch: all, or those under a mask.
#[derive(Clone, Copy)]
enum Lanes {
    All,
    Masked(__m256i),
}

impl Lanes {
    /// Loads 8 elements from `p`, zero in masked-off lanes.
    ///
    /// # Safety
    /// AVX2; the unmasked lanes of `p` are readable.
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: as required of the caller.
        unsafe {
            match self {
                Lanes::All => _mm256_loadu_ps(p),
                Lanes::Masked(mask) => _mm256_maskload_ps(p, mask),
            }
        }
    }

    /// Stores the unmasked lanes of `v` at `p`.
    ///
    /// # Safety
    /// AVX2; the unmasked lanes of `p` are writable.
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: as required of the caller.
        unsafe {
            match self {
                Lanes::All => _mm256_storeu_ps(p, v),
                Lanes::Masked(mask) => _mm256_maskstore_ps(p, mask, v),
            }
        }
    }
}

/// Into `C`, added to what it holds (`accumulate`) or over it.
struct Store {
    accumulate: bool,
}

impl Finish for Store {
    /// When adding to `C`: the gradient streams from L3 (~3% in a
    /// micro-benchmark).
    #[inline(always)]
    fn prefetch(&self) -> bool {
        self.accumulate
    }

    #[inline(always)]
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: __m256, lanes: Lanes) {
        // SAFETY: the caller's lanes lie inside `C`.
        unsafe {
            let out = at.c.add(row * at.ldc + col);
            let new = if self.accumulate {
                _mm256_add_ps(sum, lanes.load(out))
            } else {
                sum
            };
            lanes.store(out, new);
        }
    }
}

/// Into a parameter and its Adagrad sum (see [`adagrad_from_products`]).
struct AdagradUpdate {
    dense: Option<*const f32>,
    value: *mut f32,
    sum: *mut f32,
    lr: __m256,
    weight_decay: __m256,
    eps: __m256,
}

impl Finish for AdagradUpdate {
    #[inline(always)]
    fn prefetch(&self) -> bool {
        false
    }

    #[inline(always)]
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: __m256, lanes: Lanes) {
        // SAFETY: the caller's lanes lie inside the `m × n` parameter, its
        // sum and its dense gradient (`ldc == n`).
        unsafe {
            let at_element = row * at.ldc + col;
            let g = match self.dense {
                Some(dense) => _mm256_add_ps(sum, lanes.load(dense.add(at_element))),
                None => sum,
            };
            let (p, s) = (self.value.add(at_element), self.sum.add(at_element));
            let old = lanes.load(p);
            let g = _mm256_add_ps(g, _mm256_mul_ps(self.weight_decay, old));
            let squares = _mm256_add_ps(lanes.load(s), _mm256_mul_ps(g, g));
            lanes.store(s, squares);
            let step = _mm256_div_ps(
                _mm256_mul_ps(self.lr, g),
                _mm256_add_ps(_mm256_sqrt_ps(squares), self.eps),
            );
            lanes.store(p, _mm256_sub_ps(old, step));
        }
    }
}

/// Every tile of the product, each finished by `finish`.
///
/// # Safety
/// As [`transposed_product`], with `finish` writing only inside its
/// output.
#[target_feature(enable = "avx2,fma")]
unsafe fn all_tiles<F: Finish>(at: Operands, finish: &F) {
    let mut i = 0;
    // SAFETY (all calls): rows i..i+R lie inside `C` and columns of `U`;
    // as required of the caller.
    unsafe {
        while i + TILE_ROWS <= at.m {
            row_block::<TILE_ROWS, F>(at, finish, i);
            i += TILE_ROWS;
        }
        match at.m - i {
            5 => row_block::<5, F>(at, finish, i),
            4 => row_block::<4, F>(at, finish, i),
            3 => row_block::<3, F>(at, finish, i),
            2 => row_block::<2, F>(at, finish, i),
            1 => row_block::<1, F>(at, finish, i),
            _ => {}
        }
    }
}

/// Rows `i..i + R` of `C`, sixteen columns at a time, then eight, then
/// the last few with masked loads and stores.
///
/// # Safety
/// As [`all_tiles`], with `i + R <= m`.
#[target_feature(enable = "avx2,fma")]
unsafe fn row_block<const R: usize, F: Finish>(at: Operands, finish: &F, i: usize) {
    let mut j = 0;
    // SAFETY: each tile covers columns j..j+16, j..j+8 or, masked,
    // j..n, all below `n`; rows as the caller guarantees.
    unsafe {
        while j + 16 <= at.n {
            tile::<R, 2, F>(at, finish, i, j, Lanes::All);
            j += 16;
        }
        if j + 8 <= at.n {
            tile::<R, 1, F>(at, finish, i, j, Lanes::All);
            j += 8;
        }
        if j < at.n {
            let left = _mm256_set1_epi32((at.n - j) as i32);
            let mask = _mm256_cmpgt_epi32(left, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            tile::<R, 1, F>(at, finish, i, j, Lanes::Masked(mask));
        }
    }
}

/// One tile: rows `i..i + R`, `W` vectors of columns from `j`, the last
/// vector under `last` (all lanes but at the right edge).
///
/// # Safety
/// As [`row_block`], with the tile's unmasked lanes inside `C` and `V`.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize, const W: usize, F: Finish>(
    at: Operands,
    finish: &F,
    i: usize,
    j: usize,
    last: Lanes,
) {
    let lanes = |w: usize| if w + 1 == W { last } else { Lanes::All };
    // SAFETY: every load addresses row kk < k of `U` or `V` at columns
    // inside the tile (masked lanes are not read); `finish` receives rows
    // i + r < m and the tile's columns.
    unsafe {
        let mut sums = [[_mm256_setzero_ps(); W]; R];
        if finish.prefetch() {
            // The tile after this one is requested while this one sums.
            for r in 0..R {
                let ahead = at.c.wrapping_add((i + r) * at.ldc + j + 32);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
        }
        for kk in 0..at.k {
            let v_row = at.b.add(kk * at.ldb + j);
            let v: [__m256; W] = std::array::from_fn(|w| lanes(w).load(v_row.add(8 * w)));
            let u_row = at.a.add(kk * at.lda + i);
            for (r, row_sums) in sums.iter_mut().enumerate() {
                let u = _mm256_broadcast_ss(&*u_row.add(r));
                for w in 0..W {
                    row_sums[w] = _mm256_fmadd_ps(u, v[w], row_sums[w]);
                }
            }
        }
        for (r, row_sums) in sums.iter().enumerate() {
            for (w, &sum) in row_sums.iter().enumerate() {
                finish.finish(&at, i + r, j + 8 * w, sum, lanes(w));
            }
        }
    }
}
