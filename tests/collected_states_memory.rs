//! Memory of a loop that collects its states in a `Vec`: linear in the
//! number of steps (the state is moved from iteration to iteration, not
//! copied). Peak bytes are counted by a global allocator of this test
//! binary's own.

mod common;

use common::counting::{Counting, peak_bytes_of};

use cps::prelude::*;
use ndarray::array;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parameters)]
struct Scalar {
    w: Param<f64>,
}

#[differentiable]
fn collected(m: &Scalar, x: &Var<f64>, steps: usize) -> Var<f64> {
    let mut states = Vec::new();
    let mut h = x.clone();
    for _ in 0..steps {
        h = (h * &m.w).tanh();
        states.push(h.clone());
    }
    let parts: Vec<&Var<f64>> = states.iter().collect();
    concat(&parts, 0).sum()
}

/// The peak of live heap bytes during one forward and backward pass.
fn peak_bytes(steps: usize) -> usize {
    peak_bytes_of(move || {
        let m = Scalar {
            w: Param::new(array![0.9f64].into_dyn()),
        };
        let x = Var::constant(array![0.5f64].into_dyn());
        collected(&m, &x, steps).backward();
    })
    .0
}

#[test]
fn a_loop_collecting_its_states_takes_memory_linear_in_its_steps() {
    let small = peak_bytes(1_000);
    let large = peak_bytes(8_000);
    println!("peak bytes: {small} at 1,000 steps, {large} at 8,000 steps");
    // Linear is 8x; a copy of the Vec at every step would be 64x.
    assert!(
        large <= 10 * small,
        "peak bytes grew {:.1}x from 1,000 to 8,000 steps ({small} -> {large})",
        large as f64 / small as f64
    );
}
