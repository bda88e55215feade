//! Command-line options of the MNIST example, under the PyTorch
//! reference's names (`../shared/baselines/cnn_mnist_torch.py`).

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};

/// What to train on and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// A folder with MNIST's four IDX files; none: the bundled subset.
    pub data: Option<PathBuf>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Images per step, over all workers together.
    pub batch: usize,
    /// Threads that train in parallel, each on its share of every batch
    /// (under `mpirun`, 1: each process is one worker).
    pub workers: usize,
    /// SGD's learning rate.
    pub learning_rate: f32,
    /// Train without dropout (the reference's `--no-dropout`).
    pub no_dropout: bool,
    /// Skip the test set.
    pub no_test: bool,
    /// Seeds our own initial parameters and the dropout masks.
    pub seed: u64,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: None,
            epochs: 4,
            limit: None,
            batch: 100,
            workers: 1,
            learning_rate: 0.05,
            no_dropout: false,
            no_test: false,
            seed: 1,
            training: TrainingFlags::new("cnn_mnist"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: cnn_mnist [options]
  --data DIR       MNIST's four IDX files (.gz or not), e.g. ../shared/data/mnist;
                   default: the bundled subset (5,000 training and 1,000 test images)
  --epochs N       passes over the training set (default: 4)
  --limit N        train on the first N training images only
  --batch N        images per step, over all workers together (default: 100)
  --workers N      threads training in parallel, each on its share of every batch;
                   the steps are one worker's up to rounding (default: 1). Under
                   mpirun (a build with --features mpi) each process is one worker
  --lr X           SGD's learning rate (default: 0.05)
  --no-dropout     train without dropout
  --no-test        skip the test set
  --seed N         seed of our initial parameters and of the dropout masks (default: 1)
  --help           this message
  (parameter files use PyTorch's names, so --init reads the reference's file)";

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
            "--epochs" => options.epochs = args.positive(&flag)?,
            "--limit" => options.limit = Some(args.positive(&flag)?),
            "--batch" => options.batch = args.positive(&flag)?,
            "--workers" => options.workers = args.positive(&flag)?,
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--no-dropout" => options.no_dropout = true,
            "--no-test" => options.no_test = true,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
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
    fn defaults_are_the_references() {
        let Ok(Command::Run(options)) = parse_args(&[]) else {
            panic!("no arguments train");
        };
        assert_eq!(
            (options.epochs, options.batch, options.learning_rate),
            (4, 100, 0.05)
        );
        assert_eq!(options.workers, 1, "one worker unless asked");
        assert!(!options.no_dropout && !options.no_test && options.data.is_none());
    }

    #[test]
    fn every_flag() {
        let args = [
            "--data",
            "../shared/data/mnist",
            "--epochs",
            "2",
            "--limit",
            "600",
            "--batch",
            "50",
            "--workers",
            "3",
            "--lr",
            "0.1",
            "--no-dropout",
            "--no-test",
            "--seed",
            "7",
            "--init",
            "init.safetensors",
            "--save",
            "out.safetensors",
            "--loss-log",
            "losses.txt",
            "--plot",
            "loss.svg",
        ];
        let expected = Options {
            data: Some("../shared/data/mnist".into()),
            epochs: 2,
            limit: Some(600),
            batch: 50,
            workers: 3,
            learning_rate: 0.1,
            no_dropout: true,
            no_test: true,
            seed: 7,
            training: TrainingFlags {
                init: Some("init.safetensors".into()),
                save: Some("out.safetensors".into()),
                loss_log: Some("losses.txt".into()),
                plot: Some("loss.svg".into()),
                ..TrainingFlags::new("cnn_mnist")
            },
        };
        assert_eq!(parse_args(&args), Ok(Command::Run(Box::new(expected))));
        let Ok(Command::Run(loaded)) = parse_args(&["--load", "a.safetensors"]) else {
            panic!("--load parses");
        };
        assert_eq!(loaded.training.load, Some("a.safetensors".into()));
        assert_eq!(parse_args(&["--epochs", "1", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = |args: &[&str]| parse_args(args).unwrap_err();
        assert_eq!(error(&["--data"]), "--data needs a value");
        assert_eq!(
            error(&["--batch", "0"]),
            "--batch expects a positive whole number, got '0'"
        );
        assert_eq!(
            error(&["--limit", "many"]),
            "--limit expects a positive whole number, got 'many'"
        );
        assert_eq!(
            error(&["--workers", "0"]),
            "--workers expects a positive whole number, got '0'"
        );
        assert_eq!(error(&["--workers"]), "--workers needs a value");
        assert_eq!(
            error(&["--lr", "-1"]),
            "--lr expects a positive number, got '-1'"
        );
        assert_eq!(
            error(&["--init", "a", "--load", "b"]),
            "--load and --init each choose where training starts: give one of them"
        );
        assert_eq!(error(&["--threads", "2"]), "unknown option '--threads'");
    }
}
