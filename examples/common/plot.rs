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
    let smoothed = running_mean(losses, window.max(1));
    let top = smoothed.iter().copied().fold(0.0f32, f32::max) * 1.05 + 1e-3;
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
        .build_cartesian_2d(0..smoothed.len().max(1), 0.0f32..top)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(format!("training {unit}"))
        .y_desc("loss")
        .draw()
        .map_err(|e| failed(&e))?;
    chart
        .draw_series(LineSeries::new(smoothed.iter().copied().enumerate(), &BLUE))
        .map_err(|e| failed(&e))?;
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
