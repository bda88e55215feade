//! What every training example shares, in one place: the entry point
//! (`command`), the flags for output
//! files and checkpoints and their checks before training (`flags`,
//! `outputs`), the training loop's progress, loss record, checkpoints and
//! resuming (`training`), the loss curve (`plot`), output that ends
//! quietly when its reader goes away (`report`), and where the workers of
//! data-parallel training run (`workers`).
//!
//! An example includes it with `#[path = "../common/mod.rs"] mod common;`.

// Each example uses the parts it needs.
#![allow(dead_code)]

pub mod flags;
pub mod outputs;
pub mod plot;
/// The PyTorch references the examples' model tests compare with.
#[cfg(test)]
pub mod reference;
#[macro_use]
pub mod report;
// After `report`, whose macro it uses.
pub mod command;
pub mod training;
pub mod workers;
