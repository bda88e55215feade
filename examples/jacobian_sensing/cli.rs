//! Command-line options of the jacobian_sensing example.

use std::path::PathBuf;

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

/// The options, or none for `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        data: None,
        epochs: None,
        trials: 20,
        seed: 0,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => options.data = Some(PathBuf::from(value()?)),
            "--epochs" => options.epochs = Some(positive(&flag, &value()?)?),
            "--trials" => options.trials = positive(&flag, &value()?)?,
            "--seed" => {
                let text = value()?;
                options.seed = text
                    .parse()
                    .map_err(|_| format!("--seed expects a whole number, got '{text}'"))?;
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(Some(options))
}

fn positive(flag: &str, text: &str) -> Result<usize, String> {
    text.parse()
        .ok()
        .filter(|&n: &usize| n > 0)
        .ok_or_else(|| format!("{flag} expects a positive whole number, got '{text}'"))
}
