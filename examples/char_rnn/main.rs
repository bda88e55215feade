//! The character-level vanilla RNN and LSTM of Lantern's evaluation (Wang
//! et al., NeurIPS 2018), in the style of Karpathy's min-char-rnn: a window
//! of 20 characters per iteration, truncated backpropagation through time,
//! min-char-rnn's Adagrad. The model of the PyTorch reference
//! `../shared/baselines/char_rnn_torch.py`, with its flags and its output.
//!
//! With `--batch B` the text is cut into B segments of equal length, read
//! side by side as B streams, each carrying its own state from window to
//! window; an iteration takes the next window of every stream, and its
//! loss is the mean of theirs (one stream, the default, is the
//! reference's run). With `--workers N` (at most B) N threads share each
//! iteration's streams, each keeping the states of its own, and sum their
//! gradients before the clipping and the update: the same steps as one
//! worker, up to the order of the sums. A build with the `mpi` feature
//! started under `mpirun -np N` runs one worker per process instead,
//! process 0 alone reporting and writing files.
//!
//! ```text
//! cargo run --release --example char_rnn                      # the RNN on the bundled text
//! cargo run --release --example char_rnn -- --cell lstm --iters 20000
//! cargo run --release --example char_rnn -- --batch 8 --workers 4 --bytes 0
//! cargo build --release --features mpi --example char_rnn
//! mpirun -np 4 target/release/examples/char_rnn --batch 8 --bytes 0
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

use std::convert::Infallible;
use std::time::Instant;

use cli::Options;
use common::command;
use common::training::Training;
use common::workers::Placement;
use cps::io::TrainingState;
use cps::parallel::{Worker, on_threads};
use cps::prelude::*;
use cps::workers::Communicator;
use indicatif::ProgressDrawTarget;
use model::CharModel;
use rand::SeedableRng;
use rand::rngs::StdRng;
use text::{Streams, Text};
use train::{Carried, Plan};

/// The default text: the first 1,200 lines of Tiny Shakespeare (see
/// `data/SOURCE.md`), built into the program so that it runs anywhere.
const BUNDLED: &[u8] = include_bytes!("data/tinyshakespeare-1200-lines.txt");

/// Characters sampled with every report of the smoothed loss.
const SAMPLE_LENGTH: usize = 100;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// What every worker of a run reads.
struct Run<'a> {
    options: &'a Options,
    text: Text,
    plan: Plan,
    /// Every stream's state where a resumed run stopped.
    resumed: Option<Carried>,
}

/// Trains as `options` say.
fn run(options: &Options) -> Result<(), String> {
    let placement = Placement::of(options.workers)?;
    let asked = match placement {
        Placement::Threads(_) => "--workers",
        #[cfg(feature = "mpi")]
        Placement::Mpi(_) => "mpirun -np",
    };
    cli::check_workers(placement.workers(), asked, options.batch)?;
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
    let streams = Streams::new(text.indices.len(), options.batch, seq)
        .map_err(|e| format!("{source}: {e}"))?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut model = CharModel::new(options.cell, vocabulary, hidden, &mut rng);
    if let Some(path) = &options.training.init {
        reference_init::load(&mut model, path)?;
    }
    let mut optimizer = train::optimizer(options.learning_rate);
    let name = format!("character {}", options.cell.name().to_uppercase());
    let (training, saved) = Training::start_as(
        &name,
        "iterations",
        &options.training,
        &mut model,
        &mut optimizer,
        placement.is_root(),
    )?;
    report!(
        "cps, {}, vocabulary {vocabulary}, hidden {hidden}, seq {seq}, batch {}, {}, {} bytes of {source}",
        options.cell.name(),
        options.batch,
        placement.describe(),
        text.indices.len()
    );

    // Where a resumed run stopped: its iterations, and the states the last
    // windows left.
    let resumed = match (saved.tensors.get("h"), saved.tensors.get("c")) {
        (Some(h), Some(c)) => Some(Carried {
            h: h.clone(),
            c: c.clone(),
        }),
        _ => None,
    };
    if let Some(states) = &resumed
        && states.streams() != options.batch
    {
        return Err(format!(
            "--resume: the checkpoint holds the states of {} streams, --batch is {}",
            states.streams(),
            options.batch
        ));
    }
    let plan = Plan {
        streams,
        iterations: training.losses().len()..options.iters,
        report_every: options.report_every,
    };
    let run = Run {
        options,
        text,
        plan,
        resumed,
    };
    let cell = options.cell;
    match placement {
        Placement::Threads(workers) => on_threads(
            workers,
            &mut model,
            &mut optimizer,
            || CharModel::new(cell, vocabulary, hidden, &mut StdRng::seed_from_u64(0)),
            |worker, model, optimizer| lead(worker, model, optimizer, training, &run),
            |worker, model, optimizer| {
                let Ok(()) = train::train(
                    worker,
                    model,
                    optimizer,
                    &run.text,
                    &run.plan,
                    run.resumed.as_ref(),
                    |_| Ok::<(), Infallible>(()),
                );
            },
        ),
        #[cfg(feature = "mpi")]
        Placement::Mpi(world) => {
            let mut worker = Worker::new(world);
            worker.broadcast_parameters(&mut model);
            lead(&mut worker, &mut model, &mut optimizer, training, &run)
        }
    }
}

/// Trains as `worker` with what the reporting worker does besides: the
/// loss record, the smoothed loss with a sample of stream 0, checkpoints
/// and, at the end, the output files (which `training` writes on worker 0
/// alone).
fn lead<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    model: &mut CharModel,
    optimizer: &mut Adagrad,
    mut training: Training,
    run: &Run,
) -> Result<(), String> {
    let (options, text) = (run.options, &run.text);
    let root = worker.is_root();
    let done = run.plan.iterations.start;
    // min-char-rnn's running loss starts at that of a uniform guess.
    let mut smooth = -(1.0 / text.vocabulary.len() as f64).ln() * options.seq as f64;
    for &loss in training.losses() {
        smooth = smooth * 0.999 + f64::from(loss) * 0.001;
    }
    training.reserve(options.iters.saturating_sub(done));
    let bar = training.progress_bar(1, options.iters);
    if !root {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_position(done as u64);
    let start = Instant::now();
    train::train(
        worker,
        model,
        optimizer,
        text,
        &run.plan,
        run.resumed.as_ref(),
        |iteration| {
            let number = iteration.number;
            training.record(iteration.loss);
            smooth = smooth * 0.999 + f64::from(iteration.loss) * 0.001;
            if number % 100 == 0 {
                bar.set_position(number as u64);
                bar.set_message(format!("{smooth:.4}"));
            }
            let Some(states) = iteration.states else {
                return Ok(());
            };
            if root {
                // Each sample has a generator of its own, so that a resumed
                // run samples the same text.
                let mut sample_rng = StdRng::seed_from_u64(options.seed ^ number as u64);
                let sampled = sample::sample(
                    iteration.model,
                    text,
                    iteration.last,
                    &states.rows(0..1),
                    SAMPLE_LENGTH,
                    &mut sample_rng,
                );
                bar.suspend(|| {
                    report!("iteration {number}: smoothed loss {smooth:.4}");
                    report!("----\n{sampled}\n----");
                });
            }
            let mut carried = TrainingState::default();
            carried.tensors.insert("h".into(), states.h);
            carried.tensors.insert("c".into(), states.c);
            training.end_epoch(iteration.model, iteration.optimizer, carried)
        },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let trained = options.iters.saturating_sub(done);
    report!(
        "{trained} iterations in {seconds:.2} s, {:.0} iterations/s",
        trained as f64 / seconds.max(f64::MIN_POSITIVE)
    );
    training.finish(model, 100)
}
