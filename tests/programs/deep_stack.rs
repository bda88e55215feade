//! The stack is the tape: long chains, long loops and deep recursion must
//! run in a default test thread (2 MiB stack) without overflowing.

use cps::prelude::*;
use ndarray::{Array1, array};

#[differentiable]
fn long_chain(w: &Param<f64>, steps: usize) -> Var<f64> {
    let mut x = w.sum();
    for _ in 0..steps {
        x = x * 0.999999 + 1e-6;
    }
    x
}

#[test]
fn a_million_scalar_operations() {
    let steps = 500_000; // two operations per step
    let w = Param::new(array![1.0f64]);
    let value = long_chain(&w, steps).backward();
    let expected_grad = 0.999999f64.powi(steps as i32);
    assert!(
        (w.grad()[0] - expected_grad).abs() < 1e-9,
        "{}",
        w.grad()[0]
    );
    // x_n = a^n x_0 + b (1 - a^n) / (1 - a) with x_0 = 1.
    let a = 0.999999f64;
    let expected = expected_grad + 1e-6 * (1.0 - expected_grad) / (1.0 - a);
    assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
}

#[differentiable]
fn long_rnn(w: &Param<f64>, u: &Param<f64>, xs: &[f64]) -> Var<f64> {
    let mut h = Var::constant(Array1::<f64>::zeros(3));
    for &x in xs {
        h = (h.matmul(w) + u * x).tanh();
    }
    h.sum()
}

#[test]
fn a_ten_thousand_step_rnn() {
    let xs: Vec<f64> = (0..10_000).map(|i| ((i as f64) * 0.37).sin()).collect();
    let w = Param::new(array![
        [0.3f64, -0.2, 0.1],
        [0.0, 0.4, -0.3],
        [0.2, 0.1, 0.5]
    ]);
    let u = Param::new(array![0.5f64, -0.5, 0.25]);
    let value = long_rnn(&w, &u, &xs).backward();
    assert!(value.is_finite());
    // The gradient of the last steps dominates; compare one element with
    // finite differences on the same long sequence.
    let grad = u.grad()[0];
    let mut shifted = Param::new(array![0.5f64 + 1e-6, -0.5, 0.25]);
    let above = long_rnn(&w, &shifted, &xs).eval().item();
    shifted.value_mut()[0] = 0.5 - 1e-6;
    let below = long_rnn(&w, &shifted, &xs).eval().item();
    let numeric = (above - below) / 2e-6;
    assert!(
        (grad - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
        "{grad} vs {numeric}"
    );
}

enum Chain {
    End,
    Link(Box<Chain>),
}

#[differentiable]
fn depth(w: &Param<f64>, t: &Chain) -> Var<f64> {
    match t {
        Chain::End => w.sum(),
        Chain::Link(rest) => depth(w, rest) * 1.0001,
    }
}

#[test]
fn a_degenerate_tree_ten_thousand_deep() {
    let mut tree = Chain::End;
    for _ in 0..10_000 {
        tree = Chain::Link(Box::new(tree));
    }
    let w = Param::new(array![2.0f64]);
    let value = depth(&w, &tree).backward();
    let factor = 1.0001f64.powi(10_000);
    assert!((value - 2.0 * factor).abs() < 1e-9 * factor);
    assert!((w.grad()[0] - factor).abs() < 1e-9 * factor);
    // Dropping a deep tree recursively would overflow: unlink it iteratively.
    let mut next = Some(tree);
    while let Some(Chain::Link(rest)) = next.take() {
        next = Some(*rest);
    }
}

/// The sum of `0.5^i` for `i` from `from` to `n` (inclusive), by recursion,
/// with sixteen operations after each recursive call: the callers' rests
/// all run on top of the deepest call, so the way back must check the
/// stack as the way in does.
#[differentiable]
fn tail_weighted(w: &Param<f64>, from: usize, n: usize) -> Var<f64> {
    if from == n {
        w.sum()
    } else {
        let rest = tail_weighted(w, from + 1, n);
        let mut x = rest * 0.5;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x = x * 1.0 + 0.0;
        x + w.sum()
    }
}

#[test]
fn a_deep_recursion_with_operations_after_each_return() {
    let depth = 40_000;
    let w = Param::new(array![1.0f64]);
    let value = tail_weighted(&w, 0, depth).backward();
    // Every level adds w, halving what came back: sum of 0.5^i for i in
    // 0..=depth, times w = 1; the gradient is the same sum.
    assert!((value - 2.0).abs() < 1e-9, "{value}");
    assert!((w.grad()[0] - 2.0).abs() < 1e-9, "{}", w.grad()[0]);
}
