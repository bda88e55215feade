//! What the gradient tests of the operations share.

use cps_runtime::*;
use ndarray::ArrayD;

/// `sum(x * weights)`: reduces a tensor to a scalar while giving every
/// element of `x` its own incoming gradient (a plain sum would give all
/// the same one, which a wrong rule can match).
pub fn weighted_sum(
    x: &Var<f64>,
    weights: &ArrayD<f64>,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    assert_eq!(x.shape(), weights.shape(), "weighted_sum: shapes differ");
    let input = x.clone();
    let weights = weights.clone();
    let value = ndarray::arr0((x.array() * &weights).sum()).into_dyn();
    Pending::new(
        "weighted_sum",
        value,
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| input.accumulate(&weights * grad[[]]),
    )
}
