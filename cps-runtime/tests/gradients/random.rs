//! Random tensors (`normal`, `uniform`, `randn_like`, `bernoulli`), the
//! categorical sampler and its differentiable log-probability: sample
//! statistics within a few standard errors of the distribution's for a
//! fixed seed, reproducibility, the panics on misuse, the log-probability's
//! gradient against finite differences, and the two estimators the
//! samplers exist for (reparameterised and score-function gradients)
//! against the exact gradients of known expectations.

use cps_runtime::*;
use ndarray::{ArrayD, Axis, IxDyn, array};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::support::weighted_sum;

const TOLERANCE: f64 = 1e-6;

/// How many standard errors a sample statistic may stray: with a fixed
/// seed the test is deterministic, and 5 standard errors is far enough
/// out that a correct sampler does not land there by chance.
const STANDARD_ERRORS: f64 = 5.0;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Sample mean and (unbiased) variance.
fn moments<A: Element>(x: &ArrayD<A>) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.to_f64_lossless()).sum::<f64>() / n;
    let variance = x
        .iter()
        .map(|v| (v.to_f64_lossless() - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    (mean, variance)
}

/// Asserts that a frequency `count / n` is within the standard errors of
/// the probability `p`.
fn assert_frequency(count: usize, n: usize, p: f64, what: &str) {
    let frequency = count as f64 / n as f64;
    let error = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        (frequency - p).abs() <= STANDARD_ERRORS * error,
        "{what}: frequency {frequency} for probability {p} ({count} of {n})"
    );
}

#[test]
fn normal_moments_in_f64_and_f32() {
    let n = 20_000;
    let (mean, std) = (3.0, 0.5);
    let x = Var::<f64>::normal(&[100, 200], mean, std, &mut rng(1));
    assert_eq!(x.shape(), &[100, 200]);
    assert!(!x.requires_grad());
    let (m, v) = moments(x.array());
    assert!(
        (m - mean).abs() <= STANDARD_ERRORS * std / (n as f64).sqrt(),
        "mean {m}"
    );
    // The standard error of a normal sample's variance is sigma^2 sqrt(2/n).
    let variance = std * std;
    assert!(
        (v - variance).abs() <= STANDARD_ERRORS * variance * (2.0 / n as f64).sqrt(),
        "variance {v}"
    );
    // The shape, not only the moments: about 68.27% within one standard
    // deviation, 95.45% within two.
    let within = |k: f64| {
        x.array()
            .iter()
            .filter(|&&v| (v - mean).abs() < k * std)
            .count()
    };
    assert_frequency(within(1.0), n, 0.6826894921370859, "within 1 sd");
    assert_frequency(within(2.0), n, 0.9544997361036416, "within 2 sd");

    let x = Var::<f32>::normal(&[n], -1.0, 2.0, &mut rng(2));
    let (m, v) = moments(x.array());
    assert!(
        (m + 1.0).abs() <= STANDARD_ERRORS * 2.0 / (n as f64).sqrt(),
        "f32 mean {m}"
    );
    assert!(
        (v - 4.0).abs() <= STANDARD_ERRORS * 4.0 * (2.0 / n as f64).sqrt(),
        "f32 variance {v}"
    );
}

#[test]
fn normal_edge_cases() {
    // A zero standard deviation gives the mean exactly; empty shapes and
    // scalars work.
    let x = Var::<f64>::normal(&[3, 2], 1.5, 0.0, &mut rng(0));
    assert!(x.array().iter().all(|&v| v == 1.5));
    assert_eq!(
        Var::<f64>::normal(&[0, 4], 0.0, 1.0, &mut rng(0)).shape(),
        &[0, 4]
    );
    assert_eq!(Var::<f64>::normal(&[], 0.0, 1.0, &mut rng(0)).len(), 1);
}

#[test]
fn randn_like_is_standard_normal_of_the_same_shape() {
    let template = Param::new(ArrayD::<f64>::zeros(IxDyn(&[50, 40, 10])));
    let eps = template.randn_like(&mut rng(3));
    assert_eq!(eps.shape(), &[50, 40, 10]);
    assert!(!eps.requires_grad());
    let n = eps.len() as f64;
    let (m, v) = moments(eps.array());
    assert!(m.abs() <= STANDARD_ERRORS / n.sqrt(), "mean {m}");
    assert!(
        (v - 1.0).abs() <= STANDARD_ERRORS * (2.0 / n).sqrt(),
        "variance {v}"
    );
}

#[test]
fn uniform_bounds_and_moments() {
    let n = 20_000;
    let (low, high) = (-2.0, 3.0);
    let x = Var::<f64>::uniform(&[n], low, high, &mut rng(4));
    assert!(x.array().iter().all(|&v| (low..high).contains(&v)));
    let (m, v) = moments(x.array());
    // Mean (low + high) / 2, variance (high - low)^2 / 12; the variance of
    // a uniform sample's variance is (high - low)^4 / 180 / n.
    let width: f64 = high - low;
    assert!(
        (m - 0.5).abs() <= STANDARD_ERRORS * width / (12.0 * n as f64).sqrt(),
        "mean {m}"
    );
    assert!(
        (v - width * width / 12.0).abs()
            <= STANDARD_ERRORS * width.powi(2) / (180.0 * n as f64).sqrt(),
        "variance {v}"
    );
    // Quarters of the interval are equally likely.
    for quarter in 0..4 {
        let from = low + width * quarter as f64 / 4.0;
        let count = x
            .array()
            .iter()
            .filter(|&&v| v >= from && v < from + width / 4.0)
            .count();
        assert_frequency(count, n, 0.25, &format!("quarter {quarter}"));
    }
    // f32: the upper bound stays out even where rounding to f32 could reach it.
    let x = Var::<f32>::uniform(&[n], 0.0, 1.0, &mut rng(5));
    assert!(x.array().iter().all(|&v| (0.0..1.0).contains(&v)));
    let x = Var::<f32>::uniform(&[n], 1.0, 1.0 + 4.0 * f32::EPSILON, &mut rng(6));
    assert!(
        x.array()
            .iter()
            .all(|&v| (1.0..1.0 + 4.0 * f32::EPSILON).contains(&v))
    );
}

#[test]
fn same_seed_same_tensors_other_seed_other_tensors() {
    let draw = |seed: u64| {
        let mut rng = rng(seed);
        let probabilities = Var::constant(array![[0.2f64, 0.3, 0.5], [0.6, 0.4, 0.0]]);
        (
            Var::<f64>::normal(&[4, 3], 0.0, 1.0, &mut rng)
                .array()
                .clone(),
            Var::<f32>::uniform(&[5], 0.0, 1.0, &mut rng)
                .array()
                .clone(),
            probabilities.bernoulli(&mut rng).array().clone(),
            probabilities.categorical(&mut rng),
            probabilities.randn_like(&mut rng).array().clone(),
        )
    };
    assert_eq!(draw(7), draw(7));
    let (a, b) = (draw(7), draw(8));
    assert_ne!(a.0, b.0);
    assert_ne!(a.1, b.1);
    assert_ne!(a.4, b.4);
}

#[test]
fn bernoulli_frequencies() {
    let rows = 10_000;
    let p = [0.0, 0.1, 0.5, 0.9, 1.0];
    let probabilities = Var::constant(ArrayD::from_shape_fn(IxDyn(&[rows, p.len()]), |i| p[i[1]]));
    let b = probabilities.bernoulli(&mut rng(9));
    assert_eq!(b.shape(), &[rows, p.len()]);
    assert!(!b.requires_grad());
    assert!(b.array().iter().all(|&v| v == 0.0 || v == 1.0));
    let counts = b.array().sum_axis(Axis(0));
    for (j, &p) in p.iter().enumerate() {
        assert_frequency(counts[j] as usize, rows, p, &format!("column {j}"));
    }
    // Certain outcomes are certain.
    assert_eq!(counts[0], 0.0);
    assert_eq!(counts[4], rows as f64);
    // In f32.
    let b = Var::constant(ArrayD::from_elem(IxDyn(&[20_000]), 0.3f32)).bernoulli(&mut rng(10));
    assert_frequency(b.array().sum() as usize, 20_000, 0.3, "f32");
}

#[test]
#[should_panic(expected = "bernoulli: expected probabilities in [0, 1], got 1.5 at [1, 0]")]
fn bernoulli_of_a_non_probability_panics() {
    let _ = Var::constant(array![[0.5f64], [1.5]]).bernoulli(&mut rng(0));
}

#[test]
#[should_panic(expected = "bernoulli: expected probabilities in [0, 1], got NaN")]
fn bernoulli_of_nan_panics() {
    let _ = Var::constant(array![f64::NAN]).bernoulli(&mut rng(0));
}

#[test]
#[should_panic(
    expected = "normal: expected a finite mean and a finite, non-negative standard deviation"
)]
fn normal_with_a_negative_std_panics() {
    let _ = Var::<f64>::normal(&[2], 0.0, -1.0, &mut rng(0));
}

#[test]
#[should_panic(expected = "uniform: expected finite bounds with low < high, got low 1 and high 1")]
fn uniform_with_an_empty_interval_panics() {
    let _ = Var::<f64>::uniform(&[2], 1.0, 1.0, &mut rng(0));
}

#[test]
fn categorical_frequencies() {
    let rows = 20_000;
    let p = [0.2, 0.5, 0.0, 0.3];
    let probabilities = Var::constant(ArrayD::from_shape_fn(IxDyn(&[rows, p.len()]), |i| p[i[1]]));
    let drawn = probabilities.categorical(&mut rng(11));
    assert_eq!(drawn.len(), rows);
    let mut counts = [0usize; 4];
    for &i in &drawn {
        counts[i] += 1;
    }
    // A class of probability 0 is never drawn.
    assert_eq!(counts[2], 0);
    for (j, &p) in p.iter().enumerate() {
        assert_frequency(counts[j], rows, p, &format!("class {j}"));
    }
    // A vector is one distribution: one index per draw.
    let vector = Var::constant(array![0.1f32, 0.0, 0.9]);
    let mut generator = rng(12);
    let mut counts = [0usize; 3];
    for _ in 0..10_000 {
        let drawn = vector.categorical(&mut generator);
        assert_eq!(drawn.len(), 1);
        counts[drawn[0]] += 1;
    }
    assert_eq!(counts[1], 0);
    assert_frequency(counts[0], 10_000, 0.1, "f32 vector, class 0");
    // A zero at the end and a last class that takes everything.
    let edge = Var::constant(array![[0.0f64, 0.0, 1.0], [1.0, 0.0, 0.0]]);
    for seed in 0..100 {
        assert_eq!(edge.categorical(&mut rng(seed)), vec![2, 0]);
    }
}

#[test]
#[should_panic(
    expected = "categorical: expected each row of probabilities to sum to 1, row 1 sums to 3"
)]
fn categorical_of_logits_panics() {
    let _ = Var::constant(array![[0.5f64, 0.5], [1.0, 2.0]]).categorical(&mut rng(0));
}

#[test]
#[should_panic(
    expected = "categorical: expected non-negative finite probabilities, got -0.5 at row 0, class 1"
)]
fn categorical_of_a_negative_probability_panics() {
    let _ = Var::constant(array![1.0f64, -0.5, 0.5]).categorical(&mut rng(0));
}

#[test]
#[should_panic(
    expected = "categorical: the probabilities must be a vector (one distribution) or a matrix"
)]
fn categorical_of_a_3d_tensor_panics() {
    let _ = Var::constant(ArrayD::from_elem(IxDyn(&[2, 2, 2]), 0.5f64)).categorical(&mut rng(0));
}

#[test]
fn categorical_log_prob_by_hand() {
    // Rows [0.25, 0.75] and [0.5, 0.5], indices [1, 0]: ln 0.75 and ln 0.5;
    // the gradient of their sum is 1/p at the chosen elements.
    let p = Param::new(array![[0.25f64, 0.75], [0.5, 0.5]]);
    let mut value = None;
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        p.categorical_log_prob(&[1, 0]).bind(|lp| {
            value = Some(lp.array().clone());
            lp.sum().bind(&mut *k)
        })
    });
    assert!((loss.backward() - (0.75f64.ln() + 0.5f64.ln())).abs() < 1e-15);
    assert_eq!(value.unwrap(), array![0.75f64.ln(), 0.5f64.ln()].into_dyn());
    assert_eq!(p.grad(), array![[0.0, 1.0 / 0.75], [2.0, 0.0]].into_dyn());

    // A vector: one index, a zero-dimensional result.
    let p = Param::new(array![0.2f32, 0.8]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f32>)| p.categorical_log_prob(&[0]).bind(&mut *k));
    assert_eq!(loss.backward(), 0.2f32.ln());
    assert_eq!(p.grad(), array![5.0f32, 0.0].into_dyn());
}

#[test]
#[should_panic(expected = "categorical_log_prob: shape mismatch between [2, 2] and [3]")]
fn categorical_log_prob_with_the_wrong_number_of_indices_panics() {
    let _ = Var::constant(array![[0.5f64, 0.5], [0.5, 0.5]]).categorical_log_prob(&[0, 1, 0]);
}

#[test]
#[should_panic(expected = "categorical_log_prob: index 2 (row 1) is out of range for 2 classes")]
fn categorical_log_prob_with_an_index_out_of_range_panics() {
    let _ = Var::constant(array![[0.5f64, 0.5], [0.5, 0.5]]).categorical_log_prob(&[0, 2]);
}

/// Positive probabilities (a vector or a matrix, rows normalised) with one
/// valid index per row and a weight per row.
fn probabilities_and_indices() -> impl Strategy<Value = (ArrayD<f64>, Vec<usize>, ArrayD<f64>)> {
    (1usize..=5, 1usize..=5, prop::bool::ANY).prop_flat_map(|(rows, classes, vector)| {
        let rows = if vector { 1 } else { rows };
        (
            prop::collection::vec(0.05..1.0f64, rows * classes),
            prop::collection::vec(0..classes, rows),
            prop::collection::vec(-2.0..2.0f64, rows),
        )
            .prop_map(move |(values, indices, weights)| {
                let mut p = ArrayD::from_shape_vec(IxDyn(&[rows, classes]), values).unwrap();
                for mut row in p.rows_mut() {
                    let total = row.sum();
                    row /= total;
                }
                let (p, weights) = if vector {
                    (
                        p.into_shape_with_order(IxDyn(&[classes])).unwrap(),
                        ArrayD::from_elem(IxDyn(&[]), weights[0]),
                    )
                } else {
                    (p, ArrayD::from_shape_vec(IxDyn(&[rows]), weights).unwrap())
                };
                (p, indices, weights)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn categorical_log_prob_gradient((p, indices, weights) in probabilities_and_indices()) {
        // Used twice, so that the second backward step adds into the
        // gradient the first left.
        let mut p = Param::new(p);
        let report = gradcheck(&mut p, |p| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                p.categorical_log_prob(&indices).bind(|a| {
                    p.categorical_log_prob(&indices).bind(|b| {
                        weighted_sum(&a, &weights).bind(|s| {
                            weighted_sum(&b, &weights).bind(|t| (s + t).bind(&mut *k))
                        })
                    })
                })
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn reparameterised_gradient_matches_finite_differences(
        mu in prop::collection::vec(-2.0..2.0f64, 3),
        sigma in prop::collection::vec(0.1..2.0f64, 3),
        seed in any::<u64>(),
    ) {
        // E[sum tanh(mu + sigma * eps)] over 16 draws of eps. The generator
        // is re-seeded on every evaluation, so the finite differences see
        // the same eps as the backward pass.
        let mut model = (
            Param::new(ArrayD::from_shape_vec(IxDyn(&[3]), mu).unwrap()),
            Param::new(ArrayD::from_shape_vec(IxDyn(&[3]), sigma).unwrap()),
        );
        let report = gradcheck(&mut model, |(mu, sigma)| {
            let eps = Var::normal(&[16, 3], 0.0, 1.0, &mut rng(seed));
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                (&eps * sigma).bind(|s| {
                    (&s + mu).bind(|z| z.tanh().bind(|t| t.mean().bind(&mut *k)))
                })
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }
}

#[test]
fn reparameterised_gradient_estimates_the_expectations() {
    // E[(mu + sigma eps)^2] = mu^2 + sigma^2, whose gradients are 2 mu and
    // 2 sigma. The estimate from n draws, d/d mu = mean(2z) and
    // d/d sigma = mean(2 z eps), has standard errors 2 sigma / sqrt(n) and
    // 2 sqrt(mu^2 + 2 sigma^2) / sqrt(n).
    let n = 20_000;
    let mu = Param::new(array![0.5f64, -1.0, 2.0]);
    let sigma = Param::new(array![1.0f64, 0.3, 1.5]);
    let eps = Var::normal(&[n, 3], 0.0, 1.0, &mut rng(13));
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (&eps * &sigma).bind(|s| {
            (&s + &mu).bind(|z| {
                z.square().bind(|q| {
                    q.sum_axis(0)
                        .bind(|q| (q / n as f64).bind(|q| q.sum().bind(&mut *k)))
                })
            })
        })
    });
    loss.backward();
    for i in 0..3 {
        let (m, s) = (mu.array()[i], sigma.array()[i]);
        let error_mu = 2.0 * s / (n as f64).sqrt();
        let error_sigma = 2.0 * (m * m + 2.0 * s * s).sqrt() / (n as f64).sqrt();
        assert!(
            (mu.grad()[i] - 2.0 * m).abs() <= STANDARD_ERRORS * error_mu,
            "d/d mu[{i}] = {}, expected about {}",
            mu.grad()[i],
            2.0 * m
        );
        assert!(
            (sigma.grad()[i] - 2.0 * s).abs() <= STANDARD_ERRORS * error_sigma,
            "d/d sigma[{i}] = {}, expected about {}",
            sigma.grad()[i],
            2.0 * s
        );
    }
}

#[test]
fn score_function_gradient_estimates_the_expectation() {
    // REINFORCE: with p = softmax(logits) and a reward f per class,
    // mean over draws a ~ p of f(a) * grad ln p(a) estimates the gradient
    // of E[f] = sum_i p_i f_i, which is p_i (f_i - E[f]) for logit i.
    // The estimate's standard error for logit i is sqrt(Var[X_i] / n),
    // X_i = f(a) (1[a = i] - p_i), whose variance is computed exactly below.
    let n = 20_000;
    let reward = [1.0, -2.0, 3.0];
    let logits = Param::new(array![[0.2f64, -0.3, 0.5]]);
    let mut generator = rng(14);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        // The one row of logits, repeated once per draw.
        logits.rows(&vec![0; n]).bind(|l| {
            l.softmax().bind(|p| {
                let drawn = p.categorical(&mut generator);
                let weights =
                    ArrayD::from_shape_fn(IxDyn(&[n]), |i| reward[drawn[i[0]]] / n as f64);
                p.categorical_log_prob(&drawn)
                    .bind(|lp| weighted_sum(&lp, &weights).bind(&mut *k))
            })
        })
    });
    loss.backward();
    let e = logits.array().mapv(f64::exp);
    let p = &e / e.sum();
    let expected_f: f64 = (0..3).map(|i| p[[0, i]] * reward[i]).sum();
    for i in 0..3 {
        let expected = p[[0, i]] * (reward[i] - expected_f);
        let second_moment: f64 = (0..3)
            .map(|a| {
                let x = reward[a] * (f64::from(u8::from(a == i)) - p[[0, i]]);
                p[[0, a]] * x * x
            })
            .sum();
        let error = ((second_moment - expected * expected) / n as f64).sqrt();
        let estimate = logits.grad()[[0, i]];
        assert!(
            (estimate - expected).abs() <= STANDARD_ERRORS * error,
            "d/d logit {i}: estimate {estimate}, exact {expected} (standard error {error})"
        );
    }
}
