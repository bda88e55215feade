//! Comparisons as masks (`gt`, `ge`, `lt`, `le`, `eq`, `ne`) and the
//! elementwise `maximum` and `minimum`, broadcast by NumPy's rules like the
//! arithmetic operators.

use ndarray::{ArrayD, Zip};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::ops::broadcast::{broadcast_shape, map_broadcast, read_as, sum_to_shape};
use crate::ops::operand::{IntoOperand, Operand};
use crate::var::Var;

/// The other side of a comparison or extremum, as a tensor.
fn tensor_of<A: Element>(other: impl IntoOperand<A>) -> Var<A> {
    match other.into_operand() {
        Operand::Tensor(var) => var,
        Operand::Scalar(value) => Var::scalar(value),
    }
}

impl<A: Element> Var<A> {
    /// A mask of `test(self, other)` elementwise: 1 where it holds, 0
    /// elsewhere, in the shape both broadcast to. A constant: no gradient
    /// flows through a comparison.
    #[track_caller]
    fn mask(&self, op: &str, other: impl IntoOperand<A>, test: impl Fn(A, A) -> bool) -> Var<A> {
        let other = tensor_of(other);
        let shape = broadcast_shape(op, self.shape(), other.shape());
        Var::constant(map_broadcast(
            self.array(),
            other.array(),
            &shape,
            |l, r| {
                if test(l, r) { A::one() } else { A::zero() }
            },
        ))
    }

    /// `self > other` as a mask of ones and zeros (PyTorch's `gt`), for
    /// selecting elements or weighting a loss.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![-1.0f32, 0.0, 2.0]);
    /// assert_eq!(x.gt(0.0).array(), &array![0.0, 0.0, 1.0].into_dyn());
    /// ```
    #[track_caller]
    pub fn gt(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("gt", other, |l, r| l > r)
    }

    /// `self >= other` as a mask of ones and zeros (PyTorch's `ge`).
    #[track_caller]
    pub fn ge(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("ge", other, |l, r| l >= r)
    }

    /// `self < other` as a mask of ones and zeros (PyTorch's `lt`).
    #[track_caller]
    pub fn lt(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("lt", other, |l, r| l < r)
    }

    /// `self <= other` as a mask of ones and zeros (PyTorch's `le`).
    #[track_caller]
    pub fn le(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("le", other, |l, r| l <= r)
    }

    /// `self == other` elementwise as a mask of ones and zeros (PyTorch's
    /// `eq`).
    #[track_caller]
    pub fn eq(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("eq", other, |l, r| l == r)
    }

    /// `self != other` elementwise as a mask of ones and zeros (PyTorch's
    /// `ne`).
    #[track_caller]
    pub fn ne(&self, other: impl IntoOperand<A>) -> Var<A> {
        self.mask("ne", other, |l, r| l != r)
    }

    /// The larger of `self` and `other` elementwise (PyTorch's `maximum`),
    /// broadcast by NumPy's rules. The gradient goes to the larger side;
    /// where the two are equal it is split evenly between them, as
    /// PyTorch does.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![1.0f64, 5.0, 3.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
    ///     x.maximum(3.0).bind(|y| y.sum().bind(k))
    /// });
    /// assert_eq!(loss.backward(), 3.0 + 5.0 + 3.0);
    /// assert_eq!(x.grad(), array![0.0, 1.0, 0.5].into_dyn());
    /// ```
    #[track_caller]
    pub fn maximum<O: IntoOperand<A>>(
        &self,
        other: O,
    ) -> Pending<A, impl BackwardStep<A> + use<A, O>> {
        self.extremum("maximum", tensor_of(other), |l, r| l > r)
    }

    /// The smaller of `self` and `other` elementwise (PyTorch's
    /// `minimum`); gradients as for [`maximum`](Var::maximum).
    #[track_caller]
    pub fn minimum<O: IntoOperand<A>>(
        &self,
        other: O,
    ) -> Pending<A, impl BackwardStep<A> + use<A, O>> {
        self.extremum("minimum", tensor_of(other), |l, r| l < r)
    }

    /// The side `wins(l, r)` picks, elementwise, with its gradient: to the
    /// winner, halved on ties.
    #[track_caller]
    fn extremum(
        &self,
        op: &'static str,
        other: Var<A>,
        wins: fn(A, A) -> bool,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let shape = broadcast_shape(op, self.shape(), other.shape());
        let value = map_broadcast(self.array(), other.array(), &shape, |l, r| {
            if wins(r, l) { r } else { l }
        });
        let (left, right) = (self.clone(), other);
        Pending::new(
            op,
            value,
            left.requires_grad() || right.requires_grad(),
            move |output: &ArrayD<A>, grad: ArrayD<A>| {
                let half = A::one() / (A::one() + A::one());
                // The share of the gradient the left side gets.
                let share = move |l: A, r: A| {
                    if wins(l, r) {
                        A::one()
                    } else if wins(r, l) {
                        A::zero()
                    } else {
                        half
                    }
                };
                let (l, r) = (
                    read_as(left.array(), output.shape()),
                    read_as(right.array(), output.shape()),
                );
                if left.requires_grad() {
                    let terms = Zip::from(&grad)
                        .and(&l)
                        .and(&r)
                        .map_collect(|&g, &l, &r| g * share(l, r));
                    left.accumulate(sum_to_shape(terms.view(), left.shape()));
                }
                if right.requires_grad() {
                    let terms = Zip::from(&grad)
                        .and(&l)
                        .and(&r)
                        .map_collect(|&g, &l, &r| g * share(r, l));
                    right.accumulate(sum_to_shape(terms.view(), right.shape()));
                }
            },
        )
    }
}
