//! A binary constituency Tree-LSTM (Tai et al. 2015) for sentiment, trained
//! one tree at a time with Adagrad; the model of Lantern's benchmark and of
//! the PyTorch reference in the project's baselines.
//!
//! ```text
//! cargo run --release --example treelstm                          # synthetic treebank
//! cargo run --release --example treelstm -- --data path/to/sst   # the Stanford Sentiment Treebank
//! ```

mod cli;
mod evaluate;
mod flops;
mod joined;
mod levels;
mod memory;
mod model;
mod parallel;
mod plot;
mod reference_init;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use cli::Mode;
use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{GloveOptions, Vocab, load_glove, read_treebank};
use cps::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use model::TreeLstm;

/// Prints a line of the report. A reader that went away (`| head`) ends the
/// run quietly instead of panicking, as command-line tools do.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let options = cli::parse(std::env::args().skip(1))?;
    let (mut train, dev, test, source) = match &options.data {
        Some(dir) => {
            let read = |name: &str| read_treebank(dir.join(name)).map_err(|e| e.to_string());
            (
                read("train.txt")?,
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
    }
    let vocab = Vocab::from_trees(&train);
    let synthetic = options.data.is_none();
    let embedding = options
        .embedding
        .unwrap_or(if synthetic { 32 } else { 300 });
    let hidden = options.hidden.unwrap_or(if synthetic { 48 } else { 150 });

    let mut model = TreeLstm::new(vocab.len(), embedding, hidden, 0.3, options.seed);
    if let Some(path) = &options.glove {
        let report = load_glove(
            path,
            &vocab,
            model.emb.value_mut(),
            GloveOptions {
                skip_malformed: true,
            },
        )
        .map_err(|e| e.to_string())?;
        report!("word vectors: {report:?}");
    }
    if let Some(path) = &options.init {
        reference_init::load(&mut model, path)?;
    }
    if let Some(path) = &options.load {
        cps::io::load_parameters(&mut model, path).map_err(|e| e.to_string())?;
    }
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

    let mut optimizer = Adagrad::new(options.learning_rate);
    let mut loss_log = match &options.loss_log {
        Some(path) => Some(BufWriter::new(
            File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => None,
    };
    let flops_per_epoch: f64 = train
        .iter()
        .map(|(t, _)| flops::training_flops(t, embedding, hidden, options.train_embeddings))
        .sum();
    let mut losses = Vec::with_capacity(train.len() * options.epochs);
    // Every tree's loss is kept for the plot. The record is written once
    // up front, so that its pages are resident from the start and the
    // memory reported after each epoch measures the training, not the
    // record filling up (a page per thousand trees).
    losses.resize(losses.capacity(), 0.0);
    losses.clear();
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
    for epoch in 1..=options.epochs {
        let bar = ProgressBar::new(train.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} trees, {per_sec}, loss {msg}",
            )
            .expect("a valid template"),
        );
        bar.set_prefix(epoch.to_string());
        let start = Instant::now();
        let mut total = 0.0f64;
        let mut log_error = None;
        let mut record = |loss: f32| {
            total += f64::from(loss);
            losses.push(loss);
            if let Some(log) = &mut loss_log
                && let Err(e) = writeln!(log, "{loss:.9}")
            {
                log_error.get_or_insert(e.to_string());
            }
            let done = losses.len() % train.len().max(1);
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
        if let Some(e) = log_error {
            return Err(e);
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
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
    if let Some(mut log) = loss_log {
        log.flush().map_err(|e| e.to_string())?;
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
    if let Some(path) = &options.save {
        cps::io::save_parameters(&model, path).map_err(|e| e.to_string())?;
        report!("parameters saved to {}", path.display());
    }
    if let Some(path) = &options.plot
        && !losses.is_empty()
    {
        plot::loss_curve(&losses, (train.len() / 20).clamp(1, 500), path)?;
        report!("loss curve: {}", path.display());
    }
    Ok(())
}
