//! The loss curve, drawn as SVG.

use std::path::Path;

use plotters::prelude::*;

/// Draws the running mean of the per-step loss over `window` steps;
/// `model` titles the picture and `unit` names a step (`trees`, `batches`,
/// `iterations`).
pub fn loss_curve(
    losses: &[f32],
    window: usize,
    model: &str,
    unit: &str,
    path: &Path,
) -> Result<(), String> {
    loss_curves(&[("", losses)], window, model, unit, path)
}

/// The colours of the curves of one picture, in order.
const COLOURS: [RGBColor; 4] = [BLUE, RED, RGBColor(0, 140, 0), BLACK];

/// Draws several loss curves in one picture, as [`loss_curve`] draws one,
/// each with its label in a legend (none for a single unlabelled curve).
pub fn loss_curves(
    curves: &[(&str, &[f32])],
    window: usize,
    model: &str,
    unit: &str,
    path: &Path,
) -> Result<(), String> {
    let smoothed: Vec<Vec<f32>> = curves
        .iter()
        .map(|(_, losses)| running_mean(losses, window.max(1)))
        .collect();
    let top = smoothed.iter().flatten().copied().fold(0.0f32, f32::max) * 1.05 + 1e-3;
    let steps = smoothed.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let failed =
        |e: &dyn std::fmt::Display| format!("{}: cannot draw the loss curve: {e}", path.display());
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{model} training loss (mean over {window} {unit})"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0..steps, 0.0f32..top)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("training {unit}"))
        .y_desc("loss")
        .draw()
        .map_err(|e| failed(&e))?;
    for (k, ((label, _), curve)) in curves.iter().zip(&smoothed).enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let series = chart
            .draw_series(LineSeries::new(curve.iter().copied().enumerate(), &colour))
            .map_err(|e| failed(&e))?;
        if !label.is_empty() {
            series
                .label(*label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
        }
    }
    if curves.iter().any(|(label, _)| !label.is_empty()) {
        chart
            .configure_series_labels()
            .background_style(WHITE)
            .border_style(BLACK)
            .draw()
            .map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))
}

fn running_mean(values: &[f32], window: usize) -> Vec<f32> {
    let mut sum = 0.0f64;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            sum += f64::from(v);
            if i >= window {
                sum -= f64::from(values[i - window]);
            }
            (sum / (i + 1).min(window) as f64) as f32
        })
        .collect()
}
