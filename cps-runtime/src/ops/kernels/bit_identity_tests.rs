//! The GEMM replacements of [`MatVecKernels::small_product`] against
//! ndarray's `general_mat_mul`, bit for bit, on random shapes, edges and
//! row strides, and the cases they leave to it.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, s};
use proptest::prelude::*;

use super::{FEW_INPUTS, MANY_OUTPUTS, MatVecKernels, PANEL, SHORT_INNER, SMALL_PRODUCT};

/// A matrix of `rows × cols` values from `seed`, with a sign mix and some
/// exact negative zeros (so that -0 and +0 sums occur).
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let bits = (state >> 40) as u32;
        if bits % 11 == 0 {
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
        if !crate::simd::avx2_available() {
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
            let handled = f32::small_product(u.t(), v, beta, &mut got.slice_mut(s![.., ..n]));
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
        if !crate::simd::avx2_available() {
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
        let handled = f32::small_product(x, w.t(), beta, &mut got.slice_mut(s![.., ..n]));
        prop_assert!(handled);
        prop_assert!(same_bits(&expected, &got), "{m}×{n}, k = {k}");
    }

    /// `C = A·B + beta·C` for any small product, each operand row-major,
    /// transposed or with padded rows, over inner dimensions up to one
    /// panel: what none of the other kernels takes is copied into place.
    #[test]
    fn any_small_product_equals_the_general_product(
        m in 1usize..120,
        n in 1usize..40,
        k in prop_oneof![1usize..60, 200usize..=PANEL],
        a_transposed in any::<bool>(),
        b_transposed in any::<bool>(),
        padding in 0usize..3,
        accumulate in any::<bool>(),
        seed in any::<u64>(),
    ) {
        if !crate::simd::avx2_available() || m * n * k > SMALL_PRODUCT {
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
            let handled = f32::small_product(a, b, beta, &mut got.slice_mut(s![.., ..n]));
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
    assert!(!f32::small_product(u.t(), v.view(), 0.5, &mut c.view_mut()));
    // A long inner dimension for the first kernel, many rows for the
    // second, and neither small.
    let (long_u, long_v) = (
        matrix(SHORT_INNER + 1, 60, 4),
        matrix(SHORT_INNER + 1, 60, 5),
    );
    let mut square = matrix(60, 60, 6);
    let square_before = square.clone();
    assert!(60 * 60 * (SHORT_INNER + 1) > SMALL_PRODUCT);
    assert!(!f32::small_product(
        long_u.t(),
        long_v.view(),
        1.0,
        &mut square.view_mut()
    ));
    let (x, w) = (matrix(FEW_INPUTS + 1, 80, 6), matrix(40, 80, 7));
    let mut tall = matrix(FEW_INPUTS + 1, 40, 8);
    let tall_before = tall.clone();
    assert!((FEW_INPUTS + 1) * 40 * 80 > SMALL_PRODUCT);
    assert!(!f32::small_product(
        x.view(),
        w.t(),
        1.0,
        &mut tall.view_mut()
    ));
    // Columns that are not contiguous, in a product that is not small.
    let wide = matrix(SHORT_INNER, 120, 9);
    let strided = wide.slice(s![.., ..;2]);
    let short_u = matrix(SHORT_INNER, 60, 10);
    assert!(!f32::small_product(
        short_u.t(),
        strided,
        1.0,
        &mut square.view_mut()
    ));
    // An inner dimension longer than one panel, however small the rest.
    let (a, b) = (matrix(2, PANEL + 1, 11), matrix(PANEL + 1, 2, 12));
    let mut corner = matrix(2, 2, 13);
    let corner_before = corner.clone();
    assert!(!f32::small_product(
        a.view(),
        b.view(),
        0.0,
        &mut corner.view_mut()
    ));
    assert!(same_bits(&square_before, &square));
    assert!(same_bits(&corner_before, &corner));
    // f64 has no such kernels.
    let mut c64 = c.mapv(f64::from);
    let (u64, v64) = (u.mapv(f64::from), v.mapv(f64::from));
    assert!(!f64::small_product(
        u64.t(),
        v64.view(),
        1.0,
        &mut c64.view_mut()
    ));
    assert!(same_bits(&before, &c));
    assert!(same_bits(&tall_before, &tall));
}
