//! Iterator chains whose closures compute, in differentiable bodies:
//! `map` then `collect` (with a turbofish, or a typed `let`), `map` then
//! `sum` over `Var`s, `zip` and `enumerate` before the `map`, `fold`, and
//! recursion through `map` over a tree's children. Gradients are checked
//! against finite differences (f64); plain numeric chains keep their plain
//! meaning.

use crate::common::{assert_gradients, constant, param};
use cps::prelude::*;

#[derive(Parameters)]
struct Weights {
    w: Param<f64>,
    v: Param<f64>,
}

fn weights(seed: u64) -> Weights {
    Weights {
        w: param(&[3, 3], seed),
        v: param(&[3], seed + 1),
    }
}

/// `map` then `collect` with a turbofish, then `sum` over `Var`s.
#[differentiable]
fn collected(m: &Weights, xs: &[Var<f64>]) -> Var<f64> {
    let hidden = xs
        .iter()
        .map(|x| x.matmul(&m.w).tanh())
        .collect::<Vec<Var<f64>>>();
    let total = hidden.iter().map(|h| h * &m.v).sum();
    total.square().sum()
}

/// A typed `let` gives `collect` its type; `zip` and `enumerate` before
/// the `map`.
#[differentiable]
fn zipped(m: &Weights, xs: &[Var<f64>], scales: &[f64]) -> Var<f64> {
    let scaled: Vec<Var<f64>> = xs
        .iter()
        .zip(scales)
        .map(|(x, &s)| (x * s).matmul(&m.w))
        .collect();
    let weighted: Var<f64> = scaled
        .iter()
        .enumerate()
        .map(|(i, h)| (h * (i as f64 + 1.0)).sin())
        .sum();
    (weighted * &m.v).sum()
}

/// `fold` with a computing closure.
#[differentiable]
fn folded(m: &Weights, xs: &[Var<f64>]) -> Var<f64> {
    let start = m.v.tanh();
    let last = xs.iter().fold(start, |h, x| (h.matmul(&m.w) + x).tanh());
    last.sum()
}

/// Plain numeric chains, with operators in their closures, keep their
/// plain meaning beside the computing ones.
#[differentiable]
fn plain_numbers(m: &Weights, xs: &[f64]) -> Var<f64> {
    let total: f64 = xs.iter().map(|x| x * 2.0).sum();
    let count = xs.iter().map(|x| x * x).sum::<f64>();
    let folded = xs.iter().fold(0.0, |acc, x| acc + x * 3.0);
    m.v.sum() * (total + count + folded)
}

fn inputs(seed: u64) -> Vec<Var<f64>> {
    (0..4).map(|i| constant(&[3], seed + i)).collect()
}

#[test]
fn map_then_collect_and_sum() {
    let mut m = weights(1);
    let xs = inputs(10);
    assert_gradients(&mut m, |m| collected(m, &xs).backward());
}

#[test]
fn zip_enumerate_and_a_typed_let() {
    let mut m = weights(2);
    let xs = inputs(20);
    let scales = [0.5, -1.0, 2.0, 0.25];
    assert_gradients(&mut m, |m| zipped(m, &xs, &scales).backward());
}

#[test]
fn fold_with_a_computing_closure() {
    let mut m = weights(3);
    let xs = inputs(30);
    assert_gradients(&mut m, |m| folded(m, &xs).backward());
}

#[test]
fn plain_chains_keep_their_meaning() {
    let m = weights(4);
    let xs = [1.0, 2.0, 3.0];
    // total 12, count 14, folded 18.
    let expected = m.v.value().sum() * 44.0;
    let value = plain_numbers(&m, &xs).eval().item();
    assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
}

// --- Recursion through `map` over a tree's children -------------------------

struct Tree {
    word: usize,
    children: Vec<Tree>,
}

/// A node's state: its word's embedding plus the sum of its children's
/// states, squashed.
#[differentiable]
fn state(m: &Weights, tree: &Tree) -> Var<f64> {
    if tree.children.is_empty() {
        return m.w.rows(&[tree.word]).tanh();
    }
    let own = m.w.rows(&[tree.word]);
    let children: Vec<Var<f64>> = tree.children.iter().map(|c| state(m, c)).collect();
    let below = children.iter().map(|c| c * &m.v).sum();
    (own + below).tanh()
}

#[differentiable]
fn tree_loss(m: &Weights, tree: &Tree) -> Var<f64> {
    state(m, tree).square().sum()
}

#[test]
fn recursion_through_map_over_children() {
    let leaf = |word| Tree {
        word,
        children: Vec::new(),
    };
    let tree = Tree {
        word: 0,
        children: vec![
            leaf(1),
            Tree {
                word: 2,
                children: vec![leaf(0), leaf(1), leaf(2)],
            },
        ],
    };
    let mut m = weights(5);
    assert_gradients(&mut m, |m| tree_loss(m, &tree).backward());
}
