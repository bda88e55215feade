//! More of ordinary Rust inside `#[differentiable]`: annotated `let`s,
//! `if let`, `while let`, nested loops with `break`/`continue`, closures
//! passed to iterator adaptors, struct literals, `vec!`, field and index
//! receivers. Gradients are checked against finite differences.

mod common;

use common::{assert_gradients, constant, param};
use cps::prelude::*;

#[derive(Parameters)]
struct Stack {
    layers: Vec<Param<f64>>,
    bias: Param<f64>,
}

struct Summary {
    total: Var<f64>,
    count: usize,
}

#[differentiable]
fn deep(m: &Stack, x: &Var<f64>, skip: Option<usize>) -> Var<f64> {
    let widths: Vec<usize> = m.layers.iter().map(|w| w.shape()[1]).collect();
    let mut h = x.clone();
    let mut hidden: Vec<Var<f64>> = Vec::new();
    for (i, w) in m.layers.iter().enumerate() {
        if let Some(s) = skip {
            if s == i {
                continue;
            }
        }
        h = h.matmul(w).tanh();
        hidden.push(h.clone());
    }
    let mut pending = hidden.clone();
    let mut total = Var::scalar(0.0);
    while let Some(v) = pending.pop() {
        total = total + v.sum();
    }
    let summary = Summary {
        total: total * 0.5,
        count: widths.len(),
    };
    let extra = vec![h.sum(), m.bias.sum()];
    summary.total + &extra[0] * (summary.count as f64) + &extra[1]
}

fn stack(seed: u64) -> Stack {
    Stack {
        layers: vec![
            param(&[3, 3], seed),
            param(&[3, 3], seed + 1),
            param(&[3, 3], seed + 2),
        ],
        bias: param(&[2], seed + 3),
    }
}

#[test]
fn annotated_lets_if_let_while_let_gradients() {
    let x = constant(&[3], 100);
    for skip in [None, Some(0), Some(2)] {
        let mut m = stack(101);
        assert_gradients(&mut m, |m| deep(m, &x, skip).backward());
    }
}

#[differentiable]
fn nested_loops(w: &Param<f64>, n: usize) -> Var<f64> {
    let mut acc = w.sum();
    let mut i = 0;
    while i < n {
        i += 1;
        let mut j = 0;
        loop {
            j += 1;
            if j > i {
                break;
            }
            if (i + j) % 3 == 0 {
                continue;
            }
            acc = acc * 0.9 + w.square().sum() * (j as f64);
        }
    }
    acc
}

#[test]
fn nested_loops_gradients() {
    let mut w = param(&[3], 110);
    assert_gradients(&mut w, |w| nested_loops(w, 4).backward());
}

#[differentiable]
fn shadowing_in_branches(w: &Param<f64>, flag: bool) -> Var<f64> {
    let x = w.tanh();
    let y = if flag {
        let x = x.square();
        x.sum()
    } else {
        let z = {
            let x = &x * 3.0;
            x.sum()
        };
        z
    };
    // `x` here is the outer one again.
    y + x.sum()
}

#[test]
fn block_scoping_is_kept() {
    for flag in [true, false] {
        let mut w = param(&[3], 120);
        assert_gradients(&mut w, |w| shadowing_in_branches(w, flag).backward());
    }
    let w = Param::new(ndarray::array![0.5f64]);
    let t = 0.5f64.tanh();
    let v = shadowing_in_branches(&w, false).eval().item();
    assert!((v - (3.0 * t + t)).abs() < 1e-12);
}
