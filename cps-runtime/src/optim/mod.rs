//! Optimizers: one file per algorithm, plus gradient clipping.
//!
//! A training step is: run the loss with [`Computation::backward`](crate::Computation::backward)
//! (gradients accumulate on the [`Param`]s), optionally clip them
//! ([`clip_grad_norm`], [`clip_grad_value`]), then call
//! [`Optimizer::step`], which consumes every gradient and updates the
//! values in place. The update rules and default hyperparameters are
//! PyTorch's (`torch.optim`), so results can be compared with it.
//!
//! ```
//! use cps_runtime::*;
//! use cps_runtime::optim::{Optimizer, Sgd};
//! use ndarray::array;
//!
//! let mut w = Param::new(array![1.0f64, -2.0]);
//! let mut sgd = Sgd::new(0.1);
//! w.var().accumulate(array![0.5, 1.0].into_dyn()); // as a backward pass would
//! sgd.step(&mut w);
//! assert_eq!(w.array(), &array![0.95, -2.1].into_dyn());
//! assert!(w.grad_ref().is_none()); // the gradient was consumed
//! ```

use ndarray::ArrayD;

use crate::element::Element;
use crate::param::Param;
use crate::parameters::Parameters;

pub mod adagrad;
pub mod adam;
pub mod adamw;
pub mod clip;
pub mod consequential;
pub mod hessian_free;
pub mod rmsprop;
pub mod sgd;
pub mod state;

pub use adagrad::Adagrad;
pub use adam::Adam;
pub use adamw::AdamW;
pub use clip::{clip_grad_norm, clip_grad_value};
pub use consequential::{Consequential, Damping, LossScale};
pub use rmsprop::RmsProp;
pub use sgd::Sgd;
pub use state::ParamState;

/// An optimization algorithm: turns the gradients accumulated on a model's
/// parameters into updates of their values.
///
/// State that lives across steps (momentum buffers, running averages, step
/// counts) is kept per parameter, keyed by [`Param::id`], and created the
/// first time a parameter receives an update. An optimizer may therefore
/// serve several models, and a parameter added to a model later simply
/// starts with fresh state.
///
/// The trait is dyn-compatible: an optimizer chosen at run time can be a
/// `Box<dyn Optimizer<f32>>`.
pub trait Optimizer<A: Element = f32> {
    /// Updates one parameter's `value` in place from its `grad` (same
    /// shape), using and advancing the state kept under `id`.
    ///
    /// [`step`](Optimizer::step) calls this for every parameter; call it
    /// directly to optimize tensors that are not [`Param`]s. The gradient
    /// is taken by value so that its buffer can serve as scratch space.
    ///
    /// # Panics
    /// When `grad`'s shape differs from `value`'s, or from the shape of
    /// the state kept under `id`.
    fn update(&mut self, id: u64, value: &mut ArrayD<A>, grad: &mut ArrayD<A>);

    /// The current learning rate.
    fn learning_rate(&self) -> A;

    /// Changes the learning rate for the following steps (for schedules).
    /// Accumulated state is kept.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    fn set_learning_rate(&mut self, lr: A);

    /// The state kept for the parameter `id` (step count and buffers), or
    /// `None` when it has none yet: what a checkpoint saves
    /// ([`crate::io::save_checkpoint`]).
    fn param_state(&self, id: u64) -> Option<ParamState<A>>;

    /// Replaces the state kept for the parameter `id` with `state`, as
    /// [`param_state`](Optimizer::param_state) returned it (read back from
    /// a checkpoint), so that the next step is the one the saved optimizer
    /// would have taken.
    ///
    /// # Errors
    /// When `state` lacks a buffer this optimizer needs, or has one it
    /// does not keep (a state saved by another optimizer or with other
    /// options); the state of `id` is then unchanged.
    fn set_param_state(&mut self, id: u64, state: ParamState<A>) -> Result<(), String>;

    /// Applies one update to every trainable parameter of `model` that has
    /// a gradient, and consumes those gradients (they are zero afterwards).
    ///
    /// Like PyTorch, a parameter without a gradient (not used by the loss
    /// since the last step) is left alone: its value does not move and
    /// its state (momentum, step count) does not advance. Frozen
    /// parameters ([`Param::set_trainable`]`(false)`) are skipped entirely.
    fn step(&mut self, model: &mut dyn Parameters<A>) {
        model.visit_mut(&mut |_, param: &mut Param<A>| step_param(self, param));
    }
}

/// [`Optimizer::step`] on one parameter: [`Optimizer::update`] with its
/// gradient, if it is trainable and has one.
pub(crate) fn step_param<A: Element, O: Optimizer<A> + ?Sized>(
    optimizer: &mut O,
    param: &mut Param<A>,
) {
    if !param.is_trainable() {
        return;
    }
    // Take the gradient before touching the value: `value_mut` may copy
    // the node, and the gradient must not be copied with it.
    if let Some(mut grad) = param.take_grad() {
        let id = param.id();
        param.update_value(|value| optimizer.update(id, value, &mut grad));
        param.give_back_grad(grad);
    }
}

/// Panics unless `value` is a valid non-negative hyperparameter.
#[track_caller]
pub(crate) fn check_non_negative<A: Element>(optimizer: &str, name: &str, value: A) {
    assert!(
        value >= A::zero(),
        "{optimizer}: {name} must be non-negative, got {value}"
    );
}

/// Panics unless `value` lies in `[0, 1)` (betas, smoothing constants).
#[track_caller]
pub(crate) fn check_unit_interval<A: Element>(optimizer: &str, name: &str, value: A) {
    assert!(
        value >= A::zero() && value < A::one(),
        "{optimizer}: {name} must be in [0, 1), got {value}"
    );
}

/// Panics unless the gradient (and any state buffer) has the value's shape.
#[track_caller]
pub(crate) fn check_shapes<A: Element>(
    optimizer: &str,
    value: &ArrayD<A>,
    grad: &ArrayD<A>,
    state: Option<&ArrayD<A>>,
) {
    if grad.shape() != value.shape() {
        crate::ops::shape_mismatch(
            optimizer,
            value.shape(),
            grad.shape(),
            "the gradient must have the parameter's shape",
        );
    }
    if let Some(state) = state
        && state.shape() != value.shape()
    {
        crate::ops::shape_mismatch(
            optimizer,
            value.shape(),
            state.shape(),
            "the parameter's shape changed since the optimizer's state for it was created",
        );
    }
}
