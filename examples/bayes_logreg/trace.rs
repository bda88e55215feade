//! What one run of an optimizer leaves: the monitor ELBO after every
//! iteration and the work spent to get there.

use std::time::Duration;

use ndarray::Array1;

/// One run's record. Entry `t` of `elbo`, `cost` and `seconds` is after
/// `t` iterations (entry 0: the start, the prior).
#[derive(Clone, Debug)]
pub struct Trace {
    /// The arm, as the table names it.
    pub arm: &'static str,
    /// The learning rate of a first-order arm.
    pub learning_rate: Option<f64>,
    /// The monitor ELBO after each iteration.
    pub elbo: Vec<f64>,
    /// Gradient-equivalents spent by then: a gradient of the `S`-draw
    /// estimate is 1, a Hessian-vector product 2, a forward-only value 1.
    pub cost: Vec<f64>,
    /// The optimizer's seconds spent by then (the monitor's excluded: it
    /// is the experiment's, not the method's).
    pub seconds: Vec<f64>,
    /// The parameters at the end.
    pub theta: Array1<f64>,
}

/// When a run first reached a target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reached {
    /// Iterations run by then.
    pub iterations: usize,
    /// Gradient-equivalents spent by then.
    pub cost: f64,
    /// The optimizer's seconds by then.
    pub seconds: f64,
}

impl Trace {
    /// A record starting at `theta` with monitor ELBO `elbo`.
    pub fn start(
        arm: &'static str,
        learning_rate: Option<f64>,
        theta: Array1<f64>,
        elbo: f64,
    ) -> Self {
        Trace {
            arm,
            learning_rate,
            elbo: vec![elbo],
            cost: vec![0.0],
            seconds: vec![0.0],
            theta,
        }
    }

    /// Records an iteration that cost `cost` gradient-equivalents and
    /// `time`, and ended with monitor ELBO `elbo`.
    pub fn push(&mut self, elbo: f64, cost: f64, time: Duration) {
        let last = self.iterations();
        self.elbo.push(elbo);
        self.cost.push(self.cost[last] + cost);
        self.seconds.push(self.seconds[last] + time.as_secs_f64());
    }

    /// The best monitor ELBO of the run.
    pub fn best(&self) -> f64 {
        self.elbo.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The first iteration whose ELBO reaches `target`.
    pub fn reaches(&self, target: f64) -> Option<Reached> {
        self.elbo
            .iter()
            .position(|&e| e >= target)
            .map(|t| Reached {
                iterations: t,
                cost: self.cost[t],
                seconds: self.seconds[t],
            })
    }

    /// Iterations run.
    pub fn iterations(&self) -> usize {
        self.elbo.len() - 1
    }

    /// The optimizer's seconds over the whole run.
    pub fn total_seconds(&self) -> f64 {
        self.seconds[self.iterations()]
    }

    /// The learning rate as the reports show it (`-` for HFSGVI).
    pub fn learning_rate_label(&self) -> String {
        self.learning_rate.map_or("-".into(), |lr| lr.to_string())
    }
}
