//! The example's checks: the rate model's gradient against central
//! differences (and a wrong reference that must fail), the matched loss's
//! derivative against its closed form, the angle on known vectors, the
//! microcircuit's updates at the self-predicting fixed point, the
//! low-pass filter on updates, and the Euler step against the exact
//! exponential.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::microcircuit::{
    Changes, Circuit, Constants, Matrix, Rates, TopDown, Weights, euler_step, learn, phi,
};
use crate::rate_model::{Loss, RateModel, angle_degrees};

/// The finite-difference step: central differences are accurate to about
/// `h²` times the third derivative, far below the tolerances.
const STEP: f64 = 1e-5;

/// A small network (6-5-4) with weights in ±1, an input in [0, 1) and a
/// target a unit or so away from the output.
fn problem(seed: u64) -> (Matrix, Matrix, Vec<f64>, Vec<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w1 = Matrix::uniform(5, 6, 1.0, &mut rng);
    let w2 = Matrix::uniform(4, 5, 1.0, &mut rng);
    let x = (0..6).map(|_| rng.random_range(0.0..1.0)).collect();
    let t = (0..4).map(|_| rng.random_range(-2.0..2.0)).collect();
    (w1, w2, x, t)
}

fn loss_value(
    model: &RateModel,
    w1: &Matrix,
    w2: &Matrix,
    x: &[f64],
    t: &[f64],
    loss: Loss,
) -> f64 {
    model.gradient(w1, w2, x, t, loss).0
}

/// The central difference of the loss along every coordinate of `W₁`
/// and `W₂`.
fn differences(
    model: &RateModel,
    w1: &Matrix,
    w2: &Matrix,
    x: &[f64],
    t: &[f64],
    loss: Loss,
) -> (Vec<f64>, Vec<f64>) {
    let along = |which: usize, i: usize| {
        let (mut plus, mut minus) = ((w1.clone(), w2.clone()), (w1.clone(), w2.clone()));
        if which == 1 {
            plus.0.data[i] += STEP;
            minus.0.data[i] -= STEP;
        } else {
            plus.1.data[i] += STEP;
            minus.1.data[i] -= STEP;
        }
        (loss_value(model, &plus.0, &plus.1, x, t, loss)
            - loss_value(model, &minus.0, &minus.1, x, t, loss))
            / (2.0 * STEP)
    };
    (
        (0..w1.data.len()).map(|i| along(1, i)).collect(),
        (0..w2.data.len()).map(|i| along(2, i)).collect(),
    )
}

/// `‖a − b‖∞ / max(1e-3, ‖b‖∞)`.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn rate_model_gradients_match_central_differences() {
    let model = RateModel::new(&Constants::PAPER);
    for seed in [1, 2] {
        let (w1, w2, x, t) = problem(seed);
        for loss in [Loss::Matched, Loss::Squared] {
            let (_, g1, g2) = model.gradient(&w1, &w2, &x, &t, loss);
            let (d1, d2) = differences(&model, &w1, &w2, &x, &t, loss);
            let (e1, e2) = (relative_error(&g1.data, &d1), relative_error(&g2.data, &d2));
            assert!(e1 < 1e-7 && e2 < 1e-7, "{loss:?}: W1 {e1:e}, W2 {e2:e}");
            assert!(
                d1.iter().any(|d| d.abs() > 1e-2),
                "a gradient of zero checks nothing"
            );
        }
        // The negative control: the squared error's gradient is not the
        // matched loss's, and the check must say so.
        let (_, s1, s2) = model.gradient(&w1, &w2, &x, &t, Loss::Squared);
        let (d1, d2) = differences(&model, &w1, &w2, &x, &t, Loss::Matched);
        assert!(relative_error(&s1.data, &d1) > 1e-2);
        assert!(relative_error(&s2.data, &d2) > 1e-2);
    }
}

#[test]
fn matched_loss_has_the_rate_error_as_its_derivative() {
    // ∂L/∂W₂ = −a₂ φ'(y)(t − y) r₁ᵀ with φ' the logistic function: the
    // quadrature inside the differentiable loss must reproduce it.
    let k = Constants::PAPER;
    let model = RateModel::new(&k);
    let (w1, w2, x, t) = problem(3);
    let (value, _, g2) = model.gradient(&w1, &w2, &x, &t, Loss::Matched);
    let mut h = vec![0.0; 5];
    w1.apply(&x, &mut h);
    let r1: Vec<f64> = h.iter().map(|v| phi(k.hidden_attenuation() * v)).collect();
    let mut y = vec![0.0; 4];
    w2.apply(&r1, &mut y);
    y.iter_mut().for_each(|v| *v *= k.output_attenuation());
    let logistic = |u: f64| 1.0 / (1.0 + (-u).exp());
    let mut expected = Matrix::zeros(4, 5);
    let error: Vec<f64> = y
        .iter()
        .zip(&t)
        .map(|(y, t)| -k.output_attenuation() * logistic(*y) * (t - y))
        .collect();
    expected.add_outer(1.0, &error, &r1);
    assert!(relative_error(&g2.data, &expected.data) < 1e-7);
    assert!(value > 0.0, "a divergence is positive away from the target");
}

#[test]
fn angles_of_known_vectors() {
    assert!(angle_degrees(&[1.0, 0.0, 0.0], &[2.5, 0.0, 0.0]).abs() < 1e-6);
    assert!((angle_degrees(&[1.0, 2.0], &[-2.0, 1.0]) - 90.0).abs() < 1e-9);
    assert!((angle_degrees(&[1.0, 1.0], &[-3.0, -3.0]) - 180.0).abs() < 1e-6);
    assert!((angle_degrees(&[1.0, 0.0], &[1.0, 1.0]) - 45.0).abs() < 1e-9);
}

/// A 30-20-10 circuit in the self-predicting state (set by hand, noise
/// off, `B = W₂ᵀ`), settled on an input with `target`; returns the
/// forward weights' changes over the next 50 ms with every pathway
/// plastic, the weights they started from, and the input.
fn changes_at(target_shift: f64) -> (Changes, Weights, Vec<f64>, Vec<f64>) {
    let k = Constants {
        noise: 0.0,
        ..Constants::PAPER
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut weights = Weights::random([30, 20, 10], 1.0, TopDown::Tied, &mut rng);
    weights.make_self_predicting(&k);
    let x: Vec<f64> = (0..30).map(|_| rng.random_range(0.0..1.0)).collect();
    let model = RateModel::new(&k);
    let own = model.predict(
        &weights.w1,
        &weights.w2,
        &Array2::from_shape_vec((30, 1), x.clone()).expect("a column"),
    );
    let target: Vec<f64> = own.iter().map(|y| y + target_shift).collect();
    let mut circuit = Circuit::new(k, TopDown::Tied, weights.clone());
    circuit.settle(&x, Some(&target), 300.0);
    let mut changes = Changes::zeros(&weights);
    circuit.present(
        &x,
        Some(&target),
        50.0,
        &Rates::TARGETS,
        &mut changes,
        &mut rng,
    );
    (changes, weights, x, target)
}

fn largest(m: &Matrix) -> f64 {
    m.data.iter().fold(0.0f64, |a, b| a.max(b.abs()))
}

#[test]
fn updates_vanish_in_the_self_predicting_state_without_error() {
    let (still, _, _, _) = changes_at(0.0);
    assert!(
        largest(&still.w1) < 1e-10 && largest(&still.w2) < 1e-10,
        "ΔW1 {:e}, ΔW2 {:e}",
        largest(&still.w1),
        largest(&still.w2)
    );
    // A nudged output moves both layers, the hidden one through the
    // apical error alone, and close to the gradient's direction.
    let (moved, weights, x, target) = changes_at(0.5);
    assert!(largest(&moved.w1) > 1e-4 && largest(&moved.w2) > 1e-3);
    let model = RateModel::new(&Constants::PAPER);
    let (_, g1, g2) = model.gradient(&weights.w1, &weights.w2, &x, &target, Loss::Matched);
    let descent = |g: &Matrix| g.data.iter().map(|v| -v).collect::<Vec<f64>>();
    let (a1, a2) = (
        angle_degrees(&moved.w1.data, &descent(&g1)),
        angle_degrees(&moved.w2.data, &descent(&g2)),
    );
    assert!(a1 < 10.0 && a2 < 10.0, "angles {a1:.2}° and {a2:.2}°");
}

#[test]
fn euler_step_converges_to_the_exponential_at_first_order() {
    // C du/dt = −g_lk u + g_B (v − u): u(t) = u∞ + (u₀ − u∞) e^{−(g_lk + g_B) t / C}.
    let k = Constants::PAPER;
    let (u0, v, duration) = (-0.7, 2.0, 5.0);
    let g = k.g_lk + k.g_b;
    let settled = k.g_b * v / g;
    let exact = settled + (u0 - settled) * (-g * duration / k.capacitance).exp();
    let error = |dt: f64| {
        let steps = (duration / dt).round() as usize;
        let mut u = u0;
        for _ in 0..steps {
            u = euler_step(u, &[(k.g_lk, 0.0), (k.g_b, v)], dt, k.capacitance);
        }
        (u - exact).abs()
    };
    let (coarse, fine) = (error(k.dt), error(k.dt / 2.0));
    assert!(coarse < 0.01, "error {coarse:e} at dt = {}", k.dt);
    assert!(coarse > 1e-6, "a step this long cannot be exact");
    let order = (coarse / fine).log2();
    assert!((order - 1.0).abs() < 0.1, "order {order:.3}");
}

/// A constant update through the `τ_w` filter: after `t` ms the weight has
/// moved by `η (t − τ_w (1 − e^(−t/τ_w)))` times the update, the filter's
/// step response integrated (to the Euler step's first order), and
/// without the filter by `η t` times it.
#[test]
fn filtered_updates_lag_the_unfiltered_ones_by_tau_w() {
    let (dt, eta, tau_w, steps) = (0.1, 0.01, 30.0, 3000);
    let (post, pre) = ([2.0], [0.5]);
    let run = |filter: f64| {
        let mut w = Matrix::zeros(1, 1);
        let mut filtered = Matrix::zeros(1, 1);
        let mut changes = Matrix::zeros(1, 1);
        for _ in 0..steps {
            learn(
                &mut w,
                &mut filtered,
                Some(&mut changes),
                dt * eta,
                filter,
                &post,
                &pre,
            );
        }
        assert_eq!(w, changes);
        w.data[0]
    };
    let t = dt * steps as f64;
    assert!((run(0.0) - eta * t).abs() < 1e-12);
    let expected = eta * (t - tau_w * (1.0 - (-t / tau_w).exp()));
    let got = run(dt / tau_w);
    assert!(
        (got - expected).abs() < 0.01 * expected,
        "{got} against {expected}"
    );
}

/// A run whose plasticity diverges stops with an error naming the phase
/// and the input, instead of reporting angles of NaN.
#[test]
fn a_diverging_circuit_is_an_error_naming_where() {
    let plan = crate::experiment::Plan {
        sizes: [30, 20, 10],
        constants: Constants {
            tau_w: 30.0,
            ..Constants::PAPER
        },
        presentation: 100.0,
        phase1_patterns: 50,
        phase2_patterns: 5,
        test_patterns: 5,
        test_every: 5,
        weight_scale: 1.0,
        seed: 1,
    };
    let error = crate::experiment::run(
        &plan,
        TopDown::Tied,
        crate::experiment::Interneurons::Learned,
    )
    .expect_err("low-pass filtered updates at 30 ms diverge");
    assert!(
        error.starts_with("the circuit diverged in phase 1 at input ")
            && error.contains("tau_w 30 ms"),
        "{error}"
    );
    let healthy = crate::experiment::Plan {
        constants: Constants::PAPER,
        phase1_patterns: 10,
        ..plan
    };
    assert!(
        crate::experiment::run(
            &healthy,
            TopDown::Tied,
            crate::experiment::Interneurons::Learned
        )
        .is_ok()
    );
}
