//! Elementwise operations: arithmetic operators and unary functions.

use ndarray::{ArrayD, Zip};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::var::Var;

impl<A: Element> Var<A> {
    /// Hyperbolic tangent, elementwise.
    pub fn tanh(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        Pending::new(
            "tanh",
            self.value().mapv(A::tanh),
            self.requires_grad(),
            move |y: &ArrayD<A>, grad: ArrayD<A>| {
                // d tanh(x) = 1 - tanh(x)^2
                x.accumulate(
                    Zip::from(&grad)
                        .and(y)
                        .map_collect(|&g, &y| g * (A::one() - y * y)),
                );
            },
        )
    }
}
