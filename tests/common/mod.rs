//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod counting;

use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A reproducible array with entries uniform in [-1, 1).
pub fn random(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

/// A trainable parameter with random entries.
pub fn param(shape: &[usize], seed: u64) -> Param<f64> {
    Param::new(random(shape, seed))
}

/// A constant with random entries.
pub fn constant(shape: &[usize], seed: u64) -> Var<f64> {
    Var::constant(random(shape, seed))
}

/// Asserts that gradcheck passes at 1e-6 and that the gradient is not trivially zero.
pub fn assert_gradients<M: Parameters<f64>>(model: &mut M, loss: impl FnMut(&M) -> f64) {
    let report = gradcheck(model, loss);
    assert!(report.passes(1e-6), "{report}");
}

/// A recurrent cell of the macro tests: input 3, hidden 4.
#[derive(Parameters)]
pub struct Cell {
    pub wx: Param<f64>,
    pub wh: Param<f64>,
    pub b: Param<f64>,
}

/// A [`Cell`] with random parameters.
pub fn cell(seed: u64) -> Cell {
    Cell {
        wx: param(&[3, 4], seed),
        wh: param(&[4, 4], seed + 1),
        b: param(&[4], seed + 2),
    }
}
