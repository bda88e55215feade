//! The results table of one posterior family: what each arm spends to
//! come within one nat of ELBO* (a first-order arm at its best learning
//! rate), beside HFSGVI; then every learning rate's count. Seconds are the
//! optimizer's own, without the monitor's evaluations.

use crate::data::Split;
use crate::experiment::{Comparison, TOLERANCE};
use crate::sgvi::Arm;
use crate::trace::Reached;

/// Prints the table of `comparison`.
pub fn print(comparison: &Comparison, split: &Split) {
    let (hf, stats) = &comparison.hf;
    report!(
        "\n{} covariance ({} parameters): ELBO* = {:.3}, target ELBO* − {TOLERANCE} = {:.3}",
        comparison.family.name(),
        hf.theta.len(),
        comparison.best,
        comparison.target()
    );
    report!(
        "  {:<13} {:>5} {:>10} {:>7} {:>10} {:>7} {:>9} {:>10} {:>10} {:>8}",
        "arm",
        "lr",
        "iterations",
        "× HF",
        "grad-equiv",
        "× HF",
        "seconds",
        "final ELBO",
        "best ELBO",
        "test acc"
    );
    let rows = comparison.rows(split);
    let hf_reached = rows[0].reached;
    for row in &rows {
        let n = row.trace.iterations();
        let (iterations, cost, seconds) = match row.reached {
            Some(r) => (
                r.iterations.to_string(),
                format!("{:.0}", r.cost),
                format!("{:.2}", r.seconds),
            ),
            None => (
                format!(">{n}"),
                format!(">{:.0}", row.trace.cost[n]),
                format!(">{:.2}", row.trace.total_seconds()),
            ),
        };
        // A first-order arm's cost as a multiple of HFSGVI's.
        let ratio = |pick: fn(&Reached) -> f64| match (&row.reached, &hf_reached) {
            (Some(this), Some(hf)) if row.trace.learning_rate.is_some() => {
                format!("{:.1}×", pick(this) / pick(hf))
            }
            _ => String::new(),
        };
        report!(
            "  {:<13} {:>5} {:>10} {:>7} {:>10} {:>7} {:>9} {:>10.3} {:>10.3} {:>7.1}%",
            row.trace.arm,
            row.trace.learning_rate_label(),
            iterations,
            ratio(|r| r.iterations as f64),
            cost,
            ratio(|r| r.cost),
            seconds,
            row.trace.elbo[n],
            row.trace.best(),
            100.0 * row.accuracy
        );
    }
    report!(
        "  HFSGVI: {:.1} conjugate-gradient iterations per step; of {} steps, {} rejected, \
         {} stopped at negative curvature",
        stats.cg_iterations as f64 / hf.iterations().max(1) as f64,
        hf.iterations(),
        stats.rejected,
        stats.negative_curvature
    );
    for arm in [Arm::Adam, Arm::Adagrad] {
        let sweep: Vec<String> = comparison
            .first_order
            .iter()
            .filter(|t| t.arm == arm.name())
            .map(|t| {
                let reached = t
                    .reaches(comparison.target())
                    .map_or(format!(">{}", t.iterations()), |r| r.iterations.to_string());
                format!("{} → {reached}", t.learning_rate_label())
            })
            .collect();
        report!(
            "  {} iterations to the target by learning rate: {}",
            arm.name(),
            sweep.join(", ")
        );
    }
}
