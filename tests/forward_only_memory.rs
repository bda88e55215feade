//! Forward-only runs (`eval()`) take the memory of plain Rust: a
//! recurrent cell run over a sequence holds one step's values, not every
//! step's, so the peak heap bytes do not grow with the length; the same
//! computation run with `backward()` keeps every step for its backward
//! pass (the negative control: linear growth). The values agree. Peak
//! bytes are counted by a global allocator of this test binary's own.

mod common;

use common::counting::{Counting, peak_bytes_of};

use cps::prelude::*;
use ndarray::{Array1, Array2};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Parameters)]
struct Cell {
    wx: Param<f64>,
    wh: Param<f64>,
}

/// One step of a gated cell.
#[differentiable]
fn step(m: &Cell, h: &Var<f64>, x: f64) -> Var<f64> {
    let gate = (h.matmul(&m.wh) + x).sigmoid();
    let candidate = (h.matmul(&m.wx) * x).tanh();
    &gate * h + (1.0 - &gate) * candidate
}

/// The cell over `steps` inputs (a loop calling a differentiable
/// function), the sum of the last state.
#[differentiable]
fn run(m: &Cell, steps: usize) -> Var<f64> {
    let mut h = Var::constant(Array1::from_elem(16, 0.1).into_dyn());
    for t in 0..steps {
        let x = ((t % 7) as f64 - 3.0) * 0.3;
        h = step(m, &h, x);
    }
    h.sum()
}

fn cell() -> Cell {
    let matrix = |seed: f64| {
        Param::new(Array2::from_shape_fn((16, 16), |(i, j)| {
            ((i * 16 + j) as f64 * seed).sin() * 0.3
        }))
    };
    Cell {
        wx: matrix(0.7),
        wh: matrix(1.3),
    }
}

/// The peak of live heap bytes during one run (the model's parameters
/// included), and its value.
fn peak_bytes(steps: usize, backward: bool) -> (usize, f64) {
    peak_bytes_of(move || {
        let m = cell();
        if backward {
            run(&m, steps).backward()
        } else {
            run(&m, steps).eval().item()
        }
    })
}

#[test]
fn a_forward_only_run_holds_one_step() {
    let (short, short_value) = peak_bytes(1_000, false);
    let (long, long_value) = peak_bytes(8_000, false);
    println!("eval: peak bytes {short} at 1,000 steps, {long} at 8,000");
    assert!(
        long <= short + short / 4,
        "a forward-only run grew from {short} to {long} bytes"
    );
    // The same values as the runs that keep their tape.
    let (short_tape, short_loss) = peak_bytes(1_000, true);
    let (long_tape, long_loss) = peak_bytes(8_000, true);
    println!("backward: peak bytes {short_tape} at 1,000 steps, {long_tape} at 8,000");
    assert_eq!(short_value, short_loss);
    assert_eq!(long_value, long_loss);
    // The negative control: the tape grows with the steps.
    assert!(long_tape >= 5 * short_tape);
    assert!(short_tape >= 10 * short);
}
