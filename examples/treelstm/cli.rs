//! Command-line options of the Tree-LSTM example.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};

/// What to train on and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// A folder with `train.txt`, `dev.txt`, `test.txt`; none: the synthetic treebank.
    pub data: Option<PathBuf>,
    pub epochs: usize,
    /// Train on the first N training trees only.
    pub limit: Option<usize>,
    pub train_embeddings: bool,
    pub glove: Option<PathBuf>,
    /// Output files, checkpoints and the starting point.
    pub training: TrainingFlags,
    pub seed: u64,
    pub learning_rate: f32,
    /// Embedding and hidden sizes (defaults depend on the data).
    pub embedding: Option<usize>,
    pub hidden: Option<usize>,
    /// Skip evaluation on the development and test sets.
    pub no_eval: bool,
    /// Trees per optimizer step (their mean loss's gradient).
    pub batch: usize,
    /// Train data-parallel on this many threads, each taking its share of
    /// every batch.
    pub workers: usize,
    /// Split the large matrix products with a second core (same steps as
    /// one thread).
    pub second_core: bool,
    /// Node by node (the recursive model), the recursive model with its
    /// subtrees joined, or level by level.
    pub mode: Mode,
}

/// How a tree is computed: all give the same losses and gradients (to
/// rounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One node at a time, by recursion over the tree (`model.rs`).
    Node,
    /// The same recursion with the two subtrees of every node joined
    /// (`join`), so that the runtime batches nodes of one height
    /// (`joined.rs`).
    Joined,
    /// All nodes of one height at a time (`levels.rs`).
    Level,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: None,
            epochs: 0,
            limit: None,
            train_embeddings: false,
            glove: None,
            training: TrainingFlags::new("treelstm"),
            seed: 7,
            learning_rate: 0.05,
            embedding: None,
            hidden: None,
            no_eval: false,
            batch: 1,
            workers: 1,
            second_core: false,
            mode: Mode::Node,
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: treelstm [options]
  --data DIR            train.txt, dev.txt and test.txt in PTB form (default: a synthetic treebank)
  --epochs N            passes over the training set (default: 1 on --data, 6 on synthetic data)
  --limit N             use the first N training trees
  --train-embeddings    train the word vectors too (frozen by default)
  --glove FILE          word vectors in 'word v1 ... vN' text form
  --embedding N         embedding size (default: 300 on --data, 32 on synthetic data)
  --hidden N            hidden size (default: 150 on --data, 48 on synthetic data)
  --lr X                Adagrad learning rate (default: 0.05)
  --seed N              initialisation seed (default: 7)
  --batch N             trees per step, their mean loss (default: 1)
  --workers N           data-parallel training on N threads, each taking its
                        share of every batch (default: 1); across processes and
                        machines: a build with --features mpi under mpirun -np N
  --mode node|joined|level
                        node by node, by recursion (default); the same recursion
                        with sibling subtrees joined, batched by the runtime; or
                        all nodes of a height at once by hand; same losses
  --second-core         share the large matrix products with a second core
                        (one tree per step, as on one thread)
  --no-eval             skip the dev and test evaluation";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut options = Options::default();
    let mut epochs = None;
    let mut args = Args::new(args);
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        let whole = "a non-negative integer";
        match flag.as_str() {
            "--data" => options.data = Some(args.path(&flag)?),
            "--epochs" => epochs = Some(args.parsed(&flag, whole)?),
            "--limit" => options.limit = Some(args.parsed(&flag, whole)?),
            "--train-embeddings" => options.train_embeddings = true,
            "--glove" => options.glove = Some(args.path(&flag)?),
            "--embedding" => options.embedding = Some(args.positive(&flag)?),
            "--hidden" => options.hidden = Some(args.positive(&flag)?),
            "--lr" => options.learning_rate = args.positive_real(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, whole)?,
            "--batch" => options.batch = args.positive(&flag)?,
            "--workers" => options.workers = args.positive(&flag)?,
            "--second-core" => options.second_core = true,
            "--mode" => {
                options.mode = match args.value(&flag)?.as_str() {
                    "node" => Mode::Node,
                    "joined" => Mode::Joined,
                    "level" => Mode::Level,
                    other => {
                        return Err(format!(
                            "--mode expects 'node', 'joined' or 'level', got '{other}'"
                        ));
                    }
                }
            }
            "--no-eval" => options.no_eval = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    options.epochs = epochs.unwrap_or(if options.data.is_some() { 1 } else { 6 });
    if options.second_core && options.workers > 1 {
        return Err(
            "--second-core and --workers N both use the second core; give one of them".to_string(),
        );
    }
    if options.workers > options.batch {
        return Err(format!(
            "--workers {} exceeds --batch {}: every worker needs a tree of each batch",
            options.workers, options.batch
        ));
    }
    options.training.check()?;
    Ok(Command::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Options, String> {
        parse(words.iter().map(|w| w.to_string())).map(|c| c.run().expect("a run"))
    }

    #[test]
    fn defaults_depend_on_the_data() {
        assert_eq!(parse_words(&[]).unwrap().epochs, 6);
        let sst = parse_words(&["--data", "sst"]).unwrap();
        assert_eq!((sst.epochs, sst.data), (1, Some(PathBuf::from("sst"))));
    }

    #[test]
    fn options_are_read() {
        let o = parse_words(&[
            "--epochs",
            "3",
            "--limit",
            "10",
            "--train-embeddings",
            "--plot",
            "none",
            "--lr",
            "0.1",
        ])
        .unwrap();
        assert_eq!(
            (
                o.epochs,
                o.limit,
                o.train_embeddings,
                o.training.plot,
                o.learning_rate
            ),
            (3, Some(10), true, None, 0.1)
        );
    }

    #[test]
    fn mistakes_are_explained() {
        assert_eq!(
            parse_words(&["--epochs"]).unwrap_err(),
            "--epochs needs a value"
        );
        assert_eq!(
            parse_words(&["--epochs", "two"]).unwrap_err(),
            "--epochs expects a non-negative integer, got 'two'"
        );
        assert!(
            parse_words(&["--frobnicate"])
                .unwrap_err()
                .starts_with("unknown option '--frobnicate'")
        );
        assert!(
            parse_words(&["--lr", "-1"])
                .unwrap_err()
                .contains("positive")
        );
        assert!(parse_words(&["--init", "a", "--load", "b"]).is_err());
        assert!(
            parse_words(&["--second-core", "--workers", "2", "--batch", "2"])
                .unwrap_err()
                .contains("give one of them")
        );
        assert_eq!(
            parse_words(&["--workers", "4", "--batch", "2"]).unwrap_err(),
            "--workers 4 exceeds --batch 2: every worker needs a tree of each batch"
        );
    }

    #[test]
    fn the_mode_is_node_joined_or_level() {
        assert_eq!(parse_words(&[]).unwrap().mode, Mode::Node);
        assert_eq!(
            parse_words(&["--mode", "joined"]).unwrap().mode,
            Mode::Joined
        );
        assert_eq!(parse_words(&["--mode", "level"]).unwrap().mode, Mode::Level);
        assert_eq!(
            parse_words(&["--mode", "tree"]).unwrap_err(),
            "--mode expects 'node', 'joined' or 'level', got 'tree'"
        );
        let batched = parse_words(&["--mode", "level", "--workers", "2", "--batch", "8"]).unwrap();
        assert_eq!(
            (batched.mode, batched.workers, batched.batch),
            (Mode::Level, 2, 8)
        );
    }

    #[test]
    fn the_second_core_is_opt_in() {
        assert!(!parse_words(&[]).unwrap().second_core);
        assert!(parse_words(&["--second-core"]).unwrap().second_core);
    }
}
