//! The runtime beyond single operations (memory pools, taps, optimizers,
//! checkpoints, data readers, black-box sensing, the module layers): one
//! test binary, a module per part.

mod blackbox;
mod checkpoint;
mod consequential;
mod data_digits;
mod data_io;
mod data_parallel;
mod data_tree;
mod grad_buffers;
mod hessian_free;
mod jacobian_sensing;
mod live_bytes;
mod module_layers;
mod node_pool;
mod optimizers;
mod resume_checkpoint;
mod reversible;
mod second_core;
mod taps;
