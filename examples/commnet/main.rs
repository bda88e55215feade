//! CommNet (Sukhbaatar, Szlam and Fergus, "Learning Multiagent
//! Communication with Backpropagation", NeurIPS 2016) on the paper's
//! lever-pulling game: five agents drawn from a pool of 500 must each pull
//! a different one of five levers, seeing only their own identity. The
//! model runs over a game of any number of agents; a batch may mix games
//! of different sizes, with no padding and no masks.
//!
//! ```text
//! cargo run --release --example commnet                          # supervised, with and without communication
//! cargo run --release --example commnet -- --mode reinforce      # REINFORCE, 20 minutes per model
//! cargo run --release --example commnet -- --groups varied       # games of 3 to 7 agents in one batch
//! ```

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod levers;
mod model;
#[cfg(test)]
mod tests;
mod train;

use std::path::{Path, PathBuf};

use cli::{Communication, Options};
use common::command;
use common::flags::TrainingFlags;
use levers::{Batch, Groups, chance};
use model::CommNet;
use rand::SeedableRng;
use rand::rngs::StdRng;
use train::Plan;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains and evaluates as `options` say.
fn run(options: &Options) -> Result<(), String> {
    let groups = options.groups;
    let (low, high) = groups.bounds();
    report!(
        "levers: pool of {}, {} agents per game ({} groups), as many levers as agents; {} mode, batches of {} games",
        levers::POOL,
        if low == high {
            low.to_string()
        } else {
            format!("{low} to {high}")
        },
        groups.name(),
        options.mode.name(),
        options.batch
    );
    report!(
        "chance (independent uniform levers): 5 agents {:.4} = (5(1 - (4/5)^5) - 1)/4; this mix of games {:.4}",
        chance(5),
        groups.chance()
    );
    // The evaluation's games come from a generator of their own, apart
    // from the training batches' draws (of C(500, 5) ≈ 2.6e11 possible
    // games, training meets these by chance alone).
    let mut eval_rng = StdRng::seed_from_u64(options.seed ^ 0x5eed_e7a1);
    let games = Batch::draw(
        &groups.sizes(options.eval_games, &mut eval_rng),
        &mut eval_rng,
    );

    let models: &[bool] = match options.communication {
        Communication::Both => &[true, false],
        Communication::On => &[true],
        Communication::Off => &[false],
    };
    let mut results = Vec::new();
    for &communicate in models {
        let name = if communicate {
            "CommNet"
        } else {
            "no communication"
        };
        let mut rng = StdRng::seed_from_u64(options.seed);
        let mut model = CommNet::new(
            levers::POOL,
            options.hidden,
            options.steps,
            high,
            communicate,
            &mut rng,
        );
        let plan = Plan {
            mode: options.mode,
            groups,
            batch: options.batch,
            iterations: options.iterations,
            minutes: options.minutes,
            rule: options.rule,
            lr: options.lr,
            clip: options.clip,
            decay: options.decay,
            report_every: options.report_every,
            seed: options.seed,
        };
        report!(
            "{name}: K = {}, hidden {}, {} lr {}{}{}",
            options.steps,
            options.hidden,
            options.rule.name(),
            options.lr,
            if options.decay {
                " falling linearly to 0"
            } else {
                ""
            },
            options
                .clip
                .map(|c| format!(", gradient norm clipped at {c}"))
                .unwrap_or_default()
        );
        let flags = if communicate || options.communication != Communication::Both {
            options.training.clone()
        } else {
            suffixed(&options.training, "-nocomm")
        };
        let trained = train::train(&mut model, &plan, &flags, name)?;
        report!(
            "{name}: {} batches ({} games) in {:.1} s",
            trained.iterations,
            trained.iterations * options.batch,
            trained.seconds
        );
        let evaluation = train::evaluate(&model, &games, options.seed ^ 0xd1ce);
        results.push((name, evaluation));
    }
    report!(
        "\nreward on {} fresh games (mean ± standard error):",
        games.games()
    );
    report!("  {:<18} {:>16} {:>16}", "model", "greedy", "sampled");
    for (name, e) in &results {
        report!(
            "  {name:<18} {:>16} {:>16}",
            shown(e.greedy),
            shown(e.sampled)
        );
    }
    if groups == Groups::Varied {
        for (name, e) in &results {
            let sizes: Vec<String> = e
                .by_size
                .iter()
                .map(|(size, mean, n)| format!("{size}: {mean:.3} ({n})"))
                .collect();
            report!(
                "  {name}, greedy by agents per game (games): {}",
                sizes.join(", ")
            );
        }
    }
    report!(
        "  {:<18} {:>16}",
        "chance",
        format!("{:.4}", groups.chance())
    );
    Ok(())
}

fn shown((mean, error): (f64, f64)) -> String {
    format!("{mean:.3} ± {error:.3}")
}

/// `flags` with `suffix` added to every output file's name (before the
/// extension), for the second model of a run.
fn suffixed(flags: &TrainingFlags, suffix: &str) -> TrainingFlags {
    let add = |path: &Option<PathBuf>| path.as_deref().map(|p| with_suffix(p, suffix));
    TrainingFlags {
        save: add(&flags.save),
        loss_log: add(&flags.loss_log),
        plot: add(&flags.plot),
        checkpoint: add(&flags.checkpoint),
        ..flags.clone()
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    path.with_file_name(name)
}
