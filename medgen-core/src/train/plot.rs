//! The run's curves as an SVG file: training and validation loss over the steps, and the
//! validation ROUGE-L, because people read curves, not columns.

use std::fmt::Write;
use std::path::Path;

use super::LogEntry;
use crate::error::{MedgenError, Result};

const W: f64 = 640.0;
const H: f64 = 240.0;
const PAD: f64 = 48.0;

/// One panel: the series (label, colour, points) on shared axes, its top at `top`.
fn panel(svg: &mut String, top: f64, title: &str, series: &[(&str, &str, Vec<(f64, f64)>)], max_step: f64) {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
    let _ = write!(svg, r#"<text x="{PAD}" y="{}" font-size="14">{title}</text>"#, top + 16.0);
    if points.is_empty() {
        return;
    }
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (x0, y0, pw, ph) = (PAD, top + 28.0, W - 2.0 * PAD, H - 60.0);
    let x = |s: f64| x0 + pw * s / max_step.max(1.0);
    let y = |v: f64| y0 + ph - ph * (v - lo) / span;
    let _ = write!(svg, r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##);
    let _ = write!(svg, r#"<text x="4" y="{}" font-size="11">{hi:.3}</text><text x="4" y="{}" font-size="11">{lo:.3}</text>"#, y0 + 10.0, y0 + ph);
    let _ = write!(svg, r#"<text x="{}" y="{}" font-size="11" text-anchor="end">step {max_step}</text>"#, x0 + pw, y0 + ph + 14.0);
    for (i, (label, colour, pts)) in series.iter().enumerate() {
        let line: Vec<String> = pts.iter().map(|&(s, v)| format!("{:.1},{:.1}", x(s), y(v))).collect();
        let _ = write!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, line.join(" "));
        for &(s, v) in pts.iter().filter(|_| pts.len() < 60) {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#, x(s), y(v));
        }
        let _ = write!(svg, r#"<text x="{}" y="{}" font-size="12" fill="{colour}">{label}</text>"#, x0 + pw - 150.0 + 75.0 * i as f64, top + 16.0);
    }
}

/// Writes `history`'s curves to `path` as SVG.
pub fn write_svg(history: &[LogEntry], path: &Path) -> Result<()> {
    let pick = |f: fn(&LogEntry) -> Option<f64>| -> Vec<(f64, f64)> { history.iter().filter_map(|e| f(e).map(|v| (e.step as f64, v))).collect() };
    let max_step = history.iter().map(|e| e.step).max().unwrap_or(1) as f64;
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif">"#, 2.0 * H);
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    panel(&mut svg, 0.0, "Loss", &[("train", "#1f77b4", pick(|e| e.loss)), ("validation", "#d62728", pick(|e| e.eval_loss))], max_step);
    panel(&mut svg, H, "Validation ROUGE-L", &[("rougeL", "#2ca02c", pick(|e| e.eval_rouge_l))], max_step);
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).map_err(|e| MedgenError::io(path, e))
}
