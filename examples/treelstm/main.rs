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
mod parallel;
mod reference_init;

use std::time::Instant;

use cli::Mode;
use common::command;
use common::training::{Training, require_data};
use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{GloveOptions, Vocab, load_glove, read_treebank};
use cps::prelude::*;
use model::TreeLstm;

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
    let mut optimizer = Adagrad::new(options.learning_rate);
    let (mut training, _) = Training::start(
        "Tree-LSTM",
        "trees",
        &options.training,
        &mut model,
        &mut optimizer,
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

    let flops_per_epoch: f64 = train
        .iter()
        .map(|(t, _)| flops::training_flops(t, embedding, hidden, options.train_embeddings))
        .sum();
    // Every tree's loss is kept for the plot, in room reserved up front,
    // so that the memory reported after each epoch measures the training,
    // not the record filling up.
    let first_epoch = training.epochs_done() + 1;
    training.reserve(train.len() * (options.epochs + 1).saturating_sub(first_epoch));
    // Helper threads build their replicas from a copy of the word vectors
    // (trained ones are refreshed at every step like the other parameters).
    let model_embedding = if options.threads > 1 {
        model.emb.array().clone()
    } else {
        Default::default()
    };
    let plans: Vec<levels::LevelPlan> = match options.mode {
        Mode::Node | Mode::Joined => Vec::new(),
        Mode::Level => train
            .iter()
            .map(|(tree, _)| levels::LevelPlan::new(tree))
            .collect(),
    };
    let _second_core = options.second_core.then(cps::SecondCore::start);
    for epoch in first_epoch..=options.epochs {
        let bar = training.progress_bar(epoch, train.len());
        let start = Instant::now();
        let mut total = 0.0f64;
        let mut done = 0;
        let mut record = |loss: f32| {
            total += f64::from(loss);
            training.record(loss);
            done += 1;
            if done % 64 == 0 {
                bar.set_position(done as u64);
                bar.set_message(format!("{:.3}", total / (done.max(1)) as f64));
            }
        };
        if options.threads > 1 {
            let replica = || {
                let mut copy = TreeLstm::new(vocab.len(), embedding, hidden, 0.3, 0);
                copy.emb.set_value(model_embedding.clone());
                copy.emb.set_trainable(options.train_embeddings);
                copy
            };
            parallel::train_epoch(
                &mut model,
                &mut optimizer,
                &train,
                options.threads,
                &replica,
                &mut record,
            );
        } else {
            for (k, (tree, words)) in train.iter().enumerate() {
                let (m, o) = (&mut model, &mut optimizer);
                let loss = match options.mode {
                    Mode::Node => model::train_step(m, o, tree, words),
                    Mode::Joined => joined::train_step(m, o, tree, words),
                    Mode::Level => levels::train_step(m, o, &plans[k], words),
                };
                record(loss);
            }
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        // The checkpoint is not part of the epoch's time.
        training.end_epoch(&model, &optimizer, Default::default())?;
        report!(
            "epoch {epoch}: mean loss {:.4} per tree, {:.1} s, {:.0} trees/s, {:.0} nodes/s, {:.2} GFLOP/s, memory {}",
            total / train.len().max(1) as f64,
            seconds,
            train.len() as f64 / seconds,
            nodes as f64 / seconds,
            flops_per_epoch / seconds / 1e9,
            memory::status("VmRSS:").unwrap_or_else(|| "unknown".to_string())
        );
        if !options.no_eval && !dev.is_empty() {
            let (root, all) = evaluate::accuracy(&model, &dev);
            report!(
                "         dev: root accuracy {:.1}%, all-node accuracy {:.1}%",
                100.0 * root,
                100.0 * all
            );
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
    training.finish(&model, (train.len() / 20).clamp(1, 500))
}
