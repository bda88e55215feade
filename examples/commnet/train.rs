//! Training by supervision or by REINFORCE, and evaluation on fresh games.

use std::cell::RefCell;
use std::time::Instant;

use cps::io::TrainingState;
use cps::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::flags::TrainingFlags;
use crate::common::training::{Training, step_seed};
use crate::levers::{Batch, Groups, mean_and_error, reward};
use crate::model::{CommNet, Played, greedy, reinforce_loss, scores, supervised_loss};

/// How the policy learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cross-entropy against each agent's rank among its game's.
    Supervised,
    /// REINFORCE on the game's reward, with a running-mean baseline.
    Reinforce,
}

impl Mode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Supervised => "supervised",
            Mode::Reinforce => "reinforce",
        }
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Adam (the default: it leaves REINFORCE's plateau at chance within
    /// a few hundred batches).
    Adam,
    RmsProp,
    /// Plain SGD, as the paper's code.
    Sgd,
}

impl Rule {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Adam => "adam",
            Rule::RmsProp => "rmsprop",
            Rule::Sgd => "sgd",
        }
    }

    fn optimizer(self, lr: f32) -> Box<dyn Optimizer> {
        match self {
            Rule::Adam => Box::new(Adam::new(lr)),
            Rule::RmsProp => Box::new(RmsProp::new(lr)),
            Rule::Sgd => Box::new(Sgd::new(lr)),
        }
    }
}

/// One training run's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    pub groups: Groups,
    /// Games per batch.
    pub batch: usize,
    /// Batches at most.
    pub iterations: usize,
    /// Stop after this many minutes even if iterations remain.
    pub minutes: Option<f64>,
    pub rule: Rule,
    pub lr: f32,
    /// Gradients are rescaled to this global norm at most.
    pub clip: Option<f32>,
    /// Whether the learning rate falls linearly to zero over the run (its
    /// iterations or its minutes, whichever runs out first).
    pub decay: bool,
    /// Iterations between progress lines and checkpoints.
    pub report_every: usize,
    pub seed: u64,
}

/// What a run did.
pub struct Trained {
    pub iterations: usize,
    pub seconds: f64,
}

/// The mean supervised loss per agent.
#[differentiable]
fn supervised_mean(m: &CommNet, batch: &Batch) -> Var {
    supervised_loss(m, batch) * (1.0 / batch.agents() as f64)
}

/// The REINFORCE loss per game.
#[differentiable]
fn reinforce_mean(
    m: &CommNet,
    batch: &Batch,
    baseline: f64,
    rng: &RefCell<StdRng>,
    played: &RefCell<Played>,
) -> Var {
    reinforce_loss(m, batch, baseline, rng, played) * (1.0 / batch.games() as f64)
}

/// Trains `model` as `plan` says; `name` titles the loss curve. The curve
/// is the supervised loss, or for REINFORCE the batch's shortfall from a
/// perfect score, `1 − mean reward`.
pub fn train(
    model: &mut CommNet,
    plan: &Plan,
    flags: &TrainingFlags,
    name: &str,
) -> Result<Trained, String> {
    let mut optimizer = plan.rule.optimizer(plan.lr);
    let (mut training, saved) = Training::start(name, "batches", flags, model, optimizer.as_mut())?;
    let done = training.losses().len();
    let mut baseline: f64 = saved
        .metadata
        .get("baseline")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0.0);
    let start = Instant::now();
    let mut window = Window::default();
    let mut iteration = done;
    while iteration < plan.iterations {
        if let Some(minutes) = plan.minutes
            && start.elapsed().as_secs_f64() >= minutes * 60.0
        {
            break;
        }
        if plan.decay {
            let mut progress = iteration as f64 / plan.iterations as f64;
            if let Some(minutes) = plan.minutes {
                progress = progress.max(start.elapsed().as_secs_f64() / (minutes * 60.0));
            }
            optimizer.set_learning_rate(plan.lr * (1.0 - progress.min(1.0)) as f32);
        }
        // Each batch's draws come from its own seed, so a resumed run
        // draws what an uninterrupted one draws.
        let mut rng = StdRng::seed_from_u64(step_seed(plan.seed, 0, iteration));
        let sizes = plan.groups.sizes(plan.batch, &mut rng);
        let batch = Batch::draw(&sizes, &mut rng);
        let (loss, mean_reward) = match plan.mode {
            Mode::Supervised => {
                let loss = supervised_mean(model, &batch).backward();
                // The batch's reward costs a forward pass: only when shown.
                let shown = (iteration + 1) % plan.report_every == 0;
                let reward = shown.then(|| {
                    let levers = greedy(&scores(model, &batch).eval(), &batch);
                    mean_reward(&levers, &batch)
                });
                (loss, reward)
            }
            Mode::Reinforce => {
                let rng = RefCell::new(rng);
                let played = RefCell::new(Played::default());
                reinforce_mean(model, &batch, baseline, &rng, &played).backward();
                let rewards = played.into_inner().rewards;
                let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
                baseline = 0.99 * baseline + 0.01 * mean;
                ((1.0 - mean) as f32, Some(mean))
            }
        };
        if let Some(max) = plan.clip {
            clip_grad_norm(model, max);
        }
        optimizer.step(model);
        training.record(loss);
        iteration += 1;
        window.add(loss, mean_reward);
        if iteration % plan.report_every == 0 {
            report!(
                "  batch {iteration:>6}  {:.0} s  {}",
                start.elapsed().as_secs_f64(),
                window.shown()
            );
            window = Window::default();
            let mut state = TrainingState::default();
            state
                .metadata
                .insert("baseline".to_string(), baseline.to_string());
            training.end_epoch(model, optimizer.as_ref(), state)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    training.finish(model, (iteration / 50).max(1))?;
    Ok(Trained {
        iterations: iteration - done,
        seconds,
    })
}

/// The losses and rewards since the last progress line.
#[derive(Default)]
struct Window {
    loss: f64,
    batches: usize,
    reward: f64,
    rewarded: usize,
}

impl Window {
    fn add(&mut self, loss: f32, reward: Option<f64>) {
        self.loss += f64::from(loss);
        self.batches += 1;
        if let Some(reward) = reward {
            self.reward += reward;
            self.rewarded += 1;
        }
    }

    fn shown(&self) -> String {
        let loss = self.loss / self.batches.max(1) as f64;
        let reward = self.reward / self.rewarded.max(1) as f64;
        let which = if self.rewarded < self.batches {
            "last batch's"
        } else {
            "training"
        };
        format!("loss {loss:.4}  {which} reward {reward:.3}")
    }
}

/// The mean reward of the games of `batch` when its agents pull `levers`.
fn mean_reward(levers: &[usize], batch: &Batch) -> f64 {
    game_rewards(levers, batch).iter().sum::<f64>() / batch.games() as f64
}

/// Each game's reward when the agents of `batch` pull `levers`.
pub fn game_rewards(levers: &[usize], batch: &Batch) -> Vec<f64> {
    let mut rewards = Vec::with_capacity(batch.games());
    let mut start = 0;
    for &size in &batch.sizes {
        rewards.push(reward(&levers[start..start + size]));
        start += size;
    }
    rewards
}

/// A model's score on fresh games: each agent's most likely lever
/// (greedy), and levers drawn from the policy (sampled); mean reward and
/// standard error of each, and the greedy mean per game size.
pub struct Evaluation {
    pub greedy: (f64, f64),
    pub sampled: (f64, f64),
    pub by_size: Vec<(usize, f64, usize)>,
}

/// Plays `batch` with `model`, greedily and by sampling (draws from `seed`).
pub fn evaluate(model: &CommNet, batch: &Batch, seed: u64) -> Evaluation {
    let all = scores(model, batch).eval();
    let levers = greedy(&all, batch);
    let rewards = game_rewards(&levers, batch);
    let rng = RefCell::new(StdRng::seed_from_u64(seed));
    let played = RefCell::new(Played::default());
    reinforce_loss(model, batch, 0.0, &rng, &played).eval();
    let sampled = played.into_inner().rewards;
    let mut by_size = Vec::new();
    let mut first = 0;
    for run in &batch.runs {
        let mean = rewards[first..first + run.games].iter().sum::<f64>() / run.games as f64;
        by_size.push((run.size, mean, run.games));
        first += run.games;
    }
    Evaluation {
        greedy: mean_and_error(&rewards),
        sampled: mean_and_error(&sampled),
        by_size,
    }
}
