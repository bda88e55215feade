//! The ELBO curves, drawn as SVG: for each posterior family, each arm's
//! distance below ELBO* against iterations and against
//! gradient-equivalents, on log scales, with the one-nat target marked.

use std::path::Path;

use plotters::prelude::*;

use crate::trace::Trace;

/// The smallest gap drawn: a run at ELBO* itself is drawn here.
const FLOOR: f64 = 1e-2;

/// One family's panel: its name, ELBO*, and the runs to draw.
pub struct Panel<'a> {
    /// The family's name.
    pub family: &'static str,
    /// ELBO*.
    pub best: f64,
    /// The runs, each drawn in its own colour.
    pub traces: Vec<&'a Trace>,
}

/// Draws `panels` (one row each) into `path`.
pub fn elbo_curves(panels: &[Panel<'_>], path: &Path) -> Result<(), String> {
    let failed =
        |e: &dyn std::fmt::Display| format!("{}: cannot draw the ELBO curves: {e}", path.display());
    let height = 360 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let rows = root.split_evenly((panels.len().max(1), 2));
    for (i, panel) in panels.iter().enumerate() {
        for (j, by_cost) in [false, true].into_iter().enumerate() {
            draw(&rows[2 * i + j], panel, by_cost).map_err(|e| failed(&e))?;
        }
    }
    root.present().map_err(|e| failed(&e))
}

/// One chart: gap below ELBO* against iterations, or against
/// gradient-equivalents when `by_cost`.
fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel<'_>,
    by_cost: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = |t: &Trace| -> Vec<(f64, f64)> {
        // Entry 0 (the prior) has no place on a log axis.
        (1..t.elbo.len())
            .map(|k| {
                let x = if by_cost { t.cost[k] } else { k as f64 };
                (x, (panel.best - t.elbo[k]).max(FLOOR))
            })
            .collect()
    };
    let all: Vec<Vec<(f64, f64)>> = panel.traces.iter().map(|t| points(t)).collect();
    let x_max = all.iter().flatten().map(|p| p.0).fold(10.0, f64::max);
    let y_max = all.iter().flatten().map(|p| p.1).fold(10.0, f64::max);
    let unit = if by_cost {
        "gradient-equivalents"
    } else {
        "iterations"
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} covariance: ELBO* − ELBO by {unit}", panel.family),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (1.0..x_max * 1.2).log_scale(),
            (FLOOR..y_max * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_desc("nats below ELBO*")
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(
            [(1.0, 1.0), (x_max * 1.2, 1.0)],
            4,
            4,
            BLACK.stroke_width(1),
        ))?
        .label("1 nat")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
    const COLOURS: [RGBColor; 5] = [RED, BLUE, GREEN, MAGENTA, CYAN];
    for ((trace, line), colour) in panel.traces.iter().zip(all).zip(COLOURS.iter().cycle()) {
        let label = match trace.learning_rate {
            Some(lr) => format!("{} (lr {lr})", trace.arm),
            None => trace.arm.to_string(),
        };
        chart
            .draw_series(LineSeries::new(line, colour))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], *colour));
    }
    chart
        .configure_series_labels()
        // The curves start high on the left and fall: the upper right is free.
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
}
