//! Gradient clipping, applied between the backward pass and the optimizer
//! step to keep one bad batch from throwing the parameters far away.

use ndarray::ArrayD;

use super::check_non_negative;
use crate::element::Element;
use crate::param::Param;
use crate::parameters::Parameters;

/// Calls `f` on the gradient of every trainable parameter that has one,
/// moving the buffer out and back (no copy).
fn for_each_grad<A: Element, M: Parameters<A> + ?Sized>(
    model: &M,
    mut f: impl FnMut(&mut ArrayD<A>),
) {
    model.visit(&mut |_, param: &Param<A>| {
        // Frozen parameters are skipped as the optimizers skip them; their
        // gradient could not be put back anyway.
        if !param.is_trainable() {
            return;
        }
        if let Some(mut grad) = param.take_grad() {
            f(&mut grad);
            param.var().accumulate(grad);
        }
    });
}

/// Clamps every gradient element of `model`'s trainable parameters into
/// `[−max, max]`, as `torch.nn.utils.clip_grad_value_`.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::clip_grad_value;
/// use ndarray::array;
///
/// let w = Param::new(array![0.0f64, 0.0, 0.0]);
/// w.var().accumulate(array![-3.0, 0.5, 2.0].into_dyn());
/// clip_grad_value(&w, 1.0);
/// assert_eq!(w.grad(), array![-1.0, 0.5, 1.0].into_dyn());
/// ```
///
/// # Panics
/// When `max` is negative or NaN.
pub fn clip_grad_value<A: Element, M: Parameters<A> + ?Sized>(model: &M, max: A) {
    check_non_negative("clip_grad_value", "max", max);
    let min = -max;
    for_each_grad(model, |grad| grad.mapv_inplace(|g| g.max(min).min(max)));
}

/// Rescales the gradients of `model`'s trainable parameters so that their
/// global L2 norm (over all parameters together, as if concatenated) is at
/// most `max_norm`, and returns the norm before clipping, as
/// `torch.nn.utils.clip_grad_norm_`.
///
/// When the norm `n` exceeds `max_norm`, every gradient is multiplied by
/// `max_norm / (n + 1e-6)` (PyTorch's guard against dividing by a tiny
/// norm); otherwise the gradients are left as they are. A non-finite norm
/// (an overflow or a NaN in some gradient) is returned as is: check it
/// with `is_finite` to skip the step.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::clip_grad_norm;
/// use ndarray::array;
///
/// let w = Param::new(array![0.0f64, 0.0]);
/// w.var().accumulate(array![3.0, 4.0].into_dyn());
/// let norm = clip_grad_norm(&w, 1.0);
/// assert_eq!(norm, 5.0);
/// let scale = 1.0 / (5.0 + 1e-6);
/// assert_eq!(w.grad(), array![3.0 * scale, 4.0 * scale].into_dyn());
/// ```
///
/// # Panics
/// When `max_norm` is negative or NaN.
pub fn clip_grad_norm<A: Element, M: Parameters<A> + ?Sized>(model: &M, max_norm: A) -> A {
    check_non_negative("clip_grad_norm", "max_norm", max_norm);
    let mut sum_sq = A::zero();
    model.visit(&mut |_, param: &Param<A>| {
        if param.is_trainable()
            && let Some(grad) = param.grad_ref()
        {
            sum_sq += sum_of_squares(&grad);
        }
    });
    let norm = sum_sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + A::from_f64_lossy(1e-6));
        for_each_grad(model, |grad| *grad *= scale);
    }
    norm
}

/// Σ x², with several independent partial sums so the loop vectorises
/// (and rounding error grows more slowly than with one running sum).
fn sum_of_squares<A: Element>(x: &ArrayD<A>) -> A {
    const LANES: usize = 8;
    let Some(slice) = x.as_slice_memory_order() else {
        return x.iter().map(|&v| v * v).sum();
    };
    let mut partial = [A::zero(); LANES];
    let mut chunks = slice.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (acc, &v) in partial.iter_mut().zip(chunk) {
            *acc += v * v;
        }
    }
    let tail: A = chunks.remainder().iter().map(|&v| v * v).sum();
    partial.iter().copied().sum::<A>() + tail
}
