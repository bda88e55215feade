//! One posterior family's comparison: HFSGVI and every first-order run on
//! the same objective, monitor and draws; the best ELBO any of them
//! reaches (ELBO*); and what each needs to come within one nat of it.

use crate::data::{Split, accuracy};
use crate::hfsgvi::{self, Stats};
use crate::model::{Family, Objective};
use crate::monitor::Monitor;
use crate::sgvi::{self, Arm};
use crate::trace::{Reached, Trace};

/// How close to ELBO* counts as converged, in nats.
pub const TOLERANCE: f64 = 1.0;

/// The seed of the monitor's fixed draws, the same for every arm.
const MONITOR_SEED: u64 = 1_000_003;

/// The runs of one family.
pub struct Comparison {
    /// The posterior family.
    pub family: Family,
    /// HFSGVI's run, and what happened inside it.
    pub hf: (Trace, Stats),
    /// Every first-order run: each arm at each of its learning rates.
    pub first_order: Vec<Trace>,
    /// The best monitor ELBO of all runs.
    pub best: f64,
}

/// What the experiment runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Draws per iteration, every arm.
    pub samples: usize,
    /// HFSGVI's iterations.
    pub hf_iterations: usize,
    /// Each first-order run's iterations.
    pub iterations: usize,
    /// The monitor's draws.
    pub eval_draws: usize,
    /// The seed of every arm's draws (so that all arms see the same first
    /// draws: common random numbers in the optimisation too).
    pub seed: u64,
}

/// Runs every arm on `family`, calling `progress` after each run.
pub fn compare(
    family: Family,
    split: &Split,
    plan: Plan,
    mut progress: impl FnMut(&Trace),
) -> Comparison {
    let objective = Objective::new(family, &split.train_x, &split.train_y);
    let monitor = Monitor::new(
        objective.layout().clone(),
        &split.train_x,
        &split.train_y,
        plan.eval_draws,
        MONITOR_SEED,
    );
    let settings = hfsgvi::Settings::new(plan.samples, plan.hf_iterations);
    let hf = hfsgvi::run(&objective, &monitor, settings, plan.seed);
    progress(&hf.0);
    let mut first_order = Vec::new();
    for arm in [Arm::Adam, Arm::Adagrad] {
        for lr in arm.learning_rates() {
            let trace = sgvi::run(
                &objective,
                &monitor,
                arm,
                lr,
                plan.samples,
                plan.iterations,
                plan.seed,
            );
            progress(&trace);
            first_order.push(trace);
        }
    }
    let best = first_order
        .iter()
        .chain([&hf.0])
        .map(Trace::best)
        .fold(f64::NEG_INFINITY, f64::max);
    Comparison {
        family,
        hf,
        first_order,
        best,
    }
}

/// One arm's line of the table.
pub struct Row<'a> {
    /// The run (for a first-order arm, at its best learning rate).
    pub trace: &'a Trace,
    /// When it came within [`TOLERANCE`] of ELBO*, if it did.
    pub reached: Option<Reached>,
    /// Test accuracy of the final posterior mean.
    pub accuracy: f64,
}

impl Comparison {
    /// The target: ELBO* − [`TOLERANCE`].
    pub fn target(&self) -> f64 {
        self.best - TOLERANCE
    }

    /// HFSGVI's row, then each first-order arm's at its best learning
    /// rate: the fewest iterations to the target (then the best ELBO,
    /// when none reaches it).
    pub fn rows<'a>(&'a self, split: &Split) -> Vec<Row<'a>> {
        let row = |trace: &'a Trace| {
            let mean = trace
                .theta
                .slice(ndarray::s![..split.test_x.ncols()])
                .to_owned();
            Row {
                trace,
                reached: trace.reaches(self.target()),
                accuracy: accuracy(&split.test_x, &split.test_y, &mean),
            }
        };
        let mut rows = vec![row(&self.hf.0)];
        for arm in [Arm::Adam, Arm::Adagrad] {
            let best = self
                .first_order
                .iter()
                .filter(|t| t.arm == arm.name())
                .min_by(|a, b| {
                    let key = |t: &Trace| {
                        (
                            t.reaches(self.target())
                                .map_or(usize::MAX, |r| r.iterations),
                            -t.best(),
                        )
                    };
                    key(a).partial_cmp(&key(b)).expect("ELBOs are numbers")
                });
            rows.extend(best.map(row));
        }
        rows
    }
}
