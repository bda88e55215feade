//! The command line.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::Args;
use crate::model::Family;

/// `--help`.
pub const USAGE: &str = "\
Bayesian logistic regression on the breast-cancer data (Fan et al., NeurIPS 2015):
a Gaussian posterior fitted by Hessian-free stochastic Gaussian variational
inference (HFSGVI) beside Adam-SGVI and Adagrad-SGVI at five learning rates each.

usage: cargo run --release --example bayes_logreg -- [options]

  --data FILE         the table (scikit-learn's breast_cancer.csv layout);
                      default: the copy in examples/bayes_logreg/data
  --family F          diagonal, full or both (default both)
  --samples S         Monte Carlo draws of the ELBO per iteration, every arm (default 200)
  --hf-iterations N   HFSGVI iterations (default 50)
  --iterations N      iterations of each first-order run (default 100; 2000 with --long)
  --long              long first-order runs: the experiment of docs/papers.md
  --eval-draws N      fixed draws of the ELBO that judges every arm (default 1000)
  --seed N            seed of the optimizers' draws (default 1); the split is fixed
  --plot FILE         the curves of ELBO* − ELBO (the loss above its best) as SVG,
                      or 'none' (default bayes_logreg-loss.svg)
  --help              this text";

/// What a run does.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The table to read, or `None` for the bundled copy.
    pub data: Option<PathBuf>,
    /// The posterior families to fit.
    pub families: Vec<Family>,
    /// Draws per iteration (`S`).
    pub samples: usize,
    /// HFSGVI's iterations.
    pub hf_iterations: usize,
    /// Each first-order run's iterations.
    pub iterations: usize,
    /// Draws of the monitor ELBO.
    pub eval_draws: usize,
    /// Seed of the optimizers' draws.
    pub seed: u64,
    /// Where to draw the curves.
    pub plot: Option<PathBuf>,
}

/// First-order iterations by default, and with `--long`.
const QUICK_ITERATIONS: usize = 100;
const LONG_ITERATIONS: usize = 2000;

/// Reads the arguments after the program's name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut args = Args::new(args);
    let mut options = Options {
        data: None,
        families: vec![Family::Diagonal, Family::Full],
        samples: 200,
        hf_iterations: 50,
        iterations: QUICK_ITERATIONS,
        eval_draws: 1000,
        seed: 1,
        plot: Some(PathBuf::from("bayes_logreg-loss.svg")),
    };
    let mut iterations = None;
    let mut long = false;
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--data" => options.data = Some(args.path(&flag)?),
            "--family" => {
                options.families = match args.value(&flag)?.as_str() {
                    "diagonal" => vec![Family::Diagonal],
                    "full" => vec![Family::Full],
                    "both" => vec![Family::Diagonal, Family::Full],
                    other => {
                        return Err(format!(
                            "--family expects diagonal, full or both, got '{other}'"
                        ));
                    }
                }
            }
            "--samples" => options.samples = args.positive(&flag)?,
            "--hf-iterations" => options.hf_iterations = args.positive(&flag)?,
            "--iterations" => iterations = Some(args.positive(&flag)?),
            "--long" => long = true,
            "--eval-draws" => options.eval_draws = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--plot" => {
                let path = args.path(&flag)?;
                options.plot = (path.as_os_str() != "none").then_some(path);
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    options.iterations = iterations.unwrap_or(if long {
        LONG_ITERATIONS
    } else {
        QUICK_ITERATIONS
    });
    Ok(Command::Run(options))
}
