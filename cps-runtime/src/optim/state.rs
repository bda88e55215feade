//! An optimizer's per-parameter state in a form a checkpoint can hold
//! (see [`crate::io::save_checkpoint`]).

use std::collections::BTreeMap;

use ndarray::ArrayD;

use crate::element::Element;

/// What an optimizer keeps for one parameter between steps: its step count
/// and its buffers (running averages, momentum), each of the parameter's
/// shape, under the names PyTorch's `state_dict` uses (`sum`, `exp_avg`,
/// `exp_avg_sq`, `max_exp_avg_sq`, `square_avg`, `grad_avg`,
/// `momentum_buffer`).
///
/// [`Optimizer::param_state`](super::Optimizer::param_state) reads it and
/// [`Optimizer::set_param_state`](super::Optimizer::set_param_state)
/// puts it back, so that a run resumed from a checkpoint takes the same
/// steps, bit for bit, as one that never stopped.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::optim::{Adam, Optimizer};
/// use ndarray::array;
///
/// let mut w = Param::new(array![1.0f64, 2.0]);
/// let mut adam = Adam::new(0.1);
/// w.var().accumulate(array![0.5, -0.5].into_dyn());
/// adam.step(&mut w);
/// let state = adam.param_state(w.id()).unwrap();
/// assert_eq!(state.step, 1);
/// assert_eq!(state.buffers.keys().collect::<Vec<_>>(), ["exp_avg", "exp_avg_sq"]);
///
/// let mut resumed = Adam::new(0.1);
/// resumed.set_param_state(w.id(), state).unwrap();
/// assert_eq!(resumed.param_state(w.id()), adam.param_state(w.id()));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ParamState<A: Element = f32> {
    /// Steps this parameter has taken (0 for optimizers that do not count
    /// them).
    pub step: u64,
    /// The buffers, by name.
    pub buffers: BTreeMap<String, ArrayD<A>>,
}

/// The required buffers, then the optional ones (`None` when absent).
pub(crate) type TakenBuffers<A> = (Vec<ArrayD<A>>, Vec<Option<ArrayD<A>>>);

impl<A: Element> ParamState<A> {
    /// A state with `step` and the buffers given as (name, buffer) pairs;
    /// absent (`None`) buffers are left out.
    pub(crate) fn of<'a>(
        step: u64,
        buffers: impl IntoIterator<Item = (&'static str, Option<&'a ArrayD<A>>)>,
    ) -> Self {
        ParamState {
            step,
            buffers: buffers
                .into_iter()
                .filter_map(|(name, buffer)| Some((name.to_string(), buffer?.clone())))
                .collect(),
        }
    }

    /// Takes the buffers named `required` (all must be present) and
    /// `optional` (each may be absent) out of the state, in that order;
    /// an error names a missing or an unknown buffer.
    pub(crate) fn take(
        mut self,
        optimizer: &str,
        required: &[&str],
        optional: &[&str],
    ) -> Result<TakenBuffers<A>, String> {
        let mut present = Vec::with_capacity(required.len());
        for name in required {
            present.push(self.buffers.remove(*name).ok_or_else(|| {
                format!("{optimizer}: the saved state lacks the buffer `{name}`")
            })?);
        }
        let maybe = optional
            .iter()
            .map(|name| self.buffers.remove(*name))
            .collect();
        match self.buffers.keys().next() {
            Some(unknown) => Err(format!(
                "{optimizer}: the saved state has a buffer `{unknown}` this optimizer does not keep"
            )),
            None => Ok((present, maybe)),
        }
    }
}
