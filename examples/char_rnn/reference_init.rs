//! Starting from the PyTorch reference's initial parameters (`--init`,
//! the file its `--save-init` writes), so that both train from the same
//! point and their per-iteration losses can be compared.

use std::path::Path;

use cps::prelude::*;
use ndarray::ArrayD;

use crate::model::{Cell, CharModel};

/// For each of our parameters in visiting order: the reference's name,
/// and whether its tensor is the transpose of ours (the input weights,
/// which we store one row per character).
pub fn file_names(cell: Cell) -> [(&'static str, &'static str, bool); 5] {
    match cell {
        Cell::Rnn => [
            ("wxh", "Wxh", true),
            ("whh", "Whh", false),
            ("bh", "bh", false),
            ("why", "Why", false),
            ("by", "by", false),
        ],
        Cell::Lstm => [
            ("wx", "Wx", true),
            ("wh", "Wh", false),
            ("b", "b", false),
            ("why", "Why", false),
            ("by", "by", false),
        ],
    }
}

/// Loads the reference's initial parameters into `model`; an error names
/// the file and the tensor.
pub fn load(model: &mut CharModel, path: &Path) -> Result<(), String> {
    let tensors = cps::io::read_tensors::<f32>(path).map_err(|e| e.to_string())?;
    let cell = model.cell();
    let names = file_names(cell);
    let mut problem = None;
    let mut index = 0;
    model.visit_mut(&mut |name, param| {
        let (ours, theirs, transposed) = names[index];
        debug_assert_eq!(ours, name);
        index += 1;
        let Some(tensor) = tensors.get(theirs) else {
            problem.get_or_insert(format!(
                "{}: no tensor named `{theirs}` (is it the --save-init file of a --cell {} run?)",
                path.display(),
                cell.name()
            ));
            return;
        };
        // The shape the file must have: ours, or its transpose.
        let mut expected = param.shape().to_vec();
        if transposed {
            expected.reverse();
        }
        if tensor.shape() != expected.as_slice() {
            problem.get_or_insert(format!(
                "{}: tensor `{theirs}` has shape {:?}, the model needs {expected:?} (same --data, --bytes, --hidden?)",
                path.display(),
                tensor.shape(),
            ));
            return;
        }
        let value: ArrayD<f32> = if transposed {
            tensor.t().as_standard_layout().into_owned()
        } else {
            tensor.clone()
        };
        param.set_value(value);
    });
    problem.map_or(Ok(()), Err)
}
