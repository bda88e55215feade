//! Command-line options of the neuromorphic example.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};
use crate::cores::Architecture;

/// Which images.
#[derive(Clone, Debug, PartialEq)]
pub enum Dataset {
    /// MNIST's four IDX files in a folder; none: the bundled subset.
    Mnist(Option<PathBuf>),
    /// scikit-learn's digits (`digits.csv.gz` or its folder).
    Digits(PathBuf),
}

/// Which network shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Few cores: the paper's high-efficiency kind.
    Small,
    /// Many cores: the paper's high-accuracy kind.
    Large,
}

/// What to train on and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The images.
    pub data: Dataset,
    /// The network's shape.
    pub size: Size,
    /// Passes over the training set (0: evaluate a `--load`ed network).
    pub epochs: usize,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Images per step.
    pub batch: usize,
    /// Adam's initial learning rate (decayed to 0 on half a cosine).
    pub learning_rate: f32,
    /// Multiplies the class scores (mean firing probabilities) before the
    /// softmax of the loss.
    pub scale: f64,
    /// Copies sampled for deployment (ensembles of 1, 4, 16, 64 of them).
    pub copies: usize,
    /// Seeds the initial probabilities, the signs, the order of the
    /// examples and the sampled copies.
    pub seed: u64,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
}

impl Options {
    /// The network's shape for these images.
    pub fn architecture(&self) -> Architecture {
        match (&self.data, self.size) {
            (Dataset::Mnist(_), Size::Small) => Architecture::mnist_small(),
            (Dataset::Mnist(_), Size::Large) => Architecture::mnist_large(),
            (Dataset::Digits(_), Size::Small) => Architecture::digits_small(),
            (Dataset::Digits(_), Size::Large) => Architecture::digits_large(),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: Dataset::Mnist(None),
            size: Size::Small,
            epochs: 10,
            limit: None,
            batch: 100,
            learning_rate: 0.03,
            scale: 10.0,
            copies: 64,
            seed: 1,
            training: TrainingFlags::new("neuromorphic"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: neuromorphic [options]
  --mnist DIR      MNIST's four IDX files (.gz or not), e.g. ../shared/data/mnist;
                   default: the bundled subset (5,000 training and 1,000 test images)
  --digits PATH    scikit-learn's digits (digits.csv.gz or its folder), split 1437/360
  --net small|large  the network (default: small; see the module documentation)
  --epochs N       passes over the training set (default: 10; 0 with --load: evaluate)
  --limit N        train on the first N training images only
  --batch N        images per step (default: 100)
  --lr X           Adam's initial learning rate, decayed to 0 on half a cosine (default: 0.03)
  --scale X        class scores times X before the loss's softmax (default: 10)
  --copies N       binary copies sampled for deployment (default: 64)
  --seed N         seed of the initial network, the order and the copies (default: 1)
  --help           this message";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Box<Options>>, String> {
    let mut options = Options::default();
    let mut args = Args::new(args);
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        match flag.as_str() {
            "--mnist" => options.data = Dataset::Mnist(Some(args.path(&flag)?)),
            "--digits" => options.data = Dataset::Digits(args.path(&flag)?),
            "--net" => {
                options.size = match args.value(&flag)?.as_str() {
                    "small" => Size::Small,
                    "large" => Size::Large,
                    other => return Err(format!("--net expects small or large, got '{other}'")),
                }
            }
            "--epochs" => options.epochs = args.parsed(&flag, "a whole number")?,
            "--limit" => options.limit = Some(args.positive(&flag)?),
            "--batch" => options.batch = args.positive(&flag)?,
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--scale" => options.scale = f64::from(args.positive_real(&flag)?),
            "--copies" => options.copies = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    options.training.check()?;
    if options.training.init.is_some() {
        return Err("--init: this example has no reference file; use --load".to_string());
    }
    if options.epochs == 0 && options.training.load.is_none() {
        return Err("--epochs 0 evaluates a trained network: give it with --load".to_string());
    }
    Ok(Command::Run(Box::new(options)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command<Box<Options>>, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn flags_set_options() {
        let Ok(Command::Run(options)) = parse_args(&[
            "--digits", "d", "--net", "large", "--epochs", "3", "--lr", "0.1", "--scale", "4",
            "--copies", "16", "--seed", "9",
        ]) else {
            panic!("the flags parse");
        };
        assert_eq!(options.data, Dataset::Digits("d".into()));
        assert_eq!(options.architecture(), Architecture::digits_large());
        assert_eq!(
            (
                options.epochs,
                options.learning_rate,
                options.scale,
                options.copies,
                options.seed
            ),
            (3, 0.1, 4.0, 16, 9)
        );
        let Ok(Command::Run(defaults)) = parse_args(&[]) else {
            panic!("no flags parse");
        };
        assert_eq!(defaults.architecture(), Architecture::mnist_small());
    }

    #[test]
    fn mistakes_are_explained() {
        let error = |args: &[&str]| parse_args(args).unwrap_err();
        assert_eq!(
            error(&["--net", "huge"]),
            "--net expects small or large, got 'huge'"
        );
        assert!(error(&["--epochs", "0"]).contains("--load"));
        assert!(error(&["--init", "x"]).contains("--load"));
        assert_eq!(error(&["--frobnicate"]), "unknown option '--frobnicate'");
    }
}
