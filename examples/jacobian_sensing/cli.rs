//! Command-line options of the jacobian_sensing example.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::Args;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The digits' folder (or their `digits.csv.gz`); none: generated data.
    pub data: Option<PathBuf>,
    /// Training epochs (the default depends on the data).
    pub epochs: Option<usize>,
    /// Trials per row of the robustness table.
    pub trials: usize,
    /// Seeds every random draw.
    pub seed: u64,
}

pub const USAGE: &str = "\
usage: jacobian_sensing [options]
  --data DIR     train on scikit-learn's digits: DIR/digits.csv.gz (or the file itself);
                 default: a generated 10-class set of 64 features
  --epochs N     training epochs (default: 20 on digits, 15 on generated data)
  --trials N     trials per row of the robustness table (default: 20)
  --seed N       seed of every random draw (default: 0)
  --help         this message";

/// The options, or [`Command::Help`] for `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut options = Options {
        data: None,
        epochs: None,
        trials: 20,
        seed: 0,
    };
    let mut args = Args::new(args);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--data" => options.data = Some(args.path(&flag)?),
            "--epochs" => options.epochs = Some(args.positive(&flag)?),
            "--trials" => options.trials = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command<Options>, String> {
        parse(words.iter().map(|w| w.to_string()))
    }

    #[test]
    fn flags_set_their_options_and_mistakes_are_named() {
        let Command::Run(options) = parse_words(&[
            "--data", "d", "--epochs", "3", "--trials", "4", "--seed", "9",
        ])
        .unwrap() else {
            panic!("a run");
        };
        assert_eq!(
            options,
            Options {
                data: Some(PathBuf::from("d")),
                epochs: Some(3),
                trials: 4,
                seed: 9
            }
        );
        assert_eq!(parse_words(&["--help"]), Ok(Command::Help));
        assert_eq!(
            parse_words(&["--trials", "0"]).unwrap_err(),
            "--trials expects a positive whole number, got '0'"
        );
        assert_eq!(
            parse_words(&["--seed", "x"]).unwrap_err(),
            "--seed expects a whole number, got 'x'"
        );
        assert_eq!(
            parse_words(&["--epochs"]).unwrap_err(),
            "--epochs needs a value"
        );
        assert_eq!(
            parse_words(&["--what"]).unwrap_err(),
            "unknown option '--what'"
        );
    }
}
