//! Checkpoints: a model's parameters, an optimizer's state and the
//! training loop's own state in one safetensors file, written atomically,
//! so that a run resumed from it takes the same steps, bit for bit, as a
//! run that never stopped.
//!
//! The file holds the tensors `model/<parameter>`,
//! `optimizer/<parameter>/<buffer>` and `state/<name>`; its metadata holds
//! `format`, each parameter's optimizer step count under
//! `optimizer/<parameter>/step`, and the loop's counters under
//! `state/<name>`. Any safetensors reader can open it.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayD;

use super::{Encoded, Metadata, ParamFileError, Tensors, read_file, set_parameters};
use crate::element::Element;
use crate::optim::{Optimizer, ParamState};
use crate::parameters::Parameters;

/// The `format` metadata of a checkpoint.
const FORMAT: &str = "cps checkpoint 1";

/// What a checkpoint keeps of the training loop besides the model and the
/// optimizer: counters (the epoch, the position in the data, a seed) as
/// text, and arrays (a recurrent state carried from step to step, the
/// record of losses) by name.
///
/// ```
/// use cps_runtime::io::TrainingState;
///
/// let mut state = TrainingState::<f32>::default();
/// state.set_counter("epoch", 3);
/// assert_eq!(state.counter("epoch"), Some(3));
/// assert_eq!(state.counter("step"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingState<A: Element = f32> {
    /// Text by name (counters are written in decimal).
    pub metadata: BTreeMap<String, String>,
    /// Arrays by name.
    pub tensors: BTreeMap<String, ArrayD<A>>,
}

impl<A: Element> TrainingState<A> {
    /// Records a counter under `name`.
    pub fn set_counter(&mut self, name: &str, value: u64) {
        self.metadata.insert(name.to_string(), value.to_string());
    }

    /// The counter recorded under `name`, if there is one and it is a
    /// whole number.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.metadata.get(name)?.parse().ok()
    }
}

/// Writes `model`'s parameters, `optimizer`'s state for each of them and
/// the loop's `state` to `path`, replacing the file atomically (a failed
/// or interrupted save leaves the previous checkpoint as it was).
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::io::{TrainingState, load_checkpoint, save_checkpoint};
/// use cps_runtime::optim::{Adam, Optimizer};
/// use ndarray::array;
///
/// let path = std::env::temp_dir().join(format!("cps-checkpoint-doc-{}.safetensors", std::process::id()));
/// let mut w = Param::new(array![1.0f32, 2.0]);
/// let mut adam = Adam::new(0.1);
/// w.var().accumulate(array![0.5, -0.5].into_dyn());
/// adam.step(&mut w);
/// let mut state = TrainingState::default();
/// state.set_counter("epoch", 1);
/// save_checkpoint(&path, &w, &adam, &state).unwrap();
///
/// let mut resumed_w = Param::new(array![0.0f32, 0.0]);
/// let mut resumed_adam = Adam::new(0.1);
/// let loaded = load_checkpoint(&path, &mut resumed_w, &mut resumed_adam).unwrap();
/// assert_eq!(loaded.counter("epoch"), Some(1));
/// assert_eq!(resumed_w.array(), w.array());
/// assert_eq!(resumed_adam.param_state(resumed_w.id()), adam.param_state(w.id()));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn save_checkpoint<A, M, O>(
    path: impl AsRef<Path>,
    model: &M,
    optimizer: &O,
    state: &TrainingState<A>,
) -> Result<(), ParamFileError>
where
    A: Element,
    M: Parameters<A> + ?Sized,
    O: Optimizer<A> + ?Sized,
{
    let mut tensors = Vec::new();
    let mut metadata = Metadata::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    model.visit(&mut |name, param| {
        tensors.push((format!("model/{name}"), Encoded::new(param.array())));
        if let Some(saved) = optimizer.param_state(param.id()) {
            metadata.insert(format!("optimizer/{name}/step"), saved.step.to_string());
            for (buffer, array) in &saved.buffers {
                tensors.push((format!("optimizer/{name}/{buffer}"), Encoded::new(array)));
            }
        }
    });
    for (name, array) in &state.tensors {
        tensors.push((format!("state/{name}"), Encoded::new(array)));
    }
    for (name, value) in &state.metadata {
        metadata.insert(format!("state/{name}"), value.clone());
    }
    super::write_with_metadata(tensors, metadata, path.as_ref())
}

/// Reads a checkpoint written by [`save_checkpoint`]: sets `model`'s
/// parameters and `optimizer`'s state for each of them, and returns the
/// loop's state. The file must hold exactly the model's parameters, with
/// their shapes, and optimizer state of the kind `optimizer` keeps;
/// otherwise the error names the file and what does not fit, the model is
/// unchanged, and the optimizer (which may hold part of the file's state)
/// is best discarded.
pub fn load_checkpoint<A, M, O>(
    path: impl AsRef<Path>,
    model: &mut M,
    optimizer: &mut O,
) -> Result<TrainingState<A>, ParamFileError>
where
    A: Element,
    M: Parameters<A> + ?Sized,
    O: Optimizer<A> + ?Sized,
{
    let path = path.as_ref();
    let (tensors, mut metadata) = read_file::<A>(path)?;
    let unfit = |detail: String| ParamFileError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    match metadata.remove("format") {
        Some(format) if format == FORMAT => {}
        Some(other) => {
            return Err(unfit(format!(
                "checkpoint format `{other}`, expected `{FORMAT}`"
            )));
        }
        None => {
            return Err(unfit(
                "not a checkpoint (no `format` metadata); a file of parameters alone loads with load_parameters".to_string(),
            ));
        }
    }
    let mut parameters = Tensors::new();
    let mut buffers: BTreeMap<String, Tensors<A>> = BTreeMap::new();
    let mut state = TrainingState::default();
    for (name, array) in tensors {
        if let Some(parameter) = name.strip_prefix("model/") {
            parameters.insert(parameter.to_string(), array);
        } else if let Some(rest) = name.strip_prefix("optimizer/") {
            let Some((parameter, buffer)) = rest.rsplit_once('/') else {
                return Err(unfit(format!(
                    "tensor `{name}` names no parameter and buffer"
                )));
            };
            buffers
                .entry(parameter.to_string())
                .or_default()
                .insert(buffer.to_string(), array);
        } else if let Some(key) = name.strip_prefix("state/") {
            state.tensors.insert(key.to_string(), array);
        } else {
            return Err(unfit(format!(
                "tensor `{name}` is not part of a checkpoint"
            )));
        }
    }
    let mut steps = BTreeMap::new();
    for (key, value) in metadata {
        if let Some(rest) = key.strip_prefix("optimizer/") {
            let parameter = rest.strip_suffix("/step").unwrap_or(rest);
            let step = value
                .parse::<u64>()
                .map_err(|_| unfit(format!("`{key}` is `{value}`, not a step count")))?;
            steps.insert(parameter.to_string(), step);
        } else if let Some(name) = key.strip_prefix("state/") {
            state.metadata.insert(name.to_string(), value);
        }
    }

    // Check the optimizer's state against the model before changing anything.
    let mut saved_states = Vec::new();
    let mut problem = None;
    model.visit(&mut |name, param| {
        let buffers = buffers.remove(name).unwrap_or_default();
        let step = steps.remove(name);
        if buffers.is_empty() && step.is_none() {
            return;
        }
        if let Some((buffer, array)) = buffers.iter().find(|(_, a)| a.shape() != param.shape()) {
            problem.get_or_insert(format!(
                "optimizer buffer `{buffer}` of `{name}` has shape {:?}, the parameter {:?}",
                array.shape(),
                param.shape()
            ));
        }
        saved_states.push((
            param.id(),
            name.to_string(),
            ParamState {
                step: step.unwrap_or(0),
                buffers,
            },
        ));
    });
    if let Some(problem) = problem {
        return Err(unfit(problem));
    }
    if let Some(name) = buffers.keys().chain(steps.keys()).next() {
        return Err(unfit(format!(
            "optimizer state for `{name}`, which matches no parameter of the model"
        )));
    }
    for (id, name, saved) in saved_states {
        optimizer
            .set_param_state(id, saved)
            .map_err(|e| unfit(format!("the optimizer state of `{name}`: {e}")))?;
    }
    set_parameters(model, parameters, path)?;
    Ok(state)
}
