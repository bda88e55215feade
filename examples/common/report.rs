//! Printing a report line. A reader that went away (`| head`) ends the run
//! quietly, as command-line tools do, instead of panicking with "failed
//! printing to stdout: Broken pipe".
//!
//! Small examples include this file alone:
//! `#[path = "common/report.rs"] #[macro_use] mod report;`.

/// Prints a line to standard output, or ends the process quietly (status
/// 0) when standard output is a closed pipe. In an MPI job (feature `mpi`)
/// only worker 0 prints. Under `cargo test` it prints
/// as `println!` does, so that the test harness captures it.
#[allow(unused_macros)]
macro_rules! report {
    ($($arg:tt)*) => {{
        // In an MPI job worker 0 reports for all (Open MPI and MPICH name
        // each process's rank in its environment).
        let other_worker = |name| std::env::var(name).is_ok_and(|rank| rank != "0");
        if cfg!(feature = "mpi") && (other_worker("OMPI_COMM_WORLD_RANK") || other_worker("PMI_RANK")) {
        } else if cfg!(test) {
            println!($($arg)*);
        } else {
            use std::io::Write as _;
            if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
                std::process::exit(0);
            }
        }
    }};
}
