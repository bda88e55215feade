//! HFSGVI (Fan et al. 2015): Hessian-free optimization of the
//! negative ELBO. Each iteration draws `S` fresh `ε`, takes the gradient
//! of the `S`-draw estimate, solves `(H + λI)Δ = −g` by truncated
//! conjugate gradients with the estimate's Hessian-vector products (one
//! forward-over-reverse pass each, on the same draws), and adapts `λ` by
//! the Levenberg–Marquardt rule from the estimate's actual change at
//! `θ + Δ`, again on the same draws.

use std::time::Instant;

use cps::optim::hessian_free::{CgStop, HessianFree};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::model::Objective;
use crate::monitor::{Monitor, draws};
use crate::trace::Trace;

/// HFSGVI's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Draws per iteration.
    pub samples: usize,
    /// Iterations.
    pub iterations: usize,
    /// The starting damping `λ`. At the prior the gradient is large and
    /// the curvature far from the optimum's, so the first steps are kept
    /// short; Levenberg–Marquardt lowers it as the model proves good.
    pub damping: f64,
    /// The most conjugate-gradient iterations per step.
    pub max_cg_iterations: usize,
    /// Conjugate gradients' relative residual: the gradient itself is a
    /// Monte Carlo estimate, so solving far below its noise buys nothing.
    pub cg_tolerance: f64,
}

impl Settings {
    /// The settings of the experiment, with `samples` draws and
    /// `iterations` iterations. The starting damping and the tolerance
    /// are the cheapest pair of {1, 10, 100} × {0.01, 0.1, 0.3} on this
    /// data (gradient-equivalents to ELBO* − 1, both families), as the
    /// first-order arms' learning rates are the best of five; all nine
    /// pairs get there within 20 iterations.
    pub fn new(samples: usize, iterations: usize) -> Self {
        Settings {
            samples,
            iterations,
            damping: 10.0,
            max_cg_iterations: 100,
            cg_tolerance: 0.3,
        }
    }
}

/// What happened inside HFSGVI's iterations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Conjugate-gradient iterations, over all steps.
    pub cg_iterations: usize,
    /// Steps rejected because they raised the estimate (`ρ ≤ 0`).
    pub rejected: usize,
    /// Steps whose conjugate gradients met non-positive curvature: with
    /// `R`'s diagonal as `exp(s)` the estimate need not be convex in `θ`.
    pub negative_curvature: usize,
}

/// Runs HFSGVI from the prior; `seed` seeds its draws.
pub fn run(
    objective: &Objective,
    monitor: &Monitor,
    settings: Settings,
    seed: u64,
) -> (Trace, Stats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut theta = objective.prior();
    let mut trace = Trace::start("HFSGVI", None, theta.clone(), monitor.elbo(&theta));
    let mut hf = HessianFree::new(settings.damping)
        .max_cg_iterations(settings.max_cg_iterations)
        .cg_tolerance(settings.cg_tolerance);
    let mut stats = Stats::default();
    for _ in 0..settings.iterations {
        let start = Instant::now();
        let eps = draws(&mut rng, settings.samples, objective.dim());
        let (before, gradient) = objective.gradient(&theta, &eps);
        let step = hf.direction(&gradient, |v| {
            objective.hessian_vector_product(&theta, &eps, v)
        });
        let candidate = &theta + &step.delta;
        let after = objective.value(&candidate, &eps);
        if hf.adapt(&step, after - before) > 0.0 {
            theta = candidate;
        } else {
            stats.rejected += 1;
        }
        stats.cg_iterations += step.iterations;
        stats.negative_curvature += usize::from(step.stop == CgStop::NegativeCurvature);
        // A gradient, the products (two gradients each), and the value at
        // θ + Δ (counted as a whole gradient, though it is forward only).
        let cost = 1.0 + 2.0 * step.products as f64 + 1.0;
        let time = start.elapsed();
        trace.push(monitor.elbo(&theta), cost, time);
    }
    trace.theta = theta;
    (trace, stats)
}
