//! `ecmp-plot SPEC.json...`: draws the benchmark harnesses' charts as SVG files.
//!
//! A spec is one JSON object (or an array of them):
//! `{"out": "a.svg", "title": "...", "x_label": "...", "y_label": "...", "kind": "bar",
//!   "categories": ["64 B", "512 B"], "series": [{"name": "ecmpfwd", "values": [1.0, 0.8]}]}`
//! for grouped bars (one group per category, one bar per series), or `"kind": "line"` with
//! `"series": [{"name": "...", "points": [[x, y], ...]}]` and optionally `"log_x": true`.
//! Either kind takes an optional `"log_y": true` (a log value axis: every value must then be
//! positive; bars rise from the axis' lower bound). Relative `out` paths are taken from the spec
//! file's directory. Values are drawn as given: the harness computes them (medians) and writes
//! the spec next to its results.
//!
//! Layout, for charts that are read as published (a README scales them to its column width):
//! the legend sits below the plot, never on it, in as many columns as fit the canvas width (the
//! canvas grows downwards by the rows it takes); bar categories are wrapped (at ", " first, then
//! at spaces) and shrunk until every label fits its group's width; a title too long for the
//! width is shrunk. Tick labels are human numbers: a log axis is labelled at 1-2-5 or decade
//! steps (`0.5`, `1`, `10k`, `1M`), a linear one with as many decimals as its tick step needs
//! (values from 10 000 up with k/M/G suffixes). Text widths are estimated (SVG has no font
//! metrics at draw time), generously, for DejaVu Sans/Arial-like sans-serif fonts.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    out: PathBuf,
    title: String,
    x_label: String,
    y_label: String,
    kind: Kind,
    #[serde(default)]
    categories: Vec<String>,
    series: Vec<Series>,
    #[serde(default)]
    log_x: bool,
    #[serde(default)]
    log_y: bool,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Bar,
    Line,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Series {
    name: String,
    #[serde(default)]
    values: Vec<f64>,
    #[serde(default)]
    points: Vec<(f64, f64)>,
}

/// Why a chart was not drawn.
#[derive(Debug, thiserror::Error)]
enum PlotError {
    /// A spec file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A spec file holds neither a spec nor an array of specs.
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A spec that cannot be drawn as it asks (named by its title).
    #[error("{title}: {what}")]
    Spec { title: String, what: String },
    /// plotters failed to lay out, draw or write the SVG.
    #[error("{}: drawing failed: {msg}", out.display())]
    Draw { out: PathBuf, msg: String },
}

type Result<T> = std::result::Result<T, PlotError>;

fn spec_err(spec: &Spec, what: &str) -> PlotError {
    PlotError::Spec {
        title: spec.title.clone(),
        what: what.to_owned(),
    }
}

/// Maps plotters' errors (generic over the backend) to `PlotError::Draw` for `out`.
fn draw_err<E: Display>(out: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        out: out.to_owned(),
        msg: e.to_string(),
    }
}

// Canvas: a fixed width (a README shows it scaled to its column; every chart of a set keeps
// the same scale that way) and a fixed height for title + plot + axes; the legend adds rows.
const WIDTH: u32 = 960;
const CHART_HEIGHT: u32 = 540;
const MARGIN: u32 = 14;
// Room right of the plot for the last x tick label, centred on the plot's right edge.
const MARGIN_RIGHT: u32 = 30;
// Font sizes in pixels as they end up in the SVG (see `font`).
const TITLE_FONT: f64 = 20.0;
const TICK_FONT: f64 = 14.0;
const DESC_FONT: f64 = 15.0;
const LEGEND_FONT: f64 = 14.0;
const CATEGORY_FONT_MAX: f64 = 14.0;
const CATEGORY_FONT_MIN: f64 = 10.0;
// Tick mark length; plotters puts tick labels twice that far from the axis.
const TICK: i32 = 6;
const Y_TICKS: usize = 8;
const X_TICKS: usize = 10;
const FONT: &str = "sans-serif";
const EM_PER_CHAR: f64 = 0.62;
// plotters' SVG backend writes a font of size s as font-size s / 1.24 (its em estimate), so a
// font asked for at this times px is drawn at px.
const PLOTTERS_FONT_SCALE: f64 = 1.24;

/// The sans-serif font that the SVG draws at `px` pixels.
fn font(px: f64) -> FontDesc<'static> {
    (FONT, px * PLOTTERS_FONT_SCALE).into_font()
}

/// Estimated width in pixels of `text` drawn at `size` pixels: 0.62 em per character, about
/// what digits (0.64 em) and lowercase letters take in DejaVu Sans (spaces take half that,
/// Arial is narrower), so the estimate errs on the side of more room.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * EM_PER_CHAR
}

/// The largest font size from `max` down to `min` (in 1 px steps) at which `text` fits `width`;
/// `min` when none does.
fn fit_font(text: &str, width: f64, max: f64, min: f64) -> f64 {
    let mut size = max;
    while size > min && text_width(text, size) > width {
        size -= 1.0;
    }
    size.max(min)
}

/// `v` rounded to `digits` significant digits.
fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// `v` with `decimals` decimals, trailing zeros (and a bare point) removed.
fn trimmed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    // -0.0 rounds to "-0"
    if s == "-0" { "0".to_owned() } else { s }
}

/// A human tick label: three significant digits at most, k/M/G from 1000 up
/// (1000 -> "1k", 2.5e6 -> "2.5M", 0.05 -> "0.05", 28.4 -> "28.4").
fn human(v: f64) -> String {
    let v = round_sig(v, 3);
    if v == 0.0 {
        return "0".to_owned();
    }
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    // three significant digits of the scaled value need this many decimals
    let decimals = (2 - scaled.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{}{suffix}", trimmed(scaled, decimals))
}

/// The fewest decimals (up to 6) that write every one of `ticks` exactly, so that all labels of
/// a linear axis share one precision (0.0, 0.2, ... 1.2 rather than 0, 0.2, ... 1.2 or 0.200).
fn linear_decimals(ticks: &[f64]) -> usize {
    (0..=6usize)
        .find(|&d| {
            let scale = 10f64.powi(d as i32);
            ticks.iter().all(|t| {
                let s = t * scale;
                (s - s.round()).abs() <= 1e-6 * s.abs().max(1.0)
            })
        })
        .unwrap_or(6)
}

fn within(v: f64, lo: f64, hi: f64) -> bool {
    v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9)
}

/// `m x 10^k` for every `k` covering `lo..hi` whose exponent is a multiple of `every`, and
/// every multiplier `m`, inside `lo..=hi`, ascending.
fn decade_multiples(lo: f64, hi: f64, mults: &[f64], every: i32) -> Vec<f64> {
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (k0..=k1)
        .filter(|k| k.rem_euclid(every) == 0)
        .flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)))
        .filter(|&v| within(v, lo, hi))
        .collect()
}

/// Labelled ticks of a log axis over `lo..hi` (both positive), at most `max` of them: 1-2-5
/// steps when they fit, else decades, else every second (third, ...) decade. A range holding
/// fewer than three 1-2-5 steps gets ticks at 1..9 x 10^k if that adds some, or else just its
/// ends when it holds fewer than two.
fn log_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if max == 0 {
        return Vec::new();
    }
    let fine = decade_multiples(lo, hi, &[1.0, 2.0, 5.0], 1);
    if fine.len() < 3 {
        let all = decade_multiples(lo, hi, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1);
        if all.len() > fine.len().max(1) && all.len() <= max {
            return all;
        }
    }
    if fine.len() < 2 {
        if max >= 2 {
            return vec![lo, hi];
        }
    } else if fine.len() <= max {
        return fine;
    }
    let mut every = 1;
    loop {
        let t = decade_multiples(lo, hi, &[1.0], every);
        if t.len() <= max {
            return t;
        }
        every += 1;
    }
}

/// A log axis' unlabelled grid: 1..9 x 10^k inside `lo..=hi`.
fn log_minor(lo: f64, hi: f64) -> Vec<f64> {
    decade_multiples(lo, hi, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1)
}

/// The largest 1-2-5 step (`{1, 2, 5} x 10^k`) not above `v` (positive).
fn nice_below(v: f64) -> f64 {
    let p = 10f64.powi(v.log10().floor() as i32);
    let m = [5.0, 2.0, 1.0]
        .into_iter()
        .find(|m| m * p <= v * (1.0 + 1e-9))
        .unwrap_or(1.0);
    m * p
}

/// The smallest 1-2-5 step not below `v` (positive).
fn nice_above(v: f64) -> f64 {
    let p = 10f64.powi(v.log10().floor() as i32);
    let m = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|m| m * p >= v * (1.0 - 1e-9))
        .unwrap_or(10.0);
    m * p
}

/// A log value axis for data in `min..=max` (positive): out to the 1-2-5 steps beyond 10%
/// headroom on either side, so that the end ticks are labelled and no marker sits on the frame.
fn log_value_range(min: f64, max: f64) -> Range<f64> {
    nice_below(min / 1.1)..nice_above(max * 1.1)
}

/// A log x axis for data in `min..=max` (positive): the data span plus 3% of it (in log space)
/// either side, so that the outermost points are not drawn on the frame; a single value gets a
/// factor of 2 either side.
fn log_span_range(min: f64, max: f64) -> Range<f64> {
    if max <= min {
        return min / 2.0..max * 2.0;
    }
    let f = (max / min).powf(0.03);
    min / f..max * f
}

/// A linear x axis for data in `min..=max`: 2% of the span either side.
fn linear_span_range(min: f64, max: f64) -> Range<f64> {
    let pad = if max > min {
        (max - min) * 0.02
    } else {
        min.abs().max(1.0) * 0.5
    };
    min - pad..max + pad
}

/// A linear value axis from 0 (or the data's negative minimum) to 8% above the maximum.
fn linear_value_range(min: f64, max: f64) -> Range<f64> {
    let lo = if min < 0.0 { min * 1.08 } else { 0.0 };
    let hi = if max > 0.0 { max * 1.08 } else { 0.0 };
    if hi > lo { lo..hi } else { lo..lo + 1.0 }
}

/// A chart axis: one concrete plotters coordinate for all three kinds, so that one drawing path
/// serves every combination of log and linear axes.
#[derive(Debug, Clone)]
enum Axis {
    /// Linear over the range, labelled at (at most) `ticks` steps.
    Linear { range: Range<f64>, ticks: usize },
    /// Logarithmic over the range (positive), labelled at (at most) `ticks` 1-2-5 or decade
    /// steps.
    Log { range: Range<f64>, ticks: usize },
    /// `n` bar groups, group `i` spanning `i..i + 1`; its ticks are the boundaries and its
    /// labels are drawn by `bar` (they are wrapped, which plotters' tick labels cannot be).
    Categories(usize),
}

impl Axis {
    fn ticks(&self) -> usize {
        match self {
            Axis::Linear { ticks, .. } | Axis::Log { ticks, .. } => *ticks,
            Axis::Categories(n) => n + 1,
        }
    }

    /// The labelled ticks, at most `max`.
    fn bold(&self, max: usize) -> Vec<f64> {
        match self {
            Axis::Linear { range, .. } => RangedCoordf64::from(range.clone()).key_points(max),
            Axis::Log { range, .. } => log_ticks(range.start, range.end, max),
            Axis::Categories(n) => (0..=*n).map(|i| i as f64).collect(),
        }
    }

    /// Labels of the axis' own ticks (`Axis::ticks` of them).
    fn labels(&self) -> Vec<String> {
        self.bold(self.ticks())
            .iter()
            .map(|v| self.label(*v))
            .collect()
    }

    fn label(&self, v: f64) -> String {
        match self {
            Axis::Linear { range, ticks } => {
                if range.start.abs().max(range.end.abs()) >= 1e4 {
                    human(v)
                } else {
                    let d = linear_decimals(&self.bold(*ticks));
                    format!("{v:.d$}")
                }
            }
            Axis::Log { .. } => human(v),
            Axis::Categories(_) => String::new(),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = match self {
            Axis::Linear { range, .. } => {
                return RangedCoordf64::from(range.clone()).map(value, limit);
            }
            Axis::Log { range, .. } => {
                (value.ln() - range.start.ln()) / (range.end.ln() - range.start.ln())
            }
            Axis::Categories(n) => value / *n as f64,
        };
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        let bold = self.bold(hint.bold_points());
        if !hint.weight().allow_light_points() {
            return bold;
        }
        // Light grid lines: a log axis gets 1..9 x 10^k (which is what makes it read as log);
        // a linear one none besides its labelled ticks, which keeps the plot quiet.
        match self {
            Axis::Log { range, .. } => {
                let minor = log_minor(range.start, range.end);
                if minor.len() <= hint.max_num_points() {
                    minor
                } else {
                    bold
                }
            }
            _ => bold,
        }
    }

    fn range(&self) -> Range<f64> {
        match self {
            Axis::Linear { range, .. } | Axis::Log { range, .. } => range.clone(),
            Axis::Categories(n) => 0.0..*n as f64,
        }
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// `text` broken into lines of at most `max_chars` characters where it can be: at ", " first
/// (the comma stays on its line), then at spaces. A word longer than `max_chars` keeps a line of
/// its own (the caller shrinks the font for it).
fn wrap_label(text: &str, max_chars: usize) -> Vec<String> {
    let len = |s: &str| s.chars().count();
    let mut pieces = Vec::new();
    for s in comma_segments(text) {
        if len(&s) <= max_chars {
            pieces.push(s);
        } else {
            pieces.extend(s.split_whitespace().map(str::to_owned));
        }
    }
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for p in pieces {
        if cur.is_empty() {
            cur = p;
        } else if len(&cur) + 1 + len(&p) <= max_chars {
            cur.push(' ');
            cur.push_str(&p);
        } else {
            lines.push(std::mem::replace(&mut cur, p));
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// `text` split after every ", " (the comma kept): "512 B, 1M flows" -> ["512 B,", "1M flows"].
fn comma_segments(text: &str) -> Vec<String> {
    let parts: Vec<&str> = text.split(", ").collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i < last {
                format!("{p},")
            } else {
                (*p).to_owned()
            }
        })
        .collect()
}

/// `text` with a line break at every ", ", each segment then wrapped as `wrap_label` does.
fn wrap_at_commas(text: &str, max_chars: usize) -> Vec<String> {
    comma_segments(text)
        .iter()
        .flat_map(|s| wrap_label(s, max_chars))
        .collect()
}

/// Category labels laid out for groups `slot` pixels wide: the font size and every label's
/// lines. The first fit wins of: at most 2 lines at sizes 14..11, at most 3 lines at 14..10;
/// failing both, size 10 wrapped as well as it goes. Once some label takes more than one line,
/// every label breaks at its commas if that takes no more lines than the longest already has,
/// so that a row of "size, flows" labels reads alike rather than half of them on one line.
fn fit_categories(cats: &[String], slot: f64) -> (f64, Vec<Vec<String>>) {
    // 90% of the slot, so that neighbours keep a gap
    let max_chars = |size: f64| ((slot * 0.9) / (size * EM_PER_CHAR)).floor().max(1.0) as usize;
    let layout = |size: f64, wrap: fn(&str, usize) -> Vec<String>| -> Vec<Vec<String>> {
        cats.iter().map(|c| wrap(c, max_chars(size))).collect()
    };
    let fits = |size: f64, lines: &[Vec<String>], max_lines: usize| {
        lines
            .iter()
            .all(|l| l.len() <= max_lines && l.iter().all(|s| text_width(s, size) <= slot * 0.9))
    };
    let uniform = |size: f64, lines: Vec<Vec<String>>| {
        let most = lines.iter().map(Vec::len).max().unwrap_or(1);
        if most > 1 {
            let commas = layout(size, wrap_at_commas);
            if fits(size, &commas, most) {
                return (size, commas);
            }
        }
        (size, lines)
    };
    for (max_lines, min_size) in [(2, 11.0), (3, CATEGORY_FONT_MIN)] {
        let mut size = CATEGORY_FONT_MAX;
        while size >= min_size {
            let lines = layout(size, wrap_label);
            if fits(size, &lines, max_lines) {
                return uniform(size, lines);
            }
            size -= 1.0;
        }
    }
    (CATEGORY_FONT_MIN, layout(CATEGORY_FONT_MIN, wrap_label))
}

/// Legend grid for `n` entries `item` pixels wide in `avail` pixels: (columns, rows), with as
/// many columns as fit and the rows balanced (7 entries, 5 fitting: 4 + 3, not 5 + 2).
fn legend_grid(n: usize, item: f64, avail: f64) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let fit = ((avail / item).floor() as usize).clamp(1, n);
    let rows = n.div_ceil(fit);
    (n.div_ceil(rows), rows)
}

const LEGEND_ROW: u32 = 26;
const LEGEND_SWATCH: i32 = 24;
// between one legend entry's text and the next column's swatch
const LEGEND_GAP: f64 = 28.0;

/// A legend below the plot: its width per entry, columns and the pixel height it needs.
struct Legend {
    item: f64,
    cols: usize,
    height: u32,
}

impl Legend {
    fn new(names: &[&str]) -> Self {
        let widest = names
            .iter()
            .map(|n| text_width(n, LEGEND_FONT))
            .fold(0.0, f64::max);
        // swatch, gap, text, gap to the next column
        let item = f64::from(LEGEND_SWATCH) + 8.0 + widest + LEGEND_GAP;
        let (cols, rows) = legend_grid(names.len(), item, f64::from(WIDTH - 2 * MARGIN));
        Legend {
            item,
            cols,
            height: rows as u32 * LEGEND_ROW + 14,
        }
    }

    fn draw(
        &self,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        names: &[&str],
        kind: &Kind,
        out: &Path,
    ) -> Result<()> {
        let used = self.item * self.cols as f64 - LEGEND_GAP;
        let x0 = ((f64::from(WIDTH) - used) / 2.0).max(f64::from(MARGIN));
        let style = TextStyle::from(font(LEGEND_FONT))
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (j, name) in names.iter().enumerate() {
            let (col, row) = (j % self.cols, j / self.cols);
            let x = (x0 + col as f64 * self.item).round() as i32;
            let y = 4 + (row as u32 * LEGEND_ROW + LEGEND_ROW / 2) as i32;
            let c = color(j);
            match kind {
                Kind::Bar => area
                    .draw(&Rectangle::new(
                        [(x + 3, y - 7), (x + LEGEND_SWATCH - 3, y + 7)],
                        c.filled(),
                    ))
                    .map_err(draw_err(out))?,
                Kind::Line => {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + LEGEND_SWATCH, y)],
                        c.stroke_width(2),
                    ))
                    .map_err(draw_err(out))?;
                    area.draw(&Circle::new((x + LEGEND_SWATCH / 2, y), 4, c.filled()))
                        .map_err(draw_err(out))?;
                }
            }
            area.draw_text(name, &style, (x + LEGEND_SWATCH + 8, y))
                .map_err(draw_err(out))?;
        }
        Ok(())
    }
}

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Width of the y label area: the widest tick label, its distance from the axis, and the
/// rotated axis description.
fn y_area(y: &Axis) -> u32 {
    let widest = y
        .labels()
        .iter()
        .map(|l| text_width(l, TICK_FONT))
        .fold(0.0, f64::max);
    (widest + f64::from(2 * TICK) + 10.0 + DESC_FONT + 6.0).ceil() as u32
}

/// The canvas split into the chart (title, plot, axes) and the legend below it.
struct Canvas<'a> {
    root: DrawingArea<SVGBackend<'a>, Shift>,
    chart: DrawingArea<SVGBackend<'a>, Shift>,
    legend: DrawingArea<SVGBackend<'a>, Shift>,
}

fn canvas<'a>(out: &'a Path, legend: &Legend) -> Result<Canvas<'a>> {
    let root = SVGBackend::new(out, (WIDTH, CHART_HEIGHT + legend.height)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(out))?;
    let (chart, legend) = root.split_vertically(CHART_HEIGHT);
    Ok(Canvas {
        root,
        chart,
        legend,
    })
}

/// A chart builder on `area` with the title (shrunk to fit) and the label areas sized.
fn builder<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    x_area: u32,
    y_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let title_font = fit_font(title, f64::from(WIDTH - 2 * MARGIN), TITLE_FONT, TICK_FONT);
    let mut b = ChartBuilder::on(area);
    b.caption(title, font(title_font))
        .margin_top(MARGIN)
        .margin_left(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .margin_bottom(4)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    b
}

fn value_axis(spec: &Spec, min: f64, max: f64) -> Result<Axis> {
    if spec.log_y {
        if min <= 0.0 {
            return Err(spec_err(
                spec,
                "log_y needs positive values (0 or less has no place on a log axis)",
            ));
        }
        Ok(Axis::Log {
            range: log_value_range(min, max),
            ticks: Y_TICKS + 2,
        })
    } else {
        Ok(Axis::Linear {
            range: linear_value_range(min, max),
            ticks: Y_TICKS,
        })
    }
}

fn bar(spec: &Spec, out: &Path) -> Result<()> {
    let n = spec.categories.len();
    if n == 0 || spec.series.iter().any(|s| s.values.len() != n) {
        return Err(spec_err(spec, "every series needs one value per category"));
    }
    let vals = || spec.series.iter().flat_map(|s| s.values.iter().copied());
    if vals().any(|v| !v.is_finite()) {
        return Err(spec_err(spec, "values must be finite"));
    }
    let (min, max) = vals().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let y = value_axis(spec, min, max)?;
    let ya = y_area(&y);
    let plot_w = f64::from(WIDTH - MARGIN - MARGIN_RIGHT - ya);
    let (cat_font, cat_lines) = fit_categories(&spec.categories, plot_w / n as f64);
    let line_h = (cat_font * 1.25).ceil() as u32;
    let nlines = cat_lines.iter().map(Vec::len).max().unwrap_or(1) as u32;
    // tick, gap, the category lines, gap, the axis description
    let xa = 2 * TICK as u32 + nlines * line_h + 12 + DESC_FONT as u32 + 6;

    let names: Vec<&str> = spec.series.iter().map(|s| s.name.as_str()).collect();
    let legend = Legend::new(&names);
    let cv = canvas(out, &legend)?;
    let base = y.range().start;
    let mut chart = builder(&cv.chart, &spec.title, xa, ya)
        .build_cartesian_2d(Axis::Categories(n), y.clone())
        .map_err(draw_err(out))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .set_all_tick_mark_size(TICK)
        .x_labels(n + 1)
        .y_labels(y.ticks())
        .label_style(font(TICK_FONT))
        .axis_desc_style(font(DESC_FONT))
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .draw()
        .map_err(draw_err(out))?;
    let k = spec.series.len() as f64;
    let width = 0.8 / k;
    for (j, s) in spec.series.iter().enumerate() {
        let c = color(j);
        chart
            .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, base), (x0 + width * 0.92, v)], c.filled())
            }))
            .map_err(draw_err(out))?;
    }
    // The category labels, centred under their groups, a line at a time.
    let style = TextStyle::from(font(cat_font))
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, lines) in cat_lines.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, base));
        for (l, text) in lines.iter().enumerate() {
            let ty = py + 2 * TICK + (l as u32 * line_h) as i32;
            cv.root
                .draw_text(text, &style, (px, ty))
                .map_err(draw_err(out))?;
        }
    }
    legend.draw(&cv.legend, &names, &Kind::Bar, out)?;
    cv.root.present().map_err(draw_err(out))
}

fn line(spec: &Spec, out: &Path) -> Result<()> {
    let pts = || spec.series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        return Err(spec_err(spec, "no points"));
    }
    if pts().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
        return Err(spec_err(spec, "points must be finite"));
    }
    let (xmin, xmax) = pts().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let (ymin, ymax) = pts().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(y), b.max(y)));
    let x = if spec.log_x {
        if xmin <= 0.0 {
            return Err(spec_err(spec, "log_x needs positive x"));
        }
        Axis::Log {
            range: log_span_range(xmin, xmax),
            ticks: X_TICKS,
        }
    } else {
        Axis::Linear {
            range: linear_span_range(xmin, xmax),
            ticks: X_TICKS,
        }
    };
    let y = value_axis(spec, ymin, ymax)?;
    let ya = y_area(&y);
    let xa = 2 * TICK as u32 + TICK_FONT as u32 + 14 + DESC_FONT as u32 + 6;

    let names: Vec<&str> = spec.series.iter().map(|s| s.name.as_str()).collect();
    let legend = Legend::new(&names);
    let cv = canvas(out, &legend)?;
    let mut chart = builder(&cv.chart, &spec.title, xa, ya)
        .build_cartesian_2d(x.clone(), y.clone())
        .map_err(draw_err(out))?;
    chart
        .configure_mesh()
        .set_all_tick_mark_size(TICK)
        .x_labels(x.ticks())
        .y_labels(y.ticks())
        .label_style(font(TICK_FONT))
        .axis_desc_style(font(DESC_FONT))
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .draw()
        .map_err(draw_err(out))?;
    for (j, s) in spec.series.iter().enumerate() {
        let c = color(j);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
            .map_err(draw_err(out))?;
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(draw_err(out))?;
    }
    legend.draw(&cv.legend, &names, &Kind::Line, out)?;
    cv.root.present().map_err(draw_err(out))
}

fn draw(path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse = |source| PlotError::Parse {
        path: path.to_owned(),
        source,
    };
    // Decided by the first character, so that a bad spec inside an array is reported as such
    // (not as "expected a spec, found an array").
    let specs: Vec<Spec> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(parse)?
    } else {
        vec![serde_json::from_str(&text).map_err(parse)?]
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut written = Vec::new();
    for spec in &specs {
        let out = dir.join(&spec.out);
        match spec.kind {
            Kind::Bar => bar(spec, &out)?,
            Kind::Line => line(spec, &out)?,
        }
        written.push(out);
    }
    Ok(written)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: ecmp-plot SPEC.json...");
        return ExitCode::FAILURE;
    }
    for a in args {
        match draw(Path::new(&a)) {
            Ok(outs) => {
                for out in outs {
                    println!("{}", out.display());
                }
            }
            Err(e) => {
                eprintln!("ecmp-plot: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_and_line_specs_render_svg() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("s.json");
        std::fs::write(
            &spec,
            r#"[{"out": "b.svg", "title": "Mpps", "x_label": "frame", "y_label": "Mpps",
                 "kind": "bar", "categories": ["66 B", "512 B"],
                 "series": [{"name": "ecmpfwd", "values": [1.05, 0.9]},
                            {"name": "kernel", "values": [0.8, 0.7]}]},
                {"out": "l.svg", "title": "flows", "x_label": "flows", "y_label": "ns",
                 "kind": "line", "log_x": true,
                 "series": [{"name": "rewrite", "points": [[1000, 37], [1000000, 82]]}]},
                {"out": "ll.svg", "title": "both", "x_label": "flows", "y_label": "Mpps",
                 "kind": "line", "log_x": true, "log_y": true,
                 "series": [{"name": "memory", "points": [[1000, 28.4], [10000000, 5.1]]},
                            {"name": "veth", "points": [[1000, 1.2], [10000000, 0.52]]}]},
                {"out": "bl.svg", "title": "log bars", "x_label": "", "y_label": "",
                 "kind": "bar", "log_y": true, "categories": ["a", "b"],
                 "series": [{"name": "s", "values": [3, 3000]}]}]"#,
        )
        .unwrap();
        let out = draw(&spec).unwrap();
        assert_eq!(out.len(), 4);
        for f in &out {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
        }
        let read = |i: usize| std::fs::read_to_string(&out[i]).unwrap();
        // names in the legend, categories under their groups, human tick labels
        // (plotters writes each text on a line of its own)
        let has = |svg: &str, text: &str| svg.lines().any(|l| l == text);
        assert!(has(&read(0), "ecmpfwd") && has(&read(0), "512 B"));
        assert!(has(&read(1), "1M") && !read(1).contains("1000000"));
        let ll = read(2);
        assert!(has(&ll, "10M") && has(&ll, "0.5") && has(&ll, "50"));
        // 2..5000 holds eleven 1-2-5 steps, more than the axis' ten: decades
        assert!(has(&read(3), "1k") && !has(&read(3), "5k"));
    }

    #[test]
    fn specs_that_cannot_be_drawn_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("s.json");
        for (text, why) in [
            (
                r#"{"out": "x.svg", "title": "t", "x_label": "", "y_label": "",
                "kind": "bar", "categories": ["a"], "series": [{"name": "s", "values": []}]}"#,
                "a series without its values",
            ),
            (
                r#"{"out": "x.svg", "title": "t", "x_label": "", "y_label": "", "log_y": true,
                "kind": "bar", "categories": ["a"], "series": [{"name": "s", "values": [0]}]}"#,
                "a zero on a log axis",
            ),
            (
                r#"{"out": "x.svg", "title": "t", "x_label": "", "y_label": "", "log_y": true,
                "kind": "line", "series": [{"name": "s", "points": [[1, -1]]}]}"#,
                "a negative y on a log axis",
            ),
            (
                r#"[{"out": "x.svg", "title": "t", "x_label": "", "y_label": "", "kind": "line",
                "series": [], "colour": "red"}]"#,
                "an unknown field",
            ),
        ] {
            std::fs::write(&spec, text).unwrap();
            assert!(draw(&spec).is_err(), "{why} is refused");
        }
        let e = draw(&spec).unwrap_err().to_string();
        assert!(e.contains("colour"), "the array's bad field is named: {e}");
    }

    #[test]
    fn human_labels() {
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (0.2 * 10f64.powi(0), "0.2"),
            (2.0 * 10f64.powi(-1), "0.2"),
            (0.05, "0.05"),
            (28.4, "28.4"),
            (100.0, "100"),
            (1000.0, "1k"),
            (1500.0, "1.5k"),
            (10_000.0, "10k"),
            (100_000.0, "100k"),
            (1_000_000.0, "1M"),
            (2_500_000.0, "2.5M"),
            (10_000_000.0, "10M"),
            (3e9, "3G"),
            (999_999.0, "1M"),
            (-2000.0, "-2k"),
        ];
        for (v, want) in cases {
            assert_eq!(human(v), want, "{v}");
        }
    }

    #[test]
    fn linear_labels_share_the_step_precision() {
        assert_eq!(linear_decimals(&[0.0, 0.2, 0.4, 1.2]), 1);
        assert_eq!(linear_decimals(&[0.0, 0.25, 0.5]), 2);
        assert_eq!(linear_decimals(&[0.0, 20.0, 40.0]), 0);
        assert_eq!(linear_decimals(&[]), 0);
        let y = Axis::Linear {
            range: 0.0..1.3,
            ticks: 8,
        };
        let labels = y.labels();
        assert!(labels.contains(&"0.0".to_owned()), "{labels:?}");
        assert!(labels.contains(&"1.2".to_owned()), "{labels:?}");
        let big = Axis::Linear {
            range: 0.0..65_000.0,
            ticks: 8,
        };
        assert!(
            big.labels().contains(&"20k".to_owned()),
            "{:?}",
            big.labels()
        );
    }

    #[test]
    fn log_ticks_pick_1_2_5_then_decades() {
        let labels = |lo, hi, max| -> Vec<String> {
            log_ticks(lo, hi, max).into_iter().map(human).collect()
        };
        assert_eq!(
            labels(0.2, 50.0, 10),
            ["0.2", "0.5", "1", "2", "5", "10", "20", "50"]
        );
        assert_eq!(labels(800.0, 12e6, 10), ["1k", "10k", "100k", "1M", "10M"]);
        assert_eq!(labels(1.0, 1e9, 5), ["1", "100", "10k", "1M", "100M"]);
        // narrower than two 1-2-5 steps: 1..9 steps, or the ends
        assert_eq!(labels(2.5, 4.5, 10), ["3", "4"]);
        assert_eq!(labels(2.0, 5.0, 10), ["2", "3", "4", "5"]);
        assert_eq!(labels(2.0, 5.0, 3), ["2", "5"]);
        assert_eq!(log_ticks(2.1, 2.9, 10), [2.1, 2.9]);
        assert!(log_ticks(1.0, 10.0, 0).is_empty());
        // 0.5..0.9, then 1, 2, 3
        assert_eq!(log_minor(0.5, 3.0).len(), 5 + 3);
    }

    #[test]
    fn log_ranges_have_headroom_and_nice_ends() {
        let r = log_value_range(0.52, 28.4);
        assert!(
            (r.start - 0.2).abs() < 1e-12 && (r.end - 50.0).abs() < 1e-9,
            "{r:?}"
        );
        let r = log_value_range(1.0, 10.0);
        assert!(
            (r.start - 0.5).abs() < 1e-12 && (r.end - 20.0).abs() < 1e-9,
            "{r:?}"
        );
        assert!((nice_below(100.0) - 100.0).abs() < 1e-9);
        assert!((nice_above(100.0) - 100.0).abs() < 1e-9);
        assert!((nice_above(6.0) - 10.0).abs() < 1e-9);
        let r = log_span_range(1000.0, 1e7);
        assert!(r.start < 1000.0 && r.start > 700.0 && r.end > 1e7 && r.end < 1.4e7);
        let r = log_span_range(5.0, 5.0);
        assert_eq!(r, 2.5..10.0);
        assert_eq!(linear_value_range(0.3, 1.0), 0.0..1.08);
        assert_eq!(linear_value_range(0.0, 0.0), 0.0..1.0);
    }

    #[test]
    fn axis_maps_log_and_categories() {
        let log = Axis::Log {
            range: 1.0..100.0,
            ticks: 10,
        };
        assert_eq!(log.map(&1.0, (0, 200)), 0);
        assert_eq!(log.map(&10.0, (0, 200)), 100);
        assert_eq!(log.map(&100.0, (0, 200)), 200);
        let cats = Axis::Categories(4);
        assert_eq!(cats.map(&2.0, (10, 410)), 210);
        assert_eq!(cats.bold(99), [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(cats.labels().iter().all(String::is_empty));
    }

    #[test]
    fn labels_wrap_at_commas_then_spaces() {
        assert_eq!(wrap_label("66 B, 1k flows", 15), ["66 B, 1k flows"]);
        assert_eq!(
            wrap_label("512 B, 100k flows", 15),
            ["512 B,", "100k flows"]
        );
        assert_eq!(
            wrap_label("fail: collateral moved", 12),
            ["fail:", "collateral", "moved"]
        );
        assert_eq!(wrap_label("a b c", 3), ["a b", "c"]);
        assert_eq!(wrap_label("overlong", 3), ["overlong"]);
        assert_eq!(wrap_label("", 3), [""]);
        assert_eq!(wrap_at_commas("66 B, 1k flows", 15), ["66 B,", "1k flows"]);
        assert_eq!(
            wrap_at_commas("a, fail: collateral moved", 12),
            ["a,", "fail:", "collateral", "moved"]
        );
    }

    #[test]
    fn categories_fit_their_slots() {
        let cats: Vec<String> = ["66 B, 1k flows", "512 B, 100k flows", "512 B, 1M flows"]
            .map(str::to_owned)
            .to_vec();
        // wide slots: one line at the largest size
        let (size, lines) = fit_categories(&cats, 400.0);
        assert_eq!(size, CATEGORY_FONT_MAX);
        assert!(lines.iter().all(|l| l.len() == 1));
        // one label too long for a line: all break at their commas
        let (size, lines) = fit_categories(&cats, 140.0);
        assert_eq!(size, CATEGORY_FONT_MAX);
        assert_eq!(lines[0], ["66 B,", "1k flows"]);
        assert_eq!(lines[1], ["512 B,", "100k flows"]);
        // narrow slots: wrapped, and every line fits
        for slot in [60.0, 90.0, 140.0] {
            let (size, lines) = fit_categories(&cats, slot);
            for l in lines.iter().flatten() {
                assert!(text_width(l, size) <= slot * 0.9, "{l} at {size} in {slot}");
            }
        }
    }

    #[test]
    fn legend_rows_are_balanced() {
        assert_eq!(legend_grid(7, 100.0, 500.0), (4, 2));
        assert_eq!(legend_grid(7, 100.0, 900.0), (7, 1));
        assert_eq!(legend_grid(2, 100.0, 900.0), (2, 1));
        assert_eq!(legend_grid(3, 1000.0, 900.0), (1, 3));
        assert_eq!(legend_grid(0, 100.0, 900.0), (0, 0));
        assert_eq!(fit_font("abcd", 1000.0, 22.0, 14.0), 22.0);
        assert_eq!(fit_font(&"x".repeat(100), 600.0, 22.0, 14.0), 14.0);
        // 50 x 0.62 em: 620 px at 20, 589 at 19
        assert_eq!(fit_font(&"x".repeat(50), 600.0, 22.0, 14.0), 19.0);
    }
}
