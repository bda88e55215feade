//! What the gradient tests of the operations share.

use cps_runtime::*;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

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

/// Runs `op` on the model, reduces its output with `weights` (see
/// [`weighted_sum`]) and back-propagates; returns the loss. `op` receives
/// the model and the continuation taking the operation's output.
pub fn weighted_loss<M>(
    model: &M,
    weights: &ArrayD<f64>,
    op: impl Fn(&M, &mut dyn FnMut(Var<f64>)),
) -> f64 {
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        op(model, &mut |y: Var<f64>| {
            weighted_sum(&y, weights).bind(&mut *k)
        });
    })
    .backward()
}

/// Runs `op` forward only and returns its value.
pub fn forward_value<P: Computation<Output = Var<f64>>>(op: P) -> ArrayD<f64> {
    lazy(|k: &mut dyn FnMut(Var<f64>)| op.bind(k))
        .eval()
        .array()
        .clone()
}

/// Deterministic values in [-1, 1) for a shape.
pub fn seeded_values(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    })
}

/// Arrays of `shape` with entries in [-2, 2), for proptest.
pub fn random_values(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    prop::collection::vec(-2.0f64..2.0, len)
        .prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("length matches"))
}
