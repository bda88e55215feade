//! Overhead of the CPS machinery itself: a long chain of operations on
//! one-element tensors, forward and backward, in nanoseconds per operation.
//! The chain is the one of the PyTorch reference
//! (`scalar_chain_torch.py` in the baselines): `x <- tanh(x * a + b)`,
//! `x <- sigmoid(x * a + b)`, alternating, three operations per step.
//!
//! ```text
//! cargo run --release --example scalar_chain -- --ops 300000
//! ```

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::time::Instant;

use cps::prelude::*;
use ndarray::array;

#[differentiable]
fn chain(a: &Param, b: &Param, steps: usize) -> Var {
    let mut x = Var::constant(array![0.5f32]);
    for i in 0..steps {
        let y = x * a + b;
        x = if i % 2 == 0 { y.tanh() } else { y.sigmoid() };
    }
    x.sum()
}

fn main() {
    let (ops, repeat) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}\nusage: scalar_chain [--ops N] [--repeat N]");
            std::process::exit(2);
        }
    };
    let steps = ops / 3;
    let a = Param::new(array![0.9f32]);
    let b = Param::new(array![0.1f32]);
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        a.zero_grad();
        b.zero_grad();
        let start = Instant::now();
        chain(&a, &b, steps).backward();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let ops = steps * 3;
    report!(
        "cps: {ops} ops, best of {repeat}: {best:.3} s, {:.0} ns/op (forward+backward), grad a={:.6} b={:.6}",
        best / ops as f64 * 1e9,
        a.grad()[0],
        b.grad()[0]
    );
}

/// `--ops N` (default 300,000) and `--repeat N` (default 5), or what is
/// wrong with the arguments.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(usize, usize), String> {
    let (mut ops, mut repeat) = (300_000usize, 5usize);
    while let Some(arg) = args.next() {
        let target = match arg.as_str() {
            "--ops" => &mut ops,
            "--repeat" => &mut repeat,
            other => return Err(format!("unknown argument {other}")),
        };
        let value = args.next().ok_or(format!("{arg} needs a number"))?;
        *target = value
            .parse()
            .map_err(|_| format!("{arg} needs a whole number, not {value:?}"))?;
    }
    Ok((ops, repeat))
}
