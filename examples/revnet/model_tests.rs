//! The RevNet example's model (`examples/revnet/model.rs`): run reversibly
//! it computes the same function as the ResNet of the same blocks, so its
//! gradients equal the ResNet's and central finite differences (f64, a
//! tiny instance); and at the end of its forward pass it holds the same
//! bytes whatever its depth, where the ResNet's grow with every block.

use crate::model;

use cps::prelude::*;
use model::{Architecture, Net, loss_and_gradients};
use ndarray::{Array4, ArrayD};

const HALF: usize = 2;
const CLASSES: usize = 3;
const LABELS: [usize; 2] = [2, 0];

/// Two 8×8 one-channel images of deterministic values in about [-1, 1].
fn images() -> Var<f64> {
    Var::constant(Array4::from_shape_fn((2, 1, 8, 8), |(n, _, i, j)| {
        (((n * 64 + i * 8 + j) * 7919 % 2003) as f64 / 1001.0) - 1.0
    }))
}

/// Every parameter's value or gradient, in the model's order.
fn collect(net: &Net<f64>, of: impl Fn(&Param<f64>) -> ArrayD<f64>) -> Vec<ArrayD<f64>> {
    let mut out = Vec::new();
    net.visit(&mut |_, p| out.push(of(p)));
    out
}

/// The gradients of the loss of `architecture` at the net's parameters.
fn gradients(net: &Net<f64>, architecture: Architecture) -> Vec<ArrayD<f64>> {
    net.zero_grad();
    loss_and_gradients(net, &images(), &LABELS, architecture);
    let grads = collect(net, Param::grad);
    net.zero_grad();
    grads
}

fn loss(net: &Net<f64>) -> f64 {
    model::batch_loss(net, &images(), &LABELS, Architecture::ResNet)
        .eval()
        .item()
}

fn worst_difference(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y.iter()))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn revnet_gradients_equal_resnet_gradients_and_finite_differences() {
    let mut net = Net::<f64>::new(4, HALF, CLASSES, 7);
    let reversible = gradients(&net, Architecture::RevNet);
    let plain = gradients(&net, Architecture::ResNet);
    let scale = plain
        .iter()
        .flat_map(|g| g.iter())
        .fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(scale > 1e-3, "the gradients are not trivially zero");
    // Only rounding in the rebuilt activations separates the two.
    let error = worst_difference(&reversible, &plain);
    assert!(error < 1e-10 * scale, "{error} at scale {scale}");

    // Central differences on a few entries of every parameter tensor.
    let step = 1e-6;
    let mut index = 0;
    let mut checked = 0;
    let count = reversible.len();
    while index < count {
        let entries = reversible[index].len();
        for entry in [0, entries / 2, entries - 1] {
            let nudge = |net: &mut Net<f64>, by: f64| {
                let mut seen = 0;
                net.visit_mut(&mut |_, p| {
                    if seen == index {
                        let value = p.value_mut();
                        let slot = value.iter_mut().nth(entry).expect("an entry");
                        *slot += by;
                    }
                    seen += 1;
                });
            };
            nudge(&mut net, step);
            let up = loss(&net);
            nudge(&mut net, -2.0 * step);
            let down = loss(&net);
            nudge(&mut net, step);
            let numeric = (up - down) / (2.0 * step);
            let analytic = *reversible[index].iter().nth(entry).expect("an entry");
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                "parameter {index} entry {entry}: finite differences {numeric}, RevNet {analytic}"
            );
            checked += 1;
        }
        index += 1;
    }
    assert!(checked >= 3 * 10);

    // A negative control: the gradients of another network (other
    // parameters, same shapes) differ from these well beyond the tolerance.
    let other = Net::<f64>::new(4, HALF, CLASSES, 8);
    let different = gradients(&other, Architecture::RevNet);
    assert!(worst_difference(&reversible, &different) > 1e-4 * scale);
}

#[test]
fn revnet_forward_memory_is_flat_in_depth_and_resnet_grows() {
    let held = |depth: usize, architecture: Architecture| {
        let net = Net::<f64>::new(depth, HALF, CLASSES, 1);
        loss_and_gradients(&net, &images(), &LABELS, architecture).forward_bytes
    };
    let (rev2, rev8) = (held(2, Architecture::RevNet), held(8, Architecture::RevNet));
    let (res2, res8) = (held(2, Architecture::ResNet), held(8, Architecture::ResNet));
    assert_eq!(
        rev2, rev8,
        "RevNet: {rev2} bytes at depth 2, {rev8} at depth 8"
    );
    assert!(
        res8 > res2,
        "ResNet: {res2} bytes at depth 2, {res8} at depth 8"
    );
    // At depth 2 the ResNet already keeps its blocks' activations.
    assert!(res2 > rev2);
}
