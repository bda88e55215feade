//! Negative controls for `gradcheck`: a custom operation with a
//! deliberately wrong backward step must fail the check, and the report
//! must point at the parameter and element where it is wrong. Without
//! these, a passing gradient test could mean a blind checker.

use cps_runtime::*;
use ndarray::{ArrayD, Zip, array};

/// `x^3`, whose backward step multiplies the true derivative `3x^2` by
/// `scale(index)` at each flat index: 1 everywhere is the correct operation.
fn cube(
    x: &Var<f64>,
    scale: impl Fn(usize) -> f64 + 'static,
) -> Pending<f64, impl BackwardStep<f64>> {
    let input = x.clone();
    Pending::new(
        "cube",
        x.array().mapv(|v| v * v * v),
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let mut index = 0;
            input.accumulate(Zip::from(&grad).and(input.array()).map_collect(|&g, &v| {
                let d = 3.0 * v * v * scale(index);
                index += 1;
                g * d
            }));
        },
    )
}

/// `sum(cube(a)) + sum(cube(b))`, with the given backward scales.
fn check(
    scale_a: impl Fn(usize) -> f64 + Copy + 'static,
    scale_b: impl Fn(usize) -> f64 + Copy + 'static,
) -> GradcheckReport {
    // Values of magnitude at least 1, so that the derivatives are at least
    // 3 and a 10% error in them is a 10%/1.1 relative error.
    let mut model = (
        Param::new(array![1.0f64, -1.5, 2.0]),
        Param::new(array![[1.25f64, -1.0], [1.75, 1.1]]),
    );
    gradcheck(&mut model, |(a, b)| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            cube(a, scale_a).bind(|ca| {
                cube(b, scale_b).bind(|cb| {
                    ca.sum().bind(|sa| cb.sum().bind(|sb| (sa + sb).bind(k)));
                });
            });
        })
        .backward()
    })
}

#[test]
fn correct_backward_passes() {
    let report = check(|_| 1.0, |_| 1.0);
    assert!(report.passes(1e-6), "{report}");
    assert_eq!(report.elements_checked, 7);
}

#[test]
fn backward_off_by_ten_percent_fails_on_the_right_parameter() {
    let report = check(|_| 1.0, |_| 1.1);
    assert!(!report.passes(1e-3), "{report}");
    // analytic = 1.1 numeric, so the error is 0.1 / 1.1 wherever |numeric| >= 1.
    assert!(
        (report.worst_relative_error - 0.1 / 1.1).abs() < 1e-6,
        "{report}"
    );
    assert_eq!(report.parameter_index, 1, "{report}");
    assert_eq!(report.parameter, "1", "{report}");
    assert!(
        (report.analytic / report.numeric - 1.1).abs() < 1e-6,
        "{report}"
    );
    assert_eq!(report.elements_checked, 7);
}

#[test]
fn backward_wrong_at_one_element_is_located() {
    // Only flat index 2 of `b` (element [1, 0]) is wrong.
    let report = check(|_| 1.0, |i| if i == 2 { 1.1 } else { 1.0 });
    assert!(!report.passes(1e-3), "{report}");
    assert_eq!(report.parameter_index, 1, "{report}");
    assert_eq!(report.element, vec![1, 0], "{report}");
    // d(x^3)/dx at 1.75 is 3 * 1.75^2.
    assert!(
        (report.numeric - 3.0 * 1.75 * 1.75).abs() < 1e-6,
        "{report}"
    );
    assert!(
        (report.analytic - 1.1 * 3.0 * 1.75 * 1.75).abs() < 1e-9,
        "{report}"
    );

    // The same on the first parameter: element [1] of `a`.
    let report = check(|i| if i == 1 { 0.9 } else { 1.0 }, |_| 1.0);
    assert!(!report.passes(1e-3), "{report}");
    assert_eq!(report.parameter_index, 0, "{report}");
    assert_eq!(report.parameter, "0", "{report}");
    assert_eq!(report.element, vec![1], "{report}");
}

#[test]
fn missing_backward_fails() {
    // A backward step that forgets to add anything.
    let mut w = Param::new(array![1.0f64, 2.0]);
    let report = gradcheck(&mut w, |w| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            Pending::new(
                "forgetful",
                w.array().mapv(|v| 2.0 * v),
                true,
                |_: &ArrayD<f64>, _: ArrayD<f64>| {},
            )
            .bind(|y| y.sum().bind(k))
        })
        .backward()
    });
    assert!(!report.passes(1e-3), "{report}");
    assert_eq!(report.analytic, 0.0);
    assert!((report.numeric - 2.0).abs() < 1e-6, "{report}");
}

/// `offset + sum(cube(a))`: a large constant makes the loss large without
/// changing its gradient, so the central differences carry a rounding
/// error of about `1e-16 · offset / step`.
fn check_with_offset(
    offset: f64,
    scale: impl Fn(usize) -> f64 + Copy + 'static,
) -> GradcheckReport {
    let mut a = Param::new(array![1.0f64, -1.5, 2.0, 0.3]);
    gradcheck(&mut a, |a| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            cube(a, scale).bind(|ca| ca.sum().bind(|s| (s + offset).bind(k)));
        })
        .backward()
    })
}

#[test]
fn rounding_of_a_large_loss_does_not_count_as_an_error() {
    // Without the allowance this reports errors of about 1e-5.
    for offset in [1e5, -3.5e4, 1e6] {
        let report = check_with_offset(offset, |_| 1.0);
        assert!(report.passes(1e-6), "offset {offset}: {report}");
    }
}

#[test]
fn a_wrong_gradient_still_fails_on_a_large_loss() {
    // A 1% error at one element of a derivative of 0.27 (at 0.3) is
    // 2.7e-3, above the allowance (about 9e-4 at this offset).
    let report = check_with_offset(1e6, |i| if i == 3 { 1.01 } else { 1.0 });
    assert!(!report.passes(1e-3), "{report}");
    assert_eq!(report.element, vec![3], "{report}");
}

#[test]
fn a_nan_gradient_fails() {
    let report = check_with_offset(0.0, |i| if i == 0 { f64::NAN } else { 1.0 });
    assert!(!report.passes(1.0), "{report}");
    assert!(report.worst_relative_error.is_nan(), "{report}");
}
