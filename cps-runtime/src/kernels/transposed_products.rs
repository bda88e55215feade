//! `C = Uᵀ·V + beta·C` for a short inner dimension: how a weight gradient
//! is made from the rows its products deferred (`U` holds one output
//! gradient per row, `V` the matching input), `k` rows of each for a
//! `m × n` weight.
//!
//! A general GEMM copies ("packs") its operands into panels first; with
//! `k` around 20 (one tree's nodes) the panels are small, but its 8×8
//! kernel permutes a vector of `U` three times per step and stays well
//! below the processor's peak on these shapes. Here `U`'s and
//! `V`'s rows are read where they lie: a tile of six rows by two vectors
//! of columns of `C` keeps twelve vectors of sums in registers, each step
//! loading two vectors of `V` and broadcasting six elements of `U`.
//! Every element is summed exactly as
//! matrixmultiply (ndarray's `general_mat_mul`) sums it: fused
//! multiply-adds from zero in ascending `k` (one panel, as `k` is at most
//! its 256), then one addition to `C` (none for `beta = 0`: matrixmultiply
//! adds zero, which changes nothing, as a sum from +0 is never -0). So the
//! results are the same bits, and a model trains the same either way.
//!
//! What becomes of each finished vector of sums is a [`Finish`]: a store
//! into `C` here; Adagrad's fused step (`optim/adagrad/fused.rs`) applies
//! its update instead, so that the gradient is never written out and read
//! back.
//!
//! The tiles are written once over [`Vector`] and compiled twice: sixteen
//! lanes wide where the processor has AVX-512 (whose two FMA units do
//! twice the multiply-adds per cycle of AVX2's), eight otherwise. Each
//! element receives the same operations either way, so both give the
//! same bits. For the Tree-LSTM's `U_int` and `W_leaf` gradients of one
//! tree (`k` = 18 and 19), sixteen lanes make the product clearly faster
//! and Adagrad's fused step a little (its square roots and divisions
//! take most of the rest), more so in training, where the parameter and
//! its sum are also requested a tile ahead (measurements in
//! `docs/performance.md`). The fused step's tiles at sixteen lanes are
//! one vector wide (see [`Finish::ONE_VECTOR_WIDE`]).

use std::arch::x86_64::*;

use super::operands::Operands;
use super::vector::{Lanes, Vector, Width};

/// Rows of `C` per tile.
const TILE_ROWS: usize = 6;

/// Vectors of columns of `C` per tile (but see [`Finish::ONE_VECTOR_WIDE`]).
const TILE_VECTORS: usize = 2;

/// `C = Uᵀ·V + C` (`accumulate`) or `C = Uᵀ·V`, where `A` is `U` (`k`
/// rows of `m`) and `B` is `V` (`k` rows of `n`), `width` lanes at a
/// time.
///
/// # Safety
/// The processor must support AVX2, FMA and, for [`Width::Sixteen`],
/// AVX-512F; the operands must describe valid, non-overlapping memory of
/// the stated extents, `C` writable.
pub(crate) unsafe fn transposed_product(at: Operands, accumulate: bool, width: Width) {
    let store = Store { accumulate };
    // SAFETY: as required of the caller.
    unsafe {
        match width {
            Width::Sixteen => all_tiles_avx512(at, &store),
            Width::Eight => all_tiles_avx2(at, &store),
        }
    }
}

/// [`all_tiles`] eight lanes wide.
///
/// # Safety
/// As [`all_tiles`], on a processor with AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn all_tiles_avx2<F: Finish<__m256>>(at: Operands, finish: &F) {
    // SAFETY: as required of the caller.
    unsafe { all_tiles::<__m256, F>(at, finish) }
}

/// [`all_tiles`] sixteen lanes wide.
///
/// # Safety
/// As [`all_tiles`], on a processor with AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn all_tiles_avx512<F: Finish<__m512>>(at: Operands, finish: &F) {
    // SAFETY: as required of the caller.
    unsafe { all_tiles::<__m512, F>(at, finish) }
}

/// What becomes of a finished vector of the product.
pub(crate) trait Finish<S: Vector> {
    /// Whether tiles sixteen lanes wide should hold one vector of columns
    /// instead of [`TILE_VECTORS`], so that fewer finished vectors wait at
    /// a time.
    const ONE_VECTOR_WIDE: bool;
    /// How many tiles ahead of the one being summed the output should be
    /// requested from memory (0: not at all).
    fn tiles_ahead(&self) -> usize;
    /// Requests the cache line of the output at `at_element` (row-major
    /// index; it may lie past the end: prefetches never fault).
    fn request(&self, at: &Operands, at_element: usize);
    /// Takes the sums of row `row` (of `m`), columns from `col` (the
    /// lanes under `lanes`).
    ///
    /// # Safety
    /// As [`Vector`]; the unmasked lanes lie inside the `m × n` output.
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: S, lanes: Lanes<S::Mask>);
}

/// Into `C`, added to what it holds (`accumulate`) or over it.
struct Store {
    accumulate: bool,
}

impl<S: Vector> Finish<S> for Store {
    const ONE_VECTOR_WIDE: bool = false;

    /// Two tiles ahead when adding to `C`: the gradient streams from L3,
    /// and requesting it ahead gains a few percent (see
    /// `docs/performance.md`).
    #[inline(always)]
    fn tiles_ahead(&self) -> usize {
        if self.accumulate { 2 } else { 0 }
    }

    #[inline(always)]
    fn request(&self, at: &Operands, at_element: usize) {
        // SAFETY: a prefetch never faults, wherever it points.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.c.wrapping_add(at_element) as *const i8) }
    }

    #[inline(always)]
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: S, lanes: Lanes<S::Mask>) {
        // SAFETY: the caller's lanes lie inside `C`.
        unsafe {
            let out = at.c.add(row * at.ldc + col);
            let new = if self.accumulate {
                sum.add(S::load(out, lanes))
            } else {
                sum
            };
            new.store(out, lanes);
        }
    }
}

/// Every tile of the product, each finished by `finish`.
///
/// # Safety
/// As [`transposed_product`], with the features of `S` (and inlined into
/// a function compiled for them), and `finish` writing only inside its
/// output.
#[inline(always)]
pub(crate) unsafe fn all_tiles<S: Vector, F: Finish<S>>(at: Operands, finish: &F) {
    let mut i = 0;
    // SAFETY (all calls): rows i..i+R lie inside `C` and columns of `U`;
    // as required of the caller.
    unsafe {
        while i + TILE_ROWS <= at.m {
            row_block::<S, TILE_ROWS, F>(at, finish, i);
            i += TILE_ROWS;
        }
        match at.m - i {
            5 => row_block::<S, 5, F>(at, finish, i),
            4 => row_block::<S, 4, F>(at, finish, i),
            3 => row_block::<S, 3, F>(at, finish, i),
            2 => row_block::<S, 2, F>(at, finish, i),
            1 => row_block::<S, 1, F>(at, finish, i),
            _ => {}
        }
    }
}

/// Rows `i..i + R` of `C`, two vectors of columns at a time (unless
/// `F` asks for one), then one, then the last few under a mask.
///
/// # Safety
/// As [`all_tiles`], with `i + R <= m`.
#[inline(always)]
unsafe fn row_block<S: Vector, const R: usize, F: Finish<S>>(at: Operands, finish: &F, i: usize) {
    let mut j = 0;
    let width = TILE_VECTORS * S::LANES;
    // SAFETY: each tile covers columns j..j+width, j..j+LANES or, masked,
    // j..n, all below `n`; rows as the caller guarantees.
    unsafe {
        if !(F::ONE_VECTOR_WIDE && S::LANES == 16) {
            while j + width <= at.n {
                tile::<S, R, TILE_VECTORS, F>(at, finish, i, j, Lanes::All);
                j += width;
            }
        }
        while j + S::LANES <= at.n {
            tile::<S, R, 1, F>(at, finish, i, j, Lanes::All);
            j += S::LANES;
        }
        if j < at.n {
            let mask = S::first_lanes(at.n - j);
            tile::<S, R, 1, F>(at, finish, i, j, Lanes::Masked(mask));
        }
    }
}

/// One tile: rows `i..i + R`, `W` vectors of columns from `j`, the last
/// vector under `last` (all lanes but at the right edge).
///
/// # Safety
/// As [`row_block`], with the tile's unmasked lanes inside `C` and `V`.
#[inline(always)]
unsafe fn tile<S: Vector, const R: usize, const W: usize, F: Finish<S>>(
    at: Operands,
    finish: &F,
    i: usize,
    j: usize,
    last: Lanes<S::Mask>,
) {
    let lanes = |w: usize| if w + 1 == W { last } else { Lanes::All };
    // SAFETY: every load addresses row kk < k of `U` or `V` at columns
    // inside the tile (masked lanes are not read); `finish` receives rows
    // i + r < m and the tile's columns.
    unsafe {
        let mut sums = [[S::zero(); W]; R];
        let ahead = finish.tiles_ahead();
        if ahead > 0 {
            // A later tile of these rows is requested while this one sums,
            // one request per 64-byte line of each row.
            let width = W * S::LANES;
            for r in 0..R {
                for line in (0..width).step_by(16) {
                    finish.request(&at, (i + r) * at.ldc + j + ahead * width + line);
                }
            }
        }
        for kk in 0..at.k {
            let v_row = at.b.add(kk * at.ldb + j);
            let v: [S; W] = std::array::from_fn(|w| S::load(v_row.add(S::LANES * w), lanes(w)));
            let u_row = at.a.add(kk * at.lda + i);
            for (r, row_sums) in sums.iter_mut().enumerate() {
                let u = S::broadcast(u_row.add(r));
                for w in 0..W {
                    row_sums[w] = u.mul_add(v[w], row_sums[w]);
                }
            }
        }
        for (r, row_sums) in sums.iter().enumerate() {
            for (w, &sum) in row_sums.iter().enumerate() {
                finish.finish(&at, i + r, j + S::LANES * w, sum, lanes(w));
            }
        }
    }
}
