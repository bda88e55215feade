//! Wider vector instructions where the processor has them, without a
//! `target-cpu` flag: the crate is compiled for baseline x86-64 (SSE2),
//! and loops that gain from AVX2 or AVX-512 are compiled again for them
//! and chosen at run time.
//!
//! The environment variable `CPS_SIMD` caps the choice, read once per
//! process: `portable` keeps every path at the baseline, `avx2` allows AVX2
//! and FMA but not AVX-512; unset (or anything else), the widest the
//! processor has is used. The results are the same bits at every level;
//! the cap lets the narrower paths be tested on a machine with AVX-512.

#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// The widest level the vectorised paths may use (see the module docs).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cap {
    Portable,
    Avx2,
    Widest,
}

#[cfg(target_arch = "x86_64")]
fn cap() -> Cap {
    static CAP: OnceLock<Cap> = OnceLock::new();
    *CAP.get_or_init(|| match std::env::var("CPS_SIMD").as_deref() {
        Ok("portable") => Cap::Portable,
        Ok("avx2") => Cap::Avx2,
        _ => Cap::Widest,
    })
}

/// Whether this processor has AVX2 and FMA (the standard library detects
/// them once and caches the answer), and `CPS_SIMD` allows them.
#[inline]
pub(crate) fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && cap() >= Cap::Avx2
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this processor has AVX-512F besides AVX2 and FMA (where the
/// compute-bound kernels run sixteen lanes wide), and `CPS_SIMD` allows it.
#[inline]
pub(crate) fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2_available() && is_x86_feature_detected!("avx512f") && cap() == Cap::Widest
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `body`, compiled with AVX-512 or AVX2 enabled when the processor
/// has them.
///
/// The body must be a plain loop over slices for this to help: it is
/// inlined into a function compiled for those features, so the compiler
/// vectorises it sixteen or eight `f32` lanes wide instead of four
/// (sixteen rather than eight: the Tree-LSTM's node-by-node training ~3%
/// faster, medians of seven alternating rounds). Functions the body calls
/// that are not inlined keep the baseline instruction set. Results are
/// bit-for-bit the same either way: Rust never fuses a multiply and an add
/// on its own, and vector square roots and divisions are exact.
#[inline(always)]
pub(crate) fn vectorized<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(test)]
    if let Some(level) = HELD.get() {
        return level.run(body);
    }
    #[cfg(target_arch = "x86_64")]
    if avx512_available() {
        // SAFETY: the processor supports the features `with_avx512` is
        // compiled for.
        return unsafe { with_avx512(body) };
    }
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

/// # Safety
/// The processor must support AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// The instruction sets [`vectorized`] can compile a body for.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Level {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

#[cfg(test)]
impl Level {
    /// `body`, compiled for this level.
    fn run<R>(self, body: impl FnOnce() -> R) -> R {
        match self {
            Level::Baseline => body(),
            // SAFETY: `each_level` holds only levels the processor has.
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { with_avx2(body) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe { with_avx512(body) },
        }
    }

    /// The level [`Level::each`] holds this thread to, if any.
    pub(crate) fn held() -> Option<Level> {
        HELD.get()
    }

    /// Runs `body` once for every level this processor has, with this
    /// thread's [`vectorized`] bodies (and the vector width of the `f32`
    /// kernels, see `kernels/mod.rs`) held to it.
    pub(crate) fn each(mut body: impl FnMut(Level)) {
        let mut levels = vec![Level::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if avx2_available() {
                levels.push(Level::Avx2);
            }
            if avx512_available() {
                levels.push(Level::Avx512);
            }
        }
        for level in levels {
            HELD.set(Some(level));
            body(level);
            HELD.set(None);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// The level [`Level::each`] holds this thread to.
    static HELD: std::cell::Cell<Option<Level>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
mod cap_tests {
    /// Run by `.ci/run` under `CPS_SIMD=portable` and `CPS_SIMD=avx2` too:
    /// the cap holds whatever the processor has.
    #[test]
    fn the_simd_cap_in_the_environment_is_respected() {
        match std::env::var("CPS_SIMD").as_deref() {
            Ok("portable") => {
                assert!(!super::avx2_available());
                assert!(!super::avx512_available());
            }
            Ok("avx2") => assert!(!super::avx512_available()),
            _ => {
                #[cfg(target_arch = "x86_64")]
                assert_eq!(
                    super::avx2_available(),
                    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
                );
            }
        }
    }
}
