//! The comparison as a picture, plain SVG with no dependency: claims/s per target
//! (median bar, min..max whisker), p99 per target, and yunquan's latency against
//! offered load.

use super::report::{
    CompareReport, P99_AT_HALF_PEAK_GOAL_MS, REFERENCE_TARGET, SWEEP_BASELINE_TARGET,
};
use std::fmt::Write as _;

/// Width of the picture, in px.
const WIDTH_PX: f64 = 960.0;
/// Left margin of the bar charts (target names), in px.
const LABEL_PX: f64 = 190.0;
/// Right margin (value labels), in px.
const RIGHT_PX: f64 = 150.0;
/// Height of one bar, in px.
const BAR_PX: f64 = 26.0;
/// Height of the curve's plot area, in px.
const CURVE_PX: f64 = 260.0;

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1_000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar of a chart.
struct Bar {
    /// Label left of the bar.
    name: String,
    /// Length.
    value: f64,
    /// Min..max whisker, if any.
    whisker: Option<(f64, f64)>,
    /// Fill colour.
    color: &'static str,
}

/// A latency series of the curve: name, colour, which percentile.
type Series = (
    &'static str,
    &'static str,
    fn(&super::driver::LatencyMs) -> f64,
);

/// One horizontal bar chart; returns the height it used.
fn bars(out: &mut String, top: f64, title: &str, items: &[Bar], unit: &str) -> f64 {
    let plot_w = WIDTH_PX - LABEL_PX - RIGHT_PX;
    let max = nice_max(
        items
            .iter()
            .map(|b| b.whisker.map_or(b.value, |(_, hi)| hi.max(b.value)))
            .fold(0.0, f64::max),
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="{}" font-size="17" font-weight="bold">{}</text>"#,
        top + 18.0,
        esc(title)
    );
    let y0 = top + 34.0;
    for (i, bar) in items.iter().enumerate() {
        let (name, v, whisker, color) = (&bar.name, &bar.value, &bar.whisker, bar.color);
        let y = y0 + i as f64 * (BAR_PX + 8.0);
        let w = (v / max * plot_w).max(1.0);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="13" text-anchor="end">{}</text>"#,
            LABEL_PX - 8.0,
            y + BAR_PX * 0.68,
            esc(name)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{LABEL_PX}" y="{y}" width="{w:.1}" height="{BAR_PX}" fill="{color}"/>"#
        );
        if let Some((lo, hi)) = whisker {
            let (x1, x2) = (LABEL_PX + lo / max * plot_w, LABEL_PX + hi / max * plot_w);
            let ym = y + BAR_PX / 2.0;
            let _ = writeln!(
                out,
                r##"<path d="M{x1:.1},{ym} H{x2:.1} M{x1:.1},{} V{} M{x2:.1},{} V{}" stroke="#222" stroke-width="1.5" fill="none"/>"##,
                ym - 6.0,
                ym + 6.0,
                ym - 6.0,
                ym + 6.0
            );
        }
        let label_x = LABEL_PX + whisker.map_or(w, |(_, hi)| (hi / max * plot_w).max(w)) + 8.0;
        let _ = writeln!(
            out,
            r#"<text x="{label_x:.1}" y="{}" font-size="13">{} {unit}</text>"#,
            y + BAR_PX * 0.68,
            fmt_num(*v)
        );
    }
    let axis_y = y0 + items.len() as f64 * (BAR_PX + 8.0);
    let _ = writeln!(
        out,
        r##"<line x1="{LABEL_PX}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#888"/>"##,
        LABEL_PX + plot_w
    );
    for k in 0..=4 {
        let x = LABEL_PX + plot_w * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r##"<text x="{x:.1}" y="{}" font-size="11" fill="#555" text-anchor="middle">{}</text>"##,
            axis_y + 14.0,
            fmt_num(max * f64::from(k) / 4.0)
        );
    }
    axis_y + 30.0 - top
}

/// The latency curve of the reference target; returns the height it used.
fn curve(out: &mut String, top: f64, r: &CompareReport) -> f64 {
    let pts: Vec<_> = r
        .sweep
        .iter()
        .filter(|p| p.target == REFERENCE_TARGET)
        .collect();
    let _ = writeln!(
        out,
        r#"<text x="20" y="{}" font-size="17" font-weight="bold">{}</text>"#,
        top + 18.0,
        esc("yunquan-http latency vs offered load (paced; from intended send time)")
    );
    if pts.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="40" y="{}" font-size="13">not measured</text>"#,
            top + 50.0
        );
        return 70.0;
    }
    let (x0, y0, w, h) = (80.0, top + 40.0, WIDTH_PX - 80.0 - RIGHT_PX, CURVE_PX);
    let xmax = nice_max(pts.iter().map(|p| p.offered_per_s).fold(0.0, f64::max));
    // Log scale: p99 spans from well under a millisecond to many at saturation.
    let ymax_ms = nice_max(
        pts.iter()
            .map(|p| p.latency_ms.p99)
            .fold(P99_AT_HALF_PEAK_GOAL_MS * 2.0, f64::max),
    );
    let ymin_ms = 0.1f64;
    let ys = |v: f64| {
        let v = v.clamp(ymin_ms, ymax_ms);
        y0 + h - (v.log10() - ymin_ms.log10()) / (ymax_ms.log10() - ymin_ms.log10()) * h
    };
    let xs = |v: f64| x0 + v / xmax * w;
    let _ = writeln!(
        out,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##
    );
    let mut tick = ymin_ms;
    while tick <= ymax_ms * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let v = tick * m;
            if v > ymax_ms * 1.0001 {
                break;
            }
            let y = ys(v);
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" font-size="11" fill="#555" text-anchor="end">{}</text>"##,
                x0 + w,
                x0 - 6.0,
                y + 4.0,
                fmt_num(v)
            );
        }
        tick *= 10.0;
    }
    for k in 0..=5 {
        let v = xmax * f64::from(k) / 5.0;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" font-size="11" fill="#555" text-anchor="middle">{}</text>"##,
            xs(v),
            y0 + h + 16.0,
            fmt_num(v)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">offered claims/s</text><text x="22" y="{}" font-size="12" transform="rotate(-90 22 {})" text-anchor="middle">latency, ms (log)</text>"#,
        x0 + w / 2.0,
        y0 + h + 34.0,
        y0 + h / 2.0,
        y0 + h / 2.0
    );
    let goal_y = ys(P99_AT_HALF_PEAK_GOAL_MS);
    let _ = writeln!(
        out,
        r##"<line x1="{x0}" y1="{goal_y:.1}" x2="{}" y2="{goal_y:.1}" stroke="#c0392b" stroke-dasharray="6,4"/><text x="{}" y="{:.1}" font-size="12" fill="#c0392b">p99 goal {P99_AT_HALF_PEAK_GOAL_MS} ms</text>"##,
        x0 + w,
        x0 + w + 6.0,
        goal_y + 4.0
    );
    let series: [Series; 3] = [
        ("p50", "#2e86c1", |l| l.p50),
        ("p99", "#d35400", |l| l.p99),
        ("p999", "#7d3c98", |l| l.p999),
    ];
    for (k, (name, color, get)) in series.iter().enumerate() {
        let path = line_path(
            pts.iter()
                .map(|p| (xs(p.offered_per_s), ys(get(&p.latency_ms)))),
        );
        let _ = writeln!(
            out,
            r#"<path d="{}" stroke="{color}" stroke-width="2" fill="none"/>"#,
            path.join(" ")
        );
        for p in &pts {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                xs(p.offered_per_s),
                ys(get(&p.latency_ms))
            );
        }
        let ly = y0 + 14.0 + k as f64 * 18.0;
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}" font-size="12">{name}</text>"#,
            x0 + w + 6.0,
            x0 + w + 26.0,
            x0 + w + 30.0,
            ly + 4.0
        );
    }
    // The baseline's p99 at the same offered rates: what the machine and the load
    // generator add by themselves.
    let base = line_path(
        r.sweep
            .iter()
            .filter(|p| p.target == SWEEP_BASELINE_TARGET)
            .map(|p| (xs(p.offered_per_s), ys(p.latency_ms.p99))),
    );
    if !base.is_empty() {
        let ly = y0 + 14.0 + series.len() as f64 * 18.0;
        let _ = writeln!(
            out,
            r##"<path d="{}" stroke="#7f8c8d" stroke-width="2" stroke-dasharray="4,3" fill="none"/><line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="#7f8c8d" stroke-width="2" stroke-dasharray="4,3"/><text x="{}" y="{}" font-size="12">{} p99</text>"##,
            base.join(" "),
            x0 + w + 6.0,
            x0 + w + 26.0,
            x0 + w + 30.0,
            ly + 4.0,
            esc(SWEEP_BASELINE_TARGET)
        );
    }
    h + 80.0
}

/// The pieces of an SVG path through `points`, in order.
fn line_path(points: impl Iterator<Item = (f64, f64)>) -> Vec<String> {
    points
        .enumerate()
        .map(|(i, (x, y))| format!("{}{x:.1},{y:.1}", if i == 0 { "M" } else { "L" }))
        .collect()
}

/// The whole picture.
pub fn render(r: &CompareReport) -> String {
    let color = |durable: bool, name: &str| {
        if name == REFERENCE_TARGET || name.starts_with("yunquan") {
            "#1e8449"
        } else if durable {
            "#5d6d7e"
        } else {
            "#d4ac0d"
        }
    };
    let throughput: Vec<Bar> = r
        .rows
        .iter()
        .map(|row| Bar {
            name: format!(
                "{}{}",
                row.target.name,
                if row.correct { "" } else { " (INCORRECT)" }
            ),
            value: row.claims_per_s.median,
            whisker: Some((row.claims_per_s.min, row.claims_per_s.max)),
            color: color(row.target.durable, &row.target.name),
        })
        .collect();
    let p99: Vec<Bar> = r
        .rows
        .iter()
        .map(|row| Bar {
            name: row.target.name.clone(),
            value: row.latency_ms.p99,
            whisker: None,
            color: color(row.target.durable, &row.target.name),
        })
        .collect();
    let mut body = String::new();
    let mut y = 70.0;
    y += bars(
        &mut body,
        y,
        &format!(
            "Claims/s, median of {} runs (whisker: min..max), {} clients, closed loop",
            r.reps, r.clients
        ),
        &throughput,
        "/s",
    );
    y += bars(
        &mut body,
        y,
        "p99 latency at peak (closed loop), ms",
        &p99,
        "ms",
    );
    y += curve(&mut body, y, r);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{:.0}" viewBox="0 0 {WIDTH_PX} {:.0}" font-family="DejaVu Sans, Arial, sans-serif">"#,
        y + 20.0,
        y + 20.0
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="20" y="30" font-size="20" font-weight="bold">Flash-sale claims: yunquan vs Redis Lua vs PostgreSQL row lock</text>"#
    );
    let _ = writeln!(
        out,
        r##"<text x="20" y="52" font-size="13" fill="#444">{} persons, stock {}, {} claims, {} cores; green: yunquan (durable), grey: other durable, yellow: not durable</text>"##,
        r.workload.persons, r.workload.stock, r.claims, r.machine.cores
    );
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}
