//! A loop that collects its states in a `Vec` (as attention and
//! sequence-to-sequence models do), forward and backward, in nanoseconds
//! per step at two lengths. The state moves from iteration to iteration,
//! so the time per step does not grow with the length; a copy of the `Vec`
//! at every step would make it grow in proportion.
//!
//! ```text
//! cargo run --release --example collected_states -- --short 4000 --long 64000
//! ```

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::time::Instant;

use cps::prelude::*;
use ndarray::array;

#[differentiable]
fn collected(w: &Param<f64>, steps: usize) -> Var<f64> {
    let mut states = Vec::new();
    let mut h = Var::constant(array![0.5f64]);
    for _ in 0..steps {
        h = (h * w).tanh();
        states.push(h.clone());
    }
    let parts: Vec<&Var<f64>> = states.iter().collect();
    concat(&parts, 0).sum()
}

/// The best of `repeat` runs, in nanoseconds per step.
fn ns_per_step(w: &Param<f64>, steps: usize, repeat: usize) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        w.zero_grad();
        let start = Instant::now();
        let loss = collected(w, steps).backward();
        best = best.min(start.elapsed().as_secs_f64());
        assert!(loss.is_finite());
    }
    best * 1e9 / steps as f64
}

fn main() {
    let mut short = 4_000;
    let mut long = 64_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<usize>().ok());
        match (flag.as_str(), value) {
            ("--short", Some(n)) if n > 0 => short = n,
            ("--long", Some(n)) if n > 0 => long = n,
            _ => {
                eprintln!(
                    "error: unexpected argument {flag:?}\nusage: collected_states [--short N] [--long N]"
                );
                std::process::exit(2);
            }
        }
    }
    let w = Param::new(array![0.9f64]);
    let at_short = ns_per_step(&w, short, 9);
    let at_long = ns_per_step(&w, long, 9);
    report!(
        "collected states: {at_short:.0} ns/step at {short} steps, {at_long:.0} ns/step at {long} steps, ratio {:.2}",
        at_long / at_short
    );
}
