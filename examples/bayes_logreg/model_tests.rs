//! The Bayesian logistic regression example's objective, tested on the
//! bundled breast-cancer data: the negative ELBO's gradient against
//! central differences of its values, and its Hessian-vector products
//! (forward over reverse) against central differences of its gradients,
//! in f64 for both posterior families; a check compared with the wrong
//! reference fails (the negative control). Also: the monitor ELBO equals
//! the differentiable estimate on the same draws, and the table reader
//! names the file and line of what it cannot read.

use crate::{data, model, monitor};

use std::path::Path;

use model::{Family, Objective};
use monitor::{Monitor, normal_draws};
use ndarray::{Array1, Array2, s};

/// The finite-difference step: central differences are accurate to about
/// `h²` times the third derivative, far below the tolerances.
const STEP: f64 = 1e-5;

fn bundled() -> data::Table {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bayes_logreg/data/breast_cancer.csv");
    data::read_csv(&path).expect("the bundled table")
}

/// The example's split, cut to its first `rows` training rows to keep the
/// test fast.
fn problem(rows: usize) -> (Array2<f64>, Vec<bool>) {
    let split = data::split(&bundled(), 455, 0).expect("a split");
    (
        split.train_x.slice(s![..rows, ..]).to_owned(),
        split.train_y[..rows].to_vec(),
    )
}

/// A point away from the prior, with every kind of parameter non-zero:
/// posteriors of standard deviation around e^-1.
fn point(objective: &Objective, seed: u64) -> Array1<f64> {
    let d = objective.dim();
    let mut theta = normal_draws(1, objective.layout().parameter_count(), seed)
        .row(0)
        .to_owned()
        * 0.3;
    theta.slice_mut(s![d..2 * d]).mapv_inplace(|v| v - 1.0);
    theta
}

fn direction(objective: &Objective, seed: u64) -> Array1<f64> {
    normal_draws(1, objective.layout().parameter_count(), seed)
        .row(0)
        .to_owned()
}

/// `‖a − b‖∞ / max(1, ‖b‖∞)`.
fn relative_error(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    (a - b).iter().fold(0.0f64, |m, x| m.max(x.abs())) / scale
}

/// The directional derivative of the estimate along `v`, by central
/// differences of its values on the draws `eps`.
fn differenced_slope(
    objective: &Objective,
    theta: &Array1<f64>,
    eps: &Array2<f64>,
    v: &Array1<f64>,
) -> f64 {
    let plus = objective.value(&(theta + &(v * STEP)), eps);
    let minus = objective.value(&(theta - &(v * STEP)), eps);
    (plus - minus) / (2.0 * STEP)
}

/// The Hessian times `v`, by central differences of gradients.
fn differenced_hvp(
    objective: &Objective,
    theta: &Array1<f64>,
    eps: &Array2<f64>,
    v: &Array1<f64>,
) -> Array1<f64> {
    let (_, plus) = objective.gradient(&(theta + &(v * STEP)), eps);
    let (_, minus) = objective.gradient(&(theta - &(v * STEP)), eps);
    (plus - minus) / (2.0 * STEP)
}

fn check_family(family: Family) {
    let (x, y) = problem(120);
    let objective = Objective::new(family, &x, &y);
    let eps = normal_draws(7, objective.dim(), 3);
    let theta = point(&objective, 4);
    let (value, gradient) = objective.gradient(&theta, &eps);
    assert!((value - objective.value(&theta, &eps)).abs() < 1e-9 * value.abs());
    for seed in [10, 11, 12] {
        let v = direction(&objective, seed);
        let slope = gradient.dot(&v);
        let expected = differenced_slope(&objective, &theta, &eps, &v);
        assert!(
            (slope - expected).abs() < 1e-6 * expected.abs().max(1.0),
            "{family:?}: gradient·v = {slope}, differences {expected}"
        );
        let product = objective.hessian_vector_product(&theta, &eps, &v);
        let expected = differenced_hvp(&objective, &theta, &eps, &v);
        let error = relative_error(&product, &expected);
        assert!(
            error < 1e-6,
            "{family:?}: Hv differs by {error:e} (relative)"
        );
        assert!(
            expected.iter().any(|h| h.abs() > 1e-2),
            "a product of zero checks nothing"
        );
    }
    // Every coordinate of the gradient, along the unit vectors of a few
    // coordinates of each kind (μ, log-diagonal, lower triangle).
    let d = objective.dim();
    let count = objective.layout().parameter_count();
    for i in [0, d - 1, d, 2 * d - 1, count - 1] {
        let mut unit = Array1::zeros(count);
        unit[i] = 1.0;
        let expected = differenced_slope(&objective, &theta, &eps, &unit);
        assert!(
            (gradient[i] - expected).abs() < 1e-6 * expected.abs().max(1.0),
            "{family:?}: ∂/∂θ[{i}] = {}, differences {expected}",
            gradient[i]
        );
    }
}

#[test]
fn the_diagonal_familys_gradient_and_hessian_agree_with_differences() {
    check_family(Family::Diagonal);
}

#[test]
fn the_full_familys_gradient_and_hessian_agree_with_differences() {
    check_family(Family::Full);
}

/// The negative control: each comparison above fails against a wrong
/// reference (the product along another direction; the slope on other
/// draws), so agreement is not vacuous.
#[test]
fn a_wrong_reference_is_caught() {
    let (x, y) = problem(120);
    let objective = Objective::new(Family::Full, &x, &y);
    let eps = normal_draws(7, objective.dim(), 3);
    let theta = point(&objective, 4);
    let (v, w) = (direction(&objective, 10), direction(&objective, 11));
    let product = objective.hessian_vector_product(&theta, &eps, &v);
    let other = differenced_hvp(&objective, &theta, &eps, &w);
    assert!(relative_error(&product, &other) > 1e-2);
    let (_, gradient) = objective.gradient(&theta, &eps);
    let other_draws = normal_draws(7, objective.dim(), 5);
    let elsewhere = differenced_slope(&objective, &theta, &other_draws, &v);
    assert!((gradient.dot(&v) - elsewhere).abs() > 1e-3 * elsewhere.abs());
}

/// The full family with a diagonal `R` (`L = 0`) is the diagonal family:
/// the same values, and the same gradient and curvature in `(μ, s)`.
#[test]
fn a_full_posterior_with_a_diagonal_scale_is_the_diagonal_one() {
    let (x, y) = problem(60);
    let diagonal = Objective::new(Family::Diagonal, &x, &y);
    let full = Objective::new(Family::Full, &x, &y);
    let d = diagonal.dim();
    let eps = normal_draws(5, d, 6);
    let theta = point(&diagonal, 7);
    let mut padded = Array1::zeros(full.layout().parameter_count());
    padded.slice_mut(s![..2 * d]).assign(&theta);
    let (value, gradient) = diagonal.gradient(&theta, &eps);
    let (full_value, full_gradient) = full.gradient(&padded, &eps);
    assert!((value - full_value).abs() < 1e-10 * value.abs());
    assert!(relative_error(&full_gradient.slice(s![..2 * d]).to_owned(), &gradient) < 1e-12);
    let v = direction(&diagonal, 8);
    let mut padded_v = Array1::zeros(full.layout().parameter_count());
    padded_v.slice_mut(s![..2 * d]).assign(&v);
    let product = diagonal.hessian_vector_product(&theta, &eps, &v);
    let full_product = full.hessian_vector_product(&padded, &eps, &padded_v);
    assert!(relative_error(&full_product.slice(s![..2 * d]).to_owned(), &product) < 1e-12);
}

/// The monitor (plain f64) computes the estimate the optimizers
/// differentiate, on its own draws.
#[test]
fn the_monitor_is_the_estimate_on_its_draws() {
    let (x, y) = problem(200);
    for family in [Family::Diagonal, Family::Full] {
        let objective = Objective::new(family, &x, &y);
        let monitor = Monitor::new(objective.layout().clone(), &x, &y, 50, 9);
        let eps = normal_draws(50, objective.dim(), 9);
        for theta in [objective.prior(), point(&objective, 10)] {
            let elbo = monitor.elbo(&theta);
            let estimate = -objective.value(&theta, &eps);
            assert!(
                (elbo - estimate).abs() < 1e-9 * elbo.abs(),
                "{family:?}: monitor {elbo}, estimate {estimate}"
            );
        }
    }
}

#[test]
fn the_bundled_table_and_its_split() {
    let table = bundled();
    assert_eq!(table.features.dim(), (569, 30));
    assert_eq!(table.labels.iter().filter(|&&benign| benign).count(), 357);
    let split = data::split(&table, 455, 0).expect("a split");
    assert_eq!((split.train_y.len(), split.test_y.len()), (455, 114));
    assert_eq!(split.train_x.ncols(), 31);
    assert!(split.train_x.column(0).iter().all(|&one| one == 1.0));
    // Standardised with the training rows' statistics: mean 0, std 1
    // there (not on the test rows).
    let features = split.train_x.slice(s![.., 1..]);
    let mean = features.mean_axis(ndarray::Axis(0)).expect("rows");
    let std = features.std_axis(ndarray::Axis(0), 0.0);
    assert!(mean.iter().all(|m| m.abs() < 1e-12));
    assert!(std.iter().all(|s| (s - 1.0).abs() < 1e-12));
    // The same seed gives the same split; another seed another one.
    let again = data::split(&table, 455, 0).expect("a split");
    assert_eq!(again.test_x, split.test_x);
    let other = data::split(&table, 455, 1).expect("a split");
    assert_ne!(other.test_x, split.test_x);
}

#[test]
fn unreadable_tables_are_refused_with_file_and_line() {
    let cases = [
        ("", "t.csv: the file is empty; expected a header line"),
        (
            "rows,features\n",
            "t.csv:1: expected the header 'rows,features,class0,class1'",
        ),
        (
            "2,3,a,b\n1,2,3,0\n4,5,1\n",
            "t.csv:3: expected 4 comma-separated fields (3 features and the class), found 3",
        ),
        (
            "2,3,a,b\n1,2,3,0\n4,x,6,1\n",
            "t.csv:3: expected a finite number in column 2, found 'x'",
        ),
        (
            "2,3,a,b\n1,2,inf,0\n",
            "t.csv:2: expected a finite number in column 3, found 'inf'",
        ),
        (
            "2,3,a,b\n1,2,3,0\n4,5,6,2\n",
            "t.csv:3: expected the class, 0 or 1, in column 4, found '2'",
        ),
        (
            "3,3,a,b\n1,2,3,0\n4,5,6,1\n",
            "t.csv: the header announces 3 rows, the file holds 2",
        ),
    ];
    for (text, expected) in cases {
        let error = data::parse_csv(text, "t.csv").expect_err(text);
        assert!(
            error.starts_with(expected),
            "for {text:?}: got '{error}', expected '{expected}…'"
        );
    }
    // The negative control: a well-formed table reads.
    let table = data::parse_csv("2,3,a,b\n1,2,3,0\n4,5,6,1\n", "t.csv").expect("readable");
    assert_eq!(table.labels, vec![false, true]);
    // A missing file is named too.
    let error = data::read_csv(Path::new("no/such/table.csv")).expect_err("missing");
    assert!(
        error.starts_with("no/such/table.csv: cannot read the file"),
        "{error}"
    );
    // A split that leaves nothing for testing is refused.
    assert!(data::split(&table, 2, 0).is_err());
}
