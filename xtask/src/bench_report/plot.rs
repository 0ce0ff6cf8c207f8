//! SVG plots shared by the reports.

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

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
    const WIDTH: u32 = 960;
    const ROW: u32 = 36;
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
        let (upper, lower) = root.split_vertically(height - 28);
        let mut c = ChartBuilder::on(&upper)
            .caption(chart.title, ("sans-serif", 20))
            .margin(12)
            .margin_right(36)
            .x_label_area_size(44)
            .y_label_area_size(210)
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
        let x_label = |v: &f64| super::fmt_ns_round(*v);
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&y_label)
            .x_label_formatter(&x_label)
            .x_desc("time per operation (log scale)")
            .label_style(("sans-serif", 14))
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
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        lower
            .draw(&Text::new(
                chart.caption.to_string(),
                (12, 6),
                ("sans-serif", 12),
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
}
