//! The curves, drawn as SVG.

use std::path::Path;

use plotters::prelude::*;

/// One named curve of (x, y) points.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws `curves` on one chart (the y axis logarithmic if `log`), with
/// a dashed horizontal line at `mark` if given.
pub fn curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    log: bool,
    mark: Option<f64>,
) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: cannot draw: {e}", path.display());
    let all = || curves.iter().flat_map(|c| c.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0f64, f64::max);
    let mut y_max = all().map(|p| p.1).fold(f64::MIN_POSITIVE, f64::max);
    let mut y_min = all()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::MAX, f64::min);
    if let Some(m) = mark {
        y_max = y_max.max(m);
        y_min = y_min.min(m);
    }
    let colours = [
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(255, 140, 0),
        RGBColor(128, 0, 128),
    ];
    let root = SVGBackend::new(path, (820, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|e| failed(&e))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(|e| failed(&e))?;
            for (curve, colour) in curves.iter().zip(colours.iter().cycle()) {
                let colour = *colour;
                chart
                    .draw_series(LineSeries::new(curve.points.iter().copied(), colour))
                    .map_err(|e| failed(&e))?
                    .label(curve.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
            }
            if let Some(m) = mark {
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(0.0, m), (x_max, m)],
                        6,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(|e| failed(&e))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| failed(&e))?;
        }};
    }
    if log {
        // Whole decades, so that every decade's labels are drawn.
        let low = 10f64.powf(y_min.log10().floor());
        let high = 10f64.powf(y_max.log10().ceil());
        let mut ticks = Vec::new();
        let mut decade = low;
        while decade < high * 1.001 {
            ticks.extend(
                [decade, 2.0 * decade, 5.0 * decade]
                    .into_iter()
                    .filter(|t| *t <= high),
            );
            decade *= 10.0;
        }
        draw!(
            builder.build_cartesian_2d(0.0..x_max, (low..high).log_scale().with_key_points(ticks))
        );
    } else {
        draw!(builder.build_cartesian_2d(0.0..x_max, 0.0..y_max * 1.05));
    }
    root.present().map_err(|e| failed(&e))
}

/// The running mean of `values` over `window` values, as points `(i + 1,
/// mean)`.
pub fn running_mean(values: &[f64], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            sum += v;
            if i >= window {
                sum -= values[i - window];
            }
            ((i + 1) as f64, sum / (i + 1).min(window) as f64)
        })
        .collect()
}
