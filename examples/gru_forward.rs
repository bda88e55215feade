//! A GRU run forward only (`eval()`) over 1,000, 10,000 and 100,000
//! tokens of generated text: time per step and the process's peak
//! resident memory for each length, which should both stay flat.
//!
//! ```text
//! cargo run --release --example gru_forward [-- --steps 1000,10000,100000] [--hidden 128]
//! ```
//!
//! Peak memory is the kernel's high-water mark of resident memory
//! (`VmHWM` in `/proc/self/status`), reset before each length through
//! `/proc/self/clear_refs`; where those files do not exist (not Linux), the
//! column says so.

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::time::Instant;

use cps::prelude::*;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The vocabulary of the generated text (tinyshakespeare's size).
const VOCAB: usize = 65;

#[derive(Parameters)]
struct Gru {
    embedding: Param<f32>,
    wz: Param<f32>,
    uz: Param<f32>,
    wr: Param<f32>,
    ur: Param<f32>,
    wh: Param<f32>,
    uh: Param<f32>,
}

impl Gru {
    fn new(hidden: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut matrix = |rows: usize, cols: usize| {
            let scale = 1.0 / (rows as f32).sqrt();
            Param::new(Array2::from_shape_fn((rows, cols), |_| {
                rng.random_range(-scale..scale)
            }))
        };
        Gru {
            embedding: matrix(VOCAB, hidden),
            wz: matrix(hidden, hidden),
            uz: matrix(hidden, hidden),
            wr: matrix(hidden, hidden),
            ur: matrix(hidden, hidden),
            wh: matrix(hidden, hidden),
            uh: matrix(hidden, hidden),
        }
    }
}

/// One GRU step on token `token`.
#[differentiable]
fn gru_step(m: &Gru, h: &Var, token: usize) -> Var {
    let x = m.embedding.rows(&[token]);
    let z = (x.matmul(&m.wz) + h.matmul(&m.uz)).sigmoid();
    let r = (x.matmul(&m.wr) + h.matmul(&m.ur)).sigmoid();
    let candidate = (x.matmul(&m.wh) + (&r * h).matmul(&m.uh)).tanh();
    &z * h + (1.0 - &z) * candidate
}

/// The GRU over every token; the sum of the last state.
#[differentiable]
fn gru_over(m: &Gru, tokens: &[usize], hidden: usize) -> Var {
    let mut h = Var::constant(Array2::<f32>::zeros((1, hidden)));
    for &token in tokens {
        h = gru_step(m, &h, token);
    }
    h.sum()
}

/// The resident-memory high-water mark in MiB, if the system reports it.
fn peak_resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the high-water mark to the current resident memory.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn parse_args() -> (Vec<usize>, usize) {
    let mut steps = vec![1_000, 10_000, 100_000];
    let mut hidden = 128;
    let mut args = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("usage: gru_forward [--steps N,N,...] [--hidden H]");
        std::process::exit(2)
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--steps" => {
                steps = args
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(|n| n.trim().parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--hidden" => {
                hidden = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    (steps, hidden)
}

fn main() {
    let (lengths, hidden) = parse_args();
    let model = Gru::new(hidden, 7);
    let mut rng = StdRng::seed_from_u64(11);
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let tokens: Vec<usize> = (0..longest).map(|_| rng.random_range(0..VOCAB)).collect();
    report!("# GRU, hidden {hidden}, forward only (eval); one line per length");
    for &steps in &lengths {
        reset_peak();
        let start = Instant::now();
        let output = gru_over(&model, &tokens[..steps], hidden).eval().item();
        let elapsed = start.elapsed();
        let peak = peak_resident_mib().map_or_else(
            || "peak memory not reported".to_string(),
            |m| format!("peak {m:.1} MiB"),
        );
        report!(
            "steps {steps:>7}   {:>8.0} ns/step   {peak}   (output {output:.4})",
            elapsed.as_nanos() as f64 / steps as f64
        );
    }
}
