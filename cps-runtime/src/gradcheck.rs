//! [`gradcheck`]: compare a computation's gradients with central finite
//! differences in `f64`.

use std::fmt;

use ndarray::Dimension;

use crate::parameters::Parameters;

/// The outcome of [`gradcheck`]: where analytic and numeric gradients
/// disagree most.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// The worst relative error over all elements of all parameters:
    /// `(|analytic - numeric| - noise) / max(|analytic|, |numeric|, 1)`,
    /// at least 0, where `noise` is the rounding error the central
    /// difference itself carries (see [`GRADCHECK_STEP`]).
    pub worst_relative_error: f64,
    /// The name of the parameter where it occurs (as [`Parameters::visit`] names it).
    pub parameter: String,
    /// The position of the parameter in visiting order.
    pub parameter_index: usize,
    /// The multi-dimensional index of the element within the parameter.
    pub element: Vec<usize>,
    /// The gradient the computation produced there.
    pub analytic: f64,
    /// The central finite difference there.
    pub numeric: f64,
    /// How many elements were compared.
    pub elements_checked: usize,
}

impl GradcheckReport {
    /// True when the worst relative error is at most `tolerance`.
    pub fn passes(&self, tolerance: f64) -> bool {
        self.worst_relative_error <= tolerance
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst relative error {:.3e} at parameter #{} `{}` element {:?}: analytic {:.10e}, numeric {:.10e} ({} elements checked)",
            self.worst_relative_error,
            self.parameter_index,
            self.parameter,
            self.element,
            self.analytic,
            self.numeric,
            self.elements_checked
        )
    }
}

/// Step of the central differences: small enough that the truncation error
/// (about `step^2`) is negligible, large enough that rounding (about
/// `1e-16 · |loss| / step`) is too for losses of moderate size. For large
/// losses that rounding is not negligible (a loss of 35,000 makes it about
/// 4e-6), so it is allowed for: an error within [`ROUNDING_ULPS`] units in
/// the last place of the loss, divided by `2·step`, does not count.
pub const GRADCHECK_STEP: f64 = 1e-6;

/// How many units in the last place of the loss the two evaluations of a
/// central difference may be off by, between them (the loss is a sum of
/// many rounded terms).
pub const ROUNDING_ULPS: f64 = 8.0;

/// Compares the gradients of `loss` with respect to every trainable
/// parameter of `model` with central finite differences.
///
/// `loss` must run the computation with [`backward`](crate::Computation::backward)
/// and return the loss; it is called once for the analytic gradients and
/// twice per parameter element for the numeric ones. Gradients on the
/// model are zeroed before and after.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let mut w = Param::new(array![0.3f64, -0.7]);
/// let report = gradcheck(&mut w, |w| {
///     lazy(|k: &mut dyn FnMut(Var<f64>)| w.tanh().bind(|t| t.sum().bind(|s| k(s)))).backward()
/// });
/// assert!(report.passes(1e-6), "{report}");
/// ```
///
/// # Panics
/// When the model has no trainable parameter.
pub fn gradcheck<M: Parameters<f64>>(
    model: &mut M,
    mut loss: impl FnMut(&M) -> f64,
) -> GradcheckReport {
    model.zero_grad();
    loss(model);
    let mut analytic = Vec::new();
    let mut names = Vec::new();
    model.visit(&mut |name, p| {
        analytic.push(p.is_trainable().then(|| p.grad()));
        names.push(name.to_string());
    });
    model.zero_grad();
    assert!(
        analytic.iter().any(Option::is_some),
        "gradcheck: the model has no trainable parameter"
    );

    let mut report: Option<GradcheckReport> = None;
    let mut elements_checked = 0;
    for (index, grads) in analytic.iter().enumerate() {
        let Some(grads) = grads else { continue };
        for (element, &analytic_value) in grads.indexed_iter() {
            let element = element.as_array_view().to_vec();
            let shift = |delta: f64, model: &mut M| {
                let mut position = 0;
                model.visit_mut(&mut |_, p| {
                    if position == index {
                        p.value_mut()[element.as_slice()] += delta;
                    }
                    position += 1;
                });
            };
            shift(GRADCHECK_STEP, model);
            let above = loss(model);
            shift(-2.0 * GRADCHECK_STEP, model);
            let below = loss(model);
            shift(GRADCHECK_STEP, model);
            model.zero_grad();

            let numeric = (above - below) / (2.0 * GRADCHECK_STEP);
            let noise = ROUNDING_ULPS * f64::EPSILON * above.abs().max(below.abs())
                / (2.0 * GRADCHECK_STEP);
            let scale = analytic_value.abs().max(numeric.abs()).max(1.0);
            let difference = (analytic_value - numeric).abs();
            // NaN must stay NaN (`max` would turn it into 0).
            let error = if difference.is_nan() {
                difference
            } else {
                (difference - noise).max(0.0) / scale
            };
            elements_checked += 1;
            if report
                .as_ref()
                .is_none_or(|r| error > r.worst_relative_error || error.is_nan())
            {
                report = Some(GradcheckReport {
                    worst_relative_error: error,
                    parameter: names[index].clone(),
                    parameter_index: index,
                    element: element.clone(),
                    analytic: analytic_value,
                    numeric,
                    elements_checked: 0,
                });
            }
        }
    }
    let mut report = report.expect("at least one element was checked");
    report.elements_checked = elements_checked;
    report
}
