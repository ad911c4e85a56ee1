//! Renderings of a [`Board`]: a Markdown table, and an HTML page with inline SVG charts.

use std::fmt::Write as _;

use super::{Board, Cell, Column, Row};

impl Board {
    /// A GitHub-flavoured Markdown table (`0.812 [0.750, 0.870] n=120` per cell, `—` where
    /// a model has no result; a seed group's cell reads `0.812 ± 0.031 (3 seeds) [0.750, 0.870]
    /// n=120`; the kind column names a learned model's pretraining families,
    /// [`Row::kind_label`]), then a list of the suites with their content hashes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let headers: Vec<String> = ["model", "kind", "suite"]
            .into_iter()
            .map(String::from)
            .chain(self.columns.iter().map(Column::header))
            .map(|h| md_escape(&h))
            .collect();
        let _ = writeln!(out, "| {} |", headers.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
        for r in &self.rows {
            let mut cells = vec![md_escape(&r.model), md_escape(&r.kind_label()), md_escape(&r.suite_label())];
            cells.extend(self.columns.iter().map(|c| r.cells.get(&c.key()).map_or_else(|| "—".into(), format_cell)));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
        for (name, hash) in self.suites() {
            let _ = writeln!(out, "- suite `{}`: content hash `{hash}`", md_escape(&name));
        }
        out
    }

    /// One self-contained HTML page (no external CSS, scripts, fonts or images): the table,
    /// then per column an inline SVG bar chart, one bar per model with its 95% interval and
    /// the chance level dashed where defined.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>physworld leaderboard</title>\n<style>\n\
             body { font-family: sans-serif; margin: 2em; color: #222; }\n\
             table { border-collapse: collapse; margin-bottom: 1em; }\n\
             th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }\n\
             th { background: #f3f3f3; }\n\
             td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }\n\
             .ci { color: #666; font-size: 0.85em; }\n\
             code { font-size: 0.9em; }\n\
             figure { margin: 1.5em 0; }\n\
             figcaption { font-weight: bold; margin-bottom: 0.3em; }\n\
             </style>\n</head>\n<body>\n<h1>physworld leaderboard</h1>\n<table>\n<thead><tr>",
        );
        for h in ["model", "kind", "suite"].into_iter().map(String::from).chain(self.columns.iter().map(Column::header))
        {
            let _ = write!(out, "<th>{}</th>", esc(&h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            let (model, kind, suite) = (esc(&r.model), esc(&r.kind_label()), esc(&r.suite_label()));
            let _ = write!(out, "<tr><td>{model}</td><td>{kind}</td><td>{suite}</td>");
            for c in &self.columns {
                match r.cells.get(&c.key()) {
                    Some(x) => {
                        let _ = write!(
                            out,
                            "<td class=\"num\">{:.3} <span class=\"ci\">{}</span></td>",
                            x.value,
                            esc(&cell_detail(x))
                        );
                    }
                    None => out.push_str("<td>—</td>"),
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        for (name, hash) in self.suites() {
            let _ = writeln!(out, "<p>Suite <code>{}</code>: content hash <code>{}</code></p>", esc(&name), esc(&hash));
        }
        for c in &self.columns {
            let _ = write!(out, "<figure>\n<figcaption>{}</figcaption>\n", esc(&c.header()));
            out.push_str(&self.chart(c));
            out.push_str("</figure>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    /// Horizontal bar chart of one column, as inline SVG.
    fn chart(&self, c: &Column) -> String {
        const W: f64 = 720.0;
        const LABEL: f64 = 230.0;
        const RIGHT: f64 = 70.0;
        const BAR: f64 = 22.0;
        const TOP: f64 = 10.0;
        const AXIS: f64 = 30.0;
        let key = c.key();
        let bars: Vec<(&Row, &Cell)> = self.rows.iter().filter_map(|r| r.cells.get(&key).map(|x| (r, x))).collect();
        let finite = bars.iter().flat_map(|(_, x)| [x.value, x.ci[0], x.ci[1]]).chain(c.chance).chain([0.0]);
        let (lo, hi, step) = nice_range(finite.filter(|v| v.is_finite()));
        let plot = W - LABEL - RIGHT;
        let x = |v: f64| LABEL + (v - lo) / (hi - lo) * plot;
        let h = TOP + BAR * bars.len() as f64 + AXIS;
        let bottom = TOP + BAR * bars.len() as f64;
        let mut s = format!(
            "<svg width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" role=\"img\" font-family=\"sans-serif\" \
             font-size=\"12\">\n<title>{}</title>\n",
            esc(&c.header())
        );
        // Axis and ticks.
        let _ = writeln!(
            s,
            "<line x1=\"{LABEL}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\" stroke=\"#444\"/>",
            W - RIGHT
        );
        let ticks = ((hi - lo) / step).round() as usize;
        for i in 0..=ticks {
            let v = lo + step * i as f64;
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#e4e4e4\"/>\
                 <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#444\">{3}</text>",
                x(v),
                bottom + 4.0,
                bottom + 18.0,
                tick_label(v, step)
            );
        }
        for (i, (r, cell)) in bars.iter().enumerate() {
            let y = TOP + BAR * i as f64;
            let mid = y + BAR / 2.0;
            let label: String = if r.model.chars().count() > 32 {
                r.model.chars().take(31).chain(['…']).collect()
            } else {
                r.model.clone()
            };
            let _ = writeln!(
                s,
                "<g><title>{} ({}): {:.3} {}</title>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                esc(&r.model),
                esc(&r.suite_label()),
                cell.value,
                esc(&cell_detail(cell)),
                LABEL - 6.0,
                mid,
                esc(&label)
            );
            if cell.value.is_finite() {
                let (a, b) = (x(0.0_f64.clamp(lo, hi)), x(cell.value));
                let _ = writeln!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4c78a8\"/>\
                     <text x=\"{:.1}\" y=\"{mid:.1}\" dominant-baseline=\"middle\" fill=\"#222\">{:.3}</text>",
                    a.min(b),
                    y + 4.0,
                    (b - a).abs(),
                    BAR - 8.0,
                    x(cell.value.max(cell.ci[1])) + 5.0,
                    cell.value
                );
            }
            if cell.ci.iter().all(|v| v.is_finite()) {
                let (a, b) = (x(cell.ci[0]), x(cell.ci[1]));
                let _ = writeln!(
                    s,
                    "<path d=\"M{a:.1} {0:.1}V{1:.1}M{a:.1} {mid:.1}H{b:.1}M{b:.1} {0:.1}V{1:.1}\" \
                     stroke=\"#222\" stroke-width=\"1.5\" fill=\"none\"/>",
                    mid - 5.0,
                    mid + 5.0
                );
            }
            s.push_str("</g>\n");
        }
        if let Some(ch) = c.chance.filter(|v| v.is_finite()) {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#d62728\" \
                 stroke-width=\"1.5\" stroke-dasharray=\"5 4\"><title>chance {ch:.3}</title></line>",
                x(ch)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// `0.812 [0.750, 0.870] n=120`, or for a seed group `0.812 ± 0.031 (3 seeds) [0.750, 0.870] n=120`
/// (`(4 folds)` for a fold group).
fn format_cell(x: &Cell) -> String {
    format!("{:.3} {}", x.value, cell_detail(x))
}

/// A cell after its value: `[0.750, 0.870] n=120`, after `± 0.031 (3 seeds) ` for a seed
/// group, ` invalid=3` where answers were invalid, and ` norm=0.81` on a planning column
/// with random and oracle rows ([`Cell::normalised`]).
fn cell_detail(x: &Cell) -> String {
    let spread = match x.seed_std {
        Some(sd) => format!("± {sd:.3} ({} {}) ", x.seeds, if x.folds { "folds" } else { "seeds" }),
        None => String::new(),
    };
    let invalid = if x.invalid > 0 { format!(" invalid={}", x.invalid) } else { String::new() };
    let norm = x.normalised.map_or_else(String::new, |v| format!(" norm={v:.2}"));
    format!("{spread}[{:.3}, {:.3}] n={}{invalid}{norm}", x.ci[0], x.ci[1], x.n)
}

/// Text safe inside a Markdown table cell (GitHub would take `<x>` for an HTML tag).
pub(super) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '|' | '<' | '>' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text safe inside HTML (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An axis range on round numbers covering `values`: `(lo, hi, tick step)`.
fn nice_range(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, 0.25);
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    lo = (lo / step).floor() * step;
    hi = (hi / step).ceil() * step;
    (lo, hi, step)
}

/// A tick value with as many decimals as its step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (0..6).find(|d| {
        let x = step * 10f64.powi(*d);
        (x - x.round()).abs() < 1e-6 * x.max(1.0)
    });
    format!("{:.*}", decimals.unwrap_or(6) as usize, if v.abs() < step * 1e-9 { 0.0 } else { v })
}
