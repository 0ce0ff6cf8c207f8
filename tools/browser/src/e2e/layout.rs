//! Readable at the book's width, on every page (the window is 1280 px wide):
//!
//! - no table is wider than the content column (`<main>`'s client width),
//!   so none scrolls sideways inside mdBook's `.table-wrapper`;
//! - no text in a figure is drawn much smaller than the body text. A
//!   figure is a mermaid diagram, another inline `<svg>`, or an
//!   `<img src="*.svg">` plot. Each label's rendered size is its font size
//!   times the scale the figure is drawn at (the SVG's screen transform),
//!   so a 960 px plot squeezed into a 750 px column shrinks its labels by
//!   the same ×0.78. An `<img>` keeps its SVG out of the page's reach, so
//!   the file is fetched and measured in an off-screen copy drawn at the
//!   image's rendered size.
//!
//! A failure names the page, the table or figure (number, the heading it
//! is under, its header row or file) and the sizes measured.

use serde::Deserialize;

use super::Failures;

/// No label may render smaller than this many CSS pixels...
pub(crate) const MIN_TEXT_PX: f64 = 10.0;
/// ...nor smaller than this fraction of the body text's size.
pub(crate) const MIN_TEXT_RATIO: f64 = 0.6;
/// Sub-pixel rounding allowed on widths.
const SLACK_PX: f64 = 1.0;

/// Sizes measured on one page.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Layout {
    /// Width of the content column, `<main>`'s client width.
    pub column: f64,
    /// Font size of the body text (a paragraph of `<main>`).
    pub body_px: f64,
    pub tables: Vec<TableBox>,
    pub figures: Vec<Figure>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TableBox {
    /// Rendered width, or the scroll width when larger.
    pub width: f64,
    /// Cells in the widest row.
    pub columns: usize,
    /// Texts of the first row's cells.
    pub header: Vec<String>,
    /// The nearest heading above the table.
    pub heading: Option<String>,
    pub visible: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Figure {
    /// `diagram`, `inline SVG` or `plot`.
    pub kind: String,
    /// Index among the figures of its kind on the page, and their count.
    pub index: usize,
    pub count: usize,
    /// `src` of a plot's `<img>`.
    pub src: Option<String>,
    /// Rendered width.
    pub width: f64,
    /// Width the figure was drawn for (its natural or viewBox width).
    pub natural: Option<f64>,
    pub heading: Option<String>,
    /// Each piece of text, with its rendered size.
    pub labels: Vec<Label>,
    /// Why a plot's SVG could not be measured.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Label {
    pub text: String,
    pub px: f64,
}

impl Layout {
    /// The smallest size a label may render at on this page.
    pub(crate) fn floor(&self) -> f64 {
        MIN_TEXT_PX.max(MIN_TEXT_RATIO * self.body_px)
    }

    /// The widest table, as (index, width), if any is visible.
    pub(crate) fn widest_table(&self) -> Option<(usize, f64)> {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.visible)
            .map(|(i, t)| (i, t.width))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The figure with the smallest label, as (figure, size).
    pub(crate) fn smallest_text(&self) -> Option<(&Figure, f64)> {
        self.figures
            .iter()
            .filter_map(|f| Some((f, f.smallest()?.px)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

impl Figure {
    fn smallest(&self) -> Option<&Label> {
        self.labels.iter().min_by(|a, b| a.px.total_cmp(&b.px))
    }

    /// "plot 1 of 2 (generated/x.svg, under "Heading")".
    pub(crate) fn name(&self) -> String {
        let mut s = format!("{} {} of {}", self.kind, self.index + 1, self.count);
        let mut about = Vec::new();
        if let Some(src) = &self.src {
            about.push(src.clone());
        }
        if let Some(h) = &self.heading {
            about.push(format!("under {h:?}"));
        }
        if !about.is_empty() {
            s += &format!(" ({})", about.join(", "));
        }
        s
    }
}

/// Measures the current page; the script's value deserializes as [`Layout`]
/// (`null` on a page without `<main>`).
pub(crate) const LAYOUT_JS: &str = r#"
return (async () => {
const main = document.querySelector('main');
if (!main) return null;
const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
const headings = [...main.querySelectorAll('h1, h2, h3, h4, h5, h6')];
const headingOf = (el) => {
    let last = null;
    for (const h of headings) {
        if (h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) last = h;
        else break;
    }
    return last ? clean(last.textContent) : null;
};
const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
};
const para = main.querySelector(':scope > p') || main;
const body_px = parseFloat(getComputedStyle(para).fontSize);

const tables = [...main.querySelectorAll('table')].map((t) => ({
    width: Math.max(t.getBoundingClientRect().width, t.scrollWidth),
    columns: Math.max(0, ...[...t.rows].map(r => r.cells.length)),
    header: t.rows.length ? [...t.rows[0].cells].map(c => clean(c.textContent)) : [],
    heading: headingOf(t),
    visible: visible(t),
}));

// Every piece of text in an SVG with the size it is drawn at, in CSS px:
// its font size times the scale of the SVG's transform to the screen (of
// the <text>, or of the <foreignObject> holding an HTML label).
const labels = (svg) => {
    const out = [];
    const walker = document.createTreeWalker(svg, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const text = clean(n.textContent);
        const el = n.parentElement;
        if (!text || !el || el.closest('defs, marker, style, script, title, desc')) continue;
        const style = getComputedStyle(el);
        if (style.display === 'none' || style.visibility === 'hidden') continue;
        const host = el.closest('foreignObject') || el.closest('text') || el;
        const m = typeof host.getScreenCTM === 'function' ? host.getScreenCTM() : null;
        const scale = m ? Math.hypot(m.a, m.b) : 1;
        out.push({ text: text.slice(0, 60), px: parseFloat(style.fontSize) * scale });
    }
    return out;
};
const viewBoxWidth = (svg) => {
    const vb = svg.viewBox && svg.viewBox.baseVal;
    return vb && vb.width ? vb.width : null;
};

const figures = [];
const diagrams = [...main.querySelectorAll('pre.mermaid')];
diagrams.forEach((pre, i) => {
    const svg = pre.querySelector(':scope > svg');
    if (!svg || !visible(svg)) return;
    figures.push({
        kind: 'diagram', index: i, count: diagrams.length, src: null,
        width: svg.getBoundingClientRect().width, natural: viewBoxWidth(svg),
        heading: headingOf(pre), labels: labels(svg), error: null,
    });
});
const inline = [...main.querySelectorAll('svg')].filter(svg =>
    !svg.closest('pre.mermaid') && !(svg.parentElement && svg.parentElement.closest('svg')) && visible(svg));
inline.forEach((svg, i) => {
    figures.push({
        kind: 'inline SVG', index: i, count: inline.length, src: null,
        width: svg.getBoundingClientRect().width, natural: viewBoxWidth(svg),
        heading: headingOf(svg), labels: labels(svg), error: null,
    });
});
const plots = [...main.querySelectorAll('img')].filter(img =>
    /\.svg$/i.test(new URL(img.currentSrc || img.src, location.href).pathname) && visible(img));
for (const [i, img] of plots.entries()) {
    const rect = img.getBoundingClientRect();
    let found = [], error = null;
    try {
        const r = await fetch(img.currentSrc || img.src);
        if (!r.ok) throw new Error('fetching it answered ' + r.status);
        const doc = new DOMParser().parseFromString(await r.text(), 'image/svg+xml');
        if (doc.querySelector('parsererror') || doc.documentElement.localName !== 'svg') {
            throw new Error('it is not a well-formed SVG');
        }
        const svg = document.importNode(doc.documentElement, true);
        if (!svg.hasAttribute('viewBox') && img.naturalWidth && img.naturalHeight) {
            svg.setAttribute('viewBox', `0 0 ${img.naturalWidth} ${img.naturalHeight}`);
        }
        svg.setAttribute('width', rect.width);
        svg.setAttribute('height', rect.height);
        const box = document.createElement('div');
        box.style.cssText = 'position: absolute; left: -100000px; top: 0;';
        box.appendChild(svg);
        document.body.appendChild(box);
        try { found = labels(svg); } finally { box.remove(); }
    } catch (e) {
        error = String(e && e.message || e);
    }
    figures.push({
        kind: 'plot', index: i, count: plots.length, src: img.getAttribute('src'),
        width: rect.width, natural: img.naturalWidth || null,
        heading: headingOf(img), labels: found, error,
    });
}
return { column: main.clientWidth, body_px, tables, figures };
})();
"#;

/// Records every table wider than the column and every figure with text
/// below [`Layout::floor`].
pub(crate) fn check(page: &str, layout: &Layout, failures: &mut Failures) {
    let column = layout.column;
    let count = layout.tables.len();
    for (i, t) in layout.tables.iter().enumerate() {
        if !t.visible || t.width <= column + SLACK_PX {
            continue;
        }
        let mut header: Vec<&str> = t.header.iter().map(String::as_str).take(4).collect();
        if t.header.len() > 4 {
            header.push("…");
        }
        let under = t
            .heading
            .as_ref()
            .map_or(String::new(), |h| format!(" under {h:?}"));
        failures.push(
            page,
            format!(
                "table {} of {}{under} ({} columns: {}) is {} px wide but the content column is {} px: \
                 it scrolls sideways by {} px",
                i + 1,
                count,
                t.columns,
                header.join(" | "),
                px(t.width),
                px(column),
                px(t.width - column),
            ),
        );
    }

    let floor = layout.floor();
    for f in &layout.figures {
        if let Some(error) = &f.error {
            failures.push(
                page,
                format!("{}: could not measure its text: {error}", f.name()),
            );
            continue;
        }
        let small: Vec<&Label> = f.labels.iter().filter(|l| l.px < floor).collect();
        let Some(smallest) = f.smallest().filter(|_| !small.is_empty()) else {
            continue;
        };
        let drawn = match f.natural {
            Some(n) if n > 0.0 => format!(
                "drawn {:.0} px wide from {:.0} px (×{:.2})",
                f.width,
                n,
                f.width / n
            ),
            _ => format!("drawn {:.0} px wide", f.width),
        };
        failures.push(
            page,
            format!(
                "{} is {drawn}: {} of {} labels render below {floor:.1} px (body text {:.0} px), \
                 the smallest at {:.1} px ({:?})",
                f.name(),
                small.len(),
                f.labels.len(),
                layout.body_px,
                smallest.px,
                smallest.text,
            ),
        );
    }
}

/// A width in whole pixels, or to a tenth where a fraction matters (1.3 px, not 1 px).
fn px(x: f64) -> String {
    if (x - x.round()).abs() < 0.05 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str, px: f64) -> Label {
        Label {
            text: text.into(),
            px,
        }
    }

    #[test]
    fn a_table_wider_than_the_column_and_a_plot_with_tiny_labels_fail_with_their_sizes() {
        let layout = Layout {
            column: 750.0,
            body_px: 16.0,
            tables: vec![
                TableBox {
                    width: 600.0,
                    columns: 3,
                    header: vec!["a".into(), "b".into(), "c".into()],
                    heading: None,
                    visible: true,
                },
                TableBox {
                    width: 1012.4,
                    columns: 6,
                    header: ["Path", "p50", "p99", "max", "req/s", "ratio"]
                        .map(String::from)
                        .to_vec(),
                    heading: Some("Results".into()),
                    visible: true,
                },
                TableBox {
                    width: 5000.0,
                    columns: 1,
                    header: vec![],
                    heading: None,
                    visible: false,
                },
            ],
            figures: vec![
                Figure {
                    kind: "plot".into(),
                    index: 0,
                    count: 1,
                    src: Some("generated/p.svg".into()),
                    width: 750.0,
                    natural: Some(960.0),
                    heading: Some("Results".into()),
                    labels: vec![label("title", 12.6), label("0.1 ms", 7.56), label("x", 8.8)],
                    error: None,
                },
                Figure {
                    kind: "diagram".into(),
                    index: 0,
                    count: 1,
                    src: None,
                    width: 700.0,
                    natural: Some(700.0),
                    heading: None,
                    labels: vec![label("node", 16.0)],
                    error: None,
                },
            ],
        };
        let mut failures = Failures::default();
        check("ch/perf.html", &layout, &mut failures);
        assert_eq!(
            failures.0,
            [
                "ch/perf.html: table 2 of 3 under \"Results\" (6 columns: Path | p50 | p99 | max | …) \
                 is 1012 px wide but the content column is 750 px: it scrolls sideways by 262 px",
                "ch/perf.html: plot 1 of 1 (generated/p.svg, under \"Results\") is drawn 750 px wide \
                 from 960 px (×0.78): 2 of 3 labels render below 10.0 px (body text 16 px), \
                 the smallest at 7.6 px (\"0.1 ms\")",
            ]
        );
    }

    #[test]
    fn the_floor_follows_large_body_text() {
        let layout = Layout {
            body_px: 20.0,
            ..Layout::default()
        };
        assert_eq!(layout.floor(), 12.0);
        assert_eq!(Layout::default().floor(), MIN_TEXT_PX);
    }
}
