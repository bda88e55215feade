//! Starting from the PyTorch reference's initial parameters (`--init`,
//! the file its `--save-init` writes), so that both train from the same
//! point and their per-tree losses can be compared.

use std::path::Path;

use cps::prelude::*;

use crate::model::TreeLstm;

/// Names of the parameters in the reference's parameter files, in the
/// order `Parameters::visit` walks the fields: (ours, the reference's).
pub const FILE_NAMES: [(&str, &str); 10] = [
    ("emb", "emb"),
    ("w_leaf", "W_leaf"),
    ("b_leaf", "b_leaf"),
    ("u_int", "U_int"),
    ("b_i", "b_i"),
    ("b_f", "b_f"),
    ("b_o", "b_o"),
    ("b_u", "b_u"),
    ("why", "Why"),
    ("by", "by"),
];

/// Loads the PyTorch reference's initial parameters into `model`.
pub fn load(model: &mut TreeLstm, path: &Path) -> Result<(), String> {
    let tensors = cps::io::read_tensors::<f32>(path).map_err(|e| e.to_string())?;
    let mut problem = None;
    let mut index = 0;
    model.visit_mut(&mut |name, param| {
        let file_name = FILE_NAMES[index].1;
        debug_assert_eq!(FILE_NAMES[index].0, name);
        index += 1;
        match tensors.get(file_name) {
            Some(t) if t.shape() == param.shape() => param.set_value(t.clone()),
            Some(t) => {
                problem.get_or_insert(format!(
                    "{}: tensor `{file_name}` has shape {:?}, the model expects {:?} (same --data, --limit, sizes?)",
                    path.display(),
                    t.shape(),
                    param.shape()
                ));
            }
            None => {
                problem.get_or_insert(format!("{}: no tensor named `{file_name}`", path.display()));
            }
        }
    });
    problem.map_or(Ok(()), Err)
}
