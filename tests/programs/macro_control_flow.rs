//! `#[differentiable]` with control flow: `if`/`else`, `match` with
//! bindings and guards, `for`/`while`/`loop`, early `return`, recursion
//! over a user's own tree, mutual recursion. Gradients are checked against
//! finite differences.

use crate::common::{Cell, assert_gradients, cell, constant, param};
use cps::prelude::*;

#[differentiable]
fn branchy(m: &Cell, x: &Var<f64>, mode: u8) -> Var<f64> {
    let h = x.matmul(&m.wx);
    // The condition reads a value computed by differentiable code.
    let g = if h.value().sum() > 0.0 {
        h.tanh()
    } else {
        h.sigmoid() * 2.0
    };
    let g = match mode {
        0 => g + &m.b,
        n if n % 2 == 1 => g.matmul(&m.wh),
        _ => {
            let doubled = g.clone() * 2.0;
            doubled - &m.b
        }
    };
    g.square().sum()
}

#[test]
fn if_and_match_gradients() {
    for (mode, sign) in [(0u8, 1.0), (1, -1.0), (2, 1.0), (3, -1.0)] {
        let x = Var::constant(crate::common::random(&[2, 3], 20 + mode as u64) * sign);
        let mut m = cell(30);
        assert_gradients(&mut m, |m| branchy(m, &x, mode).backward());
    }
}

#[test]
fn both_branches_of_a_value_dependent_if_run() {
    let m = cell(30);
    let positive = Var::constant(ndarray::Array2::from_elem((1, 3), 1.0));
    let negative = Var::constant(ndarray::Array2::from_elem((1, 3), -1.0));
    let wx_sum: f64 = m.wx.value().sum();
    let (up, down) = if wx_sum > 0.0 {
        (positive, negative)
    } else {
        (negative, positive)
    };
    // Same input magnitude, different branch: tanh(h) vs 2 sigmoid(h).
    let a = branchy(&m, &up, 0).eval().item();
    let b = branchy(&m, &down, 0).eval().item();
    assert!((a - b).abs() > 1e-3, "{a} {b}");
}

#[derive(Parameters)]
struct Rnn {
    cell: Cell,
    out: Param<f64>,
}

#[differentiable]
fn rnn(m: &Rnn, xs: &[Var<f64>]) -> Var<f64> {
    let mut h = Var::constant(ndarray::Array1::<f64>::zeros(4));
    let mut outputs = Vec::new();
    for x in xs {
        h = (x.matmul(&m.cell.wx) + h.matmul(&m.cell.wh) + &m.cell.b).tanh();
        outputs.push(h.matmul(&m.out));
    }
    // Vars collected in a loop, used after it.
    let mut total = outputs[0].sum();
    let mut i = 1;
    while i < outputs.len() {
        total = total + outputs[i].sum() * (i as f64);
        i += 1;
    }
    total
}

fn rnn_model(seed: u64) -> Rnn {
    Rnn {
        cell: cell(seed),
        out: param(&[4, 2], seed + 3),
    }
}

#[test]
fn rnn_over_a_sequence_gradients() {
    let xs: Vec<Var<f64>> = (0..5).map(|i| constant(&[3], 40 + i)).collect();
    let mut m = rnn_model(50);
    assert_gradients(&mut m, |m| rnn(m, &xs).backward());
}

#[differentiable]
fn loop_with_break_value(w: &Param<f64>, limit: f64) -> Var<f64> {
    let mut x = w.tanh();
    let mut steps = 0;
    let last = loop {
        steps += 1;
        x = (x * 1.5).tanh() + w;
        if x.value().sum() > limit || steps >= 6 {
            break x.square();
        }
    };
    last.sum() * (steps as f64)
}

#[test]
fn loop_break_with_value_gradients() {
    for limit in [-10.0, 0.5, 100.0] {
        let mut w = param(&[3], 60);
        assert_gradients(&mut w, |w| loop_with_break_value(w, limit).backward());
    }
}

#[differentiable]
fn early_return(w: &Param<f64>, xs: &[f64]) -> Var<f64> {
    let mut acc = w.sum();
    for &x in xs {
        if x < 0.0 {
            return acc * x; // from inside a loop
        }
        if x > 10.0 {
            continue;
        }
        acc = acc * w.sum() + x;
    }
    if acc.value().sum() > 1e9 {
        return acc;
    }
    acc.tanh()
}

#[test]
fn early_return_gradients() {
    for xs in [vec![0.5, 20.0, 0.25], vec![0.5, -2.0, 0.25], vec![]] {
        let mut w = param(&[2], 70);
        assert_gradients(&mut w, |w| early_return(w, &xs).backward());
    }
    // The value of the early exit is the one the loop had reached.
    let w = Param::new(ndarray::array![0.5f64, 0.25]);
    let v = early_return(&w, &[1.0, -2.0]).eval().item();
    let s = 0.75f64;
    assert!((v - (s * s + 1.0) * -2.0).abs() < 1e-12);
}

/// A user's own tree type.
enum Tree {
    Leaf(usize),
    Node(Box<Tree>, Box<Tree>),
}

#[derive(Parameters)]
struct TreeRnn {
    embed: Param<f64>,
    left: Param<f64>,
    right: Param<f64>,
}

#[differentiable]
fn encode(m: &TreeRnn, t: &Tree) -> Var<f64> {
    match t {
        Tree::Leaf(word) => m.embed.rows(&[*word]).tanh(),
        Tree::Node(l, r) => {
            let hl = encode(m, l);
            let hr = encode(m, r);
            (hl.matmul(&m.left) + hr.matmul(&m.right)).tanh()
        }
    }
}

#[differentiable]
fn even(m: &TreeRnn, t: &Tree, depth: usize) -> Var<f64> {
    match t {
        Tree::Leaf(word) => m.embed.rows(&[*word]).sum(),
        Tree::Node(l, r) => odd(m, l, depth + 1) * odd(m, r, depth + 1),
    }
}

#[differentiable]
fn odd(m: &TreeRnn, t: &Tree, depth: usize) -> Var<f64> {
    match t {
        Tree::Leaf(word) => m.embed.rows(&[*word]).tanh().sum(),
        Tree::Node(l, r) => even(m, l, depth + 1) + even(m, r, depth + 1) * (depth as f64),
    }
}

fn sample_tree() -> Tree {
    use Tree::*;
    Node(
        Box::new(Node(Box::new(Leaf(0)), Box::new(Leaf(2)))),
        Box::new(Node(
            Box::new(Leaf(1)),
            Box::new(Node(Box::new(Leaf(2)), Box::new(Leaf(3)))),
        )),
    )
}

fn tree_model() -> TreeRnn {
    TreeRnn {
        embed: param(&[4, 3], 80),
        left: param(&[3, 3], 81),
        right: param(&[3, 3], 82),
    }
}

#[test]
fn recursion_over_a_tree_gradients() {
    let tree = sample_tree();
    let mut m = tree_model();
    assert_gradients(&mut m, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| encode(m, &tree).bind(|h| h.sum().bind(k))).backward()
    });
}

#[test]
fn mutual_recursion_gradients() {
    let tree = sample_tree();
    let mut m = tree_model();
    assert_gradients(&mut m, |m| even(m, &tree, 0).backward());
}

struct Scaled {
    w: Param<f64>,
}

impl Parameters<f64> for Scaled {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<f64>)) {
        f("w", &self.w)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<f64>)) {
        f("w", &mut self.w)
    }
}

#[differentiable]
impl Scaled {
    fn apply(&self, x: &Var<f64>) -> Var<f64> {
        (x * &self.w).tanh()
    }

    fn twice(&self, x: &Var<f64>, times: usize) -> Var<f64> {
        let mut y = x.clone();
        for _ in 0..times {
            y = self.apply(&y);
        }
        y.sum()
    }

    #[plain]
    fn size(&self) -> usize {
        self.w.len()
    }
}

#[test]
fn methods_in_an_impl_block_gradients() {
    let x = constant(&[3], 90);
    let mut m = Scaled { w: param(&[3], 91) };
    assert_eq!(m.size(), 3);
    assert_gradients(&mut m, |m| m.twice(&x, 3).backward());
}

#[differentiable]
fn generic_norm<A: Element>(x: &Var<A>) -> Var<A> {
    (x * x).sum().sqrt()
}

#[test]
fn generic_functions_gradients() {
    let mut w = param(&[5], 92);
    assert_gradients(&mut w, |w| generic_norm(w.var()).backward());
    let v32 = Var::constant(ndarray::array![3.0f32, 4.0]);
    assert_eq!(generic_norm(&v32).eval().item(), 5.0);
}
