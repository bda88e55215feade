//! The cost of summing a buffer across workers (`Communicator::
//! all_reduce_sum`), for the cost model of `docs/scaling.md`: the time of
//! one sum of a single number (the latency) and of the gradients of the
//! MNIST CNN and of the Tree-LSTM, between threads of this process or,
//! built with `--features mpi` and started under `mpirun -np N`, between
//! MPI processes.
//!
//! ```text
//! cargo run --release --example allreduce_bench -- --workers 2
//! cargo build --release --features mpi --example allreduce_bench
//! mpirun -np 2 target/release/examples/allreduce_bench
//! ```

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::time::Instant;

use common::command::{self, Command};
use common::flags::Args;
use common::workers::Placement;
use cps::workers::{Communicator, ThreadGroup};

const USAGE: &str = "\
usage: allreduce_bench [--workers N] [--repeat N]
  --workers N           threads summing (default: 2; 1 under mpirun)
  --repeat N            sums timed per buffer size (default: 200)";

/// The buffers summed: one number, then the gradient buffers (and one flag
/// per parameter) of the MNIST CNN (21,840 parameters in 8 tensors) and of
/// the Tree-LSTM at embedding 300, hidden 150 (361,805 in 10).
const SIZES: [(&str, usize); 3] = [
    ("one number", 1),
    ("MNIST CNN gradients", 21_840 + 8),
    ("Tree-LSTM gradients", 361_805 + 10),
];

struct Options {
    workers: usize,
    repeat: usize,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut args = Args::new(args);
    let mut options = Options {
        workers: 2,
        repeat: 200,
    };
    let mut workers = None;
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--workers" => workers = Some(args.positive(&flag)?),
            "--repeat" => options.repeat = args.positive(&flag)?,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let under_mpi = cfg!(feature = "mpi")
        && ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
    options.workers = workers.unwrap_or(if under_mpi { 1 } else { 2 });
    Ok(Command::Run(options))
}

/// Times `repeat` sums of each buffer size on `group`; worker 0 reports.
fn time_sums(group: &mut impl Communicator<f32>, repeat: usize, how: &str) {
    let workers = group.size();
    for (what, len) in SIZES {
        let mut values = vec![1.0f32; len];
        // The first sums warm the caches and the transport.
        for _ in 0..10 {
            group.all_reduce_sum(&mut values);
        }
        let start = Instant::now();
        for _ in 0..repeat {
            group.all_reduce_sum(&mut values);
        }
        let seconds = start.elapsed().as_secs_f64() / repeat as f64;
        if group.rank() == 0 {
            // What a ring all-reduce moves per worker: 2(p−1)/p of the
            // buffer each way.
            let moved = 2.0 * (workers - 1) as f64 / workers as f64 * (4 * len) as f64;
            report!(
                "{how}, {what} ({} bytes): {:.1} µs per sum, {:.2} GB/s moved per worker",
                4 * len,
                seconds * 1e6,
                moved / seconds / 1e9
            );
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    match Placement::of(options.workers)? {
        Placement::Threads(workers) => {
            std::thread::scope(|scope| {
                for mut member in ThreadGroup::<f32>::new(workers) {
                    scope.spawn(move || {
                        time_sums(&mut member, options.repeat, &format!("{workers} threads"))
                    });
                }
            });
        }
        #[cfg(feature = "mpi")]
        Placement::Mpi(mut world) => {
            let how = format!("{} MPI processes", Communicator::<f32>::size(&world));
            time_sums(&mut world, options.repeat, &how);
        }
    }
    Ok(())
}

fn main() {
    let options = command::options_or_exit(parse, USAGE);
    command::exit_on_error(run(&options));
}
