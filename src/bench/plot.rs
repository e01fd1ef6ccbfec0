//! Latency plots: latency over time above its distribution, as SVG or PNG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::summary::Sample;
use crate::error::PlotError;

/// Width of a plot in pixels.
const WIDTH: u32 = 1200;
/// Height of a plot in pixels.
const HEIGHT: u32 = 800;
/// Number of histogram bars.
const BINS: usize = 60;

/// The file format of a plot, chosen by the file name's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotFormat {
    /// SVG, with a caption, axis labels and values.
    Svg,
    /// PNG of 1200 × 800 pixels, without any text: plotters is built without a font engine,
    /// so a bitmap cannot render glyphs. Use SVG for a labelled plot.
    Png,
}

impl PlotFormat {
    /// Returns the format for `path` from its extension, `.svg` or `.png` in any case.
    pub fn from_path(path: &Path) -> Result<Self, PlotError> {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("svg") => Ok(PlotFormat::Svg),
            Some("png") => Ok(PlotFormat::Png),
            _ => Err(PlotError::UnsupportedFormat { path: path.to_owned() }),
        }
    }
}

/// Draws `samples` to `path`: latency over time in the upper panel, with a red vertical line
/// at each of `alarms_s` (seconds since the first sample, as [`Sample::at_ns`] counts), and
/// a histogram of latency in the lower panel. The format follows the extension of `path`.
pub fn plot(
    path: &Path,
    samples: &[Sample],
    alarms_s: &[f64],
    title: &str,
) -> Result<PlotFormat, PlotError> {
    let format = PlotFormat::from_path(path)?;
    if samples.is_empty() {
        return Err(PlotError::NoSamples { path: path.to_owned() });
    }
    let draw_error = |detail: String| PlotError::Draw { path: path.to_owned(), detail };
    match format {
        PlotFormat::Svg => {
            let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, samples, alarms_s, Some(title)).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))?;
        }
        PlotFormat::Png => {
            let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, samples, alarms_s, None).map_err(draw_error)?;
            root.present().map_err(|e| draw_error(e.to_string()))?;
        }
    }
    Ok(format)
}

/// Draws both panels on `root`. Without a `title`, no text at all is drawn.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    samples: &[Sample],
    alarms_s: &[f64],
    title: Option<&str>,
) -> Result<(), String> {
    let text = title.is_some();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = match title {
        Some(title) => root.titled(title, ("sans-serif", 24)).map_err(|e| e.to_string())?,
        None => root.clone(),
    };
    let (upper, lower) = root.split_vertically(HEIGHT / 2);

    let points: Vec<(f64, f64)> =
        samples.iter().map(|s| (s.at_ns as f64 / 1e9, s.latency_ns as f64 / 1e6)).collect();
    let end_s = points.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-3);
    let max_ms = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let min_ms = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) * 0.95;
    let label_area = if text { 50 } else { 0 };

    let mut over_time = ChartBuilder::on(&upper)
        .margin(15)
        .x_label_area_size(label_area)
        .y_label_area_size(label_area + 10)
        .build_cartesian_2d(0.0..end_s, min_ms..max_ms)
        .map_err(|e| e.to_string())?;
    if text {
        over_time
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("latency (ms)")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;
    } else {
        draw_frame(&mut over_time, (0.0, end_s), (min_ms, max_ms))?;
    }
    over_time
        .draw_series(points.iter().map(|&p| Circle::new(p, 2, BLUE.mix(0.6).filled())))
        .map_err(|e| e.to_string())?;
    over_time
        .draw_series(
            alarms_s
                .iter()
                .filter(|&&t| t >= 0.0 && t <= end_s)
                .map(|&t| PathElement::new(vec![(t, min_ms), (t, max_ms)], RED.stroke_width(2))),
        )
        .map_err(|e| e.to_string())?;

    let width_ms = ((max_ms / 1.05) - (min_ms / 0.95)).max(1e-6) / BINS as f64;
    let low_ms = min_ms / 0.95;
    let mut counts = vec![0u32; BINS];
    for &(_, ms) in &points {
        let bin = (((ms - low_ms) / width_ms) as usize).min(BINS - 1);
        counts[bin] += 1;
    }
    let highest = counts.iter().copied().max().unwrap_or(1);
    let mut distribution = ChartBuilder::on(&lower)
        .margin(15)
        .x_label_area_size(label_area)
        .y_label_area_size(label_area + 10)
        .build_cartesian_2d(
            low_ms..low_ms + width_ms * BINS as f64,
            0u32..highest + highest / 10 + 1,
        )
        .map_err(|e| e.to_string())?;
    if text {
        distribution
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("inferences")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|e| e.to_string())?;
    } else {
        let top = f64::from(highest + highest / 10 + 1);
        let mut frame = ChartBuilder::on(&lower)
            .margin(15)
            .build_cartesian_2d(0.0..1.0, 0.0..top)
            .map_err(|e| e.to_string())?;
        draw_frame(&mut frame, (0.0, 1.0), (0.0, top))?;
    }
    distribution
        .draw_series(counts.iter().enumerate().map(|(bin, &count)| {
            let left = low_ms + width_ms * bin as f64;
            Rectangle::new([(left, 0), (left + width_ms, count)], BLUE.mix(0.5).filled())
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws a border and eight horizontal grid lines, for plots without text. plotters' mesh
/// is not used there because it draws tick labels, and drawing any text into a bitmap
/// without a font engine panics inside plotters.
fn draw_frame<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    (left, right): (f64, f64),
    (bottom, top): (f64, f64),
) -> Result<(), String> {
    let grid = (1..8).map(|i| {
        let y = bottom + (top - bottom) * f64::from(i) / 8.0;
        PathElement::new(vec![(left, y), (right, y)], BLACK.mix(0.1))
    });
    chart.draw_series(grid).map_err(|e| e.to_string())?;
    let border = Rectangle::new([(left, bottom), (right, top)], BLACK.stroke_width(1));
    chart.draw_series(std::iter::once(border)).map_err(|e| e.to_string())?;
    Ok(())
}
