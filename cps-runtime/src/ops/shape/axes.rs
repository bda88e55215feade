//! Operations on axes: permuting them, inserting and removing axes of
//! length 1, merging neighbours, and broadcasting.
//!
//! A permutation or a broadcast copies the elements into a new
//! standard-layout tensor; its backward step permutes the gradient back,
//! or sums it over the axes the input was repeated along. Inserting,
//! removing and merging axes changes no element's row-major position, so
//! those are reshapes.

use ndarray::{ArrayD, IxDyn};
use smallvec::SmallVec;

use super::reshaped;
use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::ops::broadcast::sum_to_shape;
use crate::ops::reductions::{AxisIndex, accumulate_view, resolve_axis, resolve_axis_among};
use crate::ops::shape_mismatch;
use crate::var::Var;

/// A list of axes, inline up to the usual ranks.
type Axes = SmallVec<[usize; 4]>;

impl<A: Element> Var<A> {
    /// The tensor with its axes reordered: axis `i` of the result is axis
    /// `axes[i]` of `self` (negative entries count from the end), as
    /// NumPy's `transpose(axes)` and PyTorch's `permute`. The gradient is
    /// permuted back.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{ArrayD, IxDyn};
    ///
    /// let x = Var::constant(ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |i| (i[0] * 100 + i[1] * 10 + i[2]) as f32));
    /// let y = x.permute(&[2, 0, 1]);
    /// assert_eq!(y.array().shape(), &[4, 2, 3]);
    /// assert_eq!(y.array()[[3, 1, 2]], 123.0);
    /// ```
    ///
    /// # Panics
    /// When `axes` does not name every axis of the tensor exactly once.
    #[track_caller]
    pub fn permute<X: AxisIndex>(
        &self,
        axes: &[X],
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let rank = self.shape().len();
        assert!(
            axes.len() == rank,
            "permute: expected {rank} axes for shape {:?}, got {} ({})",
            self.shape(),
            axes.len(),
            axes.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let order: Axes = axes
            .iter()
            .map(|&a| resolve_axis("permute", self.shape(), a))
            .collect();
        let mut seen: Axes = SmallVec::from_elem(0, rank);
        for &a in &order {
            seen[a] += 1;
            assert!(
                seen[a] == 1,
                "permute: axis {a} is named twice in {order:?} (shape {:?}); expected each \
                 axis once",
                self.shape()
            );
        }
        self.permuted("permute", order)
    }

    /// The tensor with axes `a` and `b` swapped (negative axes count from
    /// the end); a matrix's transpose for `transpose(0, 1)`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.transpose(0, -1).array(), &array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `a` or `b` is not an axis of the tensor.
    #[track_caller]
    pub fn transpose<X: AxisIndex, Y: AxisIndex>(
        &self,
        a: X,
        b: Y,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X, Y>> {
        let a = resolve_axis("transpose", self.shape(), a);
        let b = resolve_axis("transpose", self.shape(), b);
        let mut order: Axes = (0..self.shape().len()).collect();
        order.swap(a, b);
        self.permuted("transpose", order)
    }

    /// The tensor with its axes in `order` (a permutation, checked).
    fn permuted(&self, op: &'static str, order: Axes) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let value = memory::copy_of(self.array().view().permuted_axes(IxDyn(&order)));
        let x = self.clone();
        Pending::new(
            op,
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                // Axis `order[i]` of the input is axis `i` of the result.
                let mut inverse: Axes = SmallVec::from_elem(0, order.len());
                for (i, &a) in order.iter().enumerate() {
                    inverse[a] = i;
                }
                accumulate_view(&x, grad.view().permuted_axes(IxDyn(&inverse)));
                memory::recycle(grad);
            },
        )
    }

    /// The tensor with a new axis of length 1 at position `axis` of the
    /// result: from `-(rank + 1)` (before the first axis, counting from the
    /// end) to `rank` (after the last).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let v = Var::constant(array![1.0f32, 2.0, 3.0]);
    /// assert_eq!(v.unsqueeze(0).array().shape(), &[1, 3]);
    /// assert_eq!(v.unsqueeze(-1).array().shape(), &[3, 1]);
    /// ```
    ///
    /// # Panics
    /// When `axis` is out of that range.
    #[track_caller]
    pub fn unsqueeze<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let rank = self.shape().len();
        let axis = resolve_axis_among("unsqueeze", self.shape(), axis, rank + 1);
        let mut shape: Axes = SmallVec::from_slice(self.shape());
        shape.insert(axis, 1);
        reshaped(self, "unsqueeze", &shape)
    }

    /// The tensor without `axis`, which must have length 1 (a negative
    /// axis counts from the end). See [`squeeze_all`](Var::squeeze_all)
    /// to remove every axis of length 1.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f32], [2.0]]);
    /// assert_eq!(x.squeeze(-1).array(), &array![1.0, 2.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or its length is not 1.
    #[track_caller]
    pub fn squeeze<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let axis = resolve_axis("squeeze", self.shape(), axis);
        let length = self.shape()[axis];
        assert!(
            length == 1,
            "squeeze: axis {axis} has length {length}, expected 1 (shape {:?})",
            self.shape()
        );
        let mut shape: Axes = SmallVec::from_slice(self.shape());
        shape.remove(axis);
        reshaped(self, "squeeze", &shape)
    }

    /// The tensor without any of its axes of length 1 (a tensor of one
    /// element becomes zero-dimensional).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{ArrayD, IxDyn};
    ///
    /// let x = Var::constant(ArrayD::<f32>::zeros(IxDyn(&[1, 3, 1, 2])));
    /// assert_eq!(x.squeeze_all().array().shape(), &[3, 2]);
    /// ```
    pub fn squeeze_all(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let shape: Axes = self.shape().iter().copied().filter(|&n| n != 1).collect();
        reshaped(self, "squeeze_all", &shape)
    }

    /// The tensor with axes `start` to `end` (both included; negative ones
    /// count from the end) merged into one, as PyTorch's `flatten(start,
    /// end)`: `flatten(0, -1)` gives a vector of all the elements in
    /// row-major order.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::{ArrayD, IxDyn};
    ///
    /// let x = Var::constant(ArrayD::<f32>::zeros(IxDyn(&[2, 3, 4, 5])));
    /// assert_eq!(x.flatten(1, 2).array().shape(), &[2, 12, 5]);
    /// assert_eq!(x.flatten(0, -1).array().shape(), &[120]);
    /// ```
    ///
    /// # Panics
    /// When `start` or `end` is not an axis of the tensor, or `start` comes
    /// after `end`.
    #[track_caller]
    pub fn flatten<X: AxisIndex, Y: AxisIndex>(
        &self,
        start: X,
        end: Y,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X, Y>> {
        let shape = self.shape();
        let (first, last) = (
            resolve_axis("flatten", shape, start),
            resolve_axis("flatten", shape, end),
        );
        assert!(
            first <= last,
            "flatten: start axis {start} (axis {first}) comes after end axis {end} (axis \
             {last}) in shape {shape:?}"
        );
        let mut merged: Axes = SmallVec::from_slice(&shape[..first]);
        merged.push(shape[first..=last].iter().product());
        merged.extend_from_slice(&shape[last + 1..]);
        reshaped(self, "flatten", &merged)
    }

    /// The tensor repeated to `shape` by NumPy's broadcasting rules: the
    /// shapes are aligned at their last axis, every axis of `self` must
    /// have the length of its counterpart in `shape` or length 1, and
    /// `shape` may have more (leading) axes. The gradient is summed back
    /// over the axes the tensor was repeated along.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let row = Var::constant(array![[1.0f64, 2.0]]);
    /// let grid = row.broadcast_to(&[3, 2]);
    /// assert_eq!(grid.array(), &array![[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the tensor does not broadcast to `shape`; the message names both
    /// shapes.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let from = self.shape();
        if from.len() > shape.len() {
            shape_mismatch(
                "broadcast_to",
                from,
                shape,
                "the target has fewer axes than the tensor",
            );
        }
        let leading = shape.len() - from.len();
        for (axis, (&n, &m)) in from.iter().zip(&shape[leading..]).enumerate() {
            if n != m && n != 1 {
                shape_mismatch(
                    "broadcast_to",
                    from,
                    shape,
                    &format!(
                        "axis {axis} has length {n}, which broadcasts only to {n} (or from 1), \
                         not to {m}"
                    ),
                );
            }
        }
        let value = memory::copy_of(
            self.array()
                .broadcast(IxDyn(shape))
                .expect("the shapes were checked"),
        );
        let x = self.clone();
        Pending::new(
            "broadcast_to",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                x.accumulate(sum_to_shape(grad.view(), x.shape()));
            },
        )
    }
}
