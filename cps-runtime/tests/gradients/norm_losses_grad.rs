//! Layer and batch normalisation, channel dropout, and the losses NLL,
//! binary cross-entropy (on probabilities and on logits), Huber and smooth
//! L1: forward values against hand computations and against the
//! definitions, gradients against finite differences (`gradcheck`) on
//! random shapes and values, a negative control with a deliberately wrong
//! normalisation rule, and the panics on misuse.

use cps_runtime::ops::norm::BatchNormStats;
use cps_runtime::*;
use ndarray::{ArrayD, Axis, Dimension, IxDyn, Zip, array};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::support::{forward_value, weighted_sum};

const TOLERANCE: f64 = 1e-6;

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected}"
    );
}

/// Values in `range` for `shape`.
fn array_of(shape: Vec<usize>, range: std::ops::Range<f64>) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    prop::collection::vec(range, len).prop_map(move |values| {
        ArrayD::from_shape_vec(IxDyn(&shape), values).expect("sized to the shape")
    })
}

/// A tensor of rank 1 to 3 (sides 1 to 4), a number of trailing axes to
/// normalise, and weights for the loss.
fn layer_norm_case() -> impl Strategy<Value = (ArrayD<f64>, usize, ArrayD<f64>)> {
    prop::collection::vec(1usize..=4, 1..=3).prop_flat_map(|shape| {
        (
            array_of(shape.clone(), -3.0..3.0),
            1..=shape.len(),
            array_of(shape, -2.0..2.0),
        )
    })
}

/// An input (N, C, ...) of rank 2 to 4 with at least two values per
/// channel, and weights for the loss.
fn batch_norm_case() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    (
        1usize..=3,
        1usize..=3,
        prop::collection::vec(1usize..=3, 0..=2),
    )
        .prop_filter("two values per channel", |(n, _, rest)| {
            n * rest.iter().product::<usize>() >= 2
        })
        .prop_flat_map(|(n, c, rest)| {
            let mut shape = vec![n, c];
            shape.extend(rest);
            (
                array_of(shape.clone(), -3.0..3.0),
                array_of(shape, -2.0..2.0),
            )
        })
}

/// Predictions and targets of the same random shape (rank 1 or 2).
fn pair(
    x: std::ops::Range<f64>,
    t: std::ops::Range<f64>,
) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    prop::collection::vec(1usize..=5, 1..=2).prop_flat_map(move |shape| {
        (
            array_of(shape.clone(), x.clone()),
            array_of(shape, t.clone()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn layer_norm_gradient((x, axes, weights) in layer_norm_case(), affine in any::<bool>(), eps in 0.01..0.5f64) {
        let normalised = x.shape()[x.ndim() - axes..].to_vec();
        let gain = ArrayD::from_shape_fn(IxDyn(&normalised), |i| 1.0 + 0.1 * i.slice().iter().sum::<usize>() as f64);
        let shift = gain.mapv(|g| g - 1.5);
        let mut model = (Param::new(x), affine.then(|| (Param::new(gain), Param::new(shift))));
        let report = gradcheck(&mut model, |(x, affine)| {
            let (w, b) = match affine {
                Some((w, b)) => (Some(&**w), Some(&**b)),
                None => (None, None),
            };
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.layer_norm(axes, w, b, eps).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn layer_norm_rows_have_mean_zero_and_variance_one((x, axes, _) in layer_norm_case()) {
        let m: usize = x.shape()[x.ndim() - axes..].iter().product();
        prop_assume!(m >= 2);
        let y = forward_value(Var::constant(x.clone()).layer_norm(axes, None, None, 0.0));
        let rows = y.into_shape_with_order((x.len() / m, m)).unwrap();
        let xs = x.into_shape_with_order((rows.nrows(), m)).unwrap();
        for (row, source) in rows.rows().into_iter().zip(xs.rows()) {
            let spread = source.iter().fold(0.0f64, |s, &v| s.max((v - source[0]).abs()));
            prop_assume!(spread > 1e-3);
            let mean = row.sum() / m as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m as f64;
            prop_assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-9, "mean {mean}, var {var}");
        }
    }

    #[test]
    fn batch_norm_training_gradient((x, weights) in batch_norm_case(), eps in 0.01..0.5f64) {
        let channels = x.shape()[1];
        let gain = ArrayD::from_shape_fn(IxDyn(&[channels]), |i| 0.5 + i[0] as f64);
        let shift = ArrayD::from_shape_fn(IxDyn(&[channels]), |i| 0.25 - i[0] as f64);
        let mut model = (Param::new(x), Param::new(gain), Param::new(shift));
        let report = gradcheck(&mut model, |(x, w, b)| {
            let mut stats = BatchNormStats::new(channels);
            stats.eps = eps;
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.batch_norm(Some(w), Some(b), &mut stats).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn batch_norm_eval_gradient((x, weights) in batch_norm_case()) {
        let channels = x.shape()[1];
        let mut stats = BatchNormStats::new(channels);
        for c in 0..channels {
            stats.mean[c] = 0.3 * c as f64 - 0.2;
            stats.var[c] = 0.5 + c as f64;
        }
        let gain = ArrayD::from_elem(IxDyn(&[channels]), 1.5);
        let mut model = (Param::new(x), Param::new(gain));
        let report = gradcheck(&mut model, |(x, w)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.batch_norm_eval(Some(w), None, &stats).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn batch_norm_matches_its_definition((x, _) in batch_norm_case()) {
        // Each channel over the batch and the positions: (x - mean) / sqrt(var + eps).
        let channels = x.shape()[1];
        let mut stats = BatchNormStats::new(channels);
        let y = forward_value(Var::constant(x.clone()).batch_norm(None, None, &mut stats));
        for c in 0..channels {
            let xc = x.index_axis(Axis(1), c);
            let yc = y.index_axis(Axis(1), c);
            let n = xc.len() as f64;
            let mean = xc.sum() / n;
            let var = xc.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            for (&v, &out) in xc.iter().zip(yc.iter()) {
                prop_assert!((out - (v - mean) / (var + 1e-5).sqrt()).abs() < 1e-9);
            }
            prop_assert!((stats.mean[c] - 0.1 * mean).abs() < 1e-12);
            prop_assert!((stats.var[c] - (0.9 + 0.1 * var * n / (n - 1.0))).abs() < 1e-12);
        }
    }

    #[test]
    fn dropout2d_gradient((x, weights) in batch_norm_case(), p in 0.0..0.9f64, seed in any::<u64>()) {
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            // Re-seeded on every evaluation: the finite differences see the same mask.
            let mut rng = StdRng::seed_from_u64(seed);
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.dropout2d(p, &mut rng).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn dropout2d_drops_whole_channels((x, _) in batch_norm_case(), seed in any::<u64>()) {
        let x = x.mapv(|v| v.abs() + 1.0);
        let mut rng = StdRng::seed_from_u64(seed);
        let y = forward_value(Var::constant(x.clone()).dropout2d(0.5, &mut rng));
        for n in 0..x.shape()[0] {
            for c in 0..x.shape()[1] {
                let (xc, yc) = (x.index_axis(Axis(0), n), y.index_axis(Axis(0), n));
                let (xc, yc) = (xc.index_axis(Axis(0), c), yc.index_axis(Axis(0), c));
                let dropped = yc.iter().all(|&v| v == 0.0);
                let kept = yc.iter().zip(xc.iter()).all(|(&out, &v)| out == 2.0 * v);
                prop_assert!(dropped || kept, "channel ({n}, {c}): {yc} from {xc}");
            }
        }
    }

    #[test]
    fn nll_loss_gradient_and_agreement_with_cross_entropy(
        (logits, targets) in prop::collection::vec(1usize..=5, 1..=2).prop_flat_map(|shape| {
            let classes = *shape.last().unwrap();
            let examples = if shape.len() == 1 { 1 } else { shape[0] };
            (array_of(shape, -4.0..4.0), prop::collection::vec(0..classes, examples))
        })
    ) {
        let x = Var::constant(logits.clone());
        let log_p = forward_value(x.log_softmax());
        let nll = forward_value(Var::constant(log_p.clone()).nll_loss(&targets))[[]];
        let ce = forward_value(x.cross_entropy_mean(&targets))[[]];
        prop_assert!((nll - ce).abs() < 1e-12, "nll {nll}, cross-entropy {ce}");

        let mut log_p = Param::new(log_p);
        let report = gradcheck(&mut log_p, |log_p| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| log_p.nll_loss(&targets).bind(|l| l.square().bind(k))).backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn binary_cross_entropy_gradient_to_both_sides((p, t) in pair(0.05..0.95, 0.0..1.0)) {
        let mut both = (Param::new(p), Param::new(t));
        let report = gradcheck(&mut both, |(p, t)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| p.binary_cross_entropy(t).bind(|l| l.square().bind(k))).backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn binary_cross_entropy_with_logits_gradient_and_value((x, t) in pair(-6.0..6.0, 0.0..1.0)) {
        // The same loss as the probabilities' after a sigmoid.
        let with_logits = forward_value(Var::constant(x.clone()).binary_cross_entropy_with_logits(&Var::constant(t.clone())))[[]];
        let p = x.mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let plain = forward_value(Var::constant(p).binary_cross_entropy(&Var::constant(t.clone())))[[]];
        prop_assert!((with_logits - plain).abs() < 1e-9, "{with_logits} against {plain}");

        let mut both = (Param::new(x), Param::new(t));
        let report = gradcheck(&mut both, |(x, t)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.binary_cross_entropy_with_logits(t).bind(|l| l.square().bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn huber_and_smooth_l1_gradients_to_both_sides((x, t) in pair(-3.0..3.0, -3.0..3.0), delta in 0.2..2.0f64) {
        // Away from |d| = 0, where smooth L1 with beta = 0 has a corner.
        prop_assume!(Zip::from(&x).and(&t).all(|&a, &b| (a - b).abs() > 1e-3));
        let mut both = (Param::new(x), Param::new(t));
        for beta in [delta, 0.0] {
            let report = gradcheck(&mut both, |(x, t)| {
                lazy(|k: &mut dyn FnMut(Var<f64>)| x.smooth_l1(t, beta).bind(|l| l.square().bind(k))).backward()
            });
            prop_assert!(report.passes(TOLERANCE), "smooth_l1 (beta {beta}): {report}");
        }
        let report = gradcheck(&mut both, |(x, t)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| x.huber(t, delta).bind(|l| l.square().bind(k))).backward()
        });
        prop_assert!(report.passes(TOLERANCE), "huber: {report}");
        // Huber is smooth L1 times delta.
        let huber = forward_value(both.0.huber(&both.1, delta))[[]];
        let smooth = forward_value(both.0.smooth_l1(&both.1, delta))[[]];
        prop_assert!((huber - delta * smooth).abs() < 1e-12);
    }
}

#[test]
fn layer_norm_by_hand() {
    // Row [1, 2, 3]: mean 2, biased variance 2/3; with eps = 1/3 the
    // deviation is 1, so y = x - 2, then times [1, 2, 3] plus 0.5.
    let x = Var::constant(array![[1.0f64, 2.0, 3.0]]);
    let w = Var::constant(array![1.0f64, 2.0, 3.0]);
    let b = Var::constant(array![0.5f64, 0.5, 0.5]);
    let y = forward_value(x.layer_norm(1, Some(&w), Some(&b), 1.0 / 3.0));
    assert_eq!(y, array![[-0.5, 0.5, 3.5]].into_dyn());
}

#[test]
fn layer_norm_backward_by_hand() {
    // Two elements a, b: x̂ = ±(a - b)/|a - b| with eps = 0, a constant;
    // so the input's gradient is 0 whatever the weights, and the gain's is
    // g·x̂ = [g0·(-1), g1·1].
    let x = Param::new(array![1.0f64, 5.0]);
    let w = Param::new(array![2.0f64, 3.0]);
    let weights = array![0.25f64, 4.0].into_dyn();
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.layer_norm(1, Some(&w), None, 0.0)
            .bind(|y| weighted_sum(&y, &weights).bind(k))
    })
    .backward();
    assert_close(x.grad()[0], 0.0, "dx0");
    assert_close(x.grad()[1], 0.0, "dx1");
    assert_eq!(w.grad(), array![-0.25, 4.0].into_dyn());
}

#[test]
fn batch_norm_eval_by_hand() {
    // (x - 1) / sqrt(4) · 3 + 1 per element; its gradient 3/2.
    let mut stats = BatchNormStats::new(1);
    stats.mean[0] = 1.0;
    stats.var[0] = 4.0;
    stats.eps = 0.0;
    let x = Param::new(array![[[5.0f64, -1.0]]]);
    let w = Var::constant(array![3.0f64]);
    let b = Var::constant(array![1.0f64]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.batch_norm_eval(Some(&w), Some(&b), &stats).bind(|y| {
            assert_eq!(y.array(), &array![[[7.0, -2.0]]].into_dyn());
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(loss, 5.0);
    assert_eq!(x.grad(), array![[[1.5, 1.5]]].into_dyn());
    assert_eq!(stats.mean[0], 1.0, "inference leaves the statistics alone");
}

#[test]
fn losses_by_hand() {
    // NLL of a vector: -log_p[target].
    let log_p = Var::constant(array![-0.1f64, -2.5, -3.0]);
    assert_eq!(forward_value(log_p.nll_loss(&[1]))[[]], 2.5);
    // BCE clamps the log at -100: p = 0 with target 1 costs 100, not inf.
    let p = Var::constant(array![0.0f64, 1.0]);
    let t = Var::constant(array![1.0f64, 1.0]);
    assert_eq!(forward_value(p.binary_cross_entropy(&t))[[]], 50.0);
    // BCE with logits of -800 and target 1 is 800 (softplus(800)), finite.
    let x = Var::constant(array![-800.0f64]);
    let t = Var::constant(array![1.0f64]);
    assert_eq!(
        forward_value(x.binary_cross_entropy_with_logits(&t))[[]],
        800.0
    );
    // Huber with delta 2 at d = [1, -5]: [0.5, 2·(5 - 1)] averaged.
    let x = Var::constant(array![1.0f64, -5.0]);
    let zero = Var::constant(array![0.0f64, 0.0]);
    assert_eq!(forward_value(x.huber(&zero, 2.0))[[]], (0.5 + 8.0) / 2.0);
    // Smooth L1 with beta 0 is the mean absolute error.
    assert_eq!(forward_value(x.smooth_l1(&zero, 0.0))[[]], 3.0);
}

/// Layer normalisation with the classic slip in its backward step: the
/// mean and the deviation treated as constants (`dx = g·r`).
fn layer_norm_with_constant_statistics(
    x: &Var<f64>,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let value = forward_value(x.layer_norm(1, None, None, 0.0));
    let input = x.clone();
    Pending::new(
        "wrong_layer_norm",
        value,
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let mut dx = grad.clone();
            for (mut row, source) in dx.rows_mut().into_iter().zip(input.array().rows()) {
                let m = source.len() as f64;
                let mean = source.sum() / m;
                let var = source.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
                row.mapv_inplace(|g| g / var.sqrt());
            }
            input.accumulate(dx);
        },
    )
}

#[test]
fn gradcheck_rejects_normalisation_statistics_treated_as_constants() {
    let weights = array![[1.0f64, -2.0, 0.5], [0.3, 0.7, -1.1]].into_dyn();
    let mut x = Param::new(array![[0.5f64, -1.0, 2.0], [1.5, 0.25, -0.75]]);
    let report = gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            layer_norm_with_constant_statistics(x).bind(|y| weighted_sum(&y, &weights).bind(k))
        })
        .backward()
    });
    assert!(!report.passes(1e-2), "{report}");
    // The library's rule passes the same check.
    let report = gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            x.layer_norm(1, None, None, 0.0)
                .bind(|y| weighted_sum(&y, &weights).bind(k))
        })
        .backward()
    });
    assert!(report.passes(TOLERANCE), "{report}");
}

#[test]
fn layer_norm_and_batch_norm_in_f32() {
    let x = Param::new(array![[1.0f32, 2.0, 4.0], [3.0, -1.0, 0.5]]);
    let mut stats = BatchNormStats::<f32>::new(3);
    let loss = lazy(|k: &mut dyn FnMut(Var<f32>)| {
        x.layer_norm(1, None, None, 1e-5).bind(|y| {
            y.batch_norm(None, None, &mut stats)
                .bind(|z| z.square().bind(|s| s.sum().bind(k)))
        })
    })
    .backward();
    // Each batch-normalised column of two values is ±1 (up to eps): 6 squares of ~1.
    assert!((loss - 6.0).abs() < 1e-3, "{loss}");
    assert!(x.grad().iter().all(|g| g.is_finite()));
}

#[test]
#[should_panic(
    expected = "layer_norm: shape mismatch between [2, 3] and [2]: the weight must have the normalised shape [3]"
)]
fn layer_norm_names_a_wrong_weight() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2])));
    let _ = x.layer_norm(1, Some(&w), None, 1e-5);
}

#[test]
#[should_panic(
    expected = "layer_norm: normalises over the last 1 to 2 axes of shape [2, 3], got 3"
)]
fn layer_norm_rejects_too_many_axes() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3])));
    let _ = x.layer_norm(3, None, None, 1e-5);
}

#[test]
#[should_panic(
    expected = "batch_norm: training needs more than one value per channel, got shape [1, 4]"
)]
fn batch_norm_rejects_one_value_per_channel() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 4])));
    let _ = x.batch_norm(None, None, &mut BatchNormStats::new(4));
}

#[test]
#[should_panic(expected = "batch_norm_eval: shape mismatch between [2, 4] and [3]")]
fn batch_norm_names_statistics_of_another_size() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 4])));
    let _ = x.batch_norm_eval(None, None, &BatchNormStats::new(3));
}

#[test]
#[should_panic(expected = "dropout2d: the drop probability p must be in [0, 1), got 1")]
fn dropout2d_rejects_p_one() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 4])));
    let _ = x.dropout2d(1.0, &mut StdRng::seed_from_u64(0));
}

#[test]
#[should_panic(
    expected = "nll_loss: target 3 (example 1) is out of range for 3 classes (log-probabilities shape [2, 3])"
)]
fn nll_loss_names_a_target_out_of_range() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3])));
    let _ = x.nll_loss(&[0, 3]);
}

#[test]
#[should_panic(
    expected = "binary_cross_entropy: the predictions must be probabilities in [0, 1], got 1.5"
)]
fn binary_cross_entropy_rejects_a_non_probability() {
    let p = Var::constant(array![0.5f64, 1.5]);
    let t = Var::constant(array![0.0f64, 1.0]);
    let _ = p.binary_cross_entropy(&t);
}

#[test]
#[should_panic(expected = "huber: shape mismatch between [2] and [3]")]
fn huber_names_mismatched_shapes() {
    let x = Var::constant(array![0.5f64, 1.5]);
    let t = Var::constant(array![0.0f64, 1.0, 2.0]);
    let _ = x.huber(&t, 1.0);
}

#[test]
#[should_panic(expected = "huber: delta must be positive, got 0")]
fn huber_rejects_a_zero_delta() {
    let x = Var::constant(array![0.5f64]);
    let _ = x.huber(&x, 0.0);
}
