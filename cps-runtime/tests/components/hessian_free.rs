//! Truncated conjugate gradients and the Hessian-free step: a random
//! positive definite system solved to 1e-10 in at most n iterations, the
//! iteration cap obeyed, negative curvature found on an indefinite matrix
//! (and not on a definite one: the negative control), the quadratic
//! model's value tracked exactly, a Newton step reaching a quadratic's
//! minimiser at once, and the Levenberg–Marquardt rule moving the damping
//! both ways.

use cps_runtime::optim::hessian_free::{CgOptions, CgStop, HessianFree, conjugate_gradient};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A matrix of uniform entries in `[-1, 1)`.
fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

fn random_vector(n: usize, seed: u64) -> Array1<f64> {
    random_matrix(n, 1, seed).column(0).to_owned()
}

/// `MᵀM/n + shift·I`: symmetric, and positive definite for `shift > 0`
/// (eigenvalues between `shift` and about `4 + shift`).
fn spd(n: usize, shift: f64, seed: u64) -> Array2<f64> {
    let m = random_matrix(n, n, seed);
    m.t().dot(&m) / n as f64 + Array2::<f64>::eye(n) * shift
}

/// `‖b − (H + λI)x‖ / ‖b‖`, computed directly.
fn true_residual(h: &Array2<f64>, damping: f64, x: &Array1<f64>, b: &Array1<f64>) -> f64 {
    let r = b - &(h.dot(x) + x * damping);
    r.dot(&r).sqrt() / b.dot(b).sqrt()
}

#[test]
fn a_random_positive_definite_system_is_solved_in_at_most_n_iterations() {
    let n = 40;
    for (seed, shift, damping) in [(1, 0.5, 0.0), (2, 0.1, 0.0), (3, 0.0, 0.3)] {
        let h = spd(n, shift, seed);
        let b = random_vector(n, seed + 100);
        let solution = conjugate_gradient(|v| h.dot(v), damping, &b, CgOptions::new(n, 1e-11));
        assert_eq!(solution.stop, CgStop::Converged, "seed {seed}");
        assert!(
            solution.iterations <= n,
            "{} iterations",
            solution.iterations
        );
        assert_eq!(solution.products, solution.iterations);
        let residual = true_residual(&h, damping, &solution.x, &b);
        assert!(residual < 1e-10, "seed {seed}: residual {residual:e}");
        assert!(solution.residual < 1e-10);
    }
}

#[test]
fn the_model_value_is_that_of_the_quadratic() {
    let n = 12;
    let h = spd(n, 0.2, 7);
    let b = random_vector(n, 8);
    let damping = 0.05;
    // Truncated early, so that x is not the solution.
    for cap in [1, 3, n] {
        let solution = conjugate_gradient(|v| h.dot(v), damping, &b, CgOptions::new(cap, 0.0));
        let x = &solution.x;
        let direct = 0.5 * x.dot(&(h.dot(x) + x * damping)) - b.dot(x);
        assert!(
            (solution.model - direct).abs() < 1e-12 * direct.abs().max(1.0),
            "after {cap}: {} vs {direct}",
            solution.model
        );
    }
}

#[test]
fn truncation_respects_the_iteration_cap() {
    let n = 30;
    let h = spd(n, 0.01, 4);
    let b = random_vector(n, 5);
    let mut calls = 0;
    let solution = conjugate_gradient(
        |v| {
            calls += 1;
            h.dot(v)
        },
        0.0,
        &b,
        CgOptions::new(3, 1e-12),
    );
    assert_eq!(solution.stop, CgStop::MaxIterations);
    assert_eq!((solution.iterations, solution.products, calls), (3, 3, 3));
    assert!(solution.residual > 1e-3, "three iterations cannot solve it");
    // Truncated conjugate gradients still descend on the quadratic.
    assert!(solution.model < 0.0);
    // A tolerance that is already met stops it before any product.
    let loose = conjugate_gradient(|v| h.dot(v), 0.0, &b, CgOptions::new(3, 2.0));
    assert_eq!((loose.stop, loose.products), (CgStop::Converged, 0));
    assert!(loose.x.iter().all(|&x| x == 0.0));
}

#[test]
fn negative_curvature_is_detected_on_an_indefinite_matrix() {
    // Eigenvalues 3, 2, 1, −1 and −2 in a random orthogonal-ish basis: an
    // indefinite symmetric matrix.
    let n = 5;
    let basis = random_matrix(n, n, 9);
    let eigenvalues = Array2::from_diag(&Array1::from(vec![3.0, 2.0, 1.0, -1.0, -2.0]));
    let h = basis.dot(&eigenvalues).dot(&basis.t());
    let b = random_vector(n, 10);
    let solution = conjugate_gradient(|v| h.dot(v), 0.0, &b, CgOptions::new(50, 1e-12));
    assert_eq!(solution.stop, CgStop::NegativeCurvature);
    assert!(solution.iterations <= n);

    // The negative control: the same matrix shifted to be positive
    // definite is solved, with no curvature alarm.
    let shifted = conjugate_gradient(|v| h.dot(v), 10.0, &b, CgOptions::new(50, 1e-12));
    assert_eq!(shifted.stop, CgStop::Converged);
    assert!(true_residual(&h, 10.0, &shifted.x, &b) < 1e-10);
}

#[test]
fn negative_curvature_at_the_first_direction_returns_b() {
    let n = 4;
    let h = Array2::<f64>::eye(n) * -1.0;
    let b = random_vector(n, 11);
    let solution = conjugate_gradient(|v| h.dot(v), 0.5, &b, CgOptions::new(10, 1e-12));
    assert_eq!(solution.stop, CgStop::NegativeCurvature);
    assert_eq!((solution.iterations, solution.products), (1, 1));
    assert_eq!(solution.x, b);
    // ½bᵀ(H + λI)b − bᵀb = (−½·½ − 1)·bᵀb.
    let expected = -1.25 * b.dot(&b);
    assert!((solution.model - expected).abs() < 1e-12);
}

#[test]
fn a_zero_right_hand_side_needs_no_product() {
    let solution = conjugate_gradient(
        |_: &Array1<f64>| panic!("no product is needed"),
        1.0,
        &Array1::zeros(3),
        CgOptions::default(),
    );
    assert_eq!((solution.stop, solution.products), (CgStop::Converged, 0));
    assert_eq!(solution.residual, 0.0);
}

/// `f(x) = ½xᵀQx − cᵀx` and its gradient.
struct Quadratic {
    q: Array2<f64>,
    c: Array1<f64>,
}

impl Quadratic {
    fn value(&self, x: &Array1<f64>) -> f64 {
        0.5 * x.dot(&self.q.dot(x)) - self.c.dot(x)
    }
    fn gradient(&self, x: &Array1<f64>) -> Array1<f64> {
        self.q.dot(x) - &self.c
    }
}

#[test]
fn a_hessian_free_step_reaches_a_quadratics_minimiser_in_one_step() {
    let n = 25;
    let f = Quadratic {
        q: spd(n, 0.3, 12),
        c: random_vector(n, 13),
    };
    let x0 = random_vector(n, 14) * 3.0;
    let mut hf = HessianFree::new(0.0)
        .max_cg_iterations(n)
        .cg_tolerance(1e-12);
    let step = hf.direction(&f.gradient(&x0), |v| f.q.dot(v));
    let x1 = &x0 + &step.delta;
    let gradient = f.gradient(&x1);
    let scale = f.c.dot(&f.c).sqrt();
    assert!(
        gradient.dot(&gradient).sqrt() < 1e-10 * scale,
        "the gradient after one step is {:e}",
        gradient.dot(&gradient).sqrt()
    );
    // On a quadratic the model is the function: ρ = 1, and λ shrinks.
    let actual = f.value(&x1) - f.value(&x0);
    assert!((step.predicted_change - actual).abs() < 1e-10 * actual.abs());
    hf.set_damping(1.0);
    let rho = hf.adapt(&step, actual);
    assert!((rho - 1.0).abs() < 1e-10);
    assert!((hf.damping() - 2.0 / 3.0).abs() < 1e-15);

    // With damping, one step is short of the minimiser (the control).
    let damped = HessianFree::new(1.0)
        .max_cg_iterations(n)
        .cg_tolerance(1e-12);
    let short = &x0 + &damped.direction(&f.gradient(&x0), |v| f.q.dot(v)).delta;
    let gradient = f.gradient(&short);
    assert!(gradient.dot(&gradient).sqrt() > 1e-3 * scale);
}

#[test]
fn poor_predictions_raise_the_damping() {
    let f = Quadratic {
        q: spd(6, 0.5, 15),
        c: random_vector(6, 16),
    };
    let x = Array1::zeros(6);
    let mut hf = HessianFree::new(2.0);
    let step = hf.direction(&f.gradient(&x), |v| f.q.dot(v));
    assert!(step.predicted_change < 0.0);
    // The objective rose: ρ < 0, λ × 3/2.
    assert!(hf.adapt(&step, 1.0) < 0.0);
    assert!((hf.damping() - 3.0).abs() < 1e-15);
    // A middling prediction (ρ = ½) leaves λ alone.
    let rho = hf.adapt(&step, 0.5 * step.predicted_change);
    assert!((rho - 0.5).abs() < 1e-15);
    assert!((hf.damping() - 3.0).abs() < 1e-15);
    // A non-finite objective counts as a poor prediction.
    hf.adapt(&step, f64::NAN);
    assert!((hf.damping() - 4.5).abs() < 1e-15);
}
