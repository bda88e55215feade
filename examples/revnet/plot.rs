//! Report 1 drawn: memory against depth, one line per model and measure.

use std::path::Path;

use plotters::prelude::*;

use crate::memory::{Row, megabytes};
use crate::model::Architecture;

/// Draws the live bytes at the end of the forward pass (solid) and the
/// step's peak (thin) against depth, RevNet in blue and ResNet in red.
pub fn memory(rows: &[Row], batch: usize, path: &Path) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let deepest = rows.iter().map(|r| r.depth).max().unwrap_or(1);
    let top = rows
        .iter()
        .map(|r| megabytes(r.peak_bytes.max(r.forward_bytes)))
        .fold(0.0f64, f64::max)
        * 1.05
        + 1e-3;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Memory of one training step (batch {batch}) against depth"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0..deepest + 1, 0.0f64..top)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc("reversible blocks (depth)")
        .y_desc("MB")
        .draw()
        .map_err(|e| failed(&e))?;
    for (architecture, colour) in [(Architecture::RevNet, BLUE), (Architecture::ResNet, RED)] {
        let of = |measure: fn(&Row) -> usize| {
            rows.iter()
                .filter(|r| r.architecture == architecture)
                .map(move |r| (r.depth, megabytes(measure(r))))
                .collect::<Vec<_>>()
        };
        let name = architecture.name();
        chart
            .draw_series(LineSeries::new(
                of(|r| r.forward_bytes),
                colour.stroke_width(3),
            ))
            .map_err(|e| failed(&e))?
            .label(format!("{name}: live at the end of the forward pass"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
        chart
            .draw_series(LineSeries::new(
                of(|r| r.peak_bytes),
                colour.stroke_width(1),
            ))
            .map_err(|e| failed(&e))?
            .label(format!("{name}: peak of the step"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}
