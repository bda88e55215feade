//! Command-line options of the spiking example.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};

/// Which images to train on.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// The bundled 5,000/1,000 subset of MNIST.
    Bundled,
    /// MNIST's four IDX files in a folder.
    Mnist(PathBuf),
    /// scikit-learn's digits (a folder with `digits.csv.gz`, or the file).
    Digits(PathBuf),
}

/// What to train and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The images.
    pub source: Source,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Ticks (ms) per sample.
    pub ticks: usize,
    /// Spike probability per tick of a pixel of intensity 1.
    pub rate: f32,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Test on the first N test images only.
    pub test_limit: Option<usize>,
    /// Target count of the right class (default T/5).
    pub desired: Option<f32>,
    /// Target count of the other classes (default T/40).
    pub undesired: Option<f32>,
    /// Errors within this of the target count as none (default T/40).
    pub margin: Option<f32>,
    /// Without the term of the neurons' own resets in the backward pass.
    pub no_reset_term: bool,
    /// Seeds the weights, the batch order and the spike draws.
    pub seed: u64,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            source: Source::Bundled,
            hidden: vec![800],
            ticks: 100,
            rate: 0.5,
            epochs: 1,
            batch: 16,
            learning_rate: 5e-3,
            limit: None,
            test_limit: None,
            desired: None,
            undesired: None,
            margin: None,
            no_reset_term: false,
            seed: 1,
            training: TrainingFlags::new("spiking"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: spiking [options]
  --mnist DIR       MNIST's four IDX files; default: the bundled subset (5,000/1,000 images)
  --digits PATH     scikit-learn's digits (DIR/digits.csv.gz or the file), split 1437/360
  --hidden N[,N..]  hidden layer widths (default: 800; 100 on digits)
  --ticks T         ticks (1 ms) per sample (default: 100)
  --rate X          spike probability per tick of a white pixel (default: 0.5)
  --epochs N        passes over the training set (default: 1; 30 on digits)
  --batch N         samples per step (default: 16)
  --lr X            Adam's learning rate, annealed along half a cosine (default: 0.005)
  --limit N         train on the first N training images only
  --test-limit N    test on the first N test images only
  --desired X       target count of the right class (default: T/5)
  --undesired X     target count of the other classes (default: T/40)
  --margin X        errors within X of the target count as none (default: T/40)
  --no-reset-term   leave out the neurons' own resets in the backward pass
  --seed N          seed of the weights, the batch order and the spike draws (default: 1)
  --help            this message";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Box<Options>>, String> {
    let mut options = Options::default();
    let mut args = Args::new(args);
    let mut epochs = None;
    let mut hidden = None;
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        match flag.as_str() {
            "--mnist" => options.source = Source::Mnist(args.path(&flag)?),
            "--digits" => options.source = Source::Digits(args.path(&flag)?),
            "--hidden" => {
                let text: String = args.parsed(&flag, "widths like 800 or 800,800")?;
                let widths: Result<Vec<usize>, _> =
                    text.split(',').map(|w| w.trim().parse::<usize>()).collect();
                match widths {
                    Ok(w) if !w.is_empty() && w.iter().all(|&w| w > 0) => hidden = Some(w),
                    _ => {
                        return Err(format!(
                            "--hidden expects widths like 800 or 800,800, got '{text}'"
                        ));
                    }
                }
            }
            "--ticks" => options.ticks = args.positive(&flag)?,
            "--rate" => options.rate = args.positive_real(&flag)?,
            "--epochs" => epochs = Some(args.positive(&flag)?),
            "--batch" => options.batch = args.positive(&flag)?,
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--limit" => options.limit = Some(args.positive(&flag)?),
            "--test-limit" => options.test_limit = Some(args.positive(&flag)?),
            "--desired" => options.desired = Some(args.positive_real(&flag)?),
            "--undesired" => options.undesired = Some(args.parsed(&flag, "a number")?),
            "--margin" => options.margin = Some(args.parsed(&flag, "a number")?),
            "--no-reset-term" => options.no_reset_term = true,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let digits = matches!(options.source, Source::Digits(_));
    options.epochs = epochs.unwrap_or(if digits { 30 } else { 1 });
    options.hidden = hidden.unwrap_or(if digits { vec![100] } else { vec![800] });
    if options.ticks > usize::from(u16::MAX) {
        return Err("--ticks: at most 65535".to_string());
    }
    if options.rate > 1.0 {
        return Err("--rate is a probability per tick: at most 1".to_string());
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
    fn defaults_and_flags() {
        let Ok(Command::Run(o)) = parse_args(&[]) else {
            panic!("no arguments train");
        };
        assert_eq!(
            (o.source, o.hidden, o.epochs),
            (Source::Bundled, vec![800], 1)
        );
        let Ok(Command::Run(o)) = parse_args(&[
            "--digits",
            "d",
            "--hidden",
            "50,40",
            "--ticks",
            "200",
            "--no-reset-term",
        ]) else {
            panic!("these flags parse");
        };
        assert_eq!(o.source, Source::Digits("d".into()));
        assert_eq!(
            (o.hidden, o.ticks, o.epochs, o.no_reset_term),
            (vec![50, 40], 200, 30, true)
        );
        assert_eq!(
            parse_args(&["--hidden", "0"]).unwrap_err(),
            "--hidden expects widths like 800 or 800,800, got '0'"
        );
        assert_eq!(
            parse_args(&["--rate", "2"]).unwrap_err(),
            "--rate is a probability per tick: at most 1"
        );
    }
}
