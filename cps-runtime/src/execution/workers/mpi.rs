//! [`MpiWorld`]: the processes of an MPI job as a group of workers, on one
//! machine or many (feature `mpi`).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::Communicator;

/// Every process of the job (`MPI_COMM_WORLD`) as a [`Communicator`]: sums
/// are `MPI_Allreduce`, broadcasts `MPI_Bcast` from rank 0. Start the
/// program under `mpirun -np N`; a program started on its own is a job of
/// one process.
///
/// MPI is initialised when the world is made and finalised when it is
/// dropped; a process makes it once.
///
/// ```no_run
/// use cps_runtime::workers::{Communicator, MpiWorld};
///
/// let mut world = MpiWorld::init().expect("MPI starts");
/// let mut values = vec![world.rank() as f32];
/// world.all_reduce_sum(&mut values);
/// // With `mpirun -np 2`: 0 + 1 on both processes.
/// ```
pub struct MpiWorld {
    world: SimpleCommunicator,
    /// MPI sums from one buffer into another: the incoming values wait
    /// here.
    scratch_f32: Vec<f32>,
    scratch_f64: Vec<f64>,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

impl MpiWorld {
    /// Initialises MPI and returns the job's processes.
    ///
    /// # Errors
    /// When MPI was initialised already in this process.
    pub fn init() -> Result<MpiWorld, String> {
        let universe = mpi::initialize()
            .ok_or_else(|| "MPI was initialised already in this process".to_string())?;
        Ok(MpiWorld {
            world: universe.world(),
            scratch_f32: Vec::new(),
            scratch_f64: Vec::new(),
            _universe: universe,
        })
    }
}

impl std::fmt::Debug for MpiWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiWorld")
            .field("rank", &self.world.rank())
            .field("size", &self.world.size())
            .finish()
    }
}

/// Both element types MPI sums natively, with their scratch buffer.
macro_rules! communicator_for {
    ($element:ty, $scratch:ident) => {
        impl Communicator<$element> for MpiWorld {
            fn rank(&self) -> usize {
                usize::try_from(self.world.rank()).expect("MPI ranks are non-negative")
            }

            fn size(&self) -> usize {
                usize::try_from(self.world.size()).expect("MPI sizes are positive")
            }

            fn all_reduce_sum(&mut self, values: &mut [$element]) {
                if self.world.size() == 1 {
                    return;
                }
                self.$scratch.clear();
                self.$scratch.extend_from_slice(values);
                self.world
                    .all_reduce_into(&self.$scratch[..], values, SystemOperation::sum());
            }

            fn broadcast(&mut self, values: &mut [$element]) {
                if self.world.size() == 1 {
                    return;
                }
                self.world.process_at_rank(0).broadcast_into(values);
            }
        }
    };
}

communicator_for!(f32, scratch_f32);
communicator_for!(f64, scratch_f64);
