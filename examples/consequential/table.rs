//! The results as markdown: per data set and batch size, every optimizer
//! and learning rate with the plain and the consequentialist runs side by
//! side, then each variant at its best learning rate.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::grid::{Record, best_rates, by_set_and_batch, kinds_in};
use crate::optimizers::{Kind, Variant};

/// The epochs whose training loss the tables show (those before the
/// last epoch that ran, then the last).
const TABLE_EPOCHS: [usize; 4] = [1, 5, 10, 20];

/// The runs of `records` with this data set, batch, optimizer, variant
/// and learning rate.
pub fn runs<'a>(
    records: &'a [&'a Record],
    batch: usize,
    kind: Kind,
    variant: Variant,
    lr: f32,
) -> Vec<&'a Record> {
    records
        .iter()
        .copied()
        .filter(|r| {
            (r.config.batch, r.config.kind, r.config.variant, r.config.lr)
                == (batch, kind, variant, lr)
        })
        .collect()
}

/// Mean and sample standard deviation.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A cell: the mean ± standard deviation over the runs of `value`
/// (`div k/n` when k of the n runs diverged before it was measured).
fn cell(runs: &[&Record], value: impl Fn(&Record) -> Option<f64>, digits: usize) -> String {
    if runs.is_empty() {
        return "–".to_string();
    }
    let diverged = runs
        .iter()
        .filter(|r| r.outcome.diverged.is_some() && value(r).is_none())
        .count();
    if diverged > 0 {
        return format!("div {diverged}/{}", runs.len());
    }
    let values: Vec<f64> = runs.iter().filter_map(|r| value(r)).collect();
    if values.is_empty() {
        return "–".to_string();
    }
    let (mean, sd) = mean_sd(&values);
    // Small losses keep three significant digits.
    let digits = if mean > 0.0 && mean < 1.0 {
        digits.max((2.0 - mean.log10().floor()) as usize)
    } else {
        digits
    };
    if values.len() == 1 {
        format!("{mean:.digits$}")
    } else {
        format!("{mean:.digits$}±{sd:.digits$}")
    }
}

/// Accuracy in percent, or nothing for a diverged run.
fn accuracy(r: &Record) -> Option<f64> {
    r.outcome
        .test_accuracy
        .is_finite()
        .then_some(100.0 * r.outcome.test_accuracy)
}

/// The tables of `records`.
pub fn markdown(records: &[Record]) -> String {
    let mut text = String::new();
    for ((set, batch), group) in by_set_and_batch(records) {
        write_group(&mut text, set, batch, &group);
    }
    text
}

fn write_group(text: &mut String, set: &str, batch: usize, group: &[&Record]) {
    let last = group.iter().map(|r| r.config.epochs).max().unwrap_or(0);
    let mut epochs: Vec<usize> = TABLE_EPOCHS.into_iter().filter(|&e| e < last).collect();
    epochs.push(last);
    let seeds: BTreeSet<u64> = group.iter().map(|r| r.config.seed).collect();
    let _ = writeln!(
        text,
        "### {set}, batch {batch}: training loss after epochs {}, test accuracy (%)\n\n\
         Mean ± standard deviation over the seeds run of {:?} (a cell without ± is one run); `div k/n`: k of n runs diverged.\n",
        epochs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        seeds
    );
    let heads: Vec<String> = epochs.iter().map(|e| format!("loss@{e}")).collect();
    let _ = writeln!(
        text,
        "| optimizer | lr | plain {} | plain acc | conseq {} | conseq acc |",
        heads.join(" | plain "),
        heads.join(" | conseq ")
    );
    let columns = 2 + 2 * (epochs.len() + 1);
    let _ = writeln!(text, "|{}", "---|".repeat(columns));
    for kind in kinds_in(group) {
        let lrs: BTreeSet<u32> = group
            .iter()
            .filter(|r| r.config.kind == kind)
            .map(|r| r.config.lr.to_bits())
            .collect();
        let mut lrs: Vec<f32> = lrs.into_iter().map(f32::from_bits).collect();
        lrs.sort_by(f32::total_cmp);
        for lr in lrs {
            let mut row = format!("| {} | {lr} |", kind.name());
            for variant in Variant::ALL {
                let these = runs(group, batch, kind, variant, lr);
                for &e in &epochs {
                    let _ = write!(row, " {} |", cell(&these, |r| r.outcome.loss_after(e), 4));
                }
                let _ = write!(row, " {} |", cell(&these, accuracy, 2));
            }
            let _ = writeln!(text, "{row}");
        }
    }
    let _ = writeln!(text);
    write_best(text, set, batch, group, last);
}

/// Each optimizer's plain and consequentialist runs at their own best
/// learning rate (lowest mean final training loss), and at how many of
/// the shared learning rates the consequentialist runs end lower.
fn write_best(text: &mut String, set: &str, batch: usize, group: &[&Record], last: usize) {
    let owned: Vec<Record> = group.iter().map(|r| (*r).clone()).collect();
    let best = best_rates(&owned);
    let _ = writeln!(
        text,
        "#### {set}, batch {batch}: each variant at its best learning rate (lowest mean loss@{last})\n"
    );
    let _ = writeln!(
        text,
        "| optimizer | plain lr | plain loss@1 | plain loss@{last} | plain acc | conseq lr | conseq loss@1 | conseq loss@{last} | conseq acc | lrs where conseq loss@1 lower | lrs where conseq loss@{last} lower |"
    );
    let _ = writeln!(text, "|{}", "---|".repeat(11));
    for kind in kinds_in(group) {
        let mut row = format!("| {} |", kind.name());
        for variant in Variant::ALL {
            let Some(&lr) = best.get(&(batch, kind.name(), variant.name())) else {
                row.push_str(" – | – | – | – |");
                continue;
            };
            let these = runs(group, batch, kind, variant, lr);
            let _ = write!(
                row,
                " {lr} | {} | {} | {} |",
                cell(&these, |r| r.outcome.loss_after(1), 4),
                cell(&these, |r| r.outcome.loss_after(last), 4),
                cell(&these, accuracy, 2)
            );
        }
        for epoch in [1, last] {
            let _ = write!(row, " {} |", wins(group, batch, kind, epoch));
        }
        let _ = writeln!(text, "{row}");
    }
    let _ = writeln!(text);
    let _ = writeln!(
        text,
        "#### {set}, batch {batch}: the lowest mean loss@1 over the learning rates, and its learning rate\n\n\
         | optimizer | plain loss@1 | plain lr | conseq loss@1 | conseq lr |\n|---|---|---|---|---|"
    );
    for kind in kinds_in(group) {
        let mut row = format!("| {} |", kind.name());
        for variant in Variant::ALL {
            match lowest_after(group, batch, kind, variant, 1) {
                Some((lr, loss)) => {
                    let _ = write!(row, " {loss:.4} | {lr} |");
                }
                None => row.push_str(" – | – |"),
            }
        }
        let _ = writeln!(text, "{row}");
    }
    let _ = writeln!(text);
}

/// The learning rate whose runs have the lowest mean loss after `epoch`,
/// and that mean (a diverged run's loss counts as infinite).
fn lowest_after(
    group: &[&Record],
    batch: usize,
    kind: Kind,
    variant: Variant,
    epoch: usize,
) -> Option<(f32, f64)> {
    let lrs: BTreeSet<u32> = group
        .iter()
        .filter(|r| r.config.kind == kind && r.config.variant == variant)
        .map(|r| r.config.lr.to_bits())
        .collect();
    lrs.into_iter()
        .map(f32::from_bits)
        .map(|lr| {
            let these = runs(group, batch, kind, variant, lr);
            let sum: f64 = these
                .iter()
                .map(|r| r.outcome.loss_after(epoch).unwrap_or(f64::INFINITY))
                .sum();
            (lr, sum / these.len() as f64)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// `k/n`: at k of the n learning rates tried with both variants, the
/// consequentialist runs' mean loss after `epoch` is lower than the plain
/// runs' (a diverged run's loss counts as infinite).
fn wins(group: &[&Record], batch: usize, kind: Kind, epoch: usize) -> String {
    let lrs: BTreeSet<u32> = group
        .iter()
        .filter(|r| r.config.kind == kind)
        .map(|r| r.config.lr.to_bits())
        .collect();
    let mean = |variant, lr| {
        let these = runs(group, batch, kind, variant, lr);
        let values: Vec<f64> = these
            .iter()
            .map(|r| r.outcome.loss_after(epoch).unwrap_or(f64::INFINITY))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let (mut won, mut compared) = (0, 0);
    for lr in lrs.into_iter().map(f32::from_bits) {
        if let (Some(plain), Some(conseq)) =
            (mean(Variant::Plain, lr), mean(Variant::Consequential, lr))
        {
            compared += 1;
            won += usize::from(conseq < plain);
        }
    }
    format!("{won}/{compared}")
}
