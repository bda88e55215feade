//! The floor of the FLOP count: what one core reaches on a large f32
//! matrix product (ndarray's GEMM, the matrixmultiply kernels with AVX2 and
//! FMA where the CPU has them). The Tree-LSTM benchmark reports its
//! throughput as a fraction of this.
//!
//! ```text
//! cargo run --release --example gemm_peak
//! ```

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
    println!(
        "sgemm {n}x{n}x{n}, one thread, best of 7: {:.1} GFLOP/s (checksum {:.3})",
        flops / best / 1e9,
        c.sum()
    );
}
