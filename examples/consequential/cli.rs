//! Command-line options: the data, one configuration to train, or the
//! grid of configurations and where its results go.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::Args;
use crate::optimizers::Kind;

/// Which data set, and from where.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// MNIST's four IDX files in this folder; none: the bundled subset.
    Mnist(Option<PathBuf>),
    /// scikit-learn's digits: this folder (or its `digits.csv.gz`).
    Digits(PathBuf),
}

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub data: Data,
    /// Hidden units (default: 100 on MNIST, 32 on digits).
    pub hidden: Option<usize>,
    pub epochs: usize,
    /// The batch sizes (one run: the first).
    pub batches: Vec<usize>,
    /// The optimizers (one run: the first).
    pub kinds: Vec<Kind>,
    /// One run: the consequentialist variant instead of the plain one.
    pub consequential: bool,
    /// One run: the learning rate (default: the optimizer's middle one).
    pub lr: Option<f32>,
    /// One run: its seed; the grid: the first of its seeds.
    pub seed: u64,
    /// The grid: seeds per configuration.
    pub seeds: usize,
    /// The grid: these learning rates for every optimizer, instead of
    /// each one's own three.
    pub lrs: Option<Vec<f32>>,
    /// Run the grid instead of one configuration.
    pub grid: bool,
    /// The grid: per batch, optimizer and variant, only the learning rate
    /// with the lowest final training loss in these results files.
    pub best_from: Vec<PathBuf>,
    /// Only write the tables and plots of these results files.
    pub tables_from: Vec<PathBuf>,
    /// The folder for the results file, tables and plots.
    pub out: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: Data::Mnist(None),
            hidden: None,
            epochs: 20,
            batches: vec![32, 128],
            kinds: Kind::ALL.to_vec(),
            consequential: false,
            lr: None,
            seed: 1,
            seeds: 3,
            lrs: None,
            grid: false,
            best_from: Vec::new(),
            tables_from: Vec::new(),
            out: PathBuf::from("consequential-results"),
        }
    }
}

/// The options' descriptions (`--help`).
pub const USAGE: &str = "\
usage: consequential [options]
  --mnist DIR          MNIST's four IDX files, e.g. ../shared/data/mnist (784-100-10);
                       default: the bundled subset (5,000 training, 1,000 test images)
  --digits DIR         scikit-learn's digits: DIR/digits.csv.gz (64-32-10), split 1437/360
  --hidden N           hidden units (default: 100 on MNIST, 32 on digits)
  --epochs N           passes over the training set (default: 20)
  --batch N            images per step (default: 32)
  --optimizer NAME     sgd, momentum, nag, rmsprop or adam (default: sgd)
  --consequential      replace the dense layers' gradients by the consequentialist direction
  --lr X               learning rate (default: the optimizer's middle one of the grid)
  --seed N             seed of the initial parameters and the batch order (default: 1)
  --grid               run the grid: batches x optimizers x {plain, consequential}
                       x three learning rates x seeds, and write its tables and plots
  --batches LIST       the grid's batch sizes (default: 32,128)
  --optimizers LIST    the grid's optimizers (default: sgd,momentum,nag,rmsprop,adam)
  --seeds N            the grid's seeds per configuration, from --seed on (default: 3)
  --lrs LIST           the grid's learning rates for every optimizer given
                       (default: each optimizer's own three)
  --best-from LIST     the grid: only each (batch, optimizer, variant)'s learning rate
                       with the lowest final training loss in these results files
  --tables-from LIST   write the tables and plots of these results files, train nothing
  --out DIR            the grid's folder for results.tsv, results.md and plots
                       (default: consequential-results)
  --help               this message";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Box<Options>>, String> {
    let mut options = Options::default();
    let mut args = Args::new(args);
    let mut batch = None;
    let mut kind = None;
    let (mut mnist, mut digits) = (None, None);
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--mnist" => mnist = Some(args.path(&flag)?),
            "--digits" => digits = Some(args.path(&flag)?),
            "--hidden" => options.hidden = Some(args.positive(&flag)?),
            "--epochs" => options.epochs = args.positive(&flag)?,
            "--batch" => batch = Some(args.positive(&flag)?),
            "--optimizer" => kind = Some(optimizer_named(&args.value(&flag)?)?),
            "--consequential" => options.consequential = true,
            "--lr" => options.lr = Some(args.positive_real(&flag)?),
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--grid" => options.grid = true,
            "--batches" => options.batches = positive_list(&flag, &args.value(&flag)?)?,
            "--optimizers" => {
                let names = args.value(&flag)?;
                options.kinds = names
                    .split(',')
                    .map(optimizer_named)
                    .collect::<Result<_, _>>()?;
            }
            "--seeds" => options.seeds = args.positive(&flag)?,
            "--lrs" => {
                let text = args.value(&flag)?;
                let lrs = text
                    .split(',')
                    .map(|t| {
                        t.parse()
                            .ok()
                            .filter(|x: &f32| x.is_finite() && *x > 0.0)
                            .ok_or_else(|| format!("{flag} expects positive numbers, got '{t}'"))
                    })
                    .collect::<Result<_, _>>()?;
                options.lrs = Some(lrs);
            }
            "--best-from" => {
                let files = args.value(&flag)?;
                options.best_from = files.split(',').map(PathBuf::from).collect();
            }
            "--tables-from" => {
                let files = args.value(&flag)?;
                options.tables_from = files.split(',').map(PathBuf::from).collect();
            }
            "--out" => options.out = args.path(&flag)?,
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    options.data = match (mnist, digits) {
        (Some(_), Some(_)) => return Err("--mnist and --digits: give one data set".to_string()),
        (mnist, None) => Data::Mnist(mnist),
        (None, Some(digits)) => Data::Digits(digits),
    };
    if !options.grid {
        options.batches = vec![batch.unwrap_or(32)];
        options.kinds = vec![kind.unwrap_or(Kind::Sgd)];
    } else if batch.is_some() || kind.is_some() || options.lr.is_some() || options.consequential {
        return Err(
            "--batch, --optimizer, --lr and --consequential choose one run; the grid takes --batches and --optimizers"
                .to_string(),
        );
    }
    if !options.best_from.is_empty() && !options.grid {
        return Err("--best-from chooses the grid's learning rates: add --grid".to_string());
    }
    if !options.best_from.is_empty() && options.lrs.is_some() {
        return Err("--best-from and --lrs each choose the learning rates: give one".to_string());
    }
    Ok(Command::Run(Box::new(options)))
}

fn optimizer_named(name: &str) -> Result<Kind, String> {
    Kind::parse(name)
        .ok_or_else(|| format!("unknown optimizer '{name}' (sgd, momentum, nag, rmsprop or adam)"))
}

fn positive_list(flag: &str, text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|t| {
            t.parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| format!("{flag} expects positive whole numbers, got '{t}'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Command<Box<Options>>, String> {
        parse(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn one_run_and_the_grid() {
        let Ok(Command::Run(one)) = parse_args(&[
            "--digits",
            "d",
            "--batch",
            "128",
            "--optimizer",
            "adam",
            "--consequential",
            "--lr",
            "0.01",
        ]) else {
            panic!("one run parses");
        };
        assert_eq!(one.data, Data::Digits("d".into()));
        assert_eq!((one.batches, one.kinds), (vec![128], vec![Kind::Adam]));
        assert!(one.consequential && !one.grid);
        let Ok(Command::Run(grid)) = parse_args(&[
            "--grid",
            "--batches",
            "32,64",
            "--optimizers",
            "sgd,nag",
            "--seeds",
            "2",
        ]) else {
            panic!("the grid parses");
        };
        assert_eq!(grid.data, Data::Mnist(None));
        assert_eq!(
            (grid.batches, grid.kinds, grid.seeds),
            (vec![32, 64], vec![Kind::Sgd, Kind::Nag], 2)
        );
    }

    #[test]
    fn mistakes_are_explained() {
        let error = |args: &[&str]| parse_args(args).unwrap_err();
        assert_eq!(
            error(&["--mnist", "a", "--digits", "b"]),
            "--mnist and --digits: give one data set"
        );
        assert_eq!(
            error(&["--optimizer", "lbfgs"]),
            "unknown optimizer 'lbfgs' (sgd, momentum, nag, rmsprop or adam)"
        );
        assert_eq!(
            error(&["--batches", "32,0"]),
            "--batches expects positive whole numbers, got '0'"
        );
        assert!(error(&["--grid", "--lr", "0.1"]).starts_with("--batch, --optimizer, --lr"));
        assert_eq!(
            error(&["--best-from", "r.tsv"]),
            "--best-from chooses the grid's learning rates: add --grid"
        );
    }
}
