//! Linear algebra: matrix products and transposition.
//!
//! Every form of [`Var::matmul`] (matrix·matrix, matrix·vector,
//! vector·matrix, vector·vector) is computed as one matrix product
//! `C = A·B` in which a vector on the left is viewed as a one-row matrix,
//! a vector on the right as a one-column matrix, and the output likewise.
//! The views are free (an inserted axis of length one), so the forward
//! step and both gradients, `dA += dC·Bᵀ` and `dB += Aᵀ·dC`, are one
//! kernel call each, written straight into the gradient buffers.
//!
//! An operand of rank 3 or more makes `matmul` a product of stacks of
//! matrices (`torch.matmul`'s batches), taken on a path of its own: one
//! such product per matrix of the broadcast stack, forward and backward.
//! [`Var::outer`] and [`Var::dot`] are the products of two vectors under
//! PyTorch's names.

use ndarray::{
    Array3, ArrayBase, ArrayD, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis, CowArray, Ix2, Ix3,
    IxDyn, RawData, Zip,
};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::execution::batch;
use crate::execution::products::gemm;
use crate::memory;
use crate::ops::reductions::accumulate_view;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// Views a tensor of a matrix product as a matrix: a vector operand on the
/// left (`row`) gains a leading axis, one on the right (`column`) a
/// trailing axis; the output gains both as its operands did.
fn as_matrix<S: RawData>(array: ArrayBase<S, IxDyn>, row: bool, column: bool) -> ArrayBase<S, Ix2> {
    let array = if row {
        array.insert_axis(Axis(0))
    } else {
        array
    };
    let array = if column {
        let last = array.ndim();
        array.insert_axis(Axis(last))
    } else {
        array
    };
    array
        .into_dimensionality::<Ix2>()
        .expect("matmul checked the operands' ranks")
}

/// Where [`batch::batches`] says so, the gradient `Mᵀ·g` of the vector `x`
/// in `M·x`, computed with the other such products of its batch and added
/// into `x`'s gradient; `false` (nothing done) when an operand is not
/// contiguous.
fn batched_transposed<A: Element>(m: &Var<A>, g: &ArrayD<A>, x: &Var<A>) -> bool {
    let (Some(rows), Some(g)) = (m.array().as_slice(), g.as_slice()) else {
        return false;
    };
    let mut dx = memory::scratch(IxDyn(x.shape()));
    let Some(out) = dx.as_slice_mut() else {
        return false;
    };
    batch::batched_product(true, rows, g, out);
    x.accumulate_same_shape(dx);
    true
}

/// Adds `uᵀ·v` into `target`'s gradient: `u` is one row (a vector of the
/// matrix's row count) or a block of rows, `v` as many rows of the
/// matrix's column count; a single row pair is the outer product `u ⊗ v`.
/// A parameter collects the pairs and adds them as one matrix product
/// when its gradient is read (see `ParamGrad` in `var.rs`), which turns a
/// memory-bound update per use into a compute-bound product per
/// computation; any other value adds them at once.
pub(crate) fn defer_outer<A: Element>(target: &Var<A>, u: ArrayD<A>, v: Var<A>) {
    if !target.requires_grad() {
        return;
    }
    if target.collects_products() {
        return target.push_product(u, v, add_products::<A>);
    }
    let (u, v_value) = (as_rows(u.view()), v.array().view());
    let v_rows = as_rows(v_value);
    target.accumulate_with(|grad| {
        let grad = grad.into_dimensionality::<Ix2>().expect("a matrix");
        gemm(A::one(), u.t(), v_rows, A::one(), grad);
    });
}

/// How a parameter's collected products are added up: `grad = Uᵀ·V +
/// beta·grad`, given `Uᵀ`.
fn add_products<A: Element>(
    u_t: ArrayView2<'_, A>,
    v: ArrayView2<'_, A>,
    beta: A,
    grad: ArrayViewMut2<'_, A>,
) {
    gemm(A::one(), u_t, v, beta, grad);
}

/// A vector as a one-row matrix, a matrix as itself.
fn as_rows<A>(a: ndarray::ArrayViewD<'_, A>) -> ArrayView2<'_, A> {
    let a = if a.ndim() == 1 {
        a.insert_axis(Axis(0))
    } else {
        a
    };
    a.into_dimensionality().expect("a vector or a matrix")
}

/// Panics with a message saying which inner dimensions of a matrix
/// product disagree, or that an operand is zero-dimensional.
#[track_caller]
fn check_matmul(left: &[usize], right: &[usize]) {
    if left.is_empty() || right.is_empty() {
        shape_mismatch(
            "matmul",
            left,
            right,
            "operands must be vectors (1-D) or matrices (2-D), or stacks of matrices (3-D and \
             more), not zero-dimensional",
        );
    }
    // The inner dimension: a left operand's last, a right vector's only
    // one, a right matrix's rows (its second to last).
    let right_inner = right[right.len().saturating_sub(2)];
    let left_inner = left[left.len() - 1];
    if left_inner != right_inner {
        let left_says = if left.len() == 1 {
            format!("left vector has {left_inner} elements")
        } else {
            format!("left has {left_inner} columns")
        };
        let right_says = if right.len() == 1 {
            format!("right vector has {right_inner} elements")
        } else {
            format!("right has {right_inner} rows")
        };
        shape_mismatch(
            "matmul",
            left,
            right,
            &format!("{left_says} but {right_says}"),
        );
    }
}

/// How a product involving a stack of matrices (an operand of rank 3 or
/// more) lines up: each operand as a stack of `m × k` or `k × n` matrices
/// in row-major order (a vector is a stack of one row or one column, a
/// matrix a stack of one), and which matrix of each operand every matrix
/// of the result multiplies, its stack shape broadcast by NumPy's rules.
struct Stacked {
    m: usize,
    k: usize,
    n: usize,
    left_count: usize,
    right_count: usize,
    /// For each matrix of the result, in row-major order, the positions
    /// of its left and right factors in their stacks.
    pairs: Vec<(usize, usize)>,
    /// The result's shape: the broadcast stack shape, then `m` unless the
    /// left operand is a vector and `n` unless the right one is.
    shape: Vec<usize>,
}

impl Stacked {
    /// The layout of `left · right`.
    ///
    /// # Panics
    /// As [`check_matmul`], and when the stack shapes do not broadcast.
    #[track_caller]
    fn new(left: &[usize], right: &[usize]) -> Stacked {
        check_matmul(left, right);
        let (left_vector, right_vector) = (left.len() == 1, right.len() == 1);
        let (left_stack, right_stack) = (
            &left[..left.len().saturating_sub(2)],
            &right[..right.len().saturating_sub(2)],
        );
        let k = left[left.len() - 1];
        let m = if left_vector { 1 } else { left[left.len() - 2] };
        let n = if right_vector {
            1
        } else {
            right[right.len() - 1]
        };

        let rank = left_stack.len().max(right_stack.len());
        let size = |stack: &[usize], axis: usize| {
            let missing = rank - stack.len();
            if axis < missing {
                1
            } else {
                stack[axis - missing]
            }
        };
        let mut shape: Vec<usize> = (0..rank)
            .map(
                |axis| match (size(left_stack, axis), size(right_stack, axis)) {
                    (l, r) if l == r || r == 1 => l,
                    (1, r) => r,
                    (l, r) => shape_mismatch(
                        "matmul",
                        left,
                        right,
                        &format!(
                            "the stacks of matrices {left_stack:?} and {right_stack:?} do not \
                         broadcast: sizes {l} and {r} meet at axis {axis} of the result's stack \
                         (NumPy's rules: aligned at the last axis, equal or one of them 1)"
                        ),
                    ),
                },
            )
            .collect();
        let pairs = ndarray::indices(IxDyn(&shape))
            .into_iter()
            .map(|index| {
                let index = ndarray::Dimension::slice(&index);
                (
                    stack_position(left_stack, index),
                    stack_position(right_stack, index),
                )
            })
            .collect();
        if !left_vector {
            shape.push(m);
        }
        if !right_vector {
            shape.push(n);
        }
        Stacked {
            m,
            k,
            n,
            left_count: left_stack.iter().product(),
            right_count: right_stack.iter().product(),
            pairs,
            shape,
        }
    }
}

/// The position, in a stack of matrices of shape `stack`, of the matrix
/// that the result's matrix at `index` reads: `stack` is aligned with
/// `index` at the last axis, and along its axes of size 1 the one matrix
/// serves every index.
fn stack_position(stack: &[usize], index: &[usize]) -> usize {
    let index = &index[index.len() - stack.len()..];
    stack.iter().zip(index).fold(0, |position, (&size, &i)| {
        position * size + if size == 1 { 0 } else { i }
    })
}

/// `array` viewed as a stack of `dims.1 × dims.2` matrices (copied into
/// standard layout first if it is not).
fn as_stack<A: Element>(array: &ArrayD<A>, dims: (usize, usize, usize)) -> CowArray<'_, A, Ix3> {
    array
        .as_standard_layout()
        .into_shape_with_order(dims)
        .expect("the stack has the array's elements")
}

/// The value of `left · right` where an operand has rank 3 or more: one
/// product per matrix of the result's stack.
#[inline(never)]
fn stacked_product<A: Element>(left: &Var<A>, right: &Var<A>) -> ArrayD<A> {
    let layout = Stacked::new(left.shape(), right.shape());
    let Stacked { m, k, n, .. } = layout;
    let a = as_stack(left.array(), (layout.left_count, m, k));
    let b = as_stack(right.array(), (layout.right_count, k, n));
    let dims = Ix3(layout.pairs.len(), m, n);
    let c = if k == 0 {
        // An empty sum: the products would write nothing.
        memory::zeros(dims)
    } else {
        // Written in full by the products (`beta = 0` never reads it).
        let mut c = memory::scratch(dims);
        for (out, &(i, j)) in c.outer_iter_mut().zip(&layout.pairs) {
            let (a, b) = (a.index_axis(Axis(0), i), b.index_axis(Axis(0), j));
            gemm(A::one(), a, b, A::zero(), out);
        }
        c
    };
    c.into_shape_with_order(IxDyn(&layout.shape))
        .expect("the result has a matrix per pair")
}

/// Adds into `target`'s gradient, viewed as a stack of `dims` matrices,
/// what `add` adds into that stack.
fn add_to_stack<A: Element>(
    target: &Var<A>,
    dims: (usize, usize, usize),
    add: impl FnOnce(ArrayViewMut3<'_, A>),
) {
    target.accumulate_with(|mut grad| {
        if grad.is_standard_layout() {
            add(grad
                .into_shape_with_order(dims)
                .expect("the stack has the gradient's elements"));
        } else {
            let mut sum = Array3::zeros(dims);
            add(sum.view_mut());
            grad += &sum
                .into_shape_with_order(grad.raw_dim())
                .expect("the stack has the gradient's elements");
        }
    });
}

/// The gradients of `left · right` where an operand has rank 3 or more,
/// given the result's: for each pair, `dA += dC·Bᵀ` and `dB += Aᵀ·dC`
/// added into the operand's matrix, so that an operand's matrix repeated
/// over the result's stack sums the gradients of all its uses.
#[inline(never)]
fn stacked_gradients<A: Element>(left: &Var<A>, right: &Var<A>, grad: ArrayD<A>) {
    let layout = Stacked::new(left.shape(), right.shape());
    let Stacked { m, k, n, .. } = layout;
    let g = as_stack(&grad, (layout.pairs.len(), m, n));
    // With an empty dimension every product is empty or adds zeros.
    let empty = m == 0 || k == 0 || n == 0;
    if left.requires_grad() {
        let b = as_stack(right.array(), (layout.right_count, k, n));
        add_to_stack(left, (layout.left_count, m, k), |mut da| {
            for (g, &(i, j)) in g.outer_iter().zip(&layout.pairs).filter(|_| !empty) {
                let b = b.index_axis(Axis(0), j);
                gemm(A::one(), g, b.t(), A::one(), da.index_axis_mut(Axis(0), i));
            }
        });
    }
    if right.requires_grad() {
        let a = as_stack(left.array(), (layout.left_count, m, k));
        add_to_stack(right, (layout.right_count, k, n), |mut db| {
            for (g, &(i, j)) in g.outer_iter().zip(&layout.pairs).filter(|_| !empty) {
                let a = a.index_axis(Axis(0), i);
                gemm(A::one(), a.t(), g, A::one(), db.index_axis_mut(Axis(0), j));
            }
        });
    }
    drop(g);
    memory::recycle(grad);
}

impl<A: Element> Var<A> {
    /// The matrix product `self · other`, for matrices and vectors:
    ///
    /// | `self` | `other` | result |
    /// |---|---|---|
    /// | `m × k` | `k × n` | `m × n` |
    /// | `m × k` | `k` | `m` |
    /// | `k` | `k × n` | `n` |
    /// | `k` | `k` | `[]` (the dot product) |
    /// | `… × m × k` | `… × k × n` | `… × m × n` |
    ///
    /// An operand of rank 3 or more is a stack of matrices, its last two
    /// axes the matrices and the axes before them the stack, as in
    /// `torch.matmul`: the two stacks broadcast by NumPy's rules (a matrix
    /// is a stack of one; a vector, one row on the left or one column on
    /// the right, whose axis the result drops), the result has one product
    /// per matrix of the broadcast stack, and the gradient of an operand's
    /// matrix sums over every product that read it. So `[2, 1, 3, 4] ·
    /// [5, 4, 2]` is `[2, 5, 3, 2]`. Stacks run one matrix product per
    /// matrix, on a path of their own: vectors and matrices keep the one
    /// described next.
    ///
    /// Forward and backward run on ndarray's GEMM (matrixmultiply) or, when
    /// one side of the output is a single row or column, on a
    /// matrix-vector kernel; gradients are multiplied straight into the
    /// inputs' gradient buffers with no temporary. A parameter's gradient
    /// gathered from a few deferred rows runs on a kernel for short inner
    /// dimensions that gives matrixmultiply's bits without packing; so do
    /// batches of up to 64 rows and other small products, their operands
    /// copied into pooled buffers where needed (`f32` with AVX2 and FMA).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let w = Var::constant(array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// let x = Var::constant(array![1.0f64, -1.0, 2.0]);
    /// assert_eq!(x.matmul(&w).array(), &array![8.0, 10.0].into_dyn());
    /// // An operation's result is handed on by binding it.
    /// w.t().bind(|wt| assert_eq!(wt.matmul(&x).array(), &array![8.0, 10.0].into_dyn()));
    /// ```
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{Array, IxDyn};
    ///
    /// let a = Var::constant(Array::<f64, _>::ones(IxDyn(&[2, 1, 3, 4])));
    /// let b = Var::constant(Array::<f64, _>::ones(IxDyn(&[5, 4, 2])));
    /// let c = a.matmul(&b);
    /// assert_eq!(c.array().shape(), &[2, 5, 3, 2]);
    /// assert!(c.array().iter().all(|&x| x == 4.0));
    /// ```
    ///
    /// # Panics
    /// When an operand is zero-dimensional, when the inner dimensions
    /// disagree, or when the stacks do not broadcast; the message names
    /// both shapes and the dimensions that disagree.
    #[track_caller]
    pub fn matmul(&self, other: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        check_matmul(self.shape(), other.shape());
        let left_vector = self.shape().len() == 1;
        let right_vector = other.shape().len() == 1;

        let stacked = self.shape().len() > 2 || other.shape().len() > 2;
        let value = if stacked {
            stacked_product(self, other)
        } else {
            self.dense_product(other, left_vector, right_vector)
        };

        let (left, right) = (self.clone(), other.clone());
        Pending::new(
            "matmul",
            value,
            self.requires_grad() || other.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                if stacked {
                    return stacked_gradients(&left, &right, grad);
                }
                let g = as_matrix(grad.view(), left_vector, right_vector);
                let a = as_matrix(left.array().view(), left_vector, false);
                let b = as_matrix(right.array().view(), false, right_vector);
                // accumulate_with does nothing (and so computes nothing)
                // for an input that needs no gradient.
                if !(right_vector
                    && !left_vector
                    && right.requires_grad()
                    && batch::batches::<A>(left.len())
                    && batched_transposed(&left, &grad, &right))
                {
                    right.accumulate_with(|gb| {
                        gemm(
                            A::one(),
                            a.t(),
                            g.view(),
                            A::one(),
                            as_matrix(gb, false, right_vector),
                        )
                    });
                }
                if right_vector && !left_vector {
                    // A matrix times a vector: the matrix's gradient is the
                    // outer product `grad ⊗ right`, added later together
                    // with the matrix's other uses (see `defer_outer`).
                    defer_outer(&left, grad, right);
                } else {
                    left.accumulate_with(|ga| {
                        gemm(
                            A::one(),
                            g.view(),
                            b.t(),
                            A::one(),
                            as_matrix(ga, left_vector, false),
                        )
                    });
                }
            },
        )
    }

    /// The value of a product of vectors and matrices (see [`Var::matmul`]).
    #[inline(always)]
    fn dense_product(&self, other: &Var<A>, left_vector: bool, right_vector: bool) -> ArrayD<A> {
        let a = as_matrix(self.array().view(), left_vector, false);
        let b = as_matrix(other.array().view(), false, right_vector);
        // Written in full by the product (`beta = 0` never reads it).
        let mut c = memory::scratch(Ix2(a.nrows(), b.ncols()));
        // A matrix times a vector in a side of a `join` waits for the
        // other products with the same matrix, and runs with them.
        let batched = !left_vector
            && right_vector
            && batch::batches::<A>(self.len())
            && match (
                self.array().as_slice(),
                other.array().as_slice(),
                c.as_slice_mut(),
            ) {
                (Some(m), Some(x), Some(y)) => {
                    batch::batched_product(false, m, x, y);
                    true
                }
                _ => false,
            };
        if !batched {
            gemm(A::one(), a, b, A::zero(), c.view_mut());
        }
        // Drop the axes the vector operands gained (no copy).
        match (left_vector, right_vector) {
            (false, false) => c.into_dyn(),
            (false, true) => c.remove_axis(Axis(1)).into_dyn(),
            (true, false) => c.remove_axis(Axis(0)).into_dyn(),
            (true, true) => c.remove_axis(Axis(1)).remove_axis(Axis(0)).into_dyn(),
        }
    }

    /// `self · weightᵀ`: a linear layer without bias (PyTorch's
    /// `F.linear`), for inputs that are one example (a vector of `k`) or a
    /// batch of examples (`n × k`, one per row) and a weight of shape
    /// `m × k`. The result is `m` or `n × m`.
    ///
    /// Same as `self.matmul(&weight.t())`, but the weight is read in place
    /// rather than transposed into a copy, and when the weight is a
    /// [`Param`](crate::Param) its gradient `gradᵀ · self` is collected
    /// and added as one matrix product when read, as for
    /// [`matmul`](Var::matmul) with a vector. A batch of up to 40 rows
    /// through a weight of at least 32 rows (`f32`, AVX2) runs on a kernel
    /// that reads the weight where it lies instead of packing a copy of it
    /// as a general GEMM does; its results are the GEMM's, bit for bit.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let w = Var::constant(array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    /// let batch = Var::constant(array![[1.0f64, 0.0], [0.0, 1.0]]);
    /// assert_eq!(batch.linear(&w).array(), &array![[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `weight` is not a matrix, `self` not a vector or a matrix, or
    /// their last dimensions differ; the message names both shapes.
    #[track_caller]
    pub fn linear(&self, weight: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let (input_shape, weight_shape) = (self.shape(), weight.shape());
        if weight_shape.len() != 2 || !(1..=2).contains(&input_shape.len()) {
            shape_mismatch(
                "linear",
                input_shape,
                weight_shape,
                "the input must be a vector or a matrix and the weight a matrix",
            );
        }
        let (inner, weight_inner) = (input_shape[input_shape.len() - 1], weight_shape[1]);
        if inner != weight_inner {
            shape_mismatch(
                "linear",
                input_shape,
                weight_shape,
                &format!(
                    "the input has {inner} features but the weight has {weight_inner} columns"
                ),
            );
        }
        let vector = input_shape.len() == 1;
        let x = as_matrix(self.array().view(), vector, false);
        let w = as_matrix(weight.array().view(), false, false);
        // Written in full by the product (`beta = 0` never reads it).
        let mut y = memory::scratch(Ix2(x.nrows(), w.nrows()));
        gemm(A::one(), x, w.t(), A::zero(), y.view_mut());
        let value = if vector {
            y.remove_axis(Axis(0)).into_dyn()
        } else {
            y.into_dyn()
        };

        let (input, weight) = (self.clone(), weight.clone());
        Pending::new(
            "linear",
            value,
            self.requires_grad() || weight.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = as_matrix(grad.view(), vector, false);
                let w = as_matrix(weight.array().view(), false, false);
                input.accumulate_with(|gx| {
                    gemm(
                        A::one(),
                        g.view(),
                        w,
                        A::one(),
                        as_matrix(gx, vector, false),
                    )
                });
                // The weight's gradient gᵀ·x, deferred for parameters.
                defer_outer(&weight, grad, input);
            },
        )
    }

    /// The transpose of a matrix (a vector is returned unchanged, as a
    /// row and a column vector are the same 1-D tensor).
    ///
    /// The result is a copy in standard (row-major) layout, like every
    /// operation's result.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let m = Var::constant(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(m.t().array(), &array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the tensor has more than two dimensions or none.
    #[track_caller]
    pub fn t(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        assert!(
            (1..=2).contains(&self.shape().len()),
            "t: transposes matrices (2-D) and vectors (1-D), got shape {:?}",
            self.shape()
        );
        let x = self.clone();
        Pending::new(
            "t",
            self.array().t().as_standard_layout().into_owned(),
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| accumulate_view(&x, grad.t()),
        )
    }

    /// The outer product `self ⊗ other` of two vectors: `[m]` and `[n]`
    /// give the `m × n` matrix of the products `self[i]·other[j]`
    /// (PyTorch's `torch.outer`).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let u = Var::constant(array![1.0f64, 2.0]);
    /// let v = Var::constant(array![3.0f64, 4.0, 5.0]);
    /// assert_eq!(u.outer(&v).array(), &array![[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When an operand is not a vector; the message names both shapes.
    #[track_caller]
    pub fn outer(&self, other: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if self.shape().len() != 1 || other.shape().len() != 1 {
            shape_mismatch(
                "outer",
                self.shape(),
                other.shape(),
                "operands must be vectors (1-D)",
            );
        }
        // The left vector as a column, the right one as a row.
        let column = as_matrix(self.array().view(), false, true);
        let row = as_matrix(other.array().view(), true, false);
        let mut value = memory::scratch(Ix2(column.nrows(), row.ncols()));
        Zip::from(&mut value)
            .and_broadcast(&column)
            .and_broadcast(&row)
            .for_each(|out, &u, &v| *out = u * v);

        let (left, right) = (self.clone(), other.clone());
        Pending::new(
            "outer",
            value.into_dyn(),
            self.requires_grad() || other.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = as_matrix(grad.view(), false, false);
                // d(self) = G·other and d(other) = Gᵀ·self, as columns.
                let (u, v) = (left.array().view(), right.array().view());
                left.accumulate_with(|du| {
                    let v = as_matrix(v, false, true);
                    gemm(A::one(), g, v, A::one(), as_matrix(du, false, true))
                });
                right.accumulate_with(|dv| {
                    let u = as_matrix(u, false, true);
                    gemm(A::one(), g.t(), u, A::one(), as_matrix(dv, false, true))
                });
            },
        )
    }

    /// The dot product `Σ self[i]·other[i]` of two vectors of the same
    /// length, as a zero-dimensional tensor (PyTorch's `torch.dot`). It is
    /// [`matmul`](Var::matmul)'s vector·vector form (and its result's
    /// operation is named `matmul`), checked to be given two vectors.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let u = Var::constant(array![1.0f64, 2.0, 3.0]);
    /// let v = Var::constant(array![4.0f64, -5.0, 6.0]);
    /// assert_eq!(u.dot(&v).array()[[]], 12.0);
    /// ```
    ///
    /// # Panics
    /// When an operand is not a vector or the lengths differ; the message
    /// names both shapes.
    #[track_caller]
    pub fn dot(&self, other: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let (left, right) = (self.shape(), other.shape());
        if left.len() != 1 || right.len() != 1 {
            shape_mismatch("dot", left, right, "operands must be vectors (1-D)");
        }
        if left != right {
            shape_mismatch(
                "dot",
                left,
                right,
                &format!("the vectors' lengths {} and {} differ", left[0], right[0]),
            );
        }
        self.matmul(other)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use crate::computation::Computation;
    use crate::var::Var;

    /// A finished value of `len` elements, all NaN, whose buffer is left
    /// to the next result of that length; its address.
    fn leave_nan_buffer(len: usize) -> *const f32 {
        // Asked for once (and missed): the pool keeps one of this length.
        let mut nan = crate::memory::take::<f32>(len);
        nan.resize(len, f32::NAN);
        let address = nan.as_ptr();
        crate::memory::give(nan);
        address
    }

    fn matrix(rows: usize, cols: usize, seed: f32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(r, c)| {
            seed + (r * cols + c) as f32 * 0.25 - 1.0
        })
    }

    /// Every path of a product with `beta = 0` (a matrix times a vector, a
    /// vector times a matrix, a few rows through a weight, a general
    /// product) writes its whole output over a kept buffer of stale NaNs.
    #[test]
    fn products_overwrite_a_stale_buffer_in_full() {
        let cases: [(Array2<f32>, Array2<f32>, bool); 4] = [
            (matrix(20, 3, 0.5), matrix(3, 1, 1.0), false),
            (matrix(1, 3, 0.5), matrix(3, 20, 1.0), false),
            (matrix(4, 3, 0.5), matrix(5, 3, 1.0), true),
            (matrix(10, 3, 0.5), matrix(3, 2, 1.0), false),
        ];
        for (left, right, linear) in cases {
            let expected = if linear {
                left.dot(&right.t())
            } else {
                left.dot(&right)
            };
            let address = leave_nan_buffer(expected.len());
            // Vectors where the product has a single row or column.
            let as_operand = |m: &Array2<f32>| {
                if m.ncols() == 1 {
                    Var::constant(m.column(0).to_owned())
                } else if m.nrows() == 1 {
                    Var::constant(m.row(0).to_owned())
                } else {
                    Var::constant(m.clone())
                }
            };
            let (a, b) = (as_operand(&left), as_operand(&right));
            let check = |out: Var<f32>| {
                assert_eq!(out.array().as_ptr(), address, "the kept buffer is reused");
                let got: Vec<f32> = out.array().iter().copied().collect();
                let want: Vec<f32> = expected.iter().copied().collect();
                assert_eq!(got, want);
            };
            if linear {
                a.linear(&Var::constant(right.clone())).bind(check);
            } else {
                a.matmul(&b).bind(check);
            }
        }
    }
}
