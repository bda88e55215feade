//! The ELBO every arm is judged by: the full training set, and one fixed
//! set of draws `ε` (1,000 by default) shared by every evaluation of every
//! arm (common random numbers), so that two posteriors are compared on
//! the same draws and the curves are free of evaluation noise.
//!
//! It is evaluated after every iteration of every arm, and needs no
//! gradient, so it is plain `f64` arithmetic: one matrix product and one
//! softplus per example and draw, summed without the intermediate arrays
//! of a differentiable run. The integration test checks it against the
//! differentiable estimate on the same draws.

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::model::Layout;

/// `count × dim` standard normal draws from `rng`, one draw per row.
pub fn draws(rng: &mut StdRng, count: usize, dim: usize) -> Array2<f64> {
    Array2::from_shape_fn((count, dim), |_| StandardNormal.sample(rng))
}

/// `count × dim` standard normal draws from `seed`.
pub fn normal_draws(count: usize, dim: usize, seed: u64) -> Array2<f64> {
    draws(&mut StdRng::seed_from_u64(seed), count, dim)
}

/// The ELBO on fixed draws.
pub struct Monitor {
    layout: Layout,
    /// The inputs with each row multiplied by its `yₙ = ±1`: then every
    /// term is `softplus(−row·z)`.
    signed_x: Array2<f64>,
    /// `d × count`: one draw per column.
    eps_t: Array2<f64>,
}

impl Monitor {
    /// The ELBO of posteriors laid out by `layout`, on inputs `x` with
    /// classes `labels`, with `draws` draws from `seed`.
    pub fn new(layout: Layout, x: &Array2<f64>, labels: &[bool], draws: usize, seed: u64) -> Self {
        let mut signed_x = x.clone();
        for (mut row, &label) in signed_x.axis_iter_mut(Axis(0)).zip(labels) {
            if !label {
                row.mapv_inplace(|v| -v);
            }
        }
        let eps_t = normal_draws(draws, layout.dim, seed).reversed_axes();
        Monitor {
            layout,
            signed_x,
            eps_t,
        }
    }

    /// The ELBO's estimate at `theta` (in nats; higher is better): the
    /// expected log-likelihood on the fixed draws, less the exact KL
    /// divergence from the prior.
    pub fn elbo(&self, theta: &Array1<f64>) -> f64 {
        let d = self.layout.dim;
        let mu = theta.slice(ndarray::s![..d]);
        let r = self.layout.scale(theta);
        // Column s of z is μ + Rεₛ; of margins, every example's yₙxₙ·zₛ.
        let z = r.dot(&self.eps_t) + mu.insert_axis(Axis(1));
        let margins = self.signed_x.dot(&z);
        let draws = self.eps_t.ncols() as f64;
        let loss: f64 = margins
            .as_slice()
            .expect("a fresh product is contiguous")
            .iter()
            .map(|&m| softplus(-m))
            .sum();
        let log_diag_sum: f64 = theta.slice(ndarray::s![d..2 * d]).sum();
        let kl =
            0.5 * (r.iter().map(|v| v * v).sum::<f64>() + mu.dot(&mu) - d as f64) - log_diag_sum;
        -loss / draws - kl
    }
}

/// `ln(1 + eˣ)`, without overflow for large `x`.
pub fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}
