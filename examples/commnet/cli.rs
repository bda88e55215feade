//! Command-line options.

use crate::common::command::Command;
use crate::common::flags::{Args, TRAINING_USAGE, TrainingFlags};
use crate::levers::Groups;
use crate::train::{Mode, Rule};

/// Which models to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Communication {
    On,
    Off,
    /// CommNet, then the same model with communication off.
    Both,
}

/// What to train and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub mode: Mode,
    pub groups: Groups,
    pub communication: Communication,
    /// Games per batch.
    pub batch: usize,
    pub iterations: usize,
    /// The time budget of each model's training, in minutes.
    pub minutes: Option<f64>,
    pub rule: Rule,
    pub lr: f32,
    /// The largest global gradient norm (none: no clipping).
    pub clip: Option<f32>,
    /// The learning rate falls linearly to zero over the run.
    pub decay: bool,
    pub hidden: usize,
    /// Communication steps `K`.
    pub steps: usize,
    /// Fresh games of the evaluation.
    pub eval_games: usize,
    pub report_every: usize,
    pub seed: u64,
    pub training: TrainingFlags,
}

impl Options {
    /// The defaults of `mode`: for supervision, a run well under a minute;
    /// for REINFORCE, the settings of the 20-minute run.
    pub fn new(mode: Mode) -> Self {
        let supervised = mode == Mode::Supervised;
        Options {
            mode,
            groups: Groups::Fixed,
            communication: Communication::Both,
            batch: if supervised { 32 } else { 256 },
            iterations: if supervised { 2500 } else { 1_000_000 },
            minutes: if supervised { None } else { Some(20.0) },
            rule: Rule::Adam,
            lr: if supervised { 3e-3 } else { 1e-3 },
            clip: if supervised { None } else { Some(1.0) },
            decay: true,
            hidden: 64,
            steps: 2,
            eval_games: 500,
            report_every: if supervised { 250 } else { 100 },
            seed: 1,
            training: TrainingFlags::new("commnet"),
        }
    }
}

/// The options' descriptions (`--help`).
pub fn usage() -> String {
    format!("{USAGE}\n{TRAINING_USAGE}")
}

const USAGE: &str = "\
usage: commnet [options]
  --mode supervised|reinforce   learn from each agent's target lever, or from the reward
                                (default: supervised)
  --groups fixed|varied         5 agents per game, or 3 to 7 (default: fixed)
  --communication both|on|off   CommNet, the same model without communication, or both
                                (default: both)
  --iterations N                training batches (default: 2500; reinforce: until --minutes)
  --minutes M                   time budget per model (default: none; reinforce: 20)
  --batch N                     games per batch (default: 32; reinforce: 256)
  --optimizer adam|rmsprop|sgd  the update rule (default: adam)
  --lr X                        learning rate (default: 0.003; reinforce: 0.001)
  --clip X|none                 largest global gradient norm (default: none; reinforce: 1)
  --constant-lr                 keep the learning rate (default: it falls linearly to zero)
  --hidden N                    hidden units (default: 64)
  --steps K                     communication steps (default: 2)
  --eval-games N                fresh games of the evaluation (default: 500)
  --report-every N              batches between progress lines and checkpoints
  --seed N                      seed of the initialisation and the games (default: 1)";

/// Parses the arguments after the program name. The mode is read first,
/// since the other defaults depend on it.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let words: Vec<String> = args.into_iter().collect();
    let mode = match words.iter().position(|w| w == "--mode") {
        Some(i) => match words.get(i + 1).map(String::as_str) {
            Some("supervised") => Mode::Supervised,
            Some("reinforce") => Mode::Reinforce,
            Some(other) => {
                return Err(format!(
                    "--mode expects 'supervised' or 'reinforce', got '{other}'"
                ));
            }
            None => return Err("--mode needs a value".to_string()),
        },
        None => Mode::Supervised,
    };
    let mut options = Options::new(mode);
    let mut args = Args::new(words);
    while let Some(flag) = args.next_flag() {
        if options.training.read(&flag, &mut args)? {
            continue;
        }
        let whole = "a non-negative integer";
        match flag.as_str() {
            "--mode" => {
                args.value(&flag)?;
            }
            "--groups" => {
                options.groups = match args.value(&flag)?.as_str() {
                    "fixed" => Groups::Fixed,
                    "varied" => Groups::Varied,
                    other => {
                        return Err(format!(
                            "--groups expects 'fixed' or 'varied', got '{other}'"
                        ));
                    }
                }
            }
            "--communication" => {
                options.communication = match args.value(&flag)?.as_str() {
                    "both" => Communication::Both,
                    "on" => Communication::On,
                    "off" => Communication::Off,
                    other => {
                        return Err(format!(
                            "--communication expects 'both', 'on' or 'off', got '{other}'"
                        ));
                    }
                }
            }
            "--optimizer" => {
                options.rule = match args.value(&flag)?.as_str() {
                    "adam" => Rule::Adam,
                    "rmsprop" => Rule::RmsProp,
                    "sgd" => Rule::Sgd,
                    other => {
                        return Err(format!(
                            "--optimizer expects 'adam', 'rmsprop' or 'sgd', got '{other}'"
                        ));
                    }
                }
            }
            "--iterations" => options.iterations = args.positive(&flag)?,
            "--minutes" => options.minutes = Some(f64::from(args.positive_real(&flag)?)),
            "--batch" => options.batch = args.positive(&flag)?,
            "--lr" => options.lr = args.positive_real(&flag)?,
            "--clip" => {
                let text = args.value(&flag)?;
                options.clip = match text.as_str() {
                    "none" => None,
                    _ => Some(
                        text.parse()
                            .ok()
                            .filter(|x: &f32| x.is_finite() && *x > 0.0)
                            .ok_or_else(|| {
                                format!("--clip expects a positive number or 'none', got '{text}'")
                            })?,
                    ),
                }
            }
            "--constant-lr" => options.decay = false,
            "--hidden" => options.hidden = args.positive(&flag)?,
            "--steps" => options.steps = args.parsed(&flag, whole)?,
            "--eval-games" => options.eval_games = args.positive(&flag)?,
            "--report-every" => options.report_every = args.positive(&flag)?,
            "--seed" => options.seed = args.parsed(&flag, whole)?,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if options.communication == Communication::Both
        && (options.training.resume || options.training.load.is_some())
    {
        return Err(
            "--resume and --load start one model: add --communication on or off".to_string(),
        );
    }
    options.training.check()?;
    Ok(Command::Run(options))
}
