//! A rigid-body system linearised from a few calls: the cart-pole's step
//! (Barto, Sutton and Anderson's equations as in OpenAI Gym, explicit
//! Euler), state (x, ẋ, θ, θ̇) and the force on the cart, 5 inputs and 4
//! outputs, its Jacobian estimated from calls of the step and compared
//! with the one `cps` computes by differentiating the same code.

use cps::ops::blackbox::{
    ColouredDifferences, LeastSquares, MeasurementCount, RandomSensing, SparsityPattern,
};
use cps::prelude::*;
use ndarray::{Array1, Array2, ArrayD, array};

use crate::comparison::Comparison;

/// The physical constants of the cart-pole (Gym's `CartPole-v1`).
pub struct CartPole {
    gravity: f64,
    pole_mass: f64,
    total_mass: f64,
    /// Half the pole's length.
    half_length: f64,
    /// The time step of the explicit Euler integration.
    dt: f64,
}

impl Default for CartPole {
    fn default() -> Self {
        CartPole {
            gravity: 9.8,
            pole_mass: 0.1,
            total_mass: 1.1,
            half_length: 0.5,
            dt: 0.02,
        }
    }
}

/// One step: `s = (x, ẋ, θ, θ̇, force)` to the next `(x, ẋ, θ, θ̇)`.
#[differentiable]
fn step(p: &CartPole, s: &Var<f64>) -> Var<f64> {
    let parts = s.split(0, &[1, 1, 1, 1, 1]);
    let (x, v, theta, omega, force) = (&parts[0], &parts[1], &parts[2], &parts[3], &parts[4]);
    let sin = theta.sin();
    let cos = theta.cos();
    let pole_mass_length = p.pole_mass * p.half_length;
    let temp = (force + &(omega.square() * &sin) * pole_mass_length) / p.total_mass;
    let inertia = (cos.square() * (-p.pole_mass / p.total_mass) + 4.0 / 3.0) * p.half_length;
    let theta_acc = (&sin * p.gravity - &cos * &temp) / &inertia;
    let x_acc = &temp - &(&theta_acc * &cos) * (pole_mass_length / p.total_mass);
    concat(
        &[
            x + &(v * p.dt),
            v + &(&x_acc * p.dt),
            theta + &(omega * p.dt),
            omega + &(&theta_acc * p.dt),
        ],
        0,
    )
}

/// `vᵀ step(s)`, whose gradient is row `k` of the Jacobian when `v = e_k`.
#[differentiable]
fn component(p: &CartPole, s: &Var<f64>, v: &Var<f64>) -> Var<f64> {
    (step(p, s) * v).sum()
}

/// The exact Jacobian (4 × 5), one backward pass of `cps` per output.
fn exact_jacobian(p: &CartPole, s: &ArrayD<f64>) -> Array2<f64> {
    let mut jacobian = Array2::zeros((4, 5));
    for k in 0..4 {
        let input = Param::new(s.clone());
        let mut e = Array1::zeros(4);
        e[k] = 1.0;
        component(p, input.var(), &Var::constant(e)).backward();
        jacobian.row_mut(k).assign(&input.grad());
    }
    jacobian
}

/// Which outputs of an explicit Euler step can move with which inputs:
/// positions with their velocities; velocities with themselves, the
/// angle, the angular velocity and the force (the accelerations do not
/// depend on the cart's position or velocity).
fn pattern() -> SparsityPattern {
    let (x, v, theta, omega, force) = (0, 1, 2, 3, 4);
    SparsityPattern::new(
        4,
        5,
        [
            (0, x),
            (0, v),
            (1, v),
            (1, theta),
            (1, omega),
            (1, force),
            (2, theta),
            (2, omega),
            (3, theta),
            (3, omega),
            (3, force),
        ],
    )
}

/// Runs the experiment and prints its table.
pub fn run(seed: u64) {
    report!(
        "## Rigid body: the cart-pole's step linearised (state 4, action 1: a 4 × 5 Jacobian; calls \
         include the one at the state)"
    );
    let p = CartPole::default();
    let s = array![0.1, -0.3, 0.2, 0.5, 1.5].into_dyn();
    let exact = exact_jacobian(&p, &s);
    // The black box: the same code run forward only, its values alone used.
    let black_box = |s: &ArrayD<f64>| step(&p, &Var::constant(s.clone())).eval().array().clone();
    let mut comparison = Comparison::new(&s, &exact);
    let dense = ColouredDifferences::new(SparsityPattern::dense(4, 5));
    comparison.add("forward differences", "nothing", &black_box, |f, y| {
        dense.jacobian(f, &s, y).to_dense()
    });
    let mut sensing = RandomSensing::least_squares(seed);
    comparison.add(
        "random sensing, least squares",
        "nothing",
        &black_box,
        |f, y| sensing.jacobian(f, &s, y),
    );
    let coloured = ColouredDifferences::new(pattern());
    let colours = coloured.colouring().count();
    comparison.add(
        &format!("colouring (CPR), {colours} colours"),
        "the Euler step's sparsity",
        &black_box,
        |f, y| coloured.jacobian(f, &s, y).to_dense(),
    );
    let mut sparse =
        RandomSensing::new(LeastSquares, seed).with_measurements(MeasurementCount::PerUnknown(1.0));
    comparison.add(
        "random sensing, least squares",
        "the Euler step's sparsity",
        &black_box,
        |f, y| sparse.sparse_jacobian(&pattern(), f, &s, y).to_dense(),
    );
    comparison.print();
    report!(
        "exact Jacobian (cps, one backward pass per output), rows x', ẋ', θ', θ̇' by columns x, ẋ, θ, θ̇, force:"
    );
    for row in exact.rows() {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>10.6}")).collect();
        report!("    {}", cells.join(" "));
    }
    report!("");
}
