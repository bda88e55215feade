//! The command line.

use std::path::PathBuf;

use crate::common::command::Command;
use crate::common::flags::Args;

/// `--help`.
pub const USAGE: &str = "\
Dendritic cortical microcircuits (Sacramento, Costa, Bengio, Senn, NeurIPS 2018):
a 30-20-10 teacher-student regression simulated in continuous time. Phase 1
(no targets) learns the self-predicting state; phase 2 learns from the
teacher's targets, and each presentation's local weight change is compared
with the exact gradient of the steady-state rate model, taken by cps. Both
phases run twice: top-down weights tied to W2 transposed, and random fixed.

usage: cargo run --release --example dendritic -- [options]

  --phase1 N        presentations without targets (default 2000)
  --phase2 N        presentations with targets (default 2000)
  --presentation T  how long each input is shown, ms (default 100, the paper's)
  --noise S         somatic noise intensity per sqrt(ms) (default 0.1)
  --tau-w T         low-pass the plastic pathways' updates with time constant
                    T ms before they reach the weights, as a public
                    reimplementation does (default 0: applied every step)
  --test N          fixed test inputs (default 200)
  --seed N          seed of the weights, inputs and noise (default 1)
  --out DIR         write the curves there as CSV and SVG (the folder is made
                    if missing); default: no files
  --help            this text";

/// What a run does.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub phase1: usize,
    pub phase2: usize,
    pub presentation: f64,
    pub noise: f64,
    pub tau_w: f64,
    pub test: usize,
    pub seed: u64,
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            phase1: 2000,
            phase2: 2000,
            presentation: 100.0,
            noise: 0.1,
            tau_w: 0.0,
            test: 200,
            seed: 1,
            out: None,
        }
    }
}

/// Reads the arguments after the program's name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut args = Args::new(args);
    let mut options = Options::default();
    while let Some(flag) = args.next_flag() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--phase1" => options.phase1 = args.positive(&flag)?,
            "--phase2" => options.phase2 = args.positive(&flag)?,
            "--presentation" => options.presentation = f64::from(args.positive_real(&flag)?),
            "--noise" => {
                let noise: f64 = args.parsed(&flag, "a number of at least 0")?;
                if !(noise.is_finite() && noise >= 0.0) {
                    return Err(format!(
                        "--noise expects a number of at least 0, got {noise}"
                    ));
                }
                options.noise = noise;
            }
            "--tau-w" => {
                let tau_w: f64 = args.parsed(&flag, "a number of at least 0")?;
                if !(tau_w.is_finite() && tau_w >= 0.0) {
                    return Err(format!(
                        "--tau-w expects a number of at least 0, got {tau_w}"
                    ));
                }
                options.tau_w = tau_w;
            }
            "--test" => options.test = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, "a whole number")?,
            "--out" => options.out = Some(args.path(&flag)?),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    Ok(Command::Run(options))
}
