//! Jacobian sensing (Choromanski and Sindhwani, NeurIPS 2017): each
//! strategy recovers Jacobians and products `Jᵀv` written out by hand;
//! L1 decoding recovers through corrupted calls where least squares fails
//! (the negative control), and its answer is the linear program's
//! optimum; colouring uses at most the band's width in colours and
//! recovers banded Jacobians; the black-box operation with each strategy
//! gives the gradients `cps` computes through the un-hidden function.

use cps_runtime::ops::blackbox::{
    CallCounter, ColouredDifferences, Colouring, ColumnOrder, CorruptedCalls, Decoder,
    JacobianEstimator, L1, LeastSquares, MeasurementCount, Measurements, RandomSensing,
    SparsityPattern, random_directions,
};
use cps_runtime::*;
use ndarray::{Array1, Array2, ArrayD, Ix1, Ix2, array};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

fn gaussian(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || rng.sample::<f64, _>(StandardNormal))
}

fn max_error(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    (a - b).iter().fold(0.0, |m, e| m.max(e.abs()))
}

fn relative_error(estimate: &ArrayD<f64>, exact: &ArrayD<f64>) -> f64 {
    let norm = |v: ArrayD<f64>| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    norm(estimate - exact) / norm(exact.clone())
}

/// `f(x) = (x₀ x₁, sin x₂, x₀ + 3 x₂²)` and its Jacobian at (1.5, -2, 0.5),
/// worked out by hand: rows (x₁, x₀, 0), (0, 0, cos x₂), (1, 0, 6 x₂).
fn small_map(x: &ArrayD<f64>) -> ArrayD<f64> {
    array![x[0] * x[1], x[2].sin(), x[0] + 3.0 * x[2] * x[2]].into_dyn()
}

fn small_point() -> (ArrayD<f64>, Array2<f64>) {
    let x = array![1.5, -2.0, 0.5].into_dyn();
    let jacobian = array![[-2.0, 1.5, 0.0], [0.0, 0.0, 0.5f64.cos()], [1.0, 0.0, 3.0]];
    (x, jacobian)
}

#[test]
fn random_sensing_recovers_a_jacobian_written_out_by_hand() {
    let (x, exact) = small_point();
    let calls = CallCounter::new();
    let f = calls.wrap(small_map);
    let y = f(&x);
    let jacobian = RandomSensing::least_squares(3).jacobian(&f, &x, &y);
    assert!(max_error(&jacobian, &exact) < 1e-6, "{jacobian}");
    assert_eq!(calls.calls(), 1 + 3); // f(x), then one call per input

    calls.reset();
    let robust = RandomSensing::l1(3).jacobian(&f, &x, &y);
    assert!(max_error(&robust, &exact) < 1e-6, "{robust}");
    assert_eq!(calls.calls(), 2 * 3);
}

#[test]
fn each_sensing_strategy_recovers_a_vjp_written_out_by_hand() {
    // Jᵀv for v = (1, -1, 2): (x₁ + 2, x₀, 12 x₂ - cos x₂) = (0, 1.5, 6 - cos 0.5).
    let (x, _) = small_point();
    let v = array![1.0, -1.0, 2.0].into_dyn();
    let expected = array![0.0, 1.5, 6.0 - 0.5f64.cos()].into_dyn();
    let y = small_map(&x);
    // n random directions make a square system, whose condition number
    // (heavy-tailed for random matrices: here about 10³) multiplies the
    // differences' error; more directions than unknowns tame it.
    let strategies: Vec<(&str, Box<dyn JacobianEstimator<f64>>, f64)> = vec![
        (
            "least squares, n calls",
            Box::new(RandomSensing::least_squares(5)),
            1e-4,
        ),
        ("L1, 2n calls", Box::new(RandomSensing::l1(5)), 1e-6),
        (
            "least squares, 3n calls",
            Box::new(
                RandomSensing::new(LeastSquares, 5)
                    .with_measurements(MeasurementCount::PerUnknown(3.0)),
            ),
            1e-6,
        ),
        (
            "coloured, dense pattern",
            Box::new(ColouredDifferences::new(SparsityPattern::dense(3, 3))),
            1e-6,
        ),
    ];
    for (name, mut strategy, tolerance) in strategies {
        let estimate = strategy.vjp(&small_map, &x, &y, &v);
        let error = (&estimate - &expected)
            .iter()
            .fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(error < tolerance, "{name}: {estimate} vs {expected}");
    }
}

#[test]
fn fewer_measurements_than_inputs_give_the_least_norm_estimate() {
    // A linear map along one direction δ: the estimate is (Jᵀv · δ) δ, the
    // part of Jᵀv that the measurement sees.
    let f = |x: &ArrayD<f64>| array![2.0 * x[0] - x[1] + 0.5 * x[2]].into_dyn();
    let x = array![0.3, 0.1, -0.2].into_dyn();
    let mut sensing = RandomSensing::least_squares(9).with_measurements(MeasurementCount::Fixed(1));
    let estimate = sensing.vjp(&f, &x, &f(&x), &array![1.0].into_dyn());
    let full = array![2.0, -1.0, 0.5];
    let flat = estimate.into_dimensionality::<Ix1>().unwrap();
    let direction = &flat / flat.dot(&flat).sqrt();
    let projection = &direction * direction.dot(&full);
    assert!(
        (&flat - &projection).iter().all(|e| e.abs() < 1e-6),
        "{flat}"
    );
    assert!(flat.dot(&flat) < full.dot(&full));
}

#[test]
fn one_call_measures_every_row_of_a_batch() {
    // A row-wise map tanh(z Wᵀ) on a batch of 8 rows of 4: 2n = 8 calls
    // for the whole batch, and each row's product is its own.
    let mut rng = StdRng::seed_from_u64(1);
    let w = gaussian(&mut rng, 4, 4);
    let z = gaussian(&mut rng, 8, 4).into_dyn();
    let g = gaussian(&mut rng, 8, 4).into_dyn();
    let calls = CallCounter::new();
    let f = calls.wrap(|z: &ArrayD<f64>| {
        let z = z.view().into_dimensionality::<Ix2>().unwrap();
        z.dot(&w.t()).mapv(f64::tanh).into_dyn()
    });
    let y = f(&z);
    let mut sensing = RandomSensing::l1(2).with_independent_rows();
    let estimate = sensing.vjp(&f, &z, &y, &g);
    assert_eq!(calls.calls(), 1 + 2 * 4);
    // Jᵀg row by row: ((1 - y²) ⊙ g) W.
    let y2 = y.into_dimensionality::<Ix2>().unwrap();
    let g2 = g.into_dimensionality::<Ix2>().unwrap();
    let exact = (&g2 * &y2.mapv(|y| 1.0 - y * y)).dot(&w).into_dyn();
    assert!(relative_error(&estimate, &exact) < 1e-6);
}

#[test]
fn l1_decoding_recovers_through_corrupted_calls_where_least_squares_fails() {
    // n = 16 inputs, m = 2n calls, 3 of them (about 10%) garbage.
    let n = 16;
    let mut rng = StdRng::seed_from_u64(4);
    let m = gaussian(&mut rng, n, n) / (n as f64).sqrt();
    let f = |x: &ArrayD<f64>| {
        let x = x.view().into_dimensionality::<Ix1>().unwrap();
        m.dot(&x).mapv(f64::sin).into_dyn()
    };
    let x = gaussian(&mut rng, 1, n)
        .into_shape_with_order(n)
        .unwrap()
        .into_dyn();
    let v = gaussian(&mut rng, 1, n)
        .into_shape_with_order(n)
        .unwrap()
        .into_dyn();
    let y = f(&x);
    let flat_x = x.view().into_dimensionality::<Ix1>().unwrap();
    let flat_v = v.view().into_dimensionality::<Ix1>().unwrap();
    let exact = m
        .t()
        .dot(&(m.dot(&flat_x).mapv(f64::cos) * flat_v))
        .into_dyn();
    // Calls 3, 11 and 20 (of those after the forward pass) return garbage.
    let count = std::cell::Cell::new(0);
    let faulty = |x: &ArrayD<f64>| {
        let call = count.replace(count.get() + 1);
        let out = f(x);
        if [3, 11, 20].contains(&call) {
            out.mapv(|v| 50.0 - v)
        } else {
            out
        }
    };
    let robust = RandomSensing::l1(8).vjp(&faulty, &x, &y, &v);
    assert_eq!(count.replace(0), 2 * n);
    assert!(
        relative_error(&robust, &exact) < 1e-6,
        "L1: {:e}",
        relative_error(&robust, &exact)
    );
    // The negative control: the same calls, the same garbage.
    let plain = RandomSensing::new(LeastSquares, 8).vjp(&faulty, &x, &y, &v);
    assert!(
        relative_error(&plain, &exact) > 1.0,
        "least squares: {:e}",
        relative_error(&plain, &exact)
    );
}

#[test]
fn corrupted_calls_are_drawn_at_the_fraction_asked() {
    let f = |x: &ArrayD<f64>| x.mapv(|v| v * v);
    let x = Array1::linspace(-1.0, 1.0, 50).into_dyn();
    let y = f(&x);
    let mut faulty = CorruptedCalls::new(RandomSensing::l1(0), 0.1, 0);
    let estimate = faulty.vjp(&f, &x, &y, &Array1::ones(50).into_dyn());
    assert_eq!(faulty.calls(), 100);
    assert!(
        (3..=20).contains(&faulty.corrupted()),
        "{}",
        faulty.corrupted()
    );
    // Jᵀ1 = 2x, whatever the garbage.
    assert!(relative_error(&estimate, &(&x * 2.0)) < 1e-6);
}

#[test]
fn the_l1_decoder_reaches_the_linear_program_s_optimum() {
    // Beyond what L1 can correct (half the measurements wrong), its answer
    // is still the minimum of Σ|a z − b|: no worse than the truth, and no
    // better anywhere nearby.
    let mut rng = StdRng::seed_from_u64(11);
    let (m, n) = (40, 10);
    let a = gaussian(&mut rng, m, n);
    let truth = gaussian(&mut rng, n, 1).into_shape_with_order(n).unwrap();
    let mut b = a.dot(&truth);
    for i in 0..m / 2 {
        b[2 * i] += 100.0 * rng.sample::<f64, _>(StandardNormal);
    }
    let objective = |z: &Array1<f64>| (&b - &a.dot(z)).mapv(f64::abs).sum();
    let z = L1::default().decode(a.view(), b.view());
    assert!(objective(&z) <= objective(&truth) + 1e-9);
    for k in 0..n {
        for step in [-1e-5, 1e-5] {
            let mut nearby = z.clone();
            nearby[k] += step;
            assert!(
                objective(&nearby) >= objective(&z) - 1e-9,
                "coordinate {k}, step {step}"
            );
        }
    }
}

#[test]
fn colouring_a_band_takes_its_width_in_colours() {
    for n in [1, 2, 7, 30, 100] {
        for (below, above) in [(0, 0), (1, 1), (2, 0), (0, 3), (2, 2), (4, 1)] {
            let pattern = SparsityPattern::banded(n, below, above);
            let width = (below + above + 1).min(n);
            for order in [ColumnOrder::Natural, ColumnOrder::LargestFirst] {
                let colouring = Colouring::greedy_in(&pattern, order);
                assert!(
                    colouring.is_valid_for(&pattern),
                    "n {n}, band ({below}, {above})"
                );
                assert!(
                    colouring.count() <= width,
                    "n {n}, band ({below}, {above}), {order:?}: {} colours",
                    colouring.count()
                );
            }
            // In the natural order, exactly the width: the band's first
            // `width` columns all share a row.
            assert_eq!(Colouring::greedy(&pattern).count(), width);
        }
    }
}

#[test]
fn a_colouring_that_lets_two_columns_share_a_row_is_caught() {
    let pattern = SparsityPattern::banded(5, 1, 1);
    let dense = SparsityPattern::dense(5, 5);
    assert!(!Colouring::greedy(&pattern).is_valid_for(&dense));
    assert_eq!(Colouring::greedy(&dense).count(), 5);
}

/// `yᵢ = xᵢ² − 2 xᵢ₋₂ + sin xᵢ₊₁` (zero beyond the ends): a band of two
/// below and one above, whose nonzeros are 2xᵢ, −2 and cos xᵢ₊₁.
fn banded_map(x: &ArrayD<f64>) -> ArrayD<f64> {
    let n = x.len();
    ArrayD::from_shape_fn(x.raw_dim(), |i| {
        let i = i[0];
        let far_left = if i >= 2 { x[i - 2] } else { 0.0 };
        let right = if i + 1 < n { x[i + 1].sin() } else { 0.0 };
        x[i] * x[i] - 2.0 * far_left + right
    })
}

fn banded_jacobian(x: &ArrayD<f64>) -> Array2<f64> {
    let n = x.len();
    Array2::from_shape_fn((n, n), |(r, c)| {
        if c == r {
            2.0 * x[r]
        } else if c + 2 == r {
            -2.0
        } else if c == r + 1 {
            x[c].cos()
        } else {
            0.0
        }
    })
}

#[test]
fn coloured_differences_recover_a_banded_jacobian_in_width_plus_one_calls() {
    let n = 40;
    let x = Array1::linspace(-2.0, 2.0, n).into_dyn();
    let calls = CallCounter::new();
    let f = calls.wrap(banded_map);
    let y = f(&x);
    let estimator = ColouredDifferences::new(SparsityPattern::banded(n, 2, 1));
    let jacobian = estimator.jacobian(&f, &x, &y);
    assert_eq!(calls.calls(), 1 + 4);
    assert!(max_error(&jacobian.to_dense(), &banded_jacobian(&x)) < 1e-6);
    assert!((jacobian.get(5, 3) + 2.0).abs() < 1e-6);
    assert_eq!(jacobian.get(5, 0), 0.0);
}

#[test]
fn sparse_sensing_recovers_a_banded_jacobian_and_survives_a_garbage_call() {
    let n = 40;
    let x = Array1::linspace(-2.0, 2.0, n).into_dyn();
    let y = banded_map(&x);
    let band = SparsityPattern::banded(n, 2, 1);
    let exact = banded_jacobian(&x);

    let calls = CallCounter::new();
    let f = calls.wrap(banded_map);
    let mut plain =
        RandomSensing::new(LeastSquares, 1).with_measurements(MeasurementCount::PerUnknown(1.0));
    let jacobian = plain.sparse_jacobian(&band, &f, &x, &y);
    assert_eq!(calls.calls(), 4); // the band's longest row
    assert!(max_error(&jacobian.to_dense(), &exact) < 1e-5);

    let count = std::cell::Cell::new(0);
    let faulty = |x: &ArrayD<f64>| {
        let call = count.replace(count.get() + 1);
        let out = banded_map(x);
        if call == 1 {
            out.mapv(|v| v + 1e3)
        } else {
            out
        }
    };
    let mut robust =
        RandomSensing::new(L1::default(), 1).with_measurements(MeasurementCount::Fixed(20));
    let jacobian = robust.sparse_jacobian(&band, &faulty, &x, &y);
    assert!(max_error(&jacobian.to_dense(), &exact) < 1e-5);
    // Colouring has no such redundancy: one garbage call spoils its colour.
    count.set(0);
    let coloured = ColouredDifferences::new(band).jacobian(&faulty, &x, &y);
    assert!(max_error(&coloured.to_dense(), &exact) > 1.0);
}

#[test]
fn symmetry_recovers_an_arrowhead_hessian_from_two_calls() {
    // The gradient of φ(x) = Σ xᵢ⁴/12 + x_last Σ_{i<last} xᵢ: its Hessian
    // is diag(xᵢ²) plus ones in the last row and column, the corner x²_last.
    let n = 12;
    let grad = move |x: &ArrayD<f64>| {
        let last = x[n - 1];
        let sum: f64 = x.iter().take(n - 1).sum();
        ArrayD::from_shape_fn(x.raw_dim(), |i| {
            let i = i[0];
            let cube = x[i].powi(3) / 3.0;
            if i + 1 < n { cube + last } else { cube + sum }
        })
    };
    let arrowhead = SparsityPattern::from_fn(n, n, |r, c| r == c || r == n - 1 || c == n - 1);
    assert_eq!(Colouring::greedy(&arrowhead).count(), n);
    let x = Array1::linspace(-1.5, 1.5, n).into_dyn();
    let calls = CallCounter::new();
    let f = calls.wrap(grad);
    let y = f(&x);
    let mut sensing =
        RandomSensing::new(LeastSquares, 6).with_measurements(MeasurementCount::PerUnknown(1.0));
    let hessian = sensing.symmetric_jacobian(&arrowhead, &f, &x, &y);
    assert_eq!(calls.calls(), 1 + 2);
    let exact = Array2::from_shape_fn((n, n), |(r, c)| {
        if r == c {
            x[r] * x[r]
        } else if r == n - 1 || c == n - 1 {
            1.0
        } else {
            0.0
        }
    });
    assert!(
        max_error(&hessian.to_dense(), &exact) < 1e-5,
        "{}",
        hessian.to_dense()
    );
}

#[test]
fn measurements_are_the_differences_along_the_directions_taken() {
    // f linear, so each measurement is exactly J δ for the direction taken.
    let j = array![[1.0, 2.0], [-3.0, 0.5]];
    let f = |x: &ArrayD<f64>| {
        j.dot(&x.view().into_dimensionality::<Ix1>().unwrap())
            .into_dyn()
    };
    let x = array![0.25, -4.0].into_dyn();
    let mut rng = StdRng::seed_from_u64(2);
    let directions = random_directions(&mut rng, 3, 2, 1);
    let measured = Measurements::take(&f, &x, &f(&x), directions.view(), 1e-6);
    assert_eq!(measured.len(), 3);
    let predicted = measured.directions.dot(&j.t());
    assert!(max_error(&measured.differences, &predicted) < 1e-8);
    assert!(max_error(&measured.directions, &directions) < 1e-8);
    let along = measured.along(array![1.0, 1.0].view());
    assert!((along[0] - predicted.row(0).sum()).abs() < 1e-8);
}

/// The hidden function of the gradient tests, `tanh(M x)`, as plain
/// ndarray, and the same computed by `cps`: `sum(w ⊙ tanh(M x))`.
struct Hidden {
    m: Array2<f64>,
    w: Array1<f64>,
}

impl Hidden {
    fn new(seed: u64, outputs: usize, inputs: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let m = gaussian(&mut rng, outputs, inputs) / (inputs as f64).sqrt();
        let w = gaussian(&mut rng, 1, outputs)
            .into_shape_with_order(outputs)
            .unwrap();
        Hidden { m, w }
    }

    fn call(&self, x: &ArrayD<f64>) -> ArrayD<f64> {
        let x = x.view().into_dimensionality::<Ix1>().unwrap();
        self.m.dot(&x).mapv(f64::tanh).into_dyn()
    }

    /// The gradient of the loss with respect to `x`, by `cps` through the
    /// un-hidden function.
    fn exact_gradient(&self, x: &ArrayD<f64>) -> ArrayD<f64> {
        let input = Param::new(x.clone());
        let (m, w) = (Var::constant(self.m.clone()), Var::constant(self.w.clone()));
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            m.matmul(&input).bind(|mx| {
                mx.tanh()
                    .bind(|y| (&y * &w).bind(|weighted| weighted.sum().bind(&mut *k)))
            })
        })
        .backward();
        input.grad()
    }

    /// The gradient through `black_box` with `estimator`.
    fn estimated_gradient(
        &self,
        x: &ArrayD<f64>,
        estimator: impl JacobianEstimator<f64>,
    ) -> ArrayD<f64> {
        let input = Param::new(x.clone());
        let w = Var::constant(self.w.clone());
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            input
                .black_box(|x: &ArrayD<f64>| self.call(x), estimator)
                .bind(|y| (&y * &w).bind(|weighted| weighted.sum().bind(&mut *k)))
        })
        .backward();
        input.grad()
    }
}

#[test]
fn the_black_box_operation_gives_cps_s_gradients_with_every_strategy() {
    let n = 12;
    let hidden = Hidden::new(21, 10, n);
    let x = Array1::linspace(-1.0, 1.0, n).into_dyn();
    let exact = hidden.exact_gradient(&x);
    let strategies: Vec<(&str, Box<dyn JacobianEstimator<f64>>)> = vec![
        (
            "random sensing, least squares",
            Box::new(RandomSensing::least_squares(1)),
        ),
        ("random sensing, L1", Box::new(RandomSensing::l1(1))),
        (
            "random sensing, L1, 10% garbage",
            Box::new(CorruptedCalls::new(
                RandomSensing::l1(1).with_measurements(MeasurementCount::PerUnknown(3.0)),
                0.1,
                1,
            )),
        ),
        (
            "coloured differences",
            Box::new(ColouredDifferences::new(SparsityPattern::dense(10, n))),
        ),
    ];
    for (name, strategy) in strategies {
        let estimate = hidden.estimated_gradient(&x, strategy);
        let error = relative_error(&estimate, &exact);
        assert!(error < 1e-6, "{name}: relative error {error:e}");
    }
}

#[test]
fn the_black_box_operation_with_colouring_gives_cps_s_gradient_of_a_banded_map() {
    // y = tanh(B x), B tridiagonal: cps differentiates it as a dense matrix
    // product; the black box knows only the band.
    let n = 30;
    let b = Array2::from_shape_fn((n, n), |(r, c)| match c as isize - r as isize {
        -1 => 0.5,
        0 => 1.0 + r as f64 / n as f64,
        1 => -0.7,
        _ => 0.0,
    });
    let hidden = Hidden {
        m: b,
        w: Array1::linspace(1.0, -1.0, n),
    };
    let x = Array1::linspace(-1.0, 2.0, n).into_dyn();
    let calls = CallCounter::new();
    let estimator = ColouredDifferences::new(SparsityPattern::banded(n, 1, 1));
    let input = Param::new(x.clone());
    let w = Var::constant(hidden.w.clone());
    let f = calls.wrap(|x: &ArrayD<f64>| hidden.call(x));
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        input
            .black_box(&f, estimator)
            .bind(|y| (&y * &w).bind(|weighted| weighted.sum().bind(&mut *k)))
    })
    .backward();
    assert_eq!(calls.calls(), 1 + 3);
    let error = relative_error(&input.grad(), &hidden.exact_gradient(&x));
    assert!(error < 1e-6, "relative error {error:e}");
}

#[test]
#[should_panic(expected = "one row per output element and one column per input element")]
fn a_pattern_of_the_wrong_shape_is_refused() {
    let f = |x: &ArrayD<f64>| x.mapv(f64::exp);
    let x = array![1.0, 2.0].into_dyn();
    ColouredDifferences::new(SparsityPattern::dense(3, 3)).jacobian(&f, &x, &f(&x));
}

#[test]
#[should_panic(expected = "the same number of rows")]
fn independent_rows_need_as_many_output_rows() {
    let f = |x: &ArrayD<f64>| x.sum_axis(ndarray::Axis(0)).into_dyn();
    let x = Array2::<f64>::ones((3, 2)).into_dyn();
    RandomSensing::l1(0)
        .with_independent_rows()
        .vjp(&f, &x, &f(&x), &Array1::ones(2).into_dyn());
}
