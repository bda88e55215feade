//! First-order stochastic Gaussian variational inference: each iteration
//! draws `S` fresh `ε` and hands the gradient of the `S`-draw estimate of
//! the negative ELBO to an optimizer of the library (Adam or Adagrad).

use std::time::Instant;

use cps::optim::{Adagrad, Adam, Optimizer};
use ndarray::Array1;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::model::Objective;
use crate::monitor::{Monitor, draws};
use crate::trace::Trace;

/// A first-order arm: its name and its optimizer at a learning rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// Adam (Kingma & Ba), PyTorch's defaults but the learning rate.
    Adam,
    /// Adagrad (Duchi et al.), PyTorch's defaults but the learning rate.
    Adagrad,
}

impl Arm {
    /// The arm's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Arm::Adam => "Adam-SGVI",
            Arm::Adagrad => "Adagrad-SGVI",
        }
    }

    /// The learning rates swept, a factor of about 3 apart, wide enough
    /// that the best is inside the range.
    pub fn learning_rates(self) -> [f64; 5] {
        match self {
            Arm::Adam => [0.01, 0.03, 0.1, 0.3, 1.0],
            Arm::Adagrad => [0.03, 0.1, 0.3, 1.0, 3.0],
        }
    }

    fn optimizer(self, learning_rate: f64) -> Box<dyn Optimizer<f64>> {
        match self {
            Arm::Adam => Box::new(Adam::new(learning_rate)),
            Arm::Adagrad => Box::new(Adagrad::new(learning_rate)),
        }
    }
}

/// Runs `arm` at `learning_rate` from the prior for `iterations`
/// iterations of `samples` draws; `seed` seeds the draws.
pub fn run(
    objective: &Objective,
    monitor: &Monitor,
    arm: Arm,
    learning_rate: f64,
    samples: usize,
    iterations: usize,
    seed: u64,
) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut optimizer = arm.optimizer(learning_rate);
    let mut theta = objective.prior();
    let mut trace = Trace::start(
        arm.name(),
        Some(learning_rate),
        theta.clone(),
        monitor.elbo(&theta),
    );
    for _ in 0..iterations {
        let start = Instant::now();
        let eps = draws(&mut rng, samples, objective.dim());
        let (_, gradient) = objective.gradient(&theta, &eps);
        let mut value = theta.into_dyn();
        optimizer.update(0, &mut value, &mut gradient.into_dyn());
        theta = flat(value);
        let time = start.elapsed();
        trace.push(monitor.elbo(&theta), 1.0, time);
    }
    trace.theta = theta;
    trace
}

fn flat(array: ndarray::ArrayD<f64>) -> Array1<f64> {
    array.into_dimensionality().expect("θ stays a vector")
}
