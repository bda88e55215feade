//! Elementwise operations: forward values against direct ndarray
//! computation, gradients against central finite differences (in f64, for
//! every operator, every broadcasting form and every way of writing the
//! operands), and the shape errors.

use cps_runtime::ops::elementwise::{Arithmetic, Negation};
use cps_runtime::*;
use ndarray::{ArrayD, IxDyn, ShapeBuilder, array};
use proptest::prelude::*;

const TOLERANCE: f64 = 1e-6;

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

const OPS: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

impl Op {
    fn reference(self, l: f64, r: f64) -> f64 {
        match self {
            Op::Add => l + r,
            Op::Sub => l - r,
            Op::Mul => l * r,
            Op::Div => l / r,
        }
    }
}

/// How a tensor operand is written: `Var` by value, `&Var`, or `&Param`.
#[derive(Clone, Copy, Debug)]
enum Form {
    Owned,
    Ref,
    Param,
}

const FORMS: [Form; 3] = [Form::Owned, Form::Ref, Form::Param];

/// `left op right`, with the left side written in `form`. The output type
/// is named, which is the point of `Arithmetic`.
fn binary<R: IntoOperand<f64>>(
    op: Op,
    form: Form,
    left: &Param<f64>,
    right: R,
) -> Pending<f64, Arithmetic<f64>> {
    match (op, form) {
        (Op::Add, Form::Owned) => left.var().clone() + right,
        (Op::Add, Form::Ref) => left.var() + right,
        (Op::Add, Form::Param) => left + right,
        (Op::Sub, Form::Owned) => left.var().clone() - right,
        (Op::Sub, Form::Ref) => left.var() - right,
        (Op::Sub, Form::Param) => left - right,
        (Op::Mul, Form::Owned) => left.var().clone() * right,
        (Op::Mul, Form::Ref) => left.var() * right,
        (Op::Mul, Form::Param) => left * right,
        (Op::Div, Form::Owned) => left.var().clone() / right,
        (Op::Div, Form::Ref) => left.var() / right,
        (Op::Div, Form::Param) => left / right,
    }
}

/// `left op right` with both sides written in the given forms.
fn binary_forms(
    op: Op,
    left_form: Form,
    left: &Param<f64>,
    right_form: Form,
    right: &Param<f64>,
) -> Pending<f64, Arithmetic<f64>> {
    match right_form {
        Form::Owned => binary(op, left_form, left, right.var().clone()),
        Form::Ref => binary(op, left_form, left, right.var()),
        Form::Param => binary(op, left_form, left, right),
    }
}

/// `scalar op right`, with the right side written in `form`.
fn scalar_left(op: Op, left: f64, form: Form, right: &Param<f64>) -> Pending<f64, Arithmetic<f64>> {
    match (op, form) {
        (Op::Add, Form::Owned) => left + right.var().clone(),
        (Op::Add, Form::Ref) => left + right.var(),
        (Op::Add, Form::Param) => left + right,
        (Op::Sub, Form::Owned) => left - right.var().clone(),
        (Op::Sub, Form::Ref) => left - right.var(),
        (Op::Sub, Form::Param) => left - right,
        (Op::Mul, Form::Owned) => left * right.var().clone(),
        (Op::Mul, Form::Ref) => left * right.var(),
        (Op::Mul, Form::Param) => left * right,
        (Op::Div, Form::Owned) => left / right.var().clone(),
        (Op::Div, Form::Ref) => left / right.var(),
        (Op::Div, Form::Param) => left / right,
    }
}

/// A fixed tensor of distinct weights, so that every output element gets a
/// different gradient.
fn weights(shape: &[usize]) -> Var<f64> {
    let n: usize = shape.iter().product();
    let values = (0..n).map(|i| (i as f64 * 0.7).sin() + 1.5).collect();
    Var::constant(ArrayD::from_shape_vec(IxDyn(shape), values).unwrap())
}

/// Reduces `y` to a scalar loss, `sum(weights * y)`, and hands it to `k`.
fn weighted_sum(y: Var<f64>, k: &mut dyn FnMut(Var<f64>)) {
    let w = weights(y.shape());
    (&y * &w).bind(|p| p.sum().bind(k));
}

fn param(value: &ArrayD<f64>, trainable: bool) -> Param<f64> {
    let mut p = Param::new(value.clone());
    p.set_trainable(trainable);
    p
}

/// Gradient check of `run(left, right)` over whichever of the two is
/// trainable.
fn check_pair(
    left: &ArrayD<f64>,
    right: &ArrayD<f64>,
    trainable: (bool, bool),
    run: impl Fn(&Param<f64>, &Param<f64>) -> Pending<f64, Arithmetic<f64>>,
) -> GradcheckReport {
    let mut model = vec![param(left, trainable.0), param(right, trainable.1)];
    gradcheck(&mut model, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| run(&m[0], &m[1]).bind(|y| weighted_sum(y, k)))
            .backward()
    })
}

/// Which operands are trainable: both, only the left, only the right.
const TRAINABLE: [(bool, bool); 3] = [(true, true), (true, false), (false, true)];

// --- strategies -------------------------------------------------------------

fn shape(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, ranks)
}

/// One-element shapes: `[]`, `[1]`, `[1, 1]`, `[1, 1, 1]`.
fn one_element_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(Just(1usize), 0..=3)
}

fn any_value() -> impl Strategy<Value = f64> + Clone {
    -2.0f64..2.0
}

/// Values safe as denominators (and as arguments of `abs`, `relu`): at
/// least 0.5 away from zero, either sign.
fn away_from_zero() -> impl Strategy<Value = f64> + Clone {
    (0.5f64..2.0, any::<bool>()).prop_map(|(m, negative)| if negative { -m } else { m })
}

fn tensor(
    shape: Vec<usize>,
    element: impl Strategy<Value = f64> + Clone,
) -> impl Strategy<Value = ArrayD<f64>> {
    let n: usize = shape.iter().product();
    prop::collection::vec(element, n)
        .prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap())
}

/// A tensor of `big` shape and a one-element tensor, both safe as
/// denominators.
fn big_and_one_element() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    (shape(0..=3), one_element_shape())
        .prop_flat_map(|(big, one)| (tensor(big, away_from_zero()), tensor(one, away_from_zero())))
}

/// A tensor of rank 2 or 3 and a vector as long as its last dimension.
fn matrix_and_bias() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    shape(2..=3).prop_flat_map(|big| {
        let bias = vec![*big.last().unwrap()];
        (
            tensor(big, away_from_zero()),
            tensor(bias, away_from_zero()),
        )
    })
}

/// Two shapes NumPy's rules broadcast together in any way: a result shape,
/// and each side a suffix of it with some sizes made 1 (so that size-1
/// axes on either side and differing ranks all occur).
fn broadcastable_pair() -> impl Strategy<Value = (ArrayD<f64>, ArrayD<f64>)> {
    (
        shape(1..=4),
        0usize..=4,
        0usize..=4,
        any::<u8>(),
        any::<u8>(),
    )
        .prop_flat_map(|(result, drop_left, drop_right, ones_left, ones_right)| {
            let side = |drop: usize, ones: u8| -> Vec<usize> {
                let kept = &result[drop.min(result.len())..];
                kept.iter()
                    .enumerate()
                    .map(|(i, &d)| if ones >> i & 1 == 1 { 1 } else { d })
                    .collect()
            };
            (
                tensor(side(drop_left, ones_left), away_from_zero()),
                tensor(side(drop_right, ones_right), away_from_zero()),
            )
        })
}

/// `op(left, right)` by NumPy's rules, element by element: the reference.
fn numpy_reference(op: Op, left: &ArrayD<f64>, right: &ArrayD<f64>) -> ArrayD<f64> {
    let rank = left.ndim().max(right.ndim());
    let padded = |a: &ArrayD<f64>| {
        let mut shape = vec![1; rank - a.ndim()];
        shape.extend_from_slice(a.shape());
        a.clone().into_shape_with_order(IxDyn(&shape)).unwrap()
    };
    let (l, r) = (padded(left), padded(right));
    let shape: Vec<usize> = (0..rank).map(|i| l.shape()[i].max(r.shape()[i])).collect();
    ArrayD::from_shape_fn(IxDyn(&shape), |index| {
        let at = |a: &ArrayD<f64>| {
            let i: Vec<usize> = (0..rank)
                .map(|k| if a.shape()[k] == 1 { 0 } else { index[k] })
                .collect();
            a[IxDyn(&i)]
        };
        op.reference(at(&l), at(&r))
    })
}

/// The same values in column-major (Fortran) layout.
fn column_major(a: &ArrayD<f64>) -> ArrayD<f64> {
    let mut f = ArrayD::zeros(IxDyn(a.shape()).f());
    f.assign(a);
    f
}

/// `x³` elementwise, whose backward step hands `x` its gradient in
/// column-major layout (as a custom operation may).
fn cube_column_major(x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64>> {
    let input = x.clone();
    Pending::new(
        "cube",
        x.array().mapv(|v| v * v * v),
        x.requires_grad(),
        move |_out: &ArrayD<f64>, grad: ArrayD<f64>| {
            let derivative = ndarray::Zip::from(&grad)
                .and(input.array())
                .map_collect(|&g, &v| 3.0 * v * v * g);
            input.accumulate(column_major(&derivative));
        },
    )
}

// --- gradients of the operators ---------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn same_shape_operators_match_finite_differences(
        (a, b) in shape(0..=3).prop_flat_map(|s| (tensor(s.clone(), any_value()), tensor(s, away_from_zero())))
    ) {
        for op in OPS {
            for left_form in FORMS {
                for right_form in FORMS {
                    let report = check_pair(&a, &b, (true, true), |l, r| binary_forms(op, left_form, l, right_form, r));
                    prop_assert!(report.passes(TOLERANCE), "{op:?} {left_form:?} {right_form:?}: {report}");
                }
            }
            for trainable in TRAINABLE {
                let report = check_pair(&a, &b, trainable, |l, r| binary(op, Form::Param, l, r));
                prop_assert!(report.passes(TOLERANCE), "{op:?} trainable {trainable:?}: {report}");
            }
            // A true constant on the right, never a Param.
            let constant = Var::constant(b.clone());
            let report = check_pair(&a, &b, (true, false), |l, _| binary(op, Form::Ref, l, &constant));
            prop_assert!(report.passes(TOLERANCE), "{op:?} with a constant: {report}");
        }
    }

    /// Operands in column-major layout: the backward step cannot read
    /// them as flat slices in the result's order, and must still be right.
    #[test]
    fn column_major_operands_match_finite_differences(
        (a, b) in shape(2..=3).prop_flat_map(|s| (tensor(s.clone(), any_value()), tensor(s, away_from_zero())))
    ) {
        for op in OPS {
            for (left_major, right_major) in [(true, false), (false, true), (true, true)] {
                let left = if left_major { column_major(&a) } else { a.clone() };
                let right = if right_major { column_major(&b) } else { b.clone() };
                let report = check_pair(&left, &right, (true, true), |l, r| binary(op, Form::Param, l, r));
                prop_assert!(report.passes(TOLERANCE), "{op:?} column-major {left_major}/{right_major}: {report}");
            }
        }
    }

    /// An input whose gradient buffer a custom operation filled first, in
    /// column-major layout: the operators add into it through that layout.
    #[test]
    fn operators_add_into_a_column_major_gradient(
        (a, b) in shape(2..=3).prop_flat_map(|s| (tensor(s.clone(), any_value()), tensor(s, away_from_zero())))
    ) {
        for op in OPS {
            let mut model = vec![param(&a, true), param(&b, true)];
            let report = gradcheck(&mut model, |m| {
                lazy(|k: &mut dyn FnMut(Var<f64>)| {
                    binary(op, Form::Param, &m[0], &m[1]).bind(|y| {
                        // Runs its backward step before the operator's.
                        cube_column_major(m[0].var()).bind(|c| {
                            c.sum().bind(|cs| weighted_sum(y, &mut |s| (&s + &cs).bind(&mut *k)))
                        })
                    })
                })
                .backward()
            });
            prop_assert!(report.passes(TOLERANCE), "{op:?} after a column-major gradient: {report}");
        }
    }

    #[test]
    fn scalar_operands_match_finite_differences(
        a in shape(0..=3).prop_flat_map(|s| tensor(s, away_from_zero())),
        s in away_from_zero(),
    ) {
        for op in OPS {
            for form in FORMS {
                let report = check_pair(&a, &a, (true, false), |l, _| binary(op, form, l, s));
                prop_assert!(report.passes(TOLERANCE), "{op:?} {form:?} scalar on the right: {report}");
                let report = check_pair(&a, &a, (false, true), |_, r| scalar_left(op, s, form, r));
                prop_assert!(report.passes(TOLERANCE), "{op:?} {form:?} scalar on the left: {report}");
            }
        }
    }

    #[test]
    fn one_element_operands_match_finite_differences((big, one) in big_and_one_element()) {
        for op in OPS {
            for (left, right) in [(&big, &one), (&one, &big)] {
                for form in FORMS {
                    let report = check_pair(left, right, (true, true), |l, r| binary_forms(op, form, l, form, r));
                    prop_assert!(report.passes(TOLERANCE), "{op:?} {form:?} {:?} and {:?}: {report}", left.shape(), right.shape());
                }
                for trainable in TRAINABLE {
                    let report = check_pair(left, right, trainable, |l, r| binary(op, Form::Param, l, r));
                    prop_assert!(report.passes(TOLERANCE), "{op:?} trainable {trainable:?} {:?} and {:?}: {report}", left.shape(), right.shape());
                }
            }
        }
    }

    #[test]
    fn numpy_broadcasting_matches_the_reference_and_finite_differences((left, right) in broadcastable_pair()) {
        for op in OPS {
            let expected = numpy_reference(op, &left, &right);
            let (l, r) = (Var::constant(left.clone()), Var::constant(right.clone()));
            let got = match op {
                Op::Add => &l + &r,
                Op::Sub => &l - &r,
                Op::Mul => &l * &r,
                Op::Div => &l / &r,
            };
            got.bind(|y| assert_eq!(y.array(), &expected, "{op:?} {:?} and {:?}", left.shape(), right.shape()));
            for trainable in TRAINABLE {
                let report = check_pair(&left, &right, trainable, |l, r| binary(op, Form::Param, l, r));
                prop_assert!(report.passes(TOLERANCE), "{op:?} trainable {trainable:?} {:?} and {:?}: {report}", left.shape(), right.shape());
            }
        }
    }

    #[test]
    fn bias_operands_match_finite_differences((matrix, bias) in matrix_and_bias()) {
        for op in OPS {
            for (left, right) in [(&matrix, &bias), (&bias, &matrix)] {
                for form in FORMS {
                    let report = check_pair(left, right, (true, true), |l, r| binary_forms(op, form, l, form, r));
                    prop_assert!(report.passes(TOLERANCE), "{op:?} {form:?} {:?} and {:?}: {report}", left.shape(), right.shape());
                }
                for trainable in TRAINABLE {
                    let report = check_pair(left, right, trainable, |l, r| binary(op, Form::Param, l, r));
                    prop_assert!(report.passes(TOLERANCE), "{op:?} trainable {trainable:?} {:?} and {:?}: {report}", left.shape(), right.shape());
                }
            }
        }
    }
}

// --- unary functions ----------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Unary {
    NegOwned,
    NegRef,
    NegParam,
    NegMethod,
    Tanh,
    Exp,
    Log,
    Sigmoid,
    Relu,
    Sqrt,
    Square,
    Powi(i32),
    Abs,
}

/// Runs `op` on `x` and hands the result to `k`.
fn unary(op: Unary, x: &Param<f64>, k: impl FnOnce(Var<f64>)) {
    match op {
        Unary::NegOwned => (-x.var().clone()).bind(k),
        Unary::NegRef => (-x.var()).bind(k),
        Unary::NegParam => (-x).bind(k),
        Unary::NegMethod => x.neg().bind(k),
        Unary::Tanh => x.tanh().bind(k),
        Unary::Exp => x.exp().bind(k),
        Unary::Log => x.log().bind(k),
        Unary::Sigmoid => x.sigmoid().bind(k),
        Unary::Relu => x.relu().bind(k),
        Unary::Sqrt => x.sqrt().bind(k),
        Unary::Square => x.square().bind(k),
        Unary::Powi(n) => x.powi(n).bind(k),
        Unary::Abs => x.abs().bind(k),
    }
}

/// The same function computed directly on the array.
fn unary_reference(op: Unary, x: &ArrayD<f64>) -> ArrayD<f64> {
    match op {
        Unary::NegOwned | Unary::NegRef | Unary::NegParam | Unary::NegMethod => x.mapv(|v| -v),
        Unary::Tanh => x.mapv(f64::tanh),
        Unary::Exp => x.mapv(f64::exp),
        Unary::Log => x.mapv(f64::ln),
        Unary::Sigmoid => x.mapv(|v| 1.0 / (1.0 + (-v).exp())),
        Unary::Relu => x.mapv(|v| v.max(0.0)),
        Unary::Sqrt => x.mapv(f64::sqrt),
        Unary::Square => x.mapv(|v| v * v),
        Unary::Powi(n) => x.mapv(|v| v.powi(n)),
        Unary::Abs => x.mapv(f64::abs),
    }
}

/// Every unary function, with values in its domain (positive for `log`
/// and `sqrt`; away from the kinks of `relu` and `abs` and from the pole of
/// negative powers).
fn unary_cases() -> Vec<(Unary, bool)> {
    // (op, needs positive input)
    vec![
        (Unary::NegOwned, false),
        (Unary::NegRef, false),
        (Unary::NegParam, false),
        (Unary::NegMethod, false),
        (Unary::Tanh, false),
        (Unary::Exp, false),
        (Unary::Log, true),
        (Unary::Sigmoid, false),
        (Unary::Relu, false),
        (Unary::Sqrt, true),
        (Unary::Square, false),
        (Unary::Powi(-2), false),
        (Unary::Powi(0), false),
        (Unary::Powi(1), false),
        (Unary::Powi(3), false),
        (Unary::Abs, false),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn unary_functions_match_finite_differences(x in shape(0..=3).prop_flat_map(|s| tensor(s, away_from_zero()))) {
        for (op, positive) in unary_cases() {
            let value = if positive { x.mapv(f64::abs) } else { x.clone() };
            let mut p = Param::new(value);
            let report = gradcheck(&mut p, |p| {
                lazy(|k: &mut dyn FnMut(Var<f64>)| unary(op, p, |y| weighted_sum(y, k))).backward()
            });
            prop_assert!(report.passes(TOLERANCE), "{op:?}: {report}");
            // Used twice, the second backward step adds into a gradient
            // that is already there.
            let report = gradcheck(&mut p, |p| {
                lazy(|k: &mut dyn FnMut(Var<f64>)| {
                    unary(op, p, |a| unary(op, p, |b| (a * &b).bind(|y| weighted_sum(y, k))))
                })
                .backward()
            });
            prop_assert!(report.passes(TOLERANCE), "{op:?} used twice: {report}");
        }
    }

    #[test]
    fn unary_values_match_ndarray(x in shape(0..=3).prop_flat_map(|s| tensor(s, any_value()))) {
        for (op, positive) in unary_cases() {
            let value = if positive { x.mapv(|v| v.abs() + 0.1) } else { x.clone() };
            let expected = unary_reference(op, &value);
            let p = Param::new(value);
            let mut ran = false;
            unary(op, &p, |y| {
                ran = true;
                assert_eq!(y.shape(), expected.shape());
                for (&got, &want) in y.array().iter().zip(expected.iter()) {
                    assert!((got - want).abs() <= 1e-15 * want.abs().max(1.0), "{op:?}: {got} vs {want}");
                }
            });
            prop_assert!(ran);
        }
    }
}

#[test]
fn sigmoid_saturates_without_overflow() {
    let x = Var::constant(array![-1000.0f64, 0.0, 1000.0]);
    x.sigmoid()
        .bind(|y| assert_eq!(y.array(), &array![0.0, 0.5, 1.0].into_dyn()));
    let x = Var::constant(array![-1000.0f32, 1000.0]);
    x.sigmoid()
        .bind(|y| assert_eq!(y.array(), &array![0.0f32, 1.0].into_dyn()));
}

#[test]
fn kinks_have_zero_gradient() {
    // relu and abs at exactly 0, and powi(0) anywhere, take derivative 0.
    let x = Param::new(array![0.0f64, 2.0, -2.0]);
    for (op, expected) in [
        (Unary::Relu, array![0.0, 1.0, 0.0]),
        (Unary::Abs, array![0.0, 1.0, -1.0]),
        (Unary::Powi(0), array![0.0, 0.0, 0.0]),
    ] {
        x.zero_grad();
        lazy(|k: &mut dyn FnMut(Var<f64>)| unary(op, &x, |y| y.sum().bind(k))).backward();
        assert_eq!(x.grad(), expected.into_dyn(), "{op:?}");
    }
}

// --- forward values of the operators -----------------------------------------

/// Checks `left op right` (computed) against `expected` exactly: the
/// operators do the same one IEEE operation per element as ndarray.
fn assert_forward(op: Op, left: &Param<f64>, right: &Param<f64>, expected: &ArrayD<f64>) {
    let mut ran = false;
    binary(op, Form::Param, left, right).bind(|y| {
        ran = true;
        assert_eq!(
            y.array(),
            expected,
            "{op:?} {:?} and {:?}",
            left.shape(),
            right.shape()
        );
    });
    assert!(ran);
}

/// ndarray's own operators, which broadcast a trailing vector the same way.
fn ndarray_op(op: Op, left: &ArrayD<f64>, right: &ArrayD<f64>) -> ArrayD<f64> {
    match op {
        Op::Add => left + right,
        Op::Sub => left - right,
        Op::Mul => left * right,
        Op::Div => left / right,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn operator_values_match_ndarray(
        (a, b) in shape(0..=3).prop_flat_map(|s| (tensor(s.clone(), any_value()), tensor(s, away_from_zero()))),
        (big, one) in big_and_one_element(),
        (matrix, bias) in matrix_and_bias(),
        s in away_from_zero(),
    ) {
        let p = |v: &ArrayD<f64>| Param::new(v.clone());
        for op in OPS {
            let f = |l: f64, r: f64| op.reference(l, r);
            // Same shape.
            assert_forward(op, &p(&a), &p(&b), &ndarray_op(op, &a, &b));
            // One element, either side: NumPy's rules (a size-1 axis the
            // other side lacks stays in the result).
            assert_forward(op, &p(&big), &p(&one), &numpy_reference(op, &big, &one));
            assert_forward(op, &p(&one), &p(&big), &numpy_reference(op, &one, &big));
            // A bias along the last axis, either side: ndarray broadcasts it the same way.
            assert_forward(op, &p(&matrix), &p(&bias), &ndarray_op(op, &matrix, &bias));
            assert_forward(op, &p(&bias), &p(&matrix), &ndarray_op(op, &bias, &matrix));
            // Scalars, either side.
            binary(op, Form::Param, &p(&a), s).bind(|y| assert_eq!(y.array(), &a.mapv(|x| f(x, s))));
            scalar_left(op, s, Form::Param, &p(&b)).bind(|y| assert_eq!(y.array(), &b.mapv(|x| f(s, x))));
        }
    }
}

#[test]
fn operators_work_in_f32_with_scalars_on_either_side() {
    let x = Param::new(array![1.0f32, 2.0, 4.0]);
    (2.0 * &x).bind(|y| assert_eq!(y.array(), &array![2.0f32, 4.0, 8.0].into_dyn()));
    (1.0 - x.var()).bind(|y| assert_eq!(y.array(), &array![0.0f32, -1.0, -3.0].into_dyn()));
    (1.0 / x.var().clone()).bind(|y| assert_eq!(y.array(), &array![1.0f32, 0.5, 0.25].into_dyn()));
    (&x + 0.5).bind(|y| assert_eq!(y.array(), &array![1.5f32, 2.5, 4.5].into_dyn()));
    (-&x).bind(|y: Var<f32>| assert_eq!(y.array(), &array![-1.0f32, -2.0, -4.0].into_dyn()));
}

// --- which results require a gradient ----------------------------------------

/// A unary function run on a tensor, its result handed to a continuation.
type UnaryRun = dyn Fn(&Var<f64>, &mut dyn FnMut(Var<f64>));

#[test]
fn operations_on_constants_do_not_require_grad() {
    let a = Var::constant(array![[1.0f64, 2.0], [3.0, 4.0]]);
    let b = Var::constant(array![0.5f64, 0.25]);
    let mut frozen = Param::new(array![[1.0f64, 1.0], [1.0, 1.0]]);
    frozen.set_trainable(false);
    let trainable = Param::new(array![[1.0f64, 1.0], [1.0, 1.0]]);

    for op in OPS {
        let constant_results: Vec<Pending<f64, Arithmetic<f64>>> = match op {
            Op::Add => vec![
                &a + &b,
                &b + &a,
                &a + 2.0,
                2.0 + &a,
                &a + &*frozen,
                &frozen + &a,
            ],
            Op::Sub => vec![
                &a - &b,
                &b - &a,
                &a - 2.0,
                2.0 - &a,
                &a - &*frozen,
                &frozen - &a,
            ],
            Op::Mul => vec![
                &a * &b,
                &b * &a,
                &a * 2.0,
                2.0 * &a,
                &a * &*frozen,
                &frozen * &a,
            ],
            Op::Div => vec![
                &a / &b,
                &b / &a,
                &a / 2.0,
                2.0 / &a,
                &a / &*frozen,
                &frozen / &a,
            ],
        };
        for result in constant_results {
            result.bind(|y| assert!(!y.requires_grad(), "{op:?} of constants requires grad"));
        }
        binary(op, Form::Param, &trainable, &a).bind(|y| assert!(y.requires_grad(), "{op:?}"));
        binary(op, Form::Ref, &frozen, &trainable).bind(|y| assert!(y.requires_grad(), "{op:?}"));
    }
    let checks: Vec<Box<UnaryRun>> = vec![
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| (-x).bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.neg().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.tanh().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.exp().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.log().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.sigmoid().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.relu().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.sqrt().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.square().bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.powi(3).bind(k)),
        Box::new(|x: &Var<f64>, k: &mut dyn FnMut(Var<f64>)| x.abs().bind(k)),
    ];
    for (i, run) in checks.iter().enumerate() {
        run(&a, &mut |y| {
            assert!(!y.requires_grad(), "unary #{i} of a constant")
        });
        run(&frozen, &mut |y| {
            assert!(!y.requires_grad(), "unary #{i} of a frozen param")
        });
        run(&trainable, &mut |y| {
            assert!(y.requires_grad(), "unary #{i} of a param")
        });
    }
}

#[test]
fn constant_operands_receive_no_gradient() {
    let w = Param::new(array![[1.0f64, -2.0], [0.5, 3.0]]);
    let c = Var::constant(array![2.0f64, 4.0]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| (&w / &c).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(loss, 0.5 - 0.5 + 0.25 + 0.75);
    assert_eq!(w.grad(), array![[0.5, 0.25], [0.5, 0.25]].into_dyn());
    assert!(c.grad_ref().is_none());
}

// --- gradient accumulation ----------------------------------------------------

/// A parameter's value replaced in place by one in another layout: the
/// operators read the new layout, not the one recorded for the old value.
#[test]
fn operators_read_a_value_replaced_in_another_layout() {
    let standard = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn();
    let mut p = Param::new(standard.clone());
    let c = Var::constant(array![[1.0f64, -1.0, 2.0], [0.5, 3.0, -2.0]].into_dyn());
    let replaced = array![[6.0f64, 5.0, 4.0], [3.0, 2.0, 1.0]].into_dyn();
    *p.value_mut() = column_major(&replaced);
    assert!(!p.var().array().is_standard_layout());
    let value = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (&p * &c).bind(|y| {
            assert_eq!(y.array(), &(&replaced * c.array()));
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(value, (&replaced * c.array()).sum());
    assert_eq!(p.grad(), *c.array());
}

#[test]
fn same_param_used_twice_accumulates() {
    let w = Param::new(array![[1.0f64, -2.0, 0.5], [3.0, 0.25, -1.5]]);
    let value = w.array().clone();

    lazy(|k: &mut dyn FnMut(Var<f64>)| (&w * &w).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(w.grad(), &value * 2.0);

    w.zero_grad();
    lazy(|k: &mut dyn FnMut(Var<f64>)| (&w + &w).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(w.grad(), ArrayD::from_elem(IxDyn(&[2, 3]), 2.0));

    // x - x and x / x are constant: their gradients cancel exactly.
    w.zero_grad();
    lazy(|k: &mut dyn FnMut(Var<f64>)| (&w - &w).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(w.grad(), ArrayD::<f64>::zeros(IxDyn(&[2, 3])));

    // Gradients on a Param add up across computations until consumed.
    w.zero_grad();
    for _ in 0..2 {
        lazy(|k: &mut dyn FnMut(Var<f64>)| (&w * &w).bind(|y| y.sum().bind(k))).backward();
    }
    assert_eq!(w.grad(), &value * 4.0);

    let mut w = Param::new(value);
    for op in OPS {
        let report = gradcheck(&mut w, |w| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                binary(op, Form::Param, w, w).bind(|y| weighted_sum(y, k))
            })
            .backward()
        });
        assert!(report.passes(TOLERANCE), "{op:?}: {report}");
    }
}

#[test]
fn bias_gradient_sums_over_rows() {
    // Hand-computed: y = x * b with b along the last axis; d sum(y) / d b_j
    // = sum_i x_ij, d sum(y) / d x_ij = b_j.
    let x = Param::new(array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let b = Param::new(array![10.0f64, 20.0, 30.0]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| (&x * &b).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(b.grad(), array![5.0, 7.0, 9.0].into_dyn());
    assert_eq!(
        x.grad(),
        array![[10.0, 20.0, 30.0], [10.0, 20.0, 30.0]].into_dyn()
    );

    // b - x: the bias gets +rows, the matrix -1.
    x.zero_grad();
    b.zero_grad();
    lazy(|k: &mut dyn FnMut(Var<f64>)| (&b - &x).bind(|y| y.sum().bind(k))).backward();
    assert_eq!(b.grad(), array![2.0, 2.0, 2.0].into_dyn());
    assert_eq!(x.grad(), ArrayD::from_elem(IxDyn(&[2, 3]), -1.0));
}

// --- shape errors -------------------------------------------------------------

fn mismatch(op: Op, left: &[usize], right: &[usize]) {
    let l = Var::<f64>::constant(ArrayD::zeros(IxDyn(left)));
    let r = Var::<f64>::constant(ArrayD::ones(IxDyn(right)));
    let _ = match op {
        Op::Add => l + r,
        Op::Sub => l - r,
        Op::Mul => l * r,
        Op::Div => l / r,
    };
}

#[test]
#[should_panic(expected = "add: shape mismatch between [2, 3] and [3, 2]")]
fn add_rejects_transposed_shapes() {
    mismatch(Op::Add, &[2, 3], &[3, 2]);
}

#[test]
#[should_panic(expected = "sub: shape mismatch between [2, 3] and [2]")]
fn sub_rejects_a_bias_of_the_wrong_length() {
    mismatch(Op::Sub, &[2, 3], &[2]);
}

#[test]
#[should_panic(expected = "mul: shape mismatch between [4] and [4, 2]")]
fn mul_rejects_a_left_bias_of_the_wrong_length() {
    mismatch(Op::Mul, &[4], &[4, 2]);
}

#[test]
#[should_panic(expected = "div: shape mismatch between [2, 3, 3] and [2, 3]: not broadcastable")]
fn div_rejects_shapes_numpy_does_not_broadcast() {
    mismatch(Op::Div, &[2, 3, 3], &[2, 3]);
}

/// Sizes of 1 on both sides broadcast against each other (an outer sum),
/// and each side's gradient is summed back to its own shape.
#[test]
fn size_one_axes_on_both_sides_broadcast_to_an_outer_result() {
    let column = Param::new(array![[1.0f64], [2.0], [3.0]]);
    let row = Param::new(array![[10.0f64, 20.0]]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (&column * &row).bind(|y| {
            assert_eq!(
                y.array(),
                &array![[10.0, 20.0], [20.0, 40.0], [30.0, 60.0]].into_dyn()
            );
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(loss, 180.0);
    assert_eq!(column.grad(), array![[30.0], [30.0], [30.0]].into_dyn());
    assert_eq!(row.grad(), array![[6.0, 6.0]].into_dyn());
}

#[test]
#[should_panic(expected = "add: shape mismatch between [3] and [2]")]
fn add_rejects_vectors_of_different_lengths() {
    let x = Param::new(array![1.0f64, 2.0, 3.0]);
    let _ = &x + &Param::new(array![1.0f64, 2.0]);
}

#[test]
fn negation_output_type_is_nameable() {
    let x = Var::constant(array![1.0f64]);
    let pending: Pending<f64, Negation<f64>> = -&x;
    pending.bind(|y| assert_eq!(y.item(), -1.0));
}
