//! Reductions: sums and means over all elements or along an axis.

use ndarray::{ArrayD, IxDyn};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::var::Var;

impl<A: Element> Var<A> {
    /// The sum of all elements, as a zero-dimensional tensor.
    pub fn sum(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let x = self.clone();
        Pending::new(
            "sum",
            ndarray::arr0(self.value().sum()).into_dyn(),
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let g = grad.first().copied().unwrap_or_else(A::zero);
                x.accumulate_with(|mut gx| gx += g);
                let _ = IxDyn(&[]);
            },
        )
    }
}
