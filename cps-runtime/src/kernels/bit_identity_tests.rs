//! The GEMM replacements of [`MatVecKernels::small_product`] against
//! ndarray's `general_mat_mul`, bit for bit, on random shapes, edges and
//! row strides, and the cases they leave to it.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, s};
use proptest::prelude::*;

use super::{
    BATCH_ROWS, FEW_INPUTS, MANY_OUTPUTS, MatVecKernels, PANEL, SHORT_INNER, SMALL_PRODUCT, Scratch,
};

/// A matrix of `rows × cols` values from `seed`, with a sign mix and some
/// exact negative zeros (so that -0 and +0 sums occur).
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let bits = (state >> 40) as u32;
        if bits.is_multiple_of(11) {
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
    /// `C = Uᵀ·V + beta·C`, with operands inside wider matrices so that
    /// their rows are `padding` elements apart from contiguous.
    #[test]
    fn transposed_product_equals_the_general_product(
        m in 1usize..40,
        n in 1usize..70,
        k in 1usize..=SHORT_INNER,
        padding in 0usize..5,
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        if !crate::kernels::simd::avx2_available() {
            return Ok(());
        }
        let wide_u = matrix(k, m + padding, seed);
        let wide_v = matrix(k, n + padding, seed ^ 1);
        let (u, v) = (wide_u.slice(s![.., ..m]), wide_v.slice(s![.., ..n]));
        let start = matrix(m, n + padding, seed ^ 2);
        let beta = if accumulate { 1.0 } else { 0.0 };

        let mut expected = start.clone();
        general_mat_mul(1.0, &u.t(), &v, beta, &mut expected.slice_mut(s![.., ..n]));
        let mut failure = None;
        super::each_kernel_width(|width| {
            let mut got = start.clone();
            let handled = f32::small_product(u.t(), v, beta, &mut got.slice_mut(s![.., ..n]), &Scratch::allocating());
            if !handled || !same_bits(&expected, &got) {
                failure.get_or_insert(format!("{m}×{n}, k = {k}, {width}: handled {handled}"));
            }
        });
        prop_assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    }

    /// `C = X·Wᵀ + beta·C`, over one and several panels of the inner
    /// dimension and every block size of rows.
    #[test]
    fn times_transposed_equals_the_general_product(
        m in 1usize..=FEW_INPUTS,
        n in MANY_OUTPUTS..90,
        k in prop_oneof![1usize..40, 250usize..600],
        padding in 0usize..5,
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        if !crate::kernels::simd::avx2_available() {
            return Ok(());
        }
        let wide_x = matrix(m, k + padding, seed);
        let wide_w = matrix(n, k + padding, seed ^ 1);
        let (x, w) = (wide_x.slice(s![.., ..k]), wide_w.slice(s![.., ..k]));
        let start = matrix(m, n + padding, seed ^ 2);
        let beta = if accumulate { 1.0 } else { 0.0 };

        let mut expected = start.clone();
        general_mat_mul(1.0, &x, &w.t(), beta, &mut expected.slice_mut(s![.., ..n]));
        let mut got = start.clone();
        let handled = f32::small_product(x, w.t(), beta, &mut got.slice_mut(s![.., ..n]), &Scratch::allocating());
        prop_assert!(handled);
        prop_assert!(same_bits(&expected, &got), "{m}×{n}, k = {k}");
    }

    /// `C = A·B + beta·C` for a batch of rows or any small product, each
    /// operand row-major, transposed or with padded rows, over one panel
    /// of the inner dimension and several: what none of the other
    /// kernels takes is copied into place.
    #[test]
    fn any_batch_or_small_product_equals_the_general_product(
        m in prop_oneof![1usize..=BATCH_ROWS, BATCH_ROWS + 1..120],
        n in prop_oneof![1usize..40, 250usize..320],
        k in prop_oneof![1usize..60, 200usize..=PANEL, PANEL + 1..800],
        a_transposed in any::<bool>(),
        b_transposed in any::<bool>(),
        padding in 0usize..3,
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        if !crate::kernels::simd::avx2_available() || (m > BATCH_ROWS && m * n * k > SMALL_PRODUCT) {
            return Ok(());
        }
        let wide_a = if a_transposed { matrix(k, m + padding, seed) } else { matrix(m, k + padding, seed) };
        let wide_b = if b_transposed { matrix(n, k + padding, seed ^ 1) } else { matrix(k, n + padding, seed ^ 1) };
        let a = if a_transposed { wide_a.slice(s![.., ..m]).reversed_axes() } else { wide_a.slice(s![.., ..k]) };
        let b = if b_transposed { wide_b.slice(s![.., ..k]).reversed_axes() } else { wide_b.slice(s![.., ..n]) };
        let start = matrix(m, n + padding, seed ^ 2);
        let beta = if accumulate { 1.0 } else { 0.0 };

        let mut expected = start.clone();
        general_mat_mul(1.0, &a, &b, beta, &mut expected.slice_mut(s![.., ..n]));
        let mut failure = None;
        super::each_kernel_width(|width| {
            let mut got = start.clone();
            let handled = f32::small_product(a, b, beta, &mut got.slice_mut(s![.., ..n]), &Scratch::allocating());
            if !handled || !same_bits(&expected, &got) {
                failure.get_or_insert(format!("{m}×{n}, k = {k}, {width}: handled {handled}"));
            }
        });
        prop_assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    }
}

#[test]
fn other_cases_are_left_to_the_general_product() {
    let (u, v) = (matrix(4, 9, 1), matrix(4, 40, 2));
    let mut c = matrix(9, 40, 3);
    let before = c.clone();
    // A `beta` other than 0 or 1.
    assert!(!f32::small_product(
        u.t(),
        v.view(),
        0.5,
        &mut c.view_mut(),
        &Scratch::allocating()
    ));
    // More rows than a batch, an inner dimension too long for the first
    // kernel, and not small.
    let (rows, k) = (BATCH_ROWS + 6, SHORT_INNER + 1);
    let (long_u, long_v) = (matrix(k, rows, 4), matrix(k, 60, 5));
    let mut tall = matrix(rows, 60, 6);
    let tall_before = tall.clone();
    assert!(rows > FEW_INPUTS && rows * 60 * k > SMALL_PRODUCT);
    assert!(!f32::small_product(
        long_u.t(),
        long_v.view(),
        1.0,
        &mut tall.view_mut(),
        &Scratch::allocating()
    ));
    // An output whose columns are not contiguous.
    let mut wide = matrix(9, 80, 7);
    let wide_before = wide.clone();
    assert!(!f32::small_product(
        u.t(),
        v.view(),
        1.0,
        &mut wide.slice_mut(s![.., ..;2]),
        &Scratch::allocating()
    ));
    // f64 has no such kernels.
    let mut c64 = c.mapv(f64::from);
    let (u64, v64) = (u.mapv(f64::from), v.mapv(f64::from));
    assert!(!f64::small_product(
        u64.t(),
        v64.view(),
        1.0,
        &mut c64.view_mut(),
        &Scratch::allocating()
    ));
    assert!(same_bits(&before, &c));
    assert!(same_bits(&tall_before, &tall));
    assert!(same_bits(&wide_before, &wide));
}
