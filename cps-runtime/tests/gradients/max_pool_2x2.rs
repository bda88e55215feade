//! Max pooling over 2×2 windows side by side (stride 2, no padding), which
//! runs on a vectorised kernel of its own (`kernels/pool.rs`): values
//! against the definition written here, on random shapes whose rows hold
//! fewer than four windows, four to seven, and eight or more, with odd
//! heights and widths; the gradient against finite differences in f64,
//! with a negative control; ties and NaN going to the first in the window;
//! f32 against f64.

use cps_runtime::ops::pool::Pool2dOptions;
use cps_runtime::*;
use ndarray::{Array4, ArrayD, IxDyn};
use proptest::prelude::*;

use crate::support::{forward_value, seeded_values, weighted_sum};

const TOLERANCE: f64 = 1e-6;

fn pool() -> Pool2dOptions {
    Pool2dOptions::new(2)
}

/// The pooling by its definition: each window's largest value, the first
/// in row-major order on ties, a NaN over any number; and where it is.
fn by_definition(x: &ArrayD<f64>) -> (ArrayD<f64>, Vec<[usize; 4]>) {
    let x: Array4<f64> = x.clone().into_dimensionality().expect("4-D");
    let (n, c, h, w) = x.dim();
    let mut places = Vec::new();
    let out = Array4::from_shape_fn((n, c, h / 2, w / 2), |(b, ch, y, xx)| {
        let mut best: Option<(f64, [usize; 4])> = None;
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let at = [b, ch, 2 * y + i, 2 * xx + j];
            let v = x[at];
            let better = best.is_none_or(|(b, _)| v > b || (v.is_nan() && !b.is_nan()));
            if better {
                best = Some((v, at));
            }
        }
        let (v, at) = best.expect("four values");
        places.push(at);
        v
    });
    (out.into_dyn(), places)
}

/// Shapes (N, C, H, W): rows of 1 to 9 windows, odd sizes among them.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    (1usize..=3, 1usize..=3, 2usize..=11, 2usize..=19).prop_map(|(n, c, h, w)| vec![n, c, h, w])
}

/// The gradient `max_pool2d` gives its input from `sum(y)`.
fn gradient_of_sum(x: &ArrayD<f64>) -> ArrayD<f64> {
    let x = Param::new(x.clone());
    lazy(|k: &mut dyn FnMut(Var<f64>)| x.max_pool2d(pool()).bind(|y| y.sum().bind(k))).backward();
    x.grad()
}

/// The gradient that sends each window's 1 to `places`.
fn ones_at(shape: &[usize], places: &[[usize; 4]]) -> ArrayD<f64> {
    let mut want = ArrayD::<f64>::zeros(IxDyn(shape));
    for at in places {
        want[&at[..]] += 1.0;
    }
    want
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn values_and_places_are_the_definitions(shape in shape(), seed in any::<u64>()) {
        let x = seeded_values(&shape, seed);
        let (want, places) = by_definition(&x);
        prop_assert_eq!(forward_value(Var::constant(x.clone()).max_pool2d(pool())), want);
        prop_assert_eq!(gradient_of_sum(&x), ones_at(&shape, &places));
    }

    #[test]
    fn the_gradient_is_the_finite_differences(shape in shape(), seed in any::<u64>()) {
        let x = seeded_values(&shape, seed);
        let weights = seeded_values(by_definition(&x).0.shape(), seed ^ 3);
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.max_pool2d(pool()).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn ties_and_nans_go_to_the_first_in_the_window(shape in shape(), seed in any::<u64>()) {
        // Values from {0, 1, 2, NaN}: windows full of ties, some with NaN.
        let x = seeded_values(&shape, seed).mapv(|v| match ((v + 1.0) * 2.0).floor() {
            3.0 => f64::NAN,
            level => level,
        });
        let (want, places) = by_definition(&x);
        let got = forward_value(Var::constant(x.clone()).max_pool2d(pool()));
        // NaN != NaN: compare the bits.
        prop_assert_eq!(got.mapv(f64::to_bits), want.mapv(f64::to_bits));
        prop_assert_eq!(gradient_of_sum(&x), ones_at(&shape, &places));
    }

    #[test]
    fn f32_picks_what_f64_picks(shape in shape(), seed in any::<u64>()) {
        // Values exact in f32, with ties.
        let x = seeded_values(&shape, seed).mapv(|v| (v * 8.0).round() / 8.0);
        let want = forward_value(Var::constant(x.clone()).max_pool2d(pool()));
        let x32 = Param::new(x.mapv(|v| v as f32));
        let got = lazy(|k: &mut dyn FnMut(Var<f32>)| {
            x32.max_pool2d(pool()).bind(|y| y.sum().bind(k))
        });
        got.backward();
        let got_value = Var::constant(x.mapv(|v| v as f32)).max_pool2d(pool());
        prop_assert_eq!(got_value.array().mapv(f64::from), want);
        prop_assert_eq!(x32.grad().mapv(f64::from), gradient_of_sum(&x));
    }
}

#[test]
fn gradcheck_rejects_a_pooling_that_sends_its_gradient_to_the_corner() {
    // The same values, but each window's gradient goes to its top-left
    // value whichever is the largest: wrong wherever that is not the one.
    let shape = [2, 3, 6, 10];
    let weights = seeded_values(&[2, 3, 3, 5], 8);
    let mut x = Param::new(seeded_values(&shape, 9));
    let report = gradcheck(&mut x, |x| {
        let value = forward_value(x.max_pool2d(pool()));
        let input = x.clone();
        let wrong = Pending::new(
            "corner_max_pool",
            value,
            x.requires_grad(),
            move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
                let mut dx = ArrayD::zeros(input.array().raw_dim());
                let grad: Array4<f64> = grad.into_dimensionality().expect("4-D");
                for ((b, c, y, xx), &g) in grad.indexed_iter() {
                    dx[[b, c, 2 * y, 2 * xx]] += g;
                }
                input.accumulate(dx);
            },
        );
        lazy(|k: &mut dyn FnMut(Var<f64>)| wrong.bind(|y| weighted_sum(&y, &weights).bind(k)))
            .backward()
    });
    assert!(!report.passes(1e-2), "{report}");
    // The same check passes the library's rule.
    let report = gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            x.max_pool2d(pool())
                .bind(|y| weighted_sum(&y, &weights).bind(k))
        })
        .backward()
    });
    assert!(report.passes(TOLERANCE), "{report}");
}

#[test]
fn the_mnist_shapes_by_hand() {
    // Rows of twelve windows (eight, then the last eight again) and of
    // four, as in the MNIST network: one window per plane checked by hand.
    for (h, w) in [(24, 24), (8, 8)] {
        let mut x = seeded_values(&[2, 3, h, w], 11);
        x[[1, 2, h - 2, w - 1]] = 5.0;
        x[[1, 2, h - 1, w - 2]] = 5.0;
        let y = forward_value(Var::constant(x.clone()).max_pool2d(pool()));
        assert_eq!(y.shape(), &[2, 3, h / 2, w / 2]);
        assert_eq!(y[[1, 2, h / 2 - 1, w / 2 - 1]], 5.0);
        let g = gradient_of_sum(&x);
        // The tie goes to the upper of the two fives.
        assert_eq!(g[[1, 2, h - 2, w - 1]], 1.0);
        assert_eq!(g[[1, 2, h - 1, w - 2]], 0.0);
    }
}
