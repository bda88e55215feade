//! Custom operations whose backward step runs a `#[differentiable]`
//! function (through `vjp`), and checkpointed segments, used from
//! `#[differentiable]` code like any operation: gradients against finite
//! differences and against the same model written plainly.

use crate::common::{assert_gradients, constant, param};
use cps::prelude::*;
use cps::{checkpoint, vjp};
use ndarray::{ArrayD, Zip};

#[derive(Parameters)]
struct Model {
    w1: Param<f64>,
    b1: Param<f64>,
    w2: Param<f64>,
}

fn model(seed: u64) -> Model {
    Model {
        w1: param(&[3, 4], seed),
        b1: param(&[4], seed + 1),
        w2: param(&[4, 2], seed + 2),
    }
}

/// `tanh(x W1 + b1)`: the layer the custom operation differentiates in its
/// backward step.
#[differentiable]
fn layer(m: &Model, x: &Var<f64>) -> Var<f64> {
    (x.matmul(&m.w1) + &m.b1).tanh()
}

/// [`layer`] as a custom operation: the forward runs it without gradients,
/// the backward takes its vector-Jacobian product, which sends `w1` and
/// `b1` their gradients from inside the backward step.
fn custom_layer<'m>(m: &'m Model, x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<'m>> {
    let input = x.clone();
    let value = layer(m, x).eval().array().clone();
    Pending::new(
        "custom_layer",
        value,
        true,
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            // `layer` borrows its input, so the computation owns it.
            let [dx] = vjp(
                |[x]| lazy(move |k: &mut dyn FnMut(Var<f64>)| layer(m, &x).bind(k)),
                [input.array().clone()],
                grad,
            )
            .grads;
            input.accumulate(dx);
        },
    )
}

/// The loss with the custom layer in the middle of `#[differentiable]` code.
#[differentiable]
fn custom_loss(m: &Model, x: &Var<f64>) -> Var<f64> {
    let h = custom_layer(m, &x.sin());
    let y = h.matmul(&m.w2);
    y.square().sum()
}

/// The same loss with the layer called plainly.
#[differentiable]
fn plain_loss(m: &Model, x: &Var<f64>) -> Var<f64> {
    let h = layer(m, &x.sin());
    let y = h.matmul(&m.w2);
    y.square().sum()
}

/// The same loss with the layer checkpointed.
#[differentiable]
fn checkpointed_loss(m: &Model, x: &Var<f64>) -> Var<f64> {
    let s = x.sin();
    let h = checkpoint(|| layer(m, &s));
    let y = h.matmul(&m.w2);
    y.square().sum()
}

fn grads(m: &Model) -> Vec<ArrayD<f64>> {
    vec![m.w1.grad(), m.b1.grad(), m.w2.grad()]
}

fn zero(m: &Model) {
    m.w1.zero_grad();
    m.b1.zero_grad();
    m.w2.zero_grad();
}

fn assert_close(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) {
    for (a, b) in a.iter().zip(b) {
        Zip::from(a)
            .and(b)
            .for_each(|&a, &b| assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}"));
    }
}

#[test]
fn a_custom_operation_running_a_differentiable_function_in_its_backward_step() {
    let x = constant(&[5, 3], 10);
    let mut m = model(20);
    let plain = plain_loss(&m, &x).backward();
    let expected = grads(&m);
    zero(&m);
    let custom = custom_loss(&m, &x).backward();
    assert!((custom - plain).abs() <= 1e-12 * plain.abs());
    assert_close(&grads(&m), &expected);
    assert_gradients(&mut m, |m| custom_loss(m, &x).backward());
}

#[test]
fn a_checkpointed_segment_in_differentiable_code() {
    let x = constant(&[5, 3], 30);
    let mut m = model(40);
    let plain = plain_loss(&m, &x).backward();
    let expected = grads(&m);
    zero(&m);
    let checkpointed = checkpointed_loss(&m, &x).backward();
    assert!((checkpointed - plain).abs() <= 1e-12 * plain.abs());
    assert_close(&grads(&m), &expected);
    assert_gradients(&mut m, |m| checkpointed_loss(m, &x).backward());
}
