//! The command line: what to train, on what, and which report to print.

use std::path::PathBuf;

use crate::model::Architecture;

use crate::common::command::Command;

/// What a run does.
pub struct Options {
    /// A folder holding MNIST's four IDX files; without it, the bundled
    /// subset (or generated images when that is missing too).
    pub data: Option<PathBuf>,
    /// Train on the first `limit` training images only.
    pub limit: Option<usize>,
    /// The number of reversible blocks.
    pub depth: usize,
    /// Channels in each half (C); the activations have 2C.
    pub half: usize,
    /// The models to train.
    pub models: Vec<Architecture>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per training step.
    pub batch: usize,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Draws the initial parameters and the epochs' order.
    pub seed: u64,
    /// Print the memory table (and draw it) instead of training.
    pub memory_table: bool,
    /// Time this many interleaved steps of each model instead of training.
    pub time_steps: Option<usize>,
    /// Where to draw the memory plot (SVG).
    pub plot: PathBuf,
}

/// The usage text.
pub fn usage() -> String {
    "usage: revnet [options]
  --data DIR        MNIST's four IDX .gz files (default: the bundled 5,000/1,000 subset)
  --limit N         train on the first N training images only
  --depth N         reversible blocks, split over two stages (default 8)
  --half C          channels per half; activations have 2C (default 8)
  --model M         revnet | resnet | both (default both)
  --epochs N        (default 6)
  --batch N         (default 64)
  --lr X            Adam's learning rate (default 0.005), annealed along half a cosine
  --seed N          (default 0)
  --memory-table    print live and peak bytes at depths 4, 16, 64 and draw them
  --time-steps N    time N interleaved training steps of each model (medians)
  --plot FILE       where --memory-table draws (default revnet_memory.svg)
  --help"
        .to_string()
}

/// Parses the arguments after the program's name.
pub fn parse(args: impl Iterator<Item = String>) -> Result<Command<Options>, String> {
    let mut options = Options {
        data: None,
        limit: None,
        depth: 8,
        half: 8,
        models: vec![Architecture::RevNet, Architecture::ResNet],
        epochs: 6,
        batch: 64,
        learning_rate: 0.005,
        seed: 0,
        memory_table: false,
        time_steps: None,
        plot: PathBuf::from("revnet_memory.svg"),
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--data" => options.data = Some(PathBuf::from(value()?)),
            "--limit" => options.limit = Some(number(&flag, &value()?)?),
            "--depth" => options.depth = number(&flag, &value()?)?,
            "--half" => options.half = number(&flag, &value()?)?,
            "--epochs" => options.epochs = number(&flag, &value()?)?,
            "--batch" => options.batch = number::<usize>(&flag, &value()?)?.max(1),
            "--seed" => options.seed = number(&flag, &value()?)?,
            "--lr" => options.learning_rate = number(&flag, &value()?)?,
            "--plot" => options.plot = PathBuf::from(value()?),
            "--memory-table" => options.memory_table = true,
            "--time-steps" => options.time_steps = Some(number(&flag, &value()?)?),
            "--model" => {
                options.models = match value()?.as_str() {
                    "revnet" => vec![Architecture::RevNet],
                    "resnet" => vec![Architecture::ResNet],
                    "both" => vec![Architecture::RevNet, Architecture::ResNet],
                    other => {
                        return Err(format!("--model {other}: expected revnet, resnet or both"));
                    }
                }
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.depth == 0 || options.half == 0 {
        return Err("--depth and --half must be at least 1".to_string());
    }
    Ok(Command::Run(options))
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag} {text}: not a number of the right kind"))
}
