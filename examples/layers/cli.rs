//! Command-line options of the layers example.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};

/// What to train on and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The digits' folder (or their `digits.csv.gz` itself); none: the
    /// generated shapes.
    pub data: Option<PathBuf>,
    /// Passes over the training set (the default depends on the data).
    pub epochs: Option<usize>,
    pub batch: usize,
    pub learning_rate: f32,
    /// Seeds the initial parameters, the batch order and dropout.
    pub seed: u64,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: None,
            epochs: None,
            batch: 32,
            learning_rate: 2e-3,
            seed: 0,
            training: TrainingFlags::new("layers"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: layers [options]
  --data DIR     scikit-learn's digits: DIR/digits.csv.gz (or the file itself);
                 default: generated 8x8 images of shapes
  --epochs N     passes over the training set (default: 30 on digits, 15 on shapes)
  --batch N      images per step (default: 32)
  --lr X         Adam's learning rate (default: 0.002)
  --seed N       seed of the initial parameters, the batch order and dropout (default: 0)
  --help         this message";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Box<Options>>, String> {
    let mut options = Options::default();
    let mut args = Args::new(args);
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        match flag.as_str() {
            "--data" => options.data = Some(args.path(&flag)?),
            "--epochs" => options.epochs = Some(args.positive(&flag)?),
            "--batch" => options.batch = args.positive(&flag)?,
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if options.training.init.is_some() {
        return Err("--init: this example has no reference run to start from".to_string());
    }
    options.training.check()?;
    Ok(Command::Run(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command<Box<Options>>, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn defaults_and_every_flag() {
        assert_eq!(parse_args(&[]), Ok(Command::Run(Box::default())));
        let expected = Options {
            data: Some("../shared/data/digits".into()),
            epochs: Some(3),
            batch: 64,
            learning_rate: 0.01,
            seed: 9,
            training: TrainingFlags::new("layers"),
        };
        let args = [
            "--data",
            "../shared/data/digits",
            "--epochs",
            "3",
            "--batch",
            "64",
            "--lr",
            "0.01",
            "--seed",
            "9",
        ];
        assert_eq!(parse_args(&args), Ok(Command::Run(Box::new(expected))));
        assert_eq!(parse_args(&["--seed", "1", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = |args: &[&str]| parse_args(args).unwrap_err();
        assert_eq!(error(&["--epochs"]), "--epochs needs a value");
        assert_eq!(
            error(&["--batch", "0"]),
            "--batch expects a positive whole number, got '0'"
        );
        assert_eq!(
            error(&["--lr", "fast"]),
            "--lr expects a positive number, got 'fast'"
        );
        assert_eq!(
            error(&["--seed", "-1"]),
            "--seed expects a whole number, got '-1'"
        );
        assert_eq!(error(&["--shuffle"]), "unknown option '--shuffle'");
    }
}
