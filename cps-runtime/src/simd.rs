//! Wider vector instructions where the processor has them, without a
//! `target-cpu` flag: the crate is compiled for baseline x86-64 (SSE2),
//! and loops that gain from AVX2 are compiled a second time for it and
//! chosen at run time.

/// Whether this processor has AVX2 and FMA (the standard library detects
/// them once and caches the answer).
#[inline]
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this processor has AVX-512F besides AVX2 and FMA (where the
/// compute-bound kernels run sixteen lanes wide).
#[inline]
pub(crate) fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2_available() && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `body`, compiled with AVX2 enabled when the processor has it.
///
/// The body must be a plain loop over slices for this to help: it is
/// inlined into a function compiled for AVX2, so the compiler vectorises
/// it eight `f32` lanes wide instead of four. Functions the body calls
/// that are not inlined keep the baseline instruction set. Results are
/// bit-for-bit the same either way: Rust never fuses a multiply and an add
/// on its own, and vector square roots and divisions are exact.
#[inline(always)]
pub(crate) fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if avx2_available() {
        // SAFETY: the processor supports the features `with_avx2` is
        // compiled for.
        return unsafe { with_avx2(body) };
    }
    body()
}

/// # Safety
/// The processor must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}
