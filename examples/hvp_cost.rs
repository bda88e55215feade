//! What a Hessian-vector product costs beside one gradient, on the same
//! program in the same run: an MLP on a batch (matrix products), a
//! Tree-LSTM-like recursion (matrix-vector products and gates, one node at
//! a time), and a chain of small elementwise operations.
//!
//! ```text
//! cargo run --release --example hvp_cost [-- --repeat N] [--only NAME]
//! ```
//!
//! Each program runs its gradient (`.backward()` on `f32` or `f64`) and its
//! product (`hvp` on `Dual<f32>` or `Dual<f64>`) `N` times (default 20),
//! alternating, and keeps the best time of each. Prints one line per
//! program and element type: the two times and their ratio (used by
//! `bench/hvp.sh`).

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cps::element::dual;
use cps::prelude::*;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A reproducible array, entries uniform in [-scale, scale).
fn random<A: Element>(shape: &[usize], scale: f64, seed: u64) -> ArrayD<A> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        A::from_f64_lossy(rng.random_range(-scale..scale))
    })
}

/// A program differentiated with respect to its parameters, built for
/// either element type.
trait Program {
    /// What the line of output calls it.
    fn name(&self) -> &'static str;
    /// The parameters' shapes and scales.
    fn shapes(&self) -> Vec<(Vec<usize>, f64)>;
    /// One forward and backward run on `params`; returns the loss.
    fn run<A: Element>(&self, params: &[Param<A>]) -> A;
}

// --- An MLP on a batch -----------------------------------------------------

/// 784-100-10 with tanh, mean squared error, on a batch of 64.
#[differentiable]
fn mlp<A: Element>(p: &[Param<A>], x: &Var<A>, y: &Var<A>) -> Var<A> {
    let h = (x.matmul(&p[0]) + &p[1]).tanh();
    (h.matmul(&p[2]) + &p[3] - y).square().mean()
}

struct Mlp;

impl Program for Mlp {
    fn name(&self) -> &'static str {
        "mlp 784-100-10, batch 64"
    }
    fn shapes(&self) -> Vec<(Vec<usize>, f64)> {
        vec![
            (vec![784, 100], 0.05),
            (vec![100], 0.1),
            (vec![100, 10], 0.1),
            (vec![10], 0.1),
        ]
    }
    fn run<A: Element>(&self, params: &[Param<A>]) -> A {
        let x = Var::constant(random::<A>(&[64, 784], 1.0, 90));
        let y = Var::constant(random::<A>(&[64, 10], 1.0, 91));
        mlp(params, &x, &y).backward()
    }
}

// --- A Tree-LSTM-like recursion --------------------------------------------

/// A binary tree of word indices.
enum Tree {
    Leaf(usize),
    Node(Box<Tree>, Box<Tree>),
}

fn tree(leaves: usize, word: usize) -> Tree {
    if leaves == 1 {
        return Tree::Leaf(word % 50);
    }
    let left = (leaves * 2 / 5).max(1);
    Tree::Node(
        Box::new(tree(left, word * 7 + 1)),
        Box::new(tree(leaves - left, word * 3 + 2)),
    )
}

/// `(h, c)` of a subtree: an embedding at a leaf, a binary LSTM cell of
/// the children's states at a node.
#[differentiable]
fn encode<A: Element>(p: &[Param<A>], t: &Tree) -> (Var<A>, Var<A>) {
    match t {
        Tree::Leaf(word) => {
            let e = p[0].rows(&[*word]).tanh();
            (e.clone(), e)
        }
        Tree::Node(left, right) => {
            let (hl, cl) = encode(p, left);
            let (hr, cr) = encode(p, right);
            let gates = concat(&[&hl, &hr], 1).matmul(&p[1]) + &p[2];
            let g = gates.chunk(1, 5);
            let c = g[0].sigmoid() * g[4].tanh() + g[1].sigmoid() * cl + g[2].sigmoid() * cr;
            let h = g[3].sigmoid() * c.tanh();
            (h, c)
        }
    }
}

#[differentiable]
fn tree_loss<A: Element>(p: &[Param<A>], t: &Tree) -> Var<A> {
    let (h, _c) = encode(p, t);
    -h.matmul(&p[3]).log_softmax().narrow(1, 2, 1).sum()
}

struct TreeLstm {
    tree: Tree,
}

impl Program for TreeLstm {
    fn name(&self) -> &'static str {
        "tree-lstm d=150, 20 leaves"
    }
    fn shapes(&self) -> Vec<(Vec<usize>, f64)> {
        vec![
            (vec![50, 150], 0.5),
            (vec![300, 750], 0.05),
            (vec![750], 0.1),
            (vec![150, 5], 0.1),
        ]
    }
    fn run<A: Element>(&self, params: &[Param<A>]) -> A {
        tree_loss(params, &self.tree).backward()
    }
}

// --- A chain of small operations -------------------------------------------

/// 2,000 elementwise operations on 8 numbers.
#[differentiable]
fn chain<A: Element>(p: &[Param<A>]) -> Var<A> {
    let mut x = p[0].tanh();
    for _ in 0..500 {
        x = (x * &p[1]).sin() + &p[0];
        x = x.tanh();
    }
    x.sum()
}

struct Chain;

impl Program for Chain {
    fn name(&self) -> &'static str {
        "chain of 2000 ops on 8 numbers"
    }
    fn shapes(&self) -> Vec<(Vec<usize>, f64)> {
        vec![(vec![8], 1.0), (vec![8], 1.0)]
    }
    fn run<A: Element>(&self, params: &[Param<A>]) -> A {
        chain(params).backward()
    }
}

// --- Timing ----------------------------------------------------------------

/// The best of `repeat` runs of the gradient and of the product, run in
/// alternation so that both see the same machine.
fn best_times<A: Element>(program: &impl Program, repeat: usize) -> (Duration, Duration) {
    let shapes = program.shapes();
    let values: Vec<ArrayD<A>> = shapes
        .iter()
        .enumerate()
        .map(|(i, (shape, scale))| random(shape, *scale, i as u64))
        .collect();
    let directions: Vec<ArrayD<A>> = shapes
        .iter()
        .enumerate()
        .map(|(i, (shape, _))| random(shape, 1.0, 100 + i as u64))
        .collect();
    let plain: Vec<Param<A>> = values.iter().cloned().map(Param::new).collect();
    let lifted: Vec<Param<Dual<A>>> = values
        .iter()
        .zip(&directions)
        .map(|(x, v)| Param::new(dual::lift(x, v)))
        .collect();
    let (mut gradient, mut product) = (Duration::MAX, Duration::MAX);
    for _ in 0..repeat {
        plain.iter().for_each(Param::zero_grad);
        let start = Instant::now();
        black_box(program.run(&plain));
        gradient = gradient.min(start.elapsed());

        lifted.iter().for_each(Param::zero_grad);
        let start = Instant::now();
        black_box(program.run(&lifted));
        product = product.min(start.elapsed());
    }
    (gradient, product)
}

fn report<A: Element>(program: &impl Program, element: &str, repeat: usize, only: &str) {
    if !program.name().starts_with(only) {
        return;
    }
    let (gradient, product) = best_times::<A>(program, repeat);
    report!(
        "{:<34} {element:<4} gradient {:>9.3} ms   hvp {:>9.3} ms   ratio {:.2}",
        program.name(),
        gradient.as_secs_f64() * 1e3,
        product.as_secs_f64() * 1e3,
        product.as_secs_f64() / gradient.as_secs_f64()
    );
}

fn main() {
    let mut repeat = 20;
    let mut only = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| {
                        eprintln!("--repeat needs a positive number");
                        std::process::exit(2)
                    })
            }
            "--only" => only = args.next().unwrap_or_default(),
            _ => {
                eprintln!("usage: hvp_cost [--repeat N] [--only NAME]");
                std::process::exit(2)
            }
        }
    }
    report!("# the best of {repeat} runs each; ratio = hvp / gradient");
    let tree_lstm = TreeLstm { tree: tree(20, 0) };
    report::<f64>(&Mlp, "f64", repeat, &only);
    report::<f32>(&Mlp, "f32", repeat, &only);
    report::<f64>(&tree_lstm, "f64", repeat, &only);
    report::<f32>(&tree_lstm, "f32", repeat, &only);
    report::<f64>(&Chain, "f64", repeat, &only);
    report::<f32>(&Chain, "f32", repeat, &only);
}
