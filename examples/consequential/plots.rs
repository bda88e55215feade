//! Learning curves as SVG: per data set, batch size and optimizer, the
//! mean batch loss against epochs, plain and consequentialist at each
//! learning rate, averaged over the seeds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::grid::{Record, by_set_and_batch, kinds_in};
use crate::optimizers::{Kind, Variant};
use crate::run::CURVE_POINTS_PER_EPOCH;
use crate::table::runs;

/// Plain runs in blues, consequentialist ones in reds: the lightest and
/// the darkest shade, and the middle one for a single line.
const PLAIN: [RGBColor; 3] = [
    RGBColor(140, 180, 230),
    RGBColor(40, 110, 200),
    RGBColor(10, 30, 110),
];
const CONSEQUENTIAL: [RGBColor; 3] = [
    RGBColor(245, 160, 120),
    RGBColor(220, 60, 40),
    RGBColor(120, 10, 10),
];

/// The shade of line `i` of `n` in `palette`: light for the smallest
/// learning rate, dark for the largest.
fn shade(palette: &[RGBColor; 3], i: usize, n: usize) -> RGBColor {
    if n < 2 {
        return palette[1];
    }
    let t = i as f64 / (n - 1) as f64;
    let (a, b) = (palette[0], palette[2]);
    let mix = |x: u8, y: u8| (f64::from(x) + t * (f64::from(y) - f64::from(x))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Points per epoch of the curves of `runs`: a finished run's points over
/// its epochs (a window's size depends on the data set's length, which
/// the results do not hold).
fn points_per_epoch(runs: &[&Record]) -> f64 {
    runs.iter()
        .find(|r| r.outcome.diverged.is_none() && !r.outcome.curve.is_empty())
        .map_or(CURVE_POINTS_PER_EPOCH as f64, |r| {
            r.outcome.curve.len() as f64 / r.config.epochs as f64
        })
}

/// The mean over `curves` point by point, as long as the shortest (a
/// diverged run's curve ends where it diverged).
pub fn mean_curve(curves: &[&[f64]]) -> Vec<f64> {
    let len = curves.iter().map(|c| c.len()).min().unwrap_or(0);
    (0..len)
        .map(|i| curves.iter().map(|c| c[i]).sum::<f64>() / curves.len() as f64)
        .collect()
}

/// Draws one SVG per data set, batch size and optimizer into `out`
/// (`DATA-bBATCH-OPTIMIZER.svg`); returns their paths.
pub fn learning_curves(records: &[Record], out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for ((set, batch), group) in by_set_and_batch(records) {
        for kind in kinds_in(&group) {
            let path = out.join(format!("{set}-b{batch}-{}.svg", kind.name()));
            draw(&group, set, batch, kind, &path)?;
            written.push(path);
        }
    }
    Ok(written)
}

fn draw(group: &[&Record], set: &str, batch: usize, kind: Kind, path: &Path) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let lrs: BTreeSet<u32> = group
        .iter()
        .filter(|r| r.config.kind == kind)
        .map(|r| r.config.lr.to_bits())
        .collect();
    let mut lrs: Vec<f32> = lrs.into_iter().map(f32::from_bits).collect();
    lrs.sort_by(f32::total_cmp);
    let mut lines = Vec::new();
    for (i, &lr) in lrs.iter().enumerate() {
        for variant in Variant::ALL {
            let these = runs(group, batch, kind, variant, lr);
            let curves: Vec<&[f64]> = these.iter().map(|r| r.outcome.curve.as_slice()).collect();
            let curve = mean_curve(&curves);
            if curve.is_empty() {
                continue;
            }
            let palette = if variant == Variant::Plain {
                &PLAIN
            } else {
                &CONSEQUENTIAL
            };
            let color = shade(palette, i, lrs.len());
            let label = format!("{} lr {lr} ({} seeds)", variant.name(), these.len());
            let per_epoch = points_per_epoch(&these);
            let points: Vec<(f64, f64)> = curve
                .into_iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .map(|(i, v)| ((i + 1) as f64 / per_epoch, v))
                .collect();
            lines.push((points, color, label));
        }
    }
    let values = lines.iter().flat_map(|(c, _, _)| c.iter().map(|p| p.1));
    let (low, high) = values.fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    let (low, high) = if low < high {
        (low * 0.9, high * 1.1)
    } else {
        (1e-3, 10.0)
    };
    let epochs = lines
        .iter()
        .filter_map(|(c, _, _)| c.last().map(|p| p.0))
        .fold(0.1f64, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{set}, batch {batch}, {}: training loss (mean over about 1/10 epoch)",
                kind.name()
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..epochs, (low..high).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("epochs")
        .y_desc("mean batch loss (log scale)")
        .draw()
        .map_err(|e| failed(&e))?;
    for (points, color, label) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

/// Draws one SVG per data set and batch size into `out`
/// (`DATA-bBATCH-lr.svg`): for each optimizer, the mean final training
/// loss against the learning rate, plain and consequentialist; a
/// learning rate at which some seed diverged is a cross at the top.
pub fn learning_rate_sweeps(records: &[Record], out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for ((set, batch), group) in by_set_and_batch(records) {
        let path = out.join(format!("{set}-b{batch}-lr.svg"));
        draw_sweep(&group, set, batch, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Learning rates and their mean final loss, `None` where a seed diverged.
type Sweep = Vec<(f64, Option<f64>)>;

/// Per learning rate of `kind` and `variant`: the mean final loss, or
/// `None` when a seed diverged.
fn sweep(group: &[&Record], batch: usize, kind: Kind, variant: Variant) -> Sweep {
    let lrs: BTreeSet<u32> = group
        .iter()
        .filter(|r| r.config.kind == kind && r.config.variant == variant)
        .map(|r| r.config.lr.to_bits())
        .collect();
    let mut points: Vec<(f64, Option<f64>)> = lrs
        .into_iter()
        .map(f32::from_bits)
        .map(|lr| {
            let these = runs(group, batch, kind, variant, lr);
            let finished = these.iter().all(|r| r.outcome.diverged.is_none());
            let mean =
                these.iter().map(|r| r.outcome.final_loss()).sum::<f64>() / these.len() as f64;
            (
                f64::from(lr),
                (finished && mean.is_finite()).then_some(mean),
            )
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn draw_sweep(group: &[&Record], set: &str, batch: usize, path: &Path) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let kinds = kinds_in(group);
    let root = SVGBackend::new(path, (340 * kinds.len().max(1) as u32, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let root = root
        .titled(
            &format!("{set}, batch {batch}: final training loss against learning rate (blue plain, red consequentialist; x: a seed diverged)"),
            ("sans-serif", 18),
        )
        .map_err(|e| failed(&e))?;
    let panels = root.split_evenly((1, kinds.len().max(1)));
    for (panel, &kind) in panels.iter().zip(&kinds) {
        let lines: Vec<(Sweep, RGBColor)> = Variant::ALL
            .into_iter()
            .map(|v| {
                (
                    sweep(group, batch, kind, v),
                    if v == Variant::Plain {
                        PLAIN[1]
                    } else {
                        CONSEQUENTIAL[1]
                    },
                )
            })
            .collect();
        let all = lines.iter().flat_map(|(p, _)| p.iter());
        let (lr_low, lr_high) = all.clone().fold((f64::INFINITY, 0.0f64), |(l, h), (x, _)| {
            (l.min(*x), h.max(*x))
        });
        let losses = all.filter_map(|(_, y)| *y).filter(|y| *y > 0.0);
        let (low, high) = losses.fold((f64::INFINITY, 0.0f64), |(l, h), y| (l.min(y), h.max(y)));
        let (low, high) = if low < high {
            (low * 0.7, high * 2.0)
        } else {
            (1e-4, 10.0)
        };
        let (lr_low, lr_high) = if lr_low < lr_high {
            (lr_low / 1.5, lr_high * 1.5)
        } else {
            (1e-4, 10.0)
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(kind.name(), ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(48)
            .build_cartesian_2d((lr_low..lr_high).log_scale(), (low..high).log_scale())
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .x_desc("learning rate")
            .x_labels(4)
            .y_labels(5)
            .draw()
            .map_err(|e| failed(&e))?;
        for (points, color) in lines {
            let finished: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|(x, y)| y.map(|y| (*x, y)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    finished.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| failed(&e))?;
            chart
                .draw_series(finished.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| failed(&e))?;
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|(_, y)| y.is_none())
                        .map(|&(x, _)| Cross::new((x, high / 1.2), 5, color.stroke_width(2))),
                )
                .map_err(|e| failed(&e))?;
        }
    }
    root.present().map_err(|e| failed(&e))
}
