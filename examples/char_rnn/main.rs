//! The character-level vanilla RNN and LSTM of Lantern's evaluation (Wang
//! et al., NeurIPS 2018), in the style of Karpathy's min-char-rnn: a window
//! of 20 characters per iteration, truncated backpropagation through time,
//! min-char-rnn's Adagrad. The model of the PyTorch reference
//! `../shared/baselines/char_rnn_torch.py`, with its flags and its output.
//!
//! ```text
//! cargo run --release --example char_rnn                      # the RNN on the bundled text
//! cargo run --release --example char_rnn -- --cell lstm --iters 20000
//! ```

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod model;
#[cfg(test)]
mod model_tests;
mod reference_init;
mod sample;
mod text;
mod train;

use std::time::Instant;

use common::command;
use common::training::Training;
use cps::io::TrainingState;
use cps::prelude::*;
use model::{CharModel, State};
use rand::SeedableRng;
use rand::rngs::StdRng;
use text::{Text, Windows};

/// The default text: the first 1,200 lines of Tiny Shakespeare (see
/// `data/SOURCE.md`), built into the program so that it runs anywhere.
const BUNDLED: &[u8] = include_bytes!("data/tinyshakespeare-1200-lines.txt");

/// Characters sampled with every report of the smoothed loss.
const SAMPLE_LENGTH: usize = 100;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains as `options` say.
fn run(options: &cli::Options) -> Result<(), String> {
    let (all, source) = match &options.data {
        Some(path) => (
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => (BUNDLED.to_vec(), "the bundled Tiny Shakespeare".to_string()),
    };
    let bytes = match options.bytes {
        0 => &all[..],
        n => &all[..n.min(all.len())],
    };
    let text = Text::new(bytes);
    let (vocabulary, hidden, seq) = (text.vocabulary.len(), options.hidden, options.seq);
    if text.indices.len() <= seq + 1 {
        return Err(format!(
            "{source}: {} bytes are too few to train on windows of {seq}",
            text.indices.len()
        ));
    }

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut model = CharModel::new(options.cell, vocabulary, hidden, &mut rng);
    if let Some(path) = &options.training.init {
        reference_init::load(&mut model, path)?;
    }
    let mut optimizer = train::optimizer(options.learning_rate);
    let name = format!("character {}", options.cell.name().to_uppercase());
    let (mut training, saved) = Training::start(
        &name,
        "iterations",
        &options.training,
        &mut model,
        &mut optimizer,
    )?;
    report!(
        "cps, {}, vocabulary {vocabulary}, hidden {hidden}, seq {seq}, {} bytes of {source}",
        options.cell.name(),
        text.indices.len()
    );

    // Where a resumed run stopped: its iterations, and the state the last
    // window left.
    let done = training.losses().len();
    let mut state = match (saved.tensors.get("h"), saved.tensors.get("c")) {
        (Some(h), Some(c)) => State {
            h: Var::constant(h.clone()),
            c: Var::constant(c.clone()),
        },
        _ => State::zero(hidden),
    };
    // min-char-rnn's running loss starts at that of a uniform guess.
    let mut smooth = -(1.0 / vocabulary as f64).ln() * seq as f64;
    for &loss in training.losses() {
        smooth = smooth * 0.999 + f64::from(loss) * 0.001;
    }
    training.reserve(options.iters.saturating_sub(done));
    let bar = training.progress_bar(1, options.iters);
    bar.set_position(done as u64);
    let start = Instant::now();
    for (i, window) in Windows::new(text.indices.len(), seq)
        .enumerate()
        .take(options.iters)
        .skip(done)
    {
        if window.reset {
            state = State::zero(hidden);
        }
        let (inputs, targets) = text.window(window.start, seq);
        let (loss, next) = train::train_step(&mut model, &mut optimizer, inputs, targets, &state);
        state = next;
        training.record(loss);
        smooth = smooth * 0.999 + f64::from(loss) * 0.001;
        let iteration = i + 1;
        if iteration % 100 == 0 {
            bar.set_position(iteration as u64);
            bar.set_message(format!("{smooth:.4}"));
        }
        if iteration % options.report_every == 0 || iteration == options.iters {
            // Each sample has a generator of its own, so that a resumed
            // run samples the same text.
            let mut sample_rng = StdRng::seed_from_u64(options.seed ^ iteration as u64);
            let last = targets[seq - 1];
            let sampled =
                sample::sample(&model, &text, last, &state, SAMPLE_LENGTH, &mut sample_rng);
            bar.suspend(|| {
                report!("iteration {iteration}: smoothed loss {smooth:.4}");
                report!("----\n{sampled}\n----");
            });
            let mut carried = TrainingState::default();
            carried.tensors.insert("h".into(), state.h.array().clone());
            carried.tensors.insert("c".into(), state.c.array().clone());
            training.end_epoch(&model, &optimizer, carried)?;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let trained = options.iters.saturating_sub(done);
    report!(
        "{trained} iterations in {seconds:.2} s, {:.0} iterations/s",
        trained as f64 / seconds.max(f64::MIN_POSITIVE)
    );
    training.finish(&model, 100)
}
