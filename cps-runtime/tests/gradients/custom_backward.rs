//! Custom operations (`Pending::new`) whose backward step is written by
//! hand or runs differentiable code of its own through `vjp`: gradients
//! against finite differences (`gradcheck`, f64) and against the same
//! computation written with the built-in operations, nested runs inside
//! backward steps (reentrancy), f32, and a negative control.

use cps_runtime::*;
use ndarray::{Array, ArrayD, IxDyn, Zip, array};
use proptest::prelude::*;

const TOLERANCE: f64 = 1e-6;

/// Deterministic values in about [-1, 1].
fn values(shape: &[usize], seed: usize) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    Array::from_shape_vec(
        IxDyn(shape),
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.0) - 1.0)
            .collect(),
    )
    .expect("the shape's length")
}

/// Largest relative difference between two arrays of one shape.
fn relative_difference(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    Zip::from(a).and(b).fold(0.0f64, |m, &x, &y| {
        m.max((x - y).abs() / x.abs().max(y.abs()).max(1e-300))
    })
}

/// tanh with its backward written by hand from the output: 1 - y².
fn my_tanh<A: Element>(x: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let input = x.clone();
    Pending::new(
        "my_tanh",
        x.array().mapv(|v| v.tanh()),
        x.requires_grad(),
        move |y: &ArrayD<A>, grad: ArrayD<A>| {
            input.accumulate(
                Zip::from(&grad)
                    .and(y)
                    .map_collect(|&g, &y| g * (A::one() - y * y)),
            );
        },
    )
}

/// `sum(f(x) * weights)`, so every element gets its own incoming gradient.
fn weighted<A: Element>(y: &Var<A>, weights: &Var<A>, k: &mut dyn FnMut(Var<A>)) {
    (y * weights).bind(|p| p.sum().bind(k));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The hand-written tanh gradient-checks on random shapes and values,
    /// and agrees with the built-in tanh.
    #[test]
    fn hand_written_tanh_gradient_checks(
        shape in prop::collection::vec(1usize..4, 1..3),
        seed in 0usize..1000,
        scale in 0.5f64..3.0,
    ) {
        let mut x = Param::new(values(&shape, seed) * scale);
        let weights = Var::constant(values(&shape, seed + 1));
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| my_tanh(x).bind(|y| weighted(&y, &weights, k)))
                .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{}", report);

        x.zero_grad();
        lazy(|k: &mut dyn FnMut(Var<f64>)| my_tanh(&x).bind(|y| weighted(&y, &weights, k))).backward();
        let custom = x.grad();
        x.zero_grad();
        lazy(|k: &mut dyn FnMut(Var<f64>)| x.tanh().bind(|y| weighted(&y, &weights, k))).backward();
        prop_assert!(relative_difference(&custom, &x.grad()) < 1e-14);
    }
}

/// `log(1 + exp(w * x))`, written with the built-in operations: the
/// differentiable definition the custom operation below differentiates in
/// its backward step.
fn softplus_def<A: Element>(w: Var<A>, x: Var<A>) -> impl Computation<Output = Var<A>> {
    lazy(move |k: &mut dyn FnMut(Var<A>)| (&w * &x).bind(|z| z.exp().bind(|e| e.log1p().bind(k))))
}

/// The same function as a custom operation of `x`: the forward computed
/// by hand, the backward a vector-Jacobian product of [`softplus_def`],
/// which also sends the parameter `w` its gradient. `cotangent_of` decides
/// the cotangent from the incoming gradient (the identity is the right
/// rule; the negative control changes it).
fn softplus_op<A: Element>(
    w: &Var<A>,
    x: &Var<A>,
    cotangent_of: fn(ArrayD<A>) -> ArrayD<A>,
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let (w, input) = (w.clone(), x.clone());
    let value = Zip::from(w.array())
        .and(x.array())
        .map_collect(|&w, &x| (w * x).exp().ln_1p());
    let requires_grad = w.requires_grad() || x.requires_grad();
    Pending::new(
        "softplus_op",
        value,
        requires_grad,
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let w = w.clone();
            let result = vjp(
                |[x]| softplus_def(w, x),
                [input.array().clone()],
                cotangent_of(grad),
            );
            let [dx] = result.grads;
            input.accumulate(dx);
        },
    )
}

#[test]
fn a_backward_step_running_a_differentiable_function_gradient_checks() {
    for (shape, seed) in [(vec![3], 1), (vec![2, 3], 2), (vec![1, 4], 3), (vec![1], 4)] {
        let mut model = (
            Param::new(values(&shape, seed) * 2.0),
            Param::new(values(&shape, seed + 7) * 1.5),
        );
        let weights = Var::constant(values(&shape, seed + 3));
        let report = gradcheck(&mut model, |(w, x)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                softplus_op(w, x, |g| g).bind(|y| weighted(&y, &weights, k))
            })
            .backward()
        });
        assert!(report.passes(TOLERANCE), "{shape:?}: {report}");
        assert_eq!(report.elements_checked, 2 * shape.iter().product::<usize>());
    }
}

#[test]
fn a_wrong_cotangent_in_the_backward_step_fails_the_check() {
    let mut model = (
        Param::new(array![0.5f64, -1.0, 2.0]),
        Param::new(array![1.0f64, 0.25, -0.75]),
    );
    let weights = Var::constant(array![1.0f64, -2.0, 0.5]);
    // Ones instead of the incoming gradient: the rule of an unweighted sum.
    let report = gradcheck(&mut model, |(w, x)| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            softplus_op(w, x, |g| g.mapv(|_| 1.0)).bind(|y| weighted(&y, &weights, k))
        })
        .backward()
    });
    assert!(!report.passes(1e-2), "{report}");
}

#[test]
fn vjp_pulls_a_cotangent_back_through_a_matrix_product() {
    // f(x) = tanh(M x): the vjp with c is Mᵀ (c ⊙ (1 - tanh²(M x))), and
    // M's gradient is the outer product (c ⊙ (1 - tanh²)) xᵀ.
    let m = Param::new(array![[0.5f64, -1.0, 0.25], [2.0, 0.0, -0.5]]);
    let x = array![1.0f64, -2.0, 0.5];
    let c = array![3.0f64, -1.5];
    let result = vjp(
        |[x]| {
            let m = m.var().clone();
            lazy(move |k: &mut dyn FnMut(Var<f64>)| m.matmul(&x).bind(|z| z.tanh().bind(k)))
        },
        [x.clone().into_dyn()],
        c.clone().into_dyn(),
    );
    let z = m
        .array()
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .dot(&x);
    let y = z.mapv(f64::tanh);
    let u = &c * &y.mapv(|t| 1.0 - t * t);
    let m2 = m
        .array()
        .clone()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    assert!(relative_difference(&result.output, &y.clone().into_dyn()) < 1e-15);
    let [dx] = &result.grads;
    assert!(relative_difference(dx, &m2.t().dot(&u).into_dyn()) < 1e-14);
    let outer = Array::from_shape_fn((2, 3), |(i, j)| u[i] * x[j]).into_dyn();
    assert!(relative_difference(&m.grad(), &outer) < 1e-14);
}

#[test]
fn vjp_gives_zeros_to_an_unused_input_and_accumulates_into_parameters() {
    let w = Param::new(array![2.0f64]);
    let run = || {
        vjp(
            |[x, _unused]| {
                let w = w.var().clone();
                lazy(move |k: &mut dyn FnMut(Var<f64>)| (&w * &x).bind(k))
            },
            [array![3.0f64].into_dyn(), array![[1.0f64, 2.0]].into_dyn()],
            array![1.0].into_dyn(),
        )
    };
    let first = run();
    assert_eq!(first.grads[0], array![2.0].into_dyn());
    assert_eq!(first.grads[1], ArrayD::<f64>::zeros(IxDyn(&[1, 2])));
    run();
    // Two runs: the parameter's gradient adds up, as after two backward passes.
    assert_eq!(w.grad(), array![6.0].into_dyn());
}

#[test]
#[should_panic(expected = "vjp: the cotangent must have the shape of the result, [2], got [3]")]
fn vjp_refuses_a_cotangent_of_another_shape() {
    vjp(
        |[x]| x.tanh(),
        [array![1.0f64, 2.0].into_dyn()],
        array![1.0, 1.0, 1.0].into_dyn(),
    );
}

#[test]
fn backward_with_seeds_the_cotangent() {
    let w = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
    let value = lazy(|k: &mut dyn FnMut(Var<f64>)| w.exp().bind(k))
        .backward_with(array![[1.0, 0.0], [-1.0, 2.0]].into_dyn());
    let expected = w.array().mapv(f64::exp);
    assert_eq!(value, expected);
    let grad = &expected * &array![[1.0, 0.0], [-1.0, 2.0]].into_dyn();
    assert!(relative_difference(&w.grad(), &grad) < 1e-15);
}

// Nested runs: a custom operation whose backward step runs a computation
// containing another custom operation whose backward step runs one too,
// all inside the continuation of outer operations, and capturing a value
// bound before them.

/// `tanh(z) * h`, plainly.
fn inner_def(z: Var<f64>, h: Var<f64>) -> impl Computation<Output = Var<f64>> {
    lazy(move |k: &mut dyn FnMut(Var<f64>)| z.tanh().bind(|t| (&t * &h).bind(k)))
}

/// [`inner_def`] as a custom operation of `z`, whose backward step takes
/// the vjp of `inner_def`; `h` is captured, and gets its gradient from
/// inside that nested run.
fn inner_op(z: &Var<f64>, h: &Var<f64>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let (input, h) = (z.clone(), h.clone());
    let value = inner_def(z.clone(), h.clone()).eval().array().clone();
    Pending::new(
        "inner_op",
        value,
        z.requires_grad() || h.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let h = h.clone();
            let [dz] = vjp(|[z]| inner_def(z, h), [input.array().clone()], grad).grads;
            input.accumulate(dz);
        },
    )
}

/// `inner(s * h) * b`, with the inner step either plain or custom.
fn outer_def(
    s: Var<f64>,
    h: Var<f64>,
    b: Var<f64>,
    custom: bool,
) -> impl Computation<Output = Var<f64>> {
    lazy(move |k: &mut dyn FnMut(Var<f64>)| {
        (&s * &h).bind(|z| {
            let next = |i: Var<f64>| (&i * &b).bind(k);
            if custom {
                inner_op(&z, &h).bind(next)
            } else {
                inner_def(z, h.clone()).bind(next)
            }
        })
    })
}

/// [`outer_def`] as a custom operation of `s`, whose backward step takes
/// the vjp of `outer_def` with the custom inner step.
fn outer_op(
    s: &Var<f64>,
    h: &Var<f64>,
    b: &Var<f64>,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let (input, h, b) = (s.clone(), h.clone(), b.clone());
    let value = outer_def(s.clone(), h.clone(), b.clone(), true)
        .eval()
        .array()
        .clone();
    Pending::new(
        "outer_op",
        value,
        true,
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let (h, b) = (h.clone(), b.clone());
            let [ds] = vjp(
                |[s]| outer_def(s, h, b, true),
                [input.array().clone()],
                grad,
            )
            .grads;
            input.accumulate(ds);
        },
    )
}

/// `sum(outer(sin(a x), a x, b))`: `h = a x` is bound first, then `sin`,
/// and the custom operation runs inside their continuations.
fn nested_loss(a: &Var<f64>, b: &Var<f64>, x: &Var<f64>, custom: bool) -> f64 {
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (a * x).bind(|h| {
            h.sin().bind(|s| {
                let next = |y: Var<f64>| y.sum().bind(k);
                if custom {
                    outer_op(&s, &h, b).bind(next)
                } else {
                    outer_def(s, h.clone(), b.clone(), false).bind(next)
                }
            })
        })
    })
    .backward()
}

#[test]
fn nested_runs_inside_backward_steps_match_plain_backpropagation() {
    let a = Param::new(values(&[2, 3], 11) * 2.0);
    let b = Param::new(values(&[2, 3], 12));
    let x = Var::constant(values(&[2, 3], 13) * 1.5);
    let plain_loss = nested_loss(&a, &b, &x, false);
    let plain = (a.grad(), b.grad());
    a.zero_grad();
    b.zero_grad();
    let custom_loss = nested_loss(&a, &b, &x, true);
    assert!((plain_loss - custom_loss).abs() <= 1e-15 * plain_loss.abs().max(1.0));
    // `a` receives its gradient only through `h`, and much of it from
    // inside the nested backward steps, where `h` is captured.
    assert!(relative_difference(&plain.0, &a.grad()) < 1e-12);
    assert!(relative_difference(&plain.1, &b.grad()) < 1e-12);
    assert!(plain.0.iter().all(|g| g.abs() > 1e-6));

    let mut model = (a, b);
    let report = gradcheck(&mut model, |(a, b)| nested_loss(a, b, &x, true));
    assert!(report.passes(TOLERANCE), "{report}");
}

/// A chain of `n` sines, bound one inside the other.
fn sine_chain(x: Var<f64>, n: usize, k: &mut dyn FnMut(Var<f64>)) {
    if n == 0 {
        k(x)
    } else {
        x.sin().bind(|y| sine_chain(y, n - 1, k))
    }
}

#[test]
fn a_backward_step_may_run_a_computation_deep_enough_to_need_more_stack() {
    const DEPTH: usize = 50_000;
    let deep = |x: Var<f64>| lazy(move |k: &mut dyn FnMut(Var<f64>)| sine_chain(x, DEPTH, k));
    let x = Param::new(array![0.7f64, -0.3]);
    let op = |x: &Var<f64>| {
        let input = x.clone();
        let value = deep(x.clone()).eval().array().clone();
        Pending::new(
            "deep",
            value,
            true,
            move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
                let [dx] = vjp(|[x]| deep(x), [input.array().clone()], grad).grads;
                input.accumulate(dx);
            },
        )
    };
    lazy(|k: &mut dyn FnMut(Var<f64>)| op(&x).bind(|y| y.sum().bind(k))).backward();
    // The derivative of the chain, by hand.
    let expected = x.array().mapv(|mut v| {
        let mut d = 1.0;
        for _ in 0..DEPTH {
            d *= v.cos();
            v = v.sin();
        }
        d
    });
    assert!(relative_difference(&x.grad(), &expected) < 1e-10);
}

#[test]
fn custom_operations_and_vjp_work_in_f32() {
    let w = Param::new(array![0.5f32, -1.0, 2.0]);
    let x = Param::new(array![1.0f32, 0.5, -0.25]);
    let weights = Var::constant(array![1.0f32, -2.0, 0.5]);
    lazy(|k: &mut dyn FnMut(Var<f32>)| {
        softplus_op(&w, &x, |g| g).bind(|y| my_tanh(&y).bind(|t| weighted(&t, &weights, k)))
    })
    .backward();
    let custom = (w.grad(), x.grad());
    w.zero_grad();
    x.zero_grad();
    lazy(|k: &mut dyn FnMut(Var<f32>)| {
        (&*w * &*x).bind(|z| {
            z.softplus()
                .bind(|y| y.tanh().bind(|t| weighted(&t, &weights, k)))
        })
    })
    .backward();
    for (custom, plain) in [(custom.0, w.grad()), (custom.1, x.grad())] {
        Zip::from(&custom)
            .and(&plain)
            .for_each(|&c, &p| assert!((c - p).abs() <= 1e-5 * p.abs().max(1.0), "{c} vs {p}"));
    }
}
