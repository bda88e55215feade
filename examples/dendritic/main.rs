//! Dendritic cortical microcircuits approximate the backpropagation
//! algorithm (Sacramento, Costa, Bengio, Senn, NeurIPS 2018), reproduced on
//! the paper's teacher-student regression, 30-20-10.
//!
//! ```text
//! cargo run --release --example dendritic                    # about a minute
//! cargo run --release --example dendritic -- --out curves    # and the curves, CSV and SVG
//! ```
//!
//! Pyramidal neurons with basal and apical dendrites and lateral
//! interneurons are simulated in continuous time (`microcircuit.rs` has
//! the equations). Learning is local: each synapse moves its dendrite's
//! prediction of the soma towards what the soma does.
//!
//! - Phase 1, no targets: inputs alone, and only the interneuron circuit
//!   learns (`W_IP`, `W_PI`). The interneurons come to predict the output
//!   neurons and cancel the top-down input on the apical dendrites (the
//!   self-predicting state); the apical potentials' size is the curve.
//! - Phase 2, the teacher's targets nudge the output neurons: the apical
//!   dendrites now carry the output error, sent down by `B`, and every
//!   pathway learns. Each presentation's accumulated change of `W₁` and
//!   `W₂` is compared, by its angle, with the negative gradient of the
//!   steady-state rate model of the same network at the same weights,
//!   input and target, which `cps` computes (`rate_model.rs`: the loss is
//!   the one whose gradient carries the circuit's rate errors; the plain
//!   squared error is reported beside it). The test error is the rate
//!   model's output against the teacher's on fixed inputs; at the end the
//!   simulated circuit, settled without a target, is compared with it.
//!
//! Four runs from the same student, inputs and noise: top-down weights
//! `B = W₂ᵀ` (tied, following `W₂` as it learns) or random and fixed;
//! and interneurons either learned (phase 1, then plastic in phase 2: the
//! microcircuit) or held in the self-predicting state (set by hand before
//! every phase-2 presentation, no phase 1: the assumption under which the
//! paper shows the updates approximate backpropagation, so that the
//! approximation is measured apart from how well the circuit keeps that
//! state while it learns).
//!
//! # Constants
//!
//! The conductances and learning rates are those of the paper's tables
//! as the public reimplementations of the paper carry them; the rest was
//! chosen (marked *chosen*) where no source at hand gave it:
//!
//! | | value | source |
//! |---|---|---|
//! | `C`, `g_lk` | 1, 0.1 | paper's table |
//! | `g_B`, `g_A`, `g_D`, `g_som` | 1.0, 0.8, 1.0, 0.8 | paper's table |
//! | `φ` | `ln(1 + eᵘ)` | the paper's soft rectifier; gain 1, threshold 0 *chosen* |
//! | Euler step | 0.1 ms | paper |
//! | presentation | 100 ms per input | paper |
//! | input and target filter | τ = 3 ms | reimplementation |
//! | noise | white, σ = 0.1 on every soma, `σ√dt` a step | σ from a reimplementation; the discretisation *chosen* |
//! | phase 1 rates | `η_IP` = 0.0002375, `η_PI` = 0.0005, forward 0 | paper's table |
//! | phase 2 rates | `η₁` = 0.0011875, `η₂` = 0.0005, `η_IP` = 0.0011875, `η_PI` = 0.0005 | paper's table |
//! | weights | teacher and student uniform in ±1 (`W₁`, `W₂`, `W_IP`, `W_PI`, random `B`) | *chosen* |
//! | inputs | 30 rates uniform in [0, 1), a fresh input every presentation | *chosen* |
//! | teacher | the rate model with its own random weights; its output potentials are the targets | *chosen* |
//! | weight updates | applied at every step; `--tau-w T` low-pass filters them first, as a reimplementation does (τ_w 30 ms there; here phase 1 then diverges) | *chosen* |
//!
//! The rates are per ms: a presentation moves a weight by `η · 100 ms ·
//! (error × rate)`. With them `η_IP · g_som / (g_lk + g_D + g_som)` equals
//! `η₂`, so that in phase 2 the interneurons learn the target in step with
//! the output layer. `--help` lists the options; the default run shortens
//! neither the step nor the presentation.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod experiment;
mod microcircuit;
mod plot;
mod rate_model;
#[cfg(test)]
mod tests;

use common::command;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use experiment::{Apical, Interneurons, Plan, Run, summarize};
use microcircuit::{Constants, TopDown};

fn main() {
    let options = command::options_or_exit(cli::parse, cli::USAGE);
    command::exit_on_error(run(&options));
}

/// The files `--out DIR` writes.
const FILES: [&str; 5] = [
    "phase1_apical.csv",
    "phase2.csv",
    "apical.svg",
    "test_error.svg",
    "angles.svg",
];

fn run(options: &cli::Options) -> Result<(), String> {
    if let Some(dir) = &options.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("--out {}: cannot make the folder: {e}", dir.display()))?;
        let outputs: Vec<_> = FILES.iter().map(|f| ("--out", dir.join(f))).collect();
        common::outputs::check_writable(&outputs)?;
    }
    let plan = Plan {
        sizes: [30, 20, 10],
        constants: Constants {
            noise: options.noise,
            tau_w: options.tau_w,
            ..Constants::PAPER
        },
        presentation: options.presentation,
        phase1_patterns: options.phase1,
        phase2_patterns: options.phase2,
        test_patterns: options.test,
        test_every: 100,
        weight_scale: 1.0,
        seed: options.seed,
    };
    let k = plan.constants;
    report!(
        "30-20-10 teacher-student microcircuit: dt {} ms, {} ms per input, g_lk {} g_B {} g_A {} \
         g_D {} g_som {}, noise {}, updates {}; phase 1 {} inputs, phase 2 {}",
        k.dt,
        plan.presentation,
        k.g_lk,
        k.g_b,
        k.g_a,
        k.g_d,
        k.g_som,
        k.noise,
        if k.tau_w > 0.0 {
            format!("low-pass filtered (tau_w {} ms)", k.tau_w)
        } else {
            "applied every step".to_string()
        },
        plan.phase1_patterns,
        plan.phase2_patterns
    );
    let (mut runs, mut diverged) = (Vec::new(), Vec::new());
    for interneurons in [Interneurons::Learned, Interneurons::Held] {
        for top_down in [TopDown::Tied, TopDown::Random] {
            let start = Instant::now();
            // A run that diverges is reported, and the others still run.
            match experiment::run(&plan, top_down, interneurons) {
                Ok(result) => {
                    print_run(&result, start.elapsed().as_secs_f64());
                    runs.push(result);
                }
                Err(message) => {
                    let which = format!(
                        "{} top-down weights, {} interneurons",
                        top_down.name(),
                        match interneurons {
                            Interneurons::Learned => "learned",
                            Interneurons::Held => "held",
                        }
                    );
                    report!("\n{which}: {message}");
                    diverged.push(which);
                }
            }
        }
    }
    if !diverged.is_empty() {
        return Err(format!(
            "{} of the 4 runs diverged ({}); no curves written",
            diverged.len(),
            diverged.join("; ")
        ));
    }
    if let Some(dir) = &options.out {
        write_outputs(dir, &runs)?;
        report!("\ncurves (CSV and SVG): {}", dir.display());
    }
    Ok(())
}

/// A run's name in reports and files: `tied`, `random`, `tied_held`,
/// `random_held`.
fn name(run: &Run) -> String {
    match run.interneurons {
        Interneurons::Learned => run.top_down.name().to_string(),
        Interneurons::Held => format!("{}_held", run.top_down.name()),
    }
}

/// A named quantity read off a measurement.
type Measure<T> = (&'static str, fn(&T) -> f64);

/// The mean of the first and last `n` values.
fn ends(values: &[f64], n: usize) -> (f64, f64) {
    let n = n.min(values.len()).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    (mean(&values[..n]), mean(&values[values.len() - n..]))
}

fn print_run(run: &Run, seconds: f64) {
    report!(
        "\ntop-down weights {}, interneurons {} ({seconds:.1} s)",
        run.top_down.name(),
        match run.interneurons {
            Interneurons::Learned => "learned (phase 1) and plastic (phase 2)",
            Interneurons::Held => "held in the self-predicting state",
        }
    );
    if !run.apical.is_empty() {
        let measures: [Measure<Apical>; 2] = [
            ("RMS over units and steps (noise included)", |a| a.rms),
            ("RMS of the presentation's mean", |a| a.mean),
        ];
        for (what, get) in measures {
            let values: Vec<f64> = run.apical.iter().map(get).collect();
            let (first10, last50) = (ends(&values, 10).0, ends(&values, 50).1);
            report!(
                "  phase 1, apical potential, {what}: first input {:.3}, first 10 {first10:.3}, \
                 last 50 {last50:.4} = {:.1}% of the first input, {:.1}% of the first 10",
                values[0],
                100.0 * last50 / values[0],
                100.0 * last50 / first10
            );
        }
    }
    let errors = &run.test_error;
    let (e0, e1) = (errors[0].1, errors[errors.len() - 1].1);
    let curve: Vec<String> = errors
        .iter()
        .step_by((errors.len() / 6).max(1))
        .map(|(p, e)| format!("{p}: {e:.4}"))
        .collect();
    report!(
        "  phase 2: test MSE {e0:.4} -> {e1:.4} ({:.1}% of the start); {}",
        100.0 * e1 / e0,
        curve.join(", ")
    );
    let parts: [Measure<experiment::Angles>; 4] = [
        ("W1, matched loss ", |a| a.hidden),
        ("W2, matched loss ", |a| a.output),
        ("W1, squared error", |a| a.hidden_squared),
        ("W2, squared error", |a| a.output_squared),
    ];
    let n = run.angles.len();
    for (what, get) in parts {
        let all: Vec<f64> = run.angles.iter().map(get).collect();
        let s = summarize(&all);
        let halves = [&all[..n / 2], &all[n / 2..]].map(|h| summarize(h).mean);
        report!(
            "  angle to -gradient, {what}: mean {:5.1}°, median {:5.1}°, 90% {:5.1}°, \
             max {:5.1}°; mean {:.1}° in the first half, {:.1}° in the second",
            s.mean,
            s.median,
            s.p90,
            s.max,
            halves[0],
            halves[1]
        );
    }
    let (gap, size) = run.steady_state_gap;
    report!(
        "  circuit settled without a target vs rate model: largest difference {gap:.2e} \
         (outputs up to {size:.2})"
    );
}

fn write_outputs(dir: &Path, runs: &[Run]) -> Result<(), String> {
    let write = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let learned: Vec<&Run> = runs.iter().filter(|r| !r.apical.is_empty()).collect();
    let mut csv = String::from("input");
    for r in &learned {
        let n = name(r);
        let _ = write!(csv, ",apical_rms_{n},apical_mean_rms_{n}");
    }
    csv.push('\n');
    for i in 0..learned.first().map_or(0, |r| r.apical.len()) {
        let _ = write!(csv, "{}", i + 1);
        for r in &learned {
            let _ = write!(csv, ",{:.6e},{:.6e}", r.apical[i].rms, r.apical[i].mean);
        }
        csv.push('\n');
    }
    write("phase1_apical.csv", csv)?;

    let mut csv = String::from("input");
    for r in runs {
        let n = name(r);
        let _ = write!(
            csv,
            ",angle_w1_{n},angle_w2_{n},angle_w1_squared_{n},angle_w2_squared_{n},test_mse_{n}"
        );
    }
    csv.push('\n');
    for i in 0..=runs[0].angles.len() {
        let _ = write!(csv, "{i}");
        for r in runs {
            let mse = r
                .test_error
                .iter()
                .find(|(p, _)| *p == i)
                .map(|(_, e)| format!("{e:.6e}"))
                .unwrap_or_default();
            match i.checked_sub(1).map(|j| r.angles[j]) {
                Some(a) => {
                    let _ = write!(
                        csv,
                        ",{:.3},{:.3},{:.3},{:.3},{mse}",
                        a.hidden, a.output, a.hidden_squared, a.output_squared
                    );
                }
                None => {
                    let _ = write!(csv, ",,,,,{mse}");
                }
            }
        }
        csv.push('\n');
    }
    write("phase2.csv", csv)?;

    let names: Vec<String> = runs.iter().map(name).collect();
    let mut apical = Vec::new();
    for (r, n) in runs
        .iter()
        .zip(&names)
        .filter(|(r, _)| !r.apical.is_empty())
    {
        let rms: Vec<f64> = r.apical.iter().map(|a| a.rms).collect();
        let mean: Vec<f64> = r.apical.iter().map(|a| a.mean).collect();
        apical.push(plot::Curve {
            label: format!("{n} B: RMS over steps"),
            points: plot::running_mean(&rms, 10),
        });
        apical.push(plot::Curve {
            label: format!("{n} B: RMS of the mean"),
            points: plot::running_mean(&mean, 10),
        });
    }
    let start = learned.first().map_or(1.0, |r| r.apical[0].rms);
    plot::curves(
        &dir.join("apical.svg"),
        "Phase 1: apical potentials (mean over 10 inputs; dashed: 5% of the first input's)",
        "inputs presented (no targets)",
        "RMS apical potential",
        &apical,
        true,
        Some(0.05 * start),
    )?;
    let errors: Vec<plot::Curve> = runs
        .iter()
        .zip(&names)
        .map(|(r, n)| plot::Curve {
            label: n.clone(),
            points: r.test_error.iter().map(|&(p, e)| (p as f64, e)).collect(),
        })
        .collect();
    plot::curves(
        &dir.join("test_error.svg"),
        "Phase 2: test mean squared error",
        "inputs presented with targets",
        "test MSE",
        &errors,
        true,
        None,
    )?;
    let mut angles = Vec::new();
    for (r, n) in runs.iter().zip(&names) {
        let w1: Vec<f64> = r.angles.iter().map(|a| a.hidden).collect();
        let w2: Vec<f64> = r.angles.iter().map(|a| a.output).collect();
        angles.push(plot::Curve {
            label: format!("W1, {n}"),
            points: plot::running_mean(&w1, 50),
        });
        angles.push(plot::Curve {
            label: format!("W2, {n}"),
            points: plot::running_mean(&w2, 50),
        });
    }
    plot::curves(
        &dir.join("angles.svg"),
        "Phase 2: angle between local update and -gradient (mean over 50 inputs; dashed: 20°)",
        "inputs presented with targets",
        "degrees",
        &angles,
        false,
        Some(20.0),
    )
}
