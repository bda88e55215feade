//! The kernels of [`Dual`] elements: portable loops for the
//! matrix-vector products and the vector functions, and every other
//! matrix product as three products of the element type's own, on the
//! values and tangents laid out apart.
//!
//! A product of dual matrices is `(A + A'ε)(B + B'ε) = AB + (AB' + A'B)ε`:
//! three real products, each on the element type's packing GEMM, where a
//! loop over dual elements would run ndarray's generic triple loop.

use std::mem::MaybeUninit;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use num_traits::{Float, One, Zero};

use super::simd::vectorized;
use super::vector_math::VectorMath;
use super::{MatVecKernels, Scratch, portable};
use crate::element::{Dual, Element};

impl<A: Element> MatVecKernels for Dual<A> {
    fn mat_vec(alpha: Self, m: &[Self], v: &[Self], beta: Self, y: &mut [Self]) {
        let cols = v.len();
        super::check_lengths(m.len(), y.len(), cols);
        if cols == 0 {
            return portable::scale(beta, y);
        }
        // Not through `vectorized`: its closure is not inlined for a loop
        // this large (the profile of `hvp_cost` shows it apart), and
        // compiled for AVX2 explicitly it ran no faster there.
        dots(
            alpha,
            values_and_tangents(m),
            values_and_tangents(v),
            beta,
            y,
        )
    }

    fn mat_t_vec(alpha: Self, m: &[Self], g: &[Self], beta: Self, y: &mut [Self]) {
        let cols = y.len();
        super::check_lengths(m.len(), g.len(), cols);
        portable::scale(beta, y);
        if cols == 0 {
            return;
        }
        let y = values_and_tangents_mut(y);
        for (&scale, row) in g.iter().zip(m.chunks_exact(cols)) {
            add_scaled(y, alpha * scale, values_and_tangents(row));
        }
    }

    /// Every product of dual matrices (not only small ones): with a short
    /// inner dimension (an outer product, a weight's gradient from a few
    /// rows) as scaled additions of `b`'s rows into `c`'s, one pass over
    /// `c` per inner index; otherwise as three products of the values and
    /// the tangents.
    fn small_product(
        a: ArrayView2<'_, Self>,
        b: ArrayView2<'_, Self>,
        beta: Self,
        c: &mut ArrayViewMut2<'_, Self>,
        _scratch: &Scratch<Self>,
    ) -> bool {
        if a.ncols() <= SHORT_INNER && added_rows(a, b, beta, c) {
            return true;
        }
        let (a_value, a_tangent) = planes(a);
        let (b_value, b_tangent) = planes(b);
        let shape = c.raw_dim();
        let mut value = Array2::zeros(shape);
        general_mat_mul(A::one(), &a_value, &b_value, A::zero(), &mut value);
        let mut tangent = Array2::zeros(shape);
        general_mat_mul(A::one(), &a_value, &b_tangent, A::zero(), &mut tangent);
        general_mat_mul(A::one(), &a_tangent, &b_value, A::one(), &mut tangent);
        // With `beta = 0`, `c` is written without being read (it may hold
        // stale values, even NaN).
        let accumulate = !beta.is_zero();
        Zip::from(c)
            .and(&value)
            .and(&tangent)
            .for_each(|out, &v, &t| {
                let product = Dual::new(v, t);
                *out = if accumulate {
                    product + beta * *out
                } else {
                    product
                };
            });
        true
    }
}

/// The longest inner dimension of a product of dual matrices computed as
/// scaled additions of rows ([`added_rows`]): each inner index is one pass
/// over the output, where the three real products pass over it twice
/// more, and copy the operands into planes first.
const SHORT_INNER: usize = 4;

/// `c = a·b + beta·c` as `c[i] = beta·c[i] + Σₖ a[i, k]·b[k]` over rows,
/// when `b`'s and `c`'s rows are contiguous; `false` (and `c` untouched)
/// otherwise.
fn added_rows<A: Element>(
    a: ArrayView2<'_, Dual<A>>,
    b: ArrayView2<'_, Dual<A>>,
    beta: Dual<A>,
    c: &mut ArrayViewMut2<'_, Dual<A>>,
) -> bool {
    let contiguous = |m: &ArrayView2<'_, Dual<A>>| m.ncols() <= 1 || m.strides()[1] == 1;
    if !contiguous(&b) || !(c.ncols() <= 1 || c.strides()[1] == 1) {
        return false;
    }
    for (i, mut row) in c.rows_mut().into_iter().enumerate() {
        let row = row.as_slice_mut().expect("a contiguous row");
        portable::scale(beta, row);
        let row = values_and_tangents_mut(row);
        for (k, b_row) in b.rows().into_iter().enumerate() {
            let b_row = values_and_tangents(b_row.to_slice().expect("a contiguous row"));
            add_scaled(row, a[[i, k]], b_row);
        }
    }
    true
}

/// `y += scale·x` for dual vectors given as [`values_and_tangents`].
#[inline(always)]
fn add_scaled<A: Element>(y: &mut [A], scale: Dual<A>, x: &[A]) {
    vectorized(|| {
        for (out, r) in y.chunks_exact_mut(2).zip(x.chunks_exact(2)) {
            out[0] += scale.value * r[0];
            out[1] += scale.value * r[1] + scale.tangent * r[0];
        }
    })
}

/// Dual numbers as the slice of their values and tangents in turn.
#[inline(always)]
fn values_and_tangents<A>(duals: &[Dual<A>]) -> &[A] {
    // SAFETY: `Dual<A>` is `repr(C)` with two fields of type `A`, so it
    // has `A`'s alignment, no padding, and the size of two `A`s; the slice
    // borrows `duals`.
    unsafe { std::slice::from_raw_parts(duals.as_ptr().cast::<A>(), 2 * duals.len()) }
}

/// [`values_and_tangents`], mutably.
#[inline(always)]
fn values_and_tangents_mut<A>(duals: &mut [Dual<A>]) -> &mut [A] {
    // SAFETY: as in `values_and_tangents`; the slice borrows `duals`
    // uniquely, and every `A` written is a valid field of a dual number.
    unsafe { std::slice::from_raw_parts_mut(duals.as_mut_ptr().cast::<A>(), 2 * duals.len()) }
}

/// The dot product of two dual vectors given as [`values_and_tangents`]:
/// eight sums of values and eight of tangents in flight.
#[inline(always)]
fn dot<A: Element>(row: &[A], v: &[A]) -> Dual<A> {
    const LANES: usize = 8;
    let mut values = [A::zero(); LANES];
    let mut tangents = [A::zero(); LANES];
    let body = row.len() - row.len() % (2 * LANES);
    for (r, x) in row[..body]
        .chunks_exact(2 * LANES)
        .zip(v[..body].chunks_exact(2 * LANES))
    {
        for lane in 0..LANES {
            let (rv, rt, xv, xt) = (r[2 * lane], r[2 * lane + 1], x[2 * lane], x[2 * lane + 1]);
            values[lane] += rv * xv;
            tangents[lane] += rv * xt + rt * xv;
        }
    }
    let mut sum = Dual::new(values.iter().copied().sum(), tangents.iter().copied().sum());
    for (r, x) in row[body..].chunks_exact(2).zip(v[body..].chunks_exact(2)) {
        sum.value += r[0] * x[0];
        sum.tangent += r[0] * x[1] + r[1] * x[0];
    }
    sum
}

/// `y = alpha·M·v + beta·y`, one [`dot`] per row of `M` (given as
/// [`values_and_tangents`], rows of `v.len()` elements).
#[inline(always)]
fn dots<A: Element>(alpha: Dual<A>, m: &[A], v: &[A], beta: Dual<A>, y: &mut [Dual<A>]) {
    for (out, row) in y.iter_mut().zip(m.chunks_exact(v.len())) {
        let product = alpha * dot(row, v);
        *out = if beta.is_zero() {
            product
        } else {
            product + beta * *out
        };
    }
}

/// The values and the tangents of a dual matrix, as two matrices.
fn planes<A: Element>(m: ArrayView2<'_, Dual<A>>) -> (Array2<A>, Array2<A>) {
    (m.mapv(|d| d.value), m.mapv(|d| d.tangent))
}

/// The logistic function, in the form that cannot overflow.
fn sigmoid<A: Element>(x: Dual<A>) -> Dual<A> {
    let one = Dual::<A>::one();
    if x.value >= A::zero() {
        one / (one + (-x).exp())
    } else {
        let e = x.exp();
        e / (one + e)
    }
}

impl<A: Element> VectorMath for Dual<A> {
    fn sigmoid_in_place(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = sigmoid(*v));
    }
    fn tanh_in_place(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.tanh());
    }
    fn sigmoid_to(x: &[Self], out: &mut [MaybeUninit<Self>]) {
        assert_eq!(x.len(), out.len(), "sigmoid_to: lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(sigmoid(v));
        }
    }
    fn tanh_to(x: &[Self], out: &mut [MaybeUninit<Self>]) {
        assert_eq!(x.len(), out.len(), "tanh_to: lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(v.tanh());
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    fn dual_matrix(rows: usize, cols: usize, seed: f64) -> Array2<Dual<f64>> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let k = (i * cols + j) as f64 + seed;
            Dual::new((k * 0.37).sin(), (k * 0.91).cos())
        })
    }

    /// The three-product rule gives the elementwise dual product, with
    /// and without accumulation, on transposed operands too.
    #[test]
    fn a_product_of_planes_equals_the_product_of_duals() {
        let a = dual_matrix(5, 7, 0.0);
        let b = dual_matrix(6, 7, 3.0);
        for beta in [Dual::zero(), Dual::new(1.0, 0.0), Dual::new(0.5, 2.0)] {
            let old = dual_matrix(5, 6, 9.0);
            let mut expected = old.clone();
            for i in 0..5 {
                for j in 0..6 {
                    let dot: Dual<f64> = (0..7).map(|k| a[[i, k]] * b[[j, k]]).sum();
                    expected[[i, j]] = if beta.is_zero() {
                        dot
                    } else {
                        dot + beta * old[[i, j]]
                    };
                }
            }
            let mut c = old.clone();
            let scratch = Scratch {
                take: |n| Vec::with_capacity(n),
                give: drop,
            };
            assert!(Dual::small_product(
                a.view(),
                b.t(),
                beta,
                &mut c.view_mut(),
                &scratch
            ));
            for (x, y) in c.iter().zip(&expected) {
                assert!((x.value - y.value).abs() < 1e-12, "{x} vs {y}");
                assert!((x.tangent - y.tangent).abs() < 1e-12, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn the_vector_functions_carry_their_derivatives() {
        let x = [
            Dual::new(-30.0f64, 1.0),
            Dual::new(0.3, 1.0),
            Dual::new(2.0, -1.0),
        ];
        let mut s = x;
        Dual::sigmoid_in_place(&mut s);
        let mut t = x;
        Dual::tanh_in_place(&mut t);
        for i in 0..3 {
            let v = x[i].value;
            let sig = 1.0 / (1.0 + (-v).exp());
            assert!((s[i].value - sig).abs() < 1e-15);
            assert!((s[i].tangent - sig * (1.0 - sig) * x[i].tangent).abs() < 1e-15);
            let th = v.tanh();
            assert!((t[i].tangent - (1.0 - th * th) * x[i].tangent).abs() < 1e-15);
        }
    }
}
