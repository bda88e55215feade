//! Picking elements by index: whole slices along an axis
//! ([`Var::index_select`]), single elements along an axis
//! ([`Var::gather`]), and one-hot encodings of indices.
//!
//! Indices may repeat, so the backward steps scatter-add: each result
//! element's gradient is added into the element it was read from, and a
//! source read several times receives the sum.

use ndarray::{ArrayBase, ArrayD, ArrayView, AsArray, Axis, Data, Dimension, IxDyn};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::ops::reductions::{AxisIndex, resolve_axis};
use crate::ops::shape_mismatch;
use crate::var::Var;

impl<A: Element> Var<A> {
    /// The slices at `indices` along `axis` (a negative axis counts from
    /// the end): index `i` along that axis of the result is index
    /// `indices[i]` of `self`, as PyTorch's `index_select`. Indices may
    /// repeat, and their gradients then add up. [`rows`](Var::rows) is the
    /// same along the first axis of a matrix.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.index_select(1, &[2, 0, 2]).array(), &array![[3.0, 1.0, 3.0], [6.0, 4.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or an index is not below
    /// its length.
    #[track_caller]
    pub fn index_select<X: AxisIndex>(
        &self,
        axis: X,
        indices: &[usize],
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let axis = resolve_axis("index_select", self.shape(), axis);
        let length = self.shape()[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= length) {
            panic!(
                "index_select: index {bad} is out of range for axis {axis} of length {length} \
                 (shape {:?})",
                self.shape()
            );
        }
        let value = self.array().select(Axis(axis), indices);
        let x = self.clone();
        let indices = if self.requires_grad() {
            indices.to_vec()
        } else {
            Vec::new()
        };
        Pending::new(
            "index_select",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                x.accumulate_with(|mut gx| {
                    for (g, &i) in grad.axis_iter(Axis(axis)).zip(&indices) {
                        let mut target = gx.index_axis_mut(Axis(axis), i);
                        target += &g;
                    }
                });
                memory::recycle(grad);
            },
        )
    }

    /// Elements picked along `axis` by an array of indices of the input's
    /// rank, as PyTorch's `gather`: the result has the indices' shape, and
    /// its element at position `p` is the input's element at `p` with
    /// coordinate `axis` replaced by `indices[p]`. Along the other axes the
    /// indices' lengths may not exceed the input's. Indices may repeat, and
    /// their gradients then add up.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// // Per row, the elements at the given columns.
    /// let picked = x.gather(1, &array![[2, 2], [0, 1]]);
    /// assert_eq!(picked.array(), &array![[3.0, 3.0], [4.0, 5.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, when the indices have
    /// another rank or are longer than the input along another axis (the
    /// message names both shapes), or when an index is not below the
    /// length of `axis`.
    #[track_caller]
    pub fn gather<X, S, D>(
        &self,
        axis: X,
        indices: &ArrayBase<S, D>,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X, S, D>>
    where
        X: AxisIndex,
        S: Data<Elem = usize>,
        D: Dimension,
    {
        let shape = self.shape();
        let axis = resolve_axis("gather", shape, axis);
        let indices = indices.view().into_dyn();
        let fits = indices.ndim() == shape.len()
            && indices
                .shape()
                .iter()
                .zip(shape)
                .enumerate()
                .all(|(d, (&n, &m))| d == axis || n <= m);
        if !fits {
            shape_mismatch(
                "gather",
                shape,
                indices.shape(),
                &format!(
                    "the indices must have the input's rank, and no greater length outside \
                     axis {axis}"
                ),
            );
        }
        let length = shape[axis];
        if let Some(&bad) = indices.iter().find(|&&i| i >= length) {
            panic!(
                "gather: index {bad} is out of range for axis {axis} of length {length} (shape \
                 {shape:?})"
            );
        }
        // Each picked element's position in the input.
        let source = move |(mut at, &i): (IxDyn, &usize)| {
            at[axis] = i;
            at
        };
        let input = self.array();
        let mut value = memory::take(indices.len());
        value.extend(indices.indexed_iter().map(|p| input[source(p)]));
        let value = ArrayD::from_shape_vec(indices.raw_dim(), value).expect("one per index");
        let x = self.clone();
        let indices = if self.requires_grad() {
            indices.to_owned()
        } else {
            ArrayD::default(IxDyn(&[0]))
        };
        Pending::new(
            "gather",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                x.accumulate_with(|mut gx| {
                    for (p, &g) in indices.indexed_iter().zip(&grad) {
                        gx[source(p)] += g;
                    }
                });
                memory::recycle(grad);
            },
        )
    }

    /// The one-hot encoding of `indices`, a constant: for indices of shape
    /// `s`, a tensor of shape `s + [classes]` holding 1 at each index's
    /// position along the last axis and 0 elsewhere.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let targets = Var::<f32>::one_hot(&[2, 0], 3);
    /// assert_eq!(targets.array(), &array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]].into_dyn());
    /// assert!(!targets.requires_grad());
    /// ```
    ///
    /// # Panics
    /// When an index is not below `classes`.
    #[track_caller]
    pub fn one_hot<'a, D: Dimension, I: AsArray<'a, usize, D>>(
        indices: I,
        classes: usize,
    ) -> Var<A> {
        let indices: ArrayView<'a, usize, D> = indices.into();
        let mut shape = indices.shape().to_vec();
        shape.push(classes);
        let mut value = memory::zeros(IxDyn(&shape));
        for (mut row, &i) in value.rows_mut().into_iter().zip(&indices) {
            assert!(
                i < classes,
                "one_hot: index {i} is out of range for {classes} classes (indices of shape \
                 {:?})",
                indices.shape()
            );
            row[i] = A::one();
        }
        Var::constant(value)
    }
}
