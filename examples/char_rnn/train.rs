//! One training iteration: a window's loss back-propagated through the
//! window only (truncated backpropagation through time), then
//! min-char-rnn's update.

use cps::prelude::*;

use crate::model::{CharModel, State, window_loss};

/// Each gradient element is clipped to `[−CLIP, CLIP]` before the update.
pub const CLIP: f64 = 5.0;

/// min-char-rnn's Adagrad: `m += g²`, `p −= lr · g / √(m + 1e-8)` (ε under
/// the root, unlike PyTorch's).
pub fn optimizer<A: Element>(learning_rate: A) -> Adagrad<A> {
    Adagrad::new(learning_rate)
        .eps(A::from_f64_lossy(1e-8))
        .eps_inside_root()
}

/// Trains on the window `inputs` → `targets` from the state `start`:
/// returns the window's loss (before the update) and its last state,
/// detached, to start the next window from.
pub fn train_step<A: Element>(
    model: &mut CharModel<A>,
    optimizer: &mut Adagrad<A>,
    inputs: &[usize],
    targets: &[usize],
    start: &State<A>,
) -> (A, State<A>) {
    let mut end = None;
    // The loss is back-propagated; the last state leaves as a constant, so
    // the next window's gradients stop at its start.
    let loss = lazy(|k: &mut dyn FnMut(Var<A>)| {
        window_loss(model, inputs, targets, start).bind(|(loss, last)| {
            end = Some(last.detached());
            k(loss);
        })
    })
    .backward();
    clip_grad_value(model, A::from_f64_lossy(CLIP));
    optimizer.step(model);
    (loss, end.expect("the window's computation ran"))
}
