//! Black-box operations: the estimated `Jᵀ·g` of an opaque function
//! against the one computed analytically, for both estimators, in f64 and
//! f32, with the number of calls each makes; a biased estimator and a
//! too-large step caught by the same comparison; gradient checks with the
//! operation inside a larger computation; the panics on misuse.

use std::cell::RefCell;
use std::rc::Rc;

use cps_runtime::ops::blackbox::{
    CallCounter, CentralDifferences, ForwardDifferences, JacobianEstimator,
};
use cps_runtime::*;
use ndarray::{Array1, Array2, ArrayD, Ix1, IxDyn, array};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What "within 1e-4 relative" means for the estimates in f64.
const TOLERANCE: f64 = 1e-4;

/// The opaque function of these tests, `y = sin(M vec(x))` in the shape
/// `out_shape`, computed with plain ndarray: every output mixes every input.
fn mixing<A: Element>(
    m: Array2<A>,
    out_shape: Vec<usize>,
) -> impl Fn(&ArrayD<A>) -> ArrayD<A> + 'static {
    move |x| {
        let flat: Array1<A> = x.iter().copied().collect();
        m.dot(&flat)
            .mapv(|v| v.sin())
            .into_shape_with_order(IxDyn(&out_shape))
            .expect("M has one row per output element")
    }
}

/// The true `Jᵀ·w` of [`mixing`]: `Mᵀ (vec(w) ⊙ cos(M vec(x)))` in `x`'s shape.
fn true_vjp(m: &Array2<f64>, x: &ArrayD<f64>, w: &ArrayD<f64>) -> ArrayD<f64> {
    let flat: Array1<f64> = x.iter().copied().collect();
    let weights: Array1<f64> = w.iter().copied().collect();
    let inner = m.dot(&flat).mapv(f64::cos) * weights;
    m.t()
        .dot(&inner)
        .into_shape_with_order(x.raw_dim())
        .expect("Mᵀ has one row per input element")
}

/// `|estimate - truth| / max(|truth|, 1e-3)` in the Euclidean norm (the
/// floor keeps a nearly vanishing gradient from turning rounding into a
/// large relative error).
fn relative_error(estimate: &ArrayD<f64>, truth: &ArrayD<f64>) -> f64 {
    assert_eq!(estimate.shape(), truth.shape());
    let difference = (estimate - truth).mapv(|v| v * v).sum().sqrt();
    difference / truth.mapv(|v| v * v).sum().sqrt().max(1e-3)
}

/// The gradient of `x` after a backward pass of `sum(w * black_box(x))`,
/// with the number of calls of the function after the forward pass and in
/// all.
fn estimated<A: Element, E: JacobianEstimator<A>>(
    m: &Array2<A>,
    x: &ArrayD<A>,
    w: &ArrayD<A>,
    estimator: E,
) -> (ArrayD<A>, usize, usize) {
    let calls = CallCounter::new();
    let f = calls.wrap(mixing(m.clone(), w.shape().to_vec()));
    let x = Param::new(x.clone());
    let w = Var::constant(w.clone());
    let mut after_forward = None;
    lazy(|k: &mut dyn FnMut(Var<A>)| {
        x.black_box(f, estimator).bind(|y| {
            after_forward = Some(calls.calls());
            (&y * &w).bind(|weighted| weighted.sum().bind(k));
        });
    })
    .backward();
    (x.grad(), after_forward.expect("ran forward"), calls.calls())
}

/// A shape of rank 0 to 3 with dimensions in 1..=4.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 0..=3)
}

/// An array of the given shape with values in `-range..range`.
fn values(shape: Vec<usize>, range: f64) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    prop::collection::vec(-range..range, len).prop_map(move |values| {
        ArrayD::from_shape_vec(IxDyn(&shape), values).expect("sized to the shape")
    })
}

/// A case: `M` (one row per output element, one column per input
/// element), the input `x` and the output weights `w`, of random shapes.
fn case() -> impl Strategy<Value = (Array2<f64>, ArrayD<f64>, ArrayD<f64>)> {
    (shape(), shape()).prop_flat_map(|(input, output)| {
        let (n, m): (usize, usize) = (input.iter().product(), output.iter().product());
        (
            values(vec![m, n], 1.0),
            values(input, 2.0),
            values(output, 2.0),
        )
            .prop_map(|(m, x, w)| {
                let m = m.into_dimensionality().expect("made as a matrix");
                (m, x, w)
            })
    })
}

/// An estimator that scales another's estimate: a deliberately biased one.
struct Biased<E> {
    inner: E,
    factor: f64,
}

impl<E: JacobianEstimator<f64>> JacobianEstimator<f64> for Biased<E> {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<f64>) -> ArrayD<f64>,
        x: &ArrayD<f64>,
        y: &ArrayD<f64>,
        g: &ArrayD<f64>,
    ) -> ArrayD<f64> {
        self.inner.vjp(f, x, y, g) * self.factor
    }
}

/// Forward differences along the columns of a random orthonormal basis
/// `Q`, drawn from the generator the estimator owns: `Jᵀg = Σ_j q_j <g, J
/// q_j>`, since `Σ_j q_j q_jᵀ = I`. Not a useful estimator in itself; it
/// shows that one perturbing along random directions fits the trait.
struct RandomBasis {
    rng: StdRng,
    step: f64,
}

impl JacobianEstimator<f64> for RandomBasis {
    fn vjp(
        &mut self,
        f: &dyn Fn(&ArrayD<f64>) -> ArrayD<f64>,
        x: &ArrayD<f64>,
        y: &ArrayD<f64>,
        g: &ArrayD<f64>,
    ) -> ArrayD<f64> {
        let n = x.len();
        // Gram-Schmidt on Gaussian-like columns (sums of uniforms suffice).
        let mut basis: Vec<Array1<f64>> = Vec::with_capacity(n);
        while basis.len() < n {
            let mut q: Array1<f64> = (0..n)
                .map(|_| (0..4).map(|_| self.rng.random_range(-1.0..1.0)).sum())
                .collect();
            for b in &basis {
                q = &q - &(b * b.dot(&q));
            }
            let norm = q.dot(&q).sqrt();
            if norm > 1e-3 {
                basis.push(q / norm);
            }
        }
        let flat: Array1<f64> = x.iter().copied().collect();
        let mut estimate = Array1::<f64>::zeros(n);
        for q in &basis {
            let shifted = (&flat + &(q * self.step))
                .into_shape_with_order(x.raw_dim())
                .expect("the input's size");
            let derivative = (g * &(f(&shifted) - y)).sum() / self.step;
            estimate = estimate + q * derivative;
        }
        estimate
            .into_shape_with_order(x.raw_dim())
            .expect("the input's size")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn forward_differences_estimate_the_vjp_in_n_plus_one_calls((m, x, w) in case()) {
        let n = x.len();
        let (grad, after_forward, calls) = estimated(&m, &x, &w, ForwardDifferences::default());
        let error = relative_error(&grad, &true_vjp(&m, &x, &w));
        prop_assert!(error < TOLERANCE, "relative error {error:e}: {grad} vs {}", true_vjp(&m, &x, &w));
        prop_assert_eq!(after_forward, 1);
        prop_assert_eq!(calls, n + 1);
    }

    #[test]
    fn central_differences_estimate_the_vjp_in_2n_calls((m, x, w) in case()) {
        let n = x.len();
        let (grad, after_forward, calls) = estimated(&m, &x, &w, CentralDifferences::default());
        let error = relative_error(&grad, &true_vjp(&m, &x, &w));
        // Central differences are far more accurate than the bound asks.
        prop_assert!(error < 1e-8, "relative error {error:e}");
        prop_assert_eq!(after_forward, 1);
        prop_assert_eq!(calls - after_forward, 2 * n);
    }

    #[test]
    fn a_biased_estimator_is_caught((m, x, w) in case()) {
        let truth = true_vjp(&m, &x, &w);
        prop_assume!(truth.iter().any(|v| v.abs() > 1e-2));
        let biased = Biased { inner: CentralDifferences::default(), factor: 1.0 + 1e-3 };
        let (grad, _, _) = estimated(&m, &x, &w, biased);
        let error = relative_error(&grad, &truth);
        prop_assert!(error > TOLERANCE, "a 0.1% bias passed with relative error {error:e}");
    }

    #[test]
    fn inside_a_larger_computation_it_gradient_checks((m, x, w) in case()) {
        // loss = sum(w * f(x)) + sum(x * x): x's gradient is the estimate
        // plus 2x, accumulated into the same buffer.
        let out_shape = w.shape().to_vec();
        let w = Var::constant(w);
        for central in [false, true] {
            let mut x = Param::new(x.clone());
            let report = gradcheck(&mut x, |x| {
                let f = mixing(m.clone(), out_shape.clone());
                lazy(|k: &mut dyn FnMut(Var<f64>)| {
                    let estimator: Box<dyn JacobianEstimator<f64>> = if central {
                        Box::new(CentralDifferences::default())
                    } else {
                        Box::new(ForwardDifferences::default())
                    };
                    x.black_box(f, estimator).bind(|y| {
                        (&y * &w).bind(|weighted| {
                            weighted.sum().bind(|a| {
                                (&**x * &**x).bind(|squares| {
                                    squares.sum().bind(|b| (&a + &b).bind(k))
                                })
                            })
                        })
                    });
                })
                .backward()
            });
            prop_assert!(report.passes(if central { 1e-6 } else { 1e-5 }), "central: {central}: {report}");
        }
    }
}

#[test]
fn an_estimator_with_a_random_basis_fits_the_trait() {
    let m = array![[0.5, -1.0, 0.25], [1.5, 0.5, -0.75]];
    let x = array![[0.3, -0.6, 0.9]].into_dyn();
    let w = array![1.5, -0.5].into_dyn();
    let estimator = RandomBasis {
        rng: StdRng::seed_from_u64(27),
        step: 1e-7,
    };
    let (grad, _, calls) = estimated(&m, &x, &w, estimator);
    let error = relative_error(&grad, &true_vjp(&m, &x, &w));
    assert!(error < TOLERANCE, "relative error {error:e}");
    assert_eq!(calls, 3 + 1);
}

#[test]
fn a_step_too_large_is_caught() {
    let m = array![[0.8, -1.0], [0.6, 0.9], [-0.7, 0.4]];
    let x = array![1.2, -0.4].into_dyn();
    let w = array![1.0, -2.0, 0.5].into_dyn();
    let truth = true_vjp(&m, &x, &w);
    let (good, _, _) = estimated(&m, &x, &w, ForwardDifferences::default());
    assert!(relative_error(&good, &truth) < TOLERANCE);
    let (coarse, _, _) = estimated(&m, &x, &w, ForwardDifferences::with_step(1e-2));
    let error = relative_error(&coarse, &truth);
    assert!(
        error > TOLERANCE,
        "a step of 1e-2 passed with relative error {error:e}"
    );
}

#[test]
fn forward_values_are_the_function_s() {
    let m = array![[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]];
    let x = Var::constant(array![0.25, -0.5]);
    let y = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.black_box(mixing(m.clone(), vec![3]), ForwardDifferences::default())
            .bind(k)
    })
    .eval();
    let expected = array![(-0.75f64).sin(), 0.625f64.sin(), (-1.5f64).sin()].into_dyn();
    assert_eq!(y.array(), &expected);
}

#[test]
fn f32_estimates_are_within_what_single_precision_allows() {
    let m = array![[0.8, -1.0, 0.3], [0.6, 0.9, -0.2], [-0.7, 0.4, 1.1]];
    let x = array![[1.2, -0.4, 0.7]].into_dyn();
    let w = array![1.0, -2.0, 0.5].into_dyn();
    let truth = true_vjp(&m, &x, &w);
    let to_f32 = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
    let m32 = m.mapv(|v| v as f32);
    let (x32, w32) = (to_f32(&x), to_f32(&w));

    let (forward, _, calls) = estimated(&m32, &x32, &w32, ForwardDifferences::default());
    let error = relative_error(&forward.mapv(f64::from), &truth);
    assert!(error < 1e-3, "forward differences in f32: {error:e}");
    assert_eq!(calls, 3 + 1);

    let (central, _, calls) = estimated(&m32, &x32, &w32, CentralDifferences::default());
    let error = relative_error(&central.mapv(f64::from), &truth);
    assert!(error < 1e-4, "central differences in f32: {error:e}");
    assert_eq!(calls, 1 + 2 * 3);
}

#[test]
fn default_steps_are_the_roots_of_epsilon() {
    assert_eq!(
        ForwardDifferences::<f64>::default().step,
        f64::EPSILON.sqrt()
    );
    assert_eq!(
        CentralDifferences::<f64>::default().step,
        f64::EPSILON.cbrt()
    );
    assert_eq!(
        ForwardDifferences::<f32>::default().step,
        f32::EPSILON.sqrt()
    );
    assert_eq!(
        CentralDifferences::<f32>::default().step,
        f32::EPSILON.cbrt()
    );
}

#[test]
fn a_transposed_input_is_perturbed_in_logical_order() {
    // The input reaches the operation as the transpose of a parameter, so
    // its array may not be in standard layout.
    let m = array![
        [0.5, -1.0, 0.25, 2.0, 0.1, -0.3],
        [1.5, 0.5, -0.75, 0.2, 0.4, 1.0]
    ];
    let p = Param::new(array![[0.3, -0.6, 0.9], [0.1, 0.2, -1.1]]);
    let w = Var::constant(array![1.5, -0.5]);
    let f = mixing(m.clone(), vec![2]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        p.t().bind(|xt| {
            xt.black_box(&f, CentralDifferences::default())
                .bind(|y| (&y * &w).bind(|weighted| weighted.sum().bind(k)))
        })
    })
    .backward();
    let xt = p.array().t().to_owned().into_dyn();
    let expected = true_vjp(&m, &xt, &w.array().clone()).t().to_owned();
    let error = relative_error(&p.grad(), &expected.into_dyn());
    assert!(error < 1e-8, "relative error {error:e}");
}

#[test]
fn a_constant_input_costs_no_backward_calls() {
    let calls = CallCounter::new();
    let f = calls.wrap(|x: &ArrayD<f64>| x.mapv(f64::exp));
    let x = Var::constant(array![1.0, 2.0, 3.0]);
    let w = Param::new(array![1.0, 1.0, 1.0]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.black_box(f, CentralDifferences::default())
            .bind(|y| (&y * &*w).bind(|weighted| weighted.sum().bind(k)))
    })
    .backward();
    assert_eq!(calls.calls(), 1);
    assert!((w.grad()[2] - 3.0f64.exp()).abs() < 1e-12);
}

#[test]
fn one_estimator_shared_between_operations() {
    // Two operations share a strategy (and whatever state it keeps).
    let shared = Rc::new(RefCell::new(CentralDifferences::default()));
    let x = Param::new(array![0.5, -1.0]);
    let square = |x: &ArrayD<f64>| x.mapv(|v| v * v);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.black_box(square, Rc::clone(&shared)).bind(|a| {
            x.black_box(square, Rc::clone(&shared)).bind(|b| {
                (&a + &b).bind(|s| s.sum().bind(k));
            })
        })
    })
    .backward();
    let grad = x.grad();
    assert!(
        (grad[0] - 2.0).abs() < 1e-9 && (grad[1] + 4.0).abs() < 1e-9,
        "{grad}"
    );
}

#[test]
fn a_scalar_output_of_a_matrix_input() {
    // f(X) = sum of squares, a rank-0 output: its gradient is 2X.
    let x = Param::new(array![[1.0, -2.0], [0.5, 3.0]]);
    let f = |x: &ArrayD<f64>| ndarray::arr0(x.mapv(|v| v * v).sum()).into_dyn();
    lazy(|k: &mut dyn FnMut(Var<f64>)| x.black_box(f, ForwardDifferences::default()).bind(k))
        .backward();
    let error = relative_error(&x.grad(), &(x.array() * 2.0).into_dyn());
    assert!(error < TOLERANCE, "relative error {error:e}");
}

#[test]
#[should_panic(
    expected = "black_box: shape mismatch between [2] and [3]: the estimator must return an estimate of Jᵀg in the input's shape"
)]
fn an_estimate_of_the_wrong_shape_panics() {
    struct WrongShape;
    impl JacobianEstimator<f64> for WrongShape {
        fn vjp(
            &mut self,
            _: &dyn Fn(&ArrayD<f64>) -> ArrayD<f64>,
            _: &ArrayD<f64>,
            _: &ArrayD<f64>,
            _: &ArrayD<f64>,
        ) -> ArrayD<f64> {
            ArrayD::zeros(IxDyn(&[3]))
        }
    }
    let x = Param::new(array![1.0, 2.0]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.black_box(|x: &ArrayD<f64>| x.clone(), WrongShape)
            .bind(|y| y.sum().bind(k))
    })
    .backward();
}

#[test]
#[should_panic(
    expected = "black_box: shape mismatch between [1] and [2]: the function's output at the input and at a perturbed input must have the same shape"
)]
fn a_function_whose_output_changes_shape_panics() {
    // One output element at the input, two elsewhere.
    let f = |x: &ArrayD<f64>| {
        let x = x.view().into_dimensionality::<Ix1>().expect("a vector");
        if x[0] == 1.0 {
            array![1.0].into_dyn()
        } else {
            array![1.0, 2.0].into_dyn()
        }
    };
    let x = Param::new(array![1.0, 2.0]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.black_box(f, ForwardDifferences::default())
            .bind(|y| y.sum().bind(k))
    })
    .backward();
}

#[test]
#[should_panic(expected = "CentralDifferences: the step must be positive and finite, got 0")]
fn a_zero_step_panics() {
    let _ = CentralDifferences::with_step(0.0f64);
}
