//! More of ordinary Rust inside `#[differentiable]`: annotated `let`s,
//! `if let`, `while let`, nested loops with `break`/`continue`, closures
//! passed to iterator adaptors, struct literals, `vec!`, field and index
//! receivers. Gradients are checked against finite differences.

use crate::common::{assert_gradients, constant, param};
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

#[derive(Parameters)]
struct Cell {
    w: Param<f64>,
    u: Param<f64>,
    b: Param<f64>,
}

/// Long runs of operations, so that some bind points check the stack (one
/// in seventeen along each way through the body): before a branch, in arms
/// of different lengths, after the branch, in a loop and after it.
#[differentiable]
fn long_runs(m: &Cell, x: &Var<f64>, wide: bool, steps: usize) -> Var<f64> {
    let a = x.matmul(&m.w).tanh();
    let b = a.matmul(&m.u) + &m.b;
    let c = (b.sigmoid() * &a + a.clone() * 0.5 - b.tanh()) * 0.9;
    let d = (c.tanh() + &m.b) * c.sigmoid() - a.sigmoid() * 0.3;
    let mut h = if wide {
        let e = d.matmul(&m.u).tanh() * 0.7 + d.sigmoid() * 0.2;
        let f = (e.tanh() - e.sigmoid() * 0.4 + &m.b) * 0.8;
        (f.tanh() + e * 0.1).sigmoid()
    } else {
        d.tanh()
    };
    h = (h.matmul(&m.u) + h.clone() * 0.2 + &m.b).tanh() * 0.95;
    for _ in 0..steps {
        h = (h.matmul(&m.u) * 0.6 + h.sigmoid() * 0.3 + &m.b).tanh();
    }
    let g = (h.sigmoid() * 0.5 + h.tanh() * 0.25 - &m.b * 0.1) * 1.1;
    (g.tanh() * g.sigmoid() + g * 0.3).sum()
}

#[test]
fn long_runs_of_operations_have_finite_difference_gradients() {
    for (wide, steps, seed) in [(true, 3, 1), (false, 0, 2), (true, 0, 3), (false, 5, 4)] {
        let mut m = Cell {
            w: param(&[4, 3], seed),
            u: param(&[3, 3], seed + 10),
            b: param(&[3], seed + 20),
        };
        let x = constant(&[4], seed + 30);
        assert_gradients(&mut m, |m| long_runs(m, &x, wide, steps).backward());
    }
}
