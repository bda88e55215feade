//! Dense linear algebra beyond the product: Cholesky factorisation,
//! symmetric positive-definite solves, small inverses.
//!
//! These serve small matrices (a covariance, a kernel matrix, a
//! Gauss-Newton step: up to a few dozen rows), so they are plain loops of
//! `O(n³)` in the element type's own arithmetic, with no LAPACK: a future
//! element type (dual numbers, say) gets them as it is. Beyond about a
//! hundred rows they are slow, not wrong.
//!
//! [`Var::cholesky`] and [`Var::solve_spd`] take a symmetric matrix and
//! read its symmetric part `(A + Aᵀ)/2`, which is `A` itself for the
//! symmetric matrices they are meant for. Their gradients are therefore
//! symmetric, the same as PyTorch's (which reads one triangle and
//! symmetrises the gradient), and exactly the derivative of what is
//! computed even when a perturbation breaks the symmetry.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, Ix2};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::execution::products::gemm;
use crate::memory;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// `array` as a matrix, checked to be square.
///
/// # Panics
/// When it is not a square matrix; the message names `op` and the shape.
#[track_caller]
fn square<'a, A: Element>(op: &str, array: &'a ArrayD<A>) -> ArrayView2<'a, A> {
    match array.shape() {
        &[rows, cols] if rows == cols => {
            array.view().into_dimensionality::<Ix2>().expect("a matrix")
        }
        shape => panic!("{op}: expected a square matrix, got shape {shape:?}"),
    }
}

/// The Cholesky factor `L` (lower triangular, positive diagonal, zeros
/// above) of the symmetric part of `a`: `L·Lᵀ = (a + aᵀ)/2`.
///
/// # Panics
/// When that matrix is not positive definite: the message names `op`, the
/// shape and the first pivot that is not positive.
#[track_caller]
pub(crate) fn factor<A: Element>(op: &str, a: ArrayView2<'_, A>) -> Array2<A> {
    let n = a.nrows();
    let half = A::from_f64_lossy(0.5);
    let mut l: Array2<A> = memory::zeros(Ix2(n, n));
    for j in 0..n {
        // The pivot: what is left of the diagonal after the columns before.
        let mut pivot = a[[j, j]];
        for k in 0..j {
            pivot -= l[[j, k]] * l[[j, k]];
        }
        if pivot.is_nan() || pivot <= A::zero() {
            panic!(
                "{op}: the matrix of shape [{n}, {n}] is not positive definite: pivot {j} is \
                 {pivot} (it must be positive)"
            );
        }
        let diagonal = pivot.sqrt();
        l[[j, j]] = diagonal;
        for i in j + 1..n {
            let mut sum = (a[[i, j]] + a[[j, i]]) * half;
            for k in 0..j {
                sum -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = sum / diagonal;
        }
    }
    l
}

/// Solves `L·Y = B` in place (`b` becomes `Y`), for a lower-triangular
/// `L` with a nonzero diagonal: forward substitution, column by column.
fn solve_lower<A: Element>(l: ArrayView2<'_, A>, mut b: ArrayViewMut2<'_, A>) {
    for mut column in b.columns_mut() {
        for i in 0..l.nrows() {
            let mut sum = column[i];
            for k in 0..i {
                sum -= l[[i, k]] * column[k];
            }
            column[i] = sum / l[[i, i]];
        }
    }
}

/// Solves `Lᵀ·X = Y` in place (`y` becomes `X`), for a lower-triangular
/// `L` with a nonzero diagonal: back substitution, column by column.
fn solve_lower_transposed<A: Element>(l: ArrayView2<'_, A>, mut y: ArrayViewMut2<'_, A>) {
    let n = l.nrows();
    for mut column in y.columns_mut() {
        for i in (0..n).rev() {
            let mut sum = column[i];
            for k in i + 1..n {
                sum -= l[[k, i]] * column[k];
            }
            column[i] = sum / l[[i, i]];
        }
    }
}

/// Solves `L·Lᵀ·X = B` in place (`b` becomes `X`).
pub(crate) fn solve_factored<A: Element>(l: ArrayView2<'_, A>, mut b: ArrayViewMut2<'_, A>) {
    solve_lower(l, b.view_mut());
    solve_lower_transposed(l, b);
}

/// `(m + mᵀ)/2`, added into `target` scaled by `scale`.
fn add_symmetric_part<A: Element>(
    scale: A,
    m: ArrayView2<'_, A>,
    mut target: ArrayViewMut2<'_, A>,
) {
    let half = A::from_f64_lossy(0.5) * scale;
    for ((i, j), out) in target.indexed_iter_mut() {
        *out += (m[[i, j]] + m[[j, i]]) * half;
    }
}

/// A right-hand side as a matrix: a vector as one column.
fn as_columns<'a, A>(b: ndarray::ArrayViewD<'a, A>) -> ArrayView2<'a, A> {
    let b = if b.ndim() == 1 {
        b.insert_axis(ndarray::Axis(1))
    } else {
        b
    };
    b.into_dimensionality().expect("a vector or a matrix")
}

/// [`as_columns`] of a mutable view.
fn as_columns_mut<'a, A>(b: ndarray::ArrayViewMutD<'a, A>) -> ArrayViewMut2<'a, A> {
    let b = if b.ndim() == 1 {
        b.insert_axis(ndarray::Axis(1))
    } else {
        b
    };
    b.into_dimensionality().expect("a vector or a matrix")
}

/// The inverse of `a` by Gauss-Jordan elimination with partial pivoting
/// (in each column, the row with the largest pivot in magnitude).
///
/// # Panics
/// When a column has no nonzero pivot (the matrix is singular); the
/// message names `op`, the shape and the column.
#[track_caller]
fn invert<A: Element>(op: &str, a: ArrayView2<'_, A>) -> Array2<A> {
    let n = a.nrows();
    let mut m = a.to_owned();
    let mut inverse: Array2<A> = memory::zeros(Ix2(n, n));
    inverse.diag_mut().fill(A::one());
    for col in 0..n {
        let pivot_row = (col..n)
            .reduce(|best, r| {
                if m[[r, col]].abs() > m[[best, col]].abs() {
                    r
                } else {
                    best
                }
            })
            .expect("col < n");
        let pivot = m[[pivot_row, col]];
        if pivot.is_nan() || pivot == A::zero() {
            panic!(
                "{op}: the matrix of shape [{n}, {n}] is singular: column {col} has no nonzero \
                 pivot (it is {pivot} after eliminating the columns before)"
            );
        }
        if pivot_row != col {
            for matrix in [&mut m, &mut inverse] {
                for j in 0..n {
                    matrix.swap([pivot_row, j], [col, j]);
                }
            }
        }
        let scale = A::one() / pivot;
        m.row_mut(col).mapv_inplace(|x| x * scale);
        inverse.row_mut(col).mapv_inplace(|x| x * scale);
        for r in (0..n).filter(|&r| r != col) {
            // Every row is eliminated, even with a zero factor: a dual
            // number's zero may still carry a derivative.
            let factor = m[[r, col]];
            for j in 0..n {
                let (m_cj, inv_cj) = (m[[col, j]], inverse[[col, j]]);
                m[[r, j]] -= factor * m_cj;
                inverse[[r, j]] -= factor * inv_cj;
            }
        }
    }
    inverse
}

impl<A: Element> Var<A> {
    /// The Cholesky factor of a symmetric positive-definite matrix `A`:
    /// the lower-triangular `L` with a positive diagonal such that
    /// `L·Lᵀ = A` (PyTorch's `torch.linalg.cholesky`).
    ///
    /// `A` is read as its symmetric part `(A + Aᵀ)/2` (itself, when it is
    /// symmetric), and its gradient is symmetric: for `L̄` the gradient
    /// of `L`, `Ā = sym(L⁻ᵀ·Φ(Lᵀ·L̄)·L⁻¹)`, where `Φ` keeps the lower
    /// triangle and halves the diagonal (Murray 2016, "Differentiation of
    /// the Cholesky decomposition"), and `sym(M) = (M + Mᵀ)/2`. Meant for
    /// small matrices (see the [module](self)).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let a = Var::constant(array![[4.0f64, 2.0], [2.0, 5.0]]);
    /// assert_eq!(a.cholesky().array(), &array![[2.0, 0.0], [1.0, 2.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `A` is not a square matrix, or not positive definite; the
    /// message names the shape, and the first pivot that is not positive.
    #[track_caller]
    pub fn cholesky(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let l = factor("cholesky", square("cholesky", self.array()));
        let a = self.clone();
        Pending::new(
            "cholesky",
            l.into_dyn(),
            self.requires_grad(),
            move |l: &ArrayD<A>, grad: ArrayD<A>| {
                if !a.requires_grad() {
                    return;
                }
                let l = l.view().into_dimensionality::<Ix2>().expect("a matrix");
                let n = l.nrows();
                // P = Φ(Lᵀ·L̄), L̄ read in its lower triangle: L is zero
                // above, so the rest of L̄ does not reach A.
                let mut lower_grad = grad.into_dimensionality::<Ix2>().expect("a matrix");
                for ((i, j), g) in lower_grad.indexed_iter_mut() {
                    if j > i {
                        *g = A::zero();
                    }
                }
                let mut p = memory::scratch(Ix2(n, n));
                gemm(A::one(), l.t(), lower_grad.view(), A::zero(), p.view_mut());
                let half = A::from_f64_lossy(0.5);
                for ((i, j), x) in p.indexed_iter_mut() {
                    if j > i {
                        *x = A::zero();
                    } else if i == j {
                        *x *= half;
                    }
                }
                // L⁻ᵀ·P·L⁻¹: solve Lᵀ·Y = P, then Lᵀ·Gᵀ = Yᵀ.
                solve_lower_transposed(l, p.view_mut());
                let mut g = p.t().as_standard_layout().into_owned();
                solve_lower_transposed(l, g.view_mut());
                a.accumulate_with(|da| {
                    let da = da.into_dimensionality::<Ix2>().expect("a matrix");
                    add_symmetric_part(A::one(), g.view(), da);
                });
                memory::recycle(lower_grad.into_dyn());
                memory::recycle(p.into_dyn());
            },
        )
    }

    /// The solution `x` of `A·x = b` for a symmetric positive-definite
    /// matrix `A` (`self`, `n × n`), by its Cholesky factorisation: `b` is
    /// a vector of `n`, or an `n × r` matrix of `r` right-hand sides
    /// (solved together), and `x` has `b`'s shape.
    ///
    /// Gradients: `b̄ = A⁻¹·x̄` (one more solve with the same factor) and
    /// `Ā = −sym(b̄·xᵀ)`: as for [`cholesky`](Var::cholesky), `A` is read
    /// as its symmetric part, so its gradient is symmetric. Meant for
    /// small matrices (see the [module](self)).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let a = Var::constant(array![[4.0f64, 2.0], [2.0, 5.0]]);
    /// let b = Var::constant(array![8.0f64, 12.0]);
    /// assert_eq!(a.solve_spd(&b).array(), &array![1.0, 2.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `A` is not a square matrix or not positive definite (the
    /// message names the failing pivot), or when `b` is not a vector or a
    /// matrix with `n` rows; the message names both shapes.
    #[track_caller]
    pub fn solve_spd(&self, b: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let a_matrix = square("solve_spd", self.array());
        let (a_shape, b_shape) = (self.shape(), b.shape());
        if !(1..=2).contains(&b_shape.len()) || b_shape[0] != a_shape[0] {
            shape_mismatch(
                "solve_spd",
                a_shape,
                b_shape,
                &format!(
                    "the right-hand side must be a vector of {n} or a matrix of {n} rows",
                    n = a_shape[0]
                ),
            );
        }
        let l = factor("solve_spd", a_matrix);
        let mut x = memory::copy_of(b.array().view());
        solve_factored(l.view(), as_columns_mut(x.view_mut()));

        let (a, b) = (self.clone(), b.clone());
        Pending::new(
            "solve_spd",
            x,
            a.requires_grad() || b.requires_grad(),
            move |x: &ArrayD<A>, grad: ArrayD<A>| {
                // b̄ = A⁻¹·x̄, in place of x̄.
                let mut b_grad = grad.as_standard_layout().into_owned();
                memory::recycle(grad);
                solve_factored(l.view(), as_columns_mut(b_grad.view_mut()));
                a.accumulate_with(|da| {
                    let da = da.into_dimensionality::<Ix2>().expect("a matrix");
                    let n = da.nrows();
                    let mut outer = memory::scratch(Ix2(n, n));
                    let (bg, x) = (as_columns(b_grad.view()), as_columns(x.view()));
                    gemm(A::one(), bg, x.t(), A::zero(), outer.view_mut());
                    add_symmetric_part(-A::one(), outer.view(), da);
                    memory::recycle(outer.into_dyn());
                });
                b.accumulate(b_grad);
            },
        )
    }

    /// The inverse `A⁻¹` of a square matrix, by Gauss-Jordan elimination
    /// with partial pivoting (PyTorch's `torch.linalg.inv`). Its gradient
    /// is `Ā = −A⁻ᵀ·Ȳ·A⁻ᵀ` for `Ȳ` the inverse's. Meant for small,
    /// well-conditioned matrices (see the [module](self)); to solve a
    /// system, [`solve_spd`](Var::solve_spd) is cheaper and more accurate
    /// where it applies.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let a = Var::constant(array![[0.0f64, 2.0], [4.0, 0.0]]);
    /// assert_eq!(a.inverse().array(), &array![[0.0, 0.25], [0.5, 0.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `A` is not a square matrix, or is singular (a column has no
    /// nonzero pivot); the message names the shape and the column.
    #[track_caller]
    pub fn inverse(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let inverse = invert("inverse", square("inverse", self.array()));
        let a = self.clone();
        Pending::new(
            "inverse",
            inverse.into_dyn(),
            self.requires_grad(),
            move |y: &ArrayD<A>, grad: ArrayD<A>| {
                let y = y.view().into_dimensionality::<Ix2>().expect("a matrix");
                let g = grad.view().into_dimensionality::<Ix2>().expect("a matrix");
                a.accumulate_with(|da| {
                    let da = da.into_dimensionality::<Ix2>().expect("a matrix");
                    let mut left = memory::scratch(Ix2(y.nrows(), y.ncols()));
                    gemm(A::one(), y.t(), g, A::zero(), left.view_mut());
                    gemm(-A::one(), left.view(), y.t(), A::one(), da);
                    memory::recycle(left.into_dyn());
                });
                memory::recycle(grad);
            },
        )
    }
}
