//! Second order through every differentiable operation: for each row of
//! the table in `ops/mod.rs`, the Hessian-vector product [`hvp`] computes
//! on `Dual<f64>` is checked against central differences of the `f64`
//! gradient, `(∇f(x + h·v) − ∇f(x − h·v)) / 2h` with `h = 1e-5`.
//!
//! Each case is one function, written once and compiled for `f64` (the
//! reference) and for `Dual<f64>` (the product): the operation under test,
//! followed by `loss = Σ w ⊙ sin(y)` with fixed irregular weights `w`, so
//! that the Hessian is not zero even for a linear operation and every
//! output element has its own weight. Operations of two or three operands
//! are differentiated with respect to all of them together. Shapes and
//! values come from a seeded generator, away from every kink (ReLU at 0,
//! ties of a maximum, clamp bounds) and inside every domain (logarithms,
//! square roots, positive-definite matrices).
//!
//! What "agrees" means, per input `i`:
//! - the product: `‖hvp_i − reference_i‖∞ / max(1, ‖reference_i‖∞) < 1e-6`,
//!   and the reference is not zero (`‖reference_i‖∞ > 1e-6`);
//! - the gradient [`hvp`] returns beside it equals the `f64` gradient of
//!   [`vjp`] to `1e-12` in the same relative measure, and the value the
//!   `f64` value to `1e-12 · max(1, |value|)`.
//!
//! Also here: the matrix products along every kernel path of `gemm` (one
//! row, one column, a few rows, a general product, the second core, stacks
//! of matrices); [`jvp`] on a dozen operations against central differences
//! of the `f64` output; [`Var::black_box`], whose backward step is an
//! estimate, against the exact product of the same function written with
//! operations; exactly at kinks (ties, clamp bounds, equality masks), the
//! dual run's value and gradient equal the `f64` run's; and negative
//! controls showing that the check rejects a product along the wrong
//! direction and an operation whose backward step is right in `f64` but
//! drops the tangent.

use cps_runtime::ops::blackbox::{CentralDifferences, ForwardDifferences};
use cps_runtime::*;
use ndarray::{Array1, Array2, ArrayD, Ix2, IxDyn, NewAxis, arr0, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The largest relative error of a Hessian-vector product (or of a
/// Jacobian-vector product) against central differences.
const TOLERANCE: f64 = 1e-6;

/// The largest relative difference between the value and gradient of the
/// dual run and those of the `f64` run (the same arithmetic, summed in
/// the same or a nearly same order).
const SAME: f64 = 1e-12;

/// The step of the central differences: the truncation error (`h²` times
/// third derivatives of order 1) and the rounding error (`1e-16 / h`
/// times the gradient) are both near `1e-11`.
const STEP: f64 = 1e-5;

/// How far every input stays from a kink or a domain boundary: much
/// larger than `STEP`, so that the differences never cross one.
const MARGIN: f64 = 0.05;

/// Random draws of each family of cases (new shapes and values each).
const TRIALS: u64 = 3;

/// An operation under test, in continuation-passing style: it receives the
/// inputs and hands its output to the continuation.
type Body<A> = Box<dyn Fn(&[Var<A>], &mut dyn FnMut(Var<A>))>;

/// One case: the operation at one point, as `f64` code and as dual code.
struct Case {
    name: String,
    inputs: Vec<ArrayD<f64>>,
    real: Body<f64>,
    dual: Body<Dual<f64>>,
}

/// `case!(name; [inputs]; [captured values]; |v| computation)`: a
/// [`Case`] whose body is compiled twice, with `v: &[Var<f64>]` and with
/// `v: &[Var<Dual<f64>>]`, the computation's output going to the
/// continuation. With `|v, k| body`, the body calls the continuation `k`
/// itself (for a chain of operations). The captured values, which may be
/// left out when there are none, are cloned into each copy.
macro_rules! case {
    (
        $name:expr; [$($input:expr),+ $(,)?]; $([$($capture:ident),*];)?
        |$v:ident, $k:ident| $body:expr
    ) => {
        Case {
            name: String::from($name),
            inputs: vec![$($input),+],
            real: {
                $($(#[allow(clippy::clone_on_copy)] let $capture = $capture.clone();)*)?
                Box::new(move |$v: &[Var<f64>], $k: &mut dyn FnMut(Var<f64>)| $body)
            },
            dual: {
                $($(#[allow(clippy::clone_on_copy)] let $capture = $capture.clone();)*)?
                Box::new(move |$v: &[Var<Dual<f64>>], $k: &mut dyn FnMut(Var<Dual<f64>>)| $body)
            },
        }
    };
    ($name:expr; [$($input:expr),+ $(,)?]; $([$($capture:ident),*];)? |$v:ident| $body:expr) => {
        case!($name; [$($input),+]; [$($($capture),*)?]; |$v, k| ($body).bind(k))
    };
}

/// Runs `$run::<N>($args)` for the number of inputs `$n` (1 to 3).
macro_rules! by_arity {
    ($n:expr, $run:ident($($arg:expr),*)) => {
        match $n {
            1 => $run::<1>($($arg),*),
            2 => $run::<2>($($arg),*),
            3 => $run::<3>($($arg),*),
            n => panic!("a case takes 1 to 3 inputs, got {n}"),
        }
    };
}

/// An `f64` constant in the element type (a dual constant has no tangent).
fn lit<A: Element>(value: f64) -> A {
    A::from_f64_lossy(value)
}

/// A constant tensor of the element type from `f64` values.
fn konst<A: Element>(values: &ArrayD<f64>) -> Var<A> {
    Var::constant(values.mapv(lit::<A>))
}

/// Values uniform in `[low, high)`.
fn uniform(rng: &mut StdRng, shape: &[usize], low: f64, high: f64) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || rng.random_range(low..high))
}

/// Values uniform in `[low, high)`, each at least [`MARGIN`] from every
/// one of `kinks`.
fn avoiding(rng: &mut StdRng, shape: &[usize], low: f64, high: f64, kinks: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        loop {
            let x = rng.random_range(low..high);
            if kinks.iter().all(|k| (x - k).abs() >= MARGIN) {
                break x;
            }
        }
    })
}

/// Random magnitudes in `[low, high)` with random signs: values at least
/// `low` away from 0.
fn signed(rng: &mut StdRng, shape: &[usize], low: f64, high: f64) -> ArrayD<f64> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let magnitude = rng.random_range(low..high);
        if rng.random::<bool>() {
            magnitude
        } else {
            -magnitude
        }
    })
}

/// A random shape of `rank` axes of lengths in `lengths`.
fn dims(rng: &mut StdRng, rank: usize, lengths: std::ops::RangeInclusive<usize>) -> Vec<usize> {
    (0..rank)
        .map(|_| rng.random_range(lengths.clone()))
        .collect()
}

/// A symmetric positive-definite matrix `MᵀM + n·I`, well conditioned.
fn spd(rng: &mut StdRng, n: usize) -> ArrayD<f64> {
    let m = uniform(rng, &[n, n], -1.0, 1.0)
        .into_dimensionality::<Ix2>()
        .expect("a matrix");
    (m.t().dot(&m) + Array2::<f64>::eye(n) * n as f64).into_dyn()
}

/// Indices below `bound`, `count` of them (repeats allowed).
fn indices(rng: &mut StdRng, count: usize, bound: usize) -> Vec<usize> {
    (0..count).map(|_| rng.random_range(0..bound)).collect()
}

/// The fixed weights of the loss for an output of `shape`: an irregular
/// pattern of distinct values of both signs, the same in every run.
fn weights(shape: &[usize]) -> ArrayD<f64> {
    let len: usize = shape.iter().product();
    let values = (0..len)
        .map(|i| ((i as f64 + 1.0) * 0.754_877_666).sin() * 1.5 + 0.1)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), values).expect("one weight per element")
}

/// The scalar function of a case: its operation, then `Σ w ⊙ sin(y)`.
fn weighted_loss<A: Element>(
    body: &Body<A>,
    inputs: Vec<Var<A>>,
) -> impl Computation<Output = Var<A>> + '_ {
    lazy(move |k: &mut dyn FnMut(Var<A>)| {
        body(&inputs, &mut |y: Var<A>| {
            let w = konst::<A>(&weights(y.shape()));
            y.sin().bind(|s| (&s * &w).bind(|p| p.sum().bind(&mut *k)));
        })
    })
}

/// The first `N` arrays of `arrays`, as an array.
fn fixed<const N: usize>(arrays: &[ArrayD<f64>]) -> [ArrayD<f64>; N] {
    std::array::from_fn(|i| arrays[i].clone())
}

/// The value and the gradients of a case's loss at `x`, in `f64` ([`vjp`]).
fn real_gradient(case: &Case, x: &[ArrayD<f64>]) -> (f64, Vec<ArrayD<f64>>) {
    fn run<const N: usize>(case: &Case, x: &[ArrayD<f64>]) -> (f64, Vec<ArrayD<f64>>) {
        let result = vjp(
            |vars: [Var<f64>; N]| weighted_loss(&case.real, vars.into()),
            fixed(x),
            arr0(1.0).into_dyn(),
        );
        (result.output[[]], result.grads.into())
    }
    by_arity!(x.len(), run(case, x))
}

/// What [`hvp`] gives for a case's loss at its point along `v`.
struct Second {
    value: f64,
    gradient: Vec<ArrayD<f64>>,
    product: Vec<ArrayD<f64>>,
}

/// [`hvp`] of a case's loss at its point along the directions `v`.
fn dual_hvp(case: &Case, v: &[ArrayD<f64>]) -> Second {
    fn run<const N: usize>(case: &Case, v: &[ArrayD<f64>]) -> Second {
        let result = hvp(
            |vars: [Var<Dual<f64>>; N]| weighted_loss(&case.dual, vars.into()),
            fixed(&case.inputs),
            fixed(v),
        );
        Second {
            value: result.value,
            gradient: result.gradient.into(),
            product: result.product.into(),
        }
    }
    by_arity!(v.len(), run(case, v))
}

/// The inputs moved by `scale · u`.
fn shifted(x: &[ArrayD<f64>], u: &[ArrayD<f64>], scale: f64) -> Vec<ArrayD<f64>> {
    x.iter().zip(u).map(|(x, u)| x + &(u * scale)).collect()
}

/// The reference product along `u`: central differences of the `f64`
/// gradients, `(∇f(x + h·u) − ∇f(x − h·u)) / 2h`.
fn differenced_product(case: &Case, u: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    let (_, above) = real_gradient(case, &shifted(&case.inputs, u, STEP));
    let (_, below) = real_gradient(case, &shifted(&case.inputs, u, -STEP));
    above
        .iter()
        .zip(&below)
        .map(|(a, b)| (a - b) / (2.0 * STEP))
        .collect()
}

/// The largest `|x|` of an array.
fn max_abs(x: &ArrayD<f64>) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The worst relative error over the inputs: `‖actual_i − reference_i‖∞ /
/// max(1, ‖reference_i‖∞)`. NaN anywhere counts as infinitely wrong.
fn relative_error(actual: &[ArrayD<f64>], reference: &[ArrayD<f64>]) -> f64 {
    assert_eq!(actual.len(), reference.len(), "one array per input");
    actual
        .iter()
        .zip(reference)
        .map(|(a, r)| {
            assert_eq!(a.shape(), r.shape(), "an array of the input's shape");
            let error = max_abs(&(a - r)) / max_abs(r).max(1.0);
            if error.is_nan() { f64::INFINITY } else { error }
        })
        .fold(0.0, f64::max)
}

/// What one check of a case measured.
#[derive(Debug)]
struct Measured {
    /// The product's relative error against central differences.
    product: f64,
    /// The gradient's relative difference from the `f64` gradient.
    gradient: f64,
    /// The value's relative difference from the `f64` value.
    value: f64,
    /// The smallest `‖reference_i‖∞` over the inputs: a product that is
    /// zero everywhere would check nothing.
    smallest_reference: f64,
}

/// Measures [`hvp`] along `v` against central differences along `u` (the
/// same directions, except in a negative control).
fn measure(case: &Case, v: &[ArrayD<f64>], u: &[ArrayD<f64>]) -> Measured {
    let second = dual_hvp(case, v);
    let (value, gradient) = real_gradient(case, &case.inputs);
    let reference = differenced_product(case, u);
    Measured {
        product: relative_error(&second.product, &reference),
        gradient: relative_error(&second.gradient, &gradient),
        value: (second.value - value).abs() / value.abs().max(1.0),
        smallest_reference: reference.iter().map(max_abs).fold(f64::INFINITY, f64::min),
    }
}

/// `Ok` when every measure is within its tolerance, else what is wrong.
fn verdict(name: &str, m: &Measured) -> Result<(), String> {
    let mut wrong = Vec::new();
    if m.product.is_nan() || m.product >= TOLERANCE {
        wrong.push(format!("product error {:.3e}", m.product));
    }
    if m.gradient.is_nan() || m.gradient > SAME {
        wrong.push(format!("gradient differs from f64 by {:.3e}", m.gradient));
    }
    if m.value.is_nan() || m.value > SAME {
        wrong.push(format!("value differs from f64 by {:.3e}", m.value));
    }
    if m.smallest_reference.is_nan() || m.smallest_reference <= 1e-6 {
        wrong.push(format!(
            "reference product is zero for an input ({:.3e}): the case checks nothing",
            m.smallest_reference
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", wrong.join("; ")))
    }
}

/// Random directions, one per input, of the inputs' shapes.
fn directions(rng: &mut StdRng, inputs: &[ArrayD<f64>]) -> Vec<ArrayD<f64>> {
    inputs
        .iter()
        .map(|x| uniform(rng, x.shape(), -1.0, 1.0))
        .collect()
}

/// Checks a case along random directions.
fn check(case: &Case, rng: &mut StdRng) -> Result<Measured, String> {
    let v = directions(rng, &case.inputs);
    let measured = measure(case, &v, &v);
    verdict(&case.name, &measured).map(|()| measured)
}

/// Checks every case a family makes, over [`TRIALS`] draws, and fails
/// with the list of every case that disagrees.
fn check_family(family: fn(&mut StdRng) -> Vec<Case>, seed: u64) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for trial in 0..TRIALS {
        let mut rng = StdRng::seed_from_u64(seed * 1000 + trial);
        for case in family(&mut rng) {
            checked += 1;
            match check(&case, &mut rng) {
                Ok(m) => eprintln!(
                    "{}: product error {:.1e}, gradient {:.1e}, value {:.1e}",
                    case.name, m.product, m.gradient, m.value
                ),
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `+ − × ÷` with broadcasting on either side, scalar operands, negation.
fn arithmetic(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 3, 1..=4);
    let (b, c) = (shape[1], shape[2]);
    let x = uniform(rng, &shape, -1.5, 1.5);
    let column = uniform(rng, &[b, 1], -1.5, 1.5);
    let row = uniform(rng, &[c], -1.5, 1.5);
    let denominator = signed(rng, &[b, 1], 0.5, 1.5);
    let full = signed(rng, &shape, 0.5, 1.5);
    vec![
        case!("add (broadcast right)"; [x.clone(), column.clone()]; |v| &v[0] + &v[1]),
        case!("sub (broadcast left)"; [column, x.clone()]; |v| &v[0] - &v[1]),
        case!("mul (broadcast right)"; [x.clone(), row.clone()]; |v| &v[0] * &v[1]),
        case!("mul (same shape)"; [x.clone(), full.clone()]; |v| &v[0] * &v[1]),
        case!("div (broadcast right)"; [x.clone(), denominator]; |v| &v[0] / &v[1]),
        case!("div (broadcast left)"; [row, full]; |v| &v[0] / &v[1]),
        case!("scalar operands"; [x.clone()]; |v, k| {
            (&v[0] * 2.5).bind(|y| (&y - 1.0).bind(|z| (&z / 3.0).bind(k)))
        }),
        case!("neg (operator)"; [x.clone()]; |v| -&v[0]),
        case!("neg"; [x]; |v| v[0].neg()),
    ]
}

/// `maximum`, `minimum`: same shapes, broadcast, and a scalar, with the
/// two sides never tied.
fn extrema(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 2, 2..=4);
    let x = uniform(rng, &shape, -1.5, 1.5);
    let y = &x + &signed(rng, &shape, 0.1, 1.0);
    let row = uniform(rng, &[1, shape[1]], -1.5, 1.5);
    let above_row = &row + &signed(rng, &shape, 0.1, 1.0);
    let off = avoiding(rng, &shape, -1.5, 1.5, &[0.3]);
    vec![
        case!("maximum"; [x.clone(), y.clone()]; |v| v[0].maximum(&v[1])),
        case!("minimum"; [x, y]; |v| v[0].minimum(&v[1])),
        case!("maximum (broadcast)"; [above_row.clone(), row.clone()]; |v| {
            v[0].maximum(&v[1])
        }),
        case!("minimum (broadcast)"; [row, above_row]; |v| v[0].minimum(&v[1])),
        case!("maximum (scalar)"; [off.clone()]; |v| v[0].maximum(0.3)),
        case!("minimum (scalar)"; [off]; |v| v[0].minimum(0.3)),
    ]
}

/// The elementwise functions of one operand, each inside its domain and
/// away from its kinks; `pow_var` and `where_` take two operands.
fn elementwise(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 2, 2..=5);
    let any = uniform(rng, &shape, -2.0, 2.0);
    let positive = uniform(rng, &shape, 0.2, 2.5);
    let off_zero = avoiding(rng, &shape, -2.0, 2.0, &[0.0]);
    // Where x⁻² is moderate: near 0 its fourth derivative (120/x⁶) makes
    // the central differences themselves inaccurate.
    let far_from_zero = signed(rng, &shape, 0.5, 2.0);
    let off_bounds = avoiding(rng, &shape, -1.0, 1.0, &[-0.5, 0.5]);
    let above_minus_one = uniform(rng, &shape, -0.5, 2.0);
    let exponent = uniform(rng, &shape, -1.5, 2.5);
    let other = uniform(rng, &shape, -2.0, 2.0);
    let mask = ArrayD::from_shape_fn(IxDyn(&shape), |i| ((i[0] + i[1]) % 2) as f64);
    vec![
        case!("exp"; [any.clone()]; |v| v[0].exp()),
        case!("log"; [positive.clone()]; |v| v[0].log()),
        case!("sqrt"; [positive.clone()]; |v| v[0].sqrt()),
        case!("square"; [any.clone()]; |v| v[0].square()),
        case!("powi 3"; [any.clone()]; |v| v[0].powi(3)),
        case!("powi -2"; [far_from_zero]; |v| v[0].powi(-2)),
        case!("abs"; [off_zero.clone()]; |v| v[0].abs()),
        case!("tanh"; [any.clone()]; |v| v[0].tanh()),
        case!("sigmoid"; [any.clone()]; |v| v[0].sigmoid()),
        case!("relu"; [off_zero.clone()]; |v| v[0].relu()),
        case!("sin"; [any.clone()]; |v| v[0].sin()),
        case!("cos"; [any.clone()]; |v| v[0].cos()),
        case!("pow 1.7"; [positive.clone()]; |v| v[0].pow(lit(1.7))),
        case!("pow -0.5"; [positive.clone()]; |v| v[0].pow(lit(-0.5))),
        case!("pow_var"; [positive, exponent]; |v| v[0].pow_var(&v[1])),
        case!("log1p"; [above_minus_one]; |v| v[0].log1p()),
        case!("expm1"; [any.clone()]; |v| v[0].expm1()),
        case!("softplus"; [any.clone()]; |v| v[0].softplus()),
        case!("leaky_relu"; [off_zero.clone()]; |v| v[0].leaky_relu(lit(0.1))),
        case!("elu"; [off_zero]; |v| v[0].elu(lit(1.3))),
        case!("gelu"; [any.clone()]; |v| v[0].gelu()),
        case!("erf"; [any.clone()]; |v| v[0].erf()),
        case!("normal_cdf"; [any.clone()]; |v| v[0].normal_cdf()),
        case!("clamp"; [off_bounds]; |v| v[0].clamp(lit(-0.5), lit(0.5))),
        case!("where_"; [any, other]; [mask]; |v| v[0].where_(&konst(&mask), &v[1])),
    ]
}

/// `softmax`, `log_softmax` (last axis) and `dropout` (a fixed seed, so
/// that every run draws the same mask; and `p = 0`).
fn activations(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 3, 2..=4);
    let x = uniform(rng, &shape, -2.0, 2.0);
    let vector = uniform(rng, &[shape[2] + 2], -2.0, 2.0);
    let seed: u64 = rng.random();
    vec![
        case!("softmax"; [x.clone()]; |v| v[0].softmax()),
        case!("softmax (vector)"; [vector.clone()]; |v| v[0].softmax()),
        case!("log_softmax"; [x.clone()]; |v| v[0].log_softmax()),
        case!("log_softmax (vector)"; [vector]; |v| v[0].log_softmax()),
        case!("dropout 0.3"; [x.clone()]; [seed]; |v| {
            v[0].dropout(lit(0.3), &mut StdRng::seed_from_u64(seed))
        }),
        case!("dropout 0"; [x]; [seed]; |v| {
            v[0].dropout(lit(0.0), &mut StdRng::seed_from_u64(seed))
        }),
    ]
}

/// Every reduction over all elements, along an axis, and along an axis
/// kept with length 1.
fn reductions(rng: &mut StdRng) -> Vec<Case> {
    use NormOrder::{L1, L2};
    let rank = rng.random_range(1..=3);
    let shape = dims(rng, rank, 2..=4);
    let x = uniform(rng, &shape, -2.0, 2.0);
    let off_zero = avoiding(rng, &shape, -2.0, 2.0, &[0.0]);
    // A random axis, and the last one counted from the end.
    let (axis, last) = (rng.random_range(0..rank), -1i32);
    vec![
        case!("sum"; [x.clone()]; |v| v[0].sum()),
        case!("mean"; [x.clone()]; |v| v[0].mean()),
        case!("max"; [x.clone()]; |v| v[0].max()),
        case!("min"; [x.clone()]; |v| v[0].min()),
        case!("logsumexp"; [x.clone()]; |v| v[0].logsumexp()),
        case!("var 0"; [x.clone()]; |v| v[0].var(0)),
        case!("var 1"; [x.clone()]; |v| v[0].var(1)),
        case!("norm L1"; [off_zero.clone()]; |v| v[0].norm(L1)),
        case!("norm L2"; [x.clone()]; |v| v[0].norm(L2)),
        case!("sum_axis"; [x.clone()]; [axis]; |v| v[0].sum_axis(axis)),
        case!("mean_axis"; [x.clone()]; [axis]; |v| v[0].mean_axis(axis)),
        case!("max_axis"; [x.clone()]; [axis]; |v| v[0].max_axis(axis)),
        case!("min_axis"; [x.clone()]; [last]; |v| v[0].min_axis(last)),
        case!("logsumexp_axis"; [x.clone()]; [axis]; |v| v[0].logsumexp_axis(axis)),
        case!("var_axis"; [x.clone()]; [axis]; |v| v[0].var_axis(axis, 1)),
        case!("norm_axis L1"; [off_zero.clone()]; [axis]; |v| v[0].norm_axis(axis, L1)),
        case!("norm_axis L2"; [x.clone()]; [last]; |v| v[0].norm_axis(last, L2)),
        case!("sum_axis_keepdim"; [x.clone()]; [axis]; |v| v[0].sum_axis_keepdim(axis)),
        case!("mean_axis_keepdim"; [x.clone()]; [last]; |v| v[0].mean_axis_keepdim(last)),
        case!("max_axis_keepdim"; [x.clone()]; [axis]; |v| v[0].max_axis_keepdim(axis)),
        case!("min_axis_keepdim"; [x.clone()]; [axis]; |v| v[0].min_axis_keepdim(axis)),
        case!("logsumexp_axis_keepdim"; [x.clone()]; [last]; |v| {
            v[0].logsumexp_axis_keepdim(last)
        }),
        case!("var_axis_keepdim"; [x.clone()]; [axis]; |v| v[0].var_axis_keepdim(axis, 0)),
        case!("norm_axis_keepdim L1"; [off_zero]; [axis]; |v| {
            v[0].norm_axis_keepdim(axis, L1)
        }),
        case!("norm_axis_keepdim L2"; [x]; [axis]; |v| v[0].norm_axis_keepdim(axis, L2)),
    ]
}

/// The operations that move elements: views, joins, parts, slices,
/// padding, and the gathers.
fn shapes(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 3, 2..=4);
    let (a, b, c) = (shape[0], shape[1], shape[2]);
    let x = uniform(rng, &shape, -1.5, 1.5);
    let y = uniform(rng, &shape, -1.5, 1.5);
    let wider = uniform(rng, &[a, b + 1, c], -1.5, 1.5);
    let with_unit = uniform(rng, &[a, 1, c], -1.5, 1.5);
    let matrix = uniform(rng, &[a, c], -1.5, 1.5);
    let vector = uniform(rng, &[c], -1.5, 1.5);
    let table = uniform(rng, &[a + 1, c], -1.5, 1.5);
    let picked = indices(rng, 5, a + 1);
    // Rows of both tables: the first of the first, the last of the second.
    let mut across = indices(rng, 4, 2 * a + 1);
    across[..2].copy_from_slice(&[0, 2 * a]);
    let along_b = indices(rng, 4, b);
    let gather_at = ArrayD::from_shape_simple_fn(IxDyn(&[a, 3, c]), || rng.random_range(0..b));
    let axis = rng.random_range(0..3usize);
    let flat = vec![c, a * b];
    let full = vec![a, b, c];
    let sizes = vec![1, b];
    vec![
        case!("reshape"; [x.clone()]; [flat]; |v| v[0].reshape(&flat)),
        case!("flatten"; [x.clone()]; |v| v[0].flatten(0, 1)),
        case!("flatten (from the end)"; [x.clone()]; |v| v[0].flatten(-2, -1)),
        case!("squeeze"; [with_unit.clone()]; |v| v[0].squeeze(1)),
        case!("squeeze_all"; [with_unit.clone()]; |v| v[0].squeeze_all()),
        case!("unsqueeze"; [x.clone()]; |v| v[0].unsqueeze(-1)),
        case!("permute"; [x.clone()]; |v| v[0].permute(&[2, 0, 1])),
        case!("transpose"; [x.clone()]; |v| v[0].transpose(0, 2)),
        case!("t"; [matrix.clone()]; |v| v[0].t()),
        case!("broadcast_to (new axes)"; [vector]; [full]; |v| v[0].broadcast_to(&full)),
        case!("broadcast_to (unit axis)"; [with_unit]; [full]; |v| v[0].broadcast_to(&full)),
        case!("concat"; [x.clone(), wider.clone()]; |v| concat(&[&v[0], &v[1]], 1)),
        case!("stack"; [x.clone(), y]; [axis]; |v| stack(&[&v[0], &v[1]], axis)),
        case!("split"; [wider.clone()]; [sizes]; |v, k| {
            v[0].split(1, &sizes).bind(|parts| concat(&[&parts[1], &parts[0]], 1).bind(k))
        }),
        case!("chunk"; [x.clone()]; |v, k| {
            v[0].chunk(-1, 2).bind(|parts| {
                let reversed: Vec<&Var<_>> = parts.iter().rev().collect();
                concat(&reversed, 2).bind(k)
            })
        }),
        case!("narrow"; [wider.clone()]; |v| v[0].narrow(1, 1, 2)),
        case!("slice"; [wider]; |v| v[0].slice(-2, 1, 3)),
        case!("slice_with (steps)"; [x.clone()]; |v| v[0].slice_with(s![.., ..;2, ..;-1])),
        case!("slice_with (index, new axis)"; [x.clone()]; |v| {
            v[0].slice_with(s![1, NewAxis, 1..;-2, ..])
        }),
        case!("pad"; [x.clone()]; |v| v[0].pad(&[(1, 0), (0, 2), (1, 1)], lit(0.3))),
        case!("rows"; [table.clone()]; [picked]; |v| v[0].rows(&picked)),
        case!("rows_of"; [table, matrix]; [across]; |v| rows_of(&[&v[0], &v[1]], &across)),
        case!("index_select"; [x.clone()]; [along_b]; |v| v[0].index_select(1, &along_b)),
        case!("gather"; [x]; [gather_at]; |v| v[0].gather(1, &gather_at)),
    ]
}

/// `m × k · k × n` with random values.
fn product_case(rng: &mut StdRng, name: &str, left: &[usize], right: &[usize]) -> Case {
    let (a, b) = (
        uniform(rng, left, -1.0, 1.0),
        uniform(rng, right, -1.0, 1.0),
    );
    let name = format!("matmul {name} {left:?}·{right:?}");
    case!(name.as_str(); [a, b]; |v| v[0].matmul(&v[1]))
}

/// Matrix products along every path of `gemm` (one row, one column, at
/// most eight rows, a general product), vectors, stacks of matrices, and
/// `linear`, `outer`, `dot`.
fn products(rng: &mut StdRng) -> Vec<Case> {
    let (k, n, rows) = (
        rng.random_range(2..=9),
        rng.random_range(2..=9),
        rng.random_range(2..=6),
    );
    let batch = uniform(rng, &[rows, k], -1.0, 1.0);
    let weight = uniform(rng, &[n, k], -1.0, 1.0);
    let input = uniform(rng, &[k], -1.0, 1.0);
    let other = uniform(rng, &[n], -1.0, 1.0);
    let same_length = uniform(rng, &[k], -1.0, 1.0);
    vec![
        product_case(rng, "one row", &[1, k], &[k, n]),
        product_case(rng, "one column", &[n, k], &[k, 1]),
        product_case(rng, "few rows", &[5, 12], &[12, 7]),
        product_case(rng, "eight rows", &[8, 40], &[40, 33]),
        product_case(rng, "general", &[20, 30], &[30, 25]),
        product_case(rng, "vector-matrix", &[k], &[k, n]),
        product_case(rng, "matrix-vector", &[n, k], &[k]),
        product_case(rng, "vector-vector", &[k], &[k]),
        product_case(rng, "stacked", &[2, 1, 3, 4], &[5, 4, 2]),
        product_case(rng, "stack by matrix", &[3, 4, 5], &[5, 2]),
        product_case(rng, "vector by stack", &[4], &[3, 4, 2]),
        case!("linear (batch)"; [batch, weight.clone()]; |v| v[0].linear(&v[1])),
        case!("linear (vector)"; [input.clone(), weight]; |v| v[0].linear(&v[1])),
        case!("outer"; [input.clone(), other]; |v| v[0].outer(&v[1])),
        case!("dot"; [input, same_length]; |v| v[0].dot(&v[1])),
    ]
}

/// Cholesky factors, positive-definite solves and inverses of small,
/// well-conditioned matrices.
fn solves(rng: &mut StdRng) -> Vec<Case> {
    let n = rng.random_range(2..=5);
    let a = spd(rng, n);
    let b = uniform(rng, &[n], -1.0, 1.0);
    let bs = uniform(rng, &[n, 3], -1.0, 1.0);
    let general = uniform(rng, &[n, n], -1.0, 1.0) + Array2::<f64>::eye(n).into_dyn() * 3.0;
    vec![
        case!("cholesky"; [a.clone()]; |v| v[0].cholesky()),
        case!("solve_spd (vector)"; [a.clone(), b]; |v| v[0].solve_spd(&v[1])),
        case!("solve_spd (matrix)"; [a.clone(), bs]; |v| v[0].solve_spd(&v[1])),
        case!("inverse"; [general]; |v| v[0].inverse()),
        case!("inverse (positive definite)"; [a]; |v| v[0].inverse()),
    ]
}

/// Convolutions (with stride, padding, dilation and groups) and pooling.
fn convolutions(rng: &mut StdRng) -> Vec<Case> {
    let batch = rng.random_range(1..=2);
    let length = rng.random_range(7..=10);
    let (height, width) = (rng.random_range(5..=7), rng.random_range(5..=7));
    let sequence = uniform(rng, &[batch, 4, length], -1.0, 1.0);
    let kernel1 = uniform(rng, &[6, 2, 3], -1.0, 1.0);
    let bias6 = uniform(rng, &[6], -1.0, 1.0);
    let image = uniform(rng, &[batch, 3, height, width], -1.0, 1.0);
    let kernel2 = uniform(rng, &[4, 3, 3, 2], -1.0, 1.0);
    let bias4 = uniform(rng, &[4], -1.0, 1.0);
    let image4 = uniform(rng, &[batch, 4, height, width], -1.0, 1.0);
    let kernel_grouped = uniform(rng, &[6, 2, 2, 2], -1.0, 1.0);
    let planes = uniform(rng, &[3, height, width], -1.0, 1.0);
    let conv1 = Conv1dOptions {
        stride: 2,
        padding: 1,
        dilation: 2,
        groups: 2,
    };
    let plain = Conv2dOptions::default();
    let strided = plain.with_stride(2).with_padding(1);
    let grouped = plain.with_groups(2).with_dilation(2);
    let pool = Pool2dOptions::new(2);
    let overlapping = Pool2dOptions::new(3).with_stride(2).with_padding(1);
    vec![
        case!("conv1d"; [sequence, kernel1, bias6.clone()]; [conv1]; |v| {
            v[0].conv1d(&v[1], Some(&v[2]), conv1)
        }),
        case!("conv2d"; [image.clone(), kernel2.clone(), bias4.clone()]; [plain]; |v| {
            v[0].conv2d(&v[1], Some(&v[2]), plain)
        }),
        case!("conv2d (stride 2, padding 1)"; [image.clone(), kernel2, bias4]; [strided]; |v| {
            v[0].conv2d(&v[1], Some(&v[2]), strided)
        }),
        case!("conv2d (groups 2, dilation 2)"; [image4, kernel_grouped, bias6]; [grouped]; |v| {
            v[0].conv2d(&v[1], Some(&v[2]), grouped)
        }),
        case!("max_pool2d"; [image.clone()]; [pool]; |v| v[0].max_pool2d(pool)),
        case!("max_pool2d (overlapping, padded)"; [planes.clone()]; [overlapping]; |v| {
            v[0].max_pool2d(overlapping)
        }),
        case!("avg_pool2d"; [image]; [pool]; |v| v[0].avg_pool2d(pool)),
        case!("avg_pool2d (overlapping, padded)"; [planes]; [overlapping]; |v| {
            v[0].avg_pool2d(overlapping)
        }),
    ]
}

/// Layer and batch normalisation (training and evaluation), with and
/// without the affine map, and channel dropout.
fn normalisations(rng: &mut StdRng) -> Vec<Case> {
    let (n, c) = (rng.random_range(2..=4), rng.random_range(2..=4));
    let rows = uniform(rng, &[n, c + 2], -2.0, 2.0);
    let gain = uniform(rng, &[c + 2], 0.5, 1.5);
    let shift = uniform(rng, &[c + 2], -1.0, 1.0);
    let images = uniform(rng, &[n, c, 3, 2], -2.0, 2.0);
    let plane_gain = uniform(rng, &[3, 2], 0.5, 1.5);
    let channel_gain = uniform(rng, &[c], 0.5, 1.5);
    let channel_shift = uniform(rng, &[c], -1.0, 1.0);
    let mean = Array1::from_shape_simple_fn(c, || rng.random_range(-0.5..0.5));
    let var = Array1::from_shape_simple_fn(c, || rng.random_range(0.5..2.0));
    let seed: u64 = rng.random();
    let eps = 1e-5;
    vec![
        case!("layer_norm"; [rows.clone(), gain, shift]; [eps]; |v| {
            v[0].layer_norm(1, Some(&v[1]), Some(&v[2]), lit(eps))
        }),
        case!("layer_norm (two axes, weight only)"; [images.clone(), plane_gain]; [eps]; |v| {
            v[0].layer_norm(2, Some(&v[1]), None, lit(eps))
        }),
        case!("layer_norm (no affine)"; [rows.clone()]; [eps]; |v| {
            v[0].layer_norm(1, None, None, lit(eps))
        }),
        case!(
            "batch_norm";
            [images.clone(), channel_gain.clone(), channel_shift.clone()];
            [c];
            |v| v[0].batch_norm(Some(&v[1]), Some(&v[2]), &mut BatchNormStats::new(c))
        ),
        case!("batch_norm (matrix, no affine)"; [rows]; |v| {
            v[0].batch_norm(None, None, &mut BatchNormStats::new(v[0].shape()[1]))
        }),
        case!(
            "batch_norm_eval";
            [images.clone(), channel_gain, channel_shift];
            [c, mean, var];
            |v| {
                let mut stats = BatchNormStats::new(c);
                stats.mean = mean.mapv(lit);
                stats.var = var.mapv(lit);
                v[0].batch_norm_eval(Some(&v[1]), Some(&v[2]), &stats)
            }
        ),
        case!("dropout2d"; [images]; [seed]; |v| {
            v[0].dropout2d(lit(0.4), &mut StdRng::seed_from_u64(seed))
        }),
    ]
}

/// Every loss, with respect to the prediction and, where the target is a
/// tensor, to the target too.
fn losses(rng: &mut StdRng) -> Vec<Case> {
    let (n, classes) = (rng.random_range(1..=4), rng.random_range(2..=5));
    let logits = uniform(rng, &[n, classes], -2.0, 2.0);
    let one = uniform(rng, &[classes], -2.0, 2.0);
    let targets = indices(rng, n, classes);
    let target = indices(rng, 1, classes);
    let shape = dims(rng, 2, 1..=4);
    let x = uniform(rng, &shape, -2.0, 2.0);
    let t = uniform(rng, &shape, -2.0, 2.0);
    let p = uniform(rng, &shape, 0.05, 0.95);
    let label = uniform(rng, &shape, 0.0, 1.0);
    let off_zero = avoiding(rng, &shape, -3.0, 3.0, &[0.0]);
    // Predictions whose distance to the target stays off the kinks of the
    // Huber loss (delta 1) and of the smooth L1 loss (beta 0.8).
    let near = &t + &avoiding(rng, &shape, -2.0, 2.0, &[-1.0, 1.0]);
    let smooth = &t + &avoiding(rng, &shape, -2.0, 2.0, &[-0.8, 0.0, 0.8]);
    vec![
        case!("cross_entropy"; [logits.clone()]; [targets]; |v| v[0].cross_entropy(&targets)),
        case!("cross_entropy (vector)"; [one]; [target]; |v| v[0].cross_entropy(&target)),
        case!("cross_entropy_mean"; [logits.clone()]; [targets]; |v| {
            v[0].cross_entropy_mean(&targets)
        }),
        case!("nll_loss"; [logits.clone()]; [targets]; |v| v[0].nll_loss(&targets)),
        case!("nll_loss of log_softmax"; [logits]; [targets]; |v, k| {
            v[0].log_softmax().bind(|l| l.nll_loss(&targets).bind(k))
        }),
        case!("mse"; [x, t.clone()]; |v| v[0].mse(&v[1])),
        case!("binary_cross_entropy"; [p, label.clone()]; |v| {
            v[0].binary_cross_entropy(&v[1])
        }),
        case!("binary_cross_entropy_with_logits"; [off_zero, label]; |v| {
            v[0].binary_cross_entropy_with_logits(&v[1])
        }),
        case!("huber"; [near, t.clone()]; |v| v[0].huber(&v[1], lit(1.0))),
        case!("smooth_l1"; [smooth, t]; |v| v[0].smooth_l1(&v[1], lit(0.8))),
    ]
}

/// The random operations with a gradient: a reparameterised normal sample
/// `mu + sigma ⊙ eps` (`eps` from `randn_like` with a fixed seed) and the
/// log-probability of categorical draws.
fn random(rng: &mut StdRng) -> Vec<Case> {
    let shape = dims(rng, 2, 1..=4);
    let mu = uniform(rng, &shape, -1.0, 1.0);
    let sigma = uniform(rng, &shape, 0.2, 1.5);
    let (rows, classes) = (rng.random_range(1..=3), rng.random_range(2..=5));
    let logits = uniform(rng, &[rows, classes], -1.0, 1.0);
    let probabilities = uniform(rng, &[rows, classes], 0.1, 1.0);
    let drawn = indices(rng, rows, classes);
    let seed: u64 = rng.random();
    vec![
        case!("normal (reparameterised)"; [mu, sigma]; [seed]; |v, k| {
            let eps = v[0].randn_like(&mut StdRng::seed_from_u64(seed));
            (&v[1] * &eps).bind(|s| (&v[0] + &s).bind(k))
        }),
        case!("categorical_log_prob"; [probabilities]; [drawn]; |v| {
            v[0].categorical_log_prob(&drawn)
        }),
        case!("categorical_log_prob of softmax"; [logits]; [drawn]; |v, k| {
            v[0].softmax().bind(|p| p.categorical_log_prob(&drawn).bind(k))
        }),
    ]
}

#[test]
fn arithmetic_and_extrema() {
    check_family(arithmetic, 1);
    check_family(extrema, 2);
}

#[test]
fn elementwise_functions() {
    check_family(elementwise, 3);
}

#[test]
fn softmax_and_dropout() {
    check_family(activations, 4);
}

#[test]
fn reductions_over_all_and_along_axes() {
    check_family(reductions, 5);
}

#[test]
fn shape_operations() {
    check_family(shapes, 6);
}

#[test]
fn matrix_products_along_every_kernel_path() {
    check_family(products, 7);
}

/// Large enough that `gemm` splits its rows with the second core.
#[test]
fn matrix_products_split_with_the_second_core() {
    let _core = SecondCore::start();
    let mut rng = StdRng::seed_from_u64(8);
    for (left, right) in [([100, 90], [90, 110]), ([2, 120], [120, 140])] {
        let case = product_case(&mut rng, "second core", &left, &right);
        check(&case, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn cholesky_solve_and_inverse() {
    check_family(solves, 9);
}

#[test]
fn convolutions_and_pooling() {
    check_family(convolutions, 10);
}

#[test]
fn normalisations_and_channel_dropout() {
    check_family(normalisations, 11);
}

#[test]
fn losses_with_respect_to_predictions_and_targets() {
    check_family(losses, 12);
}

#[test]
fn reparameterised_sampling_and_categorical_log_probabilities() {
    check_family(random, 13);
}

/// The sampling operations have no gradient, but they run on dual numbers
/// and draw what `f64` draws from the same seed.
#[test]
fn random_draws_on_dual_numbers_match_f64() {
    let draw = |seed| StdRng::seed_from_u64(seed);
    let real = Var::<f64>::normal(&[3, 4], 0.5, 2.0, &mut draw(1));
    let dual = Var::<Dual<f64>>::normal(&[3, 4], lit(0.5), lit(2.0), &mut draw(1));
    assert_eq!(dual.array().mapv(|d| d.value), *real.array());
    let real = Var::<f64>::uniform(&[5], -1.0, 3.0, &mut draw(2));
    let dual = Var::<Dual<f64>>::uniform(&[5], lit(-1.0), lit(3.0), &mut draw(2));
    assert_eq!(dual.array().mapv(|d| d.value), *real.array());
    let p = ndarray::array![[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]].into_dyn();
    let real = Var::<f64>::constant(p.clone());
    let dual = konst::<Dual<f64>>(&p);
    assert_eq!(
        dual.categorical(&mut draw(3)),
        real.categorical(&mut draw(3))
    );
    assert_eq!(
        dual.bernoulli(&mut draw(4)).array().mapv(|d| d.value),
        *real.bernoulli(&mut draw(4)).array()
    );
}

/// `y = sin(M x)` computed outside the runtime, with plain ndarray code
/// generic over the element type (so that its forward value carries
/// tangents on dual numbers).
fn mixing<A: Element>(m: &Array2<f64>) -> impl Fn(&ArrayD<A>) -> ArrayD<A> + use<A> {
    let m = m.mapv(lit::<A>);
    move |x| {
        let flat: Array1<A> = x.iter().copied().collect();
        m.dot(&flat).mapv(|v| v.sin()).into_dyn()
    }
}

/// `black_box`'s backward step is a finite-difference estimate of `Jᵀg`,
/// run on dual numbers like any other code, so its product is the
/// derivative of that estimate: close to the true product, as far as the
/// estimate is close to the true gradient. Measured against the exact
/// product of the same function written with `matmul` and `sin`.
#[test]
fn black_box_runs_on_dual_numbers_and_its_product_approximates_the_exact_one() {
    let mut rng = StdRng::seed_from_u64(14);
    let m = uniform(&mut rng, &[5, 4], -1.0, 1.0)
        .into_dimensionality::<Ix2>()
        .expect("a matrix");
    let x = uniform(&mut rng, &[4], -1.0, 1.0);
    let v = vec![uniform(&mut rng, &[4], -1.0, 1.0)];
    let matrix = m.clone().into_dyn();
    let with_operations = case!("sin(M x) with operations"; [x.clone()]; [matrix]; |v, k| {
        konst(&matrix).matmul(&v[0]).bind(|y| y.sin().bind(k))
    });
    check(&with_operations, &mut rng).unwrap_or_else(|e| panic!("{e}"));
    let exact = dual_hvp(&with_operations, &v);
    let central = case!("black_box, central differences"; [x.clone()]; [m]; |v| {
        v[0].black_box(mixing(&m), CentralDifferences::default())
    });
    let forward = case!("black_box, forward differences"; [x]; [m]; |v| {
        v[0].black_box(mixing(&m), ForwardDifferences::default())
    });
    // The estimate's error: about ε^(2/3) for central differences, √ε for
    // forward ones (measured: 1e-11 and 1e-8, for the gradient and the
    // product alike).
    for (case, gradient_bound, product_bound) in [(central, 1e-9, 1e-9), (forward, 1e-6, 1e-6)] {
        let estimated = dual_hvp(&case, &v);
        let gradient_error = relative_error(&estimated.gradient, &exact.gradient);
        let product_error = relative_error(&estimated.product, &exact.product);
        eprintln!(
            "{}: gradient error {gradient_error:.1e}, product error {product_error:.1e}",
            case.name
        );
        assert!((estimated.value - exact.value).abs() < 1e-14);
        assert!(
            gradient_error < gradient_bound,
            "{}: {gradient_error:e}",
            case.name
        );
        assert!(
            product_error < product_bound,
            "{}: {product_error:e}",
            case.name
        );
    }
}

/// [`jvp`] of a case's operation (not the loss) at its point along `v`.
fn dual_jvp(case: &Case, v: &[ArrayD<f64>]) -> ArrayD<f64> {
    fn run<const N: usize>(case: &Case, v: &[ArrayD<f64>]) -> ArrayD<f64> {
        jvp(
            |vars: [Var<Dual<f64>>; N]| {
                let inputs: Vec<_> = vars.into();
                lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| (case.dual)(&inputs, k))
            },
            fixed(&case.inputs),
            fixed(v),
        )
        .tangent
    }
    by_arity!(v.len(), run(case, v))
}

/// The output of a case's operation at `x`, in `f64`.
fn real_output(case: &Case, x: &[ArrayD<f64>]) -> ArrayD<f64> {
    let inputs: Vec<Var<f64>> = x.iter().map(|x| Var::constant(x.clone())).collect();
    let mut output = None;
    (case.real)(&inputs, &mut |y: Var<f64>| output = Some(y.array().clone()));
    output.expect("the operation called its continuation")
}

/// Forward mode on a dozen operations across the families: the tangent
/// against central differences of the output, `(f(x + h·v) − f(x − h·v)) / 2h`.
#[test]
fn jvp_agrees_with_central_differences_of_the_output() {
    let subset = [
        "pow_var",
        "gelu",
        "where_",
        "softmax",
        "logsumexp_axis",
        "norm_axis L2",
        "gather",
        "slice_with (steps)",
        "matmul general [20, 30]·[30, 25]",
        "matmul stacked [2, 1, 3, 4]·[5, 4, 2]",
        "cholesky",
        "inverse",
        "conv2d (groups 2, dilation 2)",
        "max_pool2d (overlapping, padded)",
        "layer_norm",
        "batch_norm",
        "cross_entropy",
        "huber",
    ];
    let families: [fn(&mut StdRng) -> Vec<Case>; 9] = [
        elementwise,
        activations,
        reductions,
        shapes,
        products,
        solves,
        convolutions,
        normalisations,
        losses,
    ];
    let mut rng = StdRng::seed_from_u64(15);
    let mut checked = Vec::new();
    for family in families {
        for case in family(&mut rng) {
            if !subset.contains(&case.name.as_str()) {
                continue;
            }
            let v = directions(&mut rng, &case.inputs);
            let tangent = dual_jvp(&case, &v);
            let above = real_output(&case, &shifted(&case.inputs, &v, STEP));
            let below = real_output(&case, &shifted(&case.inputs, &v, -STEP));
            let reference = (above - below) / (2.0 * STEP);
            let error = relative_error(&[tangent], std::slice::from_ref(&reference));
            eprintln!("jvp {}: error {error:.1e}", case.name);
            assert!(error < TOLERANCE, "jvp {}: error {error:e}", case.name);
            assert!(
                max_abs(&reference) > 1e-6,
                "jvp {}: zero tangent",
                case.name
            );
            checked.push(case.name);
        }
    }
    assert_eq!(
        checked.len(),
        subset.len(),
        "every named case ran: {checked:?}"
    );
}

/// `x³` elementwise as a custom operation whose backward step computes
/// `3x²` through `f64`: exact on `f64` elements, but on dual numbers it
/// drops the tangent of `x`, so the gradient is right and the product
/// misses the operation's own second derivative (`6x·v`).
fn cube_with_detached_backward<A: Element>(
    x: &Var<A>,
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let input = x.clone();
    let value = x.array().mapv(|v| v * v * v);
    Pending::new(
        "cube",
        value,
        x.requires_grad(),
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let slope = input
                .array()
                .mapv(|v| lit::<A>(3.0 * v.to_f64_lossless().powi(2)));
            input.accumulate(&slope * &grad);
        },
    )
}

/// The check rejects a product taken along one direction and compared
/// with differences along another, and an operation whose backward step
/// drops the tangent while its gradient is right.
#[test]
fn the_check_rejects_wrong_products() {
    let mut rng = StdRng::seed_from_u64(16);
    let x = uniform(&mut rng, &[3, 4], -1.0, 1.0);
    let tanh = case!("tanh"; [x.clone()]; |v| v[0].tanh());
    let v = directions(&mut rng, &tanh.inputs);
    let u = directions(&mut rng, &tanh.inputs);
    assert!(verdict("tanh along v", &measure(&tanh, &v, &v)).is_ok());
    let crossed = measure(&tanh, &v, &u);
    let error = verdict("tanh along v against u", &crossed).expect_err("directions differ");
    assert!(error.contains("product error"), "{error}");
    assert!(
        crossed.gradient <= SAME,
        "the gradient does not depend on the direction"
    );

    let cube = case!("cube"; [x.clone()]; |v| v[0].powi(3));
    assert!(check(&cube, &mut rng).is_ok());
    let detached = case!("cube, backward through f64"; [x]; |v| {
        cube_with_detached_backward(&v[0])
    });
    let measured = measure(&detached, &v, &v);
    let error = verdict(&detached.name, &measured).expect_err("the tangent is dropped");
    assert!(
        error.contains("product error") && !error.contains("gradient"),
        "{error}"
    );
    assert!(measured.product > 1e-2, "{measured:?}");
}

/// Exactly at a kink (a tie of a maximum, a clamp bound, an equality
/// mask, a ReLU at 0) the dual run decides as the `f64` run does, whatever
/// the tangents: a dual number compares by its value, so the value and the
/// gradient [`hvp`] returns equal the `f64` ones.
#[test]
fn decisions_at_kinks_are_those_of_the_values() {
    let tied = ndarray::array![[1.0, 1.0, 0.5], [0.2, -0.4, 0.2]].into_dyn();
    let bounds = ndarray::array![[-1.0, 0.3, 1.0]].into_dyn();
    let ones = ndarray::array![[1.0, 0.0, 1.0]].into_dyn();
    let zeros = ndarray::array![[0.0, 0.7, -0.2]].into_dyn();
    let cases = [
        case!("max at a tie"; [tied.clone()]; |v| v[0].max()),
        case!("max_axis at ties"; [tied.clone()]; |v| v[0].max_axis(1)),
        case!("min_axis at a tie"; [tied]; |v| v[0].min_axis(1)),
        case!("clamp at its bounds"; [bounds]; |v| v[0].clamp(lit(-1.0), lit(1.0))),
        case!("eq mask at equality"; [ones]; |v| &v[0].eq(1.0) + &v[0]),
        case!("relu at 0"; [zeros]; |v| v[0].relu()),
    ];
    for case in &cases {
        let direction: Vec<ArrayD<f64>> = case
            .inputs
            .iter()
            .map(|x| x.mapv(|_| 1.0) - x * 2.0)
            .collect();
        let (value, gradient) = real_gradient(case, &case.inputs);
        let dual = dual_hvp(case, &direction);
        assert_eq!(dual.value, value, "{}: value", case.name);
        assert_eq!(dual.gradient, gradient, "{}: gradient", case.name);
    }
}
