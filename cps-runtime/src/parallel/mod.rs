//! Data-parallel training: every worker runs the same model on its share
//! of each batch, and the gradients of all workers are summed before every
//! optimizer step, so that each step is the one a single worker would take
//! on the whole batch (up to the order in which the sums are added).
//!
//! - [`Worker`]: one worker's view (its share of a batch, the gradient
//!   all-reduce, a sum across workers), over any
//!   [`Communicator`](crate::workers::Communicator);
//! - [`on_threads`]: workers on threads of this process, this thread one
//!   of them, the others on replicas of its model;
//! - [`Snapshot`]: a model's parameters as plain data, from which a
//!   replica is made equal to its original.
//!
//! Across processes and machines the same training code runs under
//! `mpirun`, with `Worker::new(MpiWorld::init()?)` (feature `mpi`) and
//! [`Worker::broadcast_parameters`] once at the start; see
//! `docs/scaling.md`.

mod replica;
mod threads;
mod worker;

pub use replica::Snapshot;
pub use threads::{ThreadWorker, on_threads};
pub use worker::Worker;
