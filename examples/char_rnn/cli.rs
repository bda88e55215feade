//! Command-line options of the character models, under the PyTorch
//! reference's names where it has them.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};
use crate::model::Cell;

/// What to train on and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The text; none: the bundled excerpt of Tiny Shakespeare.
    pub data: Option<PathBuf>,
    /// Read the first N bytes of the text only (0: all of it).
    pub bytes: usize,
    pub cell: Cell,
    pub hidden: usize,
    /// Characters per window (and per truncated backpropagation).
    pub seq: usize,
    /// Streams of text per iteration, each the next window of its own
    /// segment of the text.
    pub batch: usize,
    /// Worker threads, sharing each iteration's streams (under `mpirun`:
    /// one per process).
    pub workers: usize,
    pub iters: usize,
    /// Iterations between reports (smoothed loss and a sample) and
    /// checkpoints.
    pub report_every: usize,
    pub learning_rate: f32,
    /// Seeds the initialisation and the samples.
    pub seed: u64,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: None,
            bytes: 1135,
            cell: Cell::Rnn,
            hidden: 50,
            seq: 20,
            batch: 1,
            workers: 1,
            iters: 5000,
            report_every: 1000,
            learning_rate: 0.1,
            seed: 1,
            training: TrainingFlags::new("char_rnn"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: char_rnn [options]
  --cell rnn|lstm       the vanilla RNN (default) or the LSTM
  --data FILE           the text (default: the bundled excerpt of Tiny Shakespeare)
  --bytes N             use the first N bytes of the text, 0 for all (default: 1135)
  --iters N             training iterations, one window each (default: 5000)
  --hidden N            hidden size (default: 50)
  --seq N               characters per window (default: 20)
  --batch N             streams of text per iteration, the text cut into N
                        segments; the loss is their mean (default: 1)
  --workers N           worker threads sharing each iteration's streams, at most
                        --batch (default: 1; under mpirun, one per process)
  --lr X                Adagrad learning rate (default: 0.1)
  --report-every N      iterations between reports and checkpoints (default: 1000)
  --seed N              seed of the initialisation and the samples (default: 1)";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut options = Options::default();
    let mut args = Args::new(args);
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        let whole = "a non-negative integer";
        match flag.as_str() {
            "--cell" => {
                options.cell = match args.value(&flag)?.as_str() {
                    "rnn" => Cell::Rnn,
                    "lstm" => Cell::Lstm,
                    other => return Err(format!("--cell expects 'rnn' or 'lstm', got '{other}'")),
                }
            }
            "--data" => options.data = Some(args.path(&flag)?),
            "--bytes" => options.bytes = args.parsed(&flag, whole)?,
            "--iters" => options.iters = args.parsed(&flag, whole)?,
            "--hidden" => options.hidden = args.positive(&flag)?,
            "--seq" => options.seq = args.positive(&flag)?,
            "--batch" => options.batch = args.positive(&flag)?,
            "--workers" => options.workers = args.positive(&flag)?,
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--report-every" => options.report_every = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, whole)?,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    options.training.check()?;
    check_workers(options.workers, "--workers", options.batch)?;
    Ok(Command::Run(options))
}

/// Refuses more workers than streams: each worker needs one stream or
/// more. `workers` are what `asked` (a flag, or `mpirun -np`) asks for.
pub fn check_workers(workers: usize, asked: &str, batch: usize) -> Result<(), String> {
    if workers > batch {
        return Err(format!(
            "{asked} {workers} exceeds --batch {batch}: each worker reads one stream or more \
             of the batch"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_under_the_reference_names() {
        let parse = |words: &[&str]| {
            parse(words.iter().map(|w| w.to_string())).map(|c| c.run().expect("a run"))
        };
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (
                defaults.cell,
                defaults.bytes,
                defaults.hidden,
                defaults.seq,
                defaults.iters
            ),
            (Cell::Rnn, 1135, 50, 20, 5000)
        );
        let o = parse(&[
            "--cell", "lstm", "--bytes", "0", "--lr", "0.05", "--seq", "25",
        ])
        .unwrap();
        assert_eq!(
            (o.cell, o.bytes, o.learning_rate, o.seq),
            (Cell::Lstm, 0, 0.05, 25)
        );
        assert_eq!(
            parse(&["--cell", "gru"]).unwrap_err(),
            "--cell expects 'rnn' or 'lstm', got 'gru'"
        );
        assert!(parse(&["--seq", "0"]).unwrap_err().contains("positive"));
        assert!(parse(&["--init", "a", "--load", "b"]).is_err());
        let o = parse(&["--batch", "4", "--workers", "3"]).unwrap();
        assert_eq!((defaults.batch, defaults.workers), (1, 1));
        assert_eq!((o.batch, o.workers), (4, 3));
        assert_eq!(
            parse(&["--batch", "2", "--workers", "3"]).unwrap_err(),
            "--workers 3 exceeds --batch 2: each worker reads one stream or more of the batch"
        );
        assert!(parse(&["--batch", "0"]).unwrap_err().contains("positive"));
    }
}
