//! Softmax, log-softmax, dropout, cross-entropy and mean squared error:
//! forward values against hand-computed numbers, gradients against finite
//! differences (`gradcheck`) on random shapes and values, and the panics
//! on misuse.

use cps_runtime::*;
use ndarray::{ArrayD, IxDyn, array};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::support::weighted_sum;

const TOLERANCE: f64 = 1e-6;

/// Runs `op` on `x` forward only and returns its value.
fn forward<P>(x: &Var<f64>, op: impl FnOnce(&Var<f64>) -> P) -> ArrayD<f64>
where
    P: Computation<Output = Var<f64>>,
{
    lazy(|k: &mut dyn FnMut(Var<f64>)| op(x).bind(k))
        .eval()
        .array()
        .clone()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// A shape of rank 1 or 2 with dimensions in 1..=6, and values for it.
fn matrix_or_vector(range: f64) -> impl Strategy<Value = ArrayD<f64>> {
    prop::collection::vec(1usize..=6, 1..=2).prop_flat_map(move |shape| {
        let len: usize = shape.iter().product();
        prop::collection::vec(-range..range, len).prop_map(move |values| {
            ArrayD::from_shape_vec(IxDyn(&shape), values).expect("sized to the shape")
        })
    })
}

/// Values and weights of the same random shape (rank 1 to 3).
fn values_and_weights() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    prop::collection::vec(1usize..=6, 1..=3).prop_flat_map(|shape| {
        let len: usize = shape.iter().product();
        (
            prop::collection::vec(-3.0..3.0f64, len),
            prop::collection::vec(-2.0..2.0f64, len),
        )
            .prop_map(move |(values, weights)| {
                let shape = IxDyn(&shape);
                (
                    ArrayD::from_shape_vec(shape.clone(), values).expect("sized"),
                    ArrayD::from_shape_vec(shape, weights).expect("sized"),
                )
            })
    })
}

/// Logits (vector or matrix) with valid targets and a weight for the loss.
fn logits_and_targets() -> impl Strategy<Value = (ArrayD<f64>, Vec<usize>, f64)> {
    (matrix_or_vector(5.0), -2.0..2.0f64).prop_flat_map(|(logits, weight)| {
        let classes = *logits.shape().last().expect("rank at least 1");
        let examples = if logits.ndim() == 1 {
            1
        } else {
            logits.shape()[0]
        };
        prop::collection::vec(0..classes, examples)
            .prop_map(move |targets| (logits.clone(), targets, weight))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn softmax_rows_sum_to_one_and_log_softmax_is_its_log(x in matrix_or_vector(20.0)) {
        let x = Var::constant(x);
        let p = forward(&x, |x| x.softmax());
        let log_p = forward(&x, |x| x.log_softmax());
        for row in p.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-12, "row {row} sums to {}", row.sum());
            prop_assert!(row.iter().all(|&v| v > 0.0));
        }
        for (&p, &log_p) in p.iter().zip(&log_p) {
            prop_assert!((p.ln() - log_p).abs() < 1e-10, "ln {p} = {} but log_softmax gave {log_p}", p.ln());
        }
    }

    #[test]
    fn softmax_gradient((x, weights) in values_and_weights()) {
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.softmax().bind(|p| weighted_sum(&p, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn log_softmax_gradient((x, weights) in values_and_weights()) {
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.log_softmax().bind(|p| weighted_sum(&p, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn cross_entropy_gradient((logits, targets, weight) in logits_and_targets()) {
        let weight = ndarray::arr0(weight).into_dyn();
        let mut logits = Param::new(logits);
        let report = gradcheck(&mut logits, |logits| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                logits.cross_entropy(&targets).bind(|l| weighted_sum(&l, &weight).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn cross_entropy_mean_gradient((logits, targets, weight) in logits_and_targets()) {
        let weight = ndarray::arr0(weight).into_dyn();
        let mut logits = Param::new(logits);
        let report = gradcheck(&mut logits, |logits| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                logits.cross_entropy_mean(&targets).bind(|l| weighted_sum(&l, &weight).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn cross_entropy_is_the_sum_of_negative_log_softmax((logits, targets, _) in logits_and_targets()) {
        let x = Var::constant(logits);
        let loss = forward(&x, |x| x.cross_entropy(&targets))[[]];
        let mean = forward(&x, |x| x.cross_entropy_mean(&targets))[[]];
        let log_p = forward(&x, |x| x.log_softmax());
        let expected: f64 = log_p.rows().into_iter().zip(&targets).map(|(row, &t)| -row[t]).sum();
        prop_assert!((loss - expected).abs() < 1e-10, "cross_entropy {loss}, expected {expected}");
        prop_assert!((mean - expected / targets.len() as f64).abs() < 1e-10);
    }

    #[test]
    fn mse_gradient_to_both_sides((prediction, target) in values_and_weights(), weight in -2.0..2.0f64) {
        let weight = ndarray::arr0(weight).into_dyn();
        let mut both = (Param::new(prediction), Param::new(target));
        let report = gradcheck(&mut both, |(prediction, target)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                prediction.mse(target).bind(|l| weighted_sum(&l, &weight).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn mse_gradient_to_one_side((prediction, target) in values_and_weights()) {
        // Only the prediction requires a gradient.
        let constant_target = Var::constant(target.clone());
        let mut p = Param::new(prediction.clone());
        let report = gradcheck(&mut p, |p| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| p.mse(&constant_target).bind(k)).backward()
        });
        prop_assert!(report.passes(TOLERANCE), "prediction side: {report}");

        // Only the target requires a gradient.
        let constant_prediction = Var::constant(prediction);
        let mut t = Param::new(target);
        let report = gradcheck(&mut t, |t| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| constant_prediction.mse(t).bind(k)).backward()
        });
        prop_assert!(report.passes(TOLERANCE), "target side: {report}");
    }

    #[test]
    fn dropout_gradient((x, weights) in values_and_weights(), p in 0.0..0.9f64, seed in any::<u64>()) {
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            // Re-seeded on every evaluation: the finite differences see the same mask.
            let mut rng = StdRng::seed_from_u64(seed);
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.dropout(p, &mut rng).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }
}

#[test]
fn softmax_values_by_hand() {
    // softmax([0, ln 2, ln 5]) = [1, 2, 5] / 8; adding 1000 to a row changes nothing.
    let x = Var::constant(array![
        [0.0, 2.0f64.ln(), 5.0f64.ln()],
        [1000.0, 1000.0 + 2.0f64.ln(), 1000.0 + 5.0f64.ln()]
    ]);
    let p = forward(&x, |x| x.softmax());
    for row in 0..2 {
        assert_close(p[[row, 0]], 1.0 / 8.0, "softmax[0]");
        assert_close(p[[row, 1]], 2.0 / 8.0, "softmax[1]");
        assert_close(p[[row, 2]], 5.0 / 8.0, "softmax[2]");
    }
    let log_p = forward(&x, |x| x.log_softmax());
    assert_close(log_p[[1, 0]], -(8.0f64.ln()), "log_softmax[0]");
    assert_close(log_p[[1, 2]], (5.0f64 / 8.0).ln(), "log_softmax[2]");
}

#[test]
fn softmax_backward_by_hand() {
    // y = softmax([0, ln 3]) = [1/4, 3/4]; with upstream g = [1, 0],
    // dx = y * (g - <g, y>) = [1/4 * 3/4, 3/4 * (-1/4)] = [3/16, -3/16].
    let x = Param::new(array![0.0f64, 3.0f64.ln()]);
    let weights = array![1.0, 0.0].into_dyn();
    lazy(|k: &mut dyn FnMut(Var<f64>)| x.softmax().bind(|p| weighted_sum(&p, &weights).bind(k)))
        .backward();
    assert_close(x.grad()[0], 3.0 / 16.0, "dx[0]");
    assert_close(x.grad()[1], -3.0 / 16.0, "dx[1]");
}

#[test]
fn cross_entropy_by_hand() {
    // Row 0: lse = ln(e + e^2 + e^3) = 3.40760596444438..., target 2 -> lse - 3.
    // Row 1: lse = ln(e + 1 + e^-1) = 1.40760596444438..., target 1 -> lse - 0.
    // (Both rows are the same logits shifted and reversed, hence equal lse - max.)
    let logits = Param::new(array![[1.0f64, 2.0, 3.0], [1.0, 0.0, -1.0]]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| logits.cross_entropy(&[2, 1]).bind(k)).backward();
    assert_close(
        loss,
        0.40760596444438013 + 1.4076059644443804,
        "cross_entropy",
    );
    // softmax([1, 2, 3]) = [0.09003057317038046, 0.24472847105479764, 0.6652409557748219].
    let expected = array![
        [
            0.09003057317038046,
            0.24472847105479764,
            0.6652409557748219 - 1.0
        ],
        [
            0.6652409557748219,
            0.24472847105479764 - 1.0,
            0.09003057317038046
        ],
    ];
    for (&g, &e) in logits.grad().iter().zip(&expected) {
        assert_close(g, e, "d cross_entropy / d logits");
    }

    // The mean halves both the value and the gradient.
    logits.zero_grad();
    let mean =
        lazy(|k: &mut dyn FnMut(Var<f64>)| logits.cross_entropy_mean(&[2, 1]).bind(k)).backward();
    assert_close(
        mean,
        (0.40760596444438013 + 1.4076059644443804) / 2.0,
        "cross_entropy_mean",
    );
    assert_close(
        logits.grad()[[1, 1]],
        (0.24472847105479764 - 1.0) / 2.0,
        "mean gradient",
    );
}

#[test]
fn cross_entropy_of_a_vector_and_of_huge_logits() {
    // -log_softmax([1000, 0])[1] = 1000 + ln(1 + e^-1000) = 1000 exactly in f64.
    let logits = Var::constant(array![1000.0f64, 0.0]);
    assert_eq!(forward(&logits, |x| x.cross_entropy(&[1]))[[]], 1000.0);
    assert_eq!(forward(&logits, |x| x.cross_entropy(&[0]))[[]], 0.0);
    // In f32 as well: no overflow to infinity.
    let logits = Var::constant(array![100.0f32, 0.0]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f32>)| logits.cross_entropy(&[1]).bind(k)).eval();
    assert_eq!(loss.item(), 100.0);
}

#[test]
fn mse_by_hand() {
    // ((1 - 0)^2 + (2 - 4)^2 + (-1 - -1)^2 + (3 - 0.5)^2) / 4 = (1 + 4 + 0 + 6.25) / 4
    let prediction = Param::new(array![[1.0f64, 2.0], [-1.0, 3.0]]);
    let target = Param::new(array![[0.0f64, 4.0], [-1.0, 0.5]]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| prediction.mse(&target).bind(k)).backward();
    assert_close(loss, 11.25 / 4.0, "mse");
    // 2 (prediction - target) / 4, and its negation for the target.
    let expected = array![[0.5, -1.0], [0.0, 1.25]].into_dyn();
    assert_eq!(prediction.grad(), expected);
    assert_eq!(target.grad(), -expected);
}

fn dropout_once(x: &Var<f64>, p: f64, seed: u64) -> ArrayD<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    forward(x, |x| x.dropout(p, &mut rng))
}

#[test]
fn dropout_is_reproducible_with_a_seed() {
    let x = Var::constant(ArrayD::from_shape_fn(IxDyn(&[8, 16]), |i| {
        1.0 + (i[0] * 16 + i[1]) as f64
    }));
    let first = dropout_once(&x, 0.5, 42);
    assert_eq!(first, dropout_once(&x, 0.5, 42));
    assert_ne!(
        first,
        dropout_once(&x, 0.5, 43),
        "another seed should draw another mask"
    );
    // Kept elements are scaled by 1 / (1 - p) = 2, the others are zero.
    for (&y, &x) in first.iter().zip(x.array()) {
        assert!(y == 0.0 || y == 2.0 * x, "dropout({x}) = {y}");
    }
}

#[test]
fn dropout_backward_uses_the_forward_mask() {
    let x = Param::new(ArrayD::from_elem(IxDyn(&[5, 6]), 3.0f64));
    let mut rng = StdRng::seed_from_u64(9);
    let mut output = None;
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.dropout(0.25, &mut rng).bind(|y| {
            output = Some(y.array().clone());
            y.sum().bind(k)
        })
    })
    .backward();
    let output = output.expect("the continuation ran");
    // Where the element was kept (value 3 / 0.75 = 4) the gradient is 1 / 0.75.
    for (&y, &g) in output.iter().zip(&x.grad()) {
        let expected = if y == 0.0 { 0.0 } else { 1.0 / 0.75 };
        assert!(y == 0.0 || y == 4.0, "dropout(3) = {y}");
        assert_eq!(g, expected);
    }
}

#[test]
fn dropout_keeps_one_minus_p_and_preserves_the_mean() {
    let x = Var::constant(ArrayD::from_elem(IxDyn(&[200, 500]), 1.0f64));
    for (p, seed) in [(0.1, 1), (0.3, 2), (0.5, 3), (0.8, 4)] {
        let y = dropout_once(&x, p, seed);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / y.len() as f64;
        // 100 000 Bernoulli draws: the standard deviation of the fraction is below 0.0016.
        assert!((kept - (1.0 - p)).abs() < 0.01, "p = {p}: kept {kept}");
        // The mean of y is kept / (1 - p): allow five standard deviations.
        let mean = y.mean().expect("non-empty");
        let sigma = (p / ((1.0 - p) * y.len() as f64)).sqrt();
        assert!((mean - 1.0).abs() < 5.0 * sigma, "p = {p}: mean {mean}");
    }
}

#[test]
fn dropout_with_p_zero_is_the_identity() {
    let x = Param::new(array![[1.5f64, -2.0], [0.0, 4.0]]);
    let weights = array![[1.0, 2.0], [3.0, 4.0]].into_dyn();
    let mut rng = StdRng::seed_from_u64(0);
    let mut output = None;
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.dropout(0.0, &mut rng).bind(|y| {
            output = Some(y.array().clone());
            weighted_sum(&y, &weights).bind(k)
        })
    })
    .backward();
    assert_eq!(output.expect("the continuation ran"), *x.array());
    assert_eq!(x.grad(), weights);
}

#[test]
#[should_panic(expected = "softmax: expected a tensor of rank at least 1")]
fn softmax_of_a_scalar_panics() {
    let _ = Var::scalar(1.0f64).softmax();
}

#[test]
#[should_panic(
    expected = "log_softmax: expected a tensor of rank at least 1 (it normalises along the last axis), got shape []"
)]
fn log_softmax_of_a_scalar_panics() {
    let _ = Var::scalar(1.0f64).log_softmax();
}

#[test]
#[should_panic(
    expected = "cross_entropy: shape mismatch between [3] and [2]: a vector of logits takes exactly one target, got 2"
)]
fn cross_entropy_vector_with_two_targets_panics() {
    let _ = Var::constant(array![1.0f64, 2.0, 3.0]).cross_entropy(&[0, 1]);
}

#[test]
#[should_panic(
    expected = "cross_entropy: shape mismatch between [2, 3] and [3]: one target per row: 2 rows but 3 targets"
)]
fn cross_entropy_wrong_number_of_targets_panics() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3]))).cross_entropy(&[0, 1, 2]);
}

#[test]
#[should_panic(
    expected = "cross_entropy: target 3 (example 1) is out of range for 3 classes (logits shape [2, 3])"
)]
fn cross_entropy_target_out_of_range_panics() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3]))).cross_entropy(&[0, 3]);
}

#[test]
#[should_panic(
    expected = "cross_entropy_mean: target 7 (example 0) is out of range for 4 classes (logits shape [4])"
)]
fn cross_entropy_mean_target_out_of_range_panics() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[4]))).cross_entropy_mean(&[7]);
}

#[test]
#[should_panic(
    expected = "cross_entropy: the logits must be a vector (one example) or a matrix (one example per row), got shape [2, 2, 2]"
)]
fn cross_entropy_of_rank_three_panics() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 2, 2]))).cross_entropy(&[0, 1]);
}

#[test]
#[should_panic(
    expected = "cross_entropy: the logits must be a vector (one example) or a matrix (one example per row), got shape []"
)]
fn cross_entropy_of_a_scalar_panics() {
    let _ = Var::scalar(0.5f64).cross_entropy(&[0]);
}

#[test]
#[should_panic(expected = "mse: shape mismatch between [2, 3] and [3, 2]")]
fn mse_shape_mismatch_panics() {
    let a = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3])));
    let b = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 2])));
    let _ = a.mse(&b);
}

#[test]
#[should_panic(
    expected = "dropout: the drop probability p must be in [0, 1), got 1 (input shape [3])"
)]
fn dropout_with_p_one_panics() {
    let _ = Var::constant(array![1.0f64, 2.0, 3.0]).dropout(1.0, &mut StdRng::seed_from_u64(0));
}

#[test]
#[should_panic(expected = "dropout: the drop probability p must be in [0, 1), got -0.1")]
fn dropout_with_negative_p_panics() {
    let _ = Var::constant(array![1.0f64]).dropout(-0.1, &mut StdRng::seed_from_u64(0));
}

#[test]
#[should_panic(expected = "dropout: the drop probability p must be in [0, 1), got NaN")]
fn dropout_with_nan_p_panics() {
    let _ = Var::constant(array![1.0f64]).dropout(f64::NAN, &mut StdRng::seed_from_u64(0));
}
