//! The elementwise functions of `ops::unary` (sin, cos, pow, pow_var,
//! log1p, expm1, softplus, leaky_relu, elu, erf, normal_cdf, gelu, clamp,
//! sign, where_): gradients against central finite differences
//! (`gradcheck`) on random shapes and values, forward values against
//! numbers computed independently (CPython's `math.erf`, `math.erfc`,
//! `math.log1p`, `math.expm1`), the documented choices at kinks and
//! domain edges, f32 against f64, the panics on misuse, and negative
//! controls that a wrong rule would not pass.

use cps_runtime::*;
use ndarray::{ArrayD, IxDyn, array};
use proptest::prelude::*;

use crate::support::weighted_sum;

const TOLERANCE: f64 = 1e-6;

/// A unary function under test, with its constant arguments.
#[derive(Clone, Copy, Debug)]
enum Unary {
    Sin,
    Cos,
    Pow(f64),
    Log1p,
    Expm1,
    Softplus,
    LeakyRelu(f64),
    Elu(f64),
    Erf,
    NormalCdf,
    Gelu,
    Clamp(f64, f64),
    Sign,
}

impl Unary {
    /// Runs the function on `x` and hands the result to `k`.
    fn run<A: Element>(self, x: &Var<A>, k: &mut dyn FnMut(Var<A>)) {
        let c = A::from_f64_lossy;
        match self {
            Unary::Sin => x.sin().bind(k),
            Unary::Cos => x.cos().bind(k),
            Unary::Pow(p) => x.pow(c(p)).bind(k),
            Unary::Log1p => x.log1p().bind(k),
            Unary::Expm1 => x.expm1().bind(k),
            Unary::Softplus => x.softplus().bind(k),
            Unary::LeakyRelu(slope) => x.leaky_relu(c(slope)).bind(k),
            Unary::Elu(alpha) => x.elu(c(alpha)).bind(k),
            Unary::Erf => x.erf().bind(k),
            Unary::NormalCdf => x.normal_cdf().bind(k),
            Unary::Gelu => x.gelu().bind(k),
            Unary::Clamp(lo, hi) => x.clamp(c(lo), c(hi)).bind(k),
            Unary::Sign => x.sign().bind(k),
        }
    }

    /// Where the function has a kink or a jump (finite differences across
    /// one are meaningless).
    fn kinks(self) -> Vec<f64> {
        match self {
            Unary::LeakyRelu(_) | Unary::Elu(_) | Unary::Sign => vec![0.0],
            Unary::Clamp(lo, hi) => vec![lo, hi],
            _ => Vec::new(),
        }
    }

    /// The range the random inputs are drawn from: the function's domain,
    /// kept where its values are of moderate size.
    fn range(self) -> (f64, f64) {
        match self {
            Unary::Pow(_) => (0.2, 3.0),
            Unary::Log1p => (-0.8, 3.0),
            _ => (-4.0, 4.0),
        }
    }
}

/// `f(x)` forward only.
fn forward<A: Element>(f: Unary, x: ArrayD<A>) -> ArrayD<A> {
    let x = Var::constant(x);
    lazy(|k: &mut dyn FnMut(Var<A>)| f.run(&x, k))
        .eval()
        .array()
        .clone()
}

/// `f(x)` and the gradient of `sum(f(x))` with respect to `x`.
fn value_and_grad<A: Element>(f: Unary, x: ArrayD<A>) -> (ArrayD<A>, ArrayD<A>) {
    let x = Param::new(x);
    let mut value = None;
    lazy(|k: &mut dyn FnMut(Var<A>)| {
        f.run(&x, &mut |y: Var<A>| {
            value = Some(y.array().clone());
            y.sum().bind(&mut *k)
        })
    })
    .backward();
    (value.expect("ran"), x.grad())
}

/// Checks the gradient of `w1 · f(x) + w2 · f(x)`: `f` applied twice, so
/// that one backward step finds the input without a gradient and the
/// other adds into the one the first left.
fn gradient_check(f: Unary, x: ArrayD<f64>, w1: &ArrayD<f64>, w2: &ArrayD<f64>) -> GradcheckReport {
    let mut x = Param::new(x);
    gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            f.run(x, &mut |y1: Var<f64>| {
                f.run(x, &mut |y2: Var<f64>| {
                    weighted_sum(&y1, w1)
                        .bind(|a| weighted_sum(&y2, w2).bind(|b| (a + b).bind(&mut *k)))
                })
            })
        })
        .backward()
    })
}

/// A random shape of rank 1 to 3 (dimensions 1 to 4, so size-1 axes are
/// common).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=3)
}

/// An array of `shape` with values in `range`, at least `gap` away from
/// every kink.
fn values(
    shape: Vec<usize>,
    (low, high): (f64, f64),
    kinks: Vec<f64>,
) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    prop::collection::vec(
        (low..high).prop_filter("away from a kink", move |&v| {
            kinks.iter().all(|&k| (v - k).abs() > 1e-3)
        }),
        len,
    )
    .prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&shape), v).expect("sized to the shape"))
}

/// Values for `f` and two sets of weights of one random shape.
fn case(f: Unary) -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>)> {
    shape().prop_flat_map(move |shape| {
        (
            values(shape.clone(), f.range(), f.kinks()),
            values(shape.clone(), (-2.0, 2.0), Vec::new()),
            values(shape, (-2.0, 2.0), Vec::new()),
        )
    })
}

/// Every function, with random constant arguments.
fn any_unary() -> impl Strategy<Value = Unary> {
    prop_oneof![
        Just(Unary::Sin),
        Just(Unary::Cos),
        (-2.5..2.5f64).prop_map(Unary::Pow),
        Just(Unary::Log1p),
        Just(Unary::Expm1),
        Just(Unary::Softplus),
        (-0.5..0.5f64).prop_map(Unary::LeakyRelu),
        (0.1..2.0f64).prop_map(Unary::Elu),
        Just(Unary::Erf),
        Just(Unary::NormalCdf),
        Just(Unary::Gelu),
        (-3.0..0.0f64, 0.0..3.0f64).prop_map(|(lo, hi)| Unary::Clamp(lo, hi)),
        Just(Unary::Sign),
    ]
}

proptest! {
    // 13 functions: about 25 cases each.
    #![proptest_config(ProptestConfig { cases: 320, ..ProptestConfig::default() })]

    #[test]
    fn unary_gradients((f, (x, w1, w2)) in any_unary().prop_flat_map(|f| (Just(f), case(f)))) {
        let report = gradient_check(f, x, &w1, &w2);
        prop_assert!(report.passes(TOLERANCE), "{f:?}: {report}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn pow_of_negative_bases_with_integer_exponents(
        x in shape().prop_flat_map(|s| values(s, (-3.0, -0.2), Vec::new())),
        p in -3i32..=3,
    ) {
        let weights = x.mapv(|_| 1.0);
        let report = gradient_check(Unary::Pow(f64::from(p)), x.clone(), &weights, &weights);
        prop_assert!(report.passes(TOLERANCE), "p = {p}: {report}");
        // The same values as powi.
        let y = forward(Unary::Pow(f64::from(p)), x.clone());
        let expected = x.mapv(|v| v.powi(p));
        for (&y, &e) in y.iter().zip(&expected) {
            prop_assert!((y - e).abs() <= 1e-12 * e.abs().max(1.0), "{y} vs {e}");
        }
    }

    #[test]
    fn pow_var_gradient_to_base_and_exponent(
        (x, e, w) in shape().prop_flat_map(|s| (
            values(s.clone(), (0.2, 3.0), Vec::new()),
            values(s.clone(), (-2.0, 2.0), Vec::new()),
            values(s, (-2.0, 2.0), Vec::new()),
        ))
    ) {
        let mut both = (Param::new(x), Param::new(e));
        let report = gradcheck(&mut both, |(x, e)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.pow_var(e).bind(|y| weighted_sum(&y, &w).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn pow_var_with_a_constant_side_matches_pow(
        (x, w) in shape().prop_flat_map(|s| (
            values(s.clone(), (0.2, 3.0), Vec::new()),
            values(s, (-2.0, 2.0), Vec::new()),
        )),
        p in -2.0..2.0f64,
    ) {
        // Constant exponent: the base's gradient must be pow's.
        let exponent = Var::constant(x.mapv(|_| p));
        let mut base = Param::new(x.clone());
        let report = gradcheck(&mut base, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.pow_var(&exponent).bind(|y| weighted_sum(&y, &w).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "base: {report}");
        // Constant base: only the exponent requires a gradient.
        let base = Var::constant(x);
        let mut exponent = Param::new(w.mapv(|_| p));
        let report = gradcheck(&mut exponent, |e| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                base.pow_var(e).bind(|y| weighted_sum(&y, &w).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "exponent: {report}");
    }

    #[test]
    fn where_routes_the_gradient_to_the_chosen_side(
        (a, b, w, mask) in shape().prop_flat_map(|s| {
            let len: usize = s.iter().product();
            (
                values(s.clone(), (-3.0, 3.0), Vec::new()),
                values(s.clone(), (-3.0, 3.0), Vec::new()),
                values(s.clone(), (-2.0, 2.0), Vec::new()),
                prop::collection::vec(prop::bool::ANY, len).prop_map(move |m| {
                    ArrayD::from_shape_vec(IxDyn(&s), m.into_iter().map(f64::from).collect())
                        .expect("sized")
                }),
            )
        })
    ) {
        let mask = Var::constant(mask);
        let mut both = (Param::new(a.clone()), Param::new(b.clone()));
        let report = gradcheck(&mut both, |(a, b)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                a.where_(&mask, b).bind(|y| weighted_sum(&y, &w).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
        // One side constant: the other still gets its share, and a side
        // used twice adds both.
        let constant = Var::constant(b);
        let mut a = Param::new(a);
        let report = gradcheck(&mut a, |a| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                a.where_(&mask, &constant).bind(|y| {
                    constant.where_(&mask, a).bind(|z| {
                        weighted_sum(&y, &w).bind(|s| {
                            weighted_sum(&z, &w).bind(|t| (s + t).bind(&mut *k))
                        })
                    })
                })
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "one side: {report}");
    }
}

fn assert_close(actual: f64, expected: f64, relative: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= relative * expected.abs().max(1e-300),
        "{what}: got {actual:e}, expected {expected:e}"
    );
}

#[test]
fn values_by_hand() {
    // (function, x, f(x)); the expected values from CPython's math module:
    // erf, Phi(x) = erfc(-x / sqrt 2) / 2, log1p, expm1.
    let cases = [
        (Unary::Sin, 1.0, 0.8414709848078965),
        (Unary::Cos, 1.0, 0.5403023058681398),
        (Unary::Pow(0.5), 2.0, std::f64::consts::SQRT_2),
        (Unary::Pow(-1.0), 4.0, 0.25),
        (Unary::Log1p, 1e-10, 9.999999999500001e-11),
        (Unary::Expm1, 1e-10, 1.00000000005e-10),
        (Unary::Expm1, -1.0, -0.6321205588285577),
        (Unary::Softplus, 0.0, std::f64::consts::LN_2),
        (Unary::Softplus, 2.0, 2.1269280110429727),
        (Unary::Softplus, 1000.0, 1000.0),
        // ln(1 + e^-30), which rounding 1 + e^-30 first would lose.
        (Unary::Softplus, -30.0, 9.357622968839737e-14),
        (Unary::LeakyRelu(0.1), -2.0, -0.2),
        (Unary::LeakyRelu(0.1), 3.0, 3.0),
        (Unary::Elu(1.0), -1.0, -0.6321205588285577),
        (Unary::Elu(2.0), -1.0, 2.0 * -0.6321205588285577),
        (Unary::Elu(1.0), 0.5, 0.5),
        (Unary::Erf, 0.5, 0.5204998778130465),
        (Unary::Erf, 1.0, 0.8427007929497149),
        (Unary::Erf, -2.0, -0.9953222650189527),
        (Unary::NormalCdf, 0.0, 0.5),
        (Unary::NormalCdf, 1.96, 0.9750021048517795),
        (Unary::NormalCdf, -1.0, 0.15865525393145707),
        (Unary::Gelu, 1.0, 0.8413447460685429),
        (Unary::Gelu, -1.0, -0.15865525393145707),
        (Unary::Gelu, 0.5, 0.34573123063700656),
        (Unary::Clamp(-1.0, 2.0), -3.0, -1.0),
        (Unary::Clamp(-1.0, 2.0), 5.0, 2.0),
        (Unary::Clamp(-1.0, 2.0), 0.25, 0.25),
        (Unary::Sign, -0.5, -1.0),
        (Unary::Sign, 7.0, 1.0),
    ];
    for (f, x, expected) in cases {
        let y = forward(f, array![x].into_dyn())[0];
        assert_close(y, expected, 1e-14, &format!("{f:?} at {x}"));
    }
    // The normal CDF's lower tail keeps its relative precision (the
    // complement of erf would round it to 0); Phi(-10) = 7.6198530241605e-24.
    let tail = forward(Unary::NormalCdf, array![-10.0, -30.0].into_dyn());
    assert_close(tail[0], 7.61985302416052e-24, 1e-12, "Phi(-10)");
    assert!(
        tail[1] > 0.0 && tail[1] < 1e-190,
        "Phi(-30) = {:e}",
        tail[1]
    );
    let gelu_tail = forward(Unary::Gelu, array![-10.0].into_dyn())[0];
    assert_close(gelu_tail, -7.61985302416052e-23, 1e-12, "gelu(-10)");
}

#[test]
fn gradients_by_hand() {
    // (function, x, f'(x)): the documented rules, at ordinary points.
    let phi = |x: f64| (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let cases = [
        (Unary::Sin, 1.0, 0.5403023058681398),
        (Unary::Cos, 1.0, -0.8414709848078965),
        (Unary::Pow(3.0), 2.0, 12.0),
        (Unary::Log1p, 1.0, 0.5),
        (Unary::Expm1, 2.0, 2.0f64.exp()),
        // The logistic function: 1 / (1 + e^-2), and e^-40 / (1 + e^-40)
        // without underflowing first.
        (Unary::Softplus, 2.0, 1.0 / (1.0 + (-2.0f64).exp())),
        (Unary::Softplus, -40.0, 4.248354255291589e-18),
        (Unary::LeakyRelu(0.1), -2.0, 0.1),
        (Unary::LeakyRelu(0.1), 2.0, 1.0),
        (Unary::Elu(2.0), -1.0, 2.0 * (-1.0f64).exp()),
        (
            Unary::Erf,
            1.0,
            std::f64::consts::FRAC_2_SQRT_PI * (-1.0f64).exp(),
        ),
        (Unary::NormalCdf, 0.5, 0.3520653267642995),
        (Unary::Gelu, -1.0, -0.08331547058768629),
        (Unary::Gelu, 0.5, 0.6914624612740131 + 0.5 * phi(0.5)),
    ];
    for (f, x, expected) in cases {
        let (_, grad) = value_and_grad(f, array![x].into_dyn());
        assert_close(grad[0], expected, 1e-14, &format!("d {f:?} at {x}"));
    }
}

#[test]
fn choices_at_kinks_and_domain_edges() {
    let grad_at = |f: Unary, x: f64| value_and_grad(f, array![x].into_dyn()).1[0];
    // At 0: leaky_relu and elu take the left side's derivative.
    assert_eq!(grad_at(Unary::LeakyRelu(0.25), 0.0), 0.25);
    assert_eq!(grad_at(Unary::Elu(0.5), 0.0), 0.5);
    // Clamp passes the gradient on its boundaries, not beyond them; with
    // lo = hi only at that one point.
    let clamp = Unary::Clamp(-1.0, 2.0);
    let (y, g) = value_and_grad(clamp, array![-1.5, -1.0, 0.0, 2.0, 2.5].into_dyn());
    assert_eq!(y, array![-1.0, -1.0, 0.0, 2.0, 2.0].into_dyn());
    assert_eq!(g, array![0.0, 1.0, 1.0, 1.0, 0.0].into_dyn());
    let (y, g) = value_and_grad(Unary::Clamp(1.0, 1.0), array![0.0, 1.0, 2.0].into_dyn());
    assert_eq!(y, array![1.0, 1.0, 1.0].into_dyn());
    assert_eq!(g, array![0.0, 1.0, 0.0].into_dyn());
    // Clamp keeps NaN, with no gradient.
    let (y, g) = value_and_grad(clamp, array![f64::NAN].into_dyn());
    assert!(y[0].is_nan());
    assert_eq!(g[0], 0.0);
    // pow at 0: p x^(p-1) is 0, 1, or infinite; p = 0 is a constant.
    assert_eq!(grad_at(Unary::Pow(2.0), 0.0), 0.0);
    assert_eq!(grad_at(Unary::Pow(1.0), 0.0), 1.0);
    assert_eq!(grad_at(Unary::Pow(0.5), 0.0), f64::INFINITY);
    assert_eq!(grad_at(Unary::Pow(0.0), 0.0), 0.0);
    assert_eq!(grad_at(Unary::Pow(0.0), 3.0), 0.0);
    // pow of a negative base with a fractional exponent is NaN.
    assert!(forward(Unary::Pow(0.5), array![-4.0f64].into_dyn())[0].is_nan());
    // Sign: zeros of either sign give 0, NaN stays NaN, and no gradient
    // flows.
    let (y, g) = value_and_grad(Unary::Sign, array![-0.0, 0.0, -3.0, 2.0].into_dyn());
    assert_eq!(y, array![0.0, 0.0, -1.0, 1.0].into_dyn());
    assert_eq!(g, array![0.0, 0.0, 0.0, 0.0].into_dyn());
    assert!(forward(Unary::Sign, array![f64::NAN].into_dyn())[0].is_nan());
}

#[test]
fn pow_var_at_a_zero_base() {
    // x = 0: the exponent's gradient is 0 where e > 0 (0^e = 0 for every
    // positive e); the base's is e x^(e-1), 0 for e = 2 and 1 for e = 1.
    let x = Param::new(array![0.0f64, 0.0, 2.0]);
    let e = Param::new(array![2.0f64, 1.0, 0.0]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.pow_var(&e).bind(|y| y.sum().bind(&mut *k)));
    assert_eq!(loss.backward(), 0.0 + 0.0 + 1.0);
    assert_eq!(x.grad(), array![0.0, 1.0, 0.0].into_dyn());
    assert_eq!(e.grad(), array![0.0, 0.0, 2.0f64.ln()].into_dyn());
}

#[test]
fn f32_agrees_with_f64() {
    let xs = [-2.5f64, -1.0, -0.3, 0.2, 0.7, 1.5, 3.0];
    let functions = [
        Unary::Sin,
        Unary::Cos,
        Unary::Pow(1.5),
        Unary::Log1p,
        Unary::Expm1,
        Unary::Softplus,
        Unary::LeakyRelu(0.1),
        Unary::Elu(1.0),
        Unary::Erf,
        Unary::NormalCdf,
        Unary::Gelu,
        Unary::Clamp(-1.0, 1.0),
        Unary::Sign,
    ];
    for f in functions {
        // Inside the function's domain.
        let x64: Vec<f64> = xs
            .iter()
            .map(|&x| match f {
                Unary::Pow(_) => x.abs(),
                Unary::Log1p => x.max(-0.9),
                _ => x,
            })
            .collect();
        let x32: Vec<f32> = x64.iter().map(|&x| x as f32).collect();
        let (y64, g64) = value_and_grad(f, ArrayD::from_shape_vec(IxDyn(&[7]), x64).unwrap());
        let (y32, g32) = value_and_grad(f, ArrayD::from_shape_vec(IxDyn(&[7]), x32).unwrap());
        for i in 0..7 {
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-5 * b.abs().max(1.0);
            assert!(
                close(y32[i], y64[i]),
                "{f:?} value {i}: {} vs {}",
                y32[i],
                y64[i]
            );
            assert!(
                close(g32[i], g64[i]),
                "{f:?} grad {i}: {} vs {}",
                g32[i],
                g64[i]
            );
        }
    }
    // pow_var and where_ in f32.
    let x = Param::new(array![2.0f32, 3.0]);
    let e = Param::new(array![3.0f32, 0.5]);
    let mask = Var::constant(array![1.0f32, 0.0]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f32>)| {
        x.pow_var(&e)
            .bind(|y| y.where_(&mask, &x).bind(|z| z.sum().bind(&mut *k)))
    });
    assert_eq!(loss.backward(), 8.0 + 3.0);
    // x[0] through the power (3 x^2), x[1] through the mask's 0.
    assert_eq!(x.grad(), array![12.0f32, 1.0].into_dyn());
    assert!((e.grad()[0] - 8.0 * 2.0f32.ln()).abs() < 1e-5);
    assert_eq!(e.grad()[1], 0.0);
}

#[test]
fn non_standard_layout_inputs() {
    // A transposed array is not in standard layout: the forward and
    // backward passes must still pair each element with its own.
    let data = array![[0.1f64, 0.2, 0.3], [0.4, 0.5, 0.6]];
    let transposed = data.clone().reversed_axes().into_dyn();
    assert!(!transposed.is_standard_layout());
    let weights = transposed.mapv(|v| 10.0 * v);
    for f in [Unary::Gelu, Unary::Pow(2.5), Unary::Clamp(0.15, 0.45)] {
        let y = forward(f, transposed.clone());
        let expected = forward(f, transposed.as_standard_layout().into_owned());
        assert_eq!(y, expected, "{f:?}");
        let report = gradient_check(f, transposed.clone(), &weights, &weights);
        assert!(report.passes(TOLERANCE), "{f:?}: {report}");
    }
}

#[test]
#[should_panic(expected = "clamp: expected lo <= hi, got lo = 2 and hi = 1")]
fn clamp_with_lo_above_hi_panics() {
    let x = Var::constant(array![0.0f64]);
    let _ = x.clamp(2.0, 1.0);
}

#[test]
#[should_panic(expected = "pow_var: shape mismatch between [2] and [3]")]
fn pow_var_shape_mismatch_panics() {
    let x = Var::constant(array![1.0f64, 2.0]);
    let e = Var::constant(array![1.0f64, 2.0, 3.0]);
    let _ = x.pow_var(&e);
}

#[test]
#[should_panic(expected = "where_: shape mismatch between [2] and [3]")]
fn where_with_sides_of_different_shapes_panics() {
    let a = Var::constant(array![1.0f64, 2.0]);
    let b = Var::constant(array![1.0f64, 2.0, 3.0]);
    let _ = a.where_(&Var::constant(array![1.0, 0.0]), &b);
}

#[test]
#[should_panic(expected = "where_: shape mismatch between [3] and [2]")]
fn where_with_a_mask_of_another_shape_panics() {
    let a = Var::constant(array![1.0f64, 2.0]);
    let _ = a.where_(&Var::constant(array![1.0, 0.0, 1.0]), &a);
}

#[test]
#[should_panic(expected = "where_: the mask must hold only 0 and 1, got 0.5 at [1]")]
fn where_with_a_mask_that_is_not_zeros_and_ones_panics() {
    let a = Var::constant(array![1.0f64, 2.0]);
    let _ = a.where_(&Var::constant(array![1.0, 0.5]), &a);
}

// Negative controls: rules with a typical mistake, written as custom
// operations, which gradcheck must reject on the same inputs the real
// operations pass.

/// GELU whose backward step forgets the `x phi(x)` term: the derivative of
/// `x Phi(x)` taken as `Phi(x)`.
fn gelu_missing_a_term(x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let input = x.clone();
    Pending::new(
        "gelu_missing_a_term",
        x.array().mapv(|v| v * normal_cdf(v)),
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            input.accumulate(&grad * &input.array().mapv(normal_cdf));
        },
    )
}

/// Phi(x), through the library's own `normal_cdf` (forward only).
fn normal_cdf(v: f64) -> f64 {
    forward(Unary::NormalCdf, array![v].into_dyn())[0]
}

/// `sign` with a straight-through gradient (the identity) instead of none.
fn sign_straight_through(x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let input = x.clone();
    Pending::new(
        "sign_straight_through",
        x.array().mapv(f64::signum),
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| input.accumulate(grad),
    )
}

#[test]
fn negative_controls_are_rejected() {
    let x = array![-1.5f64, -0.4, 0.3, 1.2].into_dyn();
    let weights = array![1.0, -0.5, 2.0, 0.7].into_dyn();

    let mut p = Param::new(x.clone());
    let wrong = gradcheck(&mut p, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            gelu_missing_a_term(x).bind(|y| weighted_sum(&y, &weights).bind(&mut *k))
        })
        .backward()
    });
    assert!(!wrong.passes(1e-3), "a wrong GELU rule passed: {wrong}");
    let right = gradient_check(Unary::Gelu, x.clone(), &weights, &weights);
    assert!(right.passes(TOLERANCE), "{right}");

    let mut p = Param::new(x.clone());
    let wrong = gradcheck(&mut p, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            sign_straight_through(x).bind(|y| weighted_sum(&y, &weights).bind(&mut *k))
        })
        .backward()
    });
    assert!(
        !wrong.passes(1e-3),
        "a straight-through sign passed: {wrong}"
    );
    let right = gradient_check(Unary::Sign, x, &weights, &weights);
    assert!(right.passes(TOLERANCE), "{right}");
}
