//! The loss and diagnostics plot (PNG) of a run, drawn with plotters into an RGB buffer
//! with a bundled font (DejaVu Sans, so no system font lookup is needed) and encoded by the
//! `png` crate (plotters' own encoder would build the whole `image` crate for it).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{ModelError, Result};
use crate::trainer::StepMetrics;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn plot_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Plot(e.to_string())
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - pad, hi + pad)
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    steps: f64,
    series: &[Series<'_>],
) -> Result<()> {
    let (lo, hi) = range(series.iter().flat_map(|s| s.2.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..steps.max(1.0), lo..hi)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("step").label_style(("sans-serif", 13)).draw().map_err(plot_err)?;
    for (name, color, points) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Draw losses, gradient norm and collapse diagnostics of `metrics` into the PNG `path`.
pub fn plot_metrics(metrics: &[StepMetrics], path: &Path) -> Result<()> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    const SIZE: (u32, u32) = (1500, 450);
    let mut rgb = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(metrics, BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area())?;
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header().and_then(|mut w| w.write_image_data(&rgb)).map_err(plot_err)?;
    physworld_pipeline::write_atomic(path, &bytes).map_err(plot_err)
}

/// The three panels of [`plot_metrics`] on `root`.
fn draw(metrics: &[StepMetrics], root: DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let areas = root.split_evenly((1, 3));
    let steps = metrics.last().map_or(1.0, |m| m.step as f64);
    let pts = |f: &dyn Fn(&StepMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        metrics.iter().filter_map(|m| f(m).map(|v| (m.step as f64, v))).collect()
    };
    panel(
        &areas[0],
        "loss",
        steps,
        &[
            ("train total", BLUE, pts(&|m| Some(m.loss as f64))),
            ("train prediction", CYAN, pts(&|m| Some(m.prediction as f64))),
            ("validation", RED, pts(&|m| m.eval.as_ref().map(|e| e.val_loss as f64))),
        ],
    )?;
    panel(
        &areas[1],
        "gradient norm (before clipping)",
        steps,
        &[("grad norm", MAGENTA, pts(&|m| Some(m.grad_norm as f64)))],
    )?;
    panel(
        &areas[2],
        "collapse diagnostics (validation, target encoder)",
        steps,
        &[
            ("effective rank", GREEN, pts(&|m| m.eval.as_ref().map(|e| e.effective_rank))),
            ("mean per-dim std x 10", BLACK, pts(&|m| m.eval.as_ref().map(|e| e.target_std as f64 * 10.0))),
        ],
    )?;
    root.present().map_err(plot_err)?;
    Ok(())
}
