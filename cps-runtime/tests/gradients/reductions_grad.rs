//! Reductions over all elements and along any axis (negative axes, kept
//! axes): sum, mean, max, min, argmax, argmin, logsumexp, var and the L1
//! and L2 norms. Forward values against direct computations and hand
//! computations, gradients against central finite differences
//! (`gradcheck`) on random shapes and values, the edge cases (ties, NaN,
//! size-1 axes, zero norms, infinities), the panics, and negative
//! controls that a wrong rule fails.

use cps_runtime::ops::reductions::NormOrder;
use cps_runtime::*;
use ndarray::{ArrayD, ArrayView1, Axis, IxDyn, array};
use proptest::prelude::*;

use crate::support::weighted_sum;

const TOLERANCE: f64 = 1e-6;

/// Weights of `shape`: a fixed, irregular pattern of distinct values.
fn weights_like(shape: &[usize]) -> ArrayD<f64> {
    let len: usize = shape.iter().product();
    let v = (0..len)
        .map(|i| ((i as f64 + 1.0) * 0.754_877_666).sin() * 1.5 + 0.1)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches")
}

/// The reductions under test.
#[derive(Clone, Copy, Debug)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
    Var(usize),
    Norm(NormOrder),
}

const ALL: [Reduction; 9] = [
    Reduction::Sum,
    Reduction::Mean,
    Reduction::Max,
    Reduction::Min,
    Reduction::LogSumExp,
    Reduction::Var(0),
    Reduction::Var(1),
    Reduction::Norm(NormOrder::L1),
    Reduction::Norm(NormOrder::L2),
];

/// Where a reduction reduces: everything, or one axis (as given, possibly
/// negative), kept or not.
#[derive(Clone, Copy, Debug)]
enum Over {
    All,
    Axis(isize, bool),
}

/// Runs reduction `r` of `x` over `over` and hands the result to `k`.
fn apply<A: Element>(x: &Var<A>, r: Reduction, over: Over, k: &mut dyn FnMut(Var<A>)) {
    use Reduction::*;
    match (r, over) {
        (Sum, Over::All) => x.sum().bind(k),
        (Sum, Over::Axis(a, false)) => x.sum_axis(a).bind(k),
        (Sum, Over::Axis(a, true)) => x.sum_axis_keepdim(a).bind(k),
        (Mean, Over::All) => x.mean().bind(k),
        (Mean, Over::Axis(a, false)) => x.mean_axis(a).bind(k),
        (Mean, Over::Axis(a, true)) => x.mean_axis_keepdim(a).bind(k),
        (Max, Over::All) => x.max().bind(k),
        (Max, Over::Axis(a, false)) => x.max_axis(a).bind(k),
        (Max, Over::Axis(a, true)) => x.max_axis_keepdim(a).bind(k),
        (Min, Over::All) => x.min().bind(k),
        (Min, Over::Axis(a, false)) => x.min_axis(a).bind(k),
        (Min, Over::Axis(a, true)) => x.min_axis_keepdim(a).bind(k),
        (LogSumExp, Over::All) => x.logsumexp().bind(k),
        (LogSumExp, Over::Axis(a, false)) => x.logsumexp_axis(a).bind(k),
        (LogSumExp, Over::Axis(a, true)) => x.logsumexp_axis_keepdim(a).bind(k),
        (Var(c), Over::All) => x.var(c).bind(k),
        (Var(c), Over::Axis(a, false)) => x.var_axis(a, c).bind(k),
        (Var(c), Over::Axis(a, true)) => x.var_axis_keepdim(a, c).bind(k),
        (Norm(p), Over::All) => x.norm(p).bind(k),
        (Norm(p), Over::Axis(a, false)) => x.norm_axis(a, p).bind(k),
        (Norm(p), Over::Axis(a, true)) => x.norm_axis_keepdim(a, p).bind(k),
    }
}

/// The reduction of one lane, computed directly from its definition.
fn reference_lane(lane: ArrayView1<'_, f64>, r: Reduction) -> f64 {
    let n = lane.len() as f64;
    match r {
        Reduction::Sum => lane.sum(),
        Reduction::Mean => lane.sum() / n,
        Reduction::Max => lane.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Reduction::Min => lane.iter().copied().fold(f64::INFINITY, f64::min),
        Reduction::LogSumExp => lane.iter().map(|v| v.exp()).sum::<f64>().ln(),
        Reduction::Var(c) => {
            let mean = lane.sum() / n;
            lane.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - c as f64)
        }
        Reduction::Norm(NormOrder::L1) => lane.iter().map(|v| v.abs()).sum(),
        Reduction::Norm(NormOrder::L2) => lane.iter().map(|v| v * v).sum::<f64>().sqrt(),
    }
}

/// The axis `axis` (possibly negative) of a tensor of rank `rank`.
fn resolved(axis: isize, rank: usize) -> usize {
    if axis < 0 {
        (rank as isize + axis) as usize
    } else {
        axis as usize
    }
}

/// The reduction computed directly.
fn reference(x: &ArrayD<f64>, r: Reduction, over: Over) -> ArrayD<f64> {
    match over {
        Over::All => {
            let all: Vec<f64> = x.iter().copied().collect();
            ndarray::arr0(reference_lane(ArrayView1::from(&all), r)).into_dyn()
        }
        Over::Axis(axis, keepdim) => {
            let axis = Axis(resolved(axis, x.ndim()));
            let y = x.map_axis(axis, |lane| reference_lane(lane, r));
            if keepdim { y.insert_axis(axis) } else { y }
        }
    }
}

/// The forward value of reduction `r` of `x`.
fn forward<A: Element>(x: &Var<A>, r: Reduction, over: Over) -> ArrayD<A> {
    let mut out = None;
    apply(x, r, over, &mut |y| out = Some(y.array().clone()));
    out.expect("the reduction called its continuation")
}

/// The loss `sum(reduction(x) ⊙ weights)`, run backward.
fn loss(x: &Var<f64>, r: Reduction, over: Over, weights: &ArrayD<f64>) -> f64 {
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        apply(x, r, over, &mut |y| weighted_sum(&y, weights).bind(&mut *k))
    })
    .backward()
}

/// Zeros of `shape`.
fn zeros(shape: &[usize]) -> ArrayD<f64> {
    ArrayD::zeros(IxDyn(shape))
}

fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>, what: &str) {
    assert_eq!(actual.shape(), expected.shape(), "{what}: shapes");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() <= 1e-12 * e.abs().max(1.0),
            "{what}: {actual} != {expected}"
        );
    }
}

/// A tensor of rank in `ranks`, dimensions 1 to 4, values in (-2, 2).
fn tensor(ranks: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    ranks
        .prop_flat_map(|rank| prop::collection::vec(1usize..=4, rank))
        .prop_flat_map(|shape| {
            let len: usize = shape.iter().product();
            prop::collection::vec(-2.0f64..2.0, len).prop_map(move |v| {
                ArrayD::from_shape_vec(IxDyn(&shape), v).expect("length matches")
            })
        })
}

/// A tensor of rank 1 to 3 with an axis of it, as often negative as not,
/// and whether to keep it.
fn tensor_and_axis() -> impl Strategy<Value = (ArrayD<f64>, Over)> {
    tensor(1..=3).prop_flat_map(|x| {
        let rank = x.ndim() as isize;
        (Just(x), -rank..rank, any::<bool>())
            .prop_map(|(x, axis, keep)| (x, Over::Axis(axis, keep)))
    })
}

/// The number of elements each output element of `over` reduces.
fn lane_length(x: &ArrayD<f64>, over: Over) -> usize {
    match over {
        Over::All => x.len(),
        Over::Axis(axis, _) => x.shape()[resolved(axis, x.ndim())],
    }
}

/// Checks every reduction of `x` over `over`: the value against the
/// direct computation, the gradient against finite differences.
fn check_all(x: ArrayD<f64>, over: Over) -> Result<(), TestCaseError> {
    let mut p = Param::new(x.clone());
    for r in ALL {
        let expected = reference(&x, r, over);
        let actual = forward(&p, r, over);
        if let Reduction::Var(c) = r
            && lane_length(&x, over) <= c
        {
            // Divided by max(n - c, 0) = 0: no finite value, no gradient.
            prop_assert!(actual.iter().all(|v| !v.is_finite()), "{r:?}: {actual}");
            continue;
        }
        assert_close(&actual, &expected, &format!("{r:?} over {over:?}"));
        let weights = weights_like(expected.shape());
        let report = gradcheck(&mut p, |p| loss(p, r, over, &weights));
        prop_assert!(report.passes(TOLERANCE), "{r:?} over {over:?}: {report}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_reduction_along_an_axis((x, over) in tensor_and_axis()) {
        check_all(x, over)?;
    }

    #[test]
    fn every_reduction_of_all_elements(x in tensor(0..=3)) {
        check_all(x, Over::All)?;
    }

    /// argmax and argmin agree with the position of max and min, along
    /// an axis and over all elements.
    #[test]
    fn argmax_and_argmin_point_at_the_extremes((x, over) in tensor_and_axis()) {
        let Over::Axis(axis, keepdim) = over else { unreachable!() };
        let v = Var::constant(x.clone());
        let a = resolved(axis, x.ndim());
        let (max, min) = (forward(&v, Reduction::Max, over), forward(&v, Reduction::Min, over));
        let (argmax, argmin) = if keepdim {
            (v.argmax_axis_keepdim(axis), v.argmin_axis_keepdim(axis))
        } else {
            (v.argmax_axis(axis), v.argmin_axis(axis))
        };
        prop_assert_eq!(argmax.shape(), max.shape());
        prop_assert_eq!(argmin.shape(), min.shape());
        let lanes = x.lanes(Axis(a));
        for ((lane, &i), &j) in lanes.into_iter().zip(&argmax).zip(&argmin) {
            let top = lane.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let bottom = lane.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assert_eq!(lane[i], top);
            prop_assert_eq!(lane[j], bottom);
        }
        let flat: Vec<f64> = x.iter().copied().collect();
        prop_assert_eq!(flat[v.argmax()], forward(&v, Reduction::Max, Over::All)[[]]);
        prop_assert_eq!(flat[v.argmin()], forward(&v, Reduction::Min, Over::All)[[]]);
    }

    /// Every reduction in f32 agrees with f64, forward and backward.
    #[test]
    fn f32_agrees_with_f64((x, over) in tensor_and_axis()) {
        for r in ALL {
            if matches!(r, Reduction::Var(c) if lane_length(&x, over) <= c) {
                continue;
            }
            let wide = Param::new(x.clone());
            let narrow = Param::new(x.mapv(|v| v as f32));
            let value = forward(&*narrow, r, over);
            let expected = forward(&*wide, r, over);
            for (a, e) in value.iter().zip(&expected) {
                prop_assert!((f64::from(*a) - e).abs() < 1e-5 * e.abs().max(1.0), "{r:?}: {a} vs {e}");
            }
            let weights = weights_like(expected.shape());
            loss(&wide, r, over, &weights);
            let narrow_weights = weights.mapv(|w| w as f32);
            lazy(|k: &mut dyn FnMut(Var<f32>)| {
                apply(&narrow, r, over, &mut |y| {
                    let w = Var::constant(narrow_weights.clone());
                    (&y * &w).bind(|yw| yw.sum().bind(&mut *k))
                })
            })
            .backward();
            for (a, e) in narrow.grad().iter().zip(wide.grad().iter()) {
                prop_assert!((f64::from(*a) - e).abs() < 1e-4 * e.abs().max(1.0), "{r:?}: {a} vs {e}");
            }
        }
    }
}

/// The gradient of `x` under reduction `r` over `over`, for a loss that is
/// the plain sum of the result.
fn grad_of(x: ArrayD<f64>, r: Reduction, over: Over) -> ArrayD<f64> {
    let p = Param::new(x);
    let shape = forward(&p, r, over).shape().to_vec();
    loss(&p, r, over, &ArrayD::ones(IxDyn(&shape)));
    p.grad()
}

#[test]
fn ties_share_the_gradient_evenly() {
    // Two-way tie: half each.
    let g = grad_of(
        array![1.0, 3.0, 3.0, -2.0].into_dyn(),
        Reduction::Max,
        Over::All,
    );
    assert_eq!(g, array![0.0, 0.5, 0.5, 0.0].into_dyn());
    // Three-way tie of the minimum: a third each.
    let g = grad_of(
        array![-1.0, 2.0, -1.0, -1.0].into_dyn(),
        Reduction::Min,
        Over::All,
    );
    let third = 1.0 / 3.0;
    assert_eq!(g, array![third, 0.0, third, third].into_dyn());
    // Along an axis, each lane shares its own gradient: rows (axis -1) of
    // [[5, 5], [1, 4]] and columns (axis 0) of the same.
    let x = array![[5.0, 5.0], [1.0, 4.0]].into_dyn();
    let g = grad_of(x.clone(), Reduction::Max, Over::Axis(-1, false));
    assert_eq!(g, array![[0.5, 0.5], [0.0, 1.0]].into_dyn());
    let g = grad_of(x.clone(), Reduction::Max, Over::Axis(0, true));
    assert_eq!(g, array![[1.0, 1.0], [0.0, 0.0]].into_dyn());
    let g = grad_of(x, Reduction::Min, Over::Axis(1, true));
    assert_eq!(g, array![[0.5, 0.5], [1.0, 0.0]].into_dyn());
}

#[test]
fn a_two_way_tie_agrees_with_central_differences() {
    // At a two-way tie the central difference is (h - 0) / 2h = 1/2 for
    // each tied element, which is the even split; with three it would be
    // 1/2 against 1/3, so ties of three are checked by value above.
    let weights = weights_like(&[3]);
    let mut p = Param::new(array![[0.5, 2.0, 2.0], [-1.0, -1.0, 0.25], [1.0, 1.0, 1.5]].into_dyn());
    for r in [Reduction::Max, Reduction::Min] {
        let report = gradcheck(&mut p, |p| loss(p, r, Over::Axis(1, false), &weights));
        assert!(report.passes(TOLERANCE), "{r:?}: {report}");
    }
}

#[test]
fn argmax_and_argmin_take_the_first_of_ties() {
    let x = Var::constant(array![[2.0f64, 7.0, 7.0], [1.0, 1.0, 0.5]]);
    assert_eq!(x.argmax(), 1);
    assert_eq!(x.argmin(), 5);
    assert_eq!(x.argmax_axis(1), array![1, 0].into_dyn());
    assert_eq!(x.argmin_axis(-1), array![0, 2].into_dyn());
    assert_eq!(x.argmax_axis_keepdim(0), array![[0, 0, 0]].into_dyn());
    assert_eq!(x.argmin_axis_keepdim(-2), array![[1, 1, 1]].into_dyn());
    let x = Var::constant(array![[3.0f32, 3.0], [3.0, 3.0]]);
    assert_eq!((x.argmax(), x.argmin()), (0, 0));
}

#[test]
fn a_nan_is_the_extreme_and_takes_no_gradient() {
    let x = array![1.0, f64::NAN, 3.0].into_dyn();
    let v = Var::constant(x.clone());
    assert!(forward(&v, Reduction::Max, Over::All)[[]].is_nan());
    assert!(forward(&v, Reduction::Min, Over::All)[[]].is_nan());
    assert_eq!((v.argmax(), v.argmin()), (1, 1));
    assert_eq!(grad_of(x, Reduction::Max, Over::All), zeros(&[3]));
}

#[test]
fn size_one_axes_reduce_to_the_element_itself() {
    let x = array![[1.5], [-2.0]].into_dyn();
    for r in [
        Reduction::Sum,
        Reduction::Mean,
        Reduction::Max,
        Reduction::Min,
        Reduction::LogSumExp,
    ] {
        let y = forward(&Var::constant(x.clone()), r, Over::Axis(-1, false));
        assert_close(&y, &array![1.5, -2.0].into_dyn(), &format!("{r:?}"));
        let g = grad_of(x.clone(), r, Over::Axis(1, true));
        assert_close(
            &g,
            &array![[1.0], [1.0]].into_dyn(),
            &format!("{r:?} gradient"),
        );
    }
    // Population variance 0, gradient 0; the unbiased one divides by 0.
    let y = forward(
        &Var::constant(x.clone()),
        Reduction::Var(0),
        Over::Axis(1, false),
    );
    assert_eq!(y, array![0.0, 0.0].into_dyn());
    assert_eq!(
        grad_of(x.clone(), Reduction::Var(0), Over::Axis(1, false)),
        zeros(&[2, 1])
    );
    let y = forward(&Var::constant(x), Reduction::Var(1), Over::Axis(1, false));
    assert!(y.iter().all(|v| v.is_nan()), "0 / 0: {y}");
}

#[test]
fn logsumexp_is_stable_and_handles_infinities() {
    // exp(1000) overflows; the shifted sum does not.
    let y = forward(
        &Var::constant(array![[1000.0, 1000.0], [-1000.0, -1000.0 + 2.0f64.ln()]].into_dyn()),
        Reduction::LogSumExp,
        Over::Axis(1, false),
    );
    assert_close(
        &y,
        &array![1000.0 + 2.0f64.ln(), -1000.0 + 3.0f64.ln()].into_dyn(),
        "large",
    );
    // The gradient is the softmax: 1/2 each.
    let g = grad_of(
        array![1000.0, 1000.0].into_dyn(),
        Reduction::LogSumExp,
        Over::All,
    );
    assert_close(&g, &array![0.5, 0.5].into_dyn(), "softmax");
    // -inf elements contribute nothing; all -inf gives -inf and no gradient.
    let g = grad_of(
        array![f64::NEG_INFINITY, 0.0].into_dyn(),
        Reduction::LogSumExp,
        Over::All,
    );
    assert_eq!(g, array![0.0, 1.0].into_dyn());
    let x = array![f64::NEG_INFINITY, f64::NEG_INFINITY].into_dyn();
    assert_eq!(
        forward(&Var::constant(x.clone()), Reduction::LogSumExp, Over::All)[[]],
        f64::NEG_INFINITY
    );
    assert_eq!(grad_of(x, Reduction::LogSumExp, Over::All), zeros(&[2]));
    // An empty tensor: the logarithm of an empty sum.
    let empty = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[0])));
    assert_eq!(
        forward(&empty, Reduction::LogSumExp, Over::All)[[]],
        f64::NEG_INFINITY
    );
}

#[test]
fn variance_values_by_hand() {
    // Mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5.
    let x = array![[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]].into_dyn();
    let v = Var::constant(x.clone());
    assert_eq!(
        forward(&v, Reduction::Var(0), Over::Axis(1, false)),
        array![1.25, 0.0].into_dyn()
    );
    assert_eq!(
        forward(&v, Reduction::Var(1), Over::Axis(-1, true)),
        array![[5.0 / 3.0], [0.0]].into_dyn()
    );
    assert_eq!(
        forward(&v, Reduction::Var(2), Over::Axis(1, false)),
        array![2.5, 0.0].into_dyn()
    );
    // Over all 8 elements: mean 2.25, squared deviations sum to 5.5.
    assert_close(
        &forward(&v, Reduction::Var(0), Over::All),
        &ndarray::arr0(5.5 / 8.0).into_dyn(),
        "all",
    );
    // d var / d x_i = 2 (x_i - mean) / (n - c): for row 0, c = 1,
    // 2 · (-1.5, -0.5, 0.5, 1.5) / 3.
    let g = grad_of(
        array![1.0, 2.0, 3.0, 4.0].into_dyn(),
        Reduction::Var(1),
        Over::All,
    );
    assert_close(
        &g,
        &array![-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0].into_dyn(),
        "gradient",
    );
    // n = correction: the divisor is 0.
    let y = forward(
        &Var::constant(array![1.0, 3.0].into_dyn()),
        Reduction::Var(2),
        Over::All,
    );
    assert_eq!(y[[]], f64::INFINITY);
}

#[test]
fn norms_by_hand_and_at_zero() {
    let l1 = Reduction::Norm(NormOrder::L1);
    let l2 = Reduction::Norm(NormOrder::L2);
    let x = array![[3.0, -4.0], [0.0, 0.0]].into_dyn();
    let v = Var::constant(x.clone());
    assert_eq!(
        forward(&v, l1, Over::Axis(1, false)),
        array![7.0, 0.0].into_dyn()
    );
    assert_eq!(
        forward(&v, l2, Over::Axis(-1, false)),
        array![5.0, 0.0].into_dyn()
    );
    assert_eq!(forward(&v, l2, Over::All)[[]], 5.0);
    // x / ‖x‖, and 0 for the zero row; sign(x), and 0 at 0.
    assert_close(
        &grad_of(x.clone(), l2, Over::Axis(1, true)),
        &array![[0.6, -0.8], [0.0, 0.0]].into_dyn(),
        "L2 gradient",
    );
    assert_eq!(
        grad_of(x.clone(), l1, Over::Axis(1, true)),
        array![[1.0, -1.0], [0.0, 0.0]].into_dyn()
    );
    assert_eq!(grad_of(zeros(&[3]), l2, Over::All), zeros(&[3]));
    // Squares of 1e30 overflow f32; the scaled sum does not.
    let big = Var::constant(array![1e30f32, -1e30]);
    let n = forward(&big, l2, Over::All)[[]];
    assert!((n / 1e30 - 2.0f32.sqrt()).abs() < 1e-6, "{n}");
    let tiny = Var::constant(array![3e-30f32, 4e-30]);
    let n = forward(&tiny, l2, Over::All)[[]];
    assert!((n / 5e-30 - 1.0).abs() < 1e-6, "{n}");
}

#[test]
fn keepdim_results_broadcast_against_the_input() {
    // x - logsumexp(x, keepdim) is the log-softmax.
    let x = Var::constant(array![[1.0f64, 2.0, 3.0], [0.0, 0.0, 0.0]]);
    let lse = forward(&x, Reduction::LogSumExp, Over::Axis(-1, true));
    assert_eq!(lse.shape(), &[2, 1]);
    let log_softmax = lazy(|k: &mut dyn FnMut(Var<f64>)| x.log_softmax().bind(k)).eval();
    assert_close(&(x.array() - &lse), log_softmax.array(), "log-softmax");
    for r in ALL {
        assert_eq!(
            forward(&x, r, Over::Axis(0, true)).shape(),
            &[1, 3],
            "{r:?}"
        );
        assert_eq!(forward(&x, r, Over::Axis(-2, false)).shape(), &[3], "{r:?}");
        assert_eq!(forward(&x, r, Over::All).shape(), &[] as &[usize], "{r:?}");
    }
}

#[test]
fn unsigned_and_signed_axes_name_the_same_axis() {
    let x = Var::constant(array![
        [[1.0f64, 2.0], [3.0, 4.0]],
        [[5.0, 6.0], [7.0, 8.0]]
    ]);
    let run = |axis: isize| forward(&x, Reduction::Sum, Over::Axis(axis, false));
    assert_eq!(run(-1), run(2));
    assert_eq!(run(-2), run(1));
    assert_eq!(run(-3), run(0));
    let direct = |k: &mut dyn FnMut(Var<f64>)| x.sum_axis(2usize).bind(k);
    assert_eq!(lazy(direct).eval().array(), &run(-1));
    let wide = |k: &mut dyn FnMut(Var<f64>)| x.max_axis(-1i64).bind(k);
    assert_eq!(
        lazy(wide).eval().array(),
        &array![[2.0, 4.0], [6.0, 8.0]].into_dyn()
    );
}

#[test]
#[should_panic(
    expected = "max_axis: axis -3 is out of range for shape [3, 4] (rank 2): expected 0..2, or -2..0 counting from the end"
)]
fn negative_axis_out_of_range() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 4]))).max_axis(-3);
}

#[test]
#[should_panic(expected = "var_axis_keepdim: axis 2 is out of range for shape [3, 4] (rank 2)")]
fn positive_axis_out_of_range() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3, 4]))).var_axis_keepdim(2, 1);
}

#[test]
#[should_panic(
    expected = "logsumexp_axis: axis 0 is out of range for shape [] (rank 0): a zero-dimensional tensor has no axis"
)]
fn axis_of_a_scalar() {
    let _ = Var::scalar(1.0f64).logsumexp_axis(0);
}

#[test]
#[should_panic(expected = "min: cannot take the minimum of an empty tensor (shape [2, 0])")]
fn min_of_nothing() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 0]))).min();
}

#[test]
#[should_panic(
    expected = "argmax_axis: cannot take the arg-maximum along axis 1 of length 0 (shape [2, 0])"
)]
fn argmax_along_an_empty_axis() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 0]))).argmax_axis(-1);
}

/// The maximum along the last axis of a matrix, with a backward step that
/// sends each row's gradient to `pick(row)` instead of its arg-max.
fn wrong_max(
    x: &Var<f64>,
    pick: fn(ArrayView1<'_, f64>) -> usize,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let input = x.clone();
    let value = x.array().map_axis(Axis(1), |row| {
        row.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    });
    Pending::new(
        "wrong_max",
        value,
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let mut g = ArrayD::zeros(input.array().raw_dim());
            for (i, row) in input.array().rows().into_iter().enumerate() {
                g[[i, pick(row)]] = grad[[i]];
            }
            input.accumulate(g);
        },
    )
}

#[test]
fn negative_control_a_max_routing_its_gradient_wrongly_fails() {
    let x = array![[0.3, 1.7, -0.4], [2.0, -1.0, 0.5]].into_dyn();
    let weights = weights_like(&[2]);
    let check = |pick: fn(ArrayView1<'_, f64>) -> usize| {
        let mut p = Param::new(x.clone());
        gradcheck(&mut p, |p| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                wrong_max(p, pick).bind(|y| weighted_sum(&y, &weights).bind(&mut *k))
            })
            .backward()
        })
    };
    // The arg-max is right, so the harness itself is sound...
    let argmax = |row: ArrayView1<'_, f64>| {
        (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
    };
    assert!(check(argmax).passes(TOLERANCE));
    // ...and the last element (or the arg-min) is caught.
    let report = check(|row| row.len() - 1);
    assert!(!report.passes(1e-3), "{report}");
    let argmin = |row: ArrayView1<'_, f64>| {
        (0..row.len()).fold(0, |best, i| if row[i] < row[best] { i } else { best })
    };
    assert!(!check(argmin).passes(1e-3));
}

#[test]
fn negative_control_a_variance_with_the_wrong_divisor_fails() {
    // Forward with n - 1, backward with n: the kind of mistake a
    // correction flag invites.
    let x = array![0.5, -1.25, 2.0, 0.75].into_dyn();
    let mut p = Param::new(x);
    let report = gradcheck(&mut p, |p| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            let input = Var::clone(p);
            let v = p.array();
            let n = v.len() as f64;
            let mean = v.sum() / n;
            let value = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            Pending::new(
                "wrong_var",
                ndarray::arr0(value).into_dyn(),
                true,
                move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
                    input.accumulate(input.array().mapv(|x| 2.0 * (x - mean) / n) * grad[[]]);
                },
            )
            .bind(k)
        })
        .backward()
    });
    assert!(!report.passes(1e-3), "{report}");
    // The analytic gradient is (n - 1) / n = 3/4 of the numeric one.
    assert!(
        (report.analytic / report.numeric - 0.75).abs() < 1e-6,
        "{report}"
    );
}
