//! SVG plots shared by the reports, sized for the book's text column.
//!
//! The column is about 750 CSS pixels wide, and an SVG in an `<img>` is
//! scaled to fit it. The charts are drawn [`WIDTH`] pixels wide with text of
//! [`TEXT`] pixels and more, so the labels stay as large as the body text.

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::table::fmt_ns_round;

/// Width of every chart, pixels: the book's text column, so it is drawn at 1:1.
pub const WIDTH: u32 = 740;
/// The smallest text size in a chart, pixels (axis ticks, legend, caption).
pub const TEXT: u32 = 15;

/// One bar of [`log_bar_chart`]: a measured time and, optionally, a reference time to mark.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The label left of the bar.
    pub label: String,
    /// The measured time, nanoseconds (the bar's length).
    pub value_ns: f64,
    /// A reference time, nanoseconds, drawn as a marker on the bar's row.
    pub reference_ns: Option<f64>,
}

/// What [`log_bar_chart`] draws besides the bars.
#[derive(Debug, Clone)]
pub struct BarChart<'a> {
    /// The title above the chart.
    pub title: &'a str,
    /// The legend entry of the bars.
    pub value_label: &'a str,
    /// The legend entry of the reference markers.
    pub reference_label: &'a str,
    /// A line of small print under the chart (the machine header).
    pub caption: &'a str,
}

/// A horizontal bar chart of times on a logarithmic axis, as an SVG document.
///
/// Bars are drawn top to bottom in the order given, under a row for the
/// legend; a reference time, when present, is a black cross on the bar's row.
pub fn log_bar_chart(chart: &BarChart<'_>, bars: &[Bar]) -> Result<String> {
    const ROW: u32 = 40;
    let rows = bars.len().max(1);
    let height = 140 + ROW * (rows as u32 + 1);
    let values = bars
        .iter()
        .flat_map(|b| std::iter::once(b.value_ns).chain(b.reference_ns));
    let (lo, hi) = values.fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() && lo > 0.0 {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()).max(lo * 10.0),
        )
    } else {
        (1.0, 1e9)
    };
    let n = i32::try_from(rows)?;
    // Rows 0..=n: bar i is on row n - 1 - i (first bar on top), and the
    // empty row n above them holds the legend.
    let row_of = |i: usize| n - 1 - i as i32;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (upper, lower) = root.split_vertically(height - 30);
        let mut c = ChartBuilder::on(&upper)
            .caption(chart.title, ("sans-serif", TEXT + 5))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(44)
            .y_label_area_size(250)
            .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
            .map_err(plot_err)?;
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        let y_label = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(r) => {
                let i = usize::try_from(n - 1 - r).unwrap_or(usize::MAX);
                labels.get(i).map_or_else(String::new, |s| (*s).to_string())
            }
            _ => String::new(),
        };
        let x_label = |v: &f64| fmt_ns_round(*v);
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&y_label)
            .x_label_formatter(&x_label)
            .x_desc("time per operation (log scale)")
            .label_style(("sans-serif", TEXT))
            .axis_desc_style(("sans-serif", TEXT))
            .draw()
            .map_err(plot_err)?;
        let blue = RGBColor(0x35, 0x6a, 0xb3);
        c.draw_series(bars.iter().enumerate().map(|(i, b)| {
            let r = row_of(i);
            let mut rect = Rectangle::new(
                [
                    (lo, SegmentValue::Exact(r)),
                    (b.value_ns, SegmentValue::Exact(r + 1)),
                ],
                blue.filled(),
            );
            rect.set_margin(7, 7, 0, 0);
            rect
        }))
        .map_err(plot_err)?
        .label(chart.value_label)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], blue.filled()));
        c.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            let at = (b.reference_ns?, SegmentValue::CenterOf(row_of(i)));
            Some(Cross::new(at, 7, BLACK.stroke_width(3)))
        }))
        .map_err(plot_err)?
        .label(chart.reference_label)
        .legend(|(x, y)| Cross::new((x + 8, y), 5, BLACK.stroke_width(3)));
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", TEXT))
            .draw()
            .map_err(plot_err)?;
        lower
            .draw(&Text::new(
                chart.caption.to_string(),
                (12, 6),
                ("sans-serif", TEXT - 2),
            ))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    svg.push('\n');
    Ok(svg)
}

/// One line of [`line_chart`]: a name for the legend and its points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// Points `(x, y)`, in order of x.
    pub points: Vec<(f64, f64)>,
}

/// What [`line_chart`] draws besides the lines.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    /// The title above the chart.
    pub title: &'a str,
    /// The x axis description.
    pub x_desc: &'a str,
    /// The y axis description.
    pub y_desc: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// A line of small print under the chart (the machine header).
    pub caption: &'a str,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x35, 0x6a, 0xb3),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xe7, 0x29, 0x8a),
    RGBColor(0x66, 0x66, 0x66),
];

/// Lines of `(x, y)` points with markers, on linear or logarithmic axes, as an SVG document.
pub fn line_chart(chart: &LineChart<'_>, series: &[Series]) -> Result<String> {
    let height = 480;
    let pts = series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    let widen = |lo: f64, hi: f64, log: bool| -> (f64, f64) {
        if log {
            let lo = if lo > 0.0 { lo } else { 1e-3 };
            (
                10f64.powf(lo.log10().floor()),
                10f64.powf(hi.max(lo * 10.0).log10().ceil()),
            )
        } else {
            let pad = ((hi - lo) * 0.05).max(1e-9);
            (if lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
        }
    };
    let (x0, x1) = widen(x0, x1, chart.log_x);
    let (y0, y1) = widen(y0, y1, chart.log_y);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (upper, lower) = root.split_vertically(height - 30);
        let fmt = |v: &f64| {
            let a = v.abs();
            if a >= 1e6 {
                format!("{:.0}M", v / 1e6)
            } else if a >= 1e3 {
                format!("{:.0}K", v / 1e3)
            } else if a >= 10.0 || *v == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        };
        macro_rules! draw {
            ($c:expr) => {{
                let mut c = $c;
                c.configure_mesh()
                    .x_desc(chart.x_desc)
                    .y_desc(chart.y_desc)
                    .x_label_formatter(&fmt)
                    .y_label_formatter(&fmt)
                    .label_style(("sans-serif", TEXT))
                    .axis_desc_style(("sans-serif", TEXT))
                    .draw()
                    .map_err(plot_err)?;
                for (i, s) in series.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    c.draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(3),
                    ))
                    .map_err(plot_err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
                    c.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                        .map_err(plot_err)?;
                }
                c.configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.9))
                    .border_style(BLACK)
                    .label_font(("sans-serif", TEXT))
                    .draw()
                    .map_err(plot_err)?;
            }};
        }
        let mut b = ChartBuilder::on(&upper);
        b.caption(chart.title, ("sans-serif", TEXT + 5))
            .margin(12)
            .margin_right(28)
            .x_label_area_size(50)
            .y_label_area_size(80);
        match (chart.log_x, chart.log_y) {
            (false, false) => draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(plot_err)?),
            (true, false) => draw!(
                b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                    .map_err(plot_err)?
            ),
            (false, true) => draw!(
                b.build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                    .map_err(plot_err)?
            ),
            (true, true) => draw!(
                b.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                    .map_err(plot_err)?
            ),
        }
        lower
            .draw(&Text::new(
                chart.caption.to_string(),
                (12, 6),
                ("sans-serif", TEXT - 2),
            ))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    svg.push('\n');
    Ok(svg)
}

fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_label() -> Result<()> {
        let bars = vec![
            Bar {
                label: "fast op".into(),
                value_ns: 12.0,
                reference_ns: Some(7.0),
            },
            Bar {
                label: "slow op".into(),
                value_ns: 2.5e6,
                reference_ns: None,
            },
        ];
        let chart = BarChart {
            title: "Title",
            value_label: "measured",
            reference_label: "classic",
            caption: "machine line",
        };
        let svg = log_bar_chart(&chart, &bars)?;
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(&format!("width=\"{WIDTH}\"")));
        for s in [
            "fast op",
            "slow op",
            "Title",
            "measured",
            "classic",
            "machine line",
        ] {
            assert!(svg.contains(s), "{s} missing");
        }
        Ok(())
    }

    #[test]
    fn line_charts_draw_every_series() -> Result<()> {
        let series = vec![
            Series {
                name: "push".into(),
                points: vec![(1.0, 10.0), (100.0, 1000.0)],
            },
            Series {
                name: "pull".into(),
                points: vec![(1.0, 50.0), (100.0, 60.0)],
            },
        ];
        for (log_x, log_y) in [(false, false), (true, true), (true, false), (false, true)] {
            let svg = line_chart(
                &LineChart {
                    title: "T",
                    x_desc: "threshold",
                    y_desc: "writes",
                    log_x,
                    log_y,
                    caption: "machine line",
                },
                &series,
            )?;
            for s in ["push", "pull", "threshold", "machine line"] {
                assert!(svg.contains(s), "{s} missing");
            }
        }
        Ok(())
    }
}
