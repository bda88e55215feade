//! An example's entry point: its options from the command line or its
//! usage message, and the exit statuses every example gives (0 after
//! `--help`, 2 for arguments it cannot read, 1 for a run that failed).

/// What an example's command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command<O> {
    /// Run with these options.
    Run(O),
    /// Print the usage message.
    Help,
}

impl<O> Command<O> {
    /// The options of a run; `None` for `--help`.
    pub fn run(self) -> Option<O> {
        match self {
            Command::Run(options) => Some(options),
            Command::Help => None,
        }
    }
}

/// The options `parse` reads from the program's arguments. For `--help`
/// prints `usage` and ends the program; for arguments it cannot read,
/// prints the error and `usage` and ends it with status 2.
pub fn options_or_exit<O>(
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Command<O>, String>,
    usage: &str,
) -> O {
    match parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            report!("{usage}");
            std::process::exit(0);
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{usage}");
            std::process::exit(2);
        }
    }
}

/// Ends the program with status 1 and the error when the run failed.
pub fn exit_on_error(result: Result<(), String>) {
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
