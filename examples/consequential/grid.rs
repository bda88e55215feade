//! The grid of runs: which configurations, running them into a results
//! file, and turning results files into tables and plots.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::Options;
use crate::common::outputs::check_writable;
use crate::data::DataSet;
use crate::optimizers::{Kind, Variant};
use crate::run::{self, Config, Outcome};
use crate::{plots, table};

/// One run read from a results file.
#[derive(Clone, Debug)]
pub struct Record {
    pub data: String,
    pub config: Config,
    pub outcome: Outcome,
}

/// The configurations of the grid `options` asks for, seed by seed (so
/// that a grid cut short has whole seeds): each batch, optimizer, learning
/// rate (`--lrs`, else the optimizer's own three) and variant; with
/// `best` (from `--best-from`) only the learning rate listed there for
/// each batch, optimizer and variant.
pub fn configs(options: &Options, best: Option<&BestRates>) -> Vec<Config> {
    let mut all = Vec::new();
    for seed in options.seed..options.seed + options.seeds as u64 {
        for &batch in &options.batches {
            for &kind in &options.kinds {
                let lrs = options
                    .lrs
                    .clone()
                    .unwrap_or_else(|| kind.learning_rates().to_vec());
                for variant in Variant::ALL {
                    let chosen = match best {
                        Some(best) => match best.get(&(batch, kind.name(), variant.name())) {
                            Some(&lr) => vec![lr],
                            None => Vec::new(),
                        },
                        None => lrs.clone(),
                    };
                    for lr in chosen {
                        all.push(Config {
                            batch,
                            kind,
                            variant,
                            lr,
                            seed,
                            epochs: options.epochs,
                        });
                    }
                }
            }
        }
    }
    all
}

/// The chosen learning rate per (batch, optimizer, variant).
pub type BestRates = BTreeMap<(usize, &'static str, &'static str), f32>;

/// Per batch, optimizer and variant of `records`, the learning rate whose
/// runs end with the lowest mean training loss (a diverged run counts as
/// an infinite loss).
pub fn best_rates(records: &[Record]) -> BestRates {
    let mut sums: BTreeMap<(usize, &'static str, &'static str, u32), (f64, usize)> =
        BTreeMap::new();
    for r in records {
        let loss = if r.outcome.diverged.is_some() {
            f64::INFINITY
        } else {
            r.outcome.final_loss()
        };
        let key = (
            r.config.batch,
            r.config.kind.name(),
            r.config.variant.name(),
            r.config.lr.to_bits(),
        );
        let entry = sums.entry(key).or_default();
        entry.0 += loss;
        entry.1 += 1;
    }
    let mut best: BTreeMap<(usize, &'static str, &'static str), (f32, f64)> = BTreeMap::new();
    for ((batch, kind, variant, lr), (sum, count)) in sums {
        let mean = sum / count as f64;
        let entry = best
            .entry((batch, kind, variant))
            .or_insert((f32::from_bits(lr), mean));
        if mean < entry.1 {
            *entry = (f32::from_bits(lr), mean);
        }
    }
    best.into_iter().map(|(k, (lr, _))| (k, lr)).collect()
}

/// Runs the grid on `data`, appending each run to `OUT/results.tsv` as it
/// ends, then writes the tables and plots of everything in that file.
pub fn run(data: &DataSet, options: &Options) -> Result<(), String> {
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("--out {}: {e}", options.out.display()))?;
    let results = options.out.join("results.tsv");
    check_writable(&[
        ("--out", results.clone()),
        ("--out", options.out.join("results.md")),
    ])?;
    let best = if options.best_from.is_empty() {
        None
    } else {
        let mut earlier = Vec::new();
        for file in &options.best_from {
            earlier.extend(read(file)?);
        }
        Some(best_rates(&earlier))
    };
    let configs = configs(options, best.as_ref());
    let hidden = crate::hidden(data, options);
    let fresh = !results.exists()
        || std::fs::metadata(&results)
            .map(|m| m.len() == 0)
            .unwrap_or(true);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results)
        .map_err(|e| format!("{}: {e}", results.display()))?;
    let write_error = |e: std::io::Error| format!("{}: {e}", results.display());
    if fresh {
        writeln!(file, "{}", run::HEADER).map_err(write_error)?;
    }
    report!(
        "{} ({}): {}-{hidden}-10; {} runs of {} epochs into {}",
        data.name,
        data.source,
        data.inputs(),
        configs.len(),
        options.epochs,
        results.display()
    );
    for (i, config) in configs.iter().enumerate() {
        let outcome = run::train(data, hidden, config);
        writeln!(file, "{}", run::line(data.name, config, &outcome)).map_err(write_error)?;
        file.flush().map_err(write_error)?;
        report!(
            "[{}/{}] batch {} {} {} lr {} seed {}: final loss {:.4}, test {:.2}%{}, {:.1} s",
            i + 1,
            configs.len(),
            config.batch,
            config.variant.name(),
            config.kind.name(),
            config.lr,
            config.seed,
            outcome.final_loss(),
            100.0 * outcome.test_accuracy,
            outcome
                .diverged
                .map_or(String::new(), |e| format!(", diverged in epoch {e}")),
            outcome.seconds
        );
    }
    tables_only(&[results], &options.out)
}

/// Reads every run of a results file.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty() && !l.starts_with("data\t"))
        .map(|(i, l)| {
            let (data, config, outcome) = run::parse_line(l)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
            Ok(Record {
                data,
                config,
                outcome,
            })
        })
        .collect()
}

/// Writes `OUT/results.md`, the learning curves and the learning-rate
/// sweeps (`OUT/*.svg`) of the runs in `files`.
pub fn tables_only(files: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut records = Vec::new();
    for file in files {
        records.extend(read(file)?);
    }
    std::fs::create_dir_all(out).map_err(|e| format!("--out {}: {e}", out.display()))?;
    let markdown = out.join("results.md");
    let mut file = File::create(&markdown).map_err(|e| format!("{}: {e}", markdown.display()))?;
    file.write_all(table::markdown(&records).as_bytes())
        .map_err(|e| format!("{}: {e}", markdown.display()))?;
    report!("tables: {}", markdown.display());
    for path in plots::learning_curves(&records, out)? {
        report!("learning curves: {}", path.display());
    }
    for path in plots::learning_rate_sweeps(&records, out)? {
        report!("learning-rate sweep: {}", path.display());
    }
    Ok(())
}

/// The records grouped by data set and batch size, in that order.
pub fn by_set_and_batch(records: &[Record]) -> Vec<((&str, usize), Vec<&Record>)> {
    let mut groups: std::collections::BTreeMap<(&str, usize), Vec<&Record>> = Default::default();
    for record in records {
        groups
            .entry((record.data.as_str(), record.config.batch))
            .or_default()
            .push(record);
    }
    groups.into_iter().collect()
}

/// The optimizers in the order of [`Kind::ALL`] that `records` hold.
pub fn kinds_in(records: &[&Record]) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| records.iter().any(|r| r.config.kind == *k))
        .collect()
}
