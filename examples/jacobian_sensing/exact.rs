//! Exact recovery: the Jacobian of a tridiagonal map of R¹⁰⁰ from a few
//! calls, by colouring its columns (Curtis, Powell and Reid) or by
//! decoding random measurements with the sparsity pattern known, beside
//! plain forward differences; and what one garbage call does to each.

use std::cell::Cell;

use cps::ops::blackbox::{
    ColouredDifferences, L1, LeastSquares, MeasurementCount, RandomSensing, SparsityPattern,
};
use cps::prelude::*;
use ndarray::{Array1, Array2, ArrayD};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Uniform};

use crate::comparison::Comparison;

/// The input's and the output's size.
const N: usize = 100;

/// `yᵢ = sin(xᵢ) + xᵢ₋₁ xᵢ − x²ᵢ₊₁ / 2` (zero beyond the ends): output
/// `i` depends on inputs `i − 1`, `i`, `i + 1`.
#[differentiable]
fn tridiagonal(x: &Var<f64>) -> Var<f64> {
    let n = x.len();
    let left = x.narrow(0, 0, n - 1).pad(&[(1, 0)], 0.0);
    let right = x.narrow(0, 1, n - 1).pad(&[(0, 1)], 0.0);
    x.sin() + left * x - right.square() * 0.5
}

/// The same map as a black box: plain Rust on the values.
fn black_box(x: &ArrayD<f64>) -> ArrayD<f64> {
    let n = x.len();
    ArrayD::from_shape_fn(x.raw_dim(), |i| {
        let i = i[0];
        let left = if i > 0 { x[i - 1] } else { 0.0 };
        let right = if i + 1 < n { x[i + 1] } else { 0.0 };
        x[i].sin() + left * x[i] - 0.5 * right * right
    })
}

/// `vᵀ f(x)`, whose gradient is row `k` of the Jacobian when `v = e_k`.
#[differentiable]
fn component(x: &Var<f64>, v: &Var<f64>) -> Var<f64> {
    (tridiagonal(x) * v).sum()
}

/// The exact Jacobian, one backward pass of `cps` per row.
fn exact_jacobian(x: &ArrayD<f64>) -> Array2<f64> {
    let mut jacobian = Array2::zeros((N, N));
    for k in 0..N {
        let input = Param::new(x.clone());
        let mut e = Array1::zeros(N);
        e[k] = 1.0;
        component(input.var(), &Var::constant(e)).backward();
        jacobian.row_mut(k).assign(&input.grad());
    }
    jacobian
}

/// `f`, with call number `bad` (from 0) returning garbage.
fn garbage_on_call(
    f: impl Fn(&ArrayD<f64>) -> ArrayD<f64>,
    bad: usize,
) -> impl Fn(&ArrayD<f64>) -> ArrayD<f64> {
    let calls = Cell::new(0);
    move |x| {
        let call = calls.replace(calls.get() + 1);
        let y = f(x);
        if call == bad {
            y.mapv(|v| 1e3 * (v * 7.0).sin())
        } else {
            y
        }
    }
}

/// Runs the experiment and prints its table.
pub fn run(seed: u64) {
    report!(
        "## Exact recovery: the Jacobian of a tridiagonal map R^{N} → R^{N} (calls include the \
         one at x; \"1 call garbage\": the second perturbed call returns garbage)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let uniform = Uniform::new(-1.0, 1.0).expect("a valid range");
    let x: ArrayD<f64> = Array1::from_shape_simple_fn(N, || uniform.sample(&mut rng)).into_dyn();
    let exact = exact_jacobian(&x);
    let band = SparsityPattern::banded(N, 1, 1);
    let mut comparison = Comparison::new(&x, &exact);
    let dense = ColouredDifferences::new(SparsityPattern::dense(N, N));
    comparison.add("forward differences", "nothing", &black_box, |f, y| {
        dense.jacobian(f, &x, y).to_dense()
    });
    let coloured = ColouredDifferences::new(band.clone());
    let colours = coloured.colouring().count();
    comparison.add(
        &format!("colouring (CPR), {colours} colours"),
        "the band",
        &black_box,
        |f, y| coloured.jacobian(f, &x, y).to_dense(),
    );
    let mut sensing =
        RandomSensing::new(LeastSquares, seed).with_measurements(MeasurementCount::PerUnknown(1.0));
    comparison.add(
        "random sensing, least squares",
        "the band",
        &black_box,
        |f, y| sensing.sparse_jacobian(&band, f, &x, y).to_dense(),
    );
    let faulty = garbage_on_call(black_box, 2);
    comparison.add(
        "colouring (CPR), 1 call garbage",
        "the band",
        &faulty,
        |f, y| coloured.jacobian(f, &x, y).to_dense(),
    );
    let faulty = garbage_on_call(black_box, 2);
    // One call in fifteen wrong: enough measurements that no row of three
    // unknowns lets the wrong one outweigh the others.
    let mut robust =
        RandomSensing::new(L1::default(), seed).with_measurements(MeasurementCount::Fixed(15));
    comparison.add(
        "random sensing, L1, 1 call garbage",
        "the band",
        &faulty,
        |f, y| robust.sparse_jacobian(&band, f, &x, y).to_dense(),
    );
    comparison.print();
}
