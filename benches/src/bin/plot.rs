//! `ecmp-plot SPEC.json...`: draws the benchmark harnesses' charts as SVG files.
//!
//! A spec is one JSON object (or an array of them):
//! `{"out": "a.svg", "title": "...", "x_label": "...", "y_label": "...", "kind": "bar",
//!   "categories": ["64 B", "512 B"], "series": [{"name": "ecmpfwd", "values": [1.0, 0.8]}]}`
//! for grouped bars (one group per category, one bar per series), or `"kind": "line"` with
//! `"series": [{"name": "...", "points": [[x, y], ...]}]` and optionally `"log_x": true`.
//! Relative `out` paths are taken from the spec file's directory. Values are drawn as given:
//! the harness computes them (medians) and writes the spec next to its results.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
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

type Result<T> = std::result::Result<T, String>;

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

fn top(max: f64) -> f64 {
    if max > 0.0 { max * 1.15 } else { 1.0 }
}

fn bar(spec: &Spec, out: &Path) -> Result<()> {
    let n = spec.categories.len();
    if n == 0 || spec.series.iter().any(|s| s.values.len() != n) {
        return Err(format!(
            "{}: every series needs one value per category",
            spec.title
        ));
    }
    let max = spec
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let root = SVGBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&spec.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..top(max))
        .map_err(|e| e.to_string())?;
    let cats = spec.categories.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            // Only the group centres carry a label.
            let i = x.floor();
            if (x - i - 0.5).abs() < 1e-6 {
                cats.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .draw()
        .map_err(|e| e.to_string())?;
    let k = spec.series.len() as f64;
    let width = 0.8 / k;
    for (j, s) in spec.series.iter().enumerate() {
        let c = color(j);
        chart
            .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], c.filled())
            }))
            .map_err(|e| e.to_string())?
            .label(&s.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn line(spec: &Spec, out: &Path) -> Result<()> {
    let pts = || spec.series.iter().flat_map(|s| s.points.iter().copied());
    if pts().next().is_none() {
        return Err(format!("{}: no points", spec.title));
    }
    let (xmin, xmax) = pts().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(x), b.max(x)));
    let ymax = pts().fold(0.0, |m, (_, y)| f64::max(m, y));
    let root = SVGBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&spec.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(&spec.x_label)
                .y_desc(&spec.y_label)
                .draw()
                .map_err(|e| e.to_string())?;
            for (j, s) in spec.series.iter().enumerate() {
                let c = color(j);
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(&s.name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c));
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if spec.log_x {
        if xmin <= 0.0 {
            return Err(format!("{}: log_x needs positive x", spec.title));
        }
        finish!(
            builder
                .build_cartesian_2d((xmin..xmax * 1.1).log_scale(), 0f64..top(ymax))
                .map_err(|e| e.to_string())?
        );
    } else {
        finish!(
            builder
                .build_cartesian_2d(xmin..xmax, 0f64..top(ymax))
                .map_err(|e| e.to_string())?
        );
    }
    root.present().map_err(|e| e.to_string())
}

fn draw(path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let specs: Vec<Spec> = match serde_json::from_str::<Vec<Spec>>(&text) {
        Ok(v) => v,
        Err(_) => {
            vec![serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?]
        }
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

fn main() -> std::result::Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err("usage: ecmp-plot SPEC.json...".to_owned());
    }
    for a in args {
        for out in draw(Path::new(&a))? {
            println!("{}", out.display());
        }
    }
    Ok(())
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
                 "series": [{"name": "rewrite", "points": [[1000, 37], [1000000, 82]]}]}]"#,
        )
        .unwrap();
        let out = draw(&spec).unwrap();
        assert_eq!(out.len(), 2);
        for f in out {
            let svg = std::fs::read_to_string(&f).unwrap();
            assert!(svg.starts_with("<svg"), "{}", f.display());
            assert!(svg.contains("ecmpfwd") || svg.contains("rewrite"));
        }
        std::fs::write(
            &spec,
            r#"{"out": "x.svg", "title": "t", "x_label": "", "y_label": "",
            "kind": "bar", "categories": ["a"], "series": [{"name": "s", "values": []}]}"#,
        )
        .unwrap();
        assert!(
            draw(&spec).is_err(),
            "a series without its values is refused"
        );
    }
}
