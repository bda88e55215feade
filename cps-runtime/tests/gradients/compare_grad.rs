//! Comparisons as masks and `maximum`/`minimum`: values against direct
//! computation, broadcasting by NumPy's rules, gradients against central
//! finite differences in f64 (ties excluded there, checked exactly apart),
//! and a negative control.

use cps_runtime::*;
use ndarray::{ArrayD, IxDyn, array};
use proptest::prelude::*;

const TOLERANCE: f64 = 1e-6;

/// Distinct values a tenth apart, so that no two elements tie within the
/// finite-difference step.
fn distinct(shape: Vec<usize>, seed: u64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - 1.0).collect();
    // A fixed shuffle from the seed.
    let mut state = seed | 1;
    for i in (1..n).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        values.swap(i, (state >> 33) as usize % (i + 1));
    }
    ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap()
}

/// Two shapes that broadcast together, one possibly with size-1 axes or
/// fewer of them.
fn pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, u64)> {
    (
        prop::collection::vec(1usize..=3, 1..=3),
        0usize..=2,
        any::<u8>(),
        any::<u64>(),
    )
        .prop_map(|(shape, drop, ones, seed)| {
            let other = shape[drop.min(shape.len())..]
                .iter()
                .enumerate()
                .map(|(i, &d)| if ones >> i & 1 == 1 { 1 } else { d })
                .collect();
            (shape, other, seed)
        })
}

/// Gradient check of `maximum` (or `minimum`) of `left` and `right`,
/// weighted by distinct weights and summed.
fn check(left: &ArrayD<f64>, right: &ArrayD<f64>, maximum: bool) -> GradcheckReport {
    let mut model = vec![Param::new(left.clone()), Param::new(right.clone())];
    gradcheck(&mut model, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            let step = |y: Var<f64>| {
                let w = Var::constant(distinct(y.shape().to_vec(), 7).mapv(|v| v + 2.0));
                (&y * &w).bind(|p| p.sum().bind(&mut *k))
            };
            if maximum {
                m[0].maximum(&*m[1]).bind(step)
            } else {
                m[0].minimum(&*m[1]).bind(step)
            }
        })
        .backward()
    })
}

/// Runs a pending computation and returns its result (still inside the
/// continuation's scope: used only where the caller binds right away).
macro_rules! run {
    ($pending:expr) => {{
        let mut out = None;
        $pending.bind(|y: Var<f64>| out = Some(y.detach()));
        out.unwrap()
    }};
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn maximum_and_minimum_match_finite_differences((shape, other, seed) in pair()) {
        let (left, right) = (distinct(shape.clone(), seed), distinct(other.clone(), seed ^ 5).mapv(|v| v + 0.05));
        for (left, right) in [(&left, &right), (&right, &left)] {
            for maximum in [true, false] {
                let report = check(left, right, maximum);
                prop_assert!(report.passes(TOLERANCE), "maximum {maximum} {:?} {:?}: {report}", left.shape(), right.shape());
            }
        }
    }
}

#[test]
fn maximum_and_minimum_gradients_at_fixed_shapes() {
    for (shape, other) in [
        (vec![2, 3], vec![3]),
        (vec![3, 1], vec![1, 2]),
        (vec![2, 2], vec![]),
    ] {
        let left = distinct(shape, 3);
        let right = distinct(other, 11).mapv(|v| v + 0.05);
        for maximum in [true, false] {
            let report = check(&left, &right, maximum);
            assert!(report.passes(TOLERANCE), "maximum {maximum}: {report}");
        }
    }
}

#[test]
fn values_and_masks_broadcast_by_numpy_rules() {
    let column = Var::constant(array![[1.0f64], [2.0], [3.0]]);
    let row = Var::constant(array![[2.0f64, 0.0]]);
    let max = run!(column.maximum(&row));
    assert_eq!(
        max.array(),
        &array![[2.0, 1.0], [2.0, 2.0], [3.0, 3.0]].into_dyn()
    );
    let min = run!(column.minimum(&row));
    assert_eq!(
        min.array(),
        &array![[1.0, 0.0], [2.0, 0.0], [2.0, 0.0]].into_dyn()
    );
    assert_eq!(
        column.gt(&row).array(),
        &array![[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]].into_dyn()
    );
    assert_eq!(
        column.ge(&row).array(),
        &array![[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]].into_dyn()
    );
    assert_eq!(
        column.lt(2.0).array(),
        &array![[1.0], [0.0], [0.0]].into_dyn()
    );
    assert_eq!(
        column.le(2.0).array(),
        &array![[1.0], [1.0], [0.0]].into_dyn()
    );
    assert_eq!(
        column.eq(2.0).array(),
        &array![[0.0], [1.0], [0.0]].into_dyn()
    );
    assert_eq!(
        column.ne(2.0).array(),
        &array![[1.0], [0.0], [1.0]].into_dyn()
    );
    assert!(!column.gt(0.0).requires_grad());
    let f32_mask = Var::constant(array![0.5f32, -0.5]).gt(0.0);
    assert_eq!(f32_mask.array(), &array![1.0f32, 0.0].into_dyn());
}

/// On a tie the gradient is split evenly between the two sides.
#[test]
fn ties_split_the_gradient() {
    let x = Param::new(array![1.0f64, 2.0, 3.0]);
    let y = Param::new(array![3.0f64, 2.0, 1.0]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| x.minimum(&y).bind(|m| m.sum().bind(k))).backward();
    assert_eq!(x.grad(), array![1.0, 0.5, 0.0].into_dyn());
    assert_eq!(y.grad(), array![0.0, 0.5, 1.0].into_dyn());
}

#[test]
#[should_panic(expected = "maximum: shape mismatch between [2, 3] and [2]: not broadcastable")]
fn incompatible_shapes_name_the_operation() {
    let _ = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3])))
        .maximum(&Var::constant(array![1.0f64, 2.0]));
}

/// A maximum whose backward sends every gradient to the left side: the
/// check rejects it.
#[test]
fn a_wrong_rule_is_caught() {
    let (left, right) = (
        distinct(vec![2, 3], 1),
        distinct(vec![2, 3], 2).mapv(|v| v + 0.05),
    );
    let mut model = vec![Param::new(left), Param::new(right)];
    let report = gradcheck(&mut model, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            let (l, r) = (m[0].var().clone(), m[1].var().clone());
            let value = ndarray::Zip::from(l.array())
                .and(r.array())
                .map_collect(|&a, &b| a.max(b));
            Pending::new(
                "wrong maximum",
                value,
                true,
                move |_: &ArrayD<f64>, grad: ArrayD<f64>| l.accumulate(grad),
            )
            .bind(|y| y.sum().bind(k))
        })
        .backward()
    });
    assert!(!report.passes(TOLERANCE), "{report}");
}
