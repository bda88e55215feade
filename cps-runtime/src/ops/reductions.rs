//! Reductions: sums and means over all elements or along an axis.
//!
//! The backward step of every reduction spreads the output's gradient back
//! over the reduced elements, which is a broadcast; `accumulate_view`
//! does it without building the broadcast tensor when the input already
//! has a gradient buffer.

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::var::Var;

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
    assert!(
        axis < shape.len(),
        "{op}: axis {axis} is out of range for shape {shape:?} (rank {})",
        shape.len()
    );
}

/// `1 / n` in the element type: the scale of a mean.
fn reciprocal<A: Element>(n: usize) -> A {
    A::one() / A::from_usize(n).expect("a length is representable as a float")
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
    /// axis removed (a matrix's column sums for `axis = 0`).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    /// assert_eq!(x.sum_axis(0).array(), &array![5.0, 7.0, 9.0].into_dyn());
    /// assert_eq!(x.sum_axis(1).array(), &array![6.0, 15.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn sum_axis(&self, axis: usize) -> Pending<A, impl BackwardStep<A> + use<A>> {
        check_axis("sum_axis", self.shape(), axis);
        let x = self.clone();
        Pending::new(
            "sum_axis",
            self.array().sum_axis(Axis(axis)),
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                accumulate_view(&x, grad.view().insert_axis(Axis(axis)));
            },
        )
    }

    /// The means along `axis`: the result has the input's shape with that
    /// axis removed (NaN where the axis is empty).
    ///
    /// # Panics
    /// When `axis` is not an axis of the tensor.
    #[track_caller]
    pub fn mean_axis(&self, axis: usize) -> Pending<A, impl BackwardStep<A> + use<A>> {
        check_axis("mean_axis", self.shape(), axis);
        let x = self.clone();
        let scale = reciprocal::<A>(self.shape()[axis]);
        let mut mean = self.array().sum_axis(Axis(axis));
        mean *= scale;
        Pending::new(
            "mean_axis",
            mean,
            self.requires_grad(),
            move |_: &ArrayD<A>, mut grad: ArrayD<A>| {
                // Scaling the (smaller) output gradient before broadcasting
                // it touches each output element once, not each input one.
                grad *= scale;
                accumulate_view(&x, grad.view().insert_axis(Axis(axis)));
            },
        )
    }
}
