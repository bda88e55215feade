//! The operations of a convolutional classifier and of a reparameterised
//! Gaussian, written as `#[differentiable]` functions (the way a model
//! uses them), gradient-checked in f64 against central finite
//! differences, with a negative control.

use cps::prelude::*;
use ndarray::{Array, ArrayD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Deterministic values in about [-1, 1].
fn values(shape: &[usize], seed: usize) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    Array::from_shape_vec(
        IxDyn(shape),
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.0) - 1.0)
            .collect(),
    )
    .expect("the shape's length")
}

#[derive(Parameters)]
struct ConvNet {
    filters: Param<f64>,
    filter_bias: Param<f64>,
    scale: Param<f64>,
    shift: Param<f64>,
    classifier: Param<f64>,
}

/// conv → max-pool → relu → flatten → layer norm → linear → mean NLL, and
/// the two halves of the logits split apart and recombined with maximum.
#[differentiable]
fn convnet_loss(m: &ConvNet, images: &Var<f64>, labels: &[usize]) -> Var<f64> {
    let features = images.conv2d(
        &m.filters,
        Some(m.filter_bias.var()),
        Conv2dOptions::default().with_padding(1),
    );
    let pooled = features.max_pool2d(Pool2dOptions::new(2));
    let active = pooled.relu();
    let flat = active.flatten(1, -1);
    let normal = flat.layer_norm(1, Some(m.scale.var()), Some(m.shift.var()), 1e-5);
    let logits = normal.linear(&m.classifier);
    let halves = logits.split(1, &[2, 2]);
    let larger = halves[0].maximum(&halves[1]);
    let both = concat(&[logits, larger], 1);
    both.log_softmax().nll_loss(labels)
}

fn convnet() -> ConvNet {
    ConvNet {
        filters: Param::new(values(&[3, 2, 3, 3], 1) * 0.5),
        filter_bias: Param::new(values(&[3], 2) * 0.1),
        scale: Param::new(values(&[3 * 2 * 2], 3) * 0.2 + 1.0),
        shift: Param::new(values(&[3 * 2 * 2], 4) * 0.1),
        classifier: Param::new(values(&[4, 3 * 2 * 2], 5) * 0.3),
    }
}

#[test]
fn a_convolutional_classifier_gradient_checks() {
    let images = Var::constant(values(&[2, 2, 4, 4], 6));
    let mut model = convnet();
    let report = gradcheck(&mut model, |m| convnet_loss(m, &images, &[1, 4]).backward());
    assert!(report.passes(1e-6), "{report}");
    assert_eq!(report.elements_checked, 54 + 3 + 12 + 12 + 48);
}

#[derive(Parameters)]
struct Gaussian {
    mean: Param<f64>,
    log_std: Param<f64>,
}

/// E[sum (z - target)²] for z = mean + exp(log_std)·eps, one sample per
/// element, with eps drawn from a generator the caller seeds.
#[differentiable]
fn reparameterised_loss(q: &Gaussian, target: &Var<f64>, seed: u64) -> Var<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let eps = q.mean.randn_like(&mut rng);
    let z = &q.mean + q.log_std.exp() * &eps;
    let error = z - target;
    error.square().sum()
}

#[test]
fn a_reparameterised_sample_gradient_checks() {
    let target = Var::constant(values(&[5], 7));
    let mut q = Gaussian {
        mean: Param::new(values(&[5], 8)),
        log_std: Param::new(values(&[5], 9) * 0.3),
    };
    let report = gradcheck(&mut q, |q| reparameterised_loss(q, &target, 11).backward());
    assert!(report.passes(1e-6), "{report}");
    // A different sample per evaluation is not a function of the
    // parameters: the check must fail (the negative control).
    let counter = std::cell::Cell::new(0);
    let report = gradcheck(&mut q, |q| {
        counter.set(counter.get() + 1);
        reparameterised_loss(q, &target, counter.get()).backward()
    });
    assert!(!report.passes(1e-6), "{report}");
}
