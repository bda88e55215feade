//! Tensors into parts and parts into tensors: stacking along a new axis,
//! and splitting along an existing one into several results at once.
//!
//! An operation returns one computation; [`Var::split`] and
//! [`Var::chunk`] return a [`Split`], a computation whose output is the
//! `Vec` of parts. Its backward step adds each part's gradient into its
//! slice of the input's.

use ndarray::{ArrayD, Axis};
use smallvec::SmallVec;

use super::{INLINE_PARTS, Region, add_slice_grad, sliced};
use crate::computation::{BackwardStep, Computation, Pending};
use crate::element::Element;
use crate::execution::stack as call_stack;
use crate::memory::{self, unboxed};
use crate::ops::reductions::{AxisIndex, accumulate_view, resolve_axis, resolve_axis_among};
use crate::ops::shape_mismatch;
use crate::var::Var;

/// Joins tensors of the same shape along a new `axis` (see
/// [`Var::stack`]).
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::ops::shape::stack;
/// use ndarray::array;
///
/// let a = Var::constant(array![1.0f32, 2.0]);
/// let b = Var::constant(array![3.0f32, 4.0]);
/// assert_eq!(stack(&[&a, &b], 0).array(), &array![[1.0, 2.0], [3.0, 4.0]].into_dyn());
/// // A `Vec` of states is stacked as it is.
/// assert_eq!(stack(&vec![a, b], -1).array(), &array![[1.0, 3.0], [2.0, 4.0]].into_dyn());
/// ```
///
/// # Panics
/// As [`Var::stack`].
#[track_caller]
pub fn stack<A: Element, P: AsRef<Var<A>>, X: AxisIndex>(
    parts: &[P],
    axis: X,
) -> Pending<A, impl BackwardStep<A> + use<A, P, X>> {
    let parts: SmallVec<[&Var<A>; INLINE_PARTS]> = parts.iter().map(AsRef::as_ref).collect();
    Var::stack(&parts, axis)
}

impl<A: Element> Var<A> {
    /// Joins `parts`, which must all have the same shape, along a new axis
    /// at position `axis` of the result (from `-(rank + 1)` to `rank`, as
    /// [`unsqueeze`](Var::unsqueeze)): index `i` along it is `parts[i]`.
    /// Each part receives its own slice of the gradient.
    ///
    /// Also available as the free function [`stack`](fn@stack).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let a = Var::constant(array![1.0f64, 2.0]);
    /// let b = Var::constant(array![3.0f64, 4.0]);
    /// assert_eq!(Var::stack(&[&a, &b], 1).array(), &array![[1.0, 3.0], [2.0, 4.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `parts` is empty, when their shapes differ (the message names
    /// the first part's shape and the offending one), or when `axis` is out
    /// of range.
    #[track_caller]
    pub fn stack<X: AxisIndex>(
        parts: &[&Var<A>],
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let Some(first) = parts.first() else {
            panic!("stack: needs at least one part, got none");
        };
        let shape = first.shape();
        let axis = resolve_axis_among("stack", shape, axis, shape.len() + 1);
        for (i, part) in parts.iter().enumerate().skip(1) {
            if part.shape() != shape {
                shape_mismatch(
                    "stack",
                    shape,
                    part.shape(),
                    &format!("part {i} differs from part 0; stacked parts have one shape"),
                );
            }
        }
        let mut out_shape = SmallVec::<[usize; 4]>::from_slice(shape);
        out_shape.insert(axis, parts.len());
        let mut value = memory::scratch(ndarray::IxDyn(&out_shape));
        for (i, part) in parts.iter().enumerate() {
            value.index_axis_mut(Axis(axis), i).assign(part.array());
        }
        let requires_grad = parts.iter().any(|p| p.requires_grad());
        let inputs: SmallVec<[(Var<A>, usize); 2]> = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.requires_grad())
            .map(|(i, p)| ((*p).clone(), i))
            .collect();
        Pending::new(
            "stack",
            value,
            requires_grad,
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                for (part, i) in &inputs {
                    accumulate_view(part, grad.index_axis(Axis(axis), *i));
                }
                memory::recycle(grad);
            },
        )
    }

    /// The `length` elements from `start` along `axis` (a negative axis
    /// counts from the end), as PyTorch's `narrow`: the same as
    /// [`slice`](Var::slice)`(axis, start, start + length)`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.narrow(-1, 1, 2).array(), &array![[2.0, 3.0], [5.0, 6.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or the range runs past it.
    #[track_caller]
    pub fn narrow<X: AxisIndex>(
        &self,
        axis: X,
        start: usize,
        length: usize,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let end = start.saturating_add(length);
        self.slice(axis, start, end)
    }

    /// Splits the tensor along `axis` (a negative axis counts from the
    /// end) into consecutive parts of the given `sizes`, which must add up
    /// to the axis's length. The result is a computation whose output is
    /// the `Vec` of parts (in a `#[differentiable]` function, `let parts =
    /// x.split(0, &[2, 3]);`); each part's gradient goes back to its slice
    /// of the input.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![1.0f64, 2.0, 3.0, 4.0, 5.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
    ///     x.split(0, &[2, 3]).bind(|parts| {
    ///         assert_eq!(parts[0].array(), &array![1.0, 2.0].into_dyn());
    ///         assert_eq!(parts[1].array(), &array![3.0, 4.0, 5.0].into_dyn());
    ///         // Only the second part reaches the loss.
    ///         parts[1].sum().bind(|s| k(s));
    ///     });
    /// });
    /// assert_eq!(loss.backward(), 12.0);
    /// assert_eq!(x.grad(), array![0.0, 0.0, 1.0, 1.0, 1.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or the sizes do not add up
    /// to its length.
    #[track_caller]
    pub fn split<X: AxisIndex>(&self, axis: X, sizes: &[usize]) -> Split<A> {
        let axis = resolve_axis("split", self.shape(), axis);
        let length = self.shape()[axis];
        let total = sizes.iter().try_fold(0usize, |t, &s| t.checked_add(s));
        assert!(
            total == Some(length),
            "split: sizes {sizes:?} do not add up to the length {length} of axis {axis} (shape \
             {:?})",
            self.shape()
        );
        Split::new(self, "split", axis, sizes.iter().copied())
    }

    /// Splits the tensor along `axis` into `chunks` parts of equal length,
    /// as PyTorch's `chunk`: each has `ceil(length / chunks)` elements
    /// along the axis except the last, which may have fewer, so there may be
    /// fewer than `chunks` parts (an axis of length 0 gives one empty
    /// part). The output is the `Vec` of parts, as for
    /// [`split`](Var::split).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![1.0f32, 2.0, 3.0, 4.0, 5.0]);
    /// x.chunk(0, 3).bind(|parts| {
    ///     let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    ///     assert_eq!(lengths, [2, 2, 1]);
    /// });
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or `chunks` is 0.
    #[track_caller]
    pub fn chunk<X: AxisIndex>(&self, axis: X, chunks: usize) -> Split<A> {
        let axis = resolve_axis("chunk", self.shape(), axis);
        assert!(
            chunks > 0,
            "chunk: expected at least one chunk, got 0 (shape {:?})",
            self.shape()
        );
        let length = self.shape()[axis];
        let size = length.div_ceil(chunks);
        let sizes = (0..length.div_ceil(size.max(1)).max(1))
            .map(move |i| size.min(length - (i * size).min(length)));
        Split::new(self, "chunk", axis, sizes)
    }
}

/// The parts of a tensor split along an axis ([`Var::split`],
/// [`Var::chunk`]): a computation whose output is the `Vec` of parts.
#[must_use = "a split does nothing until it is bound to a continuation"]
pub struct Split<A: Element> {
    input: Var<A>,
    axis: usize,
    /// Each part, with its range along the axis and where it lies in the
    /// input.
    parts: Vec<(Var<A>, usize, usize, Region)>,
}

impl<A: Element> Split<A> {
    /// The parts of `input` of the given lengths along `axis` (checked to
    /// fill it).
    fn new(
        input: &Var<A>,
        op: &'static str,
        axis: usize,
        sizes: impl Iterator<Item = usize>,
    ) -> Self {
        let mut start = 0;
        let parts = sizes
            .map(|size| {
                let end = start + size;
                let (part, region) = sliced(input, op, axis, start, end);
                let part = (part, start, end, region);
                start = end;
                part
            })
            .collect();
        Split {
            input: input.clone(),
            axis,
            parts,
        }
    }
}

impl<A: Element> Computation for Split<A> {
    type Output = Vec<Var<A>>;

    fn bind<K: FnOnce(Vec<Var<A>>)>(self, k: K) {
        call_stack::grow(move || self.bind_in_place(k))
    }

    fn bind_in_place<K: FnOnce(Vec<Var<A>>)>(self, k: K) {
        let Split { input, axis, parts } = self;
        k(parts.iter().map(|(part, ..)| part.clone()).collect());
        for (part, start, end, region) in parts {
            if part.requires_grad()
                && let Some(grad) = part.finish()
            {
                add_slice_grad(&input, &region, axis, start, end, unboxed(grad));
            }
            part.recycle();
        }
    }
}
