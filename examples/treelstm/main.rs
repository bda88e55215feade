//! A binary constituency Tree-LSTM (Tai et al. 2015) for sentiment, trained
//! one tree at a time with Adagrad; the model of Lantern's benchmark and of
//! the PyTorch reference in the project's baselines.
//!
//! ```text
//! cargo run --release --example treelstm                          # synthetic treebank
//! cargo run --release --example treelstm -- --data path/to/sst   # the Stanford Sentiment Treebank
//! ```

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod evaluate;
mod flops;
mod joined;
mod levels;
mod memory;
mod model;
mod reference_init;
mod train;

use std::time::Instant;

use cli::Mode;
use common::command;
use common::training::{Training, require_data};
use common::workers::Placement;
use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{GloveOptions, Vocab, load_glove, read_treebank};
use cps::parallel::{Worker, on_threads};
use cps::prelude::*;
use cps::workers::Communicator;
use model::TreeLstm;
use train::{Example, TrainingSet};

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains and evaluates as `options` say.
fn run(options: &cli::Options) -> Result<(), String> {
    let (mut train, dev, test, source) = match &options.data {
        Some(dir) => {
            let read = |name: &str| read_treebank(dir.join(name)).map_err(|e| e.to_string());
            let train = read("train.txt")?;
            require_data(
                train.len(),
                "trees",
                &dir.join("train.txt").display().to_string(),
            )?;
            (
                train,
                read("dev.txt")?,
                read("test.txt")?,
                dir.display().to_string(),
            )
        }
        None => {
            let bank = generate(&SyntheticConfig {
                seed: 1,
                train: 2000,
                dev: 300,
                test: 300,
                max_depth: 6,
            });
            (
                bank.train,
                bank.dev,
                bank.test,
                "synthetic treebank".to_string(),
            )
        }
    };
    if let Some(limit) = options.limit {
        train.truncate(limit);
        require_data(train.len(), "trees", "--limit 0")?;
    }
    let vocab = Vocab::from_trees(&train);
    let synthetic = options.data.is_none();
    let embedding = options
        .embedding
        .unwrap_or(if synthetic { 32 } else { 300 });
    let hidden = options.hidden.unwrap_or(if synthetic { 48 } else { 150 });

    let mut model = TreeLstm::new(vocab.len(), embedding, hidden, 0.3, options.seed);
    if let Some(path) = &options.glove {
        // Words with spaces in GloVe 840B make a few lines malformed; they
        // are skipped, as the reference does. Vectors of another length
        // than the embedding fail at the first line.
        let read = load_glove(
            path,
            &vocab,
            model.emb.value_mut(),
            GloveOptions {
                skip_malformed: true,
            },
        )
        .map_err(|e| format!("{e} (the embedding size is {embedding}; see --embedding)"))?;
        report!(
            "word vectors: {} of the {} vocabulary words found in {} ({} lines{})",
            read.found,
            vocab.len(),
            path.display(),
            read.lines,
            if read.skipped > 0 {
                format!(", {} malformed lines skipped", read.skipped)
            } else {
                String::new()
            }
        );
    }
    if let Some(path) = &options.training.init {
        reference_init::load(&mut model, path)?;
    }
    let placement = Placement::of(options.workers)?;
    let mut optimizer = Adagrad::new(options.learning_rate);
    let (training, _) = Training::start_as(
        "Tree-LSTM",
        if options.batch == 1 {
            "trees"
        } else {
            "batches"
        },
        &options.training,
        &mut model,
        &mut optimizer,
        placement.is_root(),
    )?;
    model.emb.set_trainable(options.train_embeddings);

    let encode = |trees| model::encode(&vocab, trees);
    let (train, dev, test) = (encode(train), encode(dev), encode(test));
    let nodes: usize = train.iter().map(|(t, _)| t.node_count()).sum();
    report!(
        "{source}: {} training trees ({nodes} nodes), {} dev, {} test; vocabulary {}; embedding {embedding}, hidden {hidden}{}",
        train.len(),
        dev.len(),
        test.len(),
        vocab.len(),
        if options.train_embeddings {
            ", embeddings trained"
        } else {
            ""
        }
    );
    report!(
        "batches of {} tree{}, {}",
        options.batch,
        if options.batch == 1 { "" } else { "s" },
        placement.describe()
    );

    let plans: Vec<levels::LevelPlan> = match options.mode {
        Mode::Node | Mode::Joined => Vec::new(),
        Mode::Level => train
            .iter()
            .map(|(tree, _)| levels::LevelPlan::new(tree))
            .collect(),
    };
    let set = TrainingSet {
        trees: &train,
        mode: options.mode,
        plans: &plans,
    };
    let mut lead = Lead {
        first_epoch: training.epochs_done() + 1,
        flops_per_epoch: train
            .iter()
            .map(|(t, _)| flops::training_flops(t, embedding, hidden, options.train_embeddings))
            .sum(),
        nodes,
        dev: &dev,
        training,
    };
    // Every step's loss is kept for the plot, in room reserved up front,
    // so that the memory reported after each epoch measures the training,
    // not the record filling up.
    let steps = train.len().div_ceil(options.batch);
    lead.training
        .reserve(steps * (options.epochs + 1).saturating_sub(lead.first_epoch));
    let first_epoch = lead.first_epoch;
    let _second_core = options.second_core.then(cps::SecondCore::start);
    match placement {
        Placement::Threads(workers) => {
            // A replica is built as the model was (its values, trained or
            // not, then become the model's).
            let replica = || TreeLstm::new(vocab.len(), embedding, hidden, 0.3, 0);
            on_threads(
                workers,
                &mut model,
                &mut optimizer,
                replica,
                |worker, model, optimizer| {
                    epochs(
                        worker,
                        model,
                        optimizer,
                        &set,
                        options,
                        first_epoch,
                        Some(&mut lead),
                    )
                },
                |worker, model, optimizer| {
                    // Worker 0 reports any error.
                    let _ = epochs(worker, model, optimizer, &set, options, first_epoch, None);
                },
            )?;
        }
        #[cfg(feature = "mpi")]
        Placement::Mpi(world) => {
            let mut worker = cps::parallel::Worker::new(world);
            worker.broadcast_parameters(&mut model);
            let root = worker.is_root();
            epochs(
                &mut worker,
                &mut model,
                &mut optimizer,
                &set,
                options,
                first_epoch,
                root.then_some(&mut lead),
            )?;
            // Worker 0 tests, reports and saves for all.
            if !root {
                return Ok(());
            }
        }
    }
    if !options.no_eval && !test.is_empty() {
        let (root, all) = evaluate::accuracy(&model, &test);
        report!(
            "test: root accuracy {:.1}%, all-node accuracy {:.1}%",
            100.0 * root,
            100.0 * all
        );
    }
    if let Some(peak) = memory::status("VmHWM:") {
        report!("peak memory: {peak}");
    }
    lead.training.finish(&model, (steps / 20).clamp(1, 500))
}

/// What worker 0 does beside training: the record, the reports and the
/// evaluation on the development set.
struct Lead<'a> {
    training: Training,
    first_epoch: usize,
    flops_per_epoch: f64,
    nodes: usize,
    dev: &'a [Example],
}

/// Trains the epochs `first_epoch..=options.epochs` on `worker`; worker 0
/// (with `lead`) reports each epoch, writes the checkpoint and evaluates.
fn epochs<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    set: &TrainingSet,
    options: &cli::Options,
    first_epoch: usize,
    mut lead: Option<&mut Lead>,
) -> Result<(), String> {
    for epoch in first_epoch..=options.epochs {
        let bar = lead
            .as_ref()
            .map(|lead| lead.training.progress_bar(epoch, set.trees.len()));
        let start = Instant::now();
        let (mut total, mut done) = (0.0f64, 0);
        train::epoch(
            worker,
            model,
            optimizer,
            set,
            options.batch,
            |loss, trees| {
                total += f64::from(loss);
                let before = done;
                done += trees;
                if let Some(lead) = lead.as_mut() {
                    lead.training.record(loss / trees as f32);
                }
                if let Some(bar) = bar.as_ref().filter(|_| done / 64 > before / 64) {
                    bar.set_position(done as u64);
                    bar.set_message(format!("{:.3}", total / done as f64));
                }
            },
        );
        let seconds = start.elapsed().as_secs_f64();
        let Some(lead) = lead.as_mut() else {
            continue;
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        // The checkpoint is not part of the epoch's time.
        lead.training
            .end_epoch(&*model, &*optimizer, Default::default())?;
        let trees = set.trees.len();
        report!(
            "epoch {epoch}: mean loss {:.4} per tree, {:.1} s, {:.0} trees/s, {:.0} nodes/s, {:.2} GFLOP/s, memory {}",
            total / trees.max(1) as f64,
            seconds,
            trees as f64 / seconds,
            lead.nodes as f64 / seconds,
            lead.flops_per_epoch / seconds / 1e9,
            memory::status("VmRSS:").unwrap_or_else(|| "unknown".to_string())
        );
        if !options.no_eval && !lead.dev.is_empty() {
            let (root, all) = evaluate::accuracy(model, lead.dev);
            report!(
                "         dev: root accuracy {:.1}%, all-node accuracy {:.1}%",
                100.0 * root,
                100.0 * all
            );
        }
    }
    Ok(())
}
