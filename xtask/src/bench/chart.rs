//! The SVG chart of `cargo xtask bench`: one horizontal bar per figure that has a baseline,
//! its length the ratio to that baseline on a log axis (1 = as fast as the baseline: the line).

use std::path::Path;

use plotters::prelude::*;

use super::Figure;

/// Draws the ratios of `figures` into an SVG file at `path`.
pub fn draw(path: &Path, figures: &[Figure]) -> Result<(), String> {
    let bars: Vec<(&str, f64)> = figures
        .iter()
        .filter_map(|f| f.ratio.map(|r| (f.scenario.as_str(), r)))
        .filter(|(_, r)| r.is_finite())
        .collect();
    let height = 120 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    // Ratios span 0.5x to several hundred x: a log axis keeps every bar readable.
    let max = bars.iter().map(|(_, r)| *r).fold(1.0f64, f64::max) * 1.5;
    let min = bars
        .iter()
        .map(|(_, r)| *r)
        .fold(1.0f64, f64::min)
        .max(0.01)
        / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "KalamDB cost / baseline cost (1 = the baseline)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(460)
        .build_cartesian_2d((min..max).log_scale(), (0..bars.len()).into_segmented())
        .map_err(err)?;
    let names: Vec<String> = bars.iter().map(|(n, _)| (*n).to_string()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len().max(1))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("ratio (log scale)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
            let color = if *r <= 1.3 { GREEN } else { RED };
            Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*r, SegmentValue::Exact(i + 1)),
                ],
                color.mix(0.6).filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
