//! The floor of the FLOP count, measured two ways on one core:
//!
//! - what a large f32 matrix product reaches (ndarray's GEMM, the
//!   matrixmultiply kernels with AVX2 and FMA where the CPU has them);
//! - the core's multiply-add peak: independent fused multiply-adds on
//!   registers, at the widest vector width the processor has (AVX-512
//!   where present, whose second FMA unit the GEMM does not use; AVX2
//!   otherwise).
//!
//! The Tree-LSTM benchmark reports its throughput as a fraction of both.
//!
//! ```text
//! cargo run --release --example gemm_peak
//! ```

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::time::Instant;

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;

fn main() {
    let n = 1024;
    let a = Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 13) as f32 * 0.01);
    let b = Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 5 + j * 11) % 17) as f32 * 0.01);
    let mut c = Array2::<f32>::zeros((n, n));
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let start = Instant::now();
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        best = best.min(start.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (n as f64).powi(3);
    report!(
        "sgemm {n}x{n}x{n}, one thread, best of 7: {:.1} GFLOP/s (checksum {:.3})",
        flops / best / 1e9,
        c.sum()
    );
    match fma_peak() {
        Some((width, gflops)) => {
            report!("fma peak, {width}, one thread, best of 7: {gflops:.1} GFLOP/s")
        }
        None => report!("fma peak: no AVX2 and FMA on this processor"),
    }
}

/// Twelve independent chains of fused multiply-adds per loop step (enough
/// to cover the instruction's latency on two units), as GFLOP/s, best of
/// seven, with the vector width used.
fn fma_peak() -> Option<(&'static str, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let steps = 2_000_000;
        let measure = |run: &dyn Fn() -> f32, lanes: f64| {
            let mut best = f64::INFINITY;
            for _ in 0..7 {
                let start = Instant::now();
                std::hint::black_box(run());
                best = best.min(start.elapsed().as_secs_f64());
            }
            12.0 * steps as f64 * lanes * 2.0 / best / 1e9
        };
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F.
            let run = || unsafe { fma::chains_512(steps) };
            return Some(("AVX-512", measure(&run, 16.0)));
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the processor has AVX2 and FMA.
            let run = || unsafe { fma::chains_256(steps) };
            return Some(("AVX2", measure(&run, 8.0)));
        }
    }
    None
}

/// The multiply-add loops of [`fma_peak`].
#[cfg(target_arch = "x86_64")]
mod fma {
    use std::arch::x86_64::*;

    /// `steps` times twelve 16-lane multiply-adds; returns a lane of the
    /// sum so that the work is not optimised away.
    ///
    /// # Safety
    /// The processor must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn chains_512(steps: usize) -> f32 {
        let (x, y) = std::hint::black_box((_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-6)));
        let mut sums = [_mm512_setzero_ps(); 12];
        for _ in 0..std::hint::black_box(steps) {
            for sum in &mut sums {
                *sum = _mm512_fmadd_ps(*sum, x, y);
            }
        }
        let total = sums
            .iter()
            .fold(_mm512_setzero_ps(), |a, &b| _mm512_add_ps(a, b));
        _mm512_reduce_add_ps(total)
    }

    /// `steps` times twelve 8-lane multiply-adds; returns a lane of the
    /// sum so that the work is not optimised away.
    ///
    /// # Safety
    /// The processor must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chains_256(steps: usize) -> f32 {
        let (x, y) = std::hint::black_box((_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-6)));
        let mut sums = [_mm256_setzero_ps(); 12];
        for _ in 0..std::hint::black_box(steps) {
            for sum in &mut sums {
                *sum = _mm256_fmadd_ps(*sum, x, y);
            }
        }
        let total = sums
            .iter()
            .fold(_mm256_setzero_ps(), |a, &b| _mm256_add_ps(a, b));
        _mm256_cvtss_f32(total)
    }
}
