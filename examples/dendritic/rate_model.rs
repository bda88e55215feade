//! The steady-state rate model of the same network, written as
//! `#[differentiable]` functions, and the exact gradient `cps` takes of
//! its loss: what the microcircuit's local updates are compared with.
//!
//! Without a target and in the self-predicting state the apical
//! potentials vanish and each soma settles at its dendritic prediction:
//!
//! ```text
//! r₁ = φ(a₁ W₁ x),  a₁ = g_B / (g_lk + g_B + g_A)
//! y  = a₂ W₂ r₁,    a₂ = g_B / (g_lk + g_B)
//! ```
//!
//! (`y` is the output neurons' potential). A target `t` nudges the output
//! somas, `u₂ − y = λ (t − y)` with `λ = g_som / (g_lk + g_B + g_som)`,
//! and the output layer's update is `(φ(u₂) − φ(y)) r₁ᵀ ≈ λ φ'(y)(t − y)
//! r₁ᵀ` for weak nudging; the apical error that reaches the hidden layer
//! is `B` times the same rate error. The loss whose gradient has exactly
//! these errors is
//!
//! ```text
//! L(t, y) = Σᵢ ∫_{yᵢ}^{tᵢ} (φ(s) − φ(yᵢ)) ds,    ∂L/∂yᵢ = −φ'(yᵢ)(tᵢ − yᵢ)
//! ```
//!
//! the Bregman divergence of `Φ` (`Φ' = φ`): zero only at `y = t`,
//! ½ φ'(t) (t − y)² near it. [`Loss::Matched`] computes the integral by
//! 8-point Gauss–Legendre quadrature (exact to about 1e-8 relative for
//! the gaps of this task), inside the differentiable function, so that
//! `cps` differentiates the quadrature itself. [`Loss::Squared`] is the
//! plain `½‖t − y‖²`, reported beside it: its gradient differs from the
//! local updates by the factor `φ'(y)` on each output.

use cps::prelude::*;
use ndarray::{Array1, Array2, ArrayD, Ix2};

use crate::microcircuit::{Constants, Matrix};

/// Which loss of the output potential the gradient is taken of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `Σ ∫_y^t (φ(s) − φ(y)) ds`: the loss the local rules descend.
    Matched,
    /// `½‖t − y‖²`.
    Squared,
}

/// The 8-point Gauss–Legendre rule on [0, 1]: the nodes below ½ with
/// their weights (the rule is symmetric about ½).
const GAUSS_LEGENDRE: [(f64, f64); 4] = [
    (0.019_855_071_751_231_8, 0.050_614_268_145_188_1),
    (0.101_666_761_293_186_6, 0.111_190_517_226_687_2),
    (0.237_233_795_041_835_5, 0.156_853_322_938_943_6),
    (0.408_282_678_752_175_1, 0.181_341_891_689_181),
];

/// The rule's eight (node, weight) pairs.
fn gauss_legendre() -> impl Iterator<Item = (f64, f64)> {
    let low = GAUSS_LEGENDRE.into_iter();
    let high = GAUSS_LEGENDRE.into_iter().rev().map(|(x, w)| (1.0 - x, w));
    low.chain(high)
}

/// The constants of the rate model, as tensors where they are used as
/// such.
pub struct RateModel {
    hidden_attenuation: f64,
    output_attenuation: f64,
    /// The quadrature nodes as a column (8 × 1).
    nodes: Var<f64>,
    /// The quadrature weights (8).
    weights: Var<f64>,
}

impl RateModel {
    pub fn new(k: &Constants) -> Self {
        let nodes = Array2::from_shape_vec((8, 1), gauss_legendre().map(|(x, _)| x).collect())
            .expect("eight nodes");
        let weights = Array1::from_iter(gauss_legendre().map(|(_, w)| w));
        RateModel {
            hidden_attenuation: k.hidden_attenuation(),
            output_attenuation: k.output_attenuation(),
            nodes: Var::constant(nodes),
            weights: Var::constant(weights),
        }
    }

    /// The output potentials for the inputs `x` (one input, or one per
    /// column), forward only.
    pub fn predict(&self, w1: &Matrix, w2: &Matrix, x: &Array2<f64>) -> Array2<f64> {
        let (w1, w2) = (Var::constant(array(w1)), Var::constant(array(w2)));
        let x = Var::constant(x.clone());
        output(self, &w1, &w2, &x)
            .eval()
            .array()
            .clone()
            .into_dimensionality::<Ix2>()
            .expect("a matrix of outputs")
    }

    /// The loss of the input `x` and the target `t`, and its gradients
    /// with respect to `W₁` and `W₂`, taken by `cps`.
    pub fn gradient(
        &self,
        w1: &Matrix,
        w2: &Matrix,
        x: &[f64],
        t: &[f64],
        loss: Loss,
    ) -> (f64, Matrix, Matrix) {
        let (p1, p2) = (Param::new(array(w1)), Param::new(array(w2)));
        let x = Var::constant(Array1::from_vec(x.to_vec()));
        let t = Var::constant(Array1::from_vec(t.to_vec()));
        let value = match loss {
            Loss::Matched => matched_loss(self, p1.var(), p2.var(), &x, &t).backward(),
            Loss::Squared => squared_loss(self, p1.var(), p2.var(), &x, &t).backward(),
        };
        (value, matrix(p1.grad()), matrix(p2.grad()))
    }
}

/// `a₂ W₂ φ(a₁ W₁ x)`.
#[differentiable]
fn output(m: &RateModel, w1: &Var<f64>, w2: &Var<f64>, x: &Var<f64>) -> Var<f64> {
    let hidden = (w1.matmul(x) * m.hidden_attenuation).softplus();
    w2.matmul(&hidden) * m.output_attenuation
}

/// `Σᵢ ∫_{yᵢ}^{tᵢ} (φ(s) − φ(yᵢ)) ds`, by quadrature: the points
/// `y + ξₖ (t − y)` of every node `ξₖ` are the rows of an 8 × outputs
/// matrix.
#[differentiable]
fn matched_loss(
    m: &RateModel,
    w1: &Var<f64>,
    w2: &Var<f64>,
    x: &Var<f64>,
    t: &Var<f64>,
) -> Var<f64> {
    let y = output(m, w1, w2, x);
    let gap = t - &y;
    let points = &m.nodes * &gap + &y;
    let rise = points.softplus() - y.softplus();
    m.weights.matmul(&rise).dot(&gap)
}

/// `½‖t − y‖²`.
#[differentiable]
fn squared_loss(
    m: &RateModel,
    w1: &Var<f64>,
    w2: &Var<f64>,
    x: &Var<f64>,
    t: &Var<f64>,
) -> Var<f64> {
    let y = output(m, w1, w2, x);
    (t - &y).square().sum() * 0.5
}

/// The angle in degrees between `a` and `b` as vectors (90° when either
/// is zero, since a zero vector has no direction to agree with).
pub fn angle_degrees(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = norm(a) * norm(b);
    if scale == 0.0 {
        return 90.0;
    }
    (dot / scale).clamp(-1.0, 1.0).acos().to_degrees()
}

fn array(m: &Matrix) -> Array2<f64> {
    Array2::from_shape_vec((m.rows, m.cols), m.data.clone()).expect("rows × cols entries")
}

fn matrix(a: ArrayD<f64>) -> Matrix {
    let (rows, cols) = (a.shape()[0], a.shape()[1]);
    Matrix {
        rows,
        cols,
        data: a.iter().copied().collect(),
    }
}
