//! Reductions: sums, means, extremes, log-sum-exp, variances and norms,
//! over all elements or along one axis.
//!
//! Every reduction comes in three forms, named alike:
//! - `op()` reduces all elements to a zero-dimensional tensor;
//! - `op_axis(axis)` reduces along `axis`, which the result no longer has;
//! - `op_axis_keepdim(axis)` reduces along `axis`, which the result keeps
//!   with length 1 (so it broadcasts against the input).
//!
//! An axis is a [`AxisIndex`]: a `usize`, or a signed integer where `-1`
//! is the last axis, `-2` the one before it, and so on.
//!
//! The backward step of a sum or a mean spreads the output's gradient back
//! over the reduced elements, which is a broadcast; `accumulate_view` does
//! it without building the broadcast tensor when the input already has a
//! gradient buffer. The other reductions go lane by lane (a lane being the
//! elements reduced into one output element), each with its rule beside
//! its forward value.

use std::borrow::Cow;
use std::fmt::Display;

use ndarray::{ArrayD, ArrayView1, ArrayViewD, ArrayViewMut1, Axis, Zip};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::memory;
use crate::var::Var;

/// An axis of a tensor, by position: a `usize` counts from the first axis;
/// a signed integer may also count from the end (`-1` is the last axis).
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
/// assert_eq!(x.sum_axis(-1).array(), x.sum_axis(1).array());
/// ```
pub trait AxisIndex: Copy + Display {
    /// The position of this axis among `count` axes, if it is one of them.
    fn position(self, count: usize) -> Option<usize>;
}

impl AxisIndex for usize {
    fn position(self, count: usize) -> Option<usize> {
        (self < count).then_some(self)
    }
}

macro_rules! signed_axis_index {
    ($($t:ty),*) => {$(
        impl AxisIndex for $t {
            fn position(self, count: usize) -> Option<usize> {
                let from_start = if self < 0 {
                    count.checked_sub(usize::try_from(self.unsigned_abs()).ok()?)?
                } else {
                    usize::try_from(self).ok()?
                };
                (from_start < count).then_some(from_start)
            }
        }
    )*};
}
signed_axis_index!(i32, i64, isize);

/// The position of `axis` in `shape`.
///
/// # Panics
/// When `axis` is not an axis of `shape`; the message names `op`, the
/// shape and the axes allowed.
#[track_caller]
pub(crate) fn resolve_axis<X: AxisIndex>(op: &str, shape: &[usize], axis: X) -> usize {
    resolve_axis_among(op, shape, axis, shape.len())
}

/// The position of `axis` among `count` axes (the rank of `shape`, or one
/// more for an operation that inserts an axis).
///
/// # Panics
/// As [`resolve_axis`].
#[track_caller]
pub(crate) fn resolve_axis_among<X: AxisIndex>(
    op: &str,
    shape: &[usize],
    axis: X,
    count: usize,
) -> usize {
    axis.position(count).unwrap_or_else(|| {
        let rank = shape.len();
        if count == 0 {
            panic!(
                "{op}: axis {axis} is out of range for shape {shape:?} (rank {rank}): \
                 a zero-dimensional tensor has no axis"
            )
        }
        panic!(
            "{op}: axis {axis} is out of range for shape {shape:?} (rank {rank}): expected \
             0..{count}, or -{count}..0 counting from the end",
        )
    })
}

/// Adds `grad` (any layout, broadcastable to `x`'s shape) into `x`'s
/// gradient: in place when a buffer exists, otherwise as one fresh
/// standard-layout copy that the buffer takes over (one pass instead of
/// zero-filling and then adding).
pub(crate) fn accumulate_view<A: Element>(x: &Var<A>, grad: ArrayViewD<'_, A>) {
    if !x.requires_grad() {
        return;
    }
    let grad = grad.broadcast(x.shape()).unwrap_or_else(|| {
        panic!(
            "gradient of `{}`: cannot broadcast shape {:?} to {:?}",
            x.op_name(),
            grad.shape(),
            x.shape()
        )
    });
    let has_buffer = x.grad_ref().is_some();
    if has_buffer {
        x.accumulate_with(|mut gx| gx += &grad);
    } else {
        x.accumulate(crate::memory::copy_of(grad));
    }
}

/// Panics unless `axis` is an axis of `shape`.
#[track_caller]
pub(crate) fn check_axis(op: &str, shape: &[usize], axis: usize) {
    resolve_axis(op, shape, axis);
}

/// `1 / n` in the element type: the scale of a mean.
fn reciprocal<A: Element>(n: usize) -> A {
    A::one() / count::<A>(n)
}

/// `n` in the element type.
fn count<A: Element>(n: usize) -> A {
    A::from_usize(n).expect("a length is representable as a float")
}

/// What a lane-by-lane reduction reduces: all elements (one lane, in
/// row-major order), or the lanes along an axis, which the result keeps
/// with length 1 or not.
#[derive(Clone, Copy)]
enum Over {
    All,
    Axis { axis: usize, keepdim: bool },
}

impl Over {
    /// Along `axis` of `x`, resolved (the message names `op`).
    #[track_caller]
    fn axis<A: Element, X: AxisIndex>(op: &str, x: &Var<A>, axis: X, keepdim: bool) -> Over {
        Over::Axis {
            axis: resolve_axis(op, x.shape(), axis),
            keepdim,
        }
    }
}

/// The elements of `x` in row-major order, as one lane (borrowed when `x`
/// is in standard layout).
fn all_elements<A: Element>(x: &Var<A>) -> Cow<'_, [A]> {
    match x.flat() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(x.array().iter().copied().collect()),
    }
}

/// A reduction computed lane by lane: `value(lane)` is the output element
/// of a lane, and `rule(lane, value, grad, out)` writes (not adds) the
/// gradient of each of the lane's elements into `out`, given the lane's
/// output value and that value's gradient.
fn reduce<A, V, R>(
    op: &'static str,
    x: &Var<A>,
    over: Over,
    value: V,
    rule: R,
) -> Pending<A, impl BackwardStep<A> + use<A, V, R>>
where
    A: Element,
    V: Fn(ArrayView1<'_, A>) -> A,
    R: Fn(ArrayView1<'_, A>, A, A, ArrayViewMut1<'_, A>) + 'static,
{
    let y = match over {
        Over::All => ndarray::arr0(value(ArrayView1::from(&*all_elements(x)))).into_dyn(),
        Over::Axis { axis, keepdim } => {
            let y = x.array().map_axis(Axis(axis), value);
            if keepdim {
                y.insert_axis(Axis(axis))
            } else {
                y
            }
        }
    };
    let x = x.clone();
    Pending::new(
        op,
        y,
        x.requires_grad(),
        move |y: &ArrayD<A>, grad: ArrayD<A>| {
            // Every element is written by `rule`.
            let mut contribution = memory::scratch(x.array().raw_dim());
            match over {
                Over::All => {
                    let out = contribution
                        .as_slice_mut()
                        .expect("a new buffer is in standard layout");
                    let lane = all_elements(&x);
                    rule(ArrayView1::from(&*lane), y[[]], grad[[]], out.into());
                }
                Over::Axis { axis, keepdim } => {
                    let (y, g) = if keepdim {
                        (y.index_axis(Axis(axis), 0), grad.index_axis(Axis(axis), 0))
                    } else {
                        (y.view(), grad.view())
                    };
                    Zip::from(contribution.lanes_mut(Axis(axis)))
                        .and(x.array().lanes(Axis(axis)))
                        .and(&y)
                        .and(&g)
                        .for_each(|out, lane, &y, &g| rule(lane, y, g, out));
                }
            }
            memory::recycle(grad);
            x.accumulate(contribution);
        },
    )
}

/// A lane's output value.
type LaneValue<A> = fn(ArrayView1<'_, A>) -> A;

/// A lane's gradient rule (see [`reduce`]).
type LaneRule<A> = fn(ArrayView1<'_, A>, A, A, ArrayViewMut1<'_, A>);

/// Panics when a maximum or minimum would reduce no elements.
#[track_caller]
fn check_not_empty<A: Element>(op: &str, what: &str, x: &Var<A>, over: Over) {
    match over {
        Over::All if x.is_empty() => panic!(
            "{op}: cannot take the {what} of an empty tensor (shape {:?})",
            x.shape()
        ),
        Over::Axis { axis, .. } if x.shape()[axis] == 0 => panic!(
            "{op}: cannot take the {what} along axis {axis} of length 0 (shape {:?})",
            x.shape()
        ),
        _ => {}
    }
}

/// The largest element of a lane, or NaN if it holds one.
fn lane_max<A: Element>(lane: ArrayView1<'_, A>) -> A {
    lane.fold(
        A::neg_infinity(),
        |m, &v| {
            if v > m || v.is_nan() { v } else { m }
        },
    )
}

/// The smallest element of a lane, or NaN if it holds one.
fn lane_min<A: Element>(lane: ArrayView1<'_, A>) -> A {
    lane.fold(
        A::infinity(),
        |m, &v| if v < m || v.is_nan() { v } else { m },
    )
}

/// The gradient of a lane's maximum or minimum `y`: `g` shared evenly
/// among the elements equal to `y` (none when `y` is NaN).
fn extreme_rule<A: Element>(lane: ArrayView1<'_, A>, y: A, g: A, mut out: ArrayViewMut1<'_, A>) {
    let ties = lane.iter().filter(|&&v| v == y).count();
    let share = g / count::<A>(ties.max(1));
    Zip::from(&mut out)
        .and(&lane)
        .for_each(|o, &v| *o = if v == y { share } else { A::zero() });
}

/// The position of the first element of a lane that `better` prefers to
/// all before it; a NaN is preferred to any number.
fn lane_arg<A: Element>(lane: ArrayView1<'_, A>, better: fn(A, A) -> bool) -> usize {
    let mut best = 0;
    for (i, &v) in lane.iter().enumerate().skip(1) {
        let current = lane[best];
        if !current.is_nan() && (v.is_nan() || better(v, current)) {
            best = i;
        }
    }
    best
}

/// `log(sum(exp(lane)))`, with the lane's maximum taken out first so that
/// no exponential overflows.
fn lane_logsumexp<A: Element>(lane: ArrayView1<'_, A>) -> A {
    let max = lane.fold(A::neg_infinity(), |m, &v| m.max(v));
    // An infinite maximum (or an empty lane) is not taken out: `inf - inf`
    // would be NaN, while the sum itself is already exact.
    let shift = if max.is_finite() { max } else { A::zero() };
    shift + lane.fold(A::zero(), |acc, &v| acc + (v - shift).exp()).ln()
}

/// The gradient of log-sum-exp: the lane's softmax `exp(x - y)` times `g`;
/// zero for a lane of `-inf` only (where the softmax is undefined).
fn logsumexp_rule<A: Element>(lane: ArrayView1<'_, A>, y: A, g: A, mut out: ArrayViewMut1<'_, A>) {
    if y == A::neg_infinity() {
        out.fill(A::zero());
        return;
    }
    Zip::from(&mut out)
        .and(&lane)
        .for_each(|o, &v| *o = g * (v - y).exp());
}

/// The mean of a lane (NaN when empty).
fn lane_mean<A: Element>(lane: ArrayView1<'_, A>) -> A {
    lane.sum() / count::<A>(lane.len())
}

/// What a variance divides the sum of squared deviations by:
/// `max(n - correction, 0)`.
fn variance_divisor<A: Element>(n: usize, correction: usize) -> A {
    count::<A>(n.saturating_sub(correction))
}

/// Which norm [`Var::norm`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormOrder {
    /// The sum of absolute values. Its gradient is the sign of each
    /// element, with 0 at 0 (a subgradient).
    L1,
    /// The Euclidean norm, the square root of the sum of squares. Its
    /// gradient is `x / ‖x‖`, defined as 0 where the norm is 0 (a
    /// subgradient, and what PyTorch's `linalg.vector_norm` gives).
    L2,
}

/// A lane's L1 norm.
fn lane_l1<A: Element>(lane: ArrayView1<'_, A>) -> A {
    lane.fold(A::zero(), |acc, &v| acc + v.abs())
}

/// A lane's L2 norm, the lane scaled by its largest magnitude first so
/// that no square overflows or underflows.
fn lane_l2<A: Element>(lane: ArrayView1<'_, A>) -> A {
    let scale = lane.fold(A::zero(), |m, &v| m.max(v.abs()));
    if scale == A::zero() || !scale.is_finite() {
        return scale;
    }
    scale
        * lane
            .fold(A::zero(), |acc, &v| {
                let r = v / scale;
                acc + r * r
            })
            .sqrt()
}

/// `g` times the sign of each element (0 for 0).
fn l1_rule<A: Element>(lane: ArrayView1<'_, A>, _: A, g: A, mut out: ArrayViewMut1<'_, A>) {
    Zip::from(&mut out).and(&lane).for_each(|o, &v| {
        *o = if v > A::zero() {
            g
        } else if v < A::zero() {
            -g
        } else {
            A::zero()
        }
    });
}

/// `g · x / ‖x‖`, and 0 where the norm is 0.
fn l2_rule<A: Element>(lane: ArrayView1<'_, A>, y: A, g: A, mut out: ArrayViewMut1<'_, A>) {
    if y == A::zero() {
        out.fill(A::zero());
        return;
    }
    let scale = g / y;
    Zip::from(&mut out)
        .and(&lane)
        .for_each(|o, &v| *o = scale * v);
}

impl<A: Element> Var<A> {
    /// The sum of all elements, as a zero-dimensional tensor.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
    /// let total = lazy(|k: &mut dyn FnMut(Var<f64>)| x.sum().bind(|s| k(s))).backward();
    /// assert_eq!(total, 10.0);
    /// assert_eq!(x.grad(), array![[1.0, 1.0], [1.0, 1.0]].into_dyn());
    /// ```
    pub fn sum(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        Pending::new(
            "sum",
            ndarray::arr0(self.array().sum()).into_dyn(),
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| accumulate_view(&x, grad.view()),
        )
    }

    /// The mean of all elements, as a zero-dimensional tensor (NaN for an
    /// empty tensor).
    pub fn mean(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        let scale = reciprocal::<A>(self.len());
        Pending::new(
            "mean",
            ndarray::arr0(self.array().sum() * scale).into_dyn(),
            self.requires_grad(),
            move |_: &ArrayD<A>, mut grad: ArrayD<A>| {
                grad *= scale;
                accumulate_view(&x, grad.view());
            },
        )
    }

    /// The sums along `axis`: the result has the input's shape with that
    /// axis removed (a matrix's column sums for `axis = 0`). A negative
    /// axis counts from the end.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.sum_axis(0).array(), &array![5.0, 7.0, 9.0].into_dyn());
    /// assert_eq!(x.sum_axis(1).array(), &array![6.0, 15.0].into_dyn());
    /// assert_eq!(x.sum_axis(-1).array(), &array![6.0, 15.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn sum_axis<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        self.sum_along(
            "sum_axis",
            resolve_axis("sum_axis", self.shape(), axis),
            false,
        )
    }

    /// The sums along `axis`, kept as an axis of length 1.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.sum_axis_keepdim(1).array(), &array![[6.0], [15.0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn sum_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let axis = resolve_axis("sum_axis_keepdim", self.shape(), axis);
        self.sum_along("sum_axis_keepdim", axis, true)
    }

    /// The sums along a resolved `axis`.
    fn sum_along(
        &self,
        op: &'static str,
        axis: usize,
        keepdim: bool,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        let sums = self.array().sum_axis(Axis(axis));
        let sums = if keepdim {
            sums.insert_axis(Axis(axis))
        } else {
            sums
        };
        Pending::new(
            op,
            sums,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                if keepdim {
                    accumulate_view(&x, grad.view());
                } else {
                    accumulate_view(&x, grad.view().insert_axis(Axis(axis)));
                }
            },
        )
    }

    /// The means along `axis`: the result has the input's shape with that
    /// axis removed (NaN where the axis is empty). A negative axis counts
    /// from the end.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn mean_axis<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        self.mean_along(
            "mean_axis",
            resolve_axis("mean_axis", self.shape(), axis),
            false,
        )
    }

    /// The means along `axis`, kept as an axis of length 1.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.mean_axis_keepdim(0).array(), &array![[2.5, 3.5, 4.5]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn mean_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let axis = resolve_axis("mean_axis_keepdim", self.shape(), axis);
        self.mean_along("mean_axis_keepdim", axis, true)
    }

    /// The means along a resolved `axis`.
    fn mean_along(
        &self,
        op: &'static str,
        axis: usize,
        keepdim: bool,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        let scale = reciprocal::<A>(self.shape()[axis]);
        let mut mean = self.array().sum_axis(Axis(axis));
        mean *= scale;
        let mean = if keepdim {
            mean.insert_axis(Axis(axis))
        } else {
            mean
        };
        Pending::new(
            op,
            mean,
            self.requires_grad(),
            move |_: &ArrayD<A>, mut grad: ArrayD<A>| {
                // Scaling the (smaller) output gradient before broadcasting
                // it touches each output element once, not each input one.
                grad *= scale;
                if keepdim {
                    accumulate_view(&x, grad.view());
                } else {
                    accumulate_view(&x, grad.view().insert_axis(Axis(axis)));
                }
            },
        )
    }

    /// The largest element, as a zero-dimensional tensor.
    ///
    /// The gradient goes to the element holding the maximum; when several
    /// hold it (a tie), it is split evenly among them, so each of `k` tied
    /// elements receives `1/k` of it (as PyTorch's `amax`). A NaN element
    /// makes the maximum NaN, and then no gradient flows.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![1.0f64, 3.0, 3.0, -2.0]);
    /// let top = lazy(|k: &mut dyn FnMut(Var<f64>)| x.max().bind(|m| k(m))).backward();
    /// assert_eq!(top, 3.0);
    /// assert_eq!(x.grad(), array![0.0, 0.5, 0.5, 0.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the tensor is empty.
    #[track_caller]
    pub fn max(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.extreme("max", "maximum", Over::All, lane_max)
    }

    /// The largest elements along `axis`, which the result no longer has;
    /// gradients as for [`max`](Var::max) (split evenly among ties).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 5.0], [4.0, 2.0]]);
    /// assert_eq!(x.max_axis(0).array(), &array![4.0, 5.0].into_dyn());
    /// assert_eq!(x.max_axis(-1).array(), &array![5.0, 4.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn max_axis<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("max_axis", self, axis, false);
        self.extreme("max_axis", "maximum", over, lane_max)
    }

    /// The largest elements along `axis`, kept as an axis of length 1.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn max_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("max_axis_keepdim", self, axis, true);
        self.extreme("max_axis_keepdim", "maximum", over, lane_max)
    }

    /// The smallest element, as a zero-dimensional tensor; gradients as
    /// for [`max`](Var::max) (split evenly among ties).
    ///
    /// # Panics
    /// When the tensor is empty.
    #[track_caller]
    pub fn min(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.extreme("min", "minimum", Over::All, lane_min)
    }

    /// The smallest elements along `axis`, which the result no longer has;
    /// gradients as for [`max`](Var::max) (split evenly among ties).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn min_axis<X: AxisIndex>(&self, axis: X) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("min_axis", self, axis, false);
        self.extreme("min_axis", "minimum", over, lane_min)
    }

    /// The smallest elements along `axis`, kept as an axis of length 1.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn min_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("min_axis_keepdim", self, axis, true);
        self.extreme("min_axis_keepdim", "minimum", over, lane_min)
    }

    /// A maximum or minimum (`lane` picks it), with its gradient split
    /// among ties.
    #[track_caller]
    fn extreme(
        &self,
        op: &'static str,
        what: &str,
        over: Over,
        lane: LaneValue<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        check_not_empty(op, what, self, over);
        reduce(op, self, over, lane, extreme_rule)
    }

    /// The position of the largest element in row-major order (the first
    /// one if several tie; a NaN counts as the largest). A plain index, not
    /// differentiable.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f32, 7.0], [7.0, 2.0]]);
    /// assert_eq!(x.argmax(), 1);
    /// assert_eq!(x.argmin(), 0);
    /// ```
    ///
    /// # Panics
    /// When the tensor is empty.
    #[track_caller]
    pub fn argmax(&self) -> usize {
        check_not_empty("argmax", "arg-maximum", self, Over::All);
        lane_arg(ArrayView1::from(&*all_elements(self)), |v, best| v > best)
    }

    /// The position of the smallest element in row-major order (the first
    /// one if several tie; a NaN counts as the smallest). A plain index,
    /// not differentiable.
    ///
    /// # Panics
    /// When the tensor is empty.
    #[track_caller]
    pub fn argmin(&self) -> usize {
        check_not_empty("argmin", "arg-minimum", self, Over::All);
        lane_arg(ArrayView1::from(&*all_elements(self)), |v, best| v < best)
    }

    /// The positions along `axis` of the largest elements (the first one
    /// where several tie), in an array of the input's shape without that
    /// axis. Plain indices, not differentiable.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f32, 7.0, 7.0], [9.0, 2.0, 3.0]]);
    /// assert_eq!(x.argmax_axis(1), array![1, 0].into_dyn());
    /// assert_eq!(x.argmin_axis(-1), array![0, 1].into_dyn());
    /// assert_eq!(x.argmax_axis_keepdim(0), array![[1, 0, 0]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn argmax_axis<X: AxisIndex>(&self, axis: X) -> ArrayD<usize> {
        let over = Over::axis("argmax_axis", self, axis, false);
        self.arg_along("argmax_axis", "arg-maximum", over, |v, best| v > best)
    }

    /// [`argmax_axis`](Var::argmax_axis), with `axis` kept with length 1.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn argmax_axis_keepdim<X: AxisIndex>(&self, axis: X) -> ArrayD<usize> {
        let over = Over::axis("argmax_axis_keepdim", self, axis, true);
        self.arg_along("argmax_axis_keepdim", "arg-maximum", over, |v, best| {
            v > best
        })
    }

    /// The positions along `axis` of the smallest elements (the first one
    /// where several tie), in an array of the input's shape without that
    /// axis. Plain indices, not differentiable.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn argmin_axis<X: AxisIndex>(&self, axis: X) -> ArrayD<usize> {
        let over = Over::axis("argmin_axis", self, axis, false);
        self.arg_along("argmin_axis", "arg-minimum", over, |v, best| v < best)
    }

    /// [`argmin_axis`](Var::argmin_axis), with `axis` kept with length 1.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor, or has length 0.
    #[track_caller]
    pub fn argmin_axis_keepdim<X: AxisIndex>(&self, axis: X) -> ArrayD<usize> {
        let over = Over::axis("argmin_axis_keepdim", self, axis, true);
        self.arg_along("argmin_axis_keepdim", "arg-minimum", over, |v, best| {
            v < best
        })
    }

    /// The positions of the preferred elements along an axis.
    #[track_caller]
    fn arg_along(
        &self,
        op: &str,
        what: &str,
        over: Over,
        better: fn(A, A) -> bool,
    ) -> ArrayD<usize> {
        check_not_empty(op, what, self, over);
        let Over::Axis { axis, keepdim } = over else {
            unreachable!("called along an axis")
        };
        let positions = self
            .array()
            .map_axis(Axis(axis), |lane| lane_arg(lane, better));
        if keepdim {
            positions.insert_axis(Axis(axis))
        } else {
            positions
        }
    }

    /// `log(sum(exp(x)))` over all elements, as a zero-dimensional tensor,
    /// computed without overflow (the maximum is taken out before
    /// exponentiating). Its gradient is the softmax of the elements. An
    /// empty tensor gives `-inf`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![1000.0f64, 1000.0]);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.logsumexp().bind(|y| k(y))).eval();
    /// assert_eq!(y.item(), 1000.0 + 2.0f64.ln());
    /// ```
    pub fn logsumexp(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        reduce("logsumexp", self, Over::All, lane_logsumexp, logsumexp_rule)
    }

    /// `log(sum(exp(x)))` along `axis`, which the result no longer has
    /// (see [`logsumexp`](Var::logsumexp)).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn logsumexp_axis<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("logsumexp_axis", self, axis, false);
        reduce("logsumexp_axis", self, over, lane_logsumexp, logsumexp_rule)
    }

    /// `log(sum(exp(x)))` along `axis`, kept as an axis of length 1: `x`
    /// minus it is the log-softmax along `axis`.
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn logsumexp_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("logsumexp_axis_keepdim", self, axis, true);
        reduce(
            "logsumexp_axis_keepdim",
            self,
            over,
            lane_logsumexp,
            logsumexp_rule,
        )
    }

    /// The variance of all elements, as a zero-dimensional tensor: the sum
    /// of squared deviations from the mean divided by `max(n - correction,
    /// 0)`, as PyTorch's `var(correction=…)`. `correction = 0` is the
    /// population variance, `correction = 1` the unbiased sample variance
    /// (PyTorch's default). With `n <= correction` the divisor is 0 and the
    /// result infinite or NaN, as in PyTorch.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![1.0f64, 2.0, 3.0, 4.0]);
    /// let var = |c| lazy(|k: &mut dyn FnMut(Var<f64>)| x.var(c).bind(|v| k(v))).eval().item();
    /// assert_eq!(var(0), 1.25);
    /// assert_eq!(var(1), 5.0 / 3.0);
    /// ```
    pub fn var(&self, correction: usize) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.variance("var", Over::All, correction)
    }

    /// The variances along `axis`, which the result no longer has (see
    /// [`var`](Var::var) for `correction`).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn var_axis<X: AxisIndex>(
        &self,
        axis: X,
        correction: usize,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("var_axis", self, axis, false);
        self.variance("var_axis", over, correction)
    }

    /// The variances along `axis`, kept as an axis of length 1 (see
    /// [`var`](Var::var) for `correction`).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn var_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
        correction: usize,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("var_axis_keepdim", self, axis, true);
        self.variance("var_axis_keepdim", over, correction)
    }

    /// A variance with the given correction.
    fn variance(
        &self,
        op: &'static str,
        over: Over,
        correction: usize,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        reduce(
            op,
            self,
            over,
            move |lane| {
                let mean = lane_mean(lane);
                let squares = lane.fold(A::zero(), |acc, &v| acc + (v - mean) * (v - mean));
                squares / variance_divisor::<A>(lane.len(), correction)
            },
            // d/dx_i = 2 (x_i - mean) / divisor: the mean's own dependence
            // on x_i drops out, since the deviations sum to zero.
            move |lane, _, g, mut out| {
                let mean = lane_mean(lane);
                let scale = (g + g) / variance_divisor::<A>(lane.len(), correction);
                Zip::from(&mut out)
                    .and(&lane)
                    .for_each(|o, &v| *o = scale * (v - mean));
            },
        )
    }

    /// The L1 or L2 norm of all elements, as a zero-dimensional tensor (see
    /// [`NormOrder`] for the gradients, defined at zero).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::reductions::NormOrder;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![3.0f64, -4.0]);
    /// let norm = |p| lazy(|k: &mut dyn FnMut(Var<f64>)| x.norm(p).bind(|n| k(n))).eval().item();
    /// assert_eq!(norm(NormOrder::L1), 7.0);
    /// assert_eq!(norm(NormOrder::L2), 5.0);
    /// ```
    pub fn norm(&self, order: NormOrder) -> Pending<A, impl BackwardStep<A> + use<A>> {
        self.norm_over("norm", Over::All, order)
    }

    /// The L1 or L2 norms along `axis`, which the result no longer has (a
    /// matrix's row norms for `axis = -1`).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn norm_axis<X: AxisIndex>(
        &self,
        axis: X,
        order: NormOrder,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("norm_axis", self, axis, false);
        self.norm_over("norm_axis", over, order)
    }

    /// The L1 or L2 norms along `axis`, kept as an axis of length 1 (so
    /// that `x` divided by it normalises each lane).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn norm_axis_keepdim<X: AxisIndex>(
        &self,
        axis: X,
        order: NormOrder,
    ) -> Pending<A, impl BackwardStep<A> + use<A, X>> {
        let over = Over::axis("norm_axis_keepdim", self, axis, true);
        self.norm_over("norm_axis_keepdim", over, order)
    }

    /// A norm of the given order.
    fn norm_over(
        &self,
        op: &'static str,
        over: Over,
        order: NormOrder,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let (value, rule): (LaneValue<A>, LaneRule<A>) = match order {
            NormOrder::L1 => (lane_l1, l1_rule),
            NormOrder::L2 => (lane_l2, l2_rule),
        };
        reduce(op, self, over, value, rule)
    }
}
