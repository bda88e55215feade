//! Printing a report line. A reader that went away (`| head`) ends the run
//! quietly, as command-line tools do, instead of panicking with "failed
//! printing to stdout: Broken pipe".
//!
//! Small examples include this file alone:
//! `#[path = "common/report.rs"] #[macro_use] mod report;`.

/// Prints a line to standard output, or ends the process quietly (status
/// 0) when standard output is a closed pipe. Under `cargo test` it prints
/// as `println!` does, so that the test harness captures it.
#[allow(unused_macros)]
macro_rules! report {
    ($($arg:tt)*) => {{
        if cfg!(test) {
            println!($($arg)*);
        } else {
            use std::io::Write as _;
            if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
                std::process::exit(0);
            }
        }
    }};
}
