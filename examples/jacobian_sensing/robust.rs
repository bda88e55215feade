//! Robustness: `Jᵀv` of a dense hidden map (n = 64) from m = 2n random
//! measurements while a fraction of the calls return garbage, decoded by
//! L1 and by least squares, each compared with the exact product `cps`
//! computes on the un-hidden function.

use std::time::Instant;

use cps::ops::blackbox::{
    CorruptedCalls, Decoder, JacobianEstimator, L1, LeastSquares, RandomSensing,
};
use cps::prelude::*;
use ndarray::{Array2, ArrayD, Ix1};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::table::Table;

/// The input's and the output's size.
const N: usize = 64;

/// The fractions of corrupted calls tried.
const FRACTIONS: [f64; 6] = [0.0, 0.05, 0.10, 0.15, 0.20, 0.30];

/// A trial recovers `Jᵀv` when its relative error is below this.
const RECOVERED: f64 = 1e-4;

/// The hidden map `f(x) = sin(W₂ tanh(W₁ x))`, weights of variance 1/n.
struct Hidden {
    w1: Array2<f64>,
    w2: Array2<f64>,
}

impl Hidden {
    fn new(rng: &mut StdRng) -> Self {
        Hidden {
            w1: gaussian(rng, (N, N), 1.0 / (N as f64).sqrt()),
            w2: gaussian(rng, (N, N), 1.0 / (N as f64).sqrt()),
        }
    }

    /// The black box: plain ndarray, no gradient.
    fn call(&self, x: &ArrayD<f64>) -> ArrayD<f64> {
        let x = x.view().into_dimensionality::<Ix1>().expect("a vector");
        self.w2
            .dot(&self.w1.dot(&x).mapv(f64::tanh))
            .mapv(f64::sin)
            .into_dyn()
    }
}

/// The same map, written for `cps`.
#[differentiable]
fn unhidden(w1: &Var<f64>, w2: &Var<f64>, x: &Var<f64>) -> Var<f64> {
    w2.matmul(&w1.matmul(x).tanh()).sin()
}

/// `vᵀ f(x)`, whose gradient with respect to `x` is `Jᵀv`.
#[differentiable]
fn weighted(w1: &Var<f64>, w2: &Var<f64>, x: &Var<f64>, v: &Var<f64>) -> Var<f64> {
    (unhidden(w1, w2, x) * v).sum()
}

fn gaussian(rng: &mut StdRng, shape: (usize, usize), scale: f64) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || scale * rng.sample::<f64, _>(StandardNormal))
}

fn cosine(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(a, b)| a * b).sum();
    let norm = |v: &ArrayD<f64>| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn relative_error(estimate: &ArrayD<f64>, exact: &ArrayD<f64>) -> f64 {
    let norm = |v: ArrayD<f64>| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    norm(estimate - exact) / norm(exact.clone())
}

/// Runs the experiment over `trials` draws of the map, point, directions
/// and faults, and prints its table.
pub fn run(trials: usize, seed: u64) {
    report!(
        "## Robustness: Jᵀv of a dense map R^{N} → R^{N} from m = {} calls along random directions \
         (+1 uncorrupted call at x), {trials} trials per row; recovered: relative error below {RECOVERED:e}",
        2 * N
    );
    let start = Instant::now();
    let mut table = Table::new(&[
        "corrupted calls",
        "garbage calls (mean)",
        "L1: cosine",
        "L1: recovered",
        "least squares: cosine",
        "least squares: recovered",
    ]);
    for (f, &fraction) in FRACTIONS.iter().enumerate() {
        let (mut l1_cos, mut ls_cos, mut garbage) = (0.0, 0.0, 0.0);
        let (mut l1_ok, mut ls_ok) = (0, 0);
        for t in 0..trials {
            let trial_seed = seed.wrapping_mul(1000).wrapping_add((f * 100 + t) as u64);
            let mut rng = StdRng::seed_from_u64(trial_seed);
            let hidden = Hidden::new(&mut rng);
            let x = gaussian(&mut rng, (1, N), 1.0)
                .into_shape_with_order(N)
                .expect("n")
                .into_dyn();
            let v = gaussian(&mut rng, (1, N), 1.0)
                .into_shape_with_order(N)
                .expect("n")
                .into_dyn();
            let exact = exact_vjp(&hidden, &x, &v);
            let f = |x: &ArrayD<f64>| hidden.call(x);
            let y = f(&x);
            // The same directions and the same faults for both decoders.
            let sensing = |decoder| RandomSensing::new(decoder, trial_seed);
            let mut l1 = CorruptedCalls::new(
                sensing(Box::new(L1::default()) as Box<dyn Decoder>),
                fraction,
                trial_seed,
            );
            let mut ls = CorruptedCalls::new(sensing(Box::new(LeastSquares)), fraction, trial_seed);
            let robust = l1.vjp(&f, &x, &y, &v);
            let plain = ls.vjp(&f, &x, &y, &v);
            assert_eq!(l1.corrupted(), ls.corrupted());
            garbage += l1.corrupted() as f64;
            l1_cos += cosine(&robust, &exact);
            ls_cos += cosine(&plain, &exact);
            l1_ok += usize::from(relative_error(&robust, &exact) < RECOVERED);
            ls_ok += usize::from(relative_error(&plain, &exact) < RECOVERED);
        }
        let t = trials as f64;
        table.row(vec![
            format!("{:.0}%", 100.0 * fraction),
            format!("{:.1} of {}", garbage / t, 2 * N),
            format!("{:.4}", l1_cos / t),
            format!("{l1_ok}/{trials}"),
            format!("{:.4}", ls_cos / t),
            format!("{ls_ok}/{trials}"),
        ]);
    }
    table.print();
    report!("({:.1} s)\n", start.elapsed().as_secs_f64());
}

/// `Jᵀv` by `cps`'s backward pass through the un-hidden function.
fn exact_vjp(hidden: &Hidden, x: &ArrayD<f64>, v: &ArrayD<f64>) -> ArrayD<f64> {
    let w1 = Var::constant(hidden.w1.clone());
    let w2 = Var::constant(hidden.w2.clone());
    let x = Param::new(x.clone());
    let v = Var::constant(v.clone());
    weighted(&w1, &w2, x.var(), &v).backward();
    x.grad()
}
