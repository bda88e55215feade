//! Adagrad's step from deferred products against its plain step: the
//! product into a gradient buffer, then [`Optimizer::update`].

use ndarray::{Array, ArrayD, IxDyn};

use super::Adagrad;
use crate::optim::{Optimizer, step_param};
use crate::param::Param;
use crate::var::Var;

/// Deterministic values in about [-1, 1), some exactly zero.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0;
            if (state >> 20).is_multiple_of(17) {
                0.0
            } else {
                v
            }
        })
        .collect()
}

fn array(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let n = shape.iter().product();
    Array::from_shape_vec(IxDyn(shape), values(n, seed)).expect("the shape's length")
}

/// Gives `w` the deferred updates of `k` rows (one block of two rows
/// among single rows) and, with `dense`, a gradient buffer too.
fn give_gradient(w: &Param<f32>, k: usize, dense: bool, seed: u64) {
    let (rows, cols) = (w.shape()[0], w.shape()[1]);
    let mut row = 0;
    while row < k {
        let block = if row == 1 && k - row >= 2 { 2 } else { 1 };
        let seed = seed * 1000 + row as u64;
        let (u, v) = if block == 1 {
            (array(&[rows], seed), array(&[cols], seed + 500))
        } else {
            (array(&[2, rows], seed), array(&[2, cols], seed + 500))
        };
        crate::ops::linalg::defer_outer(w.var(), u, Var::constant(v));
        row += block;
    }
    if dense {
        w.var().accumulate(array(&[rows, cols], seed + 999));
    }
}

fn same_bits(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn a_step_from_deferred_products_equals_the_plain_step_bit_for_bit() {
    crate::kernels::each_kernel_width(fused_step_equals_the_plain_step);
}

/// [`a_step_from_deferred_products_equals_the_plain_step_bit_for_bit`]
/// at one width of the kernels.
fn fused_step_equals_the_plain_step(width: &str) {
    let mut fused_steps = 0;
    for (rows, cols) in [
        (2, 2),
        (5, 9),
        (6, 16),
        (7, 8),
        (13, 23),
        (12, 33),
        (30, 300),
    ] {
        for k in [1, 2, 3, 20, 48, 49] {
            for dense in [false, true] {
                let start = array(&[rows, cols], (rows * 100 + cols) as u64);
                let mut fused_w = Param::new(start.clone());
                let mut plain_w = Param::new(start);
                let configure = || Adagrad::new(0.05f32).lr_decay(0.1).weight_decay(0.01);
                let (mut fused, mut plain) = (configure(), configure());
                for step in 0..3 {
                    let seed = (step * 7 + k) as u64;
                    give_gradient(&fused_w, k, dense, seed);
                    give_gradient(&plain_w, k, dense, seed);
                    let expected = super::fused::fits::<f32>(k) && k >= 2;
                    let took = fused.step_from_deferred_rows(&mut fused_w);
                    assert_eq!(
                        took, expected,
                        "{width}: {rows}x{cols}, k {k}, dense {dense}"
                    );
                    if !took {
                        step_param(&mut fused, &mut fused_w);
                    }
                    fused_steps += usize::from(took);
                    step_param(&mut plain, &mut plain_w);
                    let case = format!("{width}: {rows}x{cols}, k {k}, dense {dense}, step {step}");
                    assert!(
                        same_bits(fused_w.array(), plain_w.array()),
                        "values, {case}"
                    );
                    let (a, b) = (&fused.states[&fused_w.id()], &plain.states[&plain_w.id()]);
                    assert!(same_bits(&a.sum, &b.sum), "sums, {case}");
                    assert_eq!(a.step, b.step, "{case}");
                    assert!(fused_w.grad_ref().is_none(), "gradient consumed, {case}");
                }
            }
        }
    }
    if super::fused::fits::<f32>(2) {
        assert!(fused_steps > 0);
    }
}

/// The step taken through [`Optimizer::step`] (which Adagrad overrides)
/// also matches, for a parameter with deferred products and for one with
/// a plain gradient.
#[test]
fn optimizer_step_takes_both_kinds_of_parameter() {
    let start = array(&[9, 20], 3);
    let (mut a, mut b) = (Param::new(start.clone()), Param::new(start));
    let (mut fused, mut plain) = (Adagrad::new(0.1f32), Adagrad::new(0.1f32));
    for step in 0..2 {
        give_gradient(&a, 5, step == 1, step);
        give_gradient(&b, 5, step == 1, step);
        fused.step(&mut a);
        step_param(&mut plain, &mut b);
        assert!(same_bits(a.array(), b.array()), "step {step}");
    }
    let vector = Param::new(array(&[7], 4));
    vector.var().accumulate(array(&[7], 5));
    let before = vector.array().clone();
    let mut vector = vector;
    fused.step(&mut vector);
    assert!(!same_bits(vector.array(), &before), "the vector moved");
}
