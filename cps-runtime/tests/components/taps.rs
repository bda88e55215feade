//! Taps on linear layers: the recorded input rows `A` and output-gradient
//! rows `Δ` of a tapped weight reproduce its gradient `Δᵀ·A`.

use cps_runtime::*;
use ndarray::{Array2, ArrayD, array};

fn values(rows: usize, cols: usize, seed: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        ((((r * cols + c) * 7919 + seed * 104_729) % 2003) as f64 / 1001.0) - 1.0
    })
}

fn relative(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A single linear layer with squared error on a batch: the tap's `Δᵀ·A`
/// is the weight's gradient.
#[test]
fn a_batch_through_a_linear_layer_reproduces_the_weight_gradient() {
    let (batch, inputs, outputs) = (7, 5, 3);
    let w = Param::new(values(outputs, inputs, 1));
    let tap = w.tap();
    let x = Var::constant(values(batch, inputs, 2));
    let target = Var::constant(values(batch, outputs, 3));
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.linear(&w)
            .bind(|y| (&y - &target).bind(|e| e.square().bind(|s| s.mean().bind(k))))
    })
    .backward();
    let (a, delta) = tap.take().expect("the product was recorded");
    assert_eq!((a.dim(), delta.dim()), ((batch, inputs), (batch, outputs)));
    assert_eq!(a, values(batch, inputs, 2));
    let from_tap = delta.t().dot(&a).into_dyn();
    let error = relative(&from_tap, &w.grad());
    assert!(error < 1e-12, "{error}");
    // Δ is the loss's gradient with respect to the layer's output.
    let y = values(batch, inputs, 2).dot(&values(outputs, inputs, 1).t());
    let expected_delta = (y - values(batch, outputs, 3)) * (2.0 / (batch * outputs) as f64);
    assert!(relative(&delta.into_dyn(), &expected_delta.into_dyn()) < 1e-12);
    assert!(tap.take().is_none(), "taken");
}

/// One matrix-times-vector product per sample (a loop over a batch): one
/// row each, in the order the backward steps ran.
#[test]
fn per_sample_products_record_one_row_each() {
    let w = Param::new(values(2, 3, 4));
    let tap = w.tap();
    let samples: Vec<Var<f64>> = (0..4)
        .map(|i| Var::constant(values(1, 3, 10 + i).row(0).to_owned()))
        .collect();
    fn run(w: &Param<f64>, samples: &[Var<f64>], k: &mut dyn FnMut(Var<f64>)) {
        match samples.split_first() {
            None => k(Var::scalar(0.0)),
            Some((x, rest)) => w.matmul(x).bind(|y| {
                y.tanh().bind(|t| {
                    t.sum()
                        .bind(|s| run(w, rest, &mut |r| (&s + &r).bind(&mut *k)))
                })
            }),
        }
    }
    lazy(|k: &mut dyn FnMut(Var<f64>)| run(&w, &samples, k)).backward();
    let (a, delta) = tap.take().expect("recorded");
    assert_eq!(a.nrows(), 4);
    // The last sample's product finishes first.
    assert_eq!(
        a.row(0),
        samples[3].array().view().into_dimensionality().unwrap()
    );
    let error = relative(&delta.t().dot(&a).into_dyn(), &w.grad());
    assert!(error < 1e-12, "{error}");
}

/// A frozen parameter records nothing; an untapped one stops recording;
/// tapping twice shares one record.
#[test]
fn frozen_and_untapped_parameters_record_nothing() {
    let mut w = Param::new(array![[1.0f64, 2.0]]);
    let tap = w.tap();
    let again = w.tap();
    let x = Var::constant(array![1.0f64, -1.0]);
    let step = |w: &Param<f64>| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| w.matmul(&x).bind(|y| y.sum().bind(k))).backward()
    };
    step(&w);
    assert_eq!((tap.len(), again.len()), (1, 1));
    tap.take();
    w.set_trainable(false);
    step(&w);
    assert!(tap.is_empty());
    w.set_trainable(true);
    w.untap();
    step(&w);
    assert!(tap.is_empty());
}
