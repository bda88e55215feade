//! The vector registers the small-product kernels are written over: eight
//! `f32` lanes (AVX2, `__m256`) or sixteen (AVX-512, `__m512`), with the
//! few operations those kernels use, so that one generic kernel serves
//! both widths.
//!
//! Every operation works lane by lane and rounds as IEEE 754 says (the
//! fused multiply-add once, the square root and the division exactly), so
//! a kernel gives the same bits at either width: only how many lanes move
//! at once differs. AVX-512 is worth having where the arithmetic, not the
//! memory, is the limit: a core with two 512-bit FMA units does twice the
//! multiply-adds per cycle.
//!
//! The methods are `#[inline(always)]` without target features of their
//! own: they are meant to be inlined into a kernel compiled for the
//! matching features (see [`Vector`]'s safety contract).

use std::arch::x86_64::*;

/// How wide a kernel runs: eight lanes (AVX2 and FMA) or sixteen
/// (AVX-512F as well).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Width {
    Eight,
    Sixteen,
}

impl Width {
    /// The widest this processor supports, given AVX2 and FMA (in tests,
    /// the one for the instruction set `simd::Level::each` holds).
    pub(crate) fn widest() -> Width {
        #[cfg(test)]
        match crate::kernels::simd::Level::held() {
            Some(crate::kernels::simd::Level::Avx512) => return Width::Sixteen,
            Some(crate::kernels::simd::Level::Avx2) => return Width::Eight,
            _ => {}
        }
        if crate::kernels::simd::avx512_available() {
            Width::Sixteen
        } else {
            Width::Eight
        }
    }
}

/// Which lanes of a vector an access covers: all of them, or those under
/// a mask (the right edge of a matrix).
#[derive(Clone, Copy)]
pub(crate) enum Lanes<M> {
    All,
    Masked(M),
}

/// A register of `f32` lanes.
///
/// # Safety
/// Every method needs the processor features of its type (AVX2 and FMA
/// for `__m256`, AVX-512F for `__m512`) and must be inlined into a
/// function compiled with them; pointers must be valid for the lanes
/// accessed.
pub(crate) trait Vector: Copy {
    /// `f32` lanes per register.
    const LANES: usize;
    /// The lanes a partial access covers.
    type Mask: Copy;

    /// The first `n` lanes, for `0 < n < LANES`.
    unsafe fn first_lanes(n: usize) -> Self::Mask;
    /// Zero in every lane.
    unsafe fn zero() -> Self;
    /// `x` in every lane.
    unsafe fn splat(x: f32) -> Self;
    /// The `f32` at `p` in every lane.
    unsafe fn broadcast(p: *const f32) -> Self;
    /// The lanes at `p`, zero where masked off (which are not read).
    unsafe fn load(p: *const f32, lanes: Lanes<Self::Mask>) -> Self;
    /// Stores the unmasked lanes at `p`.
    unsafe fn store(self, p: *mut f32, lanes: Lanes<Self::Mask>);
    /// `self + other`.
    unsafe fn add(self, other: Self) -> Self;
    /// `self − other`.
    unsafe fn sub(self, other: Self) -> Self;
    /// `self · other`.
    unsafe fn mul(self, other: Self) -> Self;
    /// `self / other`.
    unsafe fn div(self, other: Self) -> Self;
    /// `√self`.
    unsafe fn sqrt(self) -> Self;
    /// `self · factor + addend`, rounded once.
    unsafe fn mul_add(self, factor: Self, addend: Self) -> Self;
}

impl Vector for __m256 {
    const LANES: usize = 8;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> __m256i {
        // SAFETY: AVX2, as required of the caller.
        unsafe {
            let left = _mm256_set1_epi32(n as i32);
            _mm256_cmpgt_epi32(left, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
        }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: AVX and a readable `p`, as required of the caller.
        unsafe { _mm256_broadcast_ss(&*p) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32, lanes: Lanes<__m256i>) -> Self {
        // SAFETY: AVX and readable unmasked lanes, as required of the caller.
        unsafe {
            match lanes {
                Lanes::All => _mm256_loadu_ps(p),
                Lanes::Masked(mask) => _mm256_maskload_ps(p, mask),
            }
        }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, lanes: Lanes<__m256i>) {
        // SAFETY: AVX and writable unmasked lanes, as required of the caller.
        unsafe {
            match lanes {
                Lanes::All => _mm256_storeu_ps(p, self),
                Lanes::Masked(mask) => _mm256_maskstore_ps(p, mask, self),
            }
        }
    }

    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_add_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn sub(self, other: Self) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_sub_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_mul_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_div_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX, as required of the caller.
        unsafe { _mm256_sqrt_ps(self) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, factor: Self, addend: Self) -> Self {
        // SAFETY: FMA, as required of the caller.
        unsafe { _mm256_fmadd_ps(self, factor, addend) }
    }
}

impl Vector for __m512 {
    const LANES: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> __mmask16 {
        debug_assert!(n < 16);
        ((1u32 << n) - 1) as __mmask16
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        // SAFETY: AVX-512F and a readable `p`, as required of the caller.
        unsafe { _mm512_set1_ps(*p) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32, lanes: Lanes<__mmask16>) -> Self {
        // SAFETY: AVX-512F and readable unmasked lanes (masked-off lanes
        // are not accessed), as required of the caller.
        unsafe {
            match lanes {
                Lanes::All => _mm512_loadu_ps(p),
                Lanes::Masked(mask) => _mm512_maskz_loadu_ps(mask, p),
            }
        }
    }

    #[inline(always)]
    unsafe fn store(self, p: *mut f32, lanes: Lanes<__mmask16>) {
        // SAFETY: AVX-512F and writable unmasked lanes, as required of the
        // caller.
        unsafe {
            match lanes {
                Lanes::All => _mm512_storeu_ps(p, self),
                Lanes::Masked(mask) => _mm512_mask_storeu_ps(p, mask, self),
            }
        }
    }

    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_add_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn sub(self, other: Self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_sub_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_mul_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_div_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_sqrt_ps(self) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, factor: Self, addend: Self) -> Self {
        // SAFETY: AVX-512F, as required of the caller.
        unsafe { _mm512_fmadd_ps(self, factor, addend) }
    }
}
