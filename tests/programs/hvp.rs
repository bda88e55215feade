//! Hessian-vector products (`hvp`) and directional derivatives (`jvp`) of
//! whole `#[differentiable]` programs: an MLP with respect to its
//! parameters, a Tree-LSTM-like recursion over a tree, and a recurrent
//! loop whose length depends on the data, each against central
//! differences of f64 gradients (of values, for `jvp`) along the same
//! direction; and the exact Hessian of a quadratic. A wrong direction is
//! caught (the negative control).

use crate::common::random;
use cps::element::dual;
use cps::prelude::*;
use ndarray::{Array2, ArrayD, IxDyn};

/// The finite-difference step: central differences are accurate to
/// about `h²` times the third derivative, far below the tolerance.
const STEP: f64 = 1e-5;

/// A program whose parameters are given as arrays: runs it on those
/// parameters (of either element type), and returns its value and the
/// gradients of the parameters.
trait Program {
    /// The parameters' values at which the program is differentiated.
    fn parameters(&self) -> Vec<ArrayD<f64>>;
    /// The value and the parameters' gradients, at `parameters`.
    fn run<A: Element>(&self, parameters: Vec<ArrayD<A>>) -> (A, Vec<ArrayD<A>>);
}

/// The gradients of `params` after a backward pass.
fn grads<A: Element>(params: &[Param<A>]) -> Vec<ArrayD<A>> {
    params.iter().map(Param::grad).collect()
}

/// Entrywise `a + scale·b` for lists of arrays.
fn shifted(a: &[ArrayD<f64>], scale: f64, b: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    a.iter().zip(b).map(|(x, v)| x + &(v * scale)).collect()
}

/// The largest difference between two lists of arrays, relative to the
/// largest entry of `expected` (at least 1).
fn relative_error(actual: &[ArrayD<f64>], expected: &[ArrayD<f64>]) -> f64 {
    let scale = expected
        .iter()
        .flat_map(|e| e.iter())
        .fold(1.0f64, |m, &x| m.max(x.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .flat_map(|(a, e)| {
            assert_eq!(a.shape(), e.shape());
            a.iter().zip(e.iter()).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0f64, f64::max);
    worst / scale
}

/// The program's parameters as dual numbers along `direction`.
fn lifted(program: &impl Program, direction: &[ArrayD<f64>]) -> Vec<ArrayD<Dual<f64>>> {
    program
        .parameters()
        .iter()
        .zip(direction)
        .map(|(x, v)| dual::lift(x, v))
        .collect()
}

/// The Hessian-vector product of `program` along `direction`, on dual
/// numbers: value, gradients and products.
fn dual_hvp(
    program: &impl Program,
    direction: &[ArrayD<f64>],
) -> (f64, Vec<ArrayD<f64>>, Vec<ArrayD<f64>>) {
    let (value, gradients) = program.run::<Dual<f64>>(lifted(program, direction));
    let (gradients, products) = gradients.iter().map(dual::split).unzip();
    (value.value, gradients, products)
}

/// The same product by central differences of f64 gradients.
fn differenced_hvp(program: &impl Program, direction: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    let x = program.parameters();
    let (_, plus) = program.run::<f64>(shifted(&x, STEP, direction));
    let (_, minus) = program.run::<f64>(shifted(&x, -STEP, direction));
    plus.iter()
        .zip(&minus)
        .map(|(p, m)| (p - m) / (2.0 * STEP))
        .collect()
}

/// A random direction of the parameters' shapes.
fn direction_for(program: &impl Program, seed: u64) -> Vec<ArrayD<f64>> {
    program
        .parameters()
        .iter()
        .enumerate()
        .map(|(i, p)| random(p.shape(), seed + i as u64))
        .collect()
}

/// Asserts that the dual-number product agrees with central differences
/// of gradients (and the dual run's value and gradient with the f64
/// run's), along random directions.
fn assert_hvp(program: &impl Program) {
    let (value, gradients) = program.run::<f64>(program.parameters());
    for seed in [11, 29, 47] {
        let direction = direction_for(program, seed * 100);
        let (dual_value, dual_gradients, products) = dual_hvp(program, &direction);
        assert!((dual_value - value).abs() <= 1e-12 * value.abs().max(1.0));
        let gradient_error = relative_error(&dual_gradients, &gradients);
        assert!(
            gradient_error < 1e-12,
            "gradient differs by {gradient_error:e}"
        );
        let expected = differenced_hvp(program, &direction);
        let error = relative_error(&products, &expected);
        assert!(error < 1e-6, "hvp differs by {error:e} (relative)");
        assert!(
            expected
                .iter()
                .flat_map(|e| e.iter())
                .any(|&x| x.abs() > 1e-3),
            "a Hessian-vector product of zero checks nothing"
        );
    }
}

// --- An MLP, with respect to its parameters -------------------------------

struct Mlp<A: Element> {
    w1: Param<A>,
    b1: Param<A>,
    w2: Param<A>,
    b2: Param<A>,
}

/// Mean squared error of a two-layer tanh network.
#[differentiable]
fn mlp_loss<A: Element>(m: &Mlp<A>, x: &Var<A>, y: &Var<A>) -> Var<A> {
    let hidden = (x.matmul(&m.w1) + &m.b1).tanh();
    let out = hidden.matmul(&m.w2) + &m.b2;
    (out - y).square().mean()
}

/// The MLP on a batch of `rows` inputs (40 reaches the general product
/// kernels, 1 the matrix-vector ones, 5 the few-row ones).
struct MlpProgram {
    rows: usize,
}

impl Program for MlpProgram {
    fn parameters(&self) -> Vec<ArrayD<f64>> {
        vec![
            random(&[6, 9], 1),
            random(&[9], 2),
            random(&[9, 4], 3),
            random(&[4], 4),
        ]
    }

    fn run<A: Element>(&self, parameters: Vec<ArrayD<A>>) -> (A, Vec<ArrayD<A>>) {
        let [w1, b1, w2, b2] = parameters.try_into().expect("four parameters");
        let m = Mlp {
            w1: Param::new(w1),
            b1: Param::new(b1),
            w2: Param::new(w2),
            b2: Param::new(b2),
        };
        let data =
            |shape: &[usize], seed| Var::constant(random(shape, seed).mapv(A::from_f64_lossy));
        let (x, y) = (data(&[self.rows, 6], 5), data(&[self.rows, 4], 6));
        let value = mlp_loss(&m, &x, &y).backward();
        (value, grads(&[m.w1, m.b1, m.w2, m.b2]))
    }
}

#[test]
fn an_mlp_with_respect_to_its_parameters() {
    for rows in [1, 5, 40] {
        assert_hvp(&MlpProgram { rows });
    }
}

// --- A Tree-LSTM-like recursion ------------------------------------------

/// A binary tree with word indices at its leaves.
enum Tree {
    Leaf(usize),
    Node(Box<Tree>, Box<Tree>),
}

/// A reproducible tree of `leaves` leaves, split unevenly.
fn tree(leaves: usize, first_word: usize) -> Tree {
    if leaves == 1 {
        return Tree::Leaf(first_word % 7);
    }
    let left = (leaves / 3).max(1);
    Tree::Node(
        Box::new(tree(left, first_word)),
        Box::new(tree(leaves - left, first_word + left)),
    )
}

struct TreeCell<A: Element> {
    embedding: Param<A>,
    gates: Param<A>,
    out: Param<A>,
}

/// `(h, c)` of a subtree: a leaf's embedding, or a binary LSTM cell of its
/// children's states (input, two forget and output gates, candidate).
#[differentiable]
fn encode<A: Element>(m: &TreeCell<A>, t: &Tree) -> (Var<A>, Var<A>) {
    match t {
        Tree::Leaf(word) => {
            let e = m.embedding.rows(&[*word]).tanh();
            (e.clone(), e)
        }
        Tree::Node(left, right) => {
            let (hl, cl) = encode(m, left);
            let (hr, cr) = encode(m, right);
            let gates = concat(&[&hl, &hr], 1).matmul(&m.gates);
            let parts = gates.chunk(1, 5);
            let c = parts[0].sigmoid() * parts[4].tanh()
                + parts[1].sigmoid() * cl
                + parts[2].sigmoid() * cr;
            let h = parts[3].sigmoid() * c.tanh();
            (h, c)
        }
    }
}

/// The log-probability of class 2 at the root.
#[differentiable]
fn tree_loss<A: Element>(m: &TreeCell<A>, t: &Tree) -> Var<A> {
    let (h, _c) = encode(m, t);
    let scores = h.matmul(&m.out);
    -scores.log_softmax().narrow(1, 2, 1).sum()
}

struct TreeProgram;

impl Program for TreeProgram {
    fn parameters(&self) -> Vec<ArrayD<f64>> {
        vec![random(&[7, 4], 7), random(&[8, 20], 8), random(&[4, 3], 9)]
    }

    fn run<A: Element>(&self, parameters: Vec<ArrayD<A>>) -> (A, Vec<ArrayD<A>>) {
        let [embedding, gates, out] = parameters.try_into().expect("three parameters");
        let m = TreeCell {
            embedding: Param::new(embedding),
            gates: Param::new(gates),
            out: Param::new(out),
        };
        let value = tree_loss(&m, &tree(9, 0)).backward();
        (value, grads(&[m.embedding, m.gates, m.out]))
    }
}

#[test]
fn a_tree_lstm_like_recursion() {
    assert_hvp(&TreeProgram);
}

// --- A loop whose length depends on the data ------------------------------

/// A recurrent cell run until its state's sum passes `limit` (at most 12
/// steps): `h ← tanh(h·W + x_t)`, with a loss on the last state.
#[differentiable]
fn recurrence<A: Element>(w: &Param<A>, xs: &Var<A>, limit: f64) -> Var<A> {
    let mut h = xs.narrow(0, 0, 1).tanh();
    let mut t = 1;
    while t < 12 && h.value().sum().to_f64_lossless() < limit {
        h = (h.matmul(w) + xs.narrow(0, t, 1)).tanh();
        t += 1;
    }
    (h.square().sum() + 1.0).log()
}

struct LoopProgram;

impl Program for LoopProgram {
    fn parameters(&self) -> Vec<ArrayD<f64>> {
        vec![random(&[5, 5], 12) * 0.8]
    }

    fn run<A: Element>(&self, parameters: Vec<ArrayD<A>>) -> (A, Vec<ArrayD<A>>) {
        let [w] = parameters.try_into().expect("one parameter");
        let w = Param::new(w);
        let xs = Var::constant(random(&[12, 5], 13).mapv(A::from_f64_lossy));
        let value = recurrence(&w, &xs, 2.5).backward();
        (value, grads(&[w]))
    }
}

#[test]
fn a_loop_of_data_dependent_length() {
    assert_hvp(&LoopProgram);
}

// --- A quadratic: the exact Hessian ---------------------------------------

/// `½ xᵀQx + bᵀx` for a row `x` (`1 × n`).
#[differentiable]
fn quadratic<A: Element>(x: &Var<A>, q: &Var<A>, b: &Var<A>) -> Var<A> {
    x.matmul(q).matmul(&x.t()).sum() * 0.5 + x.matmul(b).sum()
}

/// A symmetric `n × n` matrix.
fn symmetric(n: usize, seed: u64) -> Array2<f64> {
    let m: Array2<f64> = random(&[n, n], seed)
        .into_dimensionality()
        .expect("a matrix");
    &m + &m.t()
}

#[test]
fn a_quadratic_has_its_exact_hessian() {
    let n = 6;
    let q = symmetric(n, 20);
    let b = random(&[n, 1], 21);
    let x = random(&[1, n], 22);
    let v = random(&[1, n], 23);
    let constants = |q: &Array2<f64>, b: &ArrayD<f64>| {
        (
            Var::constant(q.mapv(Dual::constant).into_dyn()),
            Var::constant(b.mapv(Dual::constant)),
        )
    };
    let result = hvp(
        |[x]: [Var<Dual<f64>>; 1]| {
            let (q, b) = constants(&q, &b);
            lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| quadratic(&x, &q, &b).bind(k))
        },
        [x.clone()],
        [v.clone()],
    );
    let x2: Array2<f64> = x.clone().into_dimensionality().expect("a row");
    let v2: Array2<f64> = v.clone().into_dimensionality().expect("a row");
    let b2: Array2<f64> = b.clone().into_dimensionality().expect("a column");
    // ∇ = Qx + b and Hv = Qv (Q symmetric), as rows.
    let gradient = (q.dot(&x2.t()) + &b2).t().to_owned().into_dyn();
    let product = q.dot(&v2.t()).t().to_owned().into_dyn();
    assert!(relative_error(&result.gradient, std::slice::from_ref(&gradient)) < 1e-14);
    assert!(relative_error(&result.product, &[product]) < 1e-14);
    let value = 0.5 * x2.dot(&q).dot(&x2.t())[[0, 0]] + x2.dot(&b2)[[0, 0]];
    assert!((result.value - value).abs() < 1e-14);

    // The directional derivative is ∇·v, exactly.
    let directional = jvp(
        |[x]: [Var<Dual<f64>>; 1]| {
            let (q, b) = constants(&q, &b);
            lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| quadratic(&x, &q, &b).bind(k))
        },
        [x],
        [v.clone()],
    );
    let expected = (&gradient * &v).sum();
    assert!((directional.tangent.sum() - expected).abs() < 1e-14);
    assert!((directional.output.sum() - value).abs() < 1e-14);
}

// --- jvp on the programs above ----------------------------------------------

/// Asserts that `jvp` of a program's value along a direction of its
/// parameters agrees with a central difference of its f64 values, and
/// returns the derivative.
fn assert_jvp(program: &impl Program, direction: &[ArrayD<f64>]) -> f64 {
    // The value's tangent, from the dual run's forward pass alone.
    let (value, _) = program.run::<Dual<f64>>(lifted(program, direction));
    let x = program.parameters();
    let (plus, _) = program.run::<f64>(shifted(&x, STEP, direction));
    let (minus, _) = program.run::<f64>(shifted(&x, -STEP, direction));
    let expected = (plus - minus) / (2.0 * STEP);
    let error = (value.tangent - expected).abs() / expected.abs().max(1.0);
    assert!(
        error < 1e-8,
        "jvp {} vs {expected} ({error:e})",
        value.tangent
    );
    value.tangent
}

#[test]
fn jvp_of_each_program_agrees_with_differences_of_values() {
    let derivatives = [
        (
            "mlp",
            assert_jvp(
                &MlpProgram { rows: 5 },
                &direction_for(&MlpProgram { rows: 5 }, 300),
            ),
        ),
        (
            "tree",
            assert_jvp(&TreeProgram, &direction_for(&TreeProgram, 400)),
        ),
        (
            "loop",
            assert_jvp(&LoopProgram, &direction_for(&LoopProgram, 500)),
        ),
    ];
    for (name, tangent) in derivatives {
        assert!(
            tangent.abs() > 1e-4,
            "{name}: a zero derivative checks nothing"
        );
    }
}

/// `jvp` on inputs: the derivative of the MLP's output along a direction
/// of its input batch, against differences of the f64 outputs.
#[test]
fn jvp_with_respect_to_inputs() {
    let weights = |seed| random(&[6, 4], seed).mapv(Dual::constant);
    let x = random(&[3, 6], 41);
    let v = random(&[3, 6], 42);
    let result = jvp(
        |[x]: [Var<Dual<f64>>; 1]| {
            let w = Var::constant(weights(40));
            lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| x.matmul(&w).bind(|h| h.tanh().bind(k)))
        },
        [x.clone()],
        [v.clone()],
    );
    let plain = |x: &ArrayD<f64>| {
        let w = random(&[6, 4], 40);
        let x: Array2<f64> = x.clone().into_dimensionality().expect("a matrix");
        let w: Array2<f64> = w.into_dimensionality().expect("a matrix");
        x.dot(&w).mapv(f64::tanh).into_dyn()
    };
    let expected = (plain(&(&x + &(&v * STEP))) - plain(&(&x - &(&v * STEP)))) / (2.0 * STEP);
    assert!(relative_error(&[result.tangent], &[expected]) < 1e-8);
    assert!(relative_error(&[result.output], &[plain(&x)]) < 1e-14);
}

// --- The negative control -------------------------------------------------

/// Differences along one direction do not match the product along
/// another: the comparison of `assert_hvp` can fail.
#[test]
fn a_product_along_another_direction_is_caught() {
    let program = MlpProgram { rows: 5 };
    let (_, _, products) = dual_hvp(&program, &direction_for(&program, 1));
    let other = differenced_hvp(&program, &direction_for(&program, 2));
    assert!(relative_error(&products, &other) > 1e-2);
}

#[test]
#[should_panic(expected = "one-element (scalar) output")]
fn hvp_of_a_vector_output_is_refused() {
    hvp(
        |[x]: [Var<Dual<f64>>; 1]| lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| x.tanh().bind(k)),
        [ArrayD::zeros(IxDyn(&[3]))],
        [ArrayD::zeros(IxDyn(&[3]))],
    );
}
