//! Where a training example's workers run: threads of this process
//! (`--workers N`), or, in a build with the `mpi` feature started under
//! `mpirun -np N`, the N processes of the MPI job, one worker each.
//!
//! An example writes its training loop once, generic over the group
//! (`cps::parallel::Worker<C>`), and calls it from both arms of
//! [`Placement`]: under MPI every process runs the whole program, worker 0
//! alone reporting and writing files; on threads this thread is worker 0
//! and the others train replicas (`cps::parallel::on_threads`).

/// Where the workers are.
pub enum Placement {
    /// This many threads of this process (one: this thread alone).
    Threads(usize),
    /// The processes of an MPI job, this one among them.
    #[cfg(feature = "mpi")]
    Mpi(cps::workers::MpiWorld),
}

impl Placement {
    /// The placement of a run asked for `workers` threads: an MPI job of
    /// more than one process when there is one (then `workers` must be 1:
    /// one worker per process), else the threads.
    pub fn of(workers: usize) -> Result<Placement, String> {
        #[cfg(feature = "mpi")]
        {
            use cps::workers::{Communicator, MpiWorld};
            let world = MpiWorld::init()?;
            if Communicator::<f32>::size(&world) > 1 {
                if workers > 1 {
                    return Err(format!(
                        "--workers {workers} under mpirun: each MPI process is one worker; \
                         drop --workers or start one process"
                    ));
                }
                return Ok(Placement::Mpi(world));
            }
        }
        Ok(Placement::Threads(workers))
    }

    /// Whether this process writes the run's files and reports: always on
    /// threads, worker 0 alone in an MPI job.
    pub fn is_root(&self) -> bool {
        match self {
            Placement::Threads(_) => true,
            #[cfg(feature = "mpi")]
            Placement::Mpi(world) => cps::workers::Communicator::<f32>::rank(world) == 0,
        }
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        match self {
            Placement::Threads(n) => *n,
            #[cfg(feature = "mpi")]
            Placement::Mpi(world) => cps::workers::Communicator::<f32>::size(world),
        }
    }

    /// How the workers are placed, for the report.
    pub fn describe(&self) -> String {
        match self {
            Placement::Threads(1) => "one thread".to_string(),
            Placement::Threads(n) => format!("{n} worker threads"),
            #[cfg(feature = "mpi")]
            Placement::Mpi(_) => format!("{} MPI processes", self.workers()),
        }
    }
}
