//! One training run: a configuration, its measurements, and their line in
//! a results file.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::common::training::step_seed;
use crate::data::DataSet;
use crate::model::{self, Mlp};
use crate::optimizers::{Kind, Variant, optimizer};

/// The epochs after which the whole training set's loss is measured
/// (besides the last epoch).
pub const MEASURED_EPOCHS: [usize; 4] = [1, 5, 10, 20];

/// Points of the learning curve per epoch: each the mean batch loss over
/// `⌈steps / 10⌉` steps (so fewer points when that does not divide an
/// epoch's steps evenly).
pub const CURVE_POINTS_PER_EPOCH: usize = 10;

/// What one run trains.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub batch: usize,
    pub kind: Kind,
    pub variant: Variant,
    pub lr: f32,
    /// Seeds the initial parameters and the batch order.
    pub seed: u64,
    pub epochs: usize,
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `(epoch, mean cross-entropy over the training set)` after the
    /// measured epochs that ran.
    pub train_loss: Vec<(usize, f64)>,
    /// Test accuracy after the last epoch (NaN when the run diverged).
    pub test_accuracy: f64,
    /// The epoch in which a batch loss stopped being finite, if one did.
    pub diverged: Option<usize>,
    /// The mean batch loss over each tenth of an epoch, in order.
    pub curve: Vec<f64>,
    /// Training time, evaluation excluded.
    pub seconds: f64,
}

impl Outcome {
    /// The training-set loss measured after `epoch`, if it was.
    pub fn loss_after(&self, epoch: usize) -> Option<f64> {
        self.train_loss
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, l)| *l)
    }

    /// The loss after the last measured epoch (NaN when none was).
    pub fn final_loss(&self) -> f64 {
        self.train_loss.last().map_or(f64::NAN, |(_, l)| *l)
    }
}

/// Trains an MLP `inputs → hidden → 10` on `data` as `config` says.
/// A run whose batch loss stops being finite ends there; its later
/// measurements are NaN.
pub fn train(data: &DataSet, hidden: usize, config: &Config) -> Outcome {
    let mut mlp = Mlp::new(data.inputs(), hidden, 10, config.seed);
    let mut optimizer = optimizer(config.kind, config.variant, config.lr, &mlp);
    let n = data.train.len();
    let steps = n.div_ceil(config.batch);
    let window = steps.div_ceil(CURVE_POINTS_PER_EPOCH).max(1);
    let mut outcome = Outcome {
        train_loss: Vec::new(),
        test_accuracy: f64::NAN,
        diverged: None,
        curve: Vec::with_capacity(config.epochs * CURVE_POINTS_PER_EPOCH),
        seconds: 0.0,
    };
    for epoch in 1..=config.epochs {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(step_seed(config.seed, epoch, 0)));
        let start = Instant::now();
        let (mut sum, mut count) = (0.0f64, 0usize);
        for indices in order.chunks(config.batch) {
            let (x, labels) = data.train.batch(indices);
            let loss = f64::from(model::train_step(&mut mlp, optimizer.as_mut(), &x, &labels));
            if !loss.is_finite() {
                outcome.diverged = Some(epoch);
                break;
            }
            sum += loss;
            count += 1;
            if count == window {
                outcome.curve.push(sum / count as f64);
                (sum, count) = (0.0, 0);
            }
        }
        if count > 0 && outcome.diverged.is_none() {
            outcome.curve.push(sum / count as f64);
        }
        outcome.seconds += start.elapsed().as_secs_f64();
        if outcome.diverged.is_some() {
            break;
        }
        if MEASURED_EPOCHS.contains(&epoch) || epoch == config.epochs {
            let (loss, _) = model::evaluate(&mlp, &data.train);
            outcome.train_loss.push((epoch, loss));
        }
    }
    if outcome.diverged.is_none() {
        outcome.test_accuracy = model::evaluate(&mlp, &data.test).1;
    }
    outcome
}

/// The header of a results file (tab-separated).
pub const HEADER: &str = "data\tbatch\toptimizer\tvariant\tlr\tseed\tepochs\ttest_accuracy\tdiverged\tseconds\ttrain_loss\tcurve";

/// One run's line in a results file: the configuration, then the
/// measurements (`train_loss` as `epoch:loss` pairs, the curve as
/// numbers, both comma-separated).
pub fn line(data: &str, config: &Config, outcome: &Outcome) -> String {
    let losses: Vec<String> = outcome
        .train_loss
        .iter()
        .map(|(e, l)| format!("{e}:{l:.6}"))
        .collect();
    let curve: Vec<String> = outcome.curve.iter().map(|l| format!("{l:.5}")).collect();
    format!(
        "{data}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{:.2}\t{}\t{}",
        config.batch,
        config.kind.name(),
        config.variant.name(),
        config.lr,
        config.seed,
        config.epochs,
        outcome.test_accuracy,
        outcome.diverged.map_or("-".to_string(), |e| e.to_string()),
        outcome.seconds,
        losses.join(","),
        curve.join(",")
    )
}

/// A results file's line read back: the data set's name, the
/// configuration and the measurements.
pub fn parse_line(text: &str) -> Result<(String, Config, Outcome), String> {
    let fields: Vec<&str> = text.split('\t').collect();
    if fields.len() != 12 {
        return Err(format!(
            "expected 12 tab-separated fields, found {}",
            fields.len()
        ));
    }
    let number = |i: usize| -> Result<f64, String> {
        fields[i]
            .parse()
            .map_err(|_| format!("field {} is not a number: '{}'", i + 1, fields[i]))
    };
    let whole = |i: usize| number(i).map(|x| x as usize);
    let kind =
        Kind::parse(fields[2]).ok_or_else(|| format!("unknown optimizer '{}'", fields[2]))?;
    let variant = Variant::ALL
        .into_iter()
        .find(|v| v.name() == fields[3])
        .ok_or_else(|| format!("unknown variant '{}'", fields[3]))?;
    let config = Config {
        batch: whole(1)?,
        kind,
        variant,
        lr: number(4)? as f32,
        seed: whole(5)? as u64,
        epochs: whole(6)?,
    };
    let pair = |p: &str| -> Result<(usize, f64), String> {
        let (e, l) = p
            .split_once(':')
            .ok_or_else(|| format!("bad loss entry '{p}'"))?;
        Ok((
            e.parse().map_err(|_| format!("bad epoch '{e}'"))?,
            l.parse().map_err(|_| format!("bad loss '{l}'"))?,
        ))
    };
    let outcome = Outcome {
        test_accuracy: number(7)?,
        diverged: (fields[8] != "-").then(|| whole(8)).transpose()?,
        seconds: number(9)?,
        train_loss: fields[10]
            .split(',')
            .filter(|p| !p.is_empty())
            .map(pair)
            .collect::<Result<_, _>>()?,
        curve: fields[11]
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|c| c.parse().map_err(|_| format!("bad curve value '{c}'")))
            .collect::<Result<_, String>>()?,
    };
    Ok((fields[0].to_string(), config, outcome))
}
